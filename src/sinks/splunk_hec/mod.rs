//! The `splunk_hec` sink: batched, gzip-compressed event envelopes to a Splunk HTTP Event
//! Collector, acknowledged upstream only after indexer acknowledgement (or HTTP 200 when
//! the token has acknowledgement off and that is allowed).
//!
//! One bad event never blocks or drops the batch around it: on `invalid-event-number = k`
//! the events before k count as delivered, event k is dead-lettered, the rest is resent.
//! Busy replies and network errors are retried with exponential backoff and full jitter
//! and lower the send rate; token and channel errors stop the sink with nothing
//! acknowledged upstream.

pub mod acks;
pub mod config;
pub mod envelope;
pub mod pacing;
pub mod reply;

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use flate2::write::GzEncoder;
use reqwest::header::HeaderValue;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::{SinkBatch, SinkContext};
use crate::ack::{AckToken, BatchStatus};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::event::Origin;
use crate::metrics::Metrics;
use crate::record::Format;
use acks::{AckPoll, AckTracker};
pub use config::SplunkHecConfig;
use pacing::Pacer;
use reply::Reply;

#[derive(Debug, thiserror::Error)]
pub enum HecError {
    #[error(transparent)]
    Token(#[from] config::TokenError),
    #[error("the HEC token contains characters an HTTP header cannot carry")]
    TokenHeader,
    #[error("cannot read the CA file {0}")]
    Ca(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{0}")]
    Fatal(String),
}

/// One document on its way: its envelope and its share of the record's acknowledgement.
struct Item {
    envelope: Vec<u8>,
    ack: AckToken,
    origin: Arc<Origin>,
}

/// Everything a request task needs.
struct Sender {
    name: String,
    config: SplunkHecConfig,
    client: reqwest::Client,
    event_url: String,
    token: HeaderValue,
    channel: String,
    acks: Arc<AckTracker>,
    pacer: Pacer,
    metrics: Arc<Metrics>,
    dead_letters: Arc<DeadLetterSink>,
    fatal: watch::Sender<Option<String>>,
}

fn client(config: &SplunkHecConfig) -> Result<reqwest::Client, HecError> {
    let mut builder = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(config.request_timeout_secs));
    if let Some(path) = &config.tls_ca_file {
        let pem = std::fs::read(path).map_err(|e| HecError::Ca(path.clone(), e))?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(HecError::Client)?;
        builder = builder.add_root_certificate(cert);
    }
    if config.tls_insecure_skip_verify {
        tracing::warn!(endpoint = %config.endpoint, "TLS certificate verification is OFF for this Splunk HEC sink (tls_insecure_skip_verify): anyone on the path can read and alter the data");
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(HecError::Client)
}

fn token_header(config: &SplunkHecConfig) -> Result<HeaderValue, HecError> {
    let mut value = HeaderValue::from_str(&format!("Splunk {}", config.token()?))
        .map_err(|_| HecError::TokenHeader)?;
    value.set_sensitive(true);
    Ok(value)
}

fn url(config: &SplunkHecConfig, path: &str) -> String {
    format!("{}{path}", config.endpoint.trim_end_matches('/'))
}

/// Run the sink until its input closes and every request has settled.
pub async fn run(
    name: String,
    config: SplunkHecConfig,
    formats: Vec<Format>,
    mut input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) -> Result<(), HecError> {
    let client = client(&config)?;
    let token = token_header(&config)?;
    let channel = uuid::Uuid::new_v4().to_string().to_uppercase();
    let acks = Arc::new(AckTracker::default());
    let (stop_polling, polling) = watch::channel(false);
    let poller = tokio::spawn(acks::poll(
        Arc::clone(&acks),
        AckPoll {
            client: client.clone(),
            url: url(&config, "/services/collector/ack"),
            token: token.clone(),
            channel: channel.clone(),
            interval: Duration::from_millis(config.ack_poll_interval_ms.max(10)),
        },
        Arc::clone(&ctx.metrics),
        polling,
    ));
    let (fatal_tx, fatal_rx) = watch::channel(None);
    let sender = Arc::new(Sender {
        name,
        pacer: Pacer::new(
            config.rate_limit_events_per_sec,
            config.rate_limit_bytes_per_sec,
            config.batch_max_events,
            config.batch_max_bytes,
        ),
        event_url: url(&config, "/services/collector/event"),
        client,
        token,
        channel,
        acks,
        metrics: Arc::clone(&ctx.metrics),
        dead_letters: Arc::clone(&ctx.dead_letters),
        fatal: fatal_tx,
        config,
    });
    let requests = Arc::new(Semaphore::new(sender.config.max_in_flight_requests.max(1)));
    let mut tasks = JoinSet::new();
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_bytes = 0usize;
    let linger = Duration::from_millis(sender.config.batch_timeout_ms);
    let mut deadline = tokio::time::Instant::now() + linger;
    loop {
        let batch = tokio::select! {
            b = input.recv() => b,
            _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => {
                dispatch(&sender, &requests, &mut tasks, std::mem::take(&mut pending)).await;
                pending_bytes = 0;
                continue;
            }
        };
        let Some(batch) = batch else { break };
        for (record, ack) in batch.records.iter().zip(batch.acks) {
            for output in record
                .outputs
                .iter()
                .filter(|o| formats.contains(&o.format))
            {
                let envelope =
                    envelope::encode(&sender.config, record, output.format, &output.body);
                if pending.is_empty() {
                    deadline = tokio::time::Instant::now() + linger;
                }
                if !pending.is_empty()
                    && pending_bytes + envelope.len() > sender.config.batch_max_bytes
                {
                    dispatch(&sender, &requests, &mut tasks, std::mem::take(&mut pending)).await;
                    pending_bytes = 0;
                    deadline = tokio::time::Instant::now() + linger;
                }
                pending_bytes += envelope.len();
                pending.push(Item {
                    envelope,
                    ack: ack.share(),
                    origin: Arc::clone(&record.origin),
                });
                if pending.len() >= sender.config.batch_max_events {
                    dispatch(&sender, &requests, &mut tasks, std::mem::take(&mut pending)).await;
                    pending_bytes = 0;
                }
            }
            ack.resolve(BatchStatus::Delivered);
        }
        while tasks.try_join_next().is_some() {}
    }
    if !pending.is_empty() {
        dispatch(&sender, &requests, &mut tasks, pending).await;
    }
    while tasks.join_next().await.is_some() {}
    let _ = stop_polling.send(true);
    let _ = poller.await;
    let fatal = fatal_rx.borrow().clone();
    match fatal {
        Some(reason) => Err(HecError::Fatal(reason)),
        None => Ok(()),
    }
}

async fn dispatch(
    sender: &Arc<Sender>,
    requests: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    items: Vec<Item>,
) {
    let Ok(permit) = Arc::clone(requests).acquire_owned().await else {
        return;
    };
    let sender = Arc::clone(sender);
    tasks.spawn(async move {
        sender.deliver(items).await;
        drop(permit);
    });
}

impl Sender {
    /// Send `items` until every one of them is delivered, dead-lettered or failed.
    async fn deliver(&self, items: Vec<Item>) {
        let mut work: VecDeque<Vec<Item>> = VecDeque::from([items]);
        while let Some(batch) = work.pop_front() {
            if let Some(reason) = self.fatal.borrow().clone() {
                tracing::debug!(sink = %self.name, %reason, "sink stopped; batch left unacknowledged");
                settle(batch, BatchStatus::Failed);
                continue;
            }
            let body: Vec<u8> = batch
                .iter()
                .flat_map(|i| i.envelope.iter().copied().chain(*b"\n"))
                .collect();
            let mut backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(self.config.retry_max_delay_secs.max(1)))
                .with_jitter()
                .without_max_times()
                .build();
            loop {
                self.pacer
                    .wait(batch.len(), body.len(), &self.metrics)
                    .await;
                let reply = self.post(&body).await;
                self.metrics.count("hec_requests", 1);
                match reply {
                    Reply::Accepted { ack_id } => {
                        self.pacer.success(&self.metrics);
                        match (ack_id, self.config.indexer_ack) {
                            (Some(id), true) => {
                                if self.acknowledged(id).await {
                                    self.delivered(batch.len());
                                    settle(batch, BatchStatus::Delivered);
                                    break;
                                }
                                self.metrics.count("hec_ack_timeouts", 1);
                                tracing::warn!(sink = %self.name, ack_id = id, "no indexer acknowledgement in time; resending (duplicates possible)");
                                continue;
                            }
                            (None, true) if !self.config.allow_without_ack => {
                                self.stop("the HEC token has indexer acknowledgement disabled; enable useACK on the token or set allow_without_ack = true".into());
                                settle(batch, BatchStatus::Failed);
                                break;
                            }
                            _ => {
                                self.delivered(batch.len());
                                settle(batch, BatchStatus::Delivered);
                                break;
                            }
                        }
                    }
                    Reply::Partial { index, reason } => {
                        let mut batch = batch;
                        let index = index.min(batch.len().saturating_sub(1));
                        let rest = batch.split_off(index + 1);
                        let bad = batch.pop().expect("index is inside the batch");
                        self.delivered(batch.len());
                        settle(batch, BatchStatus::Delivered);
                        self.dead_letter(vec![bad], &reason);
                        if !rest.is_empty() {
                            work.push_front(rest);
                        }
                        break;
                    }
                    Reply::TooLarge => {
                        let mut batch = batch;
                        if batch.len() == 1 {
                            self.dead_letter(batch, "the event alone is over the collector's max_content_length (HTTP 413)");
                        } else {
                            let second = batch.split_off(batch.len() / 2);
                            self.metrics.count("hec_splits", 1);
                            work.push_front(second);
                            work.push_front(batch);
                        }
                        break;
                    }
                    Reply::Retry { reason, busy } => {
                        if busy {
                            self.pacer.busy(&self.metrics);
                        }
                        self.metrics.count("hec_retries", 1);
                        let wait = backoff.next().unwrap_or(Duration::from_secs(1));
                        tracing::debug!(sink = %self.name, %reason, retry_in = ?wait, "HEC request to be retried");
                        tokio::time::sleep(wait).await;
                    }
                    Reply::Fatal(reason) => {
                        self.stop(reason);
                        settle(batch, BatchStatus::Failed);
                        break;
                    }
                    Reply::Rejected(reason) => {
                        self.dead_letter(batch, &reason);
                        break;
                    }
                }
            }
        }
    }

    async fn post(&self, body: &[u8]) -> Reply {
        let mut request = self
            .client
            .post(&self.event_url)
            .header(reqwest::header::AUTHORIZATION, self.token.clone())
            .header("X-Splunk-Request-Channel", &self.channel);
        let payload = if self.config.compression {
            let mut enc = GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            if enc.write_all(body).is_err() {
                return Reply::Retry {
                    reason: "gzip failed".into(),
                    busy: false,
                };
            }
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
            enc.finish().unwrap_or_default()
        } else {
            body.to_vec()
        };
        self.metrics.count("hec_bytes_sent", payload.len() as u64);
        self.metrics.count("hec_body_bytes", body.len() as u64);
        match request.body(payload).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                reply::classify(status, &text)
            }
            Err(e) => Reply::Retry {
                reason: format!("request failed: {e}"),
                busy: false,
            },
        }
    }

    /// Wait for `id`'s acknowledgement until the ack timeout; false means resend.
    /// Count records Splunk accepted (and, with acks on, indexed).
    fn delivered(&self, n: usize) {
        self.metrics.count("hec_events_delivered", n as u64);
        Metrics::add(&self.metrics.records_emitted, n as u64);
    }

    async fn acknowledged(&self, id: u64) -> bool {
        let wait = self.acks.register(id);
        let timeout = Duration::from_secs(self.config.ack_timeout_secs);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => true,
            _ => {
                self.acks.forget(id);
                false
            }
        }
    }

    fn stop(&self, reason: String) {
        if self.fatal.borrow().is_none() {
            tracing::error!(sink = %self.name, %reason, "Splunk HEC sink stopped: nothing more is acknowledged upstream");
            self.metrics.count("hec_fatal", 1);
            let _ = self.fatal.send(Some(reason));
        }
    }

    fn dead_letter(&self, items: Vec<Item>, reason: &str) {
        let letters: Vec<DeadLetter> = items
            .iter()
            .map(|i| DeadLetter {
                kind: "hec_rejected",
                reason: format!("sink `{}`: {reason}", self.name),
                origin: (*i.origin).clone(),
                position: None,
                bytes: i.envelope.clone(),
            })
            .collect();
        for l in &letters {
            self.metrics.dead_letter(l.kind);
        }
        let status = match self.dead_letters.write_all(&letters) {
            Ok(()) => BatchStatus::Delivered,
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot write dead letters; the records stay unacknowledged");
                BatchStatus::Failed
            }
        };
        settle(items, status);
    }
}

