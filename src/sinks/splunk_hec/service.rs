//! One HEC request: post the envelopes, classify the reply, and wait for the indexer
//! acknowledgement.
//!
//! The driver's request slot (`max_in_flight_requests`) is held only while a request is
//! being posted. Once the collector has taken a request, its acknowledgement is awaited
//! apart, with the body kept compressed, under a byte budget of its own
//! (`max_pending_ack_bytes`): a Splunk whose acks take seconds slows nothing until that
//! budget is spent. An ack that does not come in time sends the request again.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use reqwest::header::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::acks::AckTracker;
use super::config::SplunkHecConfig;
use super::envelope;
use super::pacing::Pacer;
use super::reply::{self, Reply};
use crate::metrics::Metrics;
use crate::record::{Output, Record};
use crate::sinks::driver::{self, Called, Fate, Outcome};
use crate::sinks::retry::Trouble;
use crate::supervisor::SinkHealth;

const NO_ACK: &str = "the HEC token has indexer acknowledgement disabled; enable useACK on the token or set allow_without_ack = true";

pub struct Service {
    pub config: SplunkHecConfig,
    pub client: reqwest::Client,
    pub event_url: String,
    pub token: HeaderValue,
    pub channel: String,
    pub acks: Arc<AckTracker>,
    pub pacer: Pacer,
    pub metrics: Arc<Metrics>,
    pub health: SinkHealth,
    pub ack_budget: Arc<Semaphore>,
    pub ack_url: String,
    /// Set when the collector took a request without an ack id although acks are
    /// required: until the token has them again, tries only ask, and send nothing.
    pub acks_disabled: AtomicBool,
}

/// A request the collector took, kept as it was sent until its acknowledgement.
struct Held {
    id: u64,
    payload: Bytes,
    raw_len: usize,
    /// Its share of `max_pending_ack_bytes`, given back once the ack is settled.
    budget: OwnedSemaphorePermit,
}

impl driver::Service for Service {
    type Doc = Vec<u8>;
    const REJECTED: &'static str = "hec_rejected";

    fn encode(&self, record: &Record, output: &Output) -> Vec<u8> {
        envelope::encode(&self.config, record, output.format, &output.body)
    }

    async fn call(self: Arc<Self>, docs: Vec<Vec<u8>>) -> Called<Vec<u8>> {
        if self.acks_disabled.load(Ordering::Acquire) {
            if !self.token_has_acks().await {
                return Called::Done(Outcome::Again(docs, Trouble::Fault(NO_ACK.into())));
            }
            self.acks_disabled.store(false, Ordering::Release);
        }
        let body = lines(&docs);
        let body_len = body.len();
        self.metrics.count("hec_body_bytes", body_len as u64);
        let payload = if self.config.compression {
            // Milliseconds of CPU per batch: on the blocking pool they do not hold up the
            // runtime's workers, which meanwhile build the next batch and poll acks.
            match tokio::task::spawn_blocking(move || gzip(&body)).await {
                Ok(payload) => payload,
                Err(e) => {
                    return Called::Done(Outcome::Again(
                        docs,
                        Trouble::Retry(format!("compressing the batch failed: {e}")),
                    ))
                }
            }
        } else {
            body
        };
        let budget = if self.config.indexer_ack {
            let n = u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .clamp(1, self.config.max_pending_ack_bytes_u32());
            match Arc::clone(&self.ack_budget).acquire_many_owned(n).await {
                Ok(permit) => Some(permit),
                Err(_) => return Called::Done(Outcome::Released),
            }
        } else {
            None
        };
        self.pacer.wait(docs.len(), body_len, &self.metrics).await;
        let payload = Bytes::from(payload);
        let reply = self.post(&payload).await;
        Called::Done(match reply {
            Reply::Retry { reason, busy } => {
                if busy {
                    self.pacer.busy(&self.metrics);
                }
                Outcome::Again(docs, Trouble::Retry(reason))
            }
            Reply::Fault(reason) => Outcome::Again(docs, Trouble::Fault(reason)),
            Reply::Accepted { ack_id: None }
                if self.config.indexer_ack && !self.config.allow_without_ack =>
            {
                // Taken but not confirmable: held, and sent again once the token
                // confirms (a duplicate then, never a loss).
                self.acks_disabled.store(true, Ordering::Release);
                Outcome::Again(docs, Trouble::Fault(NO_ACK.into()))
            }
            Reply::Accepted { ack_id } => {
                self.pacer.success(&self.metrics);
                match (ack_id, budget) {
                    (Some(id), Some(budget)) if self.config.indexer_ack => {
                        let held = Held {
                            id,
                            payload,
                            raw_len: body_len,
                            budget,
                        };
                        drop(docs);
                        return Called::Confirming(Box::pin(self.confirm(held)));
                    }
                    _ => Outcome::Delivered,
                }
            }
            Reply::Partial { index, reason } => {
                let index = index.min(docs.len().saturating_sub(1));
                let fates = docs.into_iter().enumerate().map(|(i, doc)| {
                    let fate = match i.cmp(&index) {
                        std::cmp::Ordering::Less => Fate::Delivered,
                        std::cmp::Ordering::Equal => Fate::Rejected(reason.clone()),
                        std::cmp::Ordering::Greater => Fate::Resend,
                    };
                    (doc, fate)
                });
                Outcome::Each(fates.collect())
            }
            Reply::TooLarge => Outcome::TooLarge(
                docs,
                "the event alone is over the collector's max_content_length (HTTP 413)".into(),
            ),
            Reply::Rejected(reason) => Outcome::Each(
                docs.into_iter()
                    .map(|d| (d, Fate::Rejected(reason.clone())))
                    .collect(),
            ),
        })
    }
}

