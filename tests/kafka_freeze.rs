//! The broker frozen for 30 s in the middle of a run (SIGSTOP, then SIGCONT: its
//! in-memory storage would not survive a restart), with a file, an SQS and an Event Hubs
//! source feeding it at once: nothing is lost, nothing is acknowledged early, no SQS
//! message goes towards its dead-letter queue, no Event Hubs event is resent, and the
//! pipeline recovers without a restart. The producer queue is held to 1 MiB
//! (`queue_max_bytes`), so the sink also waits for room in it. Its own test binary, because freezing the shared
//! broker would stall the other Kafka tests.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use common::aws::{
    clients, endpoint, ids, queue_counts, queue_with_dlq, send_api_calls, ONE_RECEIVER,
};
use common::kafka::{broker, consume, create_topics, unique_topic};

/// Inputs each long-running source holds.
const QUEUED: usize = 20;

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
    let (sqs, _) = clients().await;
    let (queue, _, sqs_dlq) = queue_with_dlq(&sqs, 2).await;
    let sqs_ids = ids(&unique_topic("freeze-sqs"), QUEUED);
    send_api_calls(&sqs, &queue, &sqs_ids).await;
    let hub_name = unique_topic("freeze-hub");
    let hub = common::eventhubs::Hub::start(&hub_name, 1).await;
    hub.append(
        0,
        (0..QUEUED).map(|i| {
            serde_json::to_vec(&serde_json::json!({ "records": [{
                "time": "2024-01-01T00:00:00Z",
                "category": "SignInLogs",
                "operationName": "Sign-in activity",
                "tenantId": "tenant-1",
                "properties": {"id": format!("{hub_name}-{i}"), "status": {"errorCode": 0}},
            }]}))
            .unwrap()
        }),
    );
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
queue_max_bytes = 1048576
[sources.q]
type = "sqs"
queue_url = "{queue}"
endpoint = "{aws}"
region = "us-east-1"
wait_time_secs = 1
visibility_timeout_secs = 20
{ONE_RECEIVER}[sources.entra]
type = "eventhubs"
custom_endpoint = "{hub_endpoint}"
checkpoint_interval_secs = 1
[sources.entra.auth]
method = "connection_string"
connection_string = "{hub_connection}"
[sources.entra.checkpoint_store]
type = "file"
dir = "{dir}/checkpoints"
"#,
        dir = dir.path().display(),
        broker = broker(),
        aws = endpoint(),
        hub_endpoint = hub.endpoint(),
        hub_connection = hub.connection_string(),
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let inputs = files + 2 * QUEUED as u64;

    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&pid, "-STOP");
    let frozen_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        Metrics::get(&run.metrics.batches_acked) < inputs,
        "not everything was acknowledged before the freeze"
    );
    signal(&pid, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(180);
    while Metrics::get(&run.metrics.batches_acked) < inputs
        || run.metrics.named("sqs_messages_deleted") < QUEUED as u64
    {
        assert!(Instant::now() < deadline, "{}", run.metrics.summary());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    let metrics = run.metrics;
    assert!(
        frozen_at.elapsed() >= Duration::from_secs(30),
        "the pipeline waited for the broker"
    );
    assert_eq!(
        Metrics::get(&metrics.batches_acked),
        inputs,
        "{}",
        metrics.summary()
    );
    assert_eq!(Metrics::get(&metrics.batches_nacked), 0);
    assert_eq!(
        metrics.named("sqs_messages_received"),
        QUEUED as u64,
        "no message came back"
    );
    let (visible, hidden) = queue_counts(&sqs, &sqs_dlq).await;
    assert_eq!(
        visible + hidden,
        0,
        "nothing went to the SQS dead-letter queue"
    );
    assert_eq!(
        metrics.labeled("eventhubs_redeliveries", &format!("{hub_name}/0")),
        0,
        "no event resent"
    );

    let n = n + 2 * QUEUED;
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
