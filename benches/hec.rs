//! Splunk HEC throughput, all in the same run on the same machine:
//! - against lading's `splunk_hec` blackhole, as ratios to a plain reqwest loop posting
//!   the same pre-built gzip bodies (the transport ceiling);
//! - at the sink's **default settings** against the tests' strict receiver, whose acks
//!   become true at once or only after 2 s (a Splunk under load): the slow-ack run as a
//!   ratio to the at-once run.
//!
//!   cargo bench --bench hec            # needs ~/.cargo/bin/lading (scripts/install-test-servers.sh)
//!
//! The corpus is ../shared/data/corpus/cloudtrail_real_union.ndjson.gz replayed to
//! 100,000 records (the ack-delay runs use three times as many, so the 2 s tail weighs
//! little), each copy with its eventID and eventTime rewritten.

#[path = "common/mod.rs"]
mod common;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/null.rs"]
mod null;
#[path = "common/rss.rs"]
mod rss;
#[path = "common/servers.rs"]
mod servers;
// The tests' receiver, whose other helpers this bench does not use.
#[allow(dead_code)]
#[path = "../tests/common/hec.rs"]
mod strict_hec;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditbridge::event::Origin;
use auditbridge::keys::inventory::KeyInventory;
use auditbridge::metrics::Metrics;
use auditbridge::record::Format;
use auditbridge::rules::RuleSet;
use auditbridge::transforms::enrich::Enrichment;
use auditbridge::transforms::normalize::OutputFormat;
use auditbridge::transforms::Transformer;
use servers::{free_port, Server};

const RECORDS: usize = 100_000;
const BATCH: usize = 500;
const IN_FLIGHT: usize = 8;

struct Lading {
    server: Server,
    hec: String,
    metrics: String,
}

fn start_lading(dir: &std::path::Path) -> Lading {
    let (hec, prom) = (free_port(), free_port());
    let config = dir.join("lading.yaml");
    std::fs::write(
        &config,
        format!(
            "generator: []\nblackhole:\n  - splunk_hec:\n      binding_addr: \"127.0.0.1:{hec}\"\n"
        ),
    )
    .unwrap();
    let server = servers::start(
        Command::new(servers::tool("LADING", "lading"))
            .args([
                "--config-path",
                config.to_str().unwrap(),
                "--no-target",
                "--prometheus-addr",
                &format!("127.0.0.1:{prom}"),
            ])
            .args([
                "--experiment-duration-seconds",
                "86400",
                "--warmup-duration-seconds",
                "0",
            ]),
        hec,
        "lading",
    );
    Lading {
        server,
        hec: format!("http://127.0.0.1:{hec}"),
        metrics: format!("http://127.0.0.1:{prom}/metrics"),
    }
}

async fn lading_bytes(url: &str) -> u64 {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("bytes_received"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Pre-built gzip bodies of the same envelopes the sink would send.
fn bodies(input: &str) -> (Vec<Vec<u8>>, usize) {
    let enrichment = Enrichment::new(
        Arc::new(RuleSet::builtin().unwrap()),
        Arc::new(KeyInventory::new(100_000)),
        90,
    );
    let t = Transformer::new(OutputFormat::Ecs, enrichment, Arc::new(Metrics::default()));
    let out = t.process(
        input.as_bytes(),
        &Origin::Inline {
            name: "bench".into(),
        },
    );
    let envelopes: Vec<String> = out
        .records
        .iter()
        .map(|r| {
            let doc = &r.outputs_of(Format::Ecs).next().unwrap().body;
            format!(
                "{{\"time\":{},\"source\":\"auditbridge\",\"sourcetype\":\"aws:cloudtrail\",\"event\":{}}}\n",
                r.time.timestamp_micros() as f64 / 1e6,
                String::from_utf8_lossy(doc)
            )
        })
        .collect();
    let raw: usize = envelopes.iter().map(String::len).sum();
    let bodies = envelopes
        .chunks(BATCH)
        .map(|c| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(c.concat().as_bytes()).unwrap();
            enc.finish().unwrap()
        })
        .collect();
    (bodies, raw)
}

/// The ceiling: the same bodies posted with the same concurrency, no acks.
async fn plain_loop(url: &str, bodies: Arc<Vec<Vec<u8>>>) -> Duration {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (client, bodies, next, url) = (
            client.clone(),
            Arc::clone(&bodies),
            Arc::clone(&next),
            format!("{url}/services/collector/event"),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return };
                let r = client
                    .post(&url)
                    .header("Authorization", "Splunk bench")
                    .header("Content-Encoding", "gzip")
                    .header(
                        "X-Splunk-Request-Channel",
                        "11111111-2222-3333-4444-555555555555",
                    )
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

/// file -> HEC into lading with `settings` added to the endpoint and token.
async fn auditbridge(dir: &std::path::Path, url: &str, settings: &str) -> Ran {
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}/in.ndjson\"]\n[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"{url}\"\ntoken = \"bench\"\n{settings}",
        dir.display()
    );
    run(dir, &config).await
}

