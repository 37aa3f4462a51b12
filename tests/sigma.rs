//! SigmaHQ's cloud rules (`../shared/sigma`, Detection Rule License 1.1, read in place)
//! loaded and evaluated on the vendor records of real logs: which load, which cannot and
//! why, what they match on the Stratus Red Team detonations and how much of a real trail.

mod common;

use std::collections::BTreeMap;

use std::sync::Arc;

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::metrics::Metrics;
use auditbridge::record::Format;
use auditbridge::rules::model::Severity;
use auditbridge::rules::sigma::{Scope, SigmaSet};
use auditbridge::rules::{RuleSet, RulesConfig};
use auditbridge::transforms::decode::{decode, Decoded, SourceRecord};
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;
use serde_json::{json, Value};

fn sigma() -> SigmaSet {
    SigmaSet::load(&common::shared("sigma/rules/cloud")).unwrap()
}

/// The CloudTrail records of a detonation log (a JSON array) or an S3 log file
/// (`{"Records": […]}`).
fn records(path: &std::path::Path) -> Vec<SourceRecord<'static>> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let list = match v {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("Records") {
            Some(Value::Array(a)) => a,
            _ => panic!("{}: no Records", path.display()),
        },
        _ => panic!("{}: not a log", path.display()),
    };
    list.iter()
        .map(
            |r| match decode(&r.to_string(), 1 << 20, chrono::Utc::now()).unwrap() {
                Decoded::Record(r) => r.into_owned(),
                other => panic!("{other:?}"),
            },
        )
        .collect()
}

#[test]
fn sigmahq_cloud_rules_load_or_say_why_not() {
    let set = sigma();
    let mut loaded: BTreeMap<String, usize> = BTreeMap::new();
    for r in &set.rules {
        *loaded.entry(format!("{:?}", r.scope())).or_default() += 1;
    }
    for u in &set.unsupported {
        println!("unsupported: {u}");
    }
    println!("loaded: {loaded:?}");
    let count = |scope: Scope| set.rules.iter().filter(|r| r.scope() == scope).count();
    // Every CloudTrail, Entra ID and Activity Log rule of the shared set loads.
    assert_eq!(count(Scope::CloudTrail), 57);
    assert_eq!(count(Scope::EntraAudit), 44);
    assert_eq!(count(Scope::EntraSignIn), 17);
    assert_eq!(count(Scope::AzureActivity), 35);
    assert_eq!(count(Scope::GcpAudit), 16);
    // One sign-in rule names a column sign-in records do not have, and says so with its
    // file and line.
    assert_eq!(set.unsupported.len(), 1);
    let only = &set.unsupported[0];
    assert!(only
        .file
        .ends_with("signin_logs/azure_legacy_authentication_protocols.yml"));
    assert_eq!(only.line, 22);
    assert!(
        only.reason
            .starts_with("`ActivityDetails`: `ActivityDetails` is no field of sign-in records"),
        "{}",
        only.reason
    );
    // Of the 169 loaded, 32 carry no `attack.t…` tag and 14 more name only techniques
    // ATT&CK v18.1 no longer lists.
    let tagged = set
        .rules
        .iter()
        .filter(|r| !r.techniques.is_empty())
        .count();
    assert_eq!(tagged, 123);
}

