//! The driver every sink runs on. A sink only encodes documents and makes one request
//! ([`Service`]); the driver does the rest, the same way for each:
//! - batches documents into requests by count, bytes and time;
//! - limits the requests being made (`max_in_flight`), apart from the ones whose
//!   delivery is still being confirmed (HEC indexer acks, Kafka delivery reports);
//! - retries what did not go through, with jittered backoff, telling the supervisor
//!   whether it was transient or a fault;
//! - dead-letters the documents the destination refused for good, splits requests it
//!   found too large, and settles every document's acknowledgement once;
//! - counts the same metrics, with one meaning each, for every sink.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::retry::{Retrier, Trouble};
use super::{SinkBatch, SinkContext};
use crate::ack::{AckToken, BatchStatus};
use crate::dead_letter::DeadLetter;
use crate::event::Origin;
use crate::metrics::Metrics;
use crate::record::{Format, Output, Record};

/// One encoded document, as its sink sends it.
pub trait Doc: Send + 'static {
    /// What counts against a request's byte limit and goes into a dead letter.
    fn bytes(&self) -> &[u8];
}

impl Doc for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl Doc for bytes::Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// What became of one document of a request.
pub enum Fate {
    Delivered,
    /// Refused for good: dead-lettered with this reason, the others go on.
    Rejected(String),
    /// Not looked at (the destination stopped before it): sent again at once.
    Resend,
    /// Not delivered this time: sent again after a backoff.
    Again(Trouble),
    /// Not known to be delivered, and no longer held to be sent again (the destination's
    /// client went away with it): released unacknowledged, so its input comes back.
    Released,
}

/// How one request ended. Documents come back, in the order they were given, wherever
/// the driver still has work to do with them.
pub enum Outcome<D> {
    Delivered,
    Each(Vec<(D, Fate)>),
    /// Nothing went through: the whole request is sent again after a backoff.
    Again(Vec<D>, Trouble),
    /// The destination found the request too large: it is split in two, and a single
    /// document is dead-lettered with the reason.
    TooLarge(Vec<D>, String),
    /// The request cannot go on (the supervisor gave up while it waited): its documents
    /// are released unacknowledged, to come back.
    Released,
}

/// How a request the sink made stands when it returns.
pub enum Called<D> {
    Done(Outcome<D>),
    /// The destination took the request; its delivery is confirmed by this future, which
    /// runs without holding a request slot.
    Confirming(BoxFuture<'static, Outcome<D>>),
}

/// What a sink does itself: encode one document, make one request.
pub trait Service: Send + Sync + 'static {
    type Doc: Doc;
    /// Dead-letter reason of the documents this sink's destination refuses.
    const REJECTED: &'static str;

    fn encode(&self, record: &Record, output: &Output) -> Self::Doc;

    /// Send `docs` in one request. Runs while the driver holds a request slot.
    fn call(
        self: Arc<Self>,
        docs: Vec<Self::Doc>,
    ) -> impl Future<Output = Called<Self::Doc>> + Send;
}

/// How a sink's documents are batched, sent and retried.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_events: usize,
    pub max_bytes: usize,
    /// How long a request that is not full waits for more documents; zero sends as soon
    /// as the input has nothing more ready.
    pub linger: Duration,
    /// Requests being made at once.
    pub max_in_flight: usize,
    pub max_retry_delay: Duration,
}

/// What the driver keeps of each document besides the document itself.
struct Meta {
    ack: AckToken,
    origin: Arc<Origin>,
    /// The record's first document in this sink: counts the record as delivered once.
    first: bool,
}

struct Shared<S: Service> {
    service: Arc<S>,
    settings: Settings,
    ctx: SinkContext,
    slots: Arc<Semaphore>,
}

/// Documents gathered for the next request.
struct Pending<D> {
    docs: Vec<D>,
    metas: Vec<Meta>,
    bytes: usize,
}

impl<D: Doc> Pending<D> {
    fn new() -> Self {
        Pending {
            docs: Vec::new(),
            metas: Vec::new(),
            bytes: 0,
        }
    }

    fn take(&mut self) -> (Vec<D>, Vec<Meta>) {
        self.bytes = 0;
        (
            std::mem::take(&mut self.docs),
            std::mem::take(&mut self.metas),
        )
    }
}

