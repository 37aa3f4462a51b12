//! The `eventhubs` source: Entra ID audit and sign-in logs from an Azure Event Hub fed by
//! diagnostic settings.
//!
//! Partitions are shared between replicas by the client library's `EventProcessor`
//! (ownership claims in the checkpoint store). Each event body (`{"records":[…]}`, a bare
//! record, or Log Analytics rows) becomes one pipeline input; a partition's checkpoint
//! moves only past events every record of which the sinks settled. The processor stops
//! for good on its first error, so it is supervised here and rebuilt with backoff.

pub mod checkpoint;
pub mod client;
pub mod config;
mod partition;
pub mod tracker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_messaging_eventhubs::models::StartPositions;
use azure_messaging_eventhubs::{
    ConsumerClient, EventProcessor, ProcessorStrategy, StartLocation, StartPosition,
};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::admin::Reporter;
use crate::event::RawInput;
use crate::metrics::Metrics;
use crate::sources::{retry_backoff, Source, SourceContext};
use crate::supervisor::Intake;
pub use client::{EventHubsSetupError, Prepared};
pub use config::EventHubsSourceConfig;
use config::{StartAt, Strategy};
use partition::PartitionCtx;

/// Run until `shutdown`; then every owned partition drains and writes its checkpoint.
///
/// The client's event stream is not `Send`, so the source lives on a thread of its own
/// with a single-threaded runtime; decoding still happens on the pipeline's workers.
impl Source for Prepared {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(run(*self, ctx))
    }
}

async fn run(prepared: Prepared, ctx: SourceContext) {
    let SourceContext {
        out,
        shutdown,
        intake,
        metrics,
        health,
        ..
    } = ctx;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("eventhubs".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the Event Hubs source's runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                supervise(
                    prepared,
                    Wiring {
                        out,
                        intake,
                        metrics,
                        health,
                    },
                    shutdown,
                ),
            );
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => tracing::error!(error = %e, "cannot start the Event Hubs source's thread"),
    }
}

/// What connects the source to the pipeline.
struct Wiring {
    out: mpsc::Sender<RawInput>,
    intake: Intake,
    metrics: Arc<Metrics>,
    health: Reporter,
}

async fn supervise(prepared: Prepared, wiring: Wiring, mut shutdown: watch::Receiver<bool>) {
    let Wiring {
        metrics, health, ..
    } = &wiring;
    let owner_id = prepared
        .config
        .owner_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut backoff = retry_backoff(Duration::from_millis(500));
    let mut latest: Option<HashMap<String, StartPosition>> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match generation(&prepared, &owner_id, &wiring, &mut latest, &mut shutdown).await {
            Ok(Finished::Shutdown) => return,
            Ok(Finished::ProcessorEnded(reason)) => {
                backoff = retry_backoff(Duration::from_millis(500));
                tracing::warn!(%reason, "event processor stopped; rebuilding it");
                health.failed(format!("event processor stopped: {reason}"));
            }
            Err(e) => {
                tracing::warn!(error = %e, "event processor could not start; retrying");
                health.failed(format!("event processor could not start: {e}"));
            }
        }
        metrics.count("eventhubs_processor_restarts", 1);
        let wait = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Open the hub and read its properties, and list the checkpoint store; the problems found.
pub async fn check(config: &EventHubsSourceConfig) -> Vec<String> {
    let prepared = match Prepared::new(config) {
        Ok(p) => p,
        Err(e) => return vec![e.to_string()],
    };
    let consumer = match prepared
        .open(&format!("auditbridge-check-{}", uuid::Uuid::new_v4()))
        .await
    {
        Ok(c) => c,
        Err(e) => return vec![format!("cannot connect to the event hub: {e}")],
    };
    let mut problems = Vec::new();
    match consumer.get_eventhub_properties().await {
        Ok(hub) => {
            if let Err(e) = prepared
                .store
                .list_checkpoints("check", &hub.name, &config.consumer_group)
                .await
            {
                problems.push(format!("checkpoint store: {e}"));
            }
        }
        Err(e) => problems.push(format!("cannot read the event hub's properties: {e}")),
    }
    // A peer that never answers the close must not hold `validate` up.
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.close()).await;
    problems
}

enum Finished {
    Shutdown,
    ProcessorEnded(String),
}

