//! Access keys from the IAM API of the local AWS API server (moto): `keys audit --iam`,
//! its dry-run and real deactivation, and the key inventory's IAM poll; service-account
//! keys from Google's IAM API (the REST calls of the test endpoint in
//! `tests/common/gcp_server.py`).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_ages_service_account_keys_it_learned_from_googles_iam() {
    let project = format!("keys-{}", unique("p"));
    // Three accounts (the endpoint pages two at a time); a system-managed key, which
    // Google rotates itself, is not listed.
    common::pubsub::iam_accounts(
        &project,
        serde_json::json!({
            "ci@p.iam.gserviceaccount.com": [{"id": "aaaa1111", "valid_after": "2026-01-01T00:00:00Z"}],
            "deploy@p.iam.gserviceaccount.com": [{"id": "bbbb2222", "valid_after": "2026-05-01T00:00:00Z", "disabled": true}],
            "web@p.iam.gserviceaccount.com": [{"id": "cccc3333", "valid_after": "2026-01-01T00:00:00Z", "type": "SYSTEM_MANAGED"}],
        }),
    )
    .await;
    let used = |id: &str, account: &str, key: &str| {
        format!(
            r#"{{"insertId":"{id}","logName":"projects/{project}/logs/cloudaudit.googleapis.com%2Factivity","timestamp":"2026-05-20T08:00:00Z","resource":{{"type":"gcs_bucket","labels":{{"project_id":"{project}"}}}},"protoPayload":{{"@type":"type.googleapis.com/google.cloud.audit.AuditLog","serviceName":"storage.googleapis.com","methodName":"storage.buckets.list","authenticationInfo":{{"principalEmail":"{account}","serviceAccountKeyName":"//iam.googleapis.com/projects/{project}/serviceAccounts/{account}/keys/{key}"}}}}}}"#
        )
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("in.ndjson"),
        [
            used("u1", "ci@p.iam.gserviceaccount.com", "aaaa1111"),
            used("u2", "deploy@p.iam.gserviceaccount.com", "bbbb2222"),
            used("u3", "web@p.iam.gserviceaccount.com", "cccc3333"),
        ]
        .join("\n"),
    )
    .unwrap();
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\n[keys]\ngcp_projects = [\"{project}\"]\ngcp_iam_endpoint = \"{}\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n[sinks.out]\ntype = \"file\"\npath = \"{}/out.ndjson\"\n",
        common::pubsub::rest_endpoint(),
        dir.path().display(),
        dir.path().display()
    );
    common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    let docs: Vec<Value> = std::fs::read_to_string(dir.path().join("out.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let credential = |id: &str| {
        docs.iter()
            .find(|d| d["event"]["id"] == id)
            .unwrap_or_else(|| panic!("{id} delivered"))["auditbridge"]["credential"]
            .clone()
    };
    let ci = credential("u1");
    assert_eq!(ci["source"], "iam");
    assert_eq!(ci["owner"], "ci@p.iam.gserviceaccount.com");
    assert_eq!(ci["status"], "Active");
    assert_eq!(ci["age_days"], 139);
    assert_eq!(ci["over_max_age"], true);
    let deploy = credential("u2");
    assert_eq!(deploy["status"], "Inactive");
    assert_eq!(deploy["age_days"], 19);
    assert_eq!(deploy["over_max_age"], false);
    let web = credential("u3");
    assert_eq!(web["key_id"], "cccc3333");
    assert!(
        web.get("age_days").is_none(),
        "a system-managed key is not aged: {web}"
    );
}
