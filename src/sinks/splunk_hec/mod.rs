//! The `splunk_hec` sink: batched, gzip-compressed event envelopes to a Splunk HTTP Event
//! Collector, acknowledged upstream only after indexer acknowledgement (or HTTP 200 when
//! the token has acknowledgement off and that is allowed).
//!
//! One bad event never blocks or drops the batch around it: on `invalid-event-number = k`
//! the events before k count as delivered, event k is dead-lettered, the rest is resent.
//! Busy replies and network errors are retried with exponential backoff and full jitter
//! and lower the send rate; token and channel errors are sink faults: the batch is held
//! and retried while the supervisor pauses intake.

pub mod acks;
pub mod config;
pub mod envelope;
pub mod pacing;
pub mod reply;
pub mod service;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use tokio::sync::{mpsc, watch, Semaphore};

use super::{SinkBatch, SinkContext};
use crate::ack::BatchStatus;
use crate::record::Format;
use acks::{AckPoll, AckTracker};
pub use config::SplunkHecConfig;
use pacing::Pacer;
use reply::Reply;
use service::{Item, Service};

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

/// A sink built from its settings, ready to run.
pub struct Built {
    client: reqwest::Client,
    token: HeaderValue,
    config: SplunkHecConfig,
}

/// Read the token and the CA, and build the HTTP client: what is wrong with them shows
/// here, before any source starts.
pub fn build(config: SplunkHecConfig) -> Result<Built, HecError> {
    Ok(Built {
        client: client(&config)?,
        token: token_header(&config)?,
        config,
    })
}

/// Run the sink until its input closes and every request has settled.
pub async fn run(
    built: Built,
    formats: Vec<Format>,
    mut input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) {
    let Built {
        client,
        token,
        config,
    } = built;
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
    let service = Arc::new(Service {
        name: ctx.health.name().to_string(),
        pacer: Pacer::new(
            config.rate_limit_events_per_sec,
            config.rate_limit_bytes_per_sec,
            config.batch_max_events,
            config.batch_max_bytes,
        ),
        event_url: url(&config, "/services/collector/event"),
        ack_url: url(&config, "/services/collector/ack"),
        client,
        token,
        channel,
        acks,
        metrics: Arc::clone(&ctx.metrics),
        dead_letters: Arc::clone(&ctx.dead_letters),
        health: ctx.health.clone(),
        requests: Arc::new(Semaphore::new(config.max_in_flight_requests.max(1))),
        resends: Arc::new(Semaphore::new(config.max_in_flight_requests.max(1))),
        ack_budget: Arc::new(Semaphore::new(config.max_pending_ack_bytes_u32() as usize)),
        acks_disabled: AtomicBool::new(false),
        config,
    });
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let mut pending: Vec<Item> = Vec::new();
    let mut pending_bytes = 0usize;
    let linger = Duration::from_millis(service.config.batch_timeout_ms);
    let max_events = service.config.batch_max_events.max(1);
    let max_bytes = service.config.batch_max_bytes;
    let mut deadline = tokio::time::Instant::now() + linger;
    // A request task starts only once a request slot is free, so batches wait in the
    // pipeline's bounded channels, not in memory here, in front of a slow collector.
    let dispatch = |items: Vec<Item>| {
        let service = Arc::clone(&service);
        let alive = alive.clone();
        async move {
            if let Ok(slot) = Arc::clone(&service.requests).acquire_owned().await {
                tokio::spawn(service.deliver(items, slot, alive));
            }
        }
    };
    loop {
        let batch = tokio::select! {
            b = input.recv() => b,
            _ = tokio::time::sleep_until(deadline), if !pending.is_empty() => {
                dispatch(std::mem::take(&mut pending)).await;
                pending_bytes = 0;
                continue;
            }
        };
        let Some(batch) = batch else { break };
        for (record, ack) in batch.records.iter().zip(batch.acks) {
            let mut first = true;
            for output in record
                .outputs
                .iter()
                .filter(|o| formats.contains(&o.format))
            {
                let envelope =
                    envelope::encode(&service.config, record, output.format, &output.body);
                if pending.is_empty() {
                    deadline = tokio::time::Instant::now() + linger;
                }
                if !pending.is_empty() && pending_bytes + envelope.len() > max_bytes {
                    dispatch(std::mem::take(&mut pending)).await;
                    pending_bytes = 0;
                    deadline = tokio::time::Instant::now() + linger;
                }
                pending_bytes += envelope.len();
                pending.push(Item {
                    envelope,
                    ack: ack.share(),
                    origin: Arc::clone(&record.origin),
                    first: std::mem::take(&mut first),
                });
                if pending.len() >= max_events {
                    dispatch(std::mem::take(&mut pending)).await;
                    pending_bytes = 0;
                }
            }
            ack.resolve(BatchStatus::Delivered);
        }
    }
    if !pending.is_empty() {
        dispatch(pending).await;
    }
    drop(alive);
    let _ = all_done.recv().await;
    let _ = stop_polling.send(true);
    let _ = poller.await;
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
                Reply::Fault(reason) => problems.push(reason),
                other => problems.push(format!("token check: {other:?}")),
            }
        }
        Err(e) => problems.push(format!("token check failed: {e}")),
    }
    problems
}