/// SigmaHQ's GCP rules name Elastic's `gcp.audit.method_name` and the Pub/Sub message's
/// `data.protoPayload.*`; the field table finds both in the LogEntry itself.
#[test]
fn sigmahq_gcp_rules_match_audit_log_entries_through_the_field_table() {
    let set = sigma();
    let entry = |method: &str, service: &str, permission: &str| {
        let text = json!({
            "insertId": "s1", "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
            "timestamp": "2026-11-30T10:00:00Z",
            "resource": {"type": "audited_resource", "labels": {"project_id": "p1"}},
            "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "methodName": method, "serviceName": service,
                "authorizationInfo": [{"permission": permission, "granted": true}]}
        })
        .to_string();
        match decode(&text, 1 << 20, chrono::Utc::now()).unwrap() {
            Decoded::Record(r) => r.into_owned(),
            other => panic!("{other:?}"),
        }
    };
    let titles = |r: &SourceRecord| -> Vec<String> {
        set.evaluate(r)
            .into_iter()
            .map(|r| r.title.clone())
            .collect()
    };
    assert_eq!(
        titles(&entry(
            "google.identity.accesscontextmanager.v1.AccessContextManager.DeleteAccessPolicy",
            "accesscontextmanager.googleapis.com",
            "accesscontextmanager.accessPolicies.delete"
        )),
        ["GCP Access Policy Deleted"]
    );
    assert_eq!(
        titles(&entry(
            "storage.buckets.list",
            "storage.googleapis.com",
            "storage.buckets.list"
        )),
        ["Google Cloud Storage Buckets Enumeration"]
    );
    assert!(titles(&entry(
        "storage.objects.get",
        "storage.googleapis.com",
        "storage.objects.get"
    ))
    .is_empty());
}

/// SigmaHQ's Azure rules name Log Analytics columns; `config/sigma/fields.toml`
/// finds them in the diagnostic records Event Hubs delivers. On the real Entra ID records
/// of the shared corpus and Elastic's samples, each rule below matches exactly these
/// records, which it could not without the table (`properties.message`, the sign-in
/// `Status` and `NetworkLocationDetails` are no paths in those records).
#[test]
fn sigmahq_azure_rules_match_real_entra_records_through_the_field_table() {
    let set = sigma();
    let mut lines: Vec<String> = String::from_utf8(common::gunzip(&common::shared(
        "data/corpus/entra_real_union.ndjson.gz",
    )))
    .unwrap()
    .lines()
    .map(str::to_string)
    .collect();
    for f in [
        "test-audit-logs-sample.log",
        "test-signinlogs-sample.log",
        "test-service-principal-signinlogs-sample.records-1-and-3-of-7.log",
    ] {
        let text = std::fs::read_to_string(common::shared(&format!("data/entra/elastic/{f}")));
        lines.extend(text.unwrap().lines().map(str::to_string));
    }
    let mut hits: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let Decoded::Record(record) = decode(line, 1 << 20, chrono::Utc::now()).unwrap() else {
            continue;
        };
        let SourceRecord::Azure(azure) = &record else {
            panic!("not an Azure record: {line}")
        };
        let operation = azure.fields()["operationName"]
            .as_str()
            .unwrap()
            .to_string();
        for rule in set.evaluate(&record) {
            *hits
                .entry((rule.title.clone(), operation.clone()))
                .or_default() += 1;
        }
    }
    let hit = |title: &str, operation: &str| {
        hits.get(&(title.to_string(), operation.to_string()))
            .copied()
            .unwrap_or(0)
    };
    println!("{hits:#?}");
    assert_eq!(
        hit(
            "Application AppID Uri Configuration Changes",
            "Update service principal"
        ),
        6
    );
    assert_eq!(
        hit(
            "CA Policy Updated by Non Approved Actor",
            "Update conditional access policy"
        ),
        2
    );
    assert_eq!(
        hit(
            "CA Policy Removed by Non Approved Actor",
            "Delete conditional access policy"
        ),
        1
    );
    assert_eq!(
        hit(
            "Azure AD Only Single Factor Authentication Required",
            "Sign-in activity"
        ),
        7
    );
    assert_eq!(hit("Sign-ins by Unknown Devices", "Sign-in activity"), 6);
    assert_eq!(
        hit(
            "Application Using Device Code Authentication Flow",
            "Sign-in activity"
        ),
        2
    );
    assert_eq!(
        hit(
            "Applications That Are Using ROPC Authentication Flow",
            "Sign-in activity"
        ),
        2
    );
    assert_eq!(
        hit(
            "Potential MFA Bypass Using Legacy Client Authentication",
            "Sign-in activity"
        ),
        2
    );
    assert_eq!(hits.values().sum::<usize>(), 28, "{hits:#?}");
}

