//! Drops records the SIEM already received: SQS redelivery, S3 + EventBridge double
//! delivery and Event Hubs replays otherwise reach it twice.
//!
//! An id enters the window only once a batch carrying it was *delivered*: a record whose
//! first copy is still in flight (or failed) is let through again, because dropping it
//! would acknowledge its source unit on the strength of a delivery that may never
//! happen. The window forgets ids after `window_secs` and holds at most `capacity` of
//! them (oldest first out). It keeps the first 128 bits of each id's SHA-256, not the id:
//! about 70 bytes per id of capacity, allocated once at start, so memory does not grow
//! with volume; and an id crafted to collide with another (to have a record dropped) would
//! need a SHA-256 collision.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a delivered id is remembered.
    #[serde(default = "hour")]
    pub window_secs: u64,
    /// Most ids remembered (about 70 bytes each, reserved at start).
    #[serde(default = "capacity")]
    pub capacity: usize,
    /// Where the window is saved at shutdown and loaded at startup.
    #[serde(default)]
    pub state_path: Option<PathBuf>,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            enabled: true,
            window_secs: hour(),
            capacity: capacity(),
            state_path: None,
        }
    }
}

fn yes() -> bool {
    true
}
fn hour() -> u64 {
    3600
}
fn capacity() -> usize {
    200_000
}

/// The first 128 bits of an id's SHA-256: what the window remembers of an id.
pub type Digest = u128;

