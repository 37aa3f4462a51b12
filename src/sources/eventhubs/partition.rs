//! One owned partition: events go to the pipeline, settlements come back (out of order),
//! and the checkpoint follows the highest event below which everything was settled.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_messaging_eventhubs::error::ErrorKind;
use azure_messaging_eventhubs::models::ReceivedEventData;
use azure_messaging_eventhubs::processor::PartitionClient;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::tracker::{Admit, Tracker};
use crate::ack::{self, BatchStatus};
use crate::event::{Body, Origin, RawInput};
use crate::metrics::Metrics;
use crate::supervisor::Intake;

/// Shared by every partition of one source.
pub struct PartitionCtx {
    pub out: mpsc::Sender<RawInput>,
    /// Paused while a sink is faulted: no new event is read, those inside are held.
    pub intake: Intake,
    pub metrics: Arc<Metrics>,
    pub hub: String,
    pub checkpoint_every: Duration,
    pub max_in_flight: usize,
    /// First wait before an event whose delivery failed is sent again; it doubles with
    /// each failure of the same event, up to [`MAX_RETRY_DELAY`].
    pub retry_delay: Duration,
}

const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The wait before the `attempt`-th resend of one event (1-based), with jitter.
fn resend_delay(first: Duration, attempt: u32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(first)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1) as usize)
        .unwrap_or(MAX_RETRY_DELAY)
}

/// Why a partition stopped being read.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Shutdown or a processor restart.
    Stopped,
    /// Another owner took the partition (`amqp:link:stolen`).
    Lost,
    /// The receiver failed; the processor hands the partition out again.
    Failed,
}

enum Settled {
    Done(i64, BatchStatus),
    Resend(i64),
}

/// Read the partition until told to stop, then close it. Returns after the events in
/// flight settled and the final checkpoint was written.
pub async fn own(
    ctx: Arc<PartitionCtx>,
    client: Arc<PartitionClient>,
    stop: watch::Receiver<bool>,
) {
    let partition = client.get_partition_id().to_string();
    let label = format!("{}/{partition}", ctx.hub);
    tracing::info!(partition = %label, "partition claimed");
    let end = read(&ctx, &client, &label, stop).await;
    match end {
        End::Lost => tracing::info!(partition = %label, "partition taken over by another owner"),
        End::Failed => ctx.metrics.count("eventhubs_partition_failures", 1),
        End::Stopped => {}
    }
    match Arc::try_unwrap(client) {
        Ok(client) => {
            if let Err(e) = client.close().await {
                tracing::debug!(partition = %label, error = %e, "closing the partition receiver");
            }
        }
        Err(_) => tracing::warn!(partition = %label, "partition client still shared; not closed"),
    }
}

