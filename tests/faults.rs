//! Sink faults under the supervisor, against the real servers: a refused token, a missing
//! topic and an unwritable path pause intake, make readiness name the sink, hold the
//! work inside instead of failing it, and end the run with exit code 3 once they outlast
//! `pipeline.sink_fault_timeout_secs`; a fault that is mended in time costs nothing.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use auditbridge::pipeline::PipelineError;
use common::aws::{
    clients, endpoint, ids, queue_counts, queue_with_dlq, send_api_calls, ONE_RECEIVER,
};
use common::hec::{Behaviour, HecReceiver, Token};
use common::kafka::{broker, unique_topic};

/// `n` distinct CloudTrail records as NDJSON in `dir/in.ndjson`.
fn input(dir: &Path, n: usize) {
    let (text, _) = common::replayed_corpus(n);
    let lines: Vec<&str> = text.lines().take(n).collect();
    std::fs::write(dir.join("in.ndjson"), lines.join("\n")).unwrap();
}

fn file_source(dir: &Path) -> String {
    format!(
        "[sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n",
        dir.display()
    )
}

fn hec_sink(hec: &HecReceiver, token: &str) -> String {
    format!(
        "[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"{token}\"\nretry_max_delay_secs = 1\n",
        hec.url()
    )
}

fn pipeline(port: u16, fault_secs: u64) -> String {
    format!(
        "[pipeline]\nformat = \"ecs\"\nshutdown_grace_secs = 5\nsink_fault_timeout_secs = {fault_secs}\n[admin]\naddress = \"127.0.0.1:{port}\"\n"
    )
}

fn dead_letters(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("dlq.ndjson"))
        .unwrap_or_default()
        .lines()
        .count()
}

