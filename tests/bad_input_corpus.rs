//! The bad-input corpus (`tests/fixtures/bad/`, table in its README, files written by its
//! `generate.py`): every case must end as `cases.tsv` says — dead-lettered with the
//! expected kind and a reason naming the problem, or skipped and counted — without a
//! panic, and with the good records around it delivered. A last test runs the whole
//! directory through a real pipeline to a file sink.

mod common;

use std::sync::Arc;

use auditbridge::event::Origin;
use auditbridge::metrics::Metrics;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;

struct Case {
    file: String,
    expect: String,
    reason: String,
    good: usize,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(common::repo("tests/fixtures/bad/cases.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Case {
                file: f[0].to_string(),
                expect: f[1].to_string(),
                reason: f[2].to_string(),
                good: f[3].parse().unwrap(),
            }
        })
        .collect()
}

/// The configured caps the corpus is checked against: 16 MiB decompressed, 4 MiB records.
fn transformer(metrics: Arc<Metrics>) -> Transformer {
    let mut t = Transformer::new(OutputFormat::Ecs, common::enrichment(), metrics);
    t.limits.max_decompressed_bytes = 16 << 20;
    t.limits.max_record_bytes = 4 << 20;
    t
}

#[test]
fn the_corpus_has_at_least_fifty_cases_and_each_is_in_the_readme() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let readme = std::fs::read_to_string(common::repo("tests/fixtures/bad/README.md")).unwrap();
    for c in &cases {
        assert!(
            readme.contains(&format!("`{}`", c.file)),
            "{} missing from the README table",
            c.file
        );
    }
}

#[test]
fn every_case_ends_as_the_table_says() {
    let mut failures = Vec::new();
    for c in cases() {
        let bytes = std::fs::read(common::repo(&format!("tests/fixtures/bad/{}", c.file))).unwrap();
        let metrics = Arc::new(Metrics::default());
        let t = transformer(Arc::clone(&metrics));
        let out = t.process(
            &bytes,
            &Origin::Inline {
                name: c.file.clone(),
            },
        );
        let good = out.records.len();
        let kinds: Vec<&str> = out.dead_letters.iter().map(|d| d.kind).collect();
        let ok = match c.expect.as_str() {
            "none" => out.dead_letters.is_empty(),
            skip if skip.starts_with("skip:") => {
                out.dead_letters.is_empty()
                    && metrics.skip_reasons().get(&skip["skip:".len()..]) == Some(&1)
            }
            kind => {
                out.dead_letters.len() == 1
                    && kinds[0] == kind
                    && out.dead_letters[0].reason.contains(&c.reason)
            }
        };
        if !ok || good != c.good {
            failures.push(format!(
                "{}: expected {} ({:?}) with {} good records; got {:?} {:?} with {good}",
                c.file,
                c.expect,
                c.reason,
                c.good,
                kinds,
                out.dead_letters
                    .iter()
                    .map(|d| d.reason.as_str())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A record with a 10 MB string, between two good ones: over the record cap, dead-lettered
/// as `too_large`; the good ones pass. Built here rather than stored.
#[test]
fn a_ten_megabyte_string_is_refused_by_the_record_cap() {
    let sample = std::fs::read_to_string(common::repo(
        "samples/cloudtrail/stratus-aws.persistence.iam-backdoor-user.json",
    ))
    .unwrap();
    let record: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&sample).unwrap()[0].clone();
    let mut big = record.clone();
    big["requestParameters"] = serde_json::json!({ "policyDocument": "A".repeat(10 << 20) });
    let text = format!("{record}\n{big}\n{record}\n");
    let t = transformer(Arc::new(Metrics::default()));
    let out = t.process(text.as_bytes(), &Origin::Inline { name: "big".into() });
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.dead_letters.len(), 1);
    assert_eq!(out.dead_letters[0].kind, "too_large");
    assert!(out.dead_letters[0]
        .reason
        .contains("limits.max_record_bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_corpus_through_a_pipeline_delivers_every_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let good: usize = cases.iter().map(|c| c.good).sum();
    let letters: usize = cases
        .iter()
        .filter(|c| c.expect != "none" && !c.expect.starts_with("skip:"))
        .count();
    let config = format!(
        r#"[pipeline]
format = "ecs"
[limits]
max_decompressed_bytes = 16777216
[dedup]
enabled = false
[sources.bad]
type = "file"
paths = ["{corpus}/*.json", "{corpus}/*.ndjson", "{corpus}/*.gz"]
[sinks.out]
type = "file"
path = "{dir}/out.ndjson"
"#,
        corpus = common::repo("tests/fixtures/bad").display(),
        dir = dir.path().display()
    );
    let m = common::run_pipeline(&config, &dir.path().join("dlq.ndjson")).await;
    assert_eq!(Metrics::get(&m.records_emitted), good as u64);
    assert_eq!(Metrics::get(&m.dead_lettered), letters as u64);
    assert_eq!(
        Metrics::get(&m.batches_acked),
        cases.len() as u64,
        "every file acknowledged"
    );
    let dlq = std::fs::read_to_string(dir.path().join("dlq.ndjson")).unwrap();
    assert_eq!(dlq.lines().count(), letters);
}
