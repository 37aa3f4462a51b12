//! Interoperability with an independently written HEC receiver: lading's `splunk_hec`
//! blackhole (started by `scripts/test-servers.sh`) counts the requests and decompressed
//! bytes it receives, which must equal what auditbridge sent; every batch is acknowledged.

mod common;

use auditbridge::metrics::Metrics;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts lading")
    })
}

/// lading's `requests_received` and `bytes_received` counters.
async fn lading_counters() -> (u64, u64) {
    let text = reqwest::get(env("AUDITBRIDGE_TEST_LADING_METRICS"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains("component_name=\"splunk_hec\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (value("requests_received"), value("bytes_received"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lading_receives_exactly_what_auditbridge_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (text, n) = common::replayed_corpus(20_000);
    std::fs::write(dir.path().join("in.ndjson"), text).unwrap();
    let config = format!(
        r#"[pipeline]
format = "both"
[sources.in]
type = "file"
paths = ["{dir}/in.ndjson"]
[sinks.lading]
type = "splunk_hec"
endpoint = "{url}"
token = "any-token-lading-checks-none"
"#,
        dir = dir.path().display(),
        url = env("AUDITBRIDGE_TEST_LADING_HEC"),
    );
    let (requests_before, bytes_before) = lading_counters().await;
    let m = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let (requests_after, bytes_after) = lading_counters().await;

    assert_eq!(
        Metrics::get(&m.batches_acked),
        1,
        "every batch acknowledged"
    );
    assert_eq!(Metrics::get(&m.records_decoded) as usize, n);
    assert_eq!(
        m.named("hec_acks"),
        m.labeled("sink_requests", "lading"),
        "one ack per request"
    );
    assert_eq!(m.labeled("sink_retries", "lading"), 0);
    let sent_requests = m.labeled("sink_requests", "lading") + m.named("hec_ack_polls");
    let sent_bytes = m.named("hec_body_bytes") + m.named("hec_ack_poll_bytes");
    assert_eq!(requests_after - requests_before, sent_requests);
    assert_eq!(
        bytes_after - bytes_before,
        sent_bytes,
        "lading's decompressed byte count"
    );
    assert!(
        m.named("hec_wire_bytes") < m.named("hec_body_bytes") / 3,
        "bodies were gzipped"
    );
}
