//! The `gcp_pubsub` source against the Pub/Sub test endpoint (`tests/common/gcp_server.py`,
//! started by `scripts/test-servers.sh`), through Google's official Rust client
//! unmodified: every message acked once and only after its records were delivered, ack
//! deadlines extended while a slow sink works, nothing acked while a sink fails, bad
//! bodies dead-lettered and acked, and no loss across SIGKILL.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use common::hec::{Behaviour, HecReceiver};
use common::pubsub::{count, entries, publish, stats, stats_until, subscription};
use serde_json::Value;

fn source(subscription: &str, extra: &str) -> String {
    format!(
        "[sources.gcp]\ntype = \"gcp_pubsub\"\nsubscription = \"{subscription}\"\nendpoint = \"http://{}\"\nack_deadline_secs = 10\n{extra}\n",
        common::pubsub::host()
    )
}

fn file_sink(dir: &Path) -> String {
    format!(
        "[sinks.out]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n",
        dir.display()
    )
}

const PIPELINE: &str = "[pipeline]\nformat = \"ecs\"\nshutdown_grace_secs = 10\n";

/// `event.id` of every ECS document in `dir/out.ndjson`.
fn delivered_ids(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("out.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let doc: Value = serde_json::from_str(l).unwrap();
            doc["event"]["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn expected_ids(prefix: &str, n: usize) -> HashSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_entries_are_delivered_once_and_acked_after_delivery() {
    const N: usize = 10_000;
    let sub = subscription("ten-thousand", None).await;
    publish(&sub, &entries("tk", N)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{PIPELINE}{}{}", source(&sub, ""), file_sink(dir.path()));
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let s = stats_until(&sub, 180, |s| count(s, "acked") == N as u64).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    let m = run.metrics;
    let ids = delivered_ids(dir.path());
    assert_eq!(ids.len(), N, "every entry delivered once");
    assert_eq!(
        ids.iter().cloned().collect::<HashSet<_>>(),
        expected_ids("tk", N)
    );
    assert_eq!(count(&s, "redelivered"), 0, "{s}");
    assert_eq!(count(&s, "expired"), 0, "{s}");
    assert_eq!(count(&s, "nacked"), 0, "{s}");
    assert_eq!(count(&s, "unacked"), 0, "{s}");
    assert_eq!(m.named("pubsub_messages_received"), N as u64);
    assert_eq!(m.named("pubsub_messages_acked"), N as u64);
    assert_eq!(Metrics::get(&m.batches_acked), N as u64);
    assert_eq!(Metrics::get(&m.records_decoded), N as u64);
    let end = stats(&sub).await;
    assert_eq!(count(&end, "stale_acks"), 0, "{end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_slower_than_the_ack_deadline_gets_extensions_not_redeliveries() {
    const N: usize = 40;
    // Splunk makes its indexer acknowledgements true 15 s after each request: longer
    // than the 10 s ack deadline of every message. The sink polls acks at its default
    // interval, as users run it.
    let hec = HecReceiver::start(Behaviour::acking_after(Duration::from_secs(15))).await;
    let sub = subscription("slow-sink", None).await;
    publish(&sub, &entries("slow", N)).await;
    let config = format!(
        "{PIPELINE}{}[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"good-token\"\n",
        source(&sub, ""),
        hec.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let start = Instant::now();
    while hec.events().len() < N {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "HEC never got the events"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let early = stats(&sub).await;
    assert_eq!(
        count(&early, "acked"),
        0,
        "Splunk holds the events but has not acknowledged them: nothing is acked yet ({early})"
    );
    let s = stats_until(&sub, 60, |s| count(s, "acked") == N as u64).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    assert!(
        count(&s, "extensions") >= N as u64,
        "deadlines extended: {s}"
    );
    assert_eq!(count(&s, "expired"), 0, "no deadline ran out: {s}");
    assert_eq!(count(&s, "redelivered"), 0, "{s}");
    assert_eq!(hec.events().len(), N, "each event sent to Splunk once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_acks_nothing_and_every_message_comes_back() {
    const N: usize = 30;
    let hec = HecReceiver::start(Behaviour::default()).await;
    let sub = subscription("failing-sink", None).await;
    publish(&sub, &entries("fail", N)).await;
    let dir = tempfile::tempdir().unwrap();
    // A revoked token: the sink faults, holds the work, and ends the run after 8 s.
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\nshutdown_grace_secs = 2\nsink_fault_timeout_secs = 8\n{}[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"wrong-token\"\nretry_max_delay_secs = 1\n",
        source(&sub, ""),
        hec.url()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let err = run
        .task
        .await
        .unwrap()
        .expect_err("a lasting fault ends the run");
    assert_eq!(err.exit_code(), 3, "{err}");
    let failed = stats(&sub).await;
    assert_eq!(count(&failed, "acked"), 0, "nothing acked: {failed}");
    assert_eq!(count(&failed, "unacked"), N as u64, "{failed}");
    assert_eq!(run.metrics.named("pubsub_messages_acked"), 0);
    assert!(hec.events().is_empty());

    // The next run, with a working sink, is given every message again and delivers it.
    let config = format!("{PIPELINE}{}{}", source(&sub, ""), file_sink(dir.path()));
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let s = stats_until(&sub, 60, |s| count(s, "acked") == N as u64).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    assert!(count(&s, "redelivered") >= N as u64, "{s}");
    let ids: HashSet<String> = delivered_ids(dir.path()).into_iter().collect();
    assert_eq!(ids, expected_ids("fail", N));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_dead_lettered_and_acked() {
    let sub = subscription("bad-bodies", None).await;
    let mut bodies = entries("ok", 3);
    bodies.push(b"{\"insertId\": \"cut".to_vec());
    // A Log Router sink whose filter lets other logs through: an entry with another
    // payload type, and one with a JSON payload.
    bodies.push(
        br#"{"insertId":"dp-1","logName":"projects/p/logs/dataproc.googleapis.com%2Fevents","timestamp":"2026-11-30T10:00:00Z","protoPayload":{"@type":"type.googleapis.com/google.cloud.dataproc.v1.SomeEvent"}}"#
            .to_vec(),
    );
    bodies.push(
        br#"{"insertId":"k8s-1","logName":"projects/p/logs/container.googleapis.com%2Fcluster-autoscaler-visibility","timestamp":"2026-11-30T10:00:00Z","jsonPayload":{"decision":"scaleUp"}}"#
            .to_vec(),
    );
    publish(&sub, &bodies).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{PIPELINE}{}{}", source(&sub, ""), file_sink(dir.path()));
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let s = stats_until(&sub, 60, |s| count(s, "acked") == 6).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    assert_eq!(count(&s, "redelivered"), 0, "{s}");
    let ids: HashSet<String> = delivered_ids(dir.path()).into_iter().collect();
    assert_eq!(ids, expected_ids("ok", 3));
    let letters: Vec<Value> = std::fs::read_to_string(dir.path().join("dlq.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{letters:?}");
    let mut kinds: Vec<&str> = letters
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["gcp_not_audit_log", "invalid_json", "unrecognised"],
        "{letters:?}"
    );
    for l in &letters {
        assert!(
            l["origin"]
                .as_str()
                .unwrap()
                .starts_with("pub/sub message "),
            "the dead letter names its message: {l}"
        );
    }
    assert_eq!(run.metrics.dead_letter_reasons().values().sum::<u64>(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_loses_nothing() {
    const N: usize = 5_000;
    const OUTSTANDING: usize = 200;
    let sub = subscription("sigkill", None).await;
    publish(&sub, &entries("kill", N)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{PIPELINE}[dead_letter]\npath = \"{}/dlq.ndjson\"\n{}{}",
            dir.path().display(),
            source(&sub, &format!("max_outstanding_messages = {OUTSTANDING}")),
            file_sink(dir.path())
        ),
    )
    .unwrap();
    let start = |log: &str| common::spawn_run(&config, &dir.path().join(log));
    let mut first = start("first.log");
    stats_until(&sub, 120, |s| count(s, "acked") >= 1_000).await;
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();
    let at_kill = stats(&sub).await;
    assert!(
        count(&at_kill, "unacked") > 0,
        "killed mid-stream: {at_kill}"
    );

    let mut second = start("second.log");
    let s = stats_until(&sub, 180, |s| count(s, "unacked") == 0).await;
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
    let delivered = delivered_ids(dir.path());
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    let missing: Vec<_> = expected_ids("kill", N)
        .difference(&unique)
        .take(5)
        .cloned()
        .collect();
    assert!(missing.is_empty(), "lost, e.g. {missing:?}");
    assert_eq!(unique.len(), N);
    // Delivered twice at most: what was outstanding at the kill, and the acks still
    // buffered in the client (sent every 100 ms).
    let duplicates = delivered.len() - N;
    assert!(
        duplicates <= OUTSTANDING + 100,
        "{duplicates} duplicates exceed the outstanding window: {s}"
    );
    assert!(
        count(&s, "redelivered") > 0,
        "the killed run's leases expired and came back: {s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_subscription_makes_readiness_name_the_source() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{PIPELINE}[admin]\naddress = \"127.0.0.1:{port}\"\n{}{}",
        source("projects/auditbridge-test/subscriptions/never-created", ""),
        file_sink(dir.path())
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 30, |status, body| {
        status == 503 && body.contains("pulling from")
    })
    .await;
    let state: Value = serde_json::from_str(&body).unwrap();
    let said = state["source.gcp"].as_str().unwrap();
    assert!(
        said.starts_with(
            "pulling from projects/auditbridge-test/subscriptions/never-created failed"
        ),
        "{body}"
    );
    assert!(said.contains("not found"), "{body}");
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    assert!(run.metrics.named("pubsub_stream_errors") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscription_is_ready() {
    let port = common::free_port();
    let sub = subscription("idle", None).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{PIPELINE}[admin]\naddress = \"127.0.0.1:{port}\"\n{}{}",
        source(&sub, ""),
        file_sink(dir.path())
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 30, |status, _| status == 200).await;
    assert!(body.contains("\"source.gcp\":\"ok\""), "{body}");
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    assert!(
        count(&stats(&sub).await, "streams") >= 1,
        "a stream was opened"
    );
    assert_eq!(run.metrics.named("pubsub_stream_errors"), 0);
}
