//! At-least-once under a crash: auditbridge killed with SIGKILL in the middle of a
//! 50,000-record SQS → Kafka replay, then restarted. Every record reaches Kafka; the
//! duplicates are bounded by what can be in flight: (max_in_flight_messages + one delete
//! batch of 10) × records per message.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::aws::{clients, endpoint, gzip, queue_counts, queue_with_dlq, unique};
use common::kafka::{broker, consume, create_topics, unique_topic};
use serde_json::{json, Value};

const OBJECTS: usize = 50;
const PER_OBJECT: usize = 1_000;
const IN_FLIGHT_MESSAGES: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_replay_then_restart_loses_nothing() {
    let (sqs, s3) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 10).await;
    let bucket = unique("trail");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (text, _) = common::replayed_corpus(OBJECTS * PER_OBJECT);
    let records: Vec<Value> = text
        .lines()
        .take(OBJECTS * PER_OBJECT)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: HashSet<String> = records
        .iter()
        .map(|r| r["eventID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), OBJECTS * PER_OBJECT);
    for (i, chunk) in records.chunks(PER_OBJECT).enumerate() {
        let key = format!("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/27/part-{i}.json.gz");
        let body = gzip(json!({ "Records": chunk }).to_string().as_bytes());
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        let note = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]});
        sqs.send_message()
            .queue_url(&queue)
            .message_body(note.to_string())
            .send()
            .await
            .unwrap();
    }
    let topic = unique_topic("no-loss");
    create_topics(&[&topic], 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[pipeline]
format = "ecs"
shutdown_grace_secs = 20
[dead_letter]
path = "{dir}/dlq.ndjson"
[sources.trail]
type = "sqs"
queue_url = "{queue}"
endpoint = "{endpoint}"
region = "us-east-1"
receivers = 1
max_messages = 4
wait_time_secs = 1
visibility_timeout_secs = 6
retry_delay_secs = 1
max_in_flight_messages = {IN_FLIGHT_MESSAGES}
[sinks.kafka]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
"#,
            dir = dir.path().display(),
            endpoint = endpoint(),
            broker = broker(),
        ),
    )
    .unwrap();
    let start = |log: &str| common::spawn_run(&config, &dir.path().join(log));

    let mut first = start("first.log");
    // Kill it once part of the queue is done and more is in flight.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (visible, in_flight) = queue_counts(&sqs, &queue).await;
        if visible + in_flight <= (OBJECTS as u64) * 2 / 3 && in_flight > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the first run made no progress");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();

    let mut second = start("second.log");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if queue_counts(&sqs, &queue).await == (0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restart did not drain the queue"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());

    let got = consume(
        &topic,
        OBJECTS * PER_OBJECT,
        Duration::from_secs(5),
        Duration::from_secs(120),
    )
    .await;
    let delivered: Vec<String> = got
        .iter()
        .map(|m| {
            let doc: Value = serde_json::from_slice(&m.payload).unwrap();
            doc["event"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    let unique_ids: HashSet<String> = delivered.iter().cloned().collect();
    let missing: Vec<_> = ids.difference(&unique_ids).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {missing:?}",
        ids.len() - unique_ids.len()
    );
    let duplicates = delivered.len() - unique_ids.len();
    eprintln!(
        "delivered {} messages for {} records: {duplicates} duplicates",
        delivered.len(),
        ids.len()
    );
    // In flight at the kill: up to max_in_flight_messages being worked on, plus one
    // DeleteMessageBatch (10) of delivered messages not yet deleted.
    let bound = (IN_FLIGHT_MESSAGES + 10) * PER_OBJECT;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates exceed the in-flight window ({bound})"
    );
}
