//! Wires sources, the transform stage and sinks together.
//!
//! ```text
//! source ──RawInput──▶ transform workers ──Batch──▶ fan-out ──SinkBatch──▶ sink (× N)
//! ```
//! Every channel is bounded, so a slow sink slows intake instead of growing memory.
//! Acknowledgement shares travel with the data: an input is acknowledged once each of
//! its records was accepted by every sink, and its dead letters were written.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ack::{AckToken, BatchStatus};
use crate::admin::{self, Health};
use crate::budget::{Budget, Held};
use crate::config::{sink_formats, Config, KeysConfig, SinkConfig};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::dedup::{self, DedupWindow, Digest};
use crate::event::{Body, Origin, RawInput};
use crate::keys::inventory::KeyInventory;
use crate::keys::report;
use crate::metrics::Metrics;
use crate::record::{Format, Record};
use crate::rules::RuleSet;
use crate::sinks::{self, SinkBatch, SinkEnv};
use crate::sources::file::FileProgress;
use crate::sources::{self, SourceEnv};
use crate::supervisor::Supervisor;
use crate::transforms::enrich::geoip::GeoIp;
use crate::transforms::enrich::Enrichment;
use crate::transforms::normalize::OutputFormat;
use crate::transforms::{Input, Transformer};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] sources::SourceError),
    #[error("cannot read the dedup window {path}")]
    DedupState {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on the admin address {address}")]
    Admin {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    #[error("cannot load the detection rules")]
    Rules(#[from] crate::rules::RuleError),
    #[error("cannot load the key inventory")]
    KeyState(#[from] crate::keys::inventory::StateError),
    #[error("cannot read the credential report {path}")]
    CredentialReport {
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot open the dead-letter file {path}")]
    DeadLetter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] sinks::SinkError),
    #[error(transparent)]
    GeoIp(#[from] crate::transforms::enrich::geoip::GeoIpError),
    #[error("sink `{sink}` stayed faulted for {secs} s (pipeline.sink_fault_timeout_secs): {reason}; what it held was left unacknowledged for its source to redeliver")]
    SinkFault {
        sink: String,
        reason: String,
        secs: u64,
    },
    #[error("{0}; the source redelivers what it can, and a file source must be run again")]
    Undelivered(String),
}

impl PipelineError {
    /// The process exit code for this error (README, "Exit codes").
    pub fn exit_code(&self) -> u8 {
        match self {
            PipelineError::SinkFault { .. } => 3,
            PipelineError::Undelivered(_) => 4,
            _ => 1,
        }
    }
}

/// A fully configured pipeline, ready to run.
pub struct Pipeline {
    keys: Arc<KeyInventory>,
    key_state: Option<PathBuf>,
    dedup: Option<(Arc<DedupWindow>, Option<PathBuf>)>,
    admin: Option<std::net::SocketAddr>,
    telemetry: Option<crate::telemetry::TelemetryConfig>,
    health: Arc<Health>,
    supervisor: Arc<Supervisor>,
    fault_timeout: Duration,
    iam_poll: KeysConfig,
    sources: Vec<(String, Box<dyn sources::Source>)>,
    sinks: Vec<(String, SinkConfig, Vec<Format>)>,
    transformer: Arc<Transformer>,
    dead_letters: Arc<DeadLetterSink>,
    workers: usize,
    batch_size: usize,
    in_flight: usize,
    in_flight_bytes: u64,
    grace: Duration,
    metrics: Arc<Metrics>,
    progress: bool,
}

/// Records for the sinks, each with the acknowledgement share of the input it came from,
/// and the bytes they took from the budget.
struct Batch {
    records: Vec<Record>,
    acks: Vec<AckToken>,
    held: Held,
}

impl Pipeline {
    pub fn new(config: &Config, dead_letters: DeadLetterSink) -> Result<Self, PipelineError> {
        let metrics = Arc::new(Metrics::default());
        let mut built_sources = Vec::new();
        for (name, source) in &config.sources {
            built_sources.push((name.clone(), sources::build(name, source)?));
        }
        let sinks: Vec<_> = config
            .sinks
            .iter()
            .map(|(name, sink)| {
                (
                    name.clone(),
                    sink.clone(),
                    sink_formats(sink, config.pipeline.format),
                )
            })
            .collect();
        let rules = RuleSet::load(&config.rules)?;
        let keys = Arc::new(load_keys(&config.keys)?);
        let mut enrichment =
            Enrichment::new(Arc::new(rules), Arc::clone(&keys), config.keys.max_age_days);
        if config.enrich.user_agent {
            enrichment = enrichment.with_user_agent();
        }
        let (city, asn) = (&config.enrich.geoip_city, &config.enrich.geoip_asn);
        if city.is_some() || asn.is_some() {
            enrichment = enrichment.with_geoip(GeoIp::open(city.as_deref(), asn.as_deref())?);
        }
        let mut transformer =
            Transformer::new(config.pipeline.format, enrichment, Arc::clone(&metrics));
        transformer.raw |= sinks.iter().any(|(_, _, f)| f.contains(&Format::Raw));
        transformer.limits = config.limits;
        transformer.digest = config.routing.digest;
        transformer.insight = config.routing.insight;
        let dedup = match &config.dedup {
            d if d.enabled => {
                let window = DedupWindow::new(Duration::from_secs(d.window_secs), d.capacity);
                if let Some(path) = &d.state_path {
                    window
                        .load(path)
                        .map_err(|source| PipelineError::DedupState {
                            path: path.clone(),
                            source,
                        })?;
                }
                Some((Arc::new(window), d.state_path.clone()))
            }
            _ => None,
        };
        let health = Arc::new(Health::default());
        Ok(Pipeline {
            dedup,
            admin: config.admin.as_ref().map(|a| a.address),
            telemetry: config
                .telemetry
                .otlp_enabled()
                .then(|| config.telemetry.clone()),
            supervisor: Supervisor::new(Arc::clone(&health)),
            fault_timeout: Duration::from_secs(config.pipeline.sink_fault_timeout_secs),
            health,

            keys,
            key_state: config.keys.state_path.clone(),
            iam_poll: config.keys.clone(),
            sources: built_sources,
            sinks,
            transformer: Arc::new(transformer),
            dead_letters: Arc::new(dead_letters),
            workers: config.pipeline.workers,
            batch_size: config.pipeline.batch_size,
            in_flight: config.pipeline.max_in_flight_batches,
            in_flight_bytes: config.pipeline.max_in_flight_bytes,
            grace: Duration::from_secs(config.pipeline.shutdown_grace_secs),
            metrics,
            progress: std::io::stderr().is_terminal(),
        })
    }

    /// Open the dead-letter destination a config names.
    pub fn open_dead_letters(config: &Config) -> Result<DeadLetterSink, PipelineError> {
        DeadLetterSink::open(&config.dead_letter).map_err(|source| PipelineError::DeadLetter {
            path: config.dead_letter.path.clone(),
            source,
        })
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// Run until every source is exhausted and everything is acknowledged, or until
    /// `stop` turns true and the grace period has passed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<(), PipelineError> {
        let (input_tx, input_rx) = mpsc::channel::<RawInput>(self.workers * 2);
        let (batch_tx, batch_rx) = mpsc::channel::<Batch>(self.in_flight);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let telemetry = match &self.telemetry {
            Some(t) => Some(crate::telemetry::Telemetry::start(
                t,
                Arc::clone(&self.metrics),
            )?),
            None => None,
        };
        let (admin_stop, admin_stop_rx) = watch::channel(false);
        if let Some(address) = self.admin {
            admin::serve(
                address,
                Arc::clone(&self.metrics),
                Arc::clone(&self.health),
                admin_stop_rx,
            )
            .await
            .map_err(|source| PipelineError::Admin { address, source })?;
            tracing::info!(%address, "admin endpoint: /health/live, /health/ready, /metrics");
        }
        // Sinks are built before any source starts, so bad sink settings stop the run
        // before anything is read.
        let mut built = Vec::new();
        for (name, config, formats) in self.sinks {
            built.push((sinks::build(&name, &config)?, name, formats));
        }
        let per_sink = (self.in_flight / built.len().max(1)).max(1);
        let env = SinkEnv {
            dead_letters: Arc::clone(&self.dead_letters),
            metrics: Arc::clone(&self.metrics),
            max_in_flight: per_sink,
            grace: self.grace,
            supervisor: Arc::clone(&self.supervisor),
        };
        let mut sink_txs = Vec::new();
        let mut sink_tasks = JoinSet::new();
        for (sink, name, formats) in built {
            let (tx, rx) = mpsc::channel::<SinkBatch>(per_sink);
            sink_txs.push(tx);
            sinks::spawn(&mut sink_tasks, &name, sink, formats, rx, &env);
        }

        if let Some(secs) = self.iam_poll.iam_poll_interval_secs {
            // Before any source starts, so the first records already see the inventory.
            let iam = crate::keys::iam::client(
                self.iam_poll.iam_region.as_deref(),
                self.iam_poll.iam_endpoint.as_deref(),
            )
            .await;
            match crate::keys::iam::refresh(&iam, &self.keys).await {
                Ok(n) => tracing::info!(keys = n, "key inventory loaded from IAM"),
                Err(e) => {
                    tracing::warn!(error = %e, "IAM key poll failed; key ages use what the stream shows")
                }
            }
            // Later polls run beside the sources and end with them.
            tokio::spawn(crate::keys::iam::poll(
                iam,
                Arc::clone(&self.keys),
                Duration::from_secs(secs.max(1)),
                shutdown_rx.clone(),
            ));
        }
        if !self.iam_poll.gcp_projects.is_empty() {
            // Before any source starts, like the AWS poll above.
            crate::keys::gcp_iam::start(&self.iam_poll, &self.keys, &shutdown_rx).await;
        }
        let progress = Arc::new(FileProgress::default());
        let source_env = SourceEnv {
            out: input_tx,
            shutdown: shutdown_rx.clone(),
            supervisor: Arc::clone(&self.supervisor),
            health: Arc::clone(&self.health),
            dead_letters: Arc::clone(&self.dead_letters),
            metrics: Arc::clone(&self.metrics),
            progress: Arc::clone(&progress),
        };
        let mut sources = JoinSet::new();
        for (name, built) in self.sources {
            sources::spawn(&mut sources, &name, built, &source_env);
        }
        // Intake ends when every source has dropped its sender.
        drop(source_env);

        let input_rx = Arc::new(Mutex::new(input_rx));
        let budget = Budget::new(self.in_flight_bytes, Arc::clone(&self.metrics));
        let mut workers = JoinSet::new();
        for _ in 0..self.workers {
            let input_rx = Arc::clone(&input_rx);
            let batch_tx = batch_tx.clone();
            let budget = budget.clone();
            let transformer = Arc::clone(&self.transformer);
            let dead_letters = Arc::clone(&self.dead_letters);
            let metrics = Arc::clone(&self.metrics);
            let batch_size = self.batch_size;
            let pieces = self.workers;
            workers.spawn_blocking(move || {
                transform_worker(
                    &input_rx,
                    (&batch_tx, &budget),
                    |body, origin, emitters, dead| {
                        transformer.process_pieces(Input::of(body), origin, emitters, dead)
                    },
                    &dead_letters,
                    &metrics,
                    batch_size,
                    pieces,
                )
            });
        }
        drop(batch_tx);

        let fan_out = tokio::spawn(fan_out(
            batch_rx,
            sink_txs,
            self.dedup.as_ref().map(|(w, _)| Arc::clone(w)),
            Arc::clone(&self.metrics),
        ));

        let ticker = self.progress.then(|| {
            tokio::spawn(progress_line(
                Arc::clone(&self.metrics),
                Arc::clone(&progress),
            ))
        });

        let drain = async {
            while sources.join_next().await.is_some() {}
            while workers.join_next().await.is_some() {}
            let _ = fan_out.await;
            while sink_tasks.join_next().await.is_some() {}
        };
        tokio::pin!(drain);
        let supervisor = Arc::clone(&self.supervisor);
        let result = tokio::select! {
            () = &mut drain => None,
            _ = stopped(&mut stop) => {
                tracing::info!(grace_secs = self.grace.as_secs(), "stopping intake; draining in-flight work");
                let _ = shutdown_tx.send(true);
                drain_within_grace(self.grace, &supervisor, &self.metrics, &mut drain).await
            }
            out = supervisor.outlasted(self.fault_timeout) => {
                tracing::error!(sink = %out.sink, reason = %out.reason, secs = self.fault_timeout.as_secs(),
                    "sink fault outlasted pipeline.sink_fault_timeout_secs; giving up: what it holds is left unacknowledged");
                let _ = shutdown_tx.send(true);
                supervisor.give_up();
                drain_within_grace(self.grace, &supervisor, &self.metrics, &mut drain).await;
                Some(PipelineError::SinkFault {
                    sink: out.sink,
                    reason: out.reason,
                    secs: self.fault_timeout.as_secs(),
                })
            }
        };
        let failed_files = progress.failed.load(Ordering::Relaxed);
        let result = result.or_else(|| {
            (failed_files > 0).then(|| {
                PipelineError::Undelivered(format!(
                    "{failed_files} input files were not fully delivered"
                ))
            })
        });
        if let Some(t) = ticker {
            t.abort();
            eprintln!();
        }
        let _ = admin_stop.send(true);
        if let Some(t) = telemetry {
            // The exporters block while flushing; keep that off the async workers.
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        if let Some((window, Some(path))) = &self.dedup {
            if let Err(e) = window.save(path) {
                tracing::error!(error = %e, path = %path.display(), "dedup window not saved; redelivered records may reach the sinks twice after the restart");
            }
        }
        if let Some(path) = &self.key_state {
            if let Err(e) = self.keys.save(path) {
                tracing::error!(error = %e, "key inventory not saved; key ages restart from what the stream shows");
            }
        }
        match result {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Let `drain` finish within `grace`; past it, the supervisor gives up so sinks release
/// what they hold, and whatever is still in flight is reported.
async fn drain_within_grace(
    grace: Duration,
    supervisor: &Supervisor,
    metrics: &Metrics,
    drain: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Option<PipelineError> {
    if tokio::time::timeout(grace, drain.as_mut()).await.is_ok() {
        return None;
    }
    supervisor.give_up();
    let in_flight = Metrics::get(&metrics.inputs_in_flight);
    if in_flight == 0 {
        // Everything taken in was settled; only a source's goodbye (closing links,
        // a last checkpoint) was still under way.
        tracing::warn!(
            "grace period over while sources were still closing; nothing was left undelivered"
        );
        return None;
    }
    tracing::warn!(
        in_flight,
        "grace period over; unacknowledged input will be redelivered by its source"
    );
    Some(PipelineError::Undelivered(format!(
        "the grace period (pipeline.shutdown_grace_secs = {}) ended with {in_flight} inputs not yet settled",
        grace.as_secs()
    )))
}

fn load_keys(config: &KeysConfig) -> Result<KeyInventory, PipelineError> {
    let inventory = match &config.state_path {
        Some(path) => KeyInventory::load(path, config.capacity)?,
        None => KeyInventory::new(config.capacity),
    };
    if let Some(path) = &config.credential_report {
        let err =
            |source: Box<dyn std::error::Error + Send + Sync>| PipelineError::CredentialReport {
                path: path.clone(),
                source,
            };
        let text = std::fs::read_to_string(path).map_err(|e| err(Box::new(e)))?;
        let users = report::parse(&text).map_err(|e| err(Box::new(e)))?;
        inventory.load_report_users(report::active_keys_by_user(&users));
    }
    Ok(inventory)
}

/// Resolves once `stop` turns true; never, if its sender is gone first.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

type Emitter<'a> = Box<dyn FnMut(Record) + Send + 'a>;

/// Take inputs until the channel closes. A panic while transforming one input is caught:
/// that input is dead-lettered as `transform_panic` and the worker goes on.
fn transform_worker(
    input: &Mutex<mpsc::Receiver<RawInput>>,
    out: Out<'_>,
    transform: impl for<'e> Fn(
        &Body,
        &Origin,
        Vec<Emitter<'e>>,
        &(dyn Fn(Vec<DeadLetter>) + Sync),
    ) -> std::io::Result<()>,
    dead_letters: &DeadLetterSink,
    metrics: &Metrics,
    batch_size: usize,
    pieces: usize,
) {
    loop {
        let next = match input.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        };
        let Some(raw) = next else { return };
        let mut batchers: Vec<Batcher> = (0..pieces.max(1))
            .map(|_| Batcher::new(out, &raw.ack, batch_size))
            .collect();
        let emitters: Vec<Emitter<'_>> = batchers
            .iter_mut()
            .map(|b| Box::new(move |record| b.push(record)) as Emitter<'_>)
            .collect();
        // A dead letter counts as settled only once its write is durable: a write that
        // fails leaves the whole input unacknowledged, to come back.
        let failed = AtomicBool::new(false);
        let write = |letters: Vec<DeadLetter>| {
            if let Err(e) = dead_letters.write_blocking(letters) {
                tracing::error!(origin = %raw.origin, error = %e, destination = %dead_letters.describe(),
                    "cannot write dead letters; the input stays unacknowledged");
                failed.store(true, Ordering::Relaxed);
            }
        };
        // Records sent before a panic keep their own acknowledgement shares; what the
        // panic cut short is kept in the dead letter, with its origin.
        let run =
            std::panic::AssertUnwindSafe(|| transform(&raw.body, &raw.origin, emitters, &write));
        match std::panic::catch_unwind(run) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(origin = %raw.origin, error = %e, "cannot read the input; it stays unacknowledged");
                failed.store(true, Ordering::Relaxed);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                tracing::error!(origin = %raw.origin, %message, "the transform panicked on this input; it is dead-lettered and the worker goes on");
                metrics.count("transform_panics", 1);
                metrics.dead_letter("transform_panic");
                let reason = format!("the transform panicked: {message}");
                let origin = raw.origin.clone();
                write(vec![match Input::of(&raw.body) {
                    Input::Bytes(bytes) => {
                        DeadLetter::input("transform_panic", reason, origin, bytes)
                    }
                    Input::File(path) => {
                        DeadLetter::of_file("transform_panic", reason, origin, path)
                    }
                }]);
            }
        }
        // Every piece sends what it has left before the worker decides anything.
        let finished: Vec<bool> = batchers.into_iter().map(Batcher::finish).collect();
        if finished.contains(&false) {
            return;
        }
        raw.ack.resolve(if failed.load(Ordering::Relaxed) {
            BatchStatus::Failed
        } else {
            BatchStatus::Delivered
        });
    }
}

/// Where batches go, and the budget they take from first.
type Out<'a> = (&'a mpsc::Sender<Batch>, &'a Budget);

/// Gathers one piece's records into batches of `size` for the fan-out.
struct Batcher<'a> {
    out: Out<'a>,
    ack: &'a AckToken,
    size: usize,
    records: Vec<Record>,
    sink_gone: bool,
}

impl<'a> Batcher<'a> {
    fn new(out: Out<'a>, ack: &'a AckToken, size: usize) -> Self {
        Batcher {
            out,
            ack,
            size,
            records: Vec::new(),
            sink_gone: false,
        }
    }

    fn push(&mut self, record: Record) {
        if self.sink_gone {
            return;
        }
        self.records.push(record);
        if self.records.len() >= self.size {
            // A full batch says more are coming: the next starts at its final size.
            let full = std::mem::replace(&mut self.records, Vec::with_capacity(self.size));
            self.sink_gone = !send(self.out, full, self.ack);
        }
    }

    /// Send what is left; false when the sinks are gone.
    fn finish(mut self) -> bool {
        if !self.records.is_empty() && !self.sink_gone {
            self.sink_gone = !send(self.out, std::mem::take(&mut self.records), self.ack);
        }
        !self.sink_gone
    }
}

/// Hand a chunk of records to the fan-out, each with a share of the input's ack.
/// Blocks while the pipeline is full, by batches or by bytes; false when the sinks are
/// gone.
fn send((out, budget): Out<'_>, records: Vec<Record>, ack: &AckToken) -> bool {
    let held = budget.take_blocking(&records);
    let acks = records.iter().map(|_| ack.share()).collect();
    out.blocking_send(Batch {
        records,
        acks,
        held,
    })
    .is_ok()
}

/// Hand each batch to every sink, after the dedup window (if any) took out the records
/// already delivered within it.
async fn fan_out(
    mut input: mpsc::Receiver<Batch>,
    sinks: Vec<mpsc::Sender<SinkBatch>>,
    dedup: Option<Arc<DedupWindow>>,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = input.recv().await {
        let Some(batch) = settle_together(batch, dedup.as_ref(), &metrics) else {
            continue;
        };
        let records: Arc<[Record]> = batch.records.into();
        let held = Arc::new(batch.held);
        for sink in &sinks {
            let acks = batch.acks.iter().map(AckToken::share).collect();
            let sink_batch = SinkBatch {
                records: Arc::clone(&records),
                acks,
                held: Arc::clone(&held),
            };
            if sink.send(sink_batch).await.is_err() {
                tracing::error!("a sink stopped; its records stay unacknowledged");
            }
        }
        for ack in batch.acks {
            ack.resolve(BatchStatus::Delivered);
        }
    }
}

/// Give the batch one token of its own, so that when every sink settled it the end-to-end
/// latency is measured, the dedup window learns the delivered ids, and the input shares
/// get the same outcome. Records the window says were delivered before are dropped
/// first (their input shares resolve as delivered); `None` when none is left.
fn settle_together(
    batch: Batch,
    dedup: Option<&Arc<DedupWindow>>,
    metrics: &Arc<Metrics>,
) -> Option<Batch> {
    let mut records = Vec::with_capacity(batch.records.len());
    let mut inputs = Vec::with_capacity(batch.acks.len());
    let digests: Vec<Digest> = match dedup {
        Some(_) => batch.records.iter().map(|r| dedup::digest(&r.id)).collect(),
        None => Vec::new(),
    };
    let seen = match dedup {
        Some(w) => w.delivered_among(&digests),
        None => vec![false; batch.records.len()],
    };
    let mut kept = Vec::with_capacity(digests.len());
    for (i, ((record, ack), seen)) in batch
        .records
        .into_iter()
        .zip(batch.acks)
        .zip(seen)
        .enumerate()
    {
        if seen {
            Metrics::add(&metrics.records_deduplicated, 1);
            ack.resolve(BatchStatus::Delivered);
        } else {
            records.push(record);
            inputs.push(ack);
            kept.extend(digests.get(i));
        }
    }
    if records.is_empty() {
        return None;
    }
    let (token, settled) = crate::ack::batch();
    let times: Vec<_> = records.iter().map(|r| r.time).collect();
    let window = dedup.cloned();
    let metrics = Arc::clone(metrics);
    Metrics::add(&metrics.batches_in_flight, 1);
    tokio::spawn(async move {
        let status = settled.wait().await;
        metrics.batches_in_flight.fetch_sub(1, Ordering::Relaxed);
        if status == BatchStatus::Delivered {
            let now = chrono::Utc::now();
            for t in times {
                metrics
                    .latency
                    .observe((now - t).num_milliseconds() as f64 / 1000.0);
            }
            if let Some(window) = window {
                window.delivered(&kept);
            }
        }
        for ack in inputs {
            ack.resolve(status);
        }
    });
    let acks = records.iter().map(|_| token.share()).collect();
    token.resolve(BatchStatus::Delivered);
    Some(Batch {
        records,
        acks,
        held: batch.held,
    })
}

async fn progress_line(metrics: Arc<Metrics>, progress: Arc<FileProgress>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let records = Metrics::get(&metrics.records_emitted);
        let rate = records as f64 / start.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r{} files, {} records, {:.0} records/s, {} dead letters   ",
            progress.files.load(Ordering::Relaxed),
            records,
            rate,
            Metrics::get(&metrics.dead_lettered),
        );
    }
}

/// The `[pipeline]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Which documents to build: `ecs`, `ocsf` or `both`.
    pub format: OutputFormat,
    /// Transform worker threads.
    pub workers: usize,
    /// Batches that may be between the transform stage and the sinks at once.
    pub max_in_flight_batches: usize,
    /// Bytes of documents that may be between the transform stage and the sinks at once.
    pub max_in_flight_bytes: u64,
    /// Records per batch handed to the sinks.
    pub batch_size: usize,
    /// Seconds to drain in-flight work after SIGTERM/SIGINT before exiting.
    pub shutdown_grace_secs: u64,
    /// Seconds a sink may stay faulted (refused credentials, missing topic, unwritable
    /// path) before `run` gives up, drains what it can and exits non-zero.
    pub sink_fault_timeout_secs: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            format: OutputFormat::Both,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_in_flight_batches: 64,
            max_in_flight_bytes: 32 << 20,
            batch_size: 1000,
            shutdown_grace_secs: 30,
            sink_fault_timeout_secs: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack;

    fn record(origin: &Origin) -> Record {
        Record::test("r-1", origin.clone(), None)
    }

    #[test]
    fn a_panicking_input_is_dead_lettered_and_the_next_input_still_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let letters_path = dir.path().join("dlq.ndjson");
        let dead_letters = DeadLetterSink::file(&letters_path).unwrap();
        let metrics = Metrics::default();
        let (input_tx, input_rx) = mpsc::channel(4);
        let (batch_tx, mut batch_rx) = mpsc::channel(4);
        let mut receivers = Vec::new();
        for name in ["boom", "fine"] {
            let (token, receiver) = ack::batch();
            receivers.push(receiver);
            input_tx
                .try_send(RawInput {
                    origin: Origin::Inline { name: name.into() },
                    body: Body::Bytes(name.as_bytes().to_vec()),
                    ack: token,
                })
                .unwrap();
        }
        drop(input_tx);
        let budget = Budget::new(1 << 20, Arc::new(Metrics::default()));
        transform_worker(
            &Mutex::new(input_rx),
            (&batch_tx, &budget),
            |body, origin, mut emitters, _| {
                assert!(
                    !matches!(body, Body::Bytes(b) if b == b"boom"),
                    "a bug in the transform"
                );
                emitters[0](record(origin));
                Ok(())
            },
            &dead_letters,
            &metrics,
            10,
            1,
        );
        drop(batch_tx);

        let batch = batch_rx
            .try_recv()
            .expect("the input after the panic was delivered");
        assert_eq!(batch.records.len(), 1);
        assert_eq!(batch.records[0].origin.to_string(), "fine");
        for a in batch.acks {
            a.resolve(BatchStatus::Delivered);
        }
        assert!(batch_rx.try_recv().is_err());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for receiver in receivers {
            assert_eq!(runtime.block_on(receiver.wait()), BatchStatus::Delivered);
        }
        let text = std::fs::read_to_string(&letters_path).unwrap();
        let letters: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0]["kind"], "transform_panic");
        assert_eq!(letters[0]["origin"], "boom");
        assert_eq!(letters[0]["original"], "boom");
        assert!(
            letters[0]["reason"]
                .as_str()
                .unwrap()
                .contains("a bug in the transform"),
            "{}",
            letters[0]
        );
        assert_eq!(metrics.dead_letter_reasons()["transform_panic"], 1);
    }
}