async fn read(
    ctx: &PartitionCtx,
    client: &PartitionClient,
    label: &str,
    mut stop: watch::Receiver<bool>,
) -> End {
    let partition = client.get_partition_id().to_string();
    let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<Settled>();
    let mut tracker: Tracker<ReceivedEventData> = Tracker::starting_after(None);
    let mut outstanding = 0usize;
    let mut failures: HashMap<i64, u32> = HashMap::new();
    let mut intake = ctx.intake.clone();
    let started = Instant::now();
    let mut tick = tokio::time::interval(ctx.checkpoint_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stream = client.stream_events();
    let end = loop {
        if *stop.borrow() {
            break End::Stopped;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break End::Stopped,
            Some(settled) = settled_rx.recv() => match settled {
                Settled::Done(seq, status) => {
                    outstanding -= 1;
                    match status {
                        BatchStatus::Delivered | BatchStatus::Rejected => {
                            Metrics::add(&ctx.metrics.batches_acked, 1);
                            failures.remove(&seq);
                            tracker.settle(seq)
                        }
                        BatchStatus::Failed => {
                            Metrics::add(&ctx.metrics.batches_nacked, 1);
                            ctx.metrics.count_labeled("eventhubs_redeliveries", label, 1);
                            let tx = settled_tx.clone();
                            let attempt = failures.entry(seq).or_default();
                            *attempt += 1;
                            let delay = resend_delay(ctx.retry_delay, *attempt);
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = tx.send(Settled::Resend(seq));
                            });
                        }
                    }
                }
                Settled::Resend(seq) => {
                    if let Some(event) = tracker.get(seq) {
                        outstanding += 1;
                        dispatch(ctx, &partition, seq, event, &settled_tx).await;
                    }
                }
            },
            _ = tick.tick() => {
                checkpoint(client, &mut tracker, ctx, label).await;
                report(ctx, &tracker, label, started);
            }
            () = intake.open(), if !intake.is_open() => {}
            next = stream.next(), if tracker.in_flight() < ctx.max_in_flight && intake.is_open() => match next {
                Some(Ok(event)) => {
                    let Some(seq) = event.sequence_number() else {
                        ctx.metrics.count_labeled("eventhubs_events_without_sequence_number", label, 1);
                        continue;
                    };
                    ctx.metrics.count_labeled("eventhubs_events_received", label, 1);
                    ctx.metrics.set_labeled("eventhubs_last_sequence_number", label, u64::try_from(seq).unwrap_or(0));
                    if tracker.admit(seq, event) == Admit::Replay {
                        ctx.metrics.count_labeled("eventhubs_replays_dropped", label, 1);
                        continue;
                    }
                    if let Some(event) = tracker.get(seq) {
                        outstanding += 1;
                        dispatch(ctx, &partition, seq, event, &settled_tx).await;
                    }
                }
                Some(Err(e)) if matches!(e.kind, ErrorKind::ConsumerDisconnected(_)) => break End::Lost,
                Some(Err(e)) => {
                    tracing::warn!(partition = %label, error = %e, "receiving failed; the partition is released and read again from its checkpoint");
                    break End::Failed;
                }
                None => break End::Failed,
            },
        }
    };
    drop(stream);
    // What was handed out is settled by the sinks (or failed by them at the end of the
    // grace period); only then is the final position known.
    while outstanding > 0 {
        match settled_rx.recv().await {
            Some(Settled::Done(seq, status)) => {
                outstanding -= 1;
                if status != BatchStatus::Failed {
                    tracker.settle(seq);
                }
            }
            Some(Settled::Resend(_)) => {}
            None => break,
        }
    }
    if end != End::Lost {
        checkpoint(client, &mut tracker, ctx, label).await;
    }
    report(ctx, &tracker, label, started);
    end
}

async fn dispatch(
    ctx: &PartitionCtx,
    partition: &str,
    seq: i64,
    event: &ReceivedEventData,
    settled: &mpsc::UnboundedSender<Settled>,
) {
    let origin = Origin::EventHubs {
        hub: ctx.hub.clone(),
        partition: partition.to_string(),
        sequence_number: seq,
        offset: event.offset().clone().unwrap_or_default(),
    };
    let (token, receiver) = ack::input("eventhubs", &origin, &ctx.metrics);
    let input = RawInput {
        origin,
        body: Body::Bytes(event.event_data().body().unwrap_or_default().to_vec()),
        ack: token,
    };
    let tx = settled.clone();
    tokio::spawn(async move {
        let status = receiver.wait().await;
        let _ = tx.send(Settled::Done(seq, status));
    });
    // A closed pipeline drops the input, which fails its token: the event stays unsettled.
    let _ = ctx.out.send(input).await;
}

async fn checkpoint(
    client: &PartitionClient,
    tracker: &mut Tracker<ReceivedEventData>,
    ctx: &PartitionCtx,
    label: &str,
) {
    let Some((seq, event)) = tracker.due() else {
        return;
    };
    match client.update_checkpoint(event).await {
        Ok(()) => {
            tracker.checkpointed(seq);
            ctx.metrics
                .count_labeled("eventhubs_checkpoints_written", label, 1);
            ctx.metrics.set_labeled(
                "eventhubs_checkpoint_sequence_number",
                label,
                u64::try_from(seq).unwrap_or(0),
            );
        }
        Err(e) => {
            ctx.metrics
                .count_labeled("eventhubs_checkpoint_failures", label, 1);
            tracing::warn!(partition = %label, error = %e, "checkpoint not written; it is retried at the next interval");
        }
    }
}

fn report(ctx: &PartitionCtx, tracker: &Tracker<ReceivedEventData>, label: &str, started: Instant) {
    ctx.metrics.set_labeled(
        "eventhubs_checkpoint_lag_events",
        label,
        tracker.lag_events(),
    );
    ctx.metrics.set_labeled(
        "eventhubs_checkpoint_lag_seconds",
        label,
        tracker.lag_seconds(started),
    );
    ctx.metrics.set_labeled(
        "eventhubs_in_flight_events",
        label,
        tracker.in_flight() as u64,
    );
}