/// One processor's life: open, hand out partitions, and on its end stop them all.
async fn generation(
    prepared: &Prepared,
    owner_id: &str,
    wiring: &Wiring,
    latest: &mut Option<HashMap<String, StartPosition>>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Finished, String> {
    let Wiring {
        out,
        intake,
        metrics,
        health,
    } = wiring;
    let c = &prepared.config;
    if let Some(blob) = &prepared.blob {
        blob.ensure_container().await.map_err(|e| e.to_string())?;
    }
    let consumer = prepared.open(owner_id).await.map_err(|e| e.to_string())?;
    let hub = consumer
        .get_eventhub_properties()
        .await
        .map_err(|e| format!("reading the hub's properties: {e}"))?;
    let start = start_positions(
        c.start_position,
        c.start_time(),
        &consumer,
        &hub.partition_ids,
        latest,
    )
    .await?;
    let processor = EventProcessor::builder()
        .with_load_balancing_strategy(match c.strategy {
            Strategy::Balanced => ProcessorStrategy::Balanced,
            Strategy::Greedy => ProcessorStrategy::Greedy,
        })
        .with_update_interval(seconds(c.update_interval_secs))
        .with_partition_expiration_duration(seconds(c.partition_expiration_secs))
        .with_prefetch(c.prefetch)
        .with_start_positions(start)
        .build(consumer, Arc::clone(&prepared.store))
        .await
        .map_err(|e| e.to_string())?;
    metrics.count("eventhubs_processor_starts", 1);
    health.ok();
    let ctx = Arc::new(PartitionCtx {
        out: out.clone(),
        intake: intake.clone(),
        metrics: Arc::clone(metrics),
        hub: hub.name.clone(),
        checkpoint_every: Duration::from_secs(c.checkpoint_interval_secs),
        max_in_flight: c.max_in_flight_events,
        retry_delay: Duration::from_secs(1),
    });
    let mut runner = tokio::spawn({
        let processor = Arc::clone(&processor);
        async move { processor.run().await }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut partitions = JoinSet::new();
    let finished = loop {
        tokio::select! {
            _ = shutdown.changed() => break Finished::Shutdown,
            ended = &mut runner => {
                let reason = match ended {
                    Ok(Ok(())) => "it returned".to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => format!("it panicked: {e}"),
                };
                break Finished::ProcessorEnded(reason);
            }
            next = processor.next_partition_client() => match next {
                Ok(client) => {
                    partitions.spawn_local(partition::own(Arc::clone(&ctx), client, stop_rx.clone()));
                }
                Err(e) => break Finished::ProcessorEnded(e.to_string()),
            },
            Some(_) = partitions.join_next(), if !partitions.is_empty() => {}
        }
    };
    let _ = processor.shutdown().await;
    let _ = stop_tx.send(true);
    while partitions.join_next().await.is_some() {}
    // The processor's balancing loop renews claims until it is gone; a renewal between
    // listing the claims and giving them up would make the give-up's conditional write
    // fail.
    runner.abort();
    let _ = runner.await;
    if matches!(finished, Finished::Shutdown) {
        relinquish(prepared, &hub.name, owner_id, metrics).await;
    }
    if let Ok(processor) = Arc::try_unwrap(processor) {
        if let Err(e) = processor.close().await {
            tracing::debug!(error = %e, "closing the event processor");
        }
    }
    Ok(finished)
}

/// Give this replica's partitions up in the checkpoint store, once they drained and
/// wrote their checkpoints: the other replicas claim them at their next balancing round
/// (`update_interval_secs`), not after `partition_expiration_secs`, so scaling in or a
/// rolling update stalls no partition. Each write is conditional on the claim being
/// unchanged, so a partition another replica took meanwhile stays its own. On failure
/// the claims simply expire.
async fn relinquish(prepared: &Prepared, hub: &str, owner_id: &str, metrics: &Metrics) {
    let Some(namespace) = prepared.namespace() else {
        return;
    };
    let group = &prepared.config.consumer_group;
    let store = &prepared.store;
    let given = tokio::time::timeout(Duration::from_secs(10), async {
        // A renewal the stopped processor had in flight may still land after the claims
        // are listed and fail a conditional write: list again and give up what is
        // still ours.
        let (mut given, mut owned) = (0, None);
        for _ in 0..3 {
            let mine: Vec<_> = store
                .list_ownerships(&namespace, hub, group)
                .await?
                .into_iter()
                .filter(|o| o.owner_id.as_deref() == Some(owner_id))
                .map(|mut o| {
                    o.owner_id = None;
                    o
                })
                .collect();
            owned.get_or_insert(mine.len());
            if mine.is_empty() {
                break;
            }
            given += store.claim_ownership(&mine).await?.len();
        }
        Ok::<_, azure_core::Error>((given, owned.unwrap_or(0)))
    })
    .await;
    match given {
        Ok(Ok((given, owned))) => {
            metrics.count("eventhubs_partitions_relinquished", given as u64);
            tracing::info!(given, owned, "gave up this replica's partitions to the others");
        }
        Ok(Err(e)) => tracing::warn!(
            error = %e,
            "could not give up this replica's partitions; they pass to the others after partition_expiration_secs"
        ),
        Err(_) => tracing::warn!(
            "giving up this replica's partitions took over 10 s; they pass to the others after partition_expiration_secs"
        ),
    }
}

/// Where partitions without a checkpoint start. `Latest` is never handed to the client
/// as such: after a link re-attach it would re-apply `@latest` and skip what arrived in
/// between, so it is pinned once to each partition's last sequence number.
async fn start_positions(
    at: StartAt,
    time: Option<std::time::SystemTime>,
    consumer: &ConsumerClient,
    partitions: &[String],
    latest: &mut Option<HashMap<String, StartPosition>>,
) -> Result<StartPositions, String> {
    let position = |location| StartPosition {
        location,
        inclusive: false,
    };
    let mut start = StartPositions::default();
    match at {
        StartAt::Earliest => start.default = position(StartLocation::Earliest),
        StartAt::EnqueuedTime => {
            start.default =
                position(time.map_or(StartLocation::Earliest, StartLocation::EnqueuedTime))
        }
        StartAt::Latest => {
            if latest.is_none() {
                let mut pinned = HashMap::new();
                for id in partitions {
                    let p = consumer
                        .get_partition_properties(id)
                        .await
                        .map_err(|e| format!("reading partition {id}'s properties: {e}"))?;
                    let location = if p.is_empty {
                        StartLocation::Earliest
                    } else {
                        StartLocation::SequenceNumber(p.last_enqueued_sequence_number)
                    };
                    pinned.insert(id.clone(), position(location));
                }
                *latest = Some(pinned);
            }
            start.default = position(StartLocation::Earliest);
            start.per_partition = latest.clone().unwrap_or_default();
        }
    }
    Ok(start)
}

fn seconds(s: u64) -> azure_core::time::Duration {
    azure_core::time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}
