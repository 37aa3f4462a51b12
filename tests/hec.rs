//! The Splunk HEC sink against the strict test receiver: exactly-once delivery with
//! indexer acknowledgement, busy storms, ack loss, tokens without acks, partial batches,
//! 413. Refused tokens are in `faults.rs`.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use common::hec::{Behaviour, HecReceiver};
use serde_json::Value;

/// `n` distinct CloudTrail records as NDJSON in `dir/in.ndjson`.
fn input(dir: &Path, n: usize) {
    let (text, _) = common::replayed_corpus(n);
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(dir.join("in.ndjson"), lines.join("\n")).unwrap();
}

fn config(dir: &Path, hec: &HecReceiver, token: &str, extra: &str) -> String {
    format!(
        r#"[pipeline]
format = "ecs"
sink_fault_timeout_secs = 3
[sources.in]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.splunk]
type = "splunk_hec"
endpoint = "{url}"
token = "{token}"
ack_poll_interval_ms = 50
retry_max_delay_secs = 1
{extra}
"#,
        dir = dir.display(),
        url = hec.url(),
    )
}

fn ids(events: &[Value]) -> HashSet<String> {
    // The envelope's `event` is the ECS document, whose `event.id` is the record's id.
    events
        .iter()
        .map(|e| e["event"]["event"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_exactly_once_with_acks() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 10_000);
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "good-token", "indexed_fields = true"),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    let s = hec.state.lock().unwrap();
    assert_eq!(s.events.len(), 10_000);
    assert_eq!(ids(&s.events).len(), 10_000);
    assert!(s.ack_polls > 0);
    let first = &s.events[0];
    assert_eq!(first["sourcetype"], "aws:cloudtrail");
    assert_eq!(first["source"], "auditbridge");
    assert_eq!(first["fields"]["auditbridge_format"], "ecs");
    let ts = chrono::DateTime::parse_from_rfc3339(first["event"]["@timestamp"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (first["time"].as_f64().unwrap() * 1000.0).round() as i64,
        ts.timestamp_millis()
    );
    assert_eq!(m.labeled("sink_records_delivered", "splunk"), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_busy_storm_loses_nothing_and_the_rate_recovers() {
    let behaviour = Behaviour {
        busy_until: Some(Instant::now() + Duration::from_secs(30)),
        ..Behaviour::default()
    };
    let hec = HecReceiver::start(behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 2000);
    let started = Instant::now();
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "good-token", "batch_max_events = 10"),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    let s = hec.state.lock().unwrap();
    assert!(s.busy_replies > 0);
    assert_eq!(ids(&s.events).len(), 2000);
    assert_eq!(
        s.events.len(),
        2000,
        "busy replies index nothing, so nothing is duplicated"
    );
    assert!(m.named("hec_rate_lowered") > 0, "{}", m.summary());
    assert!(m.named("hec_rate_recovered") > 0, "{}", m.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acks_are_resent_after_the_timeout() {
    let behaviour = Behaviour {
        lose_acks: 2,
        ..Behaviour::default()
    };
    let hec = HecReceiver::start(behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 1000);
    let extra = "batch_max_events = 100\nack_timeout_secs = 2";
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "good-token", extra),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    assert_eq!(m.named("hec_ack_timeouts"), 2);
    let s = hec.state.lock().unwrap();
    assert_eq!(ids(&s.events).len(), 1000);
    assert_eq!(
        s.events.len(),
        1200,
        "the two unacknowledged batches of 100 were sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_event_in_a_hundred_is_dead_lettered_the_rest_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 100);
    let text = std::fs::read_to_string(dir.path().join("in.ndjson")).unwrap();
    let poison_id = serde_json::from_str::<Value>(text.lines().nth(42).unwrap()).unwrap()
        ["eventID"]
        .as_str()
        .unwrap()
        .to_string();
    let behaviour = Behaviour {
        poison: Some(poison_id.clone()),
        ..Behaviour::default()
    };
    let hec = HecReceiver::start(behaviour).await;
    let dlq = dir.path().join("dlq.ndjson");
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "good-token", "batch_max_events = 100"),
        &dlq,
    )
    .await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    let s = hec.state.lock().unwrap();
    assert_eq!(s.events.len(), 99);
    assert_eq!(ids(&s.events).len(), 99);
    assert!(!ids(&s.events).contains(&poison_id));
    let letters: Vec<Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "hec_rejected");
    assert_eq!(
        letters[0]["reason"],
        "sink `splunk`: HTTP 400, code 6: Invalid data format"
    );
    let envelope: Value = serde_json::from_str(letters[0]["original"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["event"]["event"]["id"], poison_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_splits_the_batch_until_it_fits() {
    let behaviour = Behaviour {
        max_body: 60_000,
        ..Behaviour::default()
    };
    let hec = HecReceiver::start(behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 500);
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "good-token", ""),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    let s = hec.state.lock().unwrap();
    assert!(s.too_large_replies > 0);
    assert!(m.labeled("sink_splits", "splunk") > 0);
    assert_eq!(s.events.len(), 500);
    assert_eq!(ids(&s.events).len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_acks_needs_allow_without_ack() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 50);
    let (m, result) = common::run_pipeline_result(
        &config(dir.path(), &hec, "noack-token", ""),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(err.exit_code(), 3, "a sink fault");
    assert!(format!("{:#}", anyhow::Error::from(err)).contains("indexer acknowledgement disabled"));
    assert_eq!(Metrics::get(&m.batches_acked), 0);
    assert_eq!(
        hec.events().len(),
        50,
        "sent once; while the token has no acks, tries only ask the ack endpoint"
    );
    let m = common::run_pipeline(
        &config(dir.path(), &hec, "noack-token", "allow_without_ack = true"),
        &dir.path().join("dlq.ndjson"),
    )
    .await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_sinks_probes_health_and_token() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 1);
    for (token, ok, said) in [
        ("good-token", true, "sink `splunk`: reachable"),
        (
            "wrong-token",
            false,
            "sink `splunk`: the collector refused the token",
        ),
        (
            "noack-token",
            false,
            "sink `splunk`: the token has indexer acknowledgement disabled",
        ),
    ] {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, config(dir.path(), &hec, token, "")).unwrap();
        let out = common::validate_check_sinks(&path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.success(), ok, "{token}: {text}");
        assert!(text.contains(said), "{token}: {text}");
        assert!(
            !text.contains(token),
            "the token never appears in the output: {text}"
        );
        assert_eq!(
            hec.state.lock().unwrap().events.len(),
            0,
            "the check sends no data"
        );
    }
}
