//! Elastic Security's prebuilt detection rules, run on auditbridge's ECS output: the content
//! an Elastic user already has must work on what we write. The rules and Elastic's KQL
//! library are read from `../shared/elastic/detection-rules/` (Elastic License 2.0, test
//! use only); `tests/elastic/run_rules.py` evaluates KQL and single-event EQL with them and
//! the PyPI `eql` package, which `scripts/install-test-servers.sh` installs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use auditbridge::record::Format;
use auditbridge::transforms::normalize::OutputFormat;
use serde_json::Value;

/// The ECS documents auditbridge writes for the records in `input`, one per line.
fn ecs_lines(input: &Path) -> String {
    let out = common::process(OutputFormat::Ecs, &std::fs::read(input).unwrap());
    assert!(
        out.dead_letters.is_empty(),
        "{}: {:?}",
        input.display(),
        out.dead_letters
    );
    out.records
        .iter()
        .flat_map(|r| &r.outputs)
        .filter(|o| o.format == Format::Ecs)
        .map(|o| format!("{}\n", String::from_utf8_lossy(&o.body)))
        .collect()
}

fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn elastic_prebuilt_rules_fire_on_the_stratus_detonations() {
    let python = std::env::var("AUDITBRIDGE_TEST_ELASTIC_PYTHON").expect(
        "AUDITBRIDGE_TEST_ELASTIC_PYTHON is not set: run the suite with scripts/test.sh, which installs eql",
    );
    let work = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    let detonations = json_files(&common::shared("data/cloudtrail/stratus/detonation-logs"));
    assert_eq!(detonations.len(), 35);
    for file in &detonations {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let docs = work.path().join(format!("{name}.ndjson"));
        std::fs::write(&docs, ecs_lines(file)).unwrap();
        args.push(format!("{name}={}", docs.display()));
    }
    let trail: String = json_files(&common::shared("data/cloudtrail/invictus/CloudTrail"))
        .iter()
        .map(|f| ecs_lines(f))
        .collect();
    let entra: Vec<_> = walk(&common::shared("data/entra/elastic"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    let entra_docs = work.path().join("entra.ndjson");
    std::fs::write(
        &entra_docs,
        entra.iter().map(|f| ecs_lines(f)).collect::<String>(),
    )
    .unwrap();
    args.push(format!("entra={}", entra_docs.display()));
    let activity_docs = work.path().join("activity.ndjson");
    std::fs::write(&activity_docs, activity_lines()).unwrap();
    args.push(format!("activity={}", activity_docs.display()));
    let trail_docs = work.path().join("invictus.ndjson");
    std::fs::write(&trail_docs, &trail).unwrap();
    args.push(format!("invictus={}", trail_docs.display()));

    let out = std::process::Command::new(&python)
        .arg(common::repo("tests/elastic/run_rules.py"))
        .arg(common::shared("elastic/detection-rules"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fired = |label: &str| -> BTreeMap<String, u64> {
        report["files"][label]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    };
    let evaluated = report["rules"].as_u64().unwrap();
    println!(
        "{evaluated} rules evaluated, skipped: {}",
        report["skipped"]
    );
    let mut files_with_a_hit = 0;
    for file in &detonations {
        let name = file.file_stem().unwrap().to_string_lossy();
        let hits = fired(&name);
        files_with_a_hit += usize::from(!hits.is_empty());
        println!("{name}: {hits:?}");
    }
    let noise = fired("invictus");
    println!(
        "invictus trail ({} documents): {} rules fire, {} alerts: {noise:?}",
        trail.lines().count(),
        noise.len(),
        noise.values().sum::<u64>()
    );
    println!("{files_with_a_hit} of 35 detonation files make a rule fire");
    let entra_hits = fired("entra");
    println!("Entra ID samples (Elastic's pipeline test inputs): {entra_hits:?}");
    println!(
        "rules the KQL library could not evaluate on some document: {}",
        report["evaluation_errors"]
    );
    assert!(
        evaluated >= 200,
        "only {evaluated} rules could be evaluated"
    );
    // The issue asks for 31; 34 is what this output reaches (the 35th is caught only by
    // ES|QL rules), and the README says so.
    assert!(
        files_with_a_hit >= 34,
        "a rule fires on only {files_with_a_hit} of the 35 detonation files"
    );
    // Each convention adopted from Elastic's integration, shown by a rule that needs it:
    // `data_stream.dataset` (every rule), the Java text of `requestParameters` and
    // `info` in `event.type` (EQL `info where`), `console_login.additional_eventdata`.
    for (file, rule) in [
        (
            "aws.persistence.iam-create-admin-user",
            "AWS IAM AdministratorAccess Policy Attached to User",
        ),
        (
            "aws.persistence.lambda-backdoor-function",
            "AWS Lambda Function Policy Updated to Allow Cross-Account Invocation",
        ),
        (
            "aws.persistence.rolesanywhere-create-trust-anchor",
            "AWS IAM Roles Anywhere Trust Anchor Created with External CA",
        ),
        (
            "aws.initial-access.console-login-without-mfa",
            "AWS IAM User Console Login Without MFA",
        ),
    ] {
        assert_eq!(fired(file).get(rule), Some(&1), "{rule} on {file}");
    }
    assert_eq!(
        entra_hits.get("Entra ID Service Principal Credentials Created by Unusual User"),
        Some(&1)
    );
    let activity_hits = fired("activity");
    println!(
        "Azure Activity Log (Elastic's samples and our rules' test events): {activity_hits:?}"
    );
    // Each needs the operation in upper case and `event.outcome`; the second also
    // `identity.authorization.evidence.principal_type` and `azure.resource.id`.
    for rule in [
        "Azure Automation Runbook Created or Modified",
        "Azure VM Extension Deployment by User",
    ] {
        assert!(
            activity_hits.contains_key(rule),
            "{rule}: {activity_hits:?}"
        );
    }
}

/// ECS documents for Azure Activity Log records: Elastic's own pipeline-test inputs, and
/// the events our Activity Log rules expect to match (`config/rules/azure-activity.toml`).
fn activity_lines() -> String {
    let mut lines: String = walk(&common::shared("data/azure-activity/elastic"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|f| ecs_lines(&f))
        .collect();
    let rules: toml::Table = toml::from_str(
        &std::fs::read_to_string(common::repo("config/rules/azure-activity.toml")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let matching: String = rules["rule"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["tests"].as_array().unwrap())
        .filter(|test| test["expect"].as_bool() == Some(true))
        .map(|test| format!("{}\n", test["event"].as_str().unwrap()))
        .collect();
    std::fs::write(&events, matching).unwrap();
    lines.push_str(&ecs_lines(&events));
    lines
}
