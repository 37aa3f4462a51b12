//! Bad input is dead-lettered with a reason and never stops the good records around it.

mod common;

use std::io::Write;

use auditbridge::config::InsightRoute;
use auditbridge::transforms::normalize::OutputFormat;
use common::{process, repo};
use serde_json::Value;

/// A real record (first record of a Stratus detonation log), as one NDJSON line.
fn good_line() -> String {
    let path = repo("samples/cloudtrail/stratus-aws.persistence.iam-backdoor-user.json");
    let list: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    list[0].to_string()
}

/// Process `bad` between two good records; return the dead letters' kinds and reasons.
fn around(bad: &[u8]) -> Vec<(String, String)> {
    let good = good_line();
    let mut input = Vec::new();
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(bad);
    input.push(b'\n');
    input.extend_from_slice(good.as_bytes());
    input.push(b'\n');
    let out = process(OutputFormat::Both, &input);
    assert_eq!(out.records.len(), 2, "both good records still come out");
    out.dead_letters
        .iter()
        .map(|d| (d.kind.to_string(), d.reason.clone()))
        .collect()
}

#[test]
fn invalid_json_line() {
    let dead = around(b"{\"eventName\": \"CreateUser\", ");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "invalid_json");
    // The parser meets the next line's `{` where a key should be.
    assert_eq!(dead[0].1, "invalid JSON: key must be a string");
}

#[test]
fn records_that_is_not_an_array() {
    let dead = around(b"{\"Records\": 5}");
    assert_eq!(
        dead,
        vec![(
            "invalid_json".to_string(),
            "`Records`/`records` must be an array of records".to_string()
        )]
    );
    let dead = around(b"{\"records\": \"x\"}");
    assert_eq!(dead[0].1, "`Records`/`records` must be an array of records");
}

#[test]
fn wrong_types_name_the_field() {
    let dead = around(
        br#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","eventTime":1688991785}"#,
    );
    assert_eq!(
        dead,
        vec![(
            "wrong_type".to_string(),
            "field `eventTime` must be a string, found a number".to_string()
        )]
    );
    let dead = around(br#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","userIdentity":{"type":"IAMUser","arn":["x"]}}"#);
    assert_eq!(
        dead[0].1,
        "field `userIdentity.arn` must be a string, found an array"
    );
    let dead = around(
        br#"{"category":"SignInLogs","time":"2024-01-01T00:00:00Z","properties":{"status":"ok"}}"#,
    );
    assert_eq!(
        dead[0].1,
        "field `properties.status` must be an object, found a string"
    );
}

#[test]
fn oversized_field_is_refused() {
    let mut bad =
        br#"{"eventName":"CreateUser","eventSource":"iam.amazonaws.com","userAgent":""#.to_vec();
    bad.extend(std::iter::repeat_n(b'a', 50 << 20));
    bad.extend_from_slice(b"\"}");
    let dead = around(&bad);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "too_large");
    assert_eq!(
        dead[0].1,
        format!(
            "record is {} bytes, over the limit of 4194304 (limits.max_record_bytes)",
            bad.len()
        )
    );
}

#[test]
fn non_utf8_is_kept_as_base64() {
    let bad = b"{\"eventName\":\"Create\xff\xfeUser\",\"eventSource\":\"iam.amazonaws.com\"}";
    let good = good_line();
    let input = [good.as_bytes(), b"\n", bad, b"\n"].concat();
    let out = process(OutputFormat::Both, &input);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.dead_letters.len(), 1);
    let letter = out.dead_letters[0].to_json();
    assert_eq!(letter["kind"], "invalid_json");
    assert_eq!(letter["line"], 2);
    assert!(letter.get("original").is_none());
    let encoded = letter["original_base64"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
        bad
    );
}

#[test]
fn truncated_gzip_is_refused_whole() {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for _ in 0..50 {
        enc.write_all(good_line().as_bytes()).unwrap();
        enc.write_all(b"\n").unwrap();
    }
    let gz = enc.finish().unwrap();
    let out = process(OutputFormat::Both, &gz[..gz.len() / 2]);
    assert_eq!(out.records.len(), 0);
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].kind, "invalid_gzip");
    assert!(out.dead_letters[0]
        .reason
        .starts_with("gzip stream is corrupt or truncated"));
    assert_eq!(out.dead_letters[0].bytes.len(), gz.len() / 2);
    let whole = process(OutputFormat::Both, &gz);
    assert_eq!(whole.records.len(), 50);
}

#[test]
fn gzip_bomb_stops_at_the_cap() {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 200_000);
    let mut t = common::transformer(OutputFormat::Both);
    t.limits.max_decompressed_bytes = 16 << 20;
    let out = t.process(
        &gz,
        &auditbridge::event::Origin::Inline {
            name: "bomb".into(),
        },
    );
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].kind, "too_large");
}

