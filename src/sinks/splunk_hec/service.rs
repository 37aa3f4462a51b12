//! One HEC request from send to settlement: post, classify the reply, retry, split,
//! dead-letter, and wait for the indexer acknowledgement.
//!
//! A request slot (`max_in_flight_requests`) is held only while a request is being
//! posted. Once the collector has taken a request, its acknowledgement is awaited apart,
//! with the body kept compressed for a resend, under a byte budget of its own
//! (`max_pending_ack_bytes`): a Splunk whose acks take seconds slows nothing until that
//! budget is spent.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::future::BoxFuture;
use reqwest::header::HeaderValue;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::acks::AckTracker;
use super::config::SplunkHecConfig;
use super::pacing::Pacer;
use super::reply::{self, Reply};
use crate::ack::{AckToken, BatchStatus};
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::event::Origin;
use crate::metrics::Metrics;
use crate::sinks::retry::{self, Attempt};
use crate::supervisor::SinkHealth;

const NO_ACK: &str = "the HEC token has indexer acknowledgement disabled; enable useACK on the token or set allow_without_ack = true";

/// One document on its way: its envelope and its share of the record's acknowledgement.
pub struct Item {
    pub envelope: Vec<u8>,
    pub ack: AckToken,
    pub origin: Arc<Origin>,
    /// The record's first document in this sink: counts the record as delivered once.
    pub first: bool,
}

/// What an item keeps while its request waits for acknowledgement.
struct Meta {
    ack: AckToken,
    origin: Arc<Origin>,
    first: bool,
}

/// A request the collector took, kept as it was sent until its acknowledgement.
struct Held {
    payload: Vec<u8>,
    raw_len: usize,
    items: Vec<Meta>,
}

/// Dropped by every task of the sink when it ends; the sink's loop waits for the last.
pub type Alive = mpsc::Sender<()>;

pub struct Service {
    pub name: String,
    pub config: SplunkHecConfig,
    pub client: reqwest::Client,
    pub event_url: String,
    pub token: HeaderValue,
    pub channel: String,
    pub acks: Arc<AckTracker>,
    pub pacer: Pacer,
    pub metrics: Arc<Metrics>,
    pub dead_letters: Arc<DeadLetterSink>,
    pub health: SinkHealth,
    pub requests: Arc<Semaphore>,
    /// Slots for resending requests whose acknowledgement did not come.
    pub resends: Arc<Semaphore>,
    pub ack_budget: Arc<Semaphore>,
    pub ack_url: String,
    /// Set when the collector took a request without an ack id although acks are
    /// required: until the token has them again, tries only ask, and send nothing.
    pub acks_disabled: AtomicBool,
}

