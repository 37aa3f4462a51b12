//! The metrics contract (README, "Metrics") for every source × sink pair: each source
//! (file, SQS, Event Hubs) feeds the Kafka, Splunk HEC and file sinks at once, and the
//! Prometheus text then holds the same counts with the same meaning whatever the pair.

mod common;

use std::path::Path;
use std::time::Duration;

use auditbridge::metrics::Metrics;
use common::aws::{clients, endpoint, ids, queue_with_dlq, send_api_calls};
use common::eventhubs::Hub;
use common::hec::{Behaviour, HecReceiver};
use common::kafka::{broker, consume, create_topics, unique_topic};
use common::sample;
use serde_json::{json, Value};

/// The three sinks every source feeds.
struct Sinks {
    hec: HecReceiver,
    topic: String,
    out: std::path::PathBuf,
}

impl Sinks {
    async fn start(dir: &Path) -> Sinks {
        let topic = unique_topic("ab-contract");
        create_topics(&[&topic], 1).await;
        Sinks {
            hec: HecReceiver::start(Behaviour::default()).await,
            topic,
            out: dir.join("out.ndjson"),
        }
    }

    fn toml(&self) -> String {
        format!(
            "[sinks.kafka]\ntype = \"kafka\"\nbrokers = \"{}\"\ntopics = {{ ecs = \"{}\" }}\n[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"good-token\"\n[sinks.out]\ntype = \"file\"\npath = \"{}\"\n",
            broker(),
            self.topic,
            self.hec.url(),
            self.out.display()
        )
    }

    /// Every sink holds each record once.
    async fn hold(&self, records: usize) {
        let lines = std::fs::read_to_string(&self.out).unwrap();
        assert_eq!(lines.lines().count(), records);
        assert_eq!(self.hec.events().len(), records);
        let consumed = consume(
            &self.topic,
            records,
            Duration::from_secs(2),
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(consumed.len(), records);
    }
}

fn pipeline(port: u16) -> String {
    format!("[pipeline]\nformat = \"ecs\"\nshutdown_grace_secs = 10\n[admin]\naddress = \"127.0.0.1:{port}\"\n")
}

/// What the contract says after `inputs` inputs holding `records` records went to the
/// three sinks, and nothing failed.
fn check(text: &str, inputs: u64, records: u64) {
    let value = |series: &str| {
        sample(text, series).unwrap_or_else(|| panic!("{series} is missing:\n{text}")) as u64
    };
    assert_eq!(value("auditbridge_inputs_received_total"), inputs);
    assert_eq!(value("auditbridge_records_decoded_total"), records);
    assert_eq!(value("auditbridge_batches_acknowledged_total"), inputs);
    assert_eq!(
        value("auditbridge_batches_negatively_acknowledged_total"),
        0
    );
    assert_eq!(value("auditbridge_records_dead_lettered_total"), 0);
    assert_eq!(
        value("auditbridge_records_emitted_total"),
        3 * records,
        "records delivered, counted per sink"
    );
    for sink in ["kafka", "splunk", "out"] {
        assert_eq!(
            value(&format!(
                "auditbridge_sink_records_delivered_total{{sink=\"{sink}\"}}"
            )),
            records,
            "sink {sink}"
        );
    }
    for sink in ["kafka", "splunk", "out"] {
        assert!(
            value(&format!(
                "auditbridge_sink_requests_total{{sink=\"{sink}\"}}"
            )) >= 1
        );
        assert!(value(&format!("auditbridge_sink_bytes_total{{sink=\"{sink}\"}}")) > 0);
    }
    assert_eq!(value("auditbridge_inputs_in_flight"), 0);
    assert_eq!(value("auditbridge_batches_in_flight"), 0);
    assert_eq!(
        value("auditbridge_end_to_end_latency_seconds_count"),
        records,
        "each record measured once, when every sink had it"
    );
}

/// Scrape `/metrics` until `done` holds for its text (or panic after 60 s).
async fn scrape_until(port: u16, done: impl Fn(&str) -> bool) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    common::get_until(&url, 60, |_, text| done(text)).await
}

fn settled(inputs: u64) -> impl Fn(&str) -> bool {
    move |text| {
        sample(text, "auditbridge_batches_acknowledged_total") == Some(inputs as f64)
            && sample(text, "auditbridge_batches_in_flight") == Some(0.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_to_kafka_hec_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Sinks::start(dir.path()).await;
    let (text, _) = common::replayed_corpus(100);
    let lines: Vec<&str> = text.lines().take(100).collect();
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n")).unwrap();
    let port = common::free_port();
    let config = format!(
        "{}[sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n{}",
        pipeline(port),
        dir.path().display(),
        sinks.toml()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    run.task.await.unwrap().unwrap();
    // The admin endpoint has closed with the run; /metrics serves this same text.
    check(&run.metrics.prometheus(), 1, 100);
    sinks.hold(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_source_to_kafka_hec_and_file() {
    let (sqs, _) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 3).await;
    send_api_calls(&sqs, &queue, &ids("contract", 3)).await;
    let dir = tempfile::tempdir().unwrap();
    let sinks = Sinks::start(dir.path()).await;
    let port = common::free_port();
    let config = format!(
        "{}[sources.q]\ntype = \"sqs\"\nqueue_url = \"{queue}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nwait_time_secs = 1\n{}",
        pipeline(port),
        endpoint(),
        sinks.toml()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let text = scrape_until(port, settled(3)).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    check(&text, 3, 3);
    assert_eq!(
        sample(&text, "auditbridge_sqs_messages_received_total"),
        Some(3.0)
    );
    assert_eq!(Metrics::get(&run.metrics.batches_nacked), 0);
    sinks.hold(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eventhubs_source_to_kafka_hec_and_file() {
    let samples: Vec<Value> = std::fs::read_to_string(common::repo(
        "samples/entra/panther-entra-diagnostic.ndjson",
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let hub = Hub::start("contract", 1).await;
    let bodies = (0..4).map(|e| {
        let records: Vec<Value> = (0..5)
            .map(|r| {
                let mut rec = samples[(e * 5 + r) % samples.len()].clone();
                rec["properties"]["id"] = json!(format!("contract-e{e}-r{r}"));
                rec
            })
            .collect();
        serde_json::to_vec(&json!({ "records": records })).unwrap()
    });
    hub.append(0, bodies);
    let dir = tempfile::tempdir().unwrap();
    let sinks = Sinks::start(dir.path()).await;
    let port = common::free_port();
    let config = format!(
        "{}[sources.entra]\ntype = \"eventhubs\"\ncustom_endpoint = \"{}\"\ncheckpoint_interval_secs = 1\nupdate_interval_secs = 1\n[sources.entra.auth]\nmethod = \"connection_string\"\nconnection_string = \"{}\"\n[sources.entra.checkpoint_store]\ntype = \"file\"\ndir = \"{}/checkpoints\"\n{}",
        pipeline(port),
        hub.endpoint(),
        hub.connection_string(),
        dir.path().display(),
        sinks.toml()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let text = scrape_until(port, settled(4)).await;
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
    check(&text, 4, 20);
    assert_eq!(
        sample(
            &text,
            "auditbridge_eventhubs_events_received_total{partition=\"contract/0\"}"
        ),
        Some(4.0)
    );
    sinks.hold(20).await;
}
