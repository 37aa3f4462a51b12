//! Acknowledgement handles that travel with data from a source to every sink.
//!
//! A source creates one batch ([`batch`]) per unit it can redeliver (a file, an SQS message,
//! an Event Hubs event) and keeps its [`AckReceiver`]. Every record derived from that unit
//! carries an [`AckToken`] clone. The receiver resolves once every token is gone, with the
//! worst status any token reported. A token dropped without being resolved counts as a
//! failure: losing track of a record must lead to redelivery, never to a silent ack.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Outcome of a batch, ordered from best to worst so statuses combine with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum BatchStatus {
    /// Every record was accepted downstream (or dead-lettered on purpose).
    Delivered = 0,
    /// A sink failed in a way that may succeed later: redeliver the batch.
    Failed = 1,
    /// A sink rejected the data permanently: redelivery will not help.
    Rejected = 2,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Delivered => "delivered",
            BatchStatus::Failed => "failed",
            BatchStatus::Rejected => "rejected",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => BatchStatus::Delivered,
            1 => BatchStatus::Failed,
            _ => BatchStatus::Rejected,
        }
    }
}

struct Shared {
    status: AtomicU8,
    notify: Mutex<Option<oneshot::Sender<BatchStatus>>>,
    /// The input's trace span, from receipt to acknowledgement.
    span: Option<Mutex<opentelemetry::global::BoxedSpan>>,
    /// Counts the source's inputs not yet settled (`inputs_in_flight`).
    metrics: Option<Arc<Metrics>>,
}

impl Shared {
    fn update(&self, status: BatchStatus) {
        self.status.fetch_max(status as u8, Ordering::AcqRel);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let status = BatchStatus::from_u8(*self.status.get_mut());
        if let Some(m) = &self.metrics {
            m.inputs_in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(span) = self.span.take() {
            if let Ok(mut span) = span.into_inner() {
                use opentelemetry::trace::Span;
                span.set_attribute(opentelemetry::KeyValue::new(
                    "auditbridge.ack.status",
                    status.as_str(),
                ));
                if status != BatchStatus::Delivered {
                    span.set_status(opentelemetry::trace::Status::error(status.as_str()));
                }
                span.end();
            }
        }
        let sender = self.notify.get_mut().ok().and_then(Option::take);
        if let Some(sender) = sender {
            // The receiver may be gone (source shut down); nothing is waiting then.
            let _ = sender.send(status);
        }
    }
}

/// A new batch: the first token and the receiver the source awaits.
pub fn batch() -> (AckToken, AckReceiver) {
    new_batch(None, None)
}

/// A batch for one input unit of a source, traced as span `auditbridge.input` (exported
/// when OpenTelemetry is configured, free otherwise) with the source `kind` and `origin`,
/// and counted in `inputs_in_flight` until it settles.
pub fn input(
    kind: &'static str,
    origin: &dyn std::fmt::Display,
    metrics: &Arc<Metrics>,
) -> (AckToken, AckReceiver) {
    use opentelemetry::trace::Tracer;
    let tracer = opentelemetry::global::tracer("auditbridge");
    let span = tracer
        .span_builder("auditbridge.input")
        .with_attributes([
            opentelemetry::KeyValue::new("auditbridge.source", kind),
            opentelemetry::KeyValue::new("auditbridge.origin", origin.to_string()),
        ])
        .start(&tracer);
    metrics.inputs_in_flight.fetch_add(1, Ordering::Relaxed);
    new_batch(Some(Mutex::new(span)), Some(Arc::clone(metrics)))
}

fn new_batch(
    span: Option<Mutex<opentelemetry::global::BoxedSpan>>,
    metrics: Option<Arc<Metrics>>,
) -> (AckToken, AckReceiver) {
    let (tx, rx) = oneshot::channel();
    let shared = Arc::new(Shared {
        status: AtomicU8::new(BatchStatus::Delivered as u8),
        notify: Mutex::new(Some(tx)),
        span,
        metrics,
    });
    (
        AckToken {
            shared,
            resolved: false,
        },
        AckReceiver { rx },
    )
}

/// One share of a batch's acknowledgement. Must be resolved with [`AckToken::resolve`];
/// dropping it unresolved marks the batch failed.
#[must_use = "an AckToken must be resolved, or the batch is redelivered"]
pub struct AckToken {
    shared: Arc<Shared>,
    resolved: bool,
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckToken")
            .field("resolved", &self.resolved)
            .finish()
    }
}

impl AckToken {
    /// Another share of the same batch, for a record derived from it.
    pub fn share(&self) -> AckToken {
        AckToken {
            shared: Arc::clone(&self.shared),
            resolved: false,
        }
    }

    /// Report this share's outcome. The batch resolves when the last share is resolved.
    pub fn resolve(mut self, status: BatchStatus) {
        self.shared.update(status);
        self.resolved = true;
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.resolved {
            self.shared.update(BatchStatus::Failed);
        }
    }
}

/// The source's side: resolves once every token of the batch is resolved or dropped.
pub struct AckReceiver {
    rx: oneshot::Receiver<BatchStatus>,
}

impl AckReceiver {
    /// Wait for the batch's final status.
    pub async fn wait(self) -> BatchStatus {
        // The sender lives in `Shared`, whose drop always sends; an error is unreachable
        // in practice but would mean the status is unknown, so treat it as a failure.
        self.rx.await.unwrap_or(BatchStatus::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_after_last_share_with_worst_status() {
        let (first, rx) = batch();
        let second = first.share();
        let third = first.share();
        first.resolve(BatchStatus::Delivered);
        second.resolve(BatchStatus::Failed);
        third.resolve(BatchStatus::Delivered);
        assert_eq!(rx.wait().await, BatchStatus::Failed);
    }

    #[tokio::test]
    async fn all_delivered_is_delivered() {
        let (first, rx) = batch();
        let shares: Vec<_> = (0..10).map(|_| first.share()).collect();
        first.resolve(BatchStatus::Delivered);
        for s in shares {
            s.resolve(BatchStatus::Delivered);
        }
        assert_eq!(rx.wait().await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn dropped_token_fails_the_batch() {
        let (first, rx) = batch();
        let lost = first.share();
        first.resolve(BatchStatus::Delivered);
        drop(lost);
        assert_eq!(rx.wait().await, BatchStatus::Failed);
    }

    #[tokio::test]
    async fn rejected_beats_failed() {
        let (first, rx) = batch();
        let other = first.share();
        first.resolve(BatchStatus::Rejected);
        other.resolve(BatchStatus::Failed);
        assert_eq!(rx.wait().await, BatchStatus::Rejected);
    }
}