fn settle(items: Vec<Item>, status: BatchStatus) {
    for i in items {
        i.ack.resolve(status);
    }
}

/// Reach the collector without sending data: its health endpoint, then the token (an
/// empty ack query answers 200 with acknowledgement on, code 14 with it off).
pub async fn check(config: &SplunkHecConfig) -> Vec<String> {
    let (client, token) = match (client(config), token_header(config)) {
        (Ok(c), Ok(t)) => (c, t),
        (Err(e), _) | (_, Err(e)) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    match client
        .get(url(config, "/services/collector/health"))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => problems.push(format!("health endpoint answered HTTP {}", r.status())),
        Err(e) => return vec![format!("cannot reach {}: {e}", config.endpoint)],
    }
    let channel = uuid::Uuid::new_v4().to_string();
    let probe = client
        .post(url(config, "/services/collector/ack"))
        .header(reqwest::header::AUTHORIZATION, token)
        .header("X-Splunk-Request-Channel", channel)
        .body(r#"{"acks":[]}"#)
        .send()
        .await;
    match probe {
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            let code = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["code"].as_i64());
            if code == Some(14) {
                // The token is valid; it only has acknowledgement turned off.
                if config.indexer_ack && !config.allow_without_ack {
                    problems.push("the token has indexer acknowledgement disabled; enable useACK or set allow_without_ack = true".into());
                }
                return problems;
            }
            match reply::classify(status, &text) {
                Reply::Accepted { .. } => {}
                Reply::Fatal(reason) => problems.push(reason),
                other => problems.push(format!("token check: {other:?}")),
            }
        }
        Err(e) => problems.push(format!("token check failed: {e}")),
    }
    problems
}
