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
    pub records_deduplicated: AtomicU64,
    /// Batches handed to the sinks and not yet settled.
    pub batches_in_flight: AtomicU64,
    /// Bytes of documents between the transform stage and the sinks (`pipeline.max_in_flight_bytes`).
    pub bytes_in_flight: AtomicU64,
    /// Input units (files, SQS messages, Event Hubs events) taken in and not yet settled.
    pub inputs_in_flight: AtomicU64,
    /// Seconds from a record's event time to its acknowledgement by every sink.
    pub latency: Histogram,
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
            "records_deduplicated": Self::get(&self.records_deduplicated),
            "dead_letter_reasons": self.dead_letter_reasons(),
            "batches_acked": Self::get(&self.batches_acked),
            "batches_nacked": Self::get(&self.batches_nacked),
            "counters": self.named.lock().map(|m| m.clone()).unwrap_or_default(),
            "labeled": self.labeled_summary(),
        })
    }
}

/// Upper bounds (seconds) of the end-to-end latency buckets: CloudTrail files arrive
/// minutes after their events, Event Hubs within seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 86400.0,
];

/// A fixed-bucket histogram with lock-free updates.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in milliseconds, to stay an integer.
    sum_millis: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        // One bucket per observation; `snapshot` makes the counts cumulative.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_millis
            .fetch_add((seconds * 1000.0) as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound, the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut total = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                total += c.load(Ordering::Relaxed);
                (*b, total)
            })
            .collect();
        (
            buckets,
            self.count.load(Ordering::Relaxed),
            self.sum_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

/// One exported metric: its name (without the `auditbridge_` prefix), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(&'static str, String)>,
    pub value: u64,
    pub gauge: bool,
}

/// The metric contract: every name exported (with `auditbridge_` and, for counters,
/// `_total` in Prometheus; dotted in OTLP), and whether it is a gauge.
pub const CONTRACT: [(&str, bool); 39] = [
    ("inputs_received", false),
    ("records_decoded", false),
    ("records_emitted", false),
    ("records_deduplicated", false),
    ("records_time_from_ingest", false),
    ("records_dead_lettered", false),
    ("records_dead_lettered_by_reason", false),
    ("records_skipped", false),
    ("batches_acknowledged", false),
    ("batches_negatively_acknowledged", false),
    ("batches_in_flight", true),
    ("bytes_in_flight", true),
    ("inputs_in_flight", true),
    ("transform_panics", false),
    ("sink_records_delivered", false),
    ("sink_records_rejected", false),
    ("sink_retries", false),
    ("sink_faults", false),
    ("sink_requests", false),
    ("sink_bytes", false),
    ("sink_splits", false),
    ("sqs_messages_received", false),
    ("sqs_messages_deleted", false),
    ("sqs_messages_returned", false),
    ("sqs_visibility_extensions", false),
    ("sqs_messages_in_flight", true),
    ("eventhubs_events_received", false),
    ("eventhubs_records_decoded", false),
    ("eventhubs_replays_dropped", false),
    ("eventhubs_redeliveries", false),
    ("eventhubs_checkpoints_written", false),
    ("eventhubs_checkpoint_failures", false),
    ("eventhubs_processor_restarts", false),
    ("eventhubs_partitions_relinquished", false),
    ("eventhubs_last_sequence_number", true),
    ("eventhubs_checkpoint_sequence_number", true),
    ("eventhubs_checkpoint_lag_events", true),
    ("eventhubs_checkpoint_lag_seconds", true),
    ("eventhubs_in_flight_events", true),
];

/// Per-label values that are levels, not counts.
const GAUGES: [&str; 6] = [
    "eventhubs_last_sequence_number",
    "eventhubs_checkpoint_sequence_number",
    "eventhubs_checkpoint_lag_events",
    "eventhubs_checkpoint_lag_seconds",
    "eventhubs_in_flight_events",
    "sqs_messages_in_flight",
];

