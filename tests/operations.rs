//! Operating auditbridge: the admin endpoint (health, Prometheus metrics), OTLP export,
//! the dedup window, and the container image's Dockerfile.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditbridge::metrics::{Metrics, CONTRACT};
use common::hec::{Behaviour, HecReceiver};
use common::sample;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_health_during_a_replay_follow_the_contract() {
    // The receiver holds its acks for 4 s: the replay is decoded and sent, not yet
    // acknowledged, while the endpoint is scraped.
    let hec = HecReceiver::start(Behaviour::acking_after(Duration::from_secs(4))).await;
    let dir = tempfile::tempdir().unwrap();
    let (text, records) = common::replayed_corpus(2_000);
    std::fs::write(dir.path().join("in.ndjson"), text).unwrap();
    let port = common::free_port();
    let config = format!(
        r#"[pipeline]
format = "ecs"
[admin]
address = "127.0.0.1:{port}"
[sources.replay]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.splunk]
type = "splunk_hec"
endpoint = "{url}"
token = "good-token"
"#,
        dir = dir.path().display(),
        url = hec.url(),
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let base = format!("http://127.0.0.1:{port}");
    wait_until("every record decoded", 30, || {
        Metrics::get(&run.metrics.records_decoded) == records as u64
    })
    .await;
    let (status, live) = get(&format!("{base}/health/live")).await;
    assert_eq!((status, live.as_str()), (200, "ok\n"));
    let (status, ready) = get(&format!("{base}/health/ready")).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready.trim(), r#"{"sink.splunk":"ok","source.replay":"ok"}"#);
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&text, "auditbridge_inputs_received_total"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "auditbridge_records_decoded_total"),
        Some(records as f64)
    );
    assert_eq!(
        sample(&text, "auditbridge_records_dead_lettered_total"),
        Some(0.0)
    );
    assert!(
        sample(&text, "auditbridge_batches_in_flight").unwrap() >= 1.0,
        "{text}"
    );
    assert!(sample(&text, r#"auditbridge_sink_requests_total{sink="splunk"}"#).unwrap() >= 1.0);
    assert!(sample(&text, r#"auditbridge_sink_bytes_total{sink="splunk"}"#).unwrap() > 0.0);
    assert!(text.contains("# TYPE auditbridge_end_to_end_latency_seconds histogram"));
    run.task.await.unwrap().unwrap();
    assert_eq!(Metrics::get(&run.metrics.records_emitted), records as u64);
    // After the acks: every record was measured, and none is in flight.
    let text = run.metrics.prometheus();
    assert_eq!(
        sample(&text, "auditbridge_end_to_end_latency_seconds_count"),
        Some(records as f64)
    );
    assert_eq!(sample(&text, "auditbridge_batches_in_flight"), Some(0.0));
    // Each family is typed once and every name is in the documented contract.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        let bare = name
            .trim_start_matches("auditbridge_")
            .trim_end_matches("_total");
        assert!(
            CONTRACT.iter().any(|(n, _)| *n == bare)
                || bare == "end_to_end_latency_seconds"
                || bare.starts_with("hec_")
                || bare.starts_with("sqs_")
                || bare.starts_with("eventhubs_")
                || bare.starts_with("cloudtrail_"),
            "{name} is not in the contract"
        );
        assert_eq!(text.matches(line).count(), 1, "{line} repeated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_reports_a_source_that_cannot_connect() {
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[admin]
address = "127.0.0.1:{port}"
[sources.trail]
type = "sqs"
queue_url = "http://127.0.0.1:1/000000000000/nowhere"
endpoint = "http://127.0.0.1:1"
region = "us-east-1"
wait_time_secs = 1
[sinks.out]
type = "file"
path = "{dir}/out.ndjson"
"#,
        dir = dir.path().display()
    );
    let run = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let body = common::readiness_until(port, 60, |status, body| {
        status == 503 && body.contains("receiving from")
    })
    .await;
    assert!(body.contains("source.trail"), "{body}");
    let (status, _) = get(&format!("http://127.0.0.1:{port}/health/live")).await;
    assert_eq!(status, 200);
    run.stop.send(true).unwrap();
    run.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_drops_a_replayed_files_records_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let (text, records) = common::replayed_corpus(1_000);
    std::fs::write(dir.path().join("in.ndjson"), text).unwrap();
    let config = format!(
        r#"[dedup]
state_path = "{dir}/dedup.state"
[sources.replay]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.out]
type = "file"
path = "{dir}/out.ndjson"
"#,
        dir = dir.path().display()
    );
    let dlq = dir.path().join("dlq.ndjson");
    let first = common::run_pipeline(&config, &dlq).await;
    assert_eq!(Metrics::get(&first.records_emitted), records as u64);
    assert_eq!(Metrics::get(&first.records_deduplicated), 0);
    let out = || std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let written = out();
    let second = common::run_pipeline(&config, &dlq).await;
    assert_eq!(Metrics::get(&second.records_decoded), records as u64);
    assert_eq!(Metrics::get(&second.records_deduplicated), records as u64);
    assert_eq!(Metrics::get(&second.records_emitted), 0);
    assert_eq!(
        Metrics::get(&second.batches_acked),
        1,
        "the file is still acknowledged"
    );
    assert_eq!(out(), written, "nothing written the second time");
}

/// What the OTLP receiver got: (path, content type, body).
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

async fn otlp_receiver() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let r = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let r = Arc::clone(&r);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let r = Arc::clone(&r);
                        async move {
                            let path = req.uri().path().to_string();
                            let kind = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            r.lock().unwrap().push((
                                path,
                                kind,
                                String::from_utf8_lossy(&body).into_owned(),
                            ));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(hyper::body::Bytes::from_static(b"{}")),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_sends_spans_and_metrics_to_a_collector() {
    let (addr, received) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"[telemetry]
otlp_endpoint = "http://{addr}"
otlp_protocol = "http/json"
export_interval_secs = 1
[sources.replay]
type = "file"
paths = ["{sample}"]
[sinks.out]
type = "file"
path = "{dir}/out.ndjson"
"#,
        sample = common::repo("samples/cloudtrail/stratus-aws.persistence.iam-backdoor-user.json")
            .display(),
        dir = dir.path().display()
    );
    let metrics = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let decoded = Metrics::get(&metrics.records_decoded);
    assert!(decoded > 0);
    let got = received.lock().unwrap().clone();
    let by_path: HashMap<&str, Vec<&(String, String, String)>> =
        got.iter().fold(HashMap::new(), |mut m, r| {
            m.entry(r.0.as_str()).or_default().push(r);
            m
        });
    let traces = by_path.get("/v1/traces").expect("no trace export arrived");
    assert!(traces.iter().all(|t| t.1 == "application/json"));
    assert!(traces.iter().any(|t| t.2.contains("auditbridge.input")
        && t.2.contains("auditbridge.ack.status")
        && t.2.contains("delivered")));
    let exported = by_path
        .get("/v1/metrics")
        .expect("no metric export arrived");
    let last: serde_json::Value = serde_json::from_str(&exported.last().unwrap().2).unwrap();
    let text = last.to_string();
    assert!(text.contains("\"auditbridge.records.decoded\""), "{text}");
    assert!(text.contains(&format!("\"asInt\":\"{decoded}\"")), "{text}");
}

#[test]
fn dockerfile_builds_the_binary_and_runs_it_unprivileged() {
    let text = std::fs::read_to_string(common::repo("Dockerfile")).unwrap();
    let froms: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build");
    for image in &froms {
        let (_, tag) = image.split_once(':').expect("base image without a tag");
        assert!(!tag.is_empty() && tag != "latest", "{image} is not pinned");
    }
    // The image ships the profile-guided build: the binary the script leaves behind.
    let crate_name = env!("CARGO_PKG_NAME");
    assert!(text.contains("RUN scripts/build-pgo.sh"), "builds with PGO");
    assert!(
        text.contains(&format!(
            "COPY --from=build /src/target/pgo/{crate_name} /usr/local/bin/{crate_name}"
        )),
        "copies the profile-guided binary"
    );
    let script = std::fs::read_to_string(common::repo("scripts/build-pgo.sh")).unwrap();
    assert!(script.contains(r#"out="$PWD/target/pgo""#));
    assert!(script.contains(&format!(
        r#"cp "$out/use/$host/release/{crate_name}" "$out/{crate_name}""#
    )));
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    let user = user.trim_start_matches("USER ").trim();
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(text.contains("STOPSIGNAL SIGTERM"));
    // The exposed port is the admin port of the image's default config, and the health
    // check asks that endpoint.
    let config: toml::Table =
        toml::from_str(&std::fs::read_to_string(common::repo("config/container.toml")).unwrap())
            .unwrap();
    let address = config["admin"]["address"]
        .as_str()
        .expect("the container config enables the admin endpoint");
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    assert!(text.contains(&format!("EXPOSE {port}")), "EXPOSE {port}");
    let health = text
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK");
    let next = text
        .lines()
        .skip_while(|l| !l.starts_with("HEALTHCHECK"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        health.contains(&format!("127.0.0.1:{port}"))
            || next.contains(&format!("127.0.0.1:{port}")),
        "{health}"
    );
    assert!(text.contains("VOLUME"), "state on a volume");
}