/// Run a sink until its input closes and every request has settled.
pub async fn run<S: Service>(
    service: S,
    formats: Vec<Format>,
    settings: Settings,
    mut input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) {
    let shared = Arc::new(Shared {
        service: Arc::new(service),
        slots: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
        settings,
        ctx,
    });
    let max_events = settings.max_events.max(1);
    let mut requests = JoinSet::new();
    let mut pending = Pending::new();
    let mut deadline = tokio::time::Instant::now() + settings.linger;
    loop {
        let batch = tokio::select! {
            biased;
            b = input.recv() => b,
            _ = tokio::time::sleep_until(deadline), if !pending.docs.is_empty() => {
                dispatch(&shared, &mut requests, pending.take()).await;
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
                let doc = shared.service.encode(record, output);
                let len = doc.bytes().len();
                if !pending.docs.is_empty() && pending.bytes + len > settings.max_bytes {
                    dispatch(&shared, &mut requests, pending.take()).await;
                }
                if pending.docs.is_empty() {
                    deadline = tokio::time::Instant::now() + settings.linger;
                }
                pending.bytes += len;
                pending.docs.push(doc);
                pending.metas.push(Meta {
                    ack: ack.share(),
                    origin: Arc::clone(&record.origin),
                    first: std::mem::take(&mut first),
                });
                if pending.docs.len() >= max_events {
                    dispatch(&shared, &mut requests, pending.take()).await;
                }
            }
            ack.resolve(BatchStatus::Delivered);
        }
        while requests.try_join_next().is_some() {}
    }
    if !pending.docs.is_empty() {
        dispatch(&shared, &mut requests, pending.take()).await;
    }
    while requests.join_next().await.is_some() {}
}

/// Start a request once a slot is free: batches wait in the pipeline's bounded
/// channels, not in memory here, in front of a slow destination.
async fn dispatch<S: Service>(
    shared: &Arc<Shared<S>>,
    requests: &mut JoinSet<()>,
    (docs, metas): (Vec<S::Doc>, Vec<Meta>),
) {
    match Arc::clone(&shared.slots).acquire_owned().await {
        Ok(slot) => {
            requests.spawn(request(Arc::clone(shared), docs, metas, slot));
        }
        Err(_) => settle(metas, BatchStatus::Failed),
    }
}

/// One request from its first try to the settlement of every document in it.
async fn request<S: Service>(
    shared: Arc<Shared<S>>,
    docs: Vec<S::Doc>,
    metas: Vec<Meta>,
    slot: OwnedSemaphorePermit,
) {
    let name = shared.ctx.health.name();
    let metrics = &shared.ctx.metrics;
    let mut retrier = Retrier::new(&shared.ctx.health, metrics, shared.settings.max_retry_delay);
    let mut slot = Some(slot);
    let mut work = VecDeque::from([(docs, metas)]);
    while let Some((docs, metas)) = work.pop_front() {
        if retrier.given_up() {
            settle(metas, BatchStatus::Failed);
            continue;
        }
        let permit = match slot.take() {
            Some(p) => p,
            None => match Arc::clone(&shared.slots).acquire_owned().await {
                Ok(p) => p,
                Err(_) => {
                    settle(metas, BatchStatus::Failed);
                    continue;
                }
            },
        };
        metrics.count_labeled("sink_requests", name, 1);
        let bytes: usize = docs.iter().map(|d| d.bytes().len()).sum();
        metrics.count_labeled("sink_bytes", name, bytes as u64);
        let outcome = match Arc::clone(&shared.service).call(docs).await {
            Called::Done(outcome) => {
                drop(permit);
                outcome
            }
            Called::Confirming(confirm) => {
                drop(permit);
                confirm.await
            }
        };
        match outcome {
            Outcome::Delivered => {
                retrier.succeeded();
                delivered(&shared, metas);
            }
            Outcome::Released => settle(metas, BatchStatus::Failed),
            Outcome::Again(docs, trouble) => {
                if retrier.after(trouble).await {
                    work.push_front((docs, metas));
                } else {
                    settle(metas, BatchStatus::Failed);
                }
            }
            Outcome::TooLarge(mut docs, reason) => {
                if docs.len() <= 1 {
                    let refused = docs
                        .into_iter()
                        .zip(metas)
                        .map(|(d, m)| (d, m, reason.clone()));
                    dead_letter(&shared, refused.collect()).await;
                } else {
                    metrics.count_labeled("sink_splits", name, 1);
                    let mut metas = metas;
                    let half = docs.len() / 2;
                    let (second, second_metas) = (docs.split_off(half), metas.split_off(half));
                    work.push_front((second, second_metas));
                    work.push_front((docs, metas));
                }
            }
            Outcome::Each(fates) => {
                let mut done = Vec::new();
                let mut refused = Vec::new();
                let mut released = Vec::new();
                let (mut resend, mut resend_metas) = (Vec::new(), Vec::new());
                let (mut again, mut again_metas) = (Vec::new(), Vec::new());
                let mut trouble: Option<Trouble> = None;
                for ((doc, fate), meta) in fates.into_iter().zip(metas) {
                    match fate {
                        Fate::Delivered => done.push(meta),
                        Fate::Rejected(reason) => refused.push((doc, meta, reason)),
                        Fate::Released => released.push(meta),
                        Fate::Resend => {
                            resend.push(doc);
                            resend_metas.push(meta);
                        }
                        Fate::Again(t) => {
                            // A fault outranks a transient problem in what is reported.
                            if !matches!(trouble, Some(Trouble::Fault(_))) {
                                trouble = Some(t);
                            }
                            again.push(doc);
                            again_metas.push(meta);
                        }
                    }
                }
                delivered(&shared, done);
                settle(released, BatchStatus::Failed);
                dead_letter(&shared, refused).await;
                if trouble.is_none() {
                    retrier.succeeded();
                }
                if let Some(t) = trouble {
                    if retrier.after(t).await {
                        work.push_front((again, again_metas));
                    } else {
                        settle(again_metas, BatchStatus::Failed);
                    }
                }
                if !resend.is_empty() {
                    work.push_front((resend, resend_metas));
                }
            }
        }
    }
}

