//! Memory: peak RSS of the `auditbridge` binary replaying 100,000 and then 1,000,000
//! records (ECS and OCSF with findings, dedup window on, as shipped) to a file sink. The
//! records come in files of 1,000, the size of a busy account's CloudTrail log file, so
//! the run shows whether memory stays flat as volume grows.
//!
//!   cargo bench --bench memory
//!
//! The corpus is ../shared/data/corpus/cloudtrail_real_union.ndjson.gz replayed, each copy
//! with its eventID and eventTime rewritten. The peak is the child's `VmHWM`, polled every
//! 10 ms until it exits; each size runs three times and the growth compares the medians
//! (one run's peak moves by a few MB with how the allocator's pages fall).

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PER_FILE: usize = 1_000;
const RUNS: usize = 3;

/// Write `text`'s lines into files of `PER_FILE` records under `dir`.
fn write_files(text: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, chunk) in lines.chunks(PER_FILE).enumerate() {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(dir.join(format!("{i:05}.ndjson"))).unwrap(),
        );
        for l in chunk {
            writeln!(f, "{l}").unwrap();
        }
    }
}

/// Run the binary on `input`; returns the wall time and the peak RSS in MB.
fn run(work: &Path, input: &Path) -> (Duration, f64) {
    let config = work.join("memory.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nformat = \"both\"\n[dead_letter]\npath = \"{dlq}\"\n[sources.in]\ntype = \"file\"\npaths = [\"{input}\"]\n[sinks.out]\ntype = \"file\"\npath = \"/dev/null\"\n",
            dlq = work.join("dlq.ndjson").display(),
            input = input.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditbridge"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The kernel's high-water mark of the running image: `wait4`'s ru_maxrss would also
    // count the bench process, which the child shares until it execs.
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0_f64;
    let exit = loop {
        if let Some(kb) = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| vm_hwm_kb(&s))
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    assert!(exit.success(), "auditbridge run failed: {exit}");
    (took, peak_kb / 1024.0)
}

fn vm_hwm_kb(status: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let small = common::records_arg().unwrap_or(100_000);
    let large = small * 10;
    let work = tempfile::tempdir().unwrap();
    let text = common::corpus(large);
    let lines: Vec<&str> = text.lines().collect();
    write_files(&lines[..small].join("\n"), &work.path().join("small"));
    write_files(&text, &work.path().join("large"));
    drop(lines);
    drop(text);
    println!(
        "memory bench: auditbridge run, file source ({PER_FILE} records per file) -> file sink, ECS + OCSF + findings, dedup on"
    );
    println!("| records | run | wall s | records/s | peak RSS MB |");
    println!("|---|---|---|---|---|");
    let mut medians = Vec::new();
    for (n, dir) in [(small, "small"), (large, "large")] {
        let mut peaks = Vec::new();
        for attempt in 1..=RUNS {
            let (took, peak) = run(work.path(), &work.path().join(dir));
            println!(
                "| {n} | {attempt} | {:.1} | {:.0} | {peak:.0} |",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64()
            );
            peaks.push(peak);
        }
        peaks.sort_by(f64::total_cmp);
        let median = peaks[RUNS / 2];
        println!("| {n} | median | | | {median:.0} |");
        medians.push(median);
    }
    println!(
        "growth of the median peak from {small} to {large} records: {:+.1} %",
        (medians[1] / medians[0] - 1.0) * 100.0
    );
}
