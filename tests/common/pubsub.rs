//! The Google Cloud test endpoint (`tests/common/gcp_server.py`, started by
//! `scripts/test-servers.sh`): the Pub/Sub address, and the JSON admin API to create
//! subscriptions, publish, read what happened to the messages, and give the IAM REST API
//! service accounts and keys.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// `host:port` of the gRPC endpoint.
pub fn host() -> String {
    std::env::var("AUDITBRIDGE_TEST_PUBSUB")
        .expect("AUDITBRIDGE_TEST_PUBSUB is not set: run the suite with scripts/test.sh")
}

fn admin(path: &str) -> String {
    let base = std::env::var("AUDITBRIDGE_TEST_PUBSUB_ADMIN")
        .expect("AUDITBRIDGE_TEST_PUBSUB_ADMIN is not set: run the suite with scripts/test.sh");
    format!("{base}{path}")
}

async fn post(path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(admin(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    serde_json::from_str(&reply.text().await.unwrap()).unwrap()
}

/// The base URL of the IAM REST API (`keys.gcp_iam_endpoint`).
pub fn rest_endpoint() -> String {
    admin("")
}

/// Give `project` these service accounts, replacing any: `{email: [{"id",
/// "valid_after", "disabled"?, "type"?}]}`.
pub async fn iam_accounts(project: &str, accounts: Value) {
    post(
        "/admin/iam",
        json!({"project": project, "accounts": accounts}),
    )
    .await;
}

/// A new subscription with a name no other test uses.
pub async fn subscription(prefix: &str, dead_letter: Option<(&str, u32)>) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("projects/auditbridge-test/subscriptions/{prefix}-{nanos}");
    let dead_letter = dead_letter
        .map(|(s, n)| json!({"subscription": s, "max_delivery_attempts": n}))
        .unwrap_or(Value::Null);
    post(
        "/admin/create",
        json!({"name": name, "ack_deadline_seconds": 10, "dead_letter": dead_letter}),
    )
    .await;
    name
}

/// Publish one message per body, 1,000 per call.
pub async fn publish(subscription: &str, bodies: &[Vec<u8>]) {
    let b64 = base64::engine::general_purpose::STANDARD;
    for chunk in bodies.chunks(1000) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|b| json!({"data": b64.encode(b), "attributes": {"logging.googleapis.com/timestamp": "2019-12-19T00:49:36.086Z"}}))
            .collect();
        post(
            "/admin/publish",
            json!({"subscription": subscription, "messages": messages}),
        )
        .await;
    }
}

/// What the endpoint counted for a subscription: published, delivered, redelivered,
/// acked, nacked, extensions, expired, stale_acks, dead_lettered, streams (missing
/// means 0), and the backlog, outstanding and unacked messages now.
pub async fn stats(subscription: &str) -> Value {
    let url = format!(
        "{}?subscription={}",
        admin("/admin/stats"),
        urlencode(subscription)
    );
    let body = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// One counter of [`stats`].
pub fn count(stats: &Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or(0)
}

/// Poll [`stats`] until `done` holds, or panic after `secs`.
pub async fn stats_until(subscription: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = stats(subscription).await;
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{subscription} never reached the expected state: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn urlencode(s: &str) -> String {
    s.replace('/', "%2F")
}

/// `n` Cloud Audit Logs entries as a Log Router sink publishes them, one per message:
/// Elastic's `gcp` integration test input (`../shared/data/gcp/elastic/test-audit.log`,
/// Elastic License 2.0, read in place) cycled, each with the insertId `{prefix}-{i}`.
pub fn entries(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(super::shared("data/gcp/elastic/test-audit.log")).unwrap();
    let templates: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (0..n)
        .map(|i| {
            let mut entry = templates[i % templates.len()].clone();
            entry["insertId"] = json!(format!("{prefix}-{i}"));
            entry.to_string().into_bytes()
        })
        .collect()
}
