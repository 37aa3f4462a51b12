//! Access-key age context: learned from the stream, from a credential report, for STS
//! sessions and for Entra service-principal credentials; and `keys audit`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::keys::report;
use auditbridge::metrics::Metrics;
use auditbridge::record::Format;
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;
use serde_json::{json, Value};

fn transformer(keys: Arc<KeyInventory>) -> Transformer {
    let enrichment = Enrichment::new(Arc::new(common::builtin_rules()), keys, 90);
    Transformer::new(OutputFormat::Both, enrichment, Arc::new(Metrics::default()))
}

/// Process records one after the other (as one source would), returning ECS documents.
fn run(t: &Transformer, records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let out = t.process(
                r.to_string().as_bytes(),
                &Origin::Inline { name: "t".into() },
            );
            assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
            let record = &out.records[0];
            let doc = common::doc(record, Format::Ecs);
            // What the record carries for `raw` documents (HEC fields, Kafka headers)
            // is what the ECS document says.
            assert_eq!(
                record.key_age_days,
                doc.pointer("/auditbridge/credential/age_days")
                    .and_then(Value::as_i64)
            );
            assert_eq!(
                json!(record.rules),
                doc.pointer("/rule/id").cloned().unwrap_or(json!([]))
            );
            doc
        })
        .collect()
}

fn iam(name: &str, key: &str, time: &str, params: Value, response: Value) -> Value {
    json!({"eventTime": time, "eventSource": "iam.amazonaws.com", "eventName": name,
        "userIdentity": {"type": "IAMUser", "userName": "admin", "accessKeyId": key},
        "requestParameters": params, "responseElements": response, "recipientAccountId": "123456789012"})
}

#[test]
fn key_learned_from_the_stream_is_aged_and_tracked() {
    let t = transformer(Arc::new(KeyInventory::new(100)));
    let docs = run(
        &t,
        &[
            iam(
                "CreateAccessKey",
                "AKIAADMIN0000000001",
                "2020-01-08T20:43:06Z",
                json!({"userName": "svc"}),
                json!({"accessKey": {"accessKeyId": "AKIASVC000000000001", "status": "Active", "userName": "svc", "createDate": "Jan 8, 2020 8:43:06 PM"}}),
            ),
            iam(
                "PutUserPolicy",
                "AKIASVC000000000001",
                "2020-06-01T00:00:00Z",
                json!({"userName": "svc", "policyName": "p"}),
                Value::Null,
            ),
            iam(
                "UpdateAccessKey",
                "AKIAADMIN0000000001",
                "2020-06-02T00:00:00Z",
                json!({"accessKeyId": "AKIASVC000000000001", "status": "Inactive"}),
                Value::Null,
            ),
            iam(
                "ListUsers",
                "AKIASVC000000000001",
                "2020-06-03T00:00:00Z",
                json!({}),
                Value::Null,
            ),
            iam(
                "DeleteAccessKey",
                "AKIAADMIN0000000001",
                "2020-06-04T00:00:00Z",
                json!({"accessKeyId": "AKIASVC000000000001"}),
                Value::Null,
            ),
            iam(
                "ListUsers",
                "AKIASVC000000000001",
                "2020-06-05T00:00:00Z",
                json!({}),
                Value::Null,
            ),
        ],
    );
    assert_eq!(
        docs[0]["auditbridge"]["created_credential"],
        json!({"access_key_id": "AKIASVC000000000001", "created": "2020-01-08T20:43:06Z", "owner": "svc"})
    );
    assert_eq!(
        docs[1]["auditbridge"]["credential"],
        json!({
        "access_key_id": "AKIASVC000000000001", "type": "long-term", "created": "2020-01-08T20:43:06Z",
        "age_days": 144, "status": "Active", "over_max_age": true, "max_age_days": 90, "source": "stream", "owner": "svc"})
    );
    assert_eq!(
        docs[1]["rule"]["id"],
        json!(["aws-iam-change-by-stale-key"])
    );
    assert_eq!(
        docs[1]["threat"]["technique"]["subtechnique"]["id"],
        json!(["T1078.004"])
    );
    assert_eq!(docs[3]["auditbridge"]["credential"]["status"], "Inactive");
    assert_eq!(
        docs[5]["auditbridge"]["credential"],
        json!({"access_key_id": "AKIASVC000000000001", "type": "long-term"})
    );
}

