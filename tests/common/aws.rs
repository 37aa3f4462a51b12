//! Helpers for tests against the local AWS API server (moto) that
//! `scripts/test-servers.sh` starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;
use aws_config::BehaviorVersion;
use aws_sdk_sqs::types::QueueAttributeName;

/// moto answers concurrent ReceiveMessage calls without a lock, so two receive loops can
/// both be handed the same message (getmoto/moto#519), as real SQS may do now and then.
/// Tests that count receipts or deliveries exactly give their source one loop.
pub const ONE_RECEIVER: &str = "receivers = 1\n";

pub fn endpoint() -> String {
    std::env::var("AUDITBRIDGE_TEST_AWS_ENDPOINT").expect(
        "AUDITBRIDGE_TEST_AWS_ENDPOINT is not set: run the suite with scripts/test.sh, which starts moto",
    )
}

pub fn unique(prefix: &str) -> String {
    super::kafka::unique_topic(prefix).to_lowercase()
}

pub async fn clients() -> (aws_sdk_sqs::Client, aws_sdk_s3::Client) {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .load()
        .await;
    let s3 = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .build();
    (
        aws_sdk_sqs::Client::new(&shared),
        aws_sdk_s3::Client::from_conf(s3),
    )
}

/// A queue with a dead-letter queue after `max_receive` receives: (url, arn, dlq url).
pub async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    max_receive: u32,
) -> (String, String, String) {
    let dlq = sqs
        .create_queue()
        .queue_name(unique("dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = arn(sqs, &dlq).await;
    let policy =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive}"}}"#);
    let url = sqs
        .create_queue()
        .queue_name(unique("q"))
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = arn(sqs, &url).await;
    (url, queue_arn, dlq)
}

pub async fn arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// (visible, in flight) messages.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let n = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(&QueueAttributeName::ApproximateNumberOfMessages),
        n(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Send one SQS message per id, each a CloudTrail `CreateUser` record as EventBridge
/// delivers it (decoded from the body, no object to fetch), with that `eventID`.
/// An IAM `CreateUser` CloudTrail record with event id `id`, as EventBridge delivers it.
pub fn api_call(id: &str) -> serde_json::Value {
    serde_json::json!({
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "detail": {
            "eventTime": "2024-01-01T00:00:00Z",
            "eventSource": "iam.amazonaws.com",
            "eventName": "CreateUser",
            "eventID": id,
        }
    })
}

pub async fn send_api_calls(sqs: &aws_sdk_sqs::Client, queue: &str, ids: &[String]) {
    for id in ids {
        let body = api_call(id);
        sqs.send_message()
            .queue_url(queue)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
}

/// `prefix-0`, `prefix-1`, … : `n` distinct event ids.
pub fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Run a pipeline until `done(metrics)` holds (or `timeout`), then stop it like SIGTERM
/// would and wait for it to drain. Panics on timeout; returns the metrics and how the
/// pipeline ended.
pub async fn run_until(
    config: &str,
    dead_letters: &std::path::Path,
    timeout: Duration,
    done: impl Fn(&Metrics) -> bool,
) -> (
    Arc<Metrics>,
    Result<(), auditbridge::pipeline::PipelineError>,
) {
    let super::Running {
        metrics,
        stop,
        task: run,
    } = super::start_pipeline(config, dead_letters);
    let start = Instant::now();
    while !done(&metrics) {
        assert!(
            start.elapsed() < timeout,
            "condition not reached within {timeout:?}: {}",
            metrics.summary()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(true).unwrap();
    let result = run.await.unwrap();
    (metrics, result)
}

/// Wire SNS or EventBridge delivery with the test-only Python helper (boto3 from moto's
/// virtualenv).
pub fn wire(args: &[&str]) {
    let python = std::env::var("AUDITBRIDGE_TEST_MOTO_PYTHON")
        .expect("AUDITBRIDGE_TEST_MOTO_PYTHON is not set: run the suite with scripts/test.sh");
    let status = std::process::Command::new(python)
        .arg(super::repo("tests/fixtures/aws/moto_wiring.py"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "moto_wiring.py {args:?}");
}
