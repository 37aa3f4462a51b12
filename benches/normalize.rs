//! Normalization throughput against the JSON limit: the same corpus lines through
//! auditbridge's transform stage (decode, normalize, enrich, serialize) and through a raw
//! serde_json round-trip (parse into `Value`, serialize back), single thread, same run.
//!
//!   cargo bench --bench normalize
//!
//! The corpus is ../shared/data/corpus/cloudtrail_real_union.ndjson.gz replayed to
//! 100,000 records, each copy with its eventID and eventTime rewritten.

#[path = "common/mod.rs"]
mod common;
#[path = "common/rss.rs"]
mod rss;

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::metrics::Metrics;
use auditbridge::rules::{RuleSet, RulesConfig};
use auditbridge::transforms::enrich::geoip::GeoIp;
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;
use serde_json::Value;

/// Records replayed unless `--records N` is given (a profiler wants fewer).
const RECORDS: usize = 100_000;
/// Lines per input unit, as a CloudTrail file or an SQS batch would carry them.
const CHUNK: usize = 1_000;

/// Optional enrichment a case turns on.
#[derive(Clone, Copy)]
enum Extra {
    None,
    UserAgent,
    GeoIp,
    /// Every SigmaHQ cloud rule of `../shared/sigma` beside the built-in rules.
    Sigma,
}

fn transformer(format: OutputFormat, extra: Extra) -> Transformer {
    let sigma_dirs =
        match extra {
            Extra::Sigma => vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/sigma/rules/cloud")],
            _ => Vec::new(),
        };
    let rules = Arc::new(
        RuleSet::load(&RulesConfig {
            dir: None,
            sigma_dirs,
            ..RulesConfig::default()
        })
        .unwrap(),
    );
    let mut enrichment = Enrichment::new(rules, Arc::new(KeyInventory::new(100_000)), 90);
    match extra {
        Extra::None | Extra::Sigma => {}
        Extra::UserAgent => enrichment = enrichment.with_user_agent(),
        Extra::GeoIp => {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geoip");
            let geoip = GeoIp::open(
                Some(&dir.join("City-Test.mmdb")),
                Some(&dir.join("ASN-Test.mmdb")),
            )
            .unwrap();
            enrichment = enrichment.with_geoip(geoip);
        }
    }
    Transformer::new(format, enrichment, Arc::new(Metrics::default()))
}

fn round_trip(lines: &[&str]) -> usize {
    let mut out = 0;
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        out += serde_json::to_string(&v).unwrap().len();
    }
    out
}

fn best_of<F: FnMut() -> usize>(runs: usize, mut f: F) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let start = Instant::now();
        n = f();
        best = best.min(start.elapsed());
    }
    (best, n)
}

fn main() {
    let records = common::records_arg().unwrap_or(RECORDS);
    let text = common::corpus(records);
    let lines: Vec<&str> = text.lines().collect();
    let chunks: Vec<String> = lines.chunks(CHUNK).map(|c| c.join("\n")).collect();
    let mb = text.len() as f64 / 1e6;
    println!(
        "corpus: {} records ({mb:.1} MB) from cloudtrail_real_union.ndjson.gz, eventID and eventTime rewritten per copy; single thread, best of 3",
        lines.len()
    );
    let (base, _) = best_of(3, || round_trip(&lines));
    let base_rate = lines.len() as f64 / base.as_secs_f64();
    println!("| case | records/s | MB/s | ratio | peak RSS MB |");
    println!("|---|---|---|---|---|");
    println!(
        "| serde_json round-trip (Value) | {base_rate:.0} | {:.1} | 1.00 | {:.0} |",
        mb / base.as_secs_f64(),
        rss::peak_rss_mb()
    );
    let origin = Origin::Inline {
        name: "bench".into(),
    };
    for (name, format, extra) in [
        ("ECS + ATT&CK + key age", OutputFormat::Ecs, Extra::None),
        (
            "ECS + ATT&CK + key age + user agents (enrich.user_agent)",
            OutputFormat::Ecs,
            Extra::UserAgent,
        ),
        (
            "ECS + ATT&CK + key age + GeoIP/ASN (test databases)",
            OutputFormat::Ecs,
            Extra::GeoIp,
        ),
        (
            "ECS + ATT&CK + key age + SigmaHQ's 154 cloud rules (rules.sigma_dirs)",
            OutputFormat::Ecs,
            Extra::Sigma,
        ),
        (
            "ECS and OCSF (with findings)",
            OutputFormat::Both,
            Extra::None,
        ),
    ] {
        let t = transformer(format, extra);
        let (took, n) = best_of(3, || {
            chunks
                .iter()
                .map(|c| t.process(c.as_bytes(), &origin).records.len())
                .sum()
        });
        assert_eq!(n, lines.len(), "every record decoded");
        let rate = n as f64 / took.as_secs_f64();
        println!(
            "| {name} | {rate:.0} | {:.1} | {:.2} | {:.0} |",
            mb / took.as_secs_f64(),
            rate / base_rate,
            rss::peak_rss_mb()
        );
    }
}