/// Computed once per record, outside the window's lock.
pub fn digest(id: &str) -> Digest {
    let hash = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

/// How a digest is written in the state file, told apart from a raw id (older files).
const DIGEST_PREFIX: &str = "sha256:";

/// One remembered id in delivery order. The digest is kept as bytes: a `u128` field
/// would align the slot to 16 and pad it from 24 bytes to 32.
struct Slot {
    delivered_at: u64,
    digest: [u8; 16],
}

struct Inner {
    seen: HashSet<Digest>,
    order: VecDeque<Slot>,
}

impl Inner {
    fn evict_front(&mut self) {
        if let Some(slot) = self.order.pop_front() {
            self.seen.remove(&u128::from_ne_bytes(slot.digest));
        }
    }

    fn forget_before(&mut self, horizon: u64) {
        while self
            .order
            .front()
            .is_some_and(|slot| slot.delivered_at < horizon)
        {
            self.evict_front();
        }
    }
}

pub struct DedupWindow {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DedupWindow {
    pub fn new(window: Duration, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DedupWindow {
            window,
            capacity,
            inner: Mutex::new(Inner {
                // Twice the ids it holds: evictions leave tombstones in the table, and a
                // table more than half full when they run out of room doubles instead of
                // being cleaned in place, which would grow memory mid-run. (One more than
                // the capacity: an insert comes before its eviction.)
                seen: HashSet::with_capacity(2 * (capacity + 1)),
                order: VecDeque::with_capacity(capacity + 1),
            }),
        }
    }

    fn horizon(&self) -> u64 {
        now_secs().saturating_sub(self.window.as_secs())
    }

    /// For each id's digest, whether it was delivered within the window (one lock for
    /// them all).
    pub fn delivered_among(&self, digests: &[Digest]) -> Vec<bool> {
        let Ok(mut inner) = self.inner.lock() else {
            return vec![false; digests.len()];
        };
        inner.forget_before(self.horizon());
        digests.iter().map(|d| inner.seen.contains(d)).collect()
    }

    /// Remember the digests of ids whose delivery was confirmed.
    pub fn delivered(&self, digests: &[Digest]) {
        let now = now_secs();
        self.insert(digests.iter().map(|d| (now, *d)));
    }

    fn insert(&self, entries: impl IntoIterator<Item = (u64, Digest)>) {
        let Ok(mut guard) = self.inner.lock() else {
            return;
        };
        let inner = &mut *guard;
        for (delivered_at, digest) in entries {
            // A re-delivered id keeps its first time and slot, so every remembered id has
            // exactly one place in the eviction order.
            if inner.seen.insert(digest) {
                inner.order.push_back(Slot {
                    delivered_at,
                    digest: digest.to_ne_bytes(),
                });
            }
            if inner.order.len() > self.capacity {
                inner.evict_front();
            }
        }
        inner.forget_before(self.horizon());
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.seen.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Load a saved window (`<epoch secs> sha256:<32 hex digits>` lines, or `<epoch secs>
    /// <id>` as written before digests); a missing file is an empty window.
    pub fn load(&self, path: &Path) -> std::io::Result<usize> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            let Some((t, id)) = line.split_once(' ') else {
                continue;
            };
            let Ok(t) = t.parse() else { continue };
            let key = match id.strip_prefix(DIGEST_PREFIX) {
                Some(hex) => match u128::from_str_radix(hex, 16) {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                None => digest(id),
            };
            entries.push((t, key));
        }
        let n = entries.len();
        self.insert(entries);
        Ok(n)
    }

    /// Save the window atomically (write, sync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        if let Ok(inner) = self.inner.lock() {
            for slot in &inner.order {
                let digest = u128::from_ne_bytes(slot.digest);
                writeln!(out, "{} {DIGEST_PREFIX}{digest:032x}", slot.delivered_at)?;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(w: &DedupWindow, id: &str) -> bool {
        w.delivered_among(&[digest(id)])[0]
    }

    fn deliver(w: &DedupWindow, ids: &[&str]) {
        let digests: Vec<Digest> = ids.iter().map(|id| digest(id)).collect();
        w.delivered(&digests);
    }

    #[test]
    fn only_delivered_ids_are_duplicates() {
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        assert!(!seen(&w, "a"));
        deliver(&w, &["a"]);
        assert!(seen(&w, "a"));
        assert!(!seen(&w, "b"));
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let w = DedupWindow::new(Duration::from_secs(60), 3);
        deliver(&w, &["a", "b", "c", "d"]);
        assert_eq!(w.len(), 3);
        assert!(!seen(&w, "a"));
        assert!(seen(&w, "d"));
    }

    #[test]
    fn a_redelivered_id_keeps_one_slot() {
        let w = DedupWindow::new(Duration::from_secs(60), 2);
        deliver(&w, &["a", "a", "b", "a", "c"]);
        assert_eq!(w.len(), 2, "a was evicted once b and c came");
        assert!(!seen(&w, "a"));
        assert!(seen(&w, "b") && seen(&w, "c"));
    }

    #[test]
    fn the_table_keeps_its_reserved_size_however_many_ids_pass() {
        let w = DedupWindow::new(Duration::from_secs(60), 1_000);
        let reserved = {
            let inner = w.inner.lock().unwrap();
            (inner.seen.capacity(), inner.order.capacity())
        };
        for round in 0..20 {
            let ids: Vec<Digest> = (0..1_000)
                .map(|i| digest(&format!("{round}-{i}")))
                .collect();
            w.delivered(&ids);
        }
        let inner = w.inner.lock().unwrap();
        assert_eq!(inner.seen.len(), 1_000);
        // Tombstones lower the set's reported capacity; a doubled table would raise it.
        assert!(inner.seen.capacity() <= reserved.0, "the table grew");
        assert_eq!(inner.order.capacity(), reserved.1);
    }

    #[test]
    fn ids_older_than_the_window_are_forgotten() {
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        w.insert([
            (now_secs() - 120, digest("old")),
            (now_secs(), digest("new")),
        ]);
        assert!(!seen(&w, "old"));
        assert!(seen(&w, "new"));
    }

    #[test]
    fn a_saved_window_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.state");
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        deliver(&w, &["x y", "z"]);
        w.save(&path).unwrap();
        let again = DedupWindow::new(Duration::from_secs(60), 10);
        assert_eq!(again.load(&path).unwrap(), 2);
        assert!(seen(&again, "x y"));
        assert!(seen(&again, "z"));
    }

    #[test]
    fn a_window_saved_with_raw_ids_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.state");
        std::fs::write(&path, format!("{} event-1\nnot-a-line\n", now_secs())).unwrap();
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        assert_eq!(w.load(&path).unwrap(), 1);
        assert!(seen(&w, "event-1"));
    }
}
