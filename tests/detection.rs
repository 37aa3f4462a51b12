//! MITRE ATT&CK tagging on real trails: the noise bound on a mostly benign trail, every
//! Stratus persistence detonation tagged with its technique, and Panther's labelled rule
//! tests as extra positive and negative cases.

mod common;

use std::collections::BTreeMap;

use auditbridge::record::{Format, Record};
use auditbridge::transforms::normalize::OutputFormat;
use common::{doc, process, shared, Schemas};
use serde_json::Value;

/// The ATT&CK ids a record's ECS document is tagged with (techniques and sub-techniques).
fn tagged_ids(record: &Record) -> Vec<String> {
    let ecs = doc(record, Format::Ecs);
    let mut ids = Vec::new();
    for pointer in ["/threat/technique/id", "/threat/technique/subtechnique/id"] {
        if let Some(Value::Array(list)) = ecs.pointer(pointer) {
            ids.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    ids
}

fn event_name(record: &Record) -> String {
    doc(record, Format::Ecs)["event"]["action"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn invictus_trail_noise_bound_and_must_tag_events() {
    let dir = shared("data/cloudtrail/invictus/CloudTrail");
    let mut total = 0;
    let mut tagged = 0;
    let mut must: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let out = process(
            OutputFormat::Both,
            &std::fs::read(entry.unwrap().path()).unwrap(),
        );
        for r in &out.records {
            total += 1;
            let ids = tagged_ids(r);
            let name = event_name(r);
            if !ids.is_empty() {
                tagged += 1;
                let findings = r.outputs_of(Format::OcsfFinding).count();
                assert_eq!(
                    findings, 1,
                    "one Detection Finding per tagged record ({name})"
                );
            }
            if [
                "CreateAccessKey",
                "CreateLoginProfile",
                "UpdateAssumeRolePolicy",
                "CreateUser",
            ]
            .contains(&name.as_str())
            {
                let e = must.entry(name).or_default();
                e.0 += 1;
                e.1 += usize::from(!ids.is_empty());
            }
        }
    }
    assert_eq!(total, 2900);
    assert!(
        tagged * 100 <= total * 5,
        "{tagged} of {total} records tagged: over 5 %"
    );
    assert!(tagged > 0);
    let expected: BTreeMap<String, (usize, usize)> = [
        ("CreateAccessKey", (2, 2)),
        ("CreateLoginProfile", (2, 2)),
        ("CreateUser", (4, 4)),
        ("UpdateAssumeRolePolicy", (2, 2)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(must, expected, "(seen, tagged) per must-tag event");
}

#[test]
fn every_stratus_persistence_detonation_is_tagged_with_its_technique() {
    let index: Vec<Value> = serde_json::from_slice(
        &std::fs::read(shared(
            "data/cloudtrail/stratus/technique_events_index.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let dir = shared("data/cloudtrail/stratus/detonation-logs");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if !name.starts_with("aws.persistence.") {
            continue;
        }
        let technique = index.iter().find(|t| t["id"] == name.as_str()).unwrap();
        // "T1098.001 Account Manipulation: …" → "T1098.001"; some techniques carry none.
        let want: Option<String> = technique["ttc"]
            .as_array()
            .and_then(|l| l.first())
            .and_then(Value::as_str)
            .map(|s| s.split(' ').next().unwrap().to_string());
        let out = process(OutputFormat::Both, &std::fs::read(&path).unwrap());
        assert!(out.dead_letters.is_empty());
        let hit = out.records.iter().any(|r| {
            let ids = tagged_ids(r);
            match &want {
                Some(id) => ids.contains(id),
                None => !ids.is_empty(),
            }
        });
        assert!(hit, "{name}: no record tagged with {want:?}");
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// Panther rules whose positive test events must carry our technique.
const PANTHER_POSITIVES: &[(&str, &str)] = &[
    ("AWS.IAM.Backdoor.User.Keys", "T1098.001"),
    ("AWS.CloudTrail.RootAccessKeyCreated", "T1098.001"),
    ("AWS.User.Login.Profile.Modified", "T1098.001"),
    ("AWS.IAM.CreateUser", "T1136.003"),
    ("AWS.IAM.CreateRole", "T1136.003"),
    ("AWS.IAM.BackdoorRole", "T1484.002"),
    ("AWS.EC2.Startup.Script.Change", "T1059"),
    ("AWS.Lambda.UpdateFunctionCode", "T1525"),
    ("AWS.CloudTrail.ShortLifecycle", "T1053.007"),
    ("Azure.Audit.ServicePrincipalCredentialsAdded", "T1098.001"),
    ("Azure.Audit.DomainSettingsModified", "T1484.002"),
    ("Azure.Audit.InviteExternalUsers", "T1136.003"),
    ("Azure.Audit.RoleChangedPIM", "T1098.003"),
];

/// Panther rules whose negative test events must stay untagged: the same event names
/// without the condition that makes them persistence.
const PANTHER_NEGATIVES: &[&str] = &[
    "AWS.EC2.Startup.Script.Change",
    "AWS.IAM.CreateUser",
    "AWS.IAM.CreateRole",
    "Azure.Audit.ServicePrincipalCredentialsAdded",
];

#[test]
fn panther_labelled_events_agree() {
    let text = std::fs::read_to_string(shared("data/labeled/panther-rule-tests.ndjson")).unwrap();
    let mut positives = 0;
    let mut negatives = 0;
    for line in text.lines() {
        let case: Value = serde_json::from_str(line).unwrap();
        let rule = case["rule_id"].as_str().unwrap();
        let expected = case["expected_result"].as_bool().unwrap();
        let positive = PANTHER_POSITIVES
            .iter()
            .find(|(r, _)| *r == rule)
            .filter(|_| expected);
        let negative = !expected && PANTHER_NEGATIVES.contains(&rule);
        if positive.is_none() && !negative {
            continue;
        }
        let out = process(OutputFormat::Both, case["log"].to_string().as_bytes());
        assert_eq!(out.records.len(), 1, "{rule} / {}", case["test_name"]);
        let ids = tagged_ids(&out.records[0]);
        if let Some((_, technique)) = positive {
            assert!(
                ids.iter().any(|i| i == technique),
                "{rule} / {}: tagged {ids:?}, want {technique}",
                case["test_name"]
            );
            positives += 1;
        } else {
            assert!(
                ids.is_empty(),
                "{rule} / {}: tagged {ids:?}, want none",
                case["test_name"]
            );
            negatives += 1;
        }
    }
    assert_eq!((positives, negatives), (18, 5));
}

#[test]
fn tagged_output_is_schema_valid_and_names_the_technique() {
    let schemas = Schemas::load();
    let path =
        shared("data/cloudtrail/stratus/detonation-logs/aws.persistence.iam-backdoor-user.json");
    let out = process(OutputFormat::Both, &std::fs::read(path).unwrap());
    let r = &out.records[0];
    assert!(common::violations(&schemas, &out.records).is_empty());
    let ecs = doc(r, Format::Ecs);
    assert_eq!(ecs["threat"]["framework"], "MITRE ATT&CK");
    assert_eq!(
        ecs["threat"]["technique"]["id"],
        serde_json::json!(["T1098"])
    );
    assert_eq!(
        ecs["threat"]["technique"]["name"],
        serde_json::json!(["Account Manipulation"])
    );
    assert_eq!(
        ecs["threat"]["technique"]["subtechnique"]["id"],
        serde_json::json!(["T1098.001"])
    );
    assert_eq!(
        ecs["threat"]["technique"]["subtechnique"]["name"],
        serde_json::json!(["Additional Cloud Credentials"])
    );
    assert_eq!(
        ecs["threat"]["technique"]["subtechnique"]["reference"],
        serde_json::json!(["https://attack.mitre.org/techniques/T1098/001"])
    );
    assert_eq!(
        ecs["threat"]["tactic"]["id"],
        serde_json::json!(["TA0003", "TA0004"])
    );
    assert_eq!(
        ecs["rule"]["id"],
        serde_json::json!(["aws-iam-access-key-created"])
    );
    assert_eq!(ecs["tags"], serde_json::json!(["attack.T1098.001"]));
    let activity = doc(r, Format::Ocsf);
    assert_eq!(activity["enrichments"][1]["value"], "T1098.001");
    let finding = doc(r, Format::OcsfFinding);
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["severity_id"], 3);
    assert_eq!(
        finding["finding_info"]["analytic"]["uid"],
        "aws-iam-access-key-created"
    );
    assert_eq!(
        finding["finding_info"]["attacks"][0]["sub_technique"]["uid"],
        "T1098.001"
    );
    assert_eq!(
        finding["finding_info"]["attacks"][0]["tactic"]["uid"],
        "TA0003"
    );
    assert_eq!(
        finding["finding_info"]["related_events"][0]["uid"],
        activity["metadata"]["uid"]
    );
}

#[test]
fn failed_calls_are_tagged_as_attempts() {
    let event = r#"{"eventTime":"2024-03-01T10:00:00Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","errorCode":"AccessDenied","errorMessage":"not authorized","requestParameters":{"userName":"x"},"recipientAccountId":"123456789012"}"#;
    let out = process(OutputFormat::Both, event.as_bytes());
    let ecs = doc(&out.records[0], Format::Ecs);
    assert_eq!(ecs["event"]["outcome"], "failure");
    assert_eq!(
        ecs["tags"],
        serde_json::json!(["attack.T1136.003", "attack.attempt"])
    );
    let finding = doc(&out.records[0], Format::OcsfFinding);
    assert_eq!(
        finding["finding_info"]["types"],
        serde_json::json!(["MITRE ATT&CK", "Attempt"])
    );
}
