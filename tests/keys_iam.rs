//! Access keys from the IAM API of the local AWS API server (moto): `keys audit --iam`,
//! its dry-run and real deactivation, and the key inventory's IAM poll.

mod common;

use std::process::Output;

use aws_config::BehaviorVersion;
use common::aws::{endpoint, unique};
use serde_json::Value;

async fn iam() -> aws_sdk_iam::Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .load()
        .await;
    aws_sdk_iam::Client::new(&shared)
}

/// A new user with one access key: (user, key id).
async fn user_with_key(iam: &aws_sdk_iam::Client) -> (String, String) {
    let user = unique("audit-user");
    iam.create_user().user_name(&user).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    (user, key.access_key.unwrap().access_key_id)
}

fn audit(extra: &[&str]) -> Output {
    common::auditbridge()
        .args([
            "keys",
            "audit",
            "--iam",
            "--region",
            "us-east-1",
            "--endpoint",
            &endpoint(),
            "--output",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap()
}

async fn status(iam: &aws_sdk_iam::Client, user: &str) -> String {
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    keys.access_key_metadata[0]
        .status
        .as_ref()
        .unwrap()
        .as_str()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_flags_old_keys_and_deactivates_only_with_yes() {
    let iam = iam().await;
    let (alice, alice_key) = user_with_key(&iam).await;
    let (bob, _) = user_with_key(&iam).await;
    let later = (chrono::Utc::now() + chrono::Duration::days(200)).to_rfc3339();

    let out = audit(&["--at", &later]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ours: Vec<&Value> = rows
        .iter()
        .filter(|r| r["user"] == alice.as_str() || r["user"] == bob.as_str())
        .collect();
    assert_eq!(ours.len(), 2);
    assert!(ours
        .iter()
        .all(|r| r["over_max_age"] == true && r["age_days"].as_i64().unwrap() >= 199));
    assert!(ours.iter().any(|r| r["key"] == alice_key.as_str()));

    let out = audit(&["--at", &later, "--deactivate"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "would deactivate {alice_key} of {alice} (dry run: add --yes to do it)"
        )),
        "{said}"
    );
    assert_eq!(
        status(&iam, &alice).await,
        "Active",
        "a dry run changes nothing"
    );

    let out = audit(&["--at", &later, "--deactivate", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(&format!("deactivated {alice_key} of {alice}")));
    assert_eq!(status(&iam, &alice).await, "Inactive");
    assert_eq!(status(&iam, &bob).await, "Inactive");

    let out = audit(&["--at", &later]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !rows.iter().any(|r| r["user"] == alice.as_str()),
        "inactive keys are not listed"
    );
}

#[test]
fn deactivate_needs_the_iam_source() {
    let out = common::auditbridge()
        .args([
            "keys",
            "audit",
            "--credential-report",
            "samples/keys/credential-report.csv",
            "--deactivate",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be used with '--deactivate'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_ages_keys_it_learned_from_iam() {
    let iam = iam().await;
    let (user, key) = user_with_key(&iam).await;
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let record = format!(
        r#"{{"eventTime":"{now}","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","eventID":"iam-poll-1","userIdentity":{{"type":"IAMUser","userName":"{user}","accessKeyId":"{key}"}}}}"#
    );
    std::fs::write(dir.path().join("in.ndjson"), record).unwrap();
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\n[keys]\niam_poll_interval_secs = 3600\niam_region = \"us-east-1\"\niam_endpoint = \"{}\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n[sinks.out]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n",
        endpoint(),
        dir.path().display(),
        dir.path().display()
    );
    common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let doc: Value = serde_json::from_str(
        std::fs::read_to_string(dir.path().join("out.ndjson"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let c = &doc["auditbridge"]["credential"];
    assert_eq!(c["source"], "iam");
    assert_eq!(c["owner"], user.as_str());
    assert_eq!(c["status"], "Active");
    assert_eq!(c["age_days"], 0);
    assert_eq!(c["over_max_age"], false);
}
