//! The Kafka sink against a real Kafka-compatible broker (Tansu, started by
//! `scripts/test-servers.sh`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use auditbridge::metrics::Metrics;
use common::kafka::{broker, consume, create_topics, unique_topic};
use serde_json::Value;

fn counts<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_exactly_once_and_identical_to_the_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (text, n) = common::replayed_corpus(100_000);
    std::fs::write(dir.path().join("in.ndjson"), text).unwrap();
    let topic = unique_topic("ab-ecs");
    create_topics(&[&topic], 3).await;
    let config = format!(
        r#"[pipeline]
format = "ecs"
[sources.in]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.file]
type = "file"
path = "{dir}/out.ndjson"
[sinks.kafka]
type = "kafka"
brokers = "{broker}"
topics = {{ ecs = "{topic}" }}
"#,
        dir = dir.path().display(),
        broker = broker(),
    );
    let metrics = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    assert_eq!(Metrics::get(&metrics.batches_acked), 1);
    assert_eq!(Metrics::get(&metrics.batches_nacked), 0);
    assert_eq!(Metrics::get(&metrics.dead_lettered), 0);

    let consumed = consume(&topic, n, Duration::from_secs(3), Duration::from_secs(300)).await;
    assert_eq!(consumed.len(), n, "every record once");
    let file = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let from_file = counts(file.lines().map(|l| l.as_bytes().to_vec()));
    let from_kafka = counts(consumed.iter().map(|m| m.payload.clone()));
    assert_eq!(from_file.len(), n);
    assert!(
        from_kafka == from_file,
        "Kafka payloads are byte-identical to the file sink's lines"
    );

    let keys = counts(consumed.iter().map(|m| m.key.clone().unwrap()));
    assert_eq!(keys.len(), n, "keys are the records' unique ids");
    for m in consumed.iter().take(1000) {
        let doc: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(m.key.as_deref(), doc["event"]["id"].as_str());
        assert_eq!(m.headers["auditbridge.format"], "ecs");
        assert_eq!(m.headers["auditbridge.schema"], "ecs/9.4.0");
        assert_eq!(m.headers["auditbridge.source"], "aws.cloudtrail");
        match doc["threat"]["technique"]["id"].as_array() {
            Some(_) => assert!(m.headers["auditbridge.techniques"].starts_with('T')),
            None => assert!(!m.headers.contains_key("auditbridge.techniques")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_ocsf_and_findings_routed_to_their_topics_keyed_by_account() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_topic("ab-route");
    let (ecs, ocsf, findings) = (
        format!("{prefix}.ecs"),
        format!("{prefix}.ocsf"),
        format!("{prefix}.ocsf_finding"),
    );
    create_topics(&[&ecs, &ocsf, &findings], 1).await;
    let samples = common::repo("samples/cloudtrail");
    let config = format!(
        r#"[sources.in]
type = "file"
paths = ["{samples}"]
[sinks.kafka]
type = "kafka"
brokers = "{broker}"
topic = "{prefix}.{{format}}"
key = "account"
compression = "zstd"
"#,
        samples = samples.display(),
        broker = broker(),
    );
    let metrics = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let records = Metrics::get(&metrics.records_decoded) as usize;
    assert_eq!(records, 174);
    let settle = Duration::from_secs(2);
    let ecs_docs = consume(&ecs, records, settle, Duration::from_secs(60)).await;
    let ocsf_docs = consume(&ocsf, records, settle, Duration::from_secs(60)).await;
    assert_eq!((ecs_docs.len(), ocsf_docs.len()), (records, records));
    let tagged = ecs_docs
        .iter()
        .filter(|m| m.headers.contains_key("auditbridge.techniques"))
        .count();
    assert!(tagged > 0);
    let finding_docs = consume(&findings, tagged, settle, Duration::from_secs(60)).await;
    assert_eq!(finding_docs.len(), tagged, "one finding per tagged record");
    for m in &ocsf_docs {
        let doc: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(m.key.as_deref(), doc["cloud"]["account"]["uid"].as_str());
        assert_eq!(m.headers["auditbridge.schema"], "ocsf/1.8.0");
    }
    for m in &finding_docs {
        let doc: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(doc["class_uid"], 2004);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_dead_lettered_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_topic("ab-size");
    create_topics(&[&topic], 1).await;
    let mut input = String::new();
    for i in 0..10 {
        input.push_str(&format!(
            r#"{{"eventTime":"2024-03-01T10:00:0{i}Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","eventID":"small-{i}"}}"#
        ));
        input.push('\n');
    }
    let big = "x".repeat(300_000);
    input.push_str(&format!(
        r#"{{"eventTime":"2024-03-01T10:00:10Z","eventSource":"s3.amazonaws.com","eventName":"PutObject","eventID":"big","requestParameters":{{"blob":"{big}"}}}}"#
    ));
    input.push('\n');
    std::fs::write(dir.path().join("in.ndjson"), input).unwrap();
    let dlq = dir.path().join("dlq.ndjson");
    let config = format!(
        r#"[pipeline]
format = "ecs"
[sources.in]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.kafka]
type = "kafka"
brokers = "{broker}"
topics = {{ ecs = "{topic}" }}
properties = {{ "message.max.bytes" = "100000" }}
"#,
        dir = dir.path().display(),
        broker = broker(),
    );
    let metrics = common::run_pipeline(&config, &dlq).await;
    assert_eq!(
        Metrics::get(&metrics.batches_acked),
        1,
        "dead-lettering on purpose still acknowledges"
    );
    let consumed = consume(&topic, 10, Duration::from_secs(2), Duration::from_secs(60)).await;
    assert_eq!(consumed.len(), 10);
    let letters: Vec<Value> = std::fs::read_to_string(&dlq)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "kafka_rejected");
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!(
            "sink `kafka`: kafka rejected the message for topic `{topic}`"
        )),
        "{reason}"
    );
    assert!(reason.contains("too large"), "{reason}");
    let original: Value = serde_json::from_str(letters[0]["original"].as_str().unwrap()).unwrap();
    assert_eq!(original["event"]["id"], "big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_sinks_reports_missing_topics() {
    let dir = tempfile::tempdir().unwrap();
    let present = unique_topic("ab-present");
    let missing = unique_topic("ab-missing");
    create_topics(&[&present], 1).await;
    let config = dir.path().join("c.toml");
    let write = |tagged: &str| {
        std::fs::write(
            &config,
            format!(
                "[pipeline]\nformat = \"ecs\"\n[sources.in]\ntype = \"file\"\npaths = [\"samples\"]\n[sinks.kafka]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = {{ ecs = \"{present}\" }}\n{tagged}",
                broker()
            ),
        )
        .unwrap()
    };
    let validate = || common::validate_check_sinks(&config);
    write("");
    let out = validate();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sink `kafka`: reachable"));
    write(&format!("tagged_topic = \"{missing}\"\n"));
    let out = validate();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("sink `kafka`: topic `{missing}` does not exist")),
        "{text}"
    );
}
