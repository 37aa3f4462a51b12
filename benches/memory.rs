//! Memory: peak RSS of the `auditbridge` binary replaying 100,000 and then 1,000,000
//! records (ECS and OCSF with findings, dedup window on, as shipped) to a file sink. The
//! records come in files of 1,000, the size of a busy account's CloudTrail log file, so
//! the run shows whether memory stays flat as volume grows.
//!
//! Then one input of an unusual shape at a time, through `run` (file source → file sink)
//! and `replay`, at the default settings: 40 million `{}` lines gzipped, the million
//! records as one NDJSON file and as one `{"Records":[…]}` file, and a 2 GiB gzip bomb.
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
    measure(&["run", "--config", config.to_str().unwrap()])
}

/// `auditbridge replay --format both <input>`, its output thrown away.
fn replay(input: &Path) -> (Duration, f64) {
    measure(&["replay", "--format", "both", input.to_str().unwrap()])
}

/// Run the binary with `args`; the wall time and the peak RSS in MB.
fn measure(args: &[&str]) -> (Duration, f64) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditbridge"))
        .args(args)
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
    assert!(exit.success(), "auditbridge {args:?} failed: {exit}");
    (took, peak_kb / 1024.0)
}

/// `lines` times `line`, gzipped as written, into `path`.
fn gzip_of(path: &Path, line: &[u8], lines: usize) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let block = line.repeat((1 << 20) / line.len().max(1));
    let per_block = block.len() / line.len();
    for _ in 0..lines / per_block {
        enc.write_all(&block).unwrap();
    }
    for _ in 0..lines % per_block {
        enc.write_all(line).unwrap();
    }
    enc.finish().unwrap().flush().unwrap();
}

/// Peak RSS of `run` and `replay` on each unusual input, against the 150 MB goal.
fn unusual_inputs(work: &Path, text: &str) {
    let dir = work.join("unusual");
    std::fs::create_dir_all(&dir).unwrap();
    let empties = dir.join("empties.json.gz");
    gzip_of(&empties, b"{}\n", 40_000_000);
    let ndjson = dir.join("records.ndjson");
    std::fs::write(&ndjson, text).unwrap();
    let envelope = dir.join("records.json");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&envelope).unwrap());
        f.write_all(b"{\"Records\":[").unwrap();
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                f.write_all(b",").unwrap();
            }
            f.write_all(line.as_bytes()).unwrap();
        }
        f.write_all(b"]}").unwrap();
    }
    let bomb = dir.join("bomb.json.gz");
    gzip_of(&bomb, &[b' '; 1 << 20], 2048);
    println!();
    println!("one unusual input at a time, default settings; goal: peak RSS ≤ 150 MB");
    println!("| input | size on disk MB | command | wall s | peak RSS MB | goal met |");
    println!("|---|---|---|---|---|---|");
    let cases = [
        ("40 million `{}` lines, gzipped", &empties),
        ("one NDJSON file of real records", &ndjson),
        (
            "the same records as one `{\"Records\":[…]}` file",
            &envelope,
        ),
        ("a 2 GiB gzip bomb (dead-lettered at the cap)", &bomb),
    ];
    for (label, path) in cases {
        let mb = std::fs::metadata(path).unwrap().len() as f64 / 1e6;
        for (command, (took, peak)) in [("run", run(work, path)), ("replay", replay(path))] {
            println!(
                "| {label} | {mb:.1} | {command} | {:.1} | {peak:.0} | {} |",
                took.as_secs_f64(),
                if peak <= 150.0 { "yes" } else { "no" }
            );
        }
    }
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
    unusual_inputs(work.path(), &text);
}
