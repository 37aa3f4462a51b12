//! Every document built from the shared corpora, pinned by digest: a change that is meant to
//! be invisible (the speed work) must leave each one JSON-equal. The times of processing
//! (`event.created`, `metadata.processed_time`, `_dt`) are left out of the digest, and so is
//! the event time of a record that had none (it is the time of processing then).
//!
//! After a change that is meant to alter the output, write the new digests and review the
//! diff of the file:
//!
//!   AUDITBRIDGE_BLESS=1 cargo test --test corpus_golden

mod common;

use auditbridge::transforms::normalize::OutputFormat;
use common::{gunzip, process, repo, shared};
use serde_json::Value;
use sha2::{Digest, Sha256};

const GOLDEN: &str = "tests/fixtures/golden/corpus-documents.tsv";

fn without_processing_times(mut doc: Value, ingest_timed: bool) -> Value {
    if ingest_timed {
        if let Some(doc) = doc.as_object_mut() {
            for key in ["@timestamp", "time", "time_dt"] {
                doc.remove(key);
            }
        }
    }
    if let Some(event) = doc.get_mut("event").and_then(Value::as_object_mut) {
        event.remove("created");
    }
    if let Some(metadata) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("processed_time");
        metadata.remove("processed_time_dt");
    }
    doc
}

/// One line per document: input, record number, format, the first 16 hex digits of the
/// SHA-256 of its canonical JSON (keys sorted).
fn digests() -> String {
    let inputs = [
        (
            "cloudtrail",
            gunzip(&shared("data/corpus/cloudtrail_real_union.ndjson.gz")),
        ),
        (
            "entra",
            gunzip(&shared("data/corpus/entra_real_union.ndjson.gz")),
        ),
        (
            "insight",
            std::fs::read(repo(
                "tests/fixtures/cloudtrail/aws-docs-insight-events.json",
            ))
            .unwrap(),
        ),
    ];
    let mut out = String::new();
    for (name, bytes) in inputs {
        let processed = process(OutputFormat::Both, &bytes);
        assert!(processed.dead_letters.is_empty(), "{name}");
        for (i, record) in processed.records.iter().enumerate() {
            let docs: Vec<Value> = record
                .outputs
                .iter()
                .map(|o| serde_json::from_slice(&o.body).unwrap())
                .collect();
            let ingest_timed = docs
                .iter()
                .any(|d| d.pointer("/auditbridge/time_source") == Some(&Value::from("ingest")));
            for (output, doc) in record.outputs.iter().zip(docs) {
                let canonical =
                    serde_json::to_string(&without_processing_times(doc, ingest_timed)).unwrap();
                let digest = Sha256::digest(canonical.as_bytes());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                out.push_str(&format!("{name}\t{i}\t{:?}\t{hex}\n", output.format));
            }
        }
    }
    out
}

#[test]
fn every_corpus_document_is_as_pinned() {
    let now = digests();
    let path = repo(GOLDEN);
    if std::env::var_os("AUDITBRIDGE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &now).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap();
    let changed: Vec<_> = pinned
        .lines()
        .zip(now.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("pinned {a}\n   now {b}"))
        .collect();
    assert_eq!(
        pinned.lines().count(),
        now.lines().count(),
        "a different number of documents"
    );
    assert!(
        changed.is_empty(),
        "{} documents changed (AUDITBRIDGE_BLESS=1 to accept on purpose), e.g.\n{}",
        changed.len(),
        changed[..changed.len().min(10)].join("\n")
    );
}

#[test]
fn the_digest_ignores_only_the_processing_times() {
    let a = serde_json::json!({"event": {"created": "1", "id": "x"}, "metadata": {"processed_time": 1, "uid": "u"}});
    let b = serde_json::json!({"event": {"created": "2", "id": "x"}, "metadata": {"processed_time": 2, "uid": "u"}});
    assert_eq!(
        without_processing_times(a.clone(), false),
        without_processing_times(b, false)
    );
    let c = serde_json::json!({"event": {"created": "1", "id": "y"}, "metadata": {"processed_time": 1, "uid": "u"}});
    assert_ne!(
        without_processing_times(a.clone(), false),
        without_processing_times(c, false)
    );
    let timed = |t: &str| serde_json::json!({"@timestamp": t, "time_dt": t, "event": {"id": "x"}});
    assert_ne!(
        without_processing_times(timed("1"), false),
        without_processing_times(timed("2"), false)
    );
    assert_eq!(
        without_processing_times(timed("1"), true),
        without_processing_times(timed("2"), true)
    );
}
