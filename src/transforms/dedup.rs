//! Drops records the SIEM already received: SQS redelivery, S3 + EventBridge double
//! delivery and Event Hubs replays otherwise reach it twice.
//!
//! An id enters the window only once a batch carrying it was *delivered*: a record whose
//! first copy is still in flight (or failed) is let through again, because dropping it
//! would acknowledge its source unit on the strength of a delivery that may never
//! happen. The window forgets ids after `window_secs` and holds at most `capacity` of
//! them (oldest first out). It keeps the first 128 bits of each id's SHA-256, not the id:
//! a fixed 40 bytes or so per entry, allocated once at start, so memory does not grow with
//! volume; and an id crafted to collide with another (to have a record dropped) would
//! need a SHA-256 collision.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
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
    /// Most ids remembered (about 40 bytes each, reserved at start).
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

struct Inner {
    /// digest → when it was delivered (seconds since the epoch).
    seen: HashMap<Digest, u64>,
    order: VecDeque<(u64, Digest)>,
}

impl Inner {
    fn evict_front(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.seen.remove(&id);
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
        DedupWindow {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                // One more than the capacity: an insert comes before the eviction.
                seen: HashMap::with_capacity(capacity.max(1) + 1),
                order: VecDeque::with_capacity(capacity.max(1) + 1),
            }),
        }
    }

    /// For each id's digest, whether it was delivered within the window (one lock for
    /// them all).
    pub fn delivered_among(&self, digests: &[Digest]) -> Vec<bool> {
        let now = now_secs();
        let inner = self.inner.lock().ok();
        digests
            .iter()
            .map(|d| {
                inner.as_ref().is_some_and(|i| {
                    i.seen
                        .get(d)
                        .is_some_and(|t| now.saturating_sub(*t) < self.window.as_secs())
                })
            })
            .collect()
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
        for (t, id) in entries {
            // A re-delivered id keeps its first time and slot, so every remembered id has
            // exactly one place in the eviction order.
            if let Entry::Vacant(slot) = inner.seen.entry(id) {
                slot.insert(t);
                inner.order.push_back((t, id));
            }
            if inner.order.len() > self.capacity {
                inner.evict_front();
            }
        }
        let horizon = now_secs().saturating_sub(self.window.as_secs());
        while inner.order.front().is_some_and(|(t, _)| *t < horizon) {
            inner.evict_front();
        }
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
            for (t, id) in &inner.order {
                writeln!(out, "{t} {DIGEST_PREFIX}{id:032x}")?;
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
