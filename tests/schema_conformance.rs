//! Every real record in the shared corpora decodes without a dead letter, and every
//! document built from it validates: OCSF against the 1.8.0 class schemas, ECS against
//! the 9.4.0 field list.

mod common;

use auditbridge::transforms::normalize::OutputFormat;
use common::{gunzip, process, shared, valid_records, violations, Schemas};

fn assert_clean(name: &str, bytes: &[u8], expected_records: usize) {
    let schemas = Schemas::load();
    let out = process(OutputFormat::Both, bytes);
    let dead: Vec<_> = out
        .dead_letters
        .iter()
        .take(5)
        .map(|d| d.reason.clone())
        .collect();
    assert!(
        out.dead_letters.is_empty(),
        "{name}: {} dead letters, e.g. {dead:?}",
        out.dead_letters.len()
    );
    assert_eq!(out.records.len(), expected_records, "{name}");
    let v = violations(&schemas, &out.records);
    assert!(
        v.is_empty(),
        "{name}: {} violations, first: {:#?}",
        v.len(),
        &v[..v.len().min(15)]
    );
}

#[test]
fn cloudtrail_corpus_all_records_valid() {
    let bytes = gunzip(&shared("data/corpus/cloudtrail_real_union.ndjson.gz"));
    assert_clean("cloudtrail corpus", &bytes, 3785);
}

#[test]
fn entra_corpus_all_records_valid() {
    let bytes = gunzip(&shared("data/corpus/entra_real_union.ndjson.gz"));
    assert_clean("entra corpus", &bytes, 56);
}

#[test]
fn invictus_s3_files_all_records_valid() {
    let dir = shared("data/cloudtrail/invictus/CloudTrail");
    let schemas = Schemas::load();
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let records = valid_records(
            &schemas,
            &path.display().to_string(),
            &std::fs::read(&path).unwrap(),
        );
        total += records.len();
    }
    assert_eq!(total, 2900);
}

#[test]
fn cloudtrail_insight_events_valid() {
    let bytes = std::fs::read(common::repo(
        "tests/fixtures/cloudtrail/aws-docs-insight-events.json",
    ))
    .unwrap();
    assert_clean("insight events", &bytes, 2);
}

#[test]
fn log_analytics_dialect_valid() {
    let bytes = std::fs::read(common::repo(
        "samples/entra/otrf-aad-audit-log-analytics.ndjson",
    ))
    .unwrap();
    assert_clean("otrf log analytics", &bytes, 4);
}

#[test]
fn ecs_checker_rejects_unknown_fields_and_bad_types() {
    let schemas = Schemas::load();
    let doc = serde_json::json!({"event": {"action": "x", "made_up": "y"}, "source": {"ip": "AWS Internal"}, "aws": {"cloudtrail": {"anything": 1}}});
    let errs = schemas.ecs_errors(&doc);
    assert_eq!(errs.len(), 2, "{errs:?}");
}