/// One pipeline run to its end.
struct Ran {
    took: Duration,
    /// CPU time of this process meanwhile: lading is another process; the strict
    /// receiver is not.
    cpu: f64,
    metrics: Arc<Metrics>,
}

/// Run the pipeline `config` describes to its end.
async fn run(dir: &std::path::Path, config: &str) -> Ran {
    let config = auditbridge::config::Config::parse(config, "bench").unwrap();
    let dlq = auditbridge::dead_letter::DeadLetterSink::file(&dir.join("dlq.ndjson")).unwrap();
    let pipeline = auditbridge::pipeline::Pipeline::new(&config, dlq).unwrap();
    let metrics = pipeline.metrics();
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let (start, cpu) = (Instant::now(), cpu::seconds());
    pipeline.run(rx).await.unwrap();
    Ran {
        took: start.elapsed(),
        cpu: cpu::seconds() - cpu,
        metrics,
    }
}

/// How one default-settings run went.
struct Timed {
    /// From start until the receiver took the last event: what the sink sustains.
    sending: Duration,
    /// From start until every input was acknowledged, the last ack wait included.
    end_to_end: Duration,
    events: u64,
}

/// file -> HEC with nothing but the endpoint and token set, against the strict receiver
/// whose acks become true after `ack_delay`.
async fn default_settings(dir: &std::path::Path, ack_delay: Duration) -> Timed {
    let receiver = strict_hec::HecReceiver::start(strict_hec::Behaviour {
        ack_delay,
        count_only: true,
        ..strict_hec::Behaviour::default()
    })
    .await;
    let config = format!(
        "[pipeline]\nformat = \"ecs\"\n[sources.in]\ntype = \"file\"\npaths = [\"{}/delayed.ndjson\"]\n[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"{}\"\ntoken = \"good-token\"\n",
        dir.display(),
        receiver.url()
    );
    let start = Instant::now();
    let Ran {
        took: end_to_end,
        metrics,
        ..
    } = run(dir, &config).await;
    assert_eq!(Metrics::get(&metrics.batches_acked), 1);
    let state = receiver.state.lock().unwrap();
    Timed {
        sending: state.last_accepted.expect("events were sent") - start,
        end_to_end,
        events: state.counted,
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let lading = start_lading(dir.path());
    let records = common::records_arg().unwrap_or(RECORDS);
    let input = common::corpus(records);
    std::fs::write(dir.path().join("in.ndjson"), &input).unwrap();
    let (bodies, raw_bytes) = bodies(&input);
    let bodies = Arc::new(bodies);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mb = raw_bytes as f64 / 1e6;
        let before = lading_bytes(&lading.metrics).await;
        let ceiling = plain_loop(&lading.hec, Arc::clone(&bodies)).await;
        let lading_ceiling = (lading_bytes(&lading.metrics).await - before) as f64 / 1e6 / ceiling.as_secs_f64();
        println!("HEC bench: {records} CloudTrail records (corpus replayed, eventID and eventTime rewritten per copy), ECS, batches of {BATCH}, {IN_FLIGHT} requests in flight");
        println!("{:<44} {:>12} {:>9} {:>16} {:>7}", "case", "events/s", "MB/s", "lading MB/s", "ratio");
        let ceiling_rate = records as f64 / ceiling.as_secs_f64();
        println!("{:<44} {:>12.0} {:>9.1} {:>16.1} {:>7}", "plain reqwest loop, pre-built gzip bodies", ceiling_rate, mb / ceiling.as_secs_f64(), lading_ceiling, "1.00");
        // The same pipeline into a sink that costs nothing: the HEC sink's own cost is the
        // difference.
        let null = run(dir.path(), &null::pipeline(&dir.path().join("in.ndjson"))).await;
        assert_eq!(Metrics::get(&null.metrics.batches_acked), 1);
        let nothing = null.took;
        let null_rate = records as f64 / nothing.as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let own_cpu = |ran: &Ran, receiver: f64| {
            let own = ran.cpu - null.cpu;
            println!("{:<44} CPU {:.2} s against {:.2} s for file -> null: the sink's own {:.1} µs per record, {:.2} of the null pipeline's", "", ran.cpu, null.cpu, own / records as f64 * 1e6, own / null.cpu);
            println!("{:<44} lading's CPU {:.1} µs per record. file -> null kept {:.2} of the {cores} cores busy; out of the same cores, the receiver alone caps this run at {:.2} of file -> null, the receiver and the sink's own CPU together at {:.2}", "", receiver / records as f64 * 1e6, null.cpu / nothing.as_secs_f64(), cpu::ceiling(null.cpu, receiver), cpu::ceiling(null.cpu, receiver + own));
        };
        let lading_cpu = || cpu::of_process(lading.server.0.id());
        println!("{:<44} {:>12.0} {:>9.1} {:>16} {:>7.2}", "auditbridge file -> null (/dev/null)", null_rate, mb / nothing.as_secs_f64(), "", null_rate / ceiling_rate);
        for ack in [true, false] {
            let before = lading_bytes(&lading.metrics).await;
            let tuned = format!("batch_max_events = {BATCH}\nbatch_max_bytes = 100000000\nmax_in_flight_requests = {IN_FLIGHT}\nindexer_ack = {ack}\nallow_without_ack = true\n");
            let receiver = lading_cpu();
            let ran = auditbridge(dir.path(), &lading.hec, &tuned).await;
            let receiver = lading_cpu() - receiver;
            assert_eq!(Metrics::get(&ran.metrics.batches_acked), 1);
            let took = ran.took;
            let received = (lading_bytes(&lading.metrics).await - before) as f64 / 1e6 / took.as_secs_f64();
            let rate = records as f64 / took.as_secs_f64();
            let label = if ack { "auditbridge file -> HEC, indexer acks on" } else { "auditbridge file -> HEC, acks off" };
            println!("{:<44} {:>12.0} {:>9.1} {:>16.1} {:>7.2}   {:.2} of file -> null", label, rate, mb / took.as_secs_f64(), received, rate / ceiling_rate, rate / null_rate);
            own_cpu(&ran, receiver);
        }
        // What users run, and what the goal is judged on: nothing set but the endpoint and
        // token (acks on, 1 s ack poll, quicker polls once the sink pauses).
        let receiver = lading_cpu();
        let ran = auditbridge(dir.path(), &lading.hec, "").await;
        let receiver = lading_cpu() - receiver;
        assert_eq!(Metrics::get(&ran.metrics.batches_acked), 1);
        let rate = records as f64 / ran.took.as_secs_f64();
        println!("{:<44} {:>12.0} {:>9.1} {:>16} {:>7.2}   {:.2} of file -> null (goal ≥ 0.9, acks on)", "auditbridge file -> HEC, default settings", rate, mb / ran.took.as_secs_f64(), "", rate / ceiling_rate, rate / null_rate);
        own_cpu(&ran, receiver);
        let delayed_records = records * 3;
        std::fs::write(dir.path().join("delayed.ndjson"), common::corpus(delayed_records)).unwrap();
        println!();
        println!("default sink settings, strict receiver, {delayed_records} records");
        println!("{:<44} {:>12} {:>7} {:>16}", "case", "events/s", "ratio", "end to end (s)");
        let null = run(dir.path(), &null::pipeline(&dir.path().join("delayed.ndjson"))).await;
        assert_eq!(Metrics::get(&null.metrics.batches_acked), 1);
        let nothing = null.took;
        let null_rate = delayed_records as f64 / nothing.as_secs_f64();
        println!("{:<44} {:>12.0} {:>7} {:>16.1}   file -> null, the same pipeline", "file -> null (/dev/null)", null_rate, "", nothing.as_secs_f64());
        let at_once = default_settings(dir.path(), Duration::ZERO).await;
        assert_eq!(at_once.events as usize, delayed_records);
        let base = delayed_records as f64 / at_once.sending.as_secs_f64();
        let whole = |t: &Timed| delayed_records as f64 / t.end_to_end.as_secs_f64() / null_rate;
        println!("{:<44} {:>12.0} {:>7} {:>16.1}   end to end {:.2} of file -> null (goal ≥ 0.9)", "acks true at once", base, "1.00", at_once.end_to_end.as_secs_f64(), whole(&at_once));
        let slow = default_settings(dir.path(), Duration::from_secs(2)).await;
        assert_eq!(slow.events as usize, delayed_records);
        let rate = delayed_records as f64 / slow.sending.as_secs_f64();
        println!("{:<44} {:>12.0} {:>7.2} {:>16.1}   end to end {:.2} of file -> null", "acks true after 2 s", rate, rate / base, slow.end_to_end.as_secs_f64(), whole(&slow));
        println!("peak RSS of the bench process: {:.0} MB", rss::peak_rss_mb());
    });
}
