//! Process-wide counters. Every stage moves them; the summary and (later) exporters read
//! them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    pub inputs: AtomicU64,
    pub records_decoded: AtomicU64,
    pub records_emitted: AtomicU64,
    pub records_skipped: AtomicU64,
    pub records_time_from_ingest: AtomicU64,
    pub records_other_category: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub batches_acked: AtomicU64,
    pub batches_nacked: AtomicU64,
    dead_letter_reasons: Mutex<BTreeMap<&'static str, u64>>,
    skip_reasons: Mutex<BTreeMap<&'static str, u64>>,
    /// Counters of one source or sink kind (`sqs_messages_deleted`, …).
    named: Mutex<BTreeMap<&'static str, u64>>,
    /// Per-label values (one partition, one sink): counters add, gauges set.
    labeled: Mutex<BTreeMap<(&'static str, String), u64>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key).or_default() += 1;
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn dead_letter(&self, reason: &'static str) {
        Self::add(&self.dead_lettered, 1);
        bump(&self.dead_letter_reasons, reason);
    }

    pub fn skipped(&self, reason: &'static str) {
        Self::add(&self.records_skipped, 1);
        bump(&self.skip_reasons, reason);
    }

    /// Move a named counter.
    pub fn count(&self, name: &'static str, n: u64) {
        if let Ok(mut m) = self.named.lock() {
            *m.entry(name).or_default() += n;
        }
    }

    /// A named counter's value.
    pub fn count_labeled(&self, name: &'static str, label: &str, n: u64) {
        if let Ok(mut m) = self.labeled.lock() {
            *m.entry((name, label.to_string())).or_default() += n;
        }
    }

    pub fn set_labeled(&self, name: &'static str, label: &str, value: u64) {
        if let Ok(mut m) = self.labeled.lock() {
            m.insert((name, label.to_string()), value);
        }
    }

    pub fn labeled(&self, name: &str, label: &str) -> u64 {
        self.labeled
            .lock()
            .ok()
            .and_then(|m| m.get(&(name, label.to_string())).copied())
            .unwrap_or(0)
    }

    fn labeled_summary(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        if let Ok(m) = self.labeled.lock() {
            for ((name, label), v) in m.iter() {
                out.entry((*name).to_string())
                    .or_default()
                    .insert(label.clone(), *v);
            }
        }
        out
    }

    pub fn named(&self, name: &str) -> u64 {
        self.named
            .lock()
            .ok()
            .and_then(|m| m.get(name).copied())
            .unwrap_or(0)
    }

    pub fn dead_letter_reasons(&self) -> BTreeMap<&'static str, u64> {
        self.dead_letter_reasons
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub fn skip_reasons(&self) -> BTreeMap<&'static str, u64> {
        self.skip_reasons
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// A one-line JSON summary for stderr and scripts.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "inputs": Self::get(&self.inputs),
            "records_decoded": Self::get(&self.records_decoded),
            "records_emitted": Self::get(&self.records_emitted),
            "records_skipped": Self::get(&self.records_skipped),
            "skip_reasons": self.skip_reasons(),
            "records_time_from_ingest": Self::get(&self.records_time_from_ingest),
            "records_other_category": Self::get(&self.records_other_category),
            "dead_lettered": Self::get(&self.dead_lettered),
            "dead_letter_reasons": self.dead_letter_reasons(),
            "batches_acked": Self::get(&self.batches_acked),
            "batches_nacked": Self::get(&self.batches_nacked),
            "counters": self.named.lock().map(|m| m.clone()).unwrap_or_default(),
            "labeled": self.labeled_summary(),
        })
    }
}
