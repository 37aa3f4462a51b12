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

use super::driver::{self, Settings};
use super::{Built, SinkBatch, SinkContext};
use crate::record::Format;
use acks::{AckPoll, AckTracker};
pub use config::SplunkHecConfig;
use pacing::Pacer;
use reply::Reply;
use service::Service;

#[derive(Debug, thiserror::Error)]
pub enum HecError {
    #[error("splunk_hec: {0}")]
    Token(#[from] crate::secrets::SecretError),
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
    let text = secrecy::zeroize::Zeroizing::new(format!("Splunk {}", config.token()?.expose()));
    let mut value = HeaderValue::from_str(&text).map_err(|_| HecError::TokenHeader)?;
    value.set_sensitive(true);
    Ok(value)
}

fn url(config: &SplunkHecConfig, path: &str) -> String {
    format!("{}{path}", config.endpoint.trim_end_matches('/'))
}

/// Read the token and the CA, and build the HTTP client: what is wrong with them shows
/// here, before any source starts.
pub fn build(config: SplunkHecConfig) -> Result<Built, HecError> {
    let client = client(&config)?;
    let token = token_header(&config)?;
    Ok(Built::new(move |formats, input, ctx| {
        run(client, token, config, formats, input, ctx)
    }))
}

/// Run the sink until its input closes and every request has settled.
async fn run(
    client: reqwest::Client,
    token: HeaderValue,
    config: SplunkHecConfig,
    formats: Vec<Format>,
    input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) {
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
    let settings = Settings {
        max_events: config.batch_max_events,
        max_bytes: config.batch_max_bytes,
        linger: Duration::from_millis(config.batch_timeout_ms),
        max_in_flight: config.max_in_flight_requests,
        max_retry_delay: Duration::from_secs(config.retry_max_delay_secs.max(1)),
    };
    let service = Service {
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
        health: ctx.health.clone(),
        ack_budget: Arc::new(Semaphore::new(config.max_pending_ack_bytes_u32() as usize)),
        acks_disabled: AtomicBool::new(false),
        config,
    };
    driver::run(service, formats, settings, input, ctx).await;
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
