//! A sink that stops taking documents holds the pipeline to its byte budget
//! (`pipeline.max_in_flight_bytes`), not to its batch counts: intake waits, and nothing is
//! lost once the sink moves again.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use auditbridge::metrics::Metrics;

const RECORDS: usize = 100_000;
/// `pipeline.max_in_flight_bytes` at its default.
const BUDGET: u64 = 32 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_holds_the_pipeline_to_its_byte_budget_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (text, n) = common::replayed_corpus(RECORDS);
    let lines: Vec<&str> = text.lines().take(RECORDS).collect();
    assert_eq!((n >= RECORDS, lines.len()), (true, RECORDS));
    std::fs::write(dir.path().join("in.ndjson"), lines.join("\n")).unwrap();
    let fifo = dir.path().join("stalled.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // The reader opens the pipe at once but reads nothing until told: the sink's writes
    // block once the pipe's buffer is full.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut pipe = std::fs::File::open(reader_path).unwrap();
        wait.recv().unwrap();
        let mut text = String::new();
        pipe.read_to_string(&mut text).unwrap();
        text
    });
    // The defaults but for the worker count, which sets how many batches are being
    // filled: 1,000-record batches, 64 of them per channel, so the batch counts alone
    // would let all 100,000 records in.
    let config = format!(
        "[pipeline]\nformat = \"both\"\nworkers = 2\n\
         [sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n\
         [sinks.out]\ntype = \"file\"\npath = \"{}\"\n",
        dir.path().display(),
        fifo.display()
    );
    let running = common::start_pipeline(&config, &dir.path().join("dlq.ndjson"));
    let metrics = &running.metrics;

    let mut last = (0, Instant::now());
    let start = Instant::now();
    loop {
        let decoded = Metrics::get(&metrics.records_decoded);
        if decoded != last.0 {
            last = (decoded, Instant::now());
        } else if decoded > 0 && last.1.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "intake never came to rest: {}",
            metrics.summary()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = Metrics::get(&metrics.bytes_in_flight);
    assert!(
        held > 0 && held <= BUDGET,
        "bytes in flight {held}, budget {BUDGET}"
    );
    // What may be read while the sink is stalled: the budget's worth (about 6,500 records
    // of ECS and OCSF), the sink's one blocked request and one being gathered (4 MiB
    // each), and each transform piece's batch being filled (2 workers × 2 pieces × 1,000).
    assert!(
        last.0 < 20_000,
        "{} of {RECORDS} records read while the sink took nothing",
        last.0
    );
    assert_eq!(Metrics::get(&metrics.dead_lettered), 0);

    go.send(()).unwrap();
    running.task.await.unwrap().unwrap();
    let written = reader.join().unwrap();
    let mut ids: Vec<String> = written
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|d| d.get("ecs").is_some())
        .map(|d| d["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), RECORDS, "one ECS document per record");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RECORDS, "each record once");
    assert_eq!(Metrics::get(&metrics.bytes_in_flight), 0);
}
