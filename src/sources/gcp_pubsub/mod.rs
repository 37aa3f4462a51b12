//! The `gcp_pubsub` source: Cloud Audit Logs entries that a Log Router sink publishes to
//! a Pub/Sub topic, pulled from a subscription with streaming pull.
//!
//! Each message gets its own acknowledgement. The client keeps extending its ack deadline
//! while the message is held, so a slow sink never makes Pub/Sub redeliver it. It is
//! acked only after every record in it was accepted by the sinks (or dead-lettered on
//! purpose). Otherwise it is nacked, and Pub/Sub redelivers it, with the subscription's
//! retry policy, and moves it to the subscription's dead-letter topic after its
//! `max_delivery_attempts` when one is set.

pub mod client;
pub mod config;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use google_cloud_pubsub::client::Subscriber;
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ack::{self, BatchStatus};
use crate::admin::Reporter;
use crate::event::{Body, Origin, RawInput};
use crate::metrics::Metrics;
use crate::sources::{retry_backoff, Source, SourceContext};
use crate::supervisor::Intake;
pub use config::GcpPubsubSourceConfig;

/// How long a stream must stay open without an error to count as healthy.
const HEALTHY_AFTER: Duration = Duration::from_secs(5);

/// Shared by the streams and message tasks.
struct Ctx {
    config: GcpPubsubSourceConfig,
    client: Subscriber,
    out: mpsc::Sender<RawInput>,
    metrics: Arc<Metrics>,
    health: Reporter,
}

/// The subscription of a `gcp_pubsub` source.
pub struct Subscription(GcpPubsubSourceConfig);

impl Subscription {
    pub fn new(config: GcpPubsubSourceConfig) -> Self {
        Subscription(config)
    }
}

impl Source for Subscription {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(run(self.0, ctx))
    }
}

/// Run until `shutdown`, then wait for the messages in flight to settle.
async fn run(config: GcpPubsubSourceConfig, ctx: SourceContext) {
    let SourceContext {
        out,
        mut shutdown,
        intake,
        metrics,
        health,
        ..
    } = ctx;
    let mut backoff = retry_backoff(Duration::from_millis(500));
    let client = loop {
        match client::build(&config).await {
            Ok(c) => break c,
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(subscription = %config.subscription, error = %e, retry_in = ?wait, "Pub/Sub client not built");
                health.failed(e.to_string());
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let ctx = Arc::new(Ctx {
        config,
        client,
        out,
        metrics,
        health,
    });
    let mut streams = JoinSet::new();
    for _ in 0..ctx.config.streams.max(1) {
        streams.spawn(pull(Arc::clone(&ctx), shutdown.clone(), intake.clone()));
    }
    while streams.join_next().await.is_some() {}
}

/// One streaming pull, reopened after an error, until shutdown; then wait for its
/// messages to settle and for their acks to be sent. While a sink is faulted nothing new
/// is taken: the messages already held stay leased (the client extends them) instead of
/// going back and forth towards the dead-letter topic.
async fn pull(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>, mut intake: Intake) {
    let mut backoff = retry_backoff(Duration::from_millis(500));
    loop {
        let mut stream = ctx
            .client
            .subscribe(ctx.config.subscription.clone())
            .set_max_lease_extension(Duration::from_secs(ctx.config.ack_deadline_secs))
            .set_max_lease(Duration::from_secs(ctx.config.max_lease_secs))
            .set_max_outstanding_messages(ctx.config.max_outstanding_messages)
            .set_max_outstanding_bytes(ctx.config.max_outstanding_bytes)
            .build();
        let mut settling = JoinSet::new();
        // The client opens the stream lazily and only returns when a message or an error
        // comes: a stream that stayed open this long without an error is healthy, so an
        // idle subscription does not keep the replica unready.
        let quiet = tokio::time::sleep(HEALTHY_AFTER);
        tokio::pin!(quiet);
        let mut proven = false;
        let failed = loop {
            if !intake.is_open() {
                ctx.metrics.count("pubsub_intake_pauses", 1);
            }
            tokio::select! {
                () = intake.open() => {}
                _ = shutdown.changed() => break false,
            }
            if *shutdown.borrow() {
                break false;
            }
            while settling.try_join_next().is_some() {}
            let next = tokio::select! {
                n = stream.next() => n,
                () = &mut quiet, if !proven => {
                    proven = true;
                    ctx.health.ok();
                    continue;
                }
                _ = shutdown.changed() => break false,
            };
            match next {
                Some(Ok((message, handler))) => {
                    proven = true;
                    ctx.health.ok();
                    backoff = retry_backoff(Duration::from_millis(500));
                    let ctx = Arc::clone(&ctx);
                    settling.spawn(async move { handle(&ctx, message, handler).await });
                }
                Some(Err(e)) => {
                    tracing::warn!(subscription = %ctx.config.subscription, error = %e, "streaming pull failed");
                    ctx.metrics.count("pubsub_stream_errors", 1);
                    ctx.health.failed(format!(
                        "pulling from {} failed: {e}",
                        ctx.config.subscription
                    ));
                    break true;
                }
                None => break true,
            }
        };
        while settling.join_next().await.is_some() {}
        // Sends the acks still buffered and waits for them.
        stream.shutdown_token().shutdown().await;
        if !failed || *shutdown.borrow() {
            return;
        }
        let wait = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One message from receipt to settlement.
async fn handle(ctx: &Ctx, message: Message, handler: Handler) {
    let origin = Origin::PubSub {
        subscription: ctx.config.subscription.clone(),
        message_id: message.message_id.clone(),
    };
    ctx.metrics.count("pubsub_messages_received", 1);
    if handler.delivery_attempt().is_some_and(|n| n > 1) {
        ctx.metrics.count("pubsub_redeliveries", 1);
    }
    let (token, settled) = ack::input("gcp_pubsub", &origin, &ctx.metrics);
    let input = RawInput {
        origin,
        body: Body::Bytes(message.data.to_vec()),
        ack: token,
    };
    // If the pipeline is gone, the token is dropped with the input: the batch fails.
    let _ = ctx.out.send(input).await;
    match settled.wait().await {
        BatchStatus::Delivered => {
            Metrics::add(&ctx.metrics.batches_acked, 1);
            ack(ctx, &message.message_id, handler).await;
        }
        status => {
            Metrics::add(&ctx.metrics.batches_nacked, 1);
            ctx.metrics.count("pubsub_messages_nacked", 1);
            tracing::warn!(message = %message.message_id, ?status, "message not fully delivered; Pub/Sub will redeliver it");
            handler.nack();
        }
    }
}

async fn ack(ctx: &Ctx, id: &str, handler: Handler) {
    match handler {
        // On exactly-once subscriptions an ack can fail; the message then comes back.
        Handler::ExactlyOnce(h) => match h.confirmed_ack().await {
            Ok(()) => ctx.metrics.count("pubsub_messages_acked", 1),
            Err(e) => {
                ctx.metrics.count("pubsub_ack_failures", 1);
                tracing::warn!(message = %id, error = %e, "ack not confirmed; Pub/Sub will redeliver the message");
            }
        },
        h => {
            h.ack();
            ctx.metrics.count("pubsub_messages_acked", 1);
        }
    }
}