impl Service {
    /// Wait for the request's ack id. When it does not come in time, the request goes
    /// back to the driver to be sent again (a duplicate, never a loss).
    async fn confirm(self: Arc<Self>, held: Held) -> Outcome<Vec<u8>> {
        match self.acknowledged(held.id).await {
            Some(true) => Outcome::Delivered,
            Some(false) => {
                self.metrics.count("hec_ack_timeouts", 1);
                let reason = format!(
                    "no indexer acknowledgement for ack id {} within {} s; sending again (duplicates possible)",
                    held.id, self.config.ack_timeout_secs
                );
                let docs = self.unpack(&held);
                drop(held.budget);
                Outcome::Again(docs, Trouble::Retry(reason))
            }
            None => Outcome::Released,
        }
    }

    /// An empty ack query: HTTP 200 when the token has acknowledgement on, code 14 when off.
    async fn token_has_acks(&self) -> bool {
        let probe = self
            .client
            .post(&self.ack_url)
            .header(reqwest::header::AUTHORIZATION, self.token.clone())
            .header("X-Splunk-Request-Channel", &self.channel)
            .body(r#"{"acks":[]}"#)
            .send()
            .await;
        matches!(probe, Ok(r) if r.status().is_success())
    }

    async fn post(&self, payload: &Bytes) -> Reply {
        let mut request = self
            .client
            .post(&self.event_url)
            .header(reqwest::header::AUTHORIZATION, self.token.clone())
            .header("X-Splunk-Request-Channel", &self.channel);
        if self.config.compression {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        self.metrics.count("hec_wire_bytes", payload.len() as u64);
        match request.body(payload.clone()).send().await {
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

    /// The envelopes of a held request, back from its body.
    fn unpack(&self, held: &Held) -> Vec<Vec<u8>> {
        let mut unzipped = Vec::new();
        let body = if self.config.compression {
            unzipped.reserve(held.raw_len);
            let _ = GzDecoder::new(&held.payload[..]).read_to_end(&mut unzipped);
            &unzipped[..]
        } else {
            &held.payload[..]
        };
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// `Some(true)` when acknowledged, `Some(false)` after the ack timeout, `None` when
    /// the supervisor gave up meanwhile.
    async fn acknowledged(&self, id: u64) -> Option<bool> {
        let wait = self.acks.register(id);
        let timeout = Duration::from_secs(self.config.ack_timeout_secs);
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, wait) => Some(matches!(r, Ok(Ok(())))),
            given_up = self.health.pause(Duration::MAX) => given_up.then_some(false),
        };
        if outcome != Some(true) {
            self.acks.forget(id);
        }
        outcome
    }
}

fn lines(docs: &[Vec<u8>]) -> Vec<u8> {
    let len = docs.iter().map(|d| d.len() + 1).sum();
    let mut body = Vec::with_capacity(len);
    for d in docs {
        body.extend_from_slice(d);
        body.push(b'\n');
    }
    body
}

/// gzip at level 1: on CloudTrail envelopes it keeps most of the saving of higher levels
/// for a fraction of the CPU, and the sink spends its CPU next to the transform's.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}