#[test]
fn sts_session_age() {
    let t = transformer(Arc::new(KeyInventory::new(100)));
    let record = |created: &str| {
        json!({"eventTime": "2013-11-02T03:06:28Z", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
        "userIdentity": {"type": "AssumedRole", "accessKeyId": "ASIAEXAMPLE000000001",
            "sessionContext": {"attributes": {"creationDate": created, "mfaAuthenticated": "false"}}}})
    };
    let docs = run(
        &t,
        &[record("20131102T010628Z"), record("2013-11-02T01:06:28Z")],
    );
    for d in docs {
        assert_eq!(d["auditbridge"]["credential"]["type"], "temporary");
        assert_eq!(
            d["auditbridge"]["session"],
            json!({"created": "2013-11-02T01:06:28Z", "age_seconds": 7200})
        );
    }
}

#[test]
fn credential_report_ages_a_users_only_active_key() {
    let csv = std::fs::read_to_string(common::repo("samples/keys/credential-report.csv")).unwrap();
    let keys = Arc::new(KeyInventory::new(100));
    keys.load_report_users(report::active_keys_by_user(&report::parse(&csv).unwrap()));
    let t = transformer(keys);
    let docs = run(
        &t,
        &[
            json!({"eventTime": "2023-07-10T12:23:05Z", "eventSource": "iam.amazonaws.com", "eventName": "ListUsers",
        "userIdentity": {"type": "IAMUser", "userName": "bert-jan", "accessKeyId": "AKIATFQR7NSC8Q4X20BJ"}}),
        ],
    );
    let c = &docs[0]["auditbridge"]["credential"];
    assert_eq!(
        (
            c["age_days"].as_i64(),
            c["over_max_age"].as_bool(),
            c["source"].as_str()
        ),
        (Some(221), Some(true), Some("credential_report"))
    );
}

#[test]
fn entra_service_principal_credential_aged_at_sign_in() {
    let t = transformer(Arc::new(KeyInventory::new(100)));
    let added = json!({"time": "2024-01-01T00:00:00Z", "category": "AuditLogs", "operationName": "Add service principal credentials",
        "properties": {"activityDisplayName": "Add service principal credentials", "result": "success",
            "targetResources": [{"id": "sp-1", "type": "ServicePrincipal", "modifiedProperties": [{"displayName": "KeyDescription",
                "oldValue": "[\"[KeyIdentifier=old-key,KeyType=Password]\"]",
                "newValue": "[\"[KeyIdentifier=old-key,KeyType=Password]\",\"[KeyIdentifier=dbcd79c0-c3ea-46b9-9604-ff40d43b8618,KeyType=Password]\"]"}]}]}});
    let sign_in = |key: &str| {
        json!({"time": "2024-05-01T00:00:00Z", "category": "ServicePrincipalSignInLogs",
        "properties": {"servicePrincipalId": "sp-1", "servicePrincipalCredentialKeyId": key, "status": {"errorCode": 0}}})
    };
    let docs = run(
        &t,
        &[
            added,
            sign_in("dbcd79c0-c3ea-46b9-9604-ff40d43b8618"),
            sign_in("old-key"),
        ],
    );
    let c = &docs[1]["auditbridge"]["credential"];
    assert_eq!(
        (
            c["type"].as_str(),
            c["age_days"].as_i64(),
            c["over_max_age"].as_bool(),
            c["owner"].as_str()
        ),
        (
            Some("service-principal-credential"),
            Some(121),
            Some(true),
            Some("sp-1")
        )
    );
    assert!(
        docs[2]["auditbridge"]["credential"]
            .get("age_days")
            .is_none(),
        "a credential that existed before is not 'added'"
    );
}

#[test]
fn key_age_in_the_embedded_default_output() {
    let out = common::auditbridge()
        .args(["run", "--config", "config/local.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let aged: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| d.pointer("/auditbridge/credential/age_days").is_some())
        .collect();
    assert!(!aged.is_empty());
    assert!(aged
        .iter()
        .all(|d| d["auditbridge"]["credential"]["owner"] == "bert-jan"
            || d["auditbridge"]["credential"]["owner"] == "benjamin"));
}

#[test]
fn keys_audit_flags_and_exits_one() {
    let out = common::auditbridge()
        .args([
            "keys",
            "audit",
            "--credential-report",
            "samples/keys/credential-report.csv",
            "--output",
            "json",
            "--at",
            "2023-07-10T12:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let rows: Vec<HashMap<String, Value>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["user"], "bert-jan");
    assert_eq!(rows[0]["over_max_age"], true);
    let out = common::auditbridge()
        .args([
            "keys",
            "audit",
            "--credential-report",
            "samples/keys/credential-report.csv",
            "--max-age-days",
            "365",
            "--at",
            "2023-07-10T12:00:00Z",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .ends_with("2 active keys, 0 over 365 days\n"));
}
