//! The SQS source against a real AWS API server (moto, started by
//! `scripts/test-servers.sh`): every notification shape end to end, deletion only after
//! delivery, visibility held while a slow sink works, failures left to the redrive
//! policy.

mod common;

use std::path::Path;
use std::time::Duration;

use auditbridge::metrics::Metrics;
use aws_sdk_s3::primitives::ByteStream;
use common::aws::{
    clients, endpoint, gzip, queue_counts, queue_with_dlq, run_until, send_api_calls, unique, wire,
    ONE_RECEIVER,
};
use serde_json::Value;

const INVICTUS_FILE: &str = "data/cloudtrail/invictus/CloudTrail/218007301253_CloudTrail_us-east-1_20230710T1230Z_9SJSsrxJ0ChF5VFb.json";

/// Every test here counts receipts, deliveries or dead letters exactly, so the source
/// gets one receive loop: moto hands one message to two concurrent receives now and then
/// (see `common::aws::ONE_RECEIVER`).
fn config(queue: &str, dir: &Path, source_extra: &str, sink_path: &str) -> String {
    format!(
        r#"[pipeline]
format = "ecs"
shutdown_grace_secs = 10
[sources.q]
type = "sqs"
queue_url = "{queue}"
endpoint = "{endpoint}"
region = "us-east-1"
wait_time_secs = 1
visibility_timeout_secs = 30
retry_delay_secs = 1
{ONE_RECEIVER}{source_extra}
[sinks.out]
type = "file"
path = "{sink_path}"
"#,
        endpoint = endpoint(),
        sink_path = if sink_path.is_empty() {
            format!("{}/out.ndjson", dir.display())
        } else {
            sink_path.to_string()
        },
    )
}

fn out_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dlq.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An invictus CloudTrail file (gzip) and its record count.
fn trail_object() -> (Vec<u8>, usize) {
    let raw = std::fs::read(common::shared(INVICTUS_FILE)).unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    (gzip(&raw), v["Records"].as_array().unwrap().len())
}

const KEY: &str = "AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/my logs é+1.json.gz";

