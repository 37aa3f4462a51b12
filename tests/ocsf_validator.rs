//! The OCSF server's validation rules on every OCSF document built from the real corpora
//! (CloudTrail, Entra, the Activity Log and Cloud Audit Logs, findings included): no error and no warning with the server's
//! default options. Missing recommended attributes (the server's opt-in
//! `missing_recommended` warnings) are reported, not asserted: most name what CloudTrail
//! and Entra do not record (a process, a source port, HTTP headers).

mod common;

use auditbridge::record::Format;
use auditbridge::transforms::normalize::OutputFormat;
use common::ocsf_rules::{tally, OcsfRules};
use common::{gunzip, process, shared};
use serde_json::Value;

fn documents() -> Vec<Value> {
    let mut inputs = vec![
        gunzip(&shared("data/corpus/cloudtrail_real_union.ndjson.gz")),
        gunzip(&shared("data/corpus/entra_real_union.ndjson.gz")),
        std::fs::read(common::repo(
            "tests/fixtures/cloudtrail/aws-docs-insight-events.json",
        ))
        .unwrap(),
    ];
    for dir in ["samples/cloudtrail", "samples/entra"] {
        for entry in std::fs::read_dir(common::repo(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            inputs.push(if path.extension().is_some_and(|e| e == "gz") {
                gunzip(&path)
            } else {
                bytes
            });
        }
    }
    // Elastic's Activity Log and Cloud Audit Logs pipeline inputs, read in place (Elastic
    // License 2.0).
    for dir in ["data/azure-activity/elastic", "data/gcp/elastic"] {
        for entry in std::fs::read_dir(shared(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                inputs.push(std::fs::read(&path).unwrap());
            }
        }
    }
    let mut docs = Vec::new();
    for input in inputs {
        let out = process(OutputFormat::Ocsf, &input);
        assert!(
            out.dead_letters.is_empty(),
            "{:?}",
            out.dead_letters.first()
        );
        for r in &out.records {
            for o in r
                .outputs
                .iter()
                .filter(|o| matches!(o.format, Format::Ocsf | Format::OcsfFinding))
            {
                docs.push(serde_json::from_slice(&o.body).unwrap());
            }
        }
    }
    docs
}

#[test]
fn every_ocsf_document_passes_the_ocsf_servers_rules() {
    let rules = OcsfRules::load();
    let docs = documents();
    assert!(docs.len() > 4000, "{}", docs.len());
    let findings: Vec<_> = docs.iter().flat_map(|d| rules.validate(d, false)).collect();
    for ((warning, rule, path), n) in tally(&findings) {
        let level = if warning { "warning" } else { "error" };
        println!("{n:>6} {level} {rule} {path}");
    }
    assert!(
        findings.is_empty(),
        "{} findings on {} documents, e.g. {:#?}",
        findings.len(),
        docs.len(),
        &findings[..findings.len().min(10)]
    );
    let recommended: Vec<_> = docs.iter().flat_map(|d| rules.validate(d, true)).collect();
    println!(
        "{} documents: no error, no warning; with missing_recommended on, {} warnings on {} attribute paths",
        docs.len(),
        recommended.len(),
        tally(&recommended).len()
    );
}

/// The check can fail: each rule the output once broke is caught.
#[test]
fn the_rules_catch_what_they_are_for() {
    let rules = OcsfRules::load();
    let mut doc = documents()
        .into_iter()
        .find(|d| d["class_uid"] == 6003 && d.pointer("/actor/user/type_id").is_some())
        .unwrap();
    assert!(rules.validate(&doc, false).is_empty());
    doc["actor"]["user"]["type_id"] = 1.into();
    doc["actor"]["invoked_by"] = "ec2.amazonaws.com".into();
    doc["activity_id"] = 99.into();
    doc["activity_name"] = "Other".into();
    doc["api"]["nonsense"] = true.into();
    doc.as_object_mut().unwrap().remove("time");
    let mut got: Vec<(bool, &str, String)> = rules
        .validate(&doc, false)
        .into_iter()
        .map(|f| (f.warning, f.rule, f.path))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (false, "attribute_required_missing", "time".to_string()),
            (false, "attribute_unknown", "api.nonsense".into()),
            (false, "type_uid_incorrect", "type_uid".into()),
            (true, "attribute_deprecated", "actor.invoked_by".into()),
            (
                true,
                "attribute_enum_sibling_incorrect",
                "actor.user.type".into()
            ),
            (
                true,
                "attribute_enum_sibling_suspicious_other",
                "activity_name".into()
            ),
        ]
    );
}
