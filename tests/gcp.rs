//! Google Cloud Audit Logs: Elastic's `gcp.audit` pipeline test inputs (read in place from
//! `../shared/data/gcp/elastic/`, Elastic License 2.0) decoded, written as Elastic's
//! integration writes ECS, mapped to OCSF and tagged; every document valid. Entries that
//! are no audit log are dead-lettered with the payload type.

mod common;

use std::collections::BTreeMap;

use auditbridge::record::{Format, Record};
use auditbridge::transforms::normalize::OutputFormat;
use common::{doc, process, shared, valid_records, Schemas};
use serde_json::{json, Value};

/// Every record of the Elastic sample files that hold one LogEntry per line.
fn elastic_samples() -> Vec<Record> {
    let schemas = Schemas::load();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(shared("data/gcp/elastic")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            out.extend(valid_records(&schemas, &path.display().to_string(), &bytes));
        }
    }
    out
}

fn by_id<'a>(records: &'a [Record], id: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn every_elastic_sample_decodes_into_valid_ecs_and_ocsf() {
    let records = elastic_samples();
    // 17 + 1 + 1 + 1 + 1 + 2 + 1 + 4 + 2 lines in the nine `.log` files.
    assert_eq!(records.len(), 30);
    assert!(records.iter().all(|r| r.dataset == "gcp.audit"));
    let mut classes: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &records {
        let ocsf = doc(r, Format::Ocsf);
        *classes
            .entry(ocsf["class_uid"].as_u64().unwrap())
            .or_default() += 1;
    }
    // Service-account life cycle is Account Change, SetIamPolicy User Access
    // Management, the rest API Activity.
    assert_eq!(classes.get(&3001), Some(&3), "{classes:?}");
    assert_eq!(classes.get(&3005), Some(&3), "{classes:?}");
    assert_eq!(classes.get(&6003), Some(&24), "{classes:?}");
}

/// The values Elastic's pipeline writes for these entries
/// (`packages/gcp/data_stream/audit/_dev/test/pipeline/*-expected.json`).
#[test]
fn ecs_is_what_elastics_gcp_audit_integration_writes() {
    let records = elastic_samples();

    let denied = doc(by_id(&records, "-h6onuze1h7dg"), Format::Ecs);
    assert_eq!(
        denied["event"]["action"],
        "beta.compute.machineTypes.aggregatedList"
    );
    assert_eq!(
        denied["event"]["outcome"], "failure",
        "its one check was denied"
    );
    assert_eq!(denied["event"]["provider"], "data_access");
    assert_eq!(
        denied["event"]["category"],
        json!(["network", "configuration"])
    );
    assert_eq!(denied["event"]["type"], json!(["access", "denied"]));
    assert_eq!(denied["service"]["name"], "compute.googleapis.com");
    assert_eq!(denied["cloud"]["project"]["id"], "elastic-beats");
    assert_eq!(denied["cloud"]["provider"], "gcp");
    assert_eq!(denied["source"]["ip"], "192.168.1.1");
    assert_eq!(denied["client"]["user"]["email"], "xxx@xxx.xxx");
    assert_eq!(denied["gcp"]["audit"]["num_response_items"], 71);
    assert_eq!(
        denied["gcp"]["audit"]["resource_location"]["current_locations"],
        json!(["global"])
    );
    assert_eq!(
        denied["gcp"]["audit"]["authorization_info"][0]["resource_attributes"]["type"],
        "resourcemanager.projects"
    );
    assert_eq!(denied["data_stream"]["dataset"], "gcp.audit");
    assert_eq!(denied["event"]["module"], "gcp");
    assert_eq!(
        denied["log"]["logger"],
        "projects/elastic-beats/logs/cloudaudit.googleapis.com%2Fdata_access"
    );

    let status = doc(by_id(&records, "yonau3dc2zi"), Format::Ecs);
    assert_eq!(status["event"]["outcome"], "failure");
    assert_eq!(
        status["gcp"]["audit"]["status"],
        json!({"code": 7, "message": "PERMISSION_DENIED"})
    );

    let created = doc(by_id(&records, "test-user-1"), Format::Ecs);
    assert_eq!(
        created["event"]["action"],
        "google.iam.admin.v1.CreateServiceAccount"
    );
    assert_eq!(created["event"]["provider"], "activity");
    assert_eq!(created["event"]["outcome"], "success");
    assert_eq!(created["event"]["type"], json!(["access", "allowed"]));
    assert_eq!(created["client"]["user"]["id"], "user:john.doe@elastic.co");
    assert_eq!(created["user"]["email"], "john.doe@elastic.co");
    assert_eq!(created["related"]["user"], json!(["john.doe@elastic.co"]));
    assert_eq!(created["related"]["ip"], json!(["203.0.113.1"]));
    assert_eq!(created["log"]["level"], "NOTICE");
    assert_eq!(
        created["gcp"]["audit"]["receive_timestamp"],
        "2024-11-06T10:00:00.000Z"
    );
    assert_eq!(
        created["gcp"]["audit"]["resource"]["type"],
        "service_account"
    );
    assert_eq!(created["user_agent"]["original"], "gcloud-sdk");

    // `private` stands for an address Google does not disclose: no source.ip.
    let private = records
        .iter()
        .map(|r| doc(r, Format::Ecs))
        .find(|d| d["event"]["id"] == "-abcdef")
        .expect("the entry of test-sdh-3695.log");
    assert!(private.get("source").is_none(), "{private}");
}

