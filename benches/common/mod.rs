//! Shared by the benchmarks: the real CloudTrail corpus replayed to any size.

use std::io::Read;

use serde_json::Value;

/// ../shared/data/corpus/cloudtrail_real_union.ndjson.gz replayed to `records` NDJSON
/// lines, each copy with its eventID and eventTime rewritten so every record is distinct.
pub fn corpus(records: usize) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/corpus/cloudtrail_real_union.ndjson.gz"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let base = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    let mut out = String::new();
    'outer: for copy in 0.. {
        for (i, line) in lines.iter().enumerate() {
            let n = copy * lines.len() + i;
            if n == records {
                break 'outer;
            }
            let mut v = line.clone();
            v["eventID"] = Value::String(format!("bench-{copy}-{i}"));
            v["eventTime"] = Value::String(
                (base + chrono::Duration::seconds(n as i64))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            out.push_str(&v.to_string());
            out.push('\n');
        }
    }
    out
}

/// `--records N` from the command line (after `cargo bench --bench X --`).
pub fn records_arg() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--records")?;
    args.get(at + 1).and_then(|n| n.parse().ok())
}