impl Service {
    /// Deliver `items` through request slot `slot`: every one ends delivered,
    /// dead-lettered, or failed when the supervisor gives up.
    pub fn deliver(
        self: Arc<Self>,
        items: Vec<Item>,
        slot: OwnedSemaphorePermit,
        alive: Alive,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut work = VecDeque::from([items]);
            while let Some(batch) = work.pop_front() {
                let body = lines(&batch);
                let payload = self.compress(&body);
                let Some((reply, budget)) = self.send(&payload, batch.len(), body.len()).await
                else {
                    settle(batch, BatchStatus::Failed);
                    continue;
                };
                match reply {
                    Reply::Accepted { ack_id: Some(id) } if self.config.indexer_ack => {
                        let held = Held {
                            payload,
                            raw_len: body.len(),
                            items: batch
                                .into_iter()
                                .map(|i| Meta {
                                    ack: i.ack,
                                    origin: i.origin,
                                    first: i.first,
                                })
                                .collect(),
                        };
                        tokio::spawn(Arc::clone(&self).await_ack(id, held, budget, alive.clone()));
                    }
                    Reply::Accepted { .. } => {
                        self.delivered(batch.iter().filter(|i| i.first).count());
                        settle(batch, BatchStatus::Delivered);
                    }
                    Reply::Partial { index, reason } => {
                        let mut batch = batch;
                        let index = index.min(batch.len().saturating_sub(1));
                        let rest = batch.split_off(index + 1);
                        let bad = batch.pop().expect("index is inside the batch");
                        self.delivered(batch.iter().filter(|i| i.first).count());
                        settle(batch, BatchStatus::Delivered);
                        self.dead_letter(vec![bad], &reason).await;
                        if !rest.is_empty() {
                            work.push_front(rest);
                        }
                    }
                    Reply::TooLarge => {
                        let mut batch = batch;
                        if batch.len() == 1 {
                            self.dead_letter(batch, "the event alone is over the collector's max_content_length (HTTP 413)").await;
                        } else {
                            let second = batch.split_off(batch.len() / 2);
                            self.metrics.count("hec_splits", 1);
                            work.push_front(second);
                            work.push_front(batch);
                        }
                    }
                    Reply::Rejected(reason) => self.dead_letter(batch, &reason).await,
                    Reply::Retry { .. } | Reply::Fault(_) => {
                        unreachable!("send retries until another answer")
                    }
                }
            }
            drop(slot);
            drop(alive);
        })
    }

    /// Wait for `id`; resend the same body when it does not come in time.
    async fn await_ack(
        self: Arc<Self>,
        mut id: u64,
        held: Held,
        budget: Option<OwnedSemaphorePermit>,
        alive: Alive,
    ) {
        loop {
            match self.acknowledged(id).await {
                Some(true) => {
                    self.delivered(held.items.iter().filter(|i| i.first).count());
                    settle_meta(held.items, BatchStatus::Delivered);
                    return;
                }
                Some(false) => {}
                None => {
                    settle_meta(held.items, BatchStatus::Failed);
                    return;
                }
            }
            self.metrics.count("hec_ack_timeouts", 1);
            tracing::warn!(sink = %self.name, ack_id = id, "no indexer acknowledgement in time; resending (duplicates possible)");
            // Resends have slots of their own: a fresh request waiting for the budget
            // this one holds must not keep it from going out again.
            let Ok(slot) = Arc::clone(&self.resends).acquire_owned().await else {
                settle_meta(held.items, BatchStatus::Failed);
                return;
            };
            let sent = self
                .post(&held.payload, held.items.len(), held.raw_len)
                .await;
            match sent {
                None => {
                    settle_meta(held.items, BatchStatus::Failed);
                    return;
                }
                Some(Reply::Accepted { ack_id: Some(new) }) => id = new,
                Some(Reply::Accepted { ack_id: None }) => {
                    self.delivered(held.items.iter().filter(|i| i.first).count());
                    settle_meta(held.items, BatchStatus::Delivered);
                    return;
                }
                Some(_) => {
                    // The collector took this body once and now refuses part of it:
                    // go through the splitting and dead-lettering again, document by document.
                    drop(budget);
                    let items = self.unpack(held);
                    Arc::clone(&self).deliver(items, slot, alive).await;
                    return;
                }
            }
        }
    }

    /// Post until the collector answers something other than retry or fault. Takes the
    /// acknowledgement budget for the body first, so what waits for acks stays bounded.
    async fn send(
        &self,
        payload: &[u8],
        events: usize,
        raw_len: usize,
    ) -> Option<(Reply, Option<OwnedSemaphorePermit>)> {
        let budget = if self.config.indexer_ack {
            let n = u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .clamp(1, self.config.max_pending_ack_bytes_u32());
            Some(
                Arc::clone(&self.ack_budget)
                    .acquire_many_owned(n)
                    .await
                    .ok()?,
            )
        } else {
            None
        };
        let reply = self.post(payload, events, raw_len).await?;
        Some((reply, budget))
    }

    /// Post until answered with something other than retry or fault; `None` when the
    /// supervisor gave up first. The caller holds a request slot.
    async fn post(&self, payload: &[u8], events: usize, raw_len: usize) -> Option<Reply> {
        let max_delay = Duration::from_secs(self.config.retry_max_delay_secs.max(1));
        retry::until_done(&self.health, &self.metrics, max_delay, || {
            self.try_post(payload, events, raw_len)
        })
        .await
    }

    async fn try_post(&self, payload: &[u8], events: usize, raw_len: usize) -> Attempt<Reply> {
        if self.acks_disabled.load(Ordering::Acquire) {
            if !self.token_has_acks().await {
                return Attempt::Fault(NO_ACK.into());
            }
            self.acks_disabled.store(false, Ordering::Release);
        }
        self.pacer.wait(events, raw_len, &self.metrics).await;
        let reply = self.post_once(payload).await;
        self.metrics.count_labeled("sink_requests", &self.name, 1);
        match reply {
            Reply::Retry { reason, busy } => {
                if busy {
                    self.pacer.busy(&self.metrics);
                }
                Attempt::Retry(reason)
            }
            Reply::Fault(reason) => Attempt::Fault(reason),
            Reply::Accepted { ack_id: None }
                if self.config.indexer_ack && !self.config.allow_without_ack =>
            {
                // Taken but not confirmable: held, and sent again once the token
                // confirms (a duplicate then, never a loss).
                self.acks_disabled.store(true, Ordering::Release);
                Attempt::Fault(NO_ACK.into())
            }
            other => {
                if matches!(other, Reply::Accepted { .. }) {
                    self.pacer.success(&self.metrics);
                }
                Attempt::Done(other)
            }
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

    async fn post_once(&self, payload: &[u8]) -> Reply {
        let mut request = self
            .client
            .post(&self.event_url)
            .header(reqwest::header::AUTHORIZATION, self.token.clone())
            .header("X-Splunk-Request-Channel", &self.channel);
        if self.config.compression {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        self.metrics
            .count_labeled("sink_bytes", &self.name, payload.len() as u64);
        match request.body(payload.to_vec()).send().await {
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

    fn compress(&self, body: &[u8]) -> Vec<u8> {
        self.metrics.count("hec_body_bytes", body.len() as u64);
        if !self.config.compression {
            return body.to_vec();
        }
        let mut enc = GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing to a Vec cannot fail.
        let _ = enc.write_all(body);
        enc.finish().unwrap_or_default()
    }

    /// The documents of a held request, back from its body.
    fn unpack(&self, held: Held) -> Vec<Item> {
        let body = if self.config.compression {
            let mut out = Vec::with_capacity(held.raw_len);
            let _ = GzDecoder::new(&held.payload[..]).read_to_end(&mut out);
            out
        } else {
            held.payload
        };
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .zip(held.items)
            .map(|(line, m)| Item {
                envelope: line.to_vec(),
                ack: m.ack,
                origin: m.origin,
                first: m.first,
            })
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

    /// Count records Splunk accepted (and, with acks on, indexed).
    fn delivered(&self, records: usize) {
        self.metrics.count("hec_events_delivered", records as u64);
        self.metrics
            .count_labeled("sink_records_delivered", &self.name, records as u64);
        Metrics::add(&self.metrics.records_emitted, records as u64);
    }

    async fn dead_letter(&self, items: Vec<Item>, reason: &str) {
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
        self.metrics
            .count_labeled("sink_records_rejected", &self.name, letters.len() as u64);
        let status = match self.dead_letters.write(letters).await {
            Ok(()) => BatchStatus::Delivered,
            Err(e) => {
                tracing::error!(sink = %self.name, error = %e, "cannot write dead letters; the records stay unacknowledged");
                BatchStatus::Failed
            }
        };
        settle(items, status);
    }
}

fn lines(batch: &[Item]) -> Vec<u8> {
    let len = batch.iter().map(|i| i.envelope.len() + 1).sum();
    let mut body = Vec::with_capacity(len);
    for i in batch {
        body.extend_from_slice(&i.envelope);
        body.push(b'\n');
    }
    body
}

fn settle(items: Vec<Item>, status: BatchStatus) {
    for i in items {
        i.ack.resolve(status);
    }
}

fn settle_meta(items: Vec<Meta>, status: BatchStatus) {
    for i in items {
        i.ack.resolve(status);
    }
}
