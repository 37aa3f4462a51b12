//! Drops records the SIEM already received: SQS redelivery, S3 + EventBridge double
//! delivery and Event Hubs replays otherwise reach it twice.
//!
//! An id enters the window only once a batch carrying it was *delivered*: a record whose
//! first copy is still in flight (or failed) is let through again, because dropping it
//! would acknowledge its source unit on the strength of a delivery that may never
//! happen. The window forgets ids after `window_secs` and holds at most `capacity` of
//! them (oldest first out), so memory stays bounded.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long a delivered id is remembered.
    #[serde(default = "hour")]
    pub window_secs: u64,
    /// Most ids remembered (about 100 bytes each).
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

#[derive(Default)]
struct Inner {
    /// id → when it was delivered (seconds since the epoch).
    seen: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
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
            inner: Mutex::new(Inner::default()),
        }
    }

    /// For each id, whether it was delivered within the window (one lock for them all).
    pub fn delivered_among<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> Vec<bool> {
        let now = now_secs();
        let inner = self.inner.lock().ok();
        ids.into_iter()
            .map(|id| {
                inner.as_ref().is_some_and(|i| {
                    i.seen
                        .get(id)
                        .is_some_and(|t| now.saturating_sub(*t) < self.window.as_secs())
                })
            })
            .collect()
    }

    /// Remember ids whose delivery was confirmed.
    pub fn delivered<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.insert(ids.into_iter().map(|id| (now_secs(), id.to_string())));
    }

    fn insert(&self, entries: impl IntoIterator<Item = (u64, String)>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (t, id) in entries {
            if inner.seen.insert(id.clone(), t).is_none() {
                inner.order.push_back((t, id));
            }
        }
        let horizon = now_secs().saturating_sub(self.window.as_secs());
        while inner
            .order
            .front()
            .is_some_and(|(t, _)| *t < horizon || inner.order.len() > self.capacity)
        {
            if let Some((t, id)) = inner.order.pop_front() {
                // Re-delivered ids keep their first entry's slot; only drop a current one.
                if inner.seen.get(&id) == Some(&t) {
                    inner.seen.remove(&id);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.seen.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Load a saved window (`<epoch secs> <id>` lines); a missing file is an empty window.
    pub fn load(&self, path: &Path) -> std::io::Result<usize> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if let Some((t, id)) = line.split_once(' ') {
                if let Ok(t) = t.parse() {
                    entries.push((t, id.to_string()));
                }
            }
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
                if inner.seen.get(id) == Some(t) {
                    writeln!(out, "{t} {id}")?;
                }
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
        w.delivered_among([id])[0]
    }

    #[test]
    fn only_delivered_ids_are_duplicates() {
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        assert!(!seen(&w, "a"));
        w.delivered(["a"]);
        assert!(seen(&w, "a"));
        assert!(!seen(&w, "b"));
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let w = DedupWindow::new(Duration::from_secs(60), 3);
        w.delivered(["a", "b", "c", "d"]);
        assert_eq!(w.len(), 3);
        assert!(!seen(&w, "a"));
        assert!(seen(&w, "d"));
    }

    #[test]
    fn ids_older_than_the_window_are_forgotten() {
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        w.insert([
            (now_secs() - 120, "old".to_string()),
            (now_secs(), "new".to_string()),
        ]);
        assert!(!seen(&w, "old"));
        assert!(seen(&w, "new"));
    }

    #[test]
    fn a_saved_window_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dedup.state");
        let w = DedupWindow::new(Duration::from_secs(60), 10);
        w.delivered(["x y", "z"]);
        w.save(&path).unwrap();
        let again = DedupWindow::new(Duration::from_secs(60), 10);
        assert_eq!(again.load(&path).unwrap(), 2);
        assert!(seen(&again, "x y"));
        assert!(seen(&again, "z"));
    }
}