fn delivered<S: Service>(shared: &Shared<S>, metas: Vec<Meta>) {
    let records = metas.iter().filter(|m| m.first).count() as u64;
    let metrics = &shared.ctx.metrics;
    Metrics::add(&metrics.records_emitted, records);
    metrics.count_labeled("sink_records_delivered", shared.ctx.health.name(), records);
    settle(metas, BatchStatus::Delivered);
}

/// Write refused documents to the dead letters. They count as settled only once that
/// write is durable; if it fails, they stay unacknowledged and come back.
async fn dead_letter<S: Service>(shared: &Shared<S>, refused: Vec<(S::Doc, Meta, String)>) {
    if refused.is_empty() {
        return;
    }
    let name = shared.ctx.health.name();
    let metrics = &shared.ctx.metrics;
    let mut metas = Vec::with_capacity(refused.len());
    let letters: Vec<DeadLetter> = refused
        .into_iter()
        .map(|(doc, meta, reason)| {
            // A document is built from one record, which the limits already bound.
            let letter = DeadLetter::record(
                S::REJECTED,
                format!("sink `{name}`: {reason}"),
                (*meta.origin).clone(),
                None,
                doc.bytes(),
                usize::MAX,
            );
            metas.push(meta);
            letter
        })
        .collect();
    for _ in &letters {
        metrics.dead_letter(S::REJECTED);
    }
    metrics.count_labeled("sink_records_rejected", name, letters.len() as u64);
    let status = match shared.ctx.dead_letters.write(letters).await {
        Ok(()) => BatchStatus::Delivered,
        Err(e) => {
            tracing::error!(sink = %name, error = %e, "cannot write dead letters; the records stay unacknowledged");
            BatchStatus::Failed
        }
    };
    settle(metas, status);
}