#[test]
fn ocsf_names_the_caller_the_api_and_the_changed_account() {
    let records = elastic_samples();
    let created = doc(by_id(&records, "test-user-1"), Format::Ocsf);
    assert_eq!(created["class_uid"], 3001);
    assert_eq!(created["activity_id"], 1);
    assert_eq!(
        created["api"]["operation"],
        "google.iam.admin.v1.CreateServiceAccount"
    );
    assert_eq!(created["api"]["service"]["name"], "iam.googleapis.com");
    assert_eq!(
        created["actor"]["user"]["email_addr"],
        "john.doe@elastic.co"
    );
    assert_eq!(created["actor"]["user"]["uid"], "user:john.doe@elastic.co");
    assert_eq!(created["cloud"]["provider"], "GCP");
    assert_eq!(
        created["cloud"]["account"],
        json!({"uid": "test-project", "type_id": 11, "type": "GCP Project"})
    );
    assert_eq!(created["src_endpoint"]["ip"], "203.0.113.1");
    assert_eq!(
        created["user"]["uid"],
        "projects/test-project/serviceAccounts/new-service-account@test-project.iam.gserviceaccount.com"
    );
    assert_eq!(created["metadata"]["product"]["vendor_name"], "Google");
    assert_eq!(created["metadata"]["uid"], "test-user-1");

    let policy = doc(by_id(&records, "test-user-3"), Format::Ocsf);
    assert_eq!(policy["class_uid"], 3005);
    assert_eq!(policy["type_uid"], 300501);
    assert_eq!(
        policy["api"]["request"]["data"]["policy"]["bindings"][0]["role"],
        "roles/viewer"
    );
}

#[test]
fn the_builtin_rules_tag_account_key_and_policy_changes() {
    let records = elastic_samples();
    let created = by_id(&records, "test-user-1");
    assert_eq!(created.rules, ["gcp-service-account-created"]);
    assert_eq!(created.techniques, ["T1136.003"]);
    let ecs = doc(created, Format::Ecs);
    assert_eq!(ecs["threat"]["technique"]["id"], json!(["T1136"]));
    let key = by_id(&records, "test-user-target-1");
    assert_eq!(key.rules, ["gcp-service-account-key-created"]);
    assert_eq!(key.techniques, ["T1098.001"]);
    // A real SetIamPolicy whose policy delta adds bindings.
    let policy = by_id(&records, "-30102re2sad8");
    assert_eq!(policy.rules, ["gcp-iam-policy-role-added"]);
    let mut tagged: Vec<&str> = records
        .iter()
        .filter(|r| !r.rules.is_empty())
        .map(|r| r.id.as_str())
        .collect();
    tagged.sort_unstable();
    assert_eq!(
        tagged,
        ["-30102re2sad8", "test-user-1", "test-user-target-1"],
        "the rest is reading, listing and routine change"
    );
}

