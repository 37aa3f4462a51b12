//! The process's allocator: mimalloc, asked for a plain block whenever the alignment
//! Rust needs allows it.
//!
//! The `mimalloc` crate asks for every block through `mi_malloc_aligned`. In mimalloc 3
//! that takes a detour for a block over 1 KiB whose size class is not a power of two, as
//! most documents, batches and growing buffers are: it over-allocates and hands out a
//! pointer inside the larger block. Every mimalloc block is aligned to a machine word, so
//! a request for no more than that needs no detour.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out.
const WORD: usize = std::mem::size_of::<usize>();

pub struct Allocator;

// mimalloc's option call, which the -sys crate declares only with a feature that pulls in
// one more crate.
extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t`.
const PURGE_DELAY: std::ffi::c_int = 15;

/// How long freed memory stays with the process before mimalloc gives it back. mimalloc 3's
/// own second keeps a second of a pipeline's traffic resident: documents flow through at
/// hundreds of MB a second. At 100 ms the memory bench's million records peaked at 76
/// against 90 MB and `replay`'s CPU time did not move beyond noise; at 10 ms the kernel's
/// page faults doubled the system time (BENCHMARKS.md, fourteenth stop).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// The process's memory settings, called first thing in `main`: small pages
/// ([`small_pages`]) and a short purge delay ([`PURGE_DELAY_MS`]). Each is left to mimalloc
/// when the operator set its variable (`MIMALLOC_ALLOW_THP`, `MIMALLOC_PURGE_DELAY`).
pub fn configure() {
    small_pages();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options, which it reads atomically.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// A new block from `plain` when the word alignment every block has is enough, else from
/// `aligned`, which takes the alignment.
#[inline(always)]
unsafe fn block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    if layout.align() <= WORD {
        plain(layout.size()).cast()
    } else {
        aligned(layout.size(), layout.align()).cast()
    }
}

// SAFETY: each method forwards to the mimalloc function with the same contract, and asks
// for `layout.align()` explicitly whenever it is larger than the word every block has.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        block(layout, mi::mi_malloc, mi::mi_malloc_aligned)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            mi::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

/// Keep the heap in 4 KiB pages: transparent huge pages are turned off for the process,
/// unless the operator chose otherwise with `MIMALLOC_ALLOW_THP`, which mimalloc reads.
///
/// mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`). Each 2 MiB of heap
/// it touches is then resident whole, and zeroed by the kernel in one go: on the memory
/// bench's `{"Records":[…]}` file that was 30 MB more at the peak and twice the system
/// time (BENCHMARKS.md, fourteenth stop). True when the process runs on small pages.
fn small_pages() -> bool {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integers and touches no memory of ours.
        return unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        // SAFETY: reads one of mimalloc's options.
        let before = unsafe { mi_option_get(PURGE_DELAY) };
        // mimalloc 3's default identifies the option: no other is 1,000.
        assert!(
            before == 1_000 || before == PURGE_DELAY_MS,
            "option {PURGE_DELAY} is {before}, not the purge delay"
        );
        configure();
        assert_eq!(unsafe { mi_option_get(PURGE_DELAY) }, PURGE_DELAY_MS);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_off_once_asked() {
        assert!(small_pages(), "prctl(PR_SET_THP_DISABLE) was refused");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .expect("the kernel reports THP_enabled");
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }

    /// Blocks of every alignment the two paths serve, small and past 1 KiB, come back
    /// aligned, zeroed when asked, and keep their bytes when they grow.
    #[test]
    fn blocks_are_aligned_zeroed_and_kept_across_growth() {
        let a = Allocator;
        for align in [1, 2, 8, 16, 64, 4096] {
            for size in [1, 24, 1000, 2700, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let zeroed = a.alloc_zeroed(layout);
                    assert_eq!(
                        zeroed as usize % align,
                        0,
                        "zeroed {size} B aligned to {align}"
                    );
                    assert!(std::slice::from_raw_parts(zeroed, size)
                        .iter()
                        .all(|b| *b == 0));
                    a.dealloc(zeroed, layout);

                    let p = a.alloc(layout);
                    assert_eq!(p as usize % align, 0, "{size} B aligned to {align}");
                    for i in 0..size {
                        *p.add(i) = (i % 251) as u8;
                    }
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "{size} B grown, aligned to {align}"
                    );
                    for i in 0..size {
                        assert_eq!(*grown.add(i), (i % 251) as u8);
                    }
                    a.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                }
            }
        }
    }
}