#[test]
fn unknown_shapes_and_scalars() {
    let dead = around(br#"{"hello":"world"}"#);
    assert_eq!(dead[0].0, "unrecognised");
    let dead = around(b"42");
    assert_eq!(
        dead[0].1,
        "expected a JSON object or array at the top level"
    );
    let dead = around(b"[1]");
    assert_eq!(dead[0].1, "expected a JSON object, found a number");
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let depth = 100_000;
    let bad = [
        br#"{"eventName":"X","eventSource":"s","requestParameters":"#.as_slice(),
        &vec![b'['; depth],
        &vec![b']'; depth],
        b"}",
    ]
    .concat();
    let dead = around(&bad);
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].1.contains("recursion limit exceeded"),
        "{}",
        dead[0].1
    );
}

#[test]
fn digests_are_counted_not_decoded() {
    let digest = br#"{"awsAccountId":"123456789012","digestStartTime":"2023-07-10T11:00:00Z","digestEndTime":"2023-07-10T12:00:00Z","logFiles":[]}"#;
    let metrics = std::sync::Arc::new(auditbridge::metrics::Metrics::default());
    let t = auditbridge::transforms::Transformer::new(
        OutputFormat::Both,
        common::enrichment(),
        metrics.clone(),
    );
    let out = t.process(
        digest,
        &auditbridge::event::Origin::Inline {
            name: "digest".into(),
        },
    );
    assert!(out.records.is_empty() && out.dead_letters.is_empty());
    assert_eq!(metrics.skip_reasons().get("cloudtrail_digest"), Some(&1));
}

#[test]
fn insight_events_follow_their_routing() {
    let insight = std::fs::read(repo(
        "tests/fixtures/cloudtrail/aws-docs-insight-events.json",
    ))
    .unwrap();
    let origin = auditbridge::event::Origin::Inline {
        name: "insight".into(),
    };
    let run = |route: InsightRoute| {
        let metrics = std::sync::Arc::new(auditbridge::metrics::Metrics::default());
        let mut t = auditbridge::transforms::Transformer::new(
            OutputFormat::Ecs,
            common::enrichment(),
            metrics.clone(),
        );
        t.insight = route;
        (t.process(&insight, &origin), metrics)
    };
    let (out, _) = run(InsightRoute::Normalize);
    assert_eq!(out.records.len(), 2);
    let (out, metrics) = run(InsightRoute::Skip);
    assert!(out.records.is_empty() && out.dead_letters.is_empty());
    assert_eq!(metrics.skip_reasons().get("cloudtrail_insight"), Some(&2));
    let (out, _) = run(InsightRoute::DeadLetter);
    assert!(out.records.is_empty());
    let kinds: Vec<_> = out.dead_letters.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, ["cloudtrail_insight", "cloudtrail_insight"]);
}

/// What one file, through the whole pipeline (file source → file sink) with `limits`,
/// came to.
struct Through {
    /// Event ids delivered, sorted.
    ids: Vec<String>,
    letters: Vec<Value>,
    /// Inputs acknowledged.
    acked: u64,
}

async fn through_the_pipeline(name: &str, bytes: &[u8], limits: &str) -> Through {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    std::fs::write(&input, bytes).unwrap();
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\n[limits]\n{limits}\n[sources.in]\ntype = \"file\"\npaths = [\"{}\"]\n[sinks.out]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n",
        input.display(),
        dir.path().display()
    );
    let metrics = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let lines = |file: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.path().join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut ids: Vec<String> = lines("out.ndjson")
        .iter()
        .map(|doc| doc["event"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    Through {
        ids,
        letters: lines("dlq.ndjson"),
        acked: auditbridge::metrics::Metrics::get(&metrics.batches_acked),
    }
}

/// `n` copies of the good record, each with its own id, one JSON text per record.
fn numbered(n: usize) -> Vec<String> {
    let template: Value = serde_json::from_str(&good_line()).unwrap();
    (0..n)
        .map(|i| {
            let mut record = template.clone();
            record["eventID"] = Value::from(format!("limit-{i:05}"));
            record.to_string()
        })
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("limit-{i:05}")).collect()
}

/// A file past `limits.max_records_per_input`: the records before the limit are
/// delivered once, the rest is not read, the input is acknowledged (it is not retried),
/// and its dead letter names the limit and carries only the first 64 KiB, with the whole
/// file's size and SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_the_record_limit_is_cut_there_through_the_pipeline() {
    use sha2::Digest;
    let text: String = numbered(10_000).iter().map(|r| format!("{r}\n")).collect();
    let out =
        through_the_pipeline("in.ndjson", text.as_bytes(), "max_records_per_input = 2500").await;
    assert_eq!(out.acked, 1);
    assert_eq!(
        out.ids,
        ids(0..2_500),
        "the records before the limit, once each"
    );
    assert_eq!(out.letters.len(), 1);
    let letter = &out.letters[0];
    assert_eq!(letter["kind"], "too_many_records");
    assert!(letter["reason"]
        .as_str()
        .unwrap()
        .contains("more than 2500 records (limits.max_records_per_input)"));
    assert_eq!(letter["size"], text.len() as u64);
    assert_eq!(
        letter["sha256"],
        format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
    );
    assert_eq!(letter["original"].as_str().unwrap().len(), 64 << 10);
}