fn expect_fault(result: Result<(), PipelineError>, sink: &str, reason: &str) {
    let err = result.expect_err("a lasting fault ends the run with an error");
    assert_eq!(err.exit_code(), 3, "{err}");
    match &err {
        PipelineError::SinkFault {
            sink: s, reason: r, ..
        } => {
            assert_eq!(s, sink);
            assert!(r.contains(reason), "{r}");
        }
        other => panic!("expected a sink fault, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_hec_token_pauses_intake_names_the_sink_and_ends_the_run() {
    let hec = HecReceiver::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 300);
    let port = common::free_port();
    let config = format!(
        "{}{}{}",
        pipeline(port, 4),
        file_source(dir.path()),
        hec_sink(&hec, "wrong-token")
    );
    let started = Instant::now();
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 10, |status, body| {
        status == 503 && body.contains("sink.splunk")
    })
    .await;
    assert!(
        body.contains("fault: the collector refused the token"),
        "{body}"
    );
    let result = run.task.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(4));
    expect_fault(result, "splunk", "the collector refused the token");
    let m = run.metrics;
    assert_eq!(Metrics::get(&m.batches_acked), 0);
    assert_eq!(Metrics::get(&m.batches_nacked), 1);
    assert!(m.labeled("sink_faults", "splunk") >= 2, "{}", m.summary());
    assert!(hec.state.lock().unwrap().events.is_empty());
    assert_eq!(dead_letters(dir.path()), 0, "a sink fault is not bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_enabled_during_the_fault_resumes_and_delivers_everything_once() {
    let mut behaviour = Behaviour::default();
    behaviour
        .tokens
        .insert("rotating-token".into(), Token::Disabled);
    let hec = HecReceiver::start(behaviour).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 300);
    let port = common::free_port();
    let config = format!(
        "{}{}{}",
        pipeline(port, 60),
        file_source(dir.path()),
        hec_sink(&hec, "rotating-token")
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    common::readiness_until(port, 10, |status, body| {
        status == 503 && body.contains("token")
    })
    .await;
    hec.behaviour
        .lock()
        .unwrap()
        .tokens
        .insert("rotating-token".into(), Token::Ack);
    run.task.await.unwrap().unwrap();
    let m = run.metrics;
    assert_eq!(Metrics::get(&m.batches_acked), 1);
    assert!(m.labeled("sink_faults", "splunk") >= 1);
    let events = hec.events();
    assert_eq!(
        events.len(),
        300,
        "every record once: refused requests index nothing"
    );
    assert_eq!(m.labeled("sink_records_delivered", "splunk"), 300);
    assert_eq!(dead_letters(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_kafka_topic_is_a_fault_not_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 100);
    let topic = unique_topic("ab-missing");
    let port = common::free_port();
    let config = format!(
        "{}{}[sinks.kafka]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = {{ ecs = \"{topic}\" }}\n",
        pipeline(port, 3),
        file_source(dir.path()),
        broker()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 20, |status, body| {
        status == 503 && body.contains("sink.kafka")
    })
    .await;
    assert!(
        body.contains(&format!("topic `{topic}` does not exist")),
        "{body}"
    );
    expect_fault(run.task.await.unwrap(), "kafka", "does not exist");
    assert_eq!(Metrics::get(&run.metrics.batches_nacked), 1);
    assert_eq!(dead_letters(dir.path()), 0, "a sink fault is not bad input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_file_sink_is_a_fault_not_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 50);
    let port = common::free_port();
    let config = format!(
        "{}{}[sinks.out]\ntype = \"file\"\npath = \"/dev/full\"\n",
        pipeline(port, 3),
        file_source(dir.path()),
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 10, |status, body| {
        status == 503 && body.contains("sink.out")
    })
    .await;
    assert!(body.contains("cannot write to /dev/full"), "{body}");
    expect_fault(run.task.await.unwrap(), "out", "No space left on device");
    assert_eq!(dead_letters(dir.path()), 0);
}

/// A sink that faults (a refused HEC token, a missing Kafka topic, an unwritable file):
/// its TOML, its name, words of its fault reason, and the receiver to keep alive.
async fn faulty_sink(kind: &str) -> (String, &'static str, &'static str, Option<HecReceiver>) {
    match kind {
        "hec" => {
            let hec = HecReceiver::start(Behaviour::default()).await;
            let sink = hec_sink(&hec, "wrong-token");
            (sink, "splunk", "refused the token", Some(hec))
        }
        "kafka" => (
            format!(
                "[sinks.kafka]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = {{ ecs = \"{}\" }}\n",
                broker(),
                unique_topic("ab-missing")
            ),
            "kafka",
            "does not exist",
            None,
        ),
        _ => (
            "[sinks.out]\ntype = \"file\"\npath = \"/dev/full\"\n".to_string(),
            "out",
            "No space left on device",
            None,
        ),
    }
}

/// SQS → a faulted sink: each message is received once, kept invisible for the whole
/// fault, never deleted, never moved to the queue's dead-letter queue.
async fn sqs_messages_are_held(kind: &str) {
    let (sqs, _) = clients().await;
    // With a redrive policy of 2 receives, one more receive would move a message.
    let (queue, _, dlq) = queue_with_dlq(&sqs, 2).await;
    send_api_calls(&sqs, &queue, &ids("held", 3)).await;
    let (sink, name, reason, _hec) = faulty_sink(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        "{}[sources.q]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nwait_time_secs = 1\nvisibility_timeout_secs = 4\nretry_delay_secs = 1\n{ONE_RECEIVER}{sink}",
        pipeline(port, 12),
        endpoint(),
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    common::readiness_until(port, 20, |status, body| {
        status == 503 && body.contains(&format!("sink.{name}"))
    })
    .await;
    expect_fault(run.task.await.unwrap(), name, reason);
    let m = run.metrics;
    assert_eq!(
        m.named("sqs_messages_received"),
        3,
        "each message received once: intake paused for the whole fault"
    );
    assert!(
        m.named("sqs_visibility_extensions") >= 3,
        "the held messages were kept invisible: {}",
        m.summary()
    );
    assert_eq!(m.named("sqs_messages_deleted"), 0);
    assert_eq!(dead_letters(dir.path()), 0);
    let (visible, hidden) = queue_counts(&sqs, &queue).await;
    assert_eq!(visible + hidden, 3, "the messages wait in their queue");
    let (visible, hidden) = queue_counts(&sqs, &dlq).await;
    assert_eq!(visible + hidden, 0, "nothing went to the dead-letter queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_messages_held_by_a_refused_hec_token_never_reach_the_dead_letter_queue() {
    sqs_messages_are_held("hec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_messages_held_by_a_missing_kafka_topic_never_reach_the_dead_letter_queue() {
    sqs_messages_are_held("kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_messages_held_by_an_unwritable_file_never_reach_the_dead_letter_queue() {
    sqs_messages_are_held("file").await;
}

/// Event Hubs → a healthy file sink and a faulted one: the events are held by the
/// faulted sink, not failed and resent (into the healthy sink too), and nothing is
/// checkpointed that the faulted sink did not take.
async fn event_hubs_events_are_held(kind: &str) {
    let samples: Vec<serde_json::Value> = std::fs::read_to_string(common::repo(
        "samples/entra/panther-entra-diagnostic.ndjson",
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let hub = common::eventhubs::Hub::start("held", 1).await;
    hub.append(
        0,
        (0..3).map(|e| {
            let mut rec = samples[e % samples.len()].clone();
            rec["properties"]["id"] = serde_json::json!(format!("held-{e}"));
            serde_json::to_vec(&serde_json::json!({ "records": [rec] })).unwrap()
        }),
    );
    let (sink, name, reason, _hec) = faulty_sink(kind).await;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        "{}[sources.entra]\ntype = \"eventhubs\"\ncustom_endpoint = \"{}\"\ncheckpoint_interval_secs = 1\nupdate_interval_secs = 1\n[sources.entra.auth]\nmethod = \"connection_string\"\nconnection_string = \"{}\"\n[sources.entra.checkpoint_store]\ntype = \"file\"\ndir = \"{}/checkpoints\"\n[sinks.healthy]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n{sink}",
        pipeline(port, 6),
        hub.endpoint(),
        hub.connection_string(),
        dir.path().display(),
        dir.path().display(),
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    common::readiness_until(port, 30, |status, body| {
        status == 503 && body.contains(&format!("sink.{name}"))
    })
    .await;
    // Well into the fault, before the run gives up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        run.metrics.labeled("eventhubs_redeliveries", "held/0"),
        0,
        "held by the sink, not failed and resent: {}",
        run.metrics.summary()
    );
    // What was read before intake paused reached the healthy sink once; the rest waits
    // in the hub.
    let out = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap_or_default();
    let mut ids: Vec<&str> = out.lines().collect();
    let read = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), read, "no record twice in the healthy sink");
    assert!(
        (1..=3).contains(&read),
        "{read} records in the healthy sink"
    );
    assert_eq!(
        run.metrics.labeled("eventhubs_events_received", "held/0") as usize,
        read,
        "nothing read past the pause but what the healthy sink got"
    );
    expect_fault(run.task.await.unwrap(), name, reason);
    assert_eq!(
        run.metrics
            .labeled("eventhubs_checkpoints_written", "held/0"),
        0,
        "nothing checkpointed that the faulted sink did not take"
    );
    assert_eq!(dead_letters(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_events_held_by_a_refused_hec_token_are_not_resent() {
    event_hubs_events_are_held("hec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_events_held_by_a_missing_kafka_topic_are_not_resent() {
    event_hubs_events_are_held("kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_events_held_by_an_unwritable_file_are_not_resent() {
    event_hubs_events_are_held("file").await;
}

/// The record with id `id` as its source delivers it: an EventBridge CloudTrail event
/// for SQS, an Entra sign-in record in a diagnostic envelope for Event Hubs. A `big` one
/// carries a 150 KB user agent (under SQS's 256 KiB message limit).
fn message(source: &str, id: &str, big: bool) -> Vec<u8> {
    let agent = if big {
        "x".repeat(150_000)
    } else {
        "aws-cli/2".into()
    };
    let body = match source {
        "sqs" => {
            let mut call = common::aws::api_call(id);
            call["detail"]["userAgent"] = agent.into();
            call
        }
        _ => serde_json::json!({ "records": [{
            "time": "2024-01-01T00:00:00Z",
            "category": "SignInLogs",
            "operationName": "Sign-in activity",
            "tenantId": "tenant-1",
            "properties": {"id": id, "userAgent": agent, "status": {"errorCode": 0}},
        }]}),
    };
    serde_json::to_vec(&body).unwrap()
}

/// A long-running source ("sqs" or "eventhubs") holding one message per body.
struct Upstream {
    source: &'static str,
    toml: String,
    /// The SQS client and the queue's dead-letter queue.
    sqs: Option<(aws_sdk_sqs::Client, String)>,
    hub: Option<common::eventhubs::Hub>,
    name: String,
}

impl Upstream {
    async fn start(source: &'static str, name: &str, bodies: &[Vec<u8>], dir: &Path) -> Self {
        let mut up = Upstream {
            source,
            toml: String::new(),
            sqs: None,
            hub: None,
            name: name.to_string(),
        };
        if source == "sqs" {
            let (sqs, _) = clients().await;
            let (queue, _, dlq) = queue_with_dlq(&sqs, 2).await;
            for body in bodies {
                sqs.send_message()
                    .queue_url(&queue)
                    .message_body(String::from_utf8(body.clone()).unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            up.toml = format!(
                "[sources.q]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nwait_time_secs = 1\nvisibility_timeout_secs = 4\nretry_delay_secs = 1\n{ONE_RECEIVER}",
                endpoint()
            );
            up.sqs = Some((sqs, dlq));
        } else {
            let hub = common::eventhubs::Hub::start(name, 1).await;
            hub.append(0, bodies.to_vec());
            up.toml = format!(
                "[sources.entra]\ntype = \"eventhubs\"\ncustom_endpoint = \"{}\"\ncheckpoint_interval_secs = 1\nupdate_interval_secs = 1\n[sources.entra.auth]\nmethod = \"connection_string\"\nconnection_string = \"{}\"\n[sources.entra.checkpoint_store]\ntype = \"file\"\ndir = \"{}/checkpoints\"\n",
                hub.endpoint(),
                hub.connection_string(),
                dir.display(),
            );
            up.hub = Some(hub);
        }
        up
    }

    /// Wait until `n` inputs are acknowledged (and, for SQS, deleted), then stop the run;
    /// it must end cleanly.
    async fn settle(&self, run: common::Running, n: u64) -> std::sync::Arc<Metrics> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Metrics::get(&run.metrics.batches_acked) < n
            || (self.source == "sqs" && run.metrics.named("sqs_messages_deleted") < n)
        {
            assert!(Instant::now() < deadline, "{}", run.metrics.summary());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        run.stop.send(true).unwrap();
        run.task.await.unwrap().expect("the run ends cleanly");
        run.metrics
    }

    /// Nothing came back from upstream: no SQS message in the dead-letter queue, no
    /// Event Hubs event resent.
    async fn nothing_came_back(&self, m: &Metrics) {
        if let Some((sqs, dlq)) = &self.sqs {
            assert_eq!(m.named("sqs_messages_returned"), 0, "{}", m.summary());
            let (visible, hidden) = queue_counts(sqs, dlq).await;
            assert_eq!(visible + hidden, 0, "nothing went to the dead-letter queue");
        } else {
            let partition = format!("{}/0", self.name);
            assert_eq!(m.labeled("eventhubs_redeliveries", &partition), 0);
            assert!(m.labeled("eventhubs_checkpoints_written", &partition) >= 1);
        }
    }
}

/// Through a 6 s storm of busy replies: transient, so readiness stays (degraded),
/// nothing is dead-lettered or comes back from upstream, and each record reaches the
/// collector once.
async fn through_a_busy_collector(source: &'static str) {
    let name = common::aws::unique(&format!("busy-{source}"));
    let ids = ids(&name, 3);
    let bodies: Vec<Vec<u8>> = ids.iter().map(|id| message(source, id, false)).collect();
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start(source, &name, &bodies, dir.path()).await;
    let hec = HecReceiver::start(Behaviour {
        busy_until: Some(Instant::now() + Duration::from_secs(6)),
        ..Behaviour::default()
    })
    .await;
    let port = common::free_port();
    let config = format!(
        "{}{}{}",
        pipeline(port, 2),
        up.toml,
        hec_sink(&hec, "good-token")
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 20, |status, body| {
        status == 200 && body.contains("degraded: HTTP 503")
    })
    .await;
    assert!(body.contains("sink.splunk"), "{body}");
    // The storm outlasts sink_fault_timeout_secs: a transient outage is not a fault.
    let m = up.settle(run, 3).await;
    assert_eq!(m.labeled("sink_faults", "splunk"), 0);
    assert!(m.labeled("sink_retries", "splunk") > 0);
    assert!(hec.state.lock().unwrap().busy_replies > 0);
    let mut got: Vec<String> = hec.events().iter().map(common::hec::raw_id).collect();
    got.sort();
    assert_eq!(got, ids, "each record once");
    assert_eq!(dead_letters(dir.path()), 0);
    up.nothing_came_back(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_through_a_busy_collector_is_degraded_not_faulted_and_delivers_once() {
    through_a_busy_collector("sqs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_through_a_busy_collector_is_degraded_not_faulted_and_delivers_once() {
    through_a_busy_collector("eventhubs").await;
}

/// Three records through `source` into a sink ("hec" or "kafka") whose destination
/// refuses the second for good: the collector finds it invalid, the broker too large.
/// That record is dead-lettered with the destination's reason, the two others are
/// delivered once, every input is acknowledged upstream, and nothing comes back.
async fn one_record_refused(source: &'static str, sink: &str) {
    let name = common::aws::unique(&format!("refused-{source}-{sink}"));
    let ids = ids(&name, 3);
    let bodies: Vec<Vec<u8>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| message(source, id, sink == "kafka" && i == 1))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let up = Upstream::start(source, &name, &bodies, dir.path()).await;
    let topic = unique_topic("ab-refused");
    let mut hec = None;
    let (sink_toml, sink_name, kind, why) = if sink == "hec" {
        let receiver = HecReceiver::start(Behaviour {
            poison: Some(ids[1].clone()),
            ..Behaviour::default()
        })
        .await;
        let toml = hec_sink(&receiver, "good-token");
        hec = Some(receiver);
        (toml, "splunk", "hec_rejected", "Invalid data format")
    } else {
        common::kafka::create_topics(&[&topic], 1).await;
        let toml = format!(
            "[sinks.kafka]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = {{ ecs = \"{topic}\" }}\nproperties = {{ \"message.max.bytes\" = \"100000\" }}\n",
            broker()
        );
        (toml, "kafka", "kafka_rejected", "too large")
    };
    let port = common::free_port();
    let config = format!("{}{}{sink_toml}", pipeline(port, 60), up.toml);
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let m = up.settle(run, 3).await;
    assert_eq!(Metrics::get(&m.batches_nacked), 0);
    assert_eq!(m.labeled("sink_records_rejected", sink_name), 1);
    assert_eq!(m.labeled("sink_records_delivered", sink_name), 2);
    assert_eq!(m.labeled("sink_faults", sink_name), 0);
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("dlq.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["kind"], kind);
    let reason = letters[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("sink `{sink_name}`: ")) && reason.contains(why),
        "{reason}"
    );
    let original = letters[0]["original"].as_str().unwrap();
    assert!(
        original.contains(&ids[1]),
        "the letter holds the refused record"
    );
    let mut delivered: Vec<String> = match &hec {
        Some(h) => h.events().iter().map(common::hec::raw_id).collect(),
        None => common::kafka::consume(&topic, 2, Duration::from_secs(2), Duration::from_secs(60))
            .await
            .into_iter()
            .map(|m| m.key.unwrap())
            .collect(),
    };
    delivered.sort();
    assert_eq!(
        delivered,
        [ids[0].clone(), ids[2].clone()],
        "the others, once each"
    );
    up.nothing_came_back(&m).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_with_one_event_the_collector_refuses_dead_letters_it_and_deletes_every_message() {
    one_record_refused("sqs", "hec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_with_one_message_the_broker_refuses_dead_letters_it_and_deletes_every_message() {
    one_record_refused("sqs", "kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_with_one_event_the_collector_refuses_dead_letters_it_and_checkpoints() {
    one_record_refused("eventhubs", "hec").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_hubs_with_one_message_the_broker_refuses_dead_letters_it_and_checkpoints() {
    one_record_refused("eventhubs", "kafka").await;
}

/// Stopped while the collector still owes its indexer acknowledgement: the grace period
/// ends with the input unsettled, nothing is acknowledged, and the run says so with exit
/// code 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_still_unsettled_when_the_grace_period_ends_exits_4() {
    let hec = HecReceiver::start(Behaviour::acking_after(Duration::from_secs(3600))).await;
    let dir = tempfile::tempdir().unwrap();
    input(dir.path(), 10);
    let port = common::free_port();
    let config = format!(
        "{}{}{}",
        pipeline(port, 60),
        file_source(dir.path()),
        hec_sink(&hec, "good-token")
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while hec.events().len() < 10 {
        assert!(Instant::now() < deadline, "{}", run.metrics.summary());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = Instant::now();
    run.stop.send(true).unwrap();
    let err = run
        .task
        .await
        .unwrap()
        .expect_err("an input left unsettled is not a clean end");
    assert!(
        stopped.elapsed() >= Duration::from_secs(5),
        "the grace period (5 s) was waited out"
    );
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(
        err.to_string()
            .contains("pipeline.shutdown_grace_secs = 5) ended with 1 inputs not yet settled"),
        "{err}"
    );
    assert_eq!(Metrics::get(&run.metrics.batches_acked), 0);
    assert_eq!(dead_letters(dir.path()), 0);
}