async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let b = unique("trail");
    s3.create_bucket().bucket(&b).send().await.unwrap();
    b
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notification_with_spaces_and_unicode_in_the_key() {
    let (sqs, s3) = clients().await;
    let (queue, queue_arn, _) = queue_with_dlq(&sqs, 3).await;
    let b = bucket(&s3).await;
    let notification = aws_sdk_s3::types::NotificationConfiguration::builder()
        .queue_configurations(
            aws_sdk_s3::types::QueueConfiguration::builder()
                .queue_arn(&queue_arn)
                .events(aws_sdk_s3::types::Event::S3ObjectCreated)
                .build()
                .unwrap(),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(&b)
        .notification_configuration(notification)
        .send()
        .await
        .unwrap();
    let (object, n) = trail_object();
    put(&s3, &b, KEY, object).await;
    let dir = tempfile::tempdir().unwrap();
    let (m, result) = run_until(
        &config(&queue, dir.path(), "", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 2,
    )
    .await;
    result.unwrap();
    assert_eq!(out_lines(dir.path()).len(), n);
    assert_eq!(Metrics::get(&m.records_decoded) as usize, n);
    assert_eq!(
        m.skip_reasons().get("s3_test_event"),
        Some(&1),
        "moto's s3:TestEvent counted"
    );
    assert_eq!(m.named("sqs_objects"), 1);
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_wrapped_s3_notification() {
    let (sqs, s3) = clients().await;
    let (queue, queue_arn, _) = queue_with_dlq(&sqs, 3).await;
    let b = bucket(&s3).await;
    wire(&["sns-s3", &b, &queue_arn]);
    let (object, n) = trail_object();
    put(&s3, &b, KEY, object).await;
    let dir = tempfile::tempdir().unwrap();
    let (m, result) = run_until(
        &config(&queue, dir.path(), "", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 2,
    )
    .await;
    result.unwrap();
    assert_eq!(out_lines(dir.path()).len(), n);
    assert_eq!(m.named("sqs_objects"), 1);
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_object_created() {
    let (sqs, s3) = clients().await;
    let (queue, queue_arn, _) = queue_with_dlq(&sqs, 3).await;
    let b = bucket(&s3).await;
    wire(&["eventbridge-s3", &b, &queue_arn]);
    let (object, n) = trail_object();
    put(&s3, &b, KEY, object).await;
    let dir = tempfile::tempdir().unwrap();
    let (m, result) = run_until(
        &config(&queue, dir.path(), "", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 1,
    )
    .await;
    result.unwrap();
    assert_eq!(out_lines(dir.path()).len(), n);
    assert_eq!(m.named("sqs_objects"), 1);
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_record_from_eventbridge_is_decoded_without_a_fetch() {
    let (sqs, _) = clients().await;
    let (queue, queue_arn, _) = queue_with_dlq(&sqs, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let record = r#"{"eventVersion":"1.08","eventTime":"2023-07-10T12:23:05Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventID":"eb-66d008e1","awsRegion":"us-east-1","requestParameters":{"userName":"backdoor"},"recipientAccountId":"123837392027"}"#;
    let path = dir.path().join("record.json");
    std::fs::write(&path, record).unwrap();
    wire(&["eventbridge-record", &queue_arn, path.to_str().unwrap()]);
    let (m, result) = run_until(
        &config(&queue, dir.path(), "", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 1,
    )
    .await;
    result.unwrap();
    let docs = out_lines(dir.path());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["event"]["id"], "eb-66d008e1");
    assert_eq!(docs[0]["rule"]["id"][0], "aws-iam-user-created");
    assert_eq!(m.named("sqs_objects"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_objects_of_three_thousand_records_across_ten_messages() {
    let (sqs, s3) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 3).await;
    let b = bucket(&s3).await;
    let (text, _) = common::replayed_corpus(60_000);
    let lines: Vec<&str> = text.lines().take(60_000).collect();
    let mut keys = Vec::new();
    for (i, chunk) in lines.chunks(3000).enumerate() {
        let key =
            format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/part-{i:02}.json.gz");
        let body = format!("{{\"Records\":[{}]}}", chunk.join(","));
        put(&s3, &b, &key, gzip(body.as_bytes())).await;
        keys.push(key);
    }
    for pair in keys.chunks(2) {
        let body = serde_json::json!({"s3Bucket": b, "s3ObjectKey": pair}).to_string();
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (m, result) = run_until(
        &config(&queue, dir.path(), "fetch_concurrency = 4", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(240),
        |m| m.named("sqs_messages_deleted") >= 10,
    )
    .await;
    result.unwrap();
    let docs = out_lines(dir.path());
    assert_eq!(docs.len(), 60_000);
    let mut ids: Vec<&str> = docs
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60_000, "each record exactly once");
    assert_eq!(m.named("sqs_objects"), 20);
    assert_eq!(m.named("sqs_messages_deleted"), 10);
    assert_eq!(m.named("sqs_messages_returned"), 0);
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

/// An object larger than the 8 MiB held in memory is written to `spool_dir` as it
/// arrives and transformed from there in blocks, and the file is removed once its records
/// are settled; a small object in the same message stays in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_spooled_to_disk_and_removed_once_settled() {
    let (sqs, s3) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 3).await;
    let b = bucket(&s3).await;
    let (text, _) = common::replayed_corpus(12_000);
    let lines: Vec<&str> = text.lines().take(12_000).collect();
    let large = lines[..11_000].join("\n");
    assert!(large.len() > 8 << 20, "{} bytes", large.len());
    let prefix = "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01";
    let keys = [
        format!("{prefix}/large.json"),
        format!("{prefix}/small.json.gz"),
    ];
    put(&s3, &b, &keys[0], large.into_bytes()).await;
    put(
        &s3,
        &b,
        &keys[1],
        gzip(lines[11_000..].join("\n").as_bytes()),
    )
    .await;
    sqs.send_message()
        .queue_url(&queue)
        .message_body(serde_json::json!({"s3Bucket": b, "s3ObjectKey": keys}).to_string())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let (m, result) = run_until(
        &config(
            &queue,
            dir.path(),
            &format!("spool_dir = \"{}\"", spool.display()),
            "",
        ),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(120),
        |m| m.named("sqs_messages_deleted") >= 1,
    )
    .await;
    result.unwrap();
    let docs = out_lines(dir.path());
    let mut ids: Vec<&str> = docs
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (docs.len(), ids.len()),
        (12_000, 12_000),
        "each record once"
    );
    assert_eq!(m.named("sqs_objects"), 2);
    assert_eq!(m.named("sqs_objects_spooled"), 1);
    assert!(letters(dir.path()).is_empty());
    let left: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_slower_than_the_visibility_timeout_gets_extensions_not_duplicates() {
    let (sqs, _) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("slow.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    send_api_calls(&sqs, &queue, &["slow-1".to_string()]).await;
    // The reader opens the pipe only after 10 s: until then the sink cannot write, so the
    // acknowledgement is held more than twice the 4 s visibility timeout.
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        std::fs::read_to_string(reader_path).unwrap()
    });
    let config = config(&queue, dir.path(), "", fifo.to_str().unwrap()).replace(
        "visibility_timeout_secs = 30",
        "visibility_timeout_secs = 4",
    );
    let (m, result) = run_until(
        &config,
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 1,
    )
    .await;
    result.unwrap();
    let written = reader.join().unwrap();
    assert_eq!(written.lines().count(), 1);
    assert!(m.named("sqs_visibility_extensions") >= 2, "{}", m.summary());
    assert_eq!(m.named("sqs_messages_received"), 1, "never redelivered");
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
}

/// Receive once so moto applies the redrive policy, then count the dead-letter queue.
async fn moved_to_dlq(sqs: &aws_sdk_sqs::Client, queue: &str, dlq: &str) -> u64 {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = sqs
        .receive_message()
        .queue_url(queue)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let (visible, hidden) = queue_counts(sqs, dlq).await;
    visible + hidden
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_retried_then_reaches_the_dead_letter_queue() {
    let (sqs, s3) = clients().await;
    let (queue, _, dlq) = queue_with_dlq(&sqs, 2).await;
    let b = bucket(&s3).await;
    let body = serde_json::json!({"s3Bucket": b, "s3ObjectKey": ["AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/gone.json.gz"]}).to_string();
    sqs.send_message()
        .queue_url(&queue)
        .message_body(body)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, result) = run_until(
        &config(&queue, dir.path(), "", ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_returned") >= 2,
    )
    .await;
    result.unwrap();
    assert!(m.named("sqs_object_fetch_failures") >= 2);
    assert_eq!(m.named("sqs_messages_deleted"), 0, "never deleted silently");
    assert_eq!(moved_to_dlq(&sqs, &queue, &dlq).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_keys_test_events_unknown_shapes_and_the_allowlist() {
    let (sqs, s3) = clients().await;
    let (queue, _, _) = queue_with_dlq(&sqs, 5).await;
    let b = bucket(&s3).await;
    let (object, _) = trail_object();
    put(
        &s3,
        &b,
        "AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/a.json.gz",
        object,
    )
    .await;
    let send = |body: String| {
        let sqs = sqs.clone();
        let queue = queue.clone();
        async move {
            sqs.send_message()
                .queue_url(queue)
                .message_body(body)
                .send()
                .await
                .unwrap()
        }
    };
    send(serde_json::json!({"s3Bucket": b, "s3ObjectKey": ["AWSLogs/218007301253/CloudTrail-Digest/us-east-1/2023/07/10/d.json.gz"]}).to_string()).await;
    send(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-01-01T00:00:00Z","Bucket":"x"}"#.to_string()).await;
    send(serde_json::json!({"s3Bucket": "someone-elses-bucket", "s3ObjectKey": ["AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10/a.json.gz"]}).to_string()).await;
    send(serde_json::json!({"s3Bucket": b, "s3ObjectKey": ["AWSLogs/999999999999/CloudTrail/us-east-1/2023/07/10/a.json.gz"]}).to_string()).await;
    send(r#"{"Type":"Notification","Message":"not json"}"#.to_string()).await;
    // CloudTrail records in the message itself (EventBridge): checked by account too.
    let mut allowed = common::aws::api_call("allowed-1");
    allowed["account"] = "218007301253".into();
    allowed["detail"]["recipientAccountId"] = "218007301253".into();
    send(allowed.to_string()).await;
    let mut foreign = common::aws::api_call("foreign-1");
    foreign["account"] = "218007301253".into();
    foreign["detail"]["recipientAccountId"] = "999999999999".into();
    send(foreign.to_string()).await;
    send(common::aws::api_call("anonymous-1").to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("bucket_allowlist = [\"{b}\"]\naccount_allowlist = [\"218007301253\"]");
    let (m, result) = run_until(
        &config(&queue, dir.path(), &extra, ""),
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| {
            m.named("sqs_messages_deleted") >= 7
                && m.dead_letter_reasons().contains_key("sqs_unknown_message")
        },
    )
    .await;
    result.unwrap();
    assert_eq!(m.skip_reasons().get("cloudtrail_digest"), Some(&1));
    assert_eq!(m.skip_reasons().get("s3_test_event"), Some(&1));
    assert_eq!(m.named("sqs_objects"), 0, "nothing was fetched");
    let delivered: Vec<Value> = out_lines(dir.path());
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["event"]["id"], "allowed-1");
    let kinds: Vec<String> = letters(dir.path())
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "not_allowed").count(),
        4,
        "{kinds:?}"
    );
    let reasons: Vec<String> = letters(dir.path())
        .iter()
        .filter(|l| l["kind"] == "not_allowed")
        .map(|l| l["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(reasons.contains(&"account 999999999999 of the EventBridge event is not in account_allowlist; it was not decoded".to_string()), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("the EventBridge event names no account")),
        "{reasons:?}"
    );
    assert!(kinds.iter().any(|k| k == "sqs_unknown_message"));
    let unknown = letters(dir.path())
        .into_iter()
        .find(|l| l["kind"] == "sqs_unknown_message")
        .unwrap();
    assert_eq!(
        unknown["reason"],
        "SNS envelope whose Message is not JSON; left to the queue's redrive policy"
    );
    assert_eq!(
        unknown["original"],
        r#"{"Type":"Notification","Message":"not json"}"#
    );
    assert_eq!(
        m.named("sqs_messages_deleted"),
        7,
        "the unknown message is not deleted"
    );
}

/// Objects that can never be delivered, one over `max_object_bytes` and a gzip bomb past
/// the decompression cap, are dead-lettered with the limit's name and their messages
/// deleted, while a good object between them is delivered: a poison object does not
/// come back again and again, nor reach the queue's dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_objects_are_dead_lettered_and_deleted_while_good_ones_flow() {
    let (sqs, s3) = clients().await;
    let (queue, _, dlq) = queue_with_dlq(&sqs, 2).await;
    let b = bucket(&s3).await;
    let (good, n) = trail_object();
    let objects = [
        ("big.json", vec![b'x'; 60_000]),
        ("good.json.gz", good),
        ("bomb.json.gz", gzip(&[b' '; 2_000_000])),
    ];
    for (name, body) in objects {
        let key = format!("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/{name}");
        put(&s3, &b, &key, body).await;
        sqs.send_message()
            .queue_url(&queue)
            .message_body(serde_json::json!({"s3Bucket": b, "s3ObjectKey": [key]}).to_string())
            .send()
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[limits]\nmax_decompressed_bytes = 500000\n",
        config(&queue, dir.path(), "max_object_bytes = 50000", "")
    );
    let (m, result) = run_until(
        &config,
        &dir.path().join("dlq.ndjson"),
        Duration::from_secs(60),
        |m| m.named("sqs_messages_deleted") >= 3,
    )
    .await;
    result.unwrap();
    assert_eq!(out_lines(dir.path()).len(), n, "the good object, whole");
    let letters = letters(dir.path());
    assert_eq!(letters.len(), 2, "{letters:?}");
    let reason = |name: &str| {
        letters
            .iter()
            .find(|l| l["origin"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no letter for {name}: {letters:?}"))
    };
    let big = reason("big.json");
    assert_eq!(big["kind"], "too_large");
    assert!(big["reason"]
        .as_str()
        .unwrap()
        .starts_with("object holds at least 60000 bytes, over max_object_bytes (50000)"));
    let bomb = reason("bomb.json.gz");
    assert_eq!(bomb["kind"], "too_large");
    assert!(bomb["reason"]
        .as_str()
        .unwrap()
        .contains("limits.max_decompressed_bytes"));
    for letter in &letters {
        assert!(letter.to_string().len() <= (64 << 10) + 1024);
    }
    assert_eq!(m.named("sqs_messages_received"), 3, "nothing came back");
    assert_eq!(m.named("sqs_object_fetch_failures"), 0);
    assert_eq!(queue_counts(&sqs, &queue).await, (0, 0));
    assert_eq!(moved_to_dlq(&sqs, &queue, &dlq).await, 0);
}