/// A gzip file past `limits.max_decompressed_bytes`: the records wholly inside the cap are
/// delivered once, and the file is dead-lettered `too_large` with its first 64 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_file_past_the_decompression_cap_is_cut_there_through_the_pipeline() {
    use sha2::Digest;
    // Each record carries 64 hex digits that no deflate shrinks much, so the file stays
    // past the dead letter's 64 KiB excerpt whichever backend compresses it.
    let text: String = numbered(3_000)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut record: Value = serde_json::from_str(r).unwrap();
            record["requestID"] =
                Value::from(format!("{:x}", sha2::Sha256::digest(i.to_le_bytes())));
            format!("{record}\n")
        })
        .collect();
    let cap = 1 << 20;
    let within = text[..cap].matches('\n').count();
    assert!(within > 100 && within < 3_000);
    let gz = common::aws::gzip(text.as_bytes());
    assert!(gz.len() > 64 << 10, "the gzip file is {} bytes", gz.len());
    let out = through_the_pipeline(
        "in.ndjson.gz",
        &gz,
        &format!("max_decompressed_bytes = {cap}"),
    )
    .await;
    assert_eq!(out.acked, 1);
    assert_eq!(
        out.ids,
        ids(0..within),
        "the records inside the cap, once each"
    );
    assert_eq!(out.letters.len(), 1);
    let letter = &out.letters[0];
    assert_eq!(letter["kind"], "too_large");
    assert!(letter["reason"].as_str().unwrap().starts_with(
        "decompressed input exceeds the limit of 1048576 bytes (limits.max_decompressed_bytes)"
    ));
    assert_eq!(letter["size"], gz.len() as u64);
    assert_eq!(letter["truncated"], true);
}

/// A file of mostly bad records past `limits.max_invalid_records_per_input`: the good
/// records before are delivered once, the bad ones are dead-lettered one by one until the
/// limit, and then the file is, naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_past_the_invalid_limit_is_cut_there_through_the_pipeline() {
    let mut text: String = numbered(10).iter().map(|r| format!("{r}\n")).collect();
    text.push_str(&"{\"hello\":\"world\"}\n".repeat(20_000));
    let out = through_the_pipeline(
        "in.ndjson",
        text.as_bytes(),
        "max_invalid_records_per_input = 100",
    )
    .await;
    assert_eq!(out.acked, 1);
    assert_eq!(out.ids, ids(0..10));
    let kinds: Vec<&str> = out
        .letters
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"too_many_invalid_records"));
    let records = &kinds[..kinds.len() - 1];
    assert!(records.iter().all(|k| *k == "unrecognised"));
    // Threads work on chunks of 1,000 frames side by side: those before the frame that
    // crossed the limit are finished, the rest is not read.
    assert!(
        records.len() > 100 && records.len() <= 100 + 2 * 1_000,
        "{} record dead letters",
        records.len()
    );
}

/// A `{"Records":[…]}` file larger than a block, with one record over
/// `limits.max_record_bytes`: that record is cut (its first bytes, size and SHA-256 in its
/// dead letter) and every other record is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_with_a_record_over_the_record_limit_streams_through_the_pipeline() {
    use sha2::Digest;
    let mut records = numbered(9_000);
    let mut long: Value = serde_json::from_str(&records[3_000]).unwrap();
    long["requestParameters"] = serde_json::json!({"padding": "x".repeat(300_000)});
    let long = long.to_string();
    records[3_000] = long.clone();
    let envelope = format!("{{\"Records\":[{}]}}", records.join(","));
    assert!(envelope.len() > 9 << 20, "longer than a block");
    let out =
        through_the_pipeline("in.json", envelope.as_bytes(), "max_record_bytes = 200000").await;
    assert_eq!(out.acked, 1);
    let expected: Vec<String> = ids(0..9_000)
        .into_iter()
        .filter(|id| id != "limit-03000")
        .collect();
    assert_eq!(out.ids, expected);
    assert_eq!(out.letters.len(), 1);
    let letter = &out.letters[0];
    assert_eq!(letter["kind"], "too_large");
    assert_eq!(letter["index"], 3_000);
    assert_eq!(letter["original"].as_str().unwrap().len(), 200_000);
    assert_eq!(letter["size"], long.len() as u64);
    assert_eq!(
        letter["sha256"],
        format!("{:x}", sha2::Sha256::digest(long.as_bytes()))
    );
}
