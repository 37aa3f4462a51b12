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
retry_max_delay_secs = 1
{extra}
"#,
        dir = dir.display(),
        url = hec.url(),
    )
}

fn ids(events: &[Value]) -> HashSet<String> {
    // The envelope's `event` is the CloudTrail record (the default `raw` format).
    events
        .iter()
        .map(|e| common::hec::raw_id(&e["event"]))
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
    assert_eq!(first["fields"]["auditbridge_format"], "raw");
    let ts = chrono::DateTime::parse_from_rfc3339(first["event"]["eventTime"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        (first["time"].as_f64().unwrap() * 1000.0).round() as i64,
        ts.timestamp_millis()
    );
    assert_eq!(m.labeled("sink_records_delivered", "splunk"), 10_000);
}

/// The tests here run at the default ack poll interval (1 s). With an interval of an
/// hour, a drained input is still acknowledged: once the sink pauses, waiting ack ids are
/// polled after 50 ms, not at the next interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_input_is_acknowledged_without_waiting_for_the_poll_interval() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 1000);
    let extra = "ack_poll_interval_ms = 3600000
batch_max_events = 100";
    let config = config(dir.path(), &hec, "good-token", extra);
    let dead_letters = dir.path().join("dlq.ndjson");
    let run = common::run_pipeline(&config, &dead_letters);
    let m = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the input was not acknowledged: ack ids wait for the hour-long interval");
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    assert_eq!(m.named("hec_acks"), 10);
    assert_eq!(m.labeled("sink_records_delivered", "splunk"), 1000);
    let s = hec.state.lock().unwrap();
    assert_eq!(ids(&s.events).len(), 1000);
    assert!(
        (1..=10).contains(&s.ack_polls),
        "one query per request at most when every ack is ready at once: {}",
        s.ack_polls
    );
}

/// At the default settings, against a Splunk whose acks take 2 s: once the sink has sent
/// everything, the quick queries back off (50, 100, 200 … ms, up to the 1 s interval)
/// instead of asking every 50 ms until the acks come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_that_take_seconds_get_a_few_queries_not_a_stream() {
    let hec = HecReceiver::start(Behaviour::acking_after(Duration::from_secs(2))).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 1000);
    let config = config(dir.path(), &hec, "good-token", "batch_max_events = 100");
    let m = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    assert_eq!(m.named("hec_acks"), 10);
    assert_eq!(m.named("hec_ack_timeouts"), 0);
    let s = hec.state.lock().unwrap();
    assert_eq!(s.events.len(), 1000);
    // Asked every 50 ms, 2 s of waiting would be 40 queries.
    assert!(
        (2..=12).contains(&s.ack_polls),
        "ack queries while the acks took 2 s: {}",
        s.ack_polls
    );
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
    assert_eq!(envelope["event"]["eventID"], poison_id.as_str());
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

/// The default HEC document is the vendor's record under the sourcetype Splunk's add-ons
/// read, JSON-equal to the input, with the enrichment as indexed fields; ECS documents
/// asked for beside it go under `auditbridge:ecs` and carry the same tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_events_keep_the_vendor_record_and_carry_the_tags_as_indexed_fields() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let samples = common::repo("samples");
    let text = format!(
        r#"[pipeline]
format = "ecs"
[sources.in]
type = "file"
paths = ["{s}/cloudtrail", "{s}/entra"]
[sinks.splunk]
type = "splunk_hec"
endpoint = "{url}"
token = "good-token"
formats = ["raw", "ecs"]
"#,
        s = samples.display(),
        url = hec.url()
    );
    let m = common::run_pipeline(&text, &dir.path().join("dlq.ndjson")).await;
    assert_eq!(Metrics::get(&m.batches_nacked), 0);
    let inputs: Vec<String> = [samples.join("cloudtrail"), samples.join("entra")]
        .iter()
        .flat_map(|p| common::vendor_records(p))
        .map(|r| r.to_string())
        .collect();
    let events = hec.state.lock().unwrap().events.clone();
    let (raw, ecs): (Vec<&Value>, Vec<&Value>) = events
        .iter()
        .partition(|e| e["fields"]["auditbridge_format"] == "raw");
    assert_eq!(raw.len(), inputs.len());
    assert_eq!(ecs.len(), inputs.len());
    // The ECS documents say which techniques each record was tagged with (ECS puts the
    // parent technique in `threat.technique.id`, the sub-technique beside it).
    let tags: std::collections::HashMap<String, Value> = ecs
        .iter()
        .map(|e| {
            assert_eq!(e["sourcetype"], "auditbridge:ecs");
            assert!(e.get("fields").is_none(), "{e}");
            let id = e["event"]["event"]["id"].as_str().unwrap().to_string();
            (id, e["event"]["threat"]["technique"]["id"].clone())
        })
        .collect();
    let mut tagged = 0;
    for e in &raw {
        let record = &e["event"];
        assert!(inputs.contains(&record.to_string()), "{record}");
        let fields = &e["fields"];
        let (sourcetype, dataset) = if record.get("eventID").is_some() {
            ("aws:cloudtrail", "aws.cloudtrail")
        } else {
            (
                "azure:monitor:aad",
                fields["auditbridge_dataset"].as_str().unwrap(),
            )
        };
        assert_eq!(e["sourcetype"], sourcetype, "{e}");
        assert_eq!(fields["auditbridge_dataset"], dataset);
        if let Some(id) = record["eventID"].as_str() {
            let parents: Vec<Value> = fields["mitre_technique"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|t| Value::from(t.as_str().unwrap().split('.').next().unwrap()))
                .collect();
            let techniques = tags[id].as_array().cloned().unwrap_or_default();
            assert_eq!(parents, techniques, "{e}");
            let is_tagged = !techniques.is_empty();
            assert_eq!(
                fields["auditbridge_tagged"],
                if is_tagged { "true" } else { "false" }
            );
            assert_eq!(fields.get("auditbridge_rule").is_some(), is_tagged, "{e}");
            tagged += usize::from(is_tagged);
        }
    }
    assert!(tagged >= 3, "the Stratus samples are tagged: {tagged}");
    let backdoor = raw
        .iter()
        .find(|e| e["event"]["eventName"] == "CreateAccessKey")
        .unwrap();
    assert_eq!(
        backdoor["fields"]["mitre_technique"],
        serde_json::json!(["T1098.001"])
    );
    assert_eq!(backdoor["fields"]["auditbridge_tagged"], "true");
}