impl Metrics {
    /// Every metric of the contract (README, "Metrics"), as samples.
    pub fn samples(&self) -> Vec<Sample> {
        let counter = |name: &str, value: u64| Sample {
            name: name.to_string(),
            labels: Vec::new(),
            value,
            gauge: false,
        };
        let mut out = vec![
            counter("inputs_received", Self::get(&self.inputs)),
            counter("records_decoded", Self::get(&self.records_decoded)),
            counter("records_emitted", Self::get(&self.records_emitted)),
            counter(
                "records_deduplicated",
                Self::get(&self.records_deduplicated),
            ),
            counter(
                "records_time_from_ingest",
                Self::get(&self.records_time_from_ingest),
            ),
            counter("batches_acknowledged", Self::get(&self.batches_acked)),
            counter(
                "batches_negatively_acknowledged",
                Self::get(&self.batches_nacked),
            ),
            Sample {
                gauge: true,
                ..counter("batches_in_flight", Self::get(&self.batches_in_flight))
            },
            Sample {
                gauge: true,
                ..counter("bytes_in_flight", Self::get(&self.bytes_in_flight))
            },
            Sample {
                gauge: true,
                ..counter("inputs_in_flight", Self::get(&self.inputs_in_flight))
            },
        ];
        out.push(counter(
            "records_dead_lettered",
            Self::get(&self.dead_lettered),
        ));
        for (reason, n) in self.dead_letter_reasons() {
            out.push(Sample {
                labels: vec![("reason", reason.to_string())],
                ..counter("records_dead_lettered_by_reason", n)
            });
        }
        for (reason, n) in self.skip_reasons() {
            out.push(Sample {
                labels: vec![("reason", reason.to_string())],
                ..counter("records_skipped", n)
            });
        }
        if let Ok(named) = self.named.lock() {
            for (name, n) in named.iter() {
                out.push(counter(name, *n));
            }
        }
        if let Ok(labeled) = self.labeled.lock() {
            for ((name, label), n) in labeled.iter() {
                let key = match *name {
                    n if n.starts_with("eventhubs_") => "partition",
                    n if n.starts_with("sqs_") => "queue",
                    n if n.starts_with("sink_") => "sink",
                    _ => "label",
                };
                out.push(Sample {
                    name: (*name).to_string(),
                    labels: vec![(key, label.clone())],
                    value: *n,
                    gauge: GAUGES.contains(name),
                });
            }
        }
        out
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let mut typed = std::collections::BTreeSet::new();
        let mut samples = self.samples();
        // A metric's samples must be contiguous in the exposition.
        samples.sort_by(|a, b| a.name.cmp(&b.name));
        for s in samples {
            let name = if s.gauge {
                format!("auditbridge_{}", s.name)
            } else {
                format!("auditbridge_{}_total", s.name)
            };
            if typed.insert(name.clone()) {
                let kind = if s.gauge { "gauge" } else { "counter" };
                let _ = writeln!(text, "# TYPE {name} {kind}");
            }
            let _ = writeln!(text, "{name}{} {}", labels(&s.labels), s.value);
        }
        let (buckets, count, sum) = self.latency.snapshot();
        let name = "auditbridge_end_to_end_latency_seconds";
        let _ = writeln!(text, "# TYPE {name} histogram");
        for (bound, n) in buckets {
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(text, "{name}_sum {sum}");
        let _ = writeln!(text, "{name}_count {count}");
        text
    }
}

fn labels(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        for s in [0.2, 3.0, 7000.0, 100_000.0] {
            h.observe(s);
        }
        let (buckets, count, sum) = h.snapshot();
        let at = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(
            (at(0.5), at(2.5), at(5.0), at(3600.0), at(86400.0)),
            (1, 1, 2, 2, 3)
        );
        assert_eq!(
            count, 4,
            "the observation over the last bound still counts (+Inf)"
        );
        assert!((sum - 107_003.2).abs() < 0.01);
    }

    #[test]
    fn prometheus_families_are_contiguous_and_labelled() {
        let m = Metrics::default();
        m.count_labeled("sink_requests", "splunk", 3);
        m.count("sqs_messages_received", 2);
        m.count_labeled("eventhubs_events_received", "hub/0", 5);
        m.set_labeled("eventhubs_checkpoint_lag_events", "hub/0", 7);
        let text = m.prometheus();
        assert!(text.contains("auditbridge_sink_requests_total{sink=\"splunk\"} 3"));
        assert!(text.contains("auditbridge_sqs_messages_received_total 2"));
        assert!(text.contains("auditbridge_eventhubs_events_received_total{partition=\"hub/0\"} 5"));
        assert!(text.contains("# TYPE auditbridge_eventhubs_checkpoint_lag_events gauge"));
        assert!(text.contains("auditbridge_eventhubs_checkpoint_lag_events{partition=\"hub/0\"} 7"));
    }
}
