//! What a user sees: the whole `auditbridge replay` process on one core, against a plain
//! serde_json round-trip of the same lines on the same core that writes nothing.
//!
//!   cargo bench --bench replay              (200,000 records)
//!   cargo bench --bench replay -- --records 50000
//!   scripts/build-pgo.sh && AUDITBRIDGE_PGO_BINARY=target/pgo/auditbridge cargo bench --bench replay
//!
//! The last also times the profile-guided build, the one the container image ships, in
//! the same rounds as cargo's build.
//!
//! The bench pins itself to CPU 0 with `taskset` (util-linux); the `replay` process it starts
//! inherits the pinning. Output goes to /dev/null, the summary on stderr is discarded.

#[path = "common/mod.rs"]
mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const RECORDS: usize = 200_000;

/// Rounds of every case; each case's fastest counts.
const ROUNDS: usize = 3;

const FORMATS: [(&str, Option<f64>); 3] = [("ecs", Some(1.0)), ("both", Some(0.6)), ("raw", None)];

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The baseline: every line of `file` parsed into a `Value` and serialized back, nothing
/// written. The file is streamed through one reused line buffer, as `replay` streams it:
/// read whole into one string, the baseline spent up to 40 % of its time in the kernel
/// (`perf stat`: 0.66 s system of 1.60 s for 200,605 lines), placing and zeroing the
/// pages of a 250 MB allocation, an amount that moved from run to run by more than the
/// JSON work it is there to measure.
fn round_trip(file: &Path) {
    let mut input = BufReader::with_capacity(1 << 20, File::open(file).unwrap());
    let mut line = Vec::new();
    let mut bytes = 0;
    while input.read_until(b'\n', &mut line).unwrap() > 0 {
        let v: Value = serde_json::from_slice(&line).unwrap();
        bytes += serde_json::to_string(&v).unwrap().len();
        line.clear();
    }
    assert!(bytes > 0);
}

fn main() {
    let pinned = Command::new("taskset")
        .args(["-cp", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        pinned,
        "taskset (util-linux) is needed to pin the bench to one core"
    );

    let records = common::records_arg().unwrap_or(RECORDS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpus.ndjson");
    std::fs::write(&file, common::corpus(records)).unwrap();
    let mb = std::fs::metadata(&file).unwrap().len() as f64 / 1e6;
    println!(
        "corpus: {records} records ({mb:.1} MB) from cloudtrail_real_union.ndjson.gz, eventID and eventTime rewritten per copy; one core (taskset -c 0); {ROUNDS} rounds of the baseline and every case in turn, each one's fastest"
    );

    let mut builds = vec![(
        "cargo build --release",
        env!("CARGO_BIN_EXE_auditbridge").to_string(),
    )];
    if let Ok(pgo) = std::env::var("AUDITBRIDGE_PGO_BINARY") {
        assert!(
            Path::new(&pgo).is_file(),
            "AUDITBRIDGE_PGO_BINARY={pgo} is not a file: build it with scripts/build-pgo.sh"
        );
        builds.push(("scripts/build-pgo.sh", pgo));
    }

    // The cases take turns, round after round: on a shared machine whose speed drifts, a
    // baseline timed before the cases swung their ratios by as much as 16 %.
    let mut base = Duration::MAX;
    let mut fastest = vec![[Duration::MAX; FORMATS.len()]; builds.len()];
    for _ in 0..ROUNDS {
        base = base.min(timed(|| round_trip(&file)));
        for ((_, binary), per_format) in builds.iter().zip(&mut fastest) {
            for ((format, _), best) in FORMATS.iter().zip(per_format.iter_mut()) {
                *best = (*best).min(timed(|| replay(binary, format, &file)));
            }
        }
    }
    let base_rate = records as f64 / base.as_secs_f64();
    println!("| case | build | records/s | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    println!("| serde_json round-trip (`Value`), reads the file, writes nothing | | {base_rate:.0} | 1.00 | | |");
    for ((build, _), per_format) in builds.iter().zip(fastest) {
        for ((format, goal), took) in FORMATS.iter().zip(per_format) {
            let rate = records as f64 / took.as_secs_f64();
            let ratio = rate / base_rate;
            let (goal, met) = match goal {
                Some(g) => (
                    format!("≥ {g:.1}"),
                    if ratio >= *g {
                        "yes".to_string()
                    } else {
                        format!("no (−{:.2})", g - ratio)
                    },
                ),
                None => (String::new(), String::new()),
            };
            println!("| `replay --format {format}` > /dev/null | `{build}` | {rate:.0} | **{ratio:.2}** | {goal} | {met} |");
        }
    }
}

fn replay(binary: &str, format: &str, file: &Path) {
    let status = Command::new(binary)
        .args(["replay", "--format", format])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "{binary} replay --format {format}: {status}"
    );
}
