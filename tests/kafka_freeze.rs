//! The broker frozen for 30 s in the middle of a run (SIGSTOP, then SIGCONT: its
//! in-memory storage would not survive a restart): nothing is lost, nothing is
//! acknowledged early, and the pipeline recovers without a restart. Its own test binary,
//! because freezing the shared broker would stall the other Kafka tests.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use common::kafka::{broker, consume, create_topics, unique_topic};

fn signal(pid: &str, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap()
        .success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_frozen_for_thirty_seconds_loses_nothing() {
    let pid = std::env::var("AUDITBRIDGE_TEST_KAFKA_PID")
        .expect("AUDITBRIDGE_TEST_KAFKA_PID is not set: run the suite with scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let (text, n) = common::replayed_corpus(20_000);
    // Many inputs, so some are acknowledged before the freeze and some after.
    let lines: Vec<&str> = text.lines().collect();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let files = lines.chunks(1000).len() as u64;
    for (i, chunk) in lines.chunks(1000).enumerate() {
        std::fs::write(
            inputs.join(format!("in-{i:03}.ndjson")),
            chunk.join(
                "
",
            ),
        )
        .unwrap();
    }
    let topic = unique_topic("ab-freeze");
    create_topics(&[&topic], 2).await;
    let config = format!(
        r#"[pipeline]
format = "ecs"
batch_size = 200
max_in_flight_batches = 4
[sources.in]
type = "file"
paths = ["{dir}/in"]
[sinks.kafka]
type = "kafka"
brokers = "{broker}"
topics = {{ ecs = "{topic}" }}
linger_ms = 50
"#,
        dir = dir.path().display(),
        broker = broker(),
    );
    let dlq = dir.path().join("dlq.ndjson");
    let run = tokio::spawn(async move { common::run_pipeline(&config, &dlq).await });

    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&pid, "-STOP");
    let frozen_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    signal(&pid, "-CONT");
    let metrics = run.await.unwrap();
    assert!(
        frozen_at.elapsed() >= Duration::from_secs(30),
        "the pipeline waited for the broker"
    );
    assert_eq!(Metrics::get(&metrics.batches_acked), files);
    assert_eq!(Metrics::get(&metrics.batches_nacked), 0);

    let consumed = consume(&topic, n, Duration::from_secs(3), Duration::from_secs(180)).await;
    let mut ids: Vec<String> = consumed.iter().map(|m| m.key.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every record arrived");
    assert_eq!(
        consumed.len(),
        n,
        "the idempotent producer wrote no duplicate"
    );
}