#[test]
fn sigma_matches_on_the_stratus_persistence_detonations_and_rarely_on_a_real_trail() {
    let set = sigma();
    let dir = common::shared("data/cloudtrail/stratus/detonation-logs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("aws.persistence."))
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 10);
    let mut with_a_match = Vec::new();
    for file in &files {
        let mut hits: BTreeMap<String, usize> = BTreeMap::new();
        for record in records(file) {
            for rule in set.evaluate(&record) {
                let techniques: Vec<&str> = rule.techniques.iter().map(|t| t.id.as_str()).collect();
                *hits
                    .entry(format!("{} {techniques:?}", rule.title))
                    .or_default() += 1;
            }
        }
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        println!("{name}: {hits:?}");
        if !hits.is_empty() {
            with_a_match.push(name);
        }
    }
    println!(
        "{} of 10 persistence detonations get a Sigma match",
        with_a_match.len()
    );
    // SigmaHQ has no rule for what the other seven do (CreateRole with an open trust
    // policy, CreateLoginProfile, a Lambda resource policy or code update, a Roles
    // Anywhere trust anchor, GetFederationToken): our own rules cover them.
    assert_eq!(
        with_a_match,
        [
            "aws.persistence.iam-backdoor-user",
            "aws.persistence.iam-create-admin-user",
            "aws.persistence.lambda-layer-extension"
        ]
    );

    let trail: Vec<SourceRecord> =
        std::fs::read_dir(common::shared("data/cloudtrail/invictus/CloudTrail"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .flat_map(|p| records(&p))
            .collect();
    let matched = trail
        .iter()
        .filter(|r| {
            set.evaluate(r)
                .iter()
                .any(|rule| rule.severity >= Severity::Medium)
        })
        .count();
    // The rule set's index finds exactly what trying every rule finds.
    let keys: Vec<_> = sigma().rules.iter().filter_map(|r| r.index_key()).collect();
    let by_name = keys.iter().filter(|k| k.path == ["eventName"]).count();
    println!(
        "{} of 57 CloudTrail Sigma rules indexed by a field's value, {by_name} of them by event name",
        keys.len()
    );
    assert_eq!(
        keys.len(),
        56,
        "all but the one that matches the ARN with a regex"
    );
    assert_eq!(by_name, 52);
    let mut both = RuleSet::default();
    both.add_sigma(sigma()).unwrap();
    let detonations = files.iter().flat_map(|f| records(f));
    for record in trail.iter().cloned().chain(detonations) {
        let scanned: Vec<&str> = set
            .evaluate(&record)
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        let found: Vec<&str> = both
            .evaluate(&record, &auditbridge::transforms::decode::tree::Map::new())
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(found, scanned);
    }
    let share = matched as f64 / trail.len() as f64;
    println!(
        "invictus trail: {matched} of {} records match a Sigma rule at level medium or above ({:.1} %)",
        trail.len(),
        share * 100.0
    );
    assert!(share <= 0.05, "{:.1} % of the trail", share * 100.0);
}

/// With `rules.sigma_dirs`, a Sigma match lands where our own rules' matches land: ECS
/// `threat.*` and `rule.*` (ruleset `sigma`, the Sigma id as `rule.uuid`), OCSF
/// enrichments and a Detection Finding whose analytic is the Sigma rule.
#[test]
fn sigma_matches_tag_the_documents_beside_our_rules() {
    let rules = RuleSet::load(&RulesConfig {
        dir: None,
        sigma_dirs: vec![common::shared("sigma/rules/cloud/aws")],
        ..RulesConfig::default()
    })
    .unwrap();
    let transformer = Transformer::new(
        OutputFormat::Both,
        Enrichment::new(Arc::new(rules), Arc::new(KeyInventory::new(100)), 90),
        Arc::new(Metrics::default()),
    );
    let file = common::shared(
        "data/cloudtrail/stratus/detonation-logs/aws.persistence.iam-backdoor-user.json",
    );
    let out = transformer.process(
        &std::fs::read(&file).unwrap(),
        &Origin::Inline {
            name: "stratus".into(),
        },
    );
    assert!(out.dead_letters.is_empty());
    let tagged: Vec<_> = out
        .records
        .iter()
        .filter(|r| {
            r.rules
                .iter()
                .any(|id| id == "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2")
        })
        .collect();
    assert_eq!(tagged.len(), 1, "the CreateAccessKey for another user");
    let r = tagged[0];
    assert_eq!(
        r.rules,
        [
            "aws-iam-access-key-created",
            "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2"
        ]
    );
    let ecs = common::doc(r, Format::Ecs);
    assert_eq!(ecs["rule"]["ruleset"], json!(["auditbridge", "sigma"]));
    assert_eq!(
        ecs["rule"]["uuid"],
        json!(["0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2"])
    );
    assert_eq!(ecs["rule"]["name"][1], "AWS IAM Backdoor Users Keys");
    assert!(ecs["threat"]["technique"]["id"]
        .as_array()
        .unwrap()
        .contains(&json!("T1098")));
    let finding = common::doc(r, Format::OcsfFinding);
    let related = finding["finding_info"]["related_analytics"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&finding["finding_info"]["analytic"]))
        .find(|a| a["uid"] == "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2")
        .cloned()
        .unwrap();
    assert_eq!(related["name"], "AWS IAM Backdoor Users Keys");
    assert_eq!(related["type"], "Rule");
    let violations = common::violations(&common::Schemas::load(), &out.records);
    assert!(violations.is_empty(), "{violations:#?}");
}

/// `rules test --sigma DIR` runs the events of the set's `tests/` folder: each
/// `<rule id>.match.ndjson` line must match, each `<rule id>.no_match.ndjson` line must not.
#[test]
fn a_sigma_sets_test_events_run_with_rules_test() {
    let fixture = common::repo("tests/fixtures/sigma/rules");
    let out = common::auditbridge()
        .args(["rules", "test", "--sigma"])
        .arg(&fixture)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with(" 129 passed, 0 failed\n"), "{text}");

    // The matching event filed as one that must not match: a failure, explained.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::copy(
        fixture.join("aws_iam_backdoor_users_keys.yml"),
        dir.path().join("rule.yml"),
    )
    .unwrap();
    let id = "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2";
    std::fs::copy(
        fixture.join(format!("tests/{id}.match.ndjson")),
        dir.path().join(format!("tests/{id}.no_match.ndjson")),
    )
    .unwrap();
    std::fs::write(dir.path().join("tests/no-such-rule.match.ndjson"), "{}\n").unwrap();
    let loaded = SigmaSet::load(dir.path()).unwrap();
    assert_eq!(loaded.unsupported.len(), 1);
    assert_eq!(
        loaded.unsupported[0].reason,
        "test events for `no-such-rule`, which is no loaded rule"
    );
    let out = common::auditbridge()
        .args(["rules", "test", "--sigma"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "FAIL {id} / {id}.no_match.ndjson:1: expected no match, the rule matched\n    + Sigma rule "
        )),
        "{text}"
    );
}

/// `rules.sigma_min_level` keeps only the rules at or above a level.
#[test]
fn sigma_min_level_keeps_the_rules_at_or_above_it() {
    let dir = common::shared("sigma/rules/cloud/aws");
    let all = SigmaSet::load(&dir).unwrap();
    let want = all
        .rules
        .iter()
        .filter(|r| r.severity >= Severity::Medium)
        .count();
    assert!(want > 0 && want < all.rules.len(), "{want}");
    let set = RuleSet::load(&RulesConfig {
        dir: None,
        sigma_dirs: vec![dir],
        sigma_min_level: Some(Severity::Medium),
    })
    .unwrap();
    let loaded: Vec<_> = set
        .rules()
        .iter()
        .filter(|r| r.ruleset() == "sigma")
        .collect();
    assert_eq!(loaded.len(), want);
    assert!(loaded.iter().all(|r| r.severity >= Severity::Medium));
}