#[test]
fn an_entry_that_is_no_audit_log_is_dead_lettered_with_its_type() {
    let entry = json!({
        "insertId": "n1", "logName": "projects/p/logs/container.googleapis.com%2Fcluster-autoscaler-visibility",
        "timestamp": "2024-01-01T00:00:00Z",
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.dataproc.v1.SomeEvent"}
    });
    let out = process(OutputFormat::Both, entry.to_string().as_bytes());
    assert!(out.records.is_empty());
    assert_eq!(out.dead_letters.len(), 1);
    let reason = &out.dead_letters[0].reason;
    assert!(
        reason.contains("`type.googleapis.com/google.cloud.dataproc.v1.SomeEvent`, not a Cloud Audit Logs AuditLog"),
        "{reason}"
    );
    let wrong: Value = json!({
        "insertId": "n2", "logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
        "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog", "methodName": ["x"]}
    });
    let out = process(OutputFormat::Both, wrong.to_string().as_bytes());
    assert_eq!(out.dead_letters.len(), 1);
    assert!(
        out.dead_letters[0]
            .reason
            .contains("field `protoPayload.methodName` must be a string, found an array"),
        "{}",
        out.dead_letters[0].reason
    );
}

/// `gcloud logging read --format=json` prints a pretty JSON array of entries; a GCS export
/// writes one entry per line. Both decode the same entries.
#[test]
fn a_gcloud_json_array_and_ndjson_give_the_same_records() {
    let lines: Vec<Value> =
        std::fs::read_to_string(shared("data/gcp/elastic/test-user-target-entities.log"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(lines.len(), 2);
    let array = serde_json::to_string_pretty(&lines).unwrap();
    let ndjson: String = lines.iter().map(|v| format!("{v}\n")).collect();
    let ids = |bytes: &[u8]| -> Vec<String> {
        let out = process(OutputFormat::Ecs, bytes);
        assert!(out.dead_letters.is_empty());
        out.records.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(
        ids(array.as_bytes()),
        ["test-user-target-1", "test-user-target-2"]
    );
    assert_eq!(ids(array.as_bytes()), ids(ndjson.as_bytes()));
}

/// A service-account key is remembered when it is created and aged when a call is signed
/// with it (`authenticationInfo.serviceAccountKeyName`), as AWS access keys are.
#[test]
fn a_service_account_key_is_aged_when_it_is_used() {
    const SA: &str = "projects/p1/serviceAccounts/ci@p1.iam.gserviceaccount.com";
    let entry = |id: &str, time: &str, method: &str, proto: Value| {
        let mut payload = json!({
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "methodName": method,
            "serviceName": "iam.googleapis.com",
            "resourceName": SA,
            "authorizationInfo": [{"granted": true}],
        });
        payload
            .as_object_mut()
            .unwrap()
            .extend(proto.as_object().unwrap().clone());
        json!({"insertId": id, "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
            "timestamp": time, "resource": {"type": "service_account", "labels": {"project_id": "p1"}},
            "protoPayload": payload})
        .to_string()
    };
    let created = entry(
        "k1",
        "2026-01-10T08:00:00Z",
        "google.iam.admin.v1.CreateServiceAccountKey",
        json!({"authenticationInfo": {"principalEmail": "mallory@example.com"},
            "response": {"@type": "type.googleapis.com/google.iam.admin.v1.ServiceAccountKey",
                "name": format!("{SA}/keys/0a1b2c3d4e5f"), "valid_after_time": {"seconds": 1768032000}}}),
    );
    let used = entry(
        "k2",
        "2026-05-20T08:00:00Z",
        "google.iam.admin.v1.ListServiceAccounts",
        json!({"authenticationInfo": {"principalEmail": "ci@p1.iam.gserviceaccount.com",
            "serviceAccountKeyName": format!("//iam.googleapis.com/{SA}/keys/0a1b2c3d4e5f")}}),
    );
    let out = process(
        OutputFormat::Both,
        format!("{created}\n{used}\n").as_bytes(),
    );
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let ecs = doc(by_id(&out.records, "k1"), Format::Ecs);
    assert_eq!(
        ecs["auditbridge"]["created_credential"],
        json!({"key_id": "0a1b2c3d4e5f", "created": "2026-01-10T08:00:00Z",
            "owner": "ci@p1.iam.gserviceaccount.com"})
    );
    assert_eq!(
        by_id(&out.records, "k1").rules,
        ["gcp-service-account-key-created"]
    );
    let ecs = doc(by_id(&out.records, "k2"), Format::Ecs);
    let credential = &ecs["auditbridge"]["credential"];
    assert_eq!(credential["key_id"], "0a1b2c3d4e5f");
    assert_eq!(credential["type"], "service-account-key");
    assert_eq!(credential["age_days"], 130);
    assert_eq!(credential["over_max_age"], true);
    assert_eq!(credential["source"], "stream");
    let ocsf = doc(by_id(&out.records, "k2"), Format::Ocsf);
    assert_eq!(ocsf["enrichments"][0]["value"], "130 days");
}