fn settle(metas: Vec<Meta>, status: BatchStatus) {
    for m in metas {
        m.ack.resolve(status);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;
    use tokio::sync::Notify;

    use super::*;
    use crate::ack::AckReceiver;
    use crate::admin::Health;
    use crate::dead_letter::DeadLetterSink;
    use crate::event::Origin;
    use crate::supervisor::Supervisor;

    /// Documents are their record ids; `script` answers each request from its documents.
    struct Fake {
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        script: fn(&[Vec<u8>]) -> Outcome<Vec<u8>>,
        /// When set, every request is confirmed only once this is notified.
        confirm_after: Option<Arc<Notify>>,
    }

    impl Service for Fake {
        type Doc = Vec<u8>;
        const REJECTED: &'static str = "fake_rejected";

        fn encode(&self, record: &Record, _output: &Output) -> Vec<u8> {
            record.id.as_bytes().to_vec()
        }

        async fn call(self: Arc<Self>, docs: Vec<Vec<u8>>) -> Called<Vec<u8>> {
            let ids = docs
                .iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect();
            self.calls.lock().unwrap().push(ids);
            let outcome = (self.script)(&docs);
            // The script only says what happened; the documents are the ones given.
            let outcome = match outcome {
                Outcome::Again(_, t) => Outcome::Again(docs, t),
                Outcome::TooLarge(_, r) => Outcome::TooLarge(docs, r),
                Outcome::Each(fates) => Outcome::Each(
                    docs.into_iter()
                        .zip(fates)
                        .map(|(d, (_, fate))| (d, fate))
                        .collect(),
                ),
                other => other,
            };
            match &self.confirm_after {
                Some(n) => {
                    let n = Arc::clone(n);
                    Called::Confirming(Box::pin(async move {
                        n.notified().await;
                        outcome
                    }))
                }
                None => Called::Done(outcome),
            }
        }
    }

    fn record(id: &str) -> Record {
        Record::test(
            id,
            Origin::Inline { name: id.into() },
            Some(Bytes::copy_from_slice(id.as_bytes())),
        )
    }

    struct Run {
        calls: Arc<Mutex<Vec<Vec<String>>>>,
        receivers: Vec<AckReceiver>,
        metrics: Arc<Metrics>,
        letters: tempfile::NamedTempFile,
        task: tokio::task::JoinHandle<()>,
        input: Option<mpsc::Sender<SinkBatch>>,
    }

    impl Run {
        fn calls(&self) -> Vec<Vec<String>> {
            self.calls.lock().unwrap().clone()
        }

        async fn finish(mut self) -> (Vec<BatchStatus>, Self) {
            drop(self.input.take());
            (&mut self.task).await.unwrap();
            let mut statuses = Vec::new();
            for r in std::mem::take(&mut self.receivers) {
                statuses.push(r.wait().await);
            }
            (statuses, self)
        }

        fn dead_letters(&self) -> Vec<serde_json::Value> {
            std::fs::read_to_string(self.letters.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    /// Drive `ids` (one batch per inner list) through a driver over `fake`.
    async fn start(fake: Fake, settings: Settings, batches: &[&[&str]]) -> Run {
        let calls = Arc::clone(&fake.calls);
        let metrics = Arc::new(Metrics::default());
        let letters = tempfile::NamedTempFile::new().unwrap();
        let supervisor = Supervisor::new(Arc::new(Health::default()));
        let ctx = SinkContext {
            dead_letters: Arc::new(DeadLetterSink::file(letters.path()).unwrap()),
            metrics: Arc::clone(&metrics),
            max_in_flight: 1,
            grace: Duration::from_secs(1),
            health: supervisor.sink("fake"),
        };
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(run(fake, vec![Format::Ecs], settings, rx, ctx));
        let mut receivers = Vec::new();
        for ids in batches {
            let records: Vec<Record> = ids.iter().map(|id| record(id)).collect();
            let acks = records
                .iter()
                .map(|_| {
                    let (token, rx) = crate::ack::batch();
                    receivers.push(rx);
                    token
                })
                .collect();
            tx.send(SinkBatch {
                records: records.into(),
                acks,
                held: Default::default(),
            })
            .await
            .unwrap();
        }
        Run {
            calls,
            receivers,
            metrics,
            letters,
            task,
            input: Some(tx),
        }
    }

    fn settings(max_events: usize, max_bytes: usize, linger_ms: u64) -> Settings {
        Settings {
            max_events,
            max_bytes,
            linger: Duration::from_millis(linger_ms),
            max_in_flight: 1,
            max_retry_delay: Duration::from_millis(200),
        }
    }

    fn fake(script: fn(&[Vec<u8>]) -> Outcome<Vec<u8>>) -> Fake {
        Fake {
            calls: Arc::default(),
            script,
            confirm_after: None,
        }
    }

    fn delivered(statuses: &[BatchStatus]) -> bool {
        statuses.iter().all(|s| *s == BatchStatus::Delivered)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_cut_by_count_and_by_bytes() {
        let ids: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let run = start(fake(|_| Outcome::Delivered), settings(3, 1000, 0), &[&ids]).await;
        let (statuses, run) = run.finish().await;
        assert!(delivered(&statuses));
        let sizes: Vec<usize> = run.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        assert_eq!(run.metrics.labeled("sink_records_delivered", "fake"), 7);
        assert_eq!(run.metrics.labeled("sink_requests", "fake"), 3);
        assert_eq!(run.metrics.labeled("sink_bytes", "fake"), 14);

        // Two-byte documents under a five-byte limit: two per request.
        let run = start(fake(|_| Outcome::Delivered), settings(100, 5, 0), &[&ids]).await;
        let (_, run) = run.finish().await;
        let sizes: Vec<usize> = run.calls().iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_is_not_full_waits_for_the_linger_then_goes() {
        let run = start(
            fake(|_| Outcome::Delivered),
            settings(100, 1000, 500),
            &[&["a"]],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(run.calls().is_empty(), "still lingering");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(run.calls(), [["a"]]);
        let (statuses, _) = run.finish().await;
        assert!(delivered(&statuses));
    }

    #[tokio::test(start_paused = true)]
    async fn too_large_splits_down_to_one_document_then_dead_letters_it() {
        let run = start(
            fake(|docs| {
                if docs.len() > 1 || docs[0] == b"big" {
                    Outcome::TooLarge(Vec::new(), "over the limit".into())
                } else {
                    Outcome::Delivered
                }
            }),
            settings(100, 1000, 0),
            &[&["a", "big", "c", "d"]],
        )
        .await;
        let (statuses, run) = run.finish().await;
        assert_eq!(
            statuses,
            [BatchStatus::Delivered; 4],
            "a dead-lettered record is settled"
        );
        let letters = run.dead_letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0]["reason"], "sink `fake`: over the limit");
        assert_eq!(run.metrics.labeled("sink_records_rejected", "fake"), 1);
        assert_eq!(run.metrics.labeled("sink_records_delivered", "fake"), 3);
        assert_eq!(run.metrics.labeled("sink_splits", "fake"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn each_document_meets_its_own_fate_once() {
        // First try: a delivered, b refused, c not looked at, d transient. Then the rest
        // goes through: c at once, d after a backoff.
        let run = start(
            fake(|docs| {
                if docs.len() < 4 {
                    return Outcome::Delivered;
                }
                Outcome::Each(vec![
                    (Vec::new(), Fate::Delivered),
                    (Vec::new(), Fate::Rejected("bad".into())),
                    (Vec::new(), Fate::Resend),
                    (Vec::new(), Fate::Again(Trouble::Retry("busy".into()))),
                ])
            }),
            settings(100, 1000, 0),
            &[&["a", "b", "c", "d"]],
        )
        .await;
        let (statuses, run) = run.finish().await;
        assert!(delivered(&statuses));
        assert_eq!(
            run.calls(),
            [vec!["a", "b", "c", "d"], vec!["c"], vec!["d"]]
        );
        assert_eq!(run.metrics.labeled("sink_records_delivered", "fake"), 3);
        assert_eq!(run.metrics.labeled("sink_records_rejected", "fake"), 1);
        assert_eq!(run.metrics.labeled("sink_retries", "fake"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_document_is_failed_upstream_and_not_sent_again() {
        let run = start(
            fake(|docs| {
                Outcome::Each(
                    docs.iter()
                        .map(|d| match d.as_slice() {
                            b"b" => (Vec::new(), Fate::Released),
                            _ => (Vec::new(), Fate::Delivered),
                        })
                        .collect(),
                )
            }),
            settings(100, 1000, 0),
            &[&["a"], &["b"], &["c"]],
        )
        .await;
        let (statuses, run) = run.finish().await;
        assert_eq!(
            statuses,
            [
                BatchStatus::Delivered,
                BatchStatus::Failed,
                BatchStatus::Delivered
            ]
        );
        assert_eq!(run.calls().concat(), ["a", "b", "c"]);
        assert_eq!(run.metrics.labeled("sink_records_delivered", "fake"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_free_again_while_delivery_is_being_confirmed() {
        let notify = Arc::new(Notify::new());
        let mut f = fake(|_| Outcome::Delivered);
        f.confirm_after = Some(Arc::clone(&notify));
        // One request slot, one document per request: the second request is made while
        // the first still waits for its confirmation.
        let run = start(f, settings(1, 1000, 0), &[&["a", "b", "c"]]).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(run.calls().len(), 3);
        notify.notify_waiters();
        let (statuses, _) = run.finish().await;
        assert!(delivered(&statuses));
    }
}
