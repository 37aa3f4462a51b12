//! The `sqs` source: CloudTrail through S3 notifications (direct, SNS, EventBridge),
//! CloudTrail's SNS delivery notifications, and CloudTrail records from EventBridge.
//!
//! Each received message gets its own acknowledgement. Its visibility is extended from
//! the moment it is received until it is settled, so a large file never outlives the
//! timeout. It is deleted only after every record of every object it names was accepted
//! by the sinks (or dead-lettered on purpose); on failure it is left to reappear and, in
//! the end, to reach the queue's dead-letter queue through its redrive policy.

pub mod client;
pub mod config;
pub mod notification;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::ack::{self, AckToken, BatchStatus};
use crate::admin::Reporter;
use crate::dead_letter::{DeadLetter, DeadLetterSink};
use crate::event::{Body, Origin, RawInput};
use crate::metrics::Metrics;
use crate::sources::{retry_backoff, Source, SourceContext};
use crate::supervisor::Intake;
use client::Clients;
pub use config::SqsSourceConfig;
use notification::{KeyKind, Notification, ObjectRef};

/// Shared by the receive loops and message tasks.
struct Ctx {
    config: SqsSourceConfig,
    clients: Clients,
    out: mpsc::Sender<RawInput>,
    dead_letters: Arc<DeadLetterSink>,
    metrics: Arc<Metrics>,
    fetches: Semaphore,
    in_flight: Arc<Semaphore>,
    delete: mpsc::Sender<(String, String)>,
    health: Reporter,
}

/// The queue of an `sqs` source.
pub struct Queue(SqsSourceConfig);

impl Queue {
    pub fn new(config: SqsSourceConfig) -> Self {
        Queue(config)
    }
}

impl Source for Queue {
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()> {
        Box::pin(run(self.0, ctx))
    }
}

/// Run until `shutdown`, then wait for the messages in flight to settle.
async fn run(config: SqsSourceConfig, ctx: SourceContext) {
    let SourceContext {
        out,
        shutdown,
        intake,
        dead_letters,
        metrics,
        health,
        ..
    } = ctx;
    if config.bucket_allowlist.is_empty() && config.account_allowlist.is_empty() {
        tracing::warn!(
            queue = %config.queue_url,
            "bucket_allowlist and account_allowlist are empty: whoever can send to this queue can have auditbridge read any object its role can read and deliver records of any account as CloudTrail; set them, and limit the queue policy to the trail bucket's notifications (README: least privilege)"
        );
    }
    let clients = client::build(&config).await;
    let (delete_tx, delete_rx) = mpsc::channel(1000);
    let deleter = tokio::spawn(deleter(
        clients.sqs.clone(),
        config.queue_url.clone(),
        delete_rx,
        Arc::clone(&metrics),
    ));
    let ctx = Arc::new(Ctx {
        fetches: Semaphore::new(config.fetch_concurrency.max(1)),
        in_flight: Arc::new(Semaphore::new(config.max_in_flight_messages.max(1))),
        config,
        clients,
        out,
        dead_letters,
        metrics,
        delete: delete_tx,
        health,
    });
    let mut loops = JoinSet::new();
    for _ in 0..ctx.config.receivers.max(1) {
        loops.spawn(receive_loop(
            Arc::clone(&ctx),
            shutdown.clone(),
            intake.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    drop(ctx);
    let _ = deleter.await;
}

/// Receive until shutdown, then wait for this loop's messages to settle. While a sink
/// is faulted nothing is received: the messages stay in the queue, and those already
/// taken stay invisible, held by the sink, instead of coming back towards the queue's
/// dead-letter queue.
async fn receive_loop(ctx: Arc<Ctx>, mut shutdown: watch::Receiver<bool>, mut intake: Intake) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = retry_backoff(Duration::from_millis(200));
    loop {
        if !intake.is_open() {
            ctx.metrics.count("sqs_intake_pauses", 1);
        }
        tokio::select! {
            () = intake.open() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
        while tasks.try_join_next().is_some() {}
        let batch = ctx.config.max_messages.clamp(1, 10);
        let permits = tokio::select! {
            p = Arc::clone(&ctx.in_flight).acquire_many_owned(batch as u32) => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let received = tokio::select! {
            r = ctx
                .clients
                .sqs
                .receive_message()
                .queue_url(&ctx.config.queue_url)
                .max_number_of_messages(batch)
                .wait_time_seconds(ctx.config.wait_time_secs.clamp(0, 20))
                .visibility_timeout(ctx.config.visibility_timeout_secs)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send() => r,
            _ = shutdown.changed() => break,
        };
        let messages = match received {
            Ok(r) => {
                ctx.health.ok();
                backoff = retry_backoff(Duration::from_millis(200));
                r.messages.unwrap_or_default()
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(queue = %ctx.config.queue_url, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), retry_in = ?wait, "receive failed");
                ctx.metrics.count("sqs_receive_errors", 1);
                ctx.health
                    .failed(format!("receiving from {} failed", ctx.config.queue_url));
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let mut permits = permits;
        for m in messages {
            let (Some(id), Some(receipt)) = (m.message_id, m.receipt_handle) else {
                continue;
            };
            let permit = permits.split(1).expect("one permit per message requested");
            ctx.metrics.count("sqs_messages_received", 1);
            ctx.metrics.set_labeled(
                "sqs_messages_in_flight",
                &ctx.config.queue_url,
                (ctx.config.max_in_flight_messages.max(1) - ctx.in_flight.available_permits())
                    as u64,
            );
            let ctx = Arc::clone(&ctx);
            let body = m.body.unwrap_or_default();
            tasks.spawn(async move {
                handle(&ctx, id, receipt, body).await;
                drop(permit);
                ctx.metrics.set_labeled(
                    "sqs_messages_in_flight",
                    &ctx.config.queue_url,
                    (ctx.config.max_in_flight_messages.max(1) - ctx.in_flight.available_permits())
                        as u64,
                );
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// One message from receipt to settlement.
async fn handle(ctx: &Ctx, id: String, receipt: String, body: String) {
    let (token, settled) = ack::input("sqs", &sqs_origin(ctx, &id), &ctx.metrics);
    let (lost_tx, lost_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let extender = tokio::spawn(keep_invisible(
        ctx.clients.sqs.clone(),
        ctx.config.queue_url.clone(),
        receipt.clone(),
        ctx.config.visibility_timeout_secs,
        stop_rx,
        lost_tx,
        Arc::clone(&ctx.metrics),
    ));
    dispatch(ctx, &id, &body, token).await;
    let status = {
        let mut lost = lost_rx;
        tokio::select! {
            s = settled.wait() => Some(s),
            _ = lost.wait_for(|l| *l) => None,
        }
    };
    let _ = stop_tx.send(true);
    let _ = extender.await;
    match status {
        Some(BatchStatus::Delivered) => {
            Metrics::add(&ctx.metrics.batches_acked, 1);
            let _ = ctx.delete.send((id, receipt)).await;
        }
        Some(status) => {
            Metrics::add(&ctx.metrics.batches_nacked, 1);
            ctx.metrics.count("sqs_messages_returned", 1);
            tracing::warn!(message = %id, ?status, "message not fully delivered; it will reappear");
            let _ = ctx
                .clients
                .sqs
                .change_message_visibility()
                .queue_url(&ctx.config.queue_url)
                .receipt_handle(&receipt)
                .visibility_timeout(ctx.config.retry_delay_secs)
                .send()
                .await;
        }
        None => {
            Metrics::add(&ctx.metrics.batches_nacked, 1);
            ctx.metrics.count("sqs_messages_lost", 1);
            tracing::warn!(message = %id, "receipt handle lost; the message will come back and its work is not deleted");
        }
    }
}

/// Extend the message's visibility at half the timeout until told to stop. A failed
/// extension (expired or invalid receipt) reports the message lost.
async fn keep_invisible(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    receipt: String,
    timeout_secs: i32,
    mut stop: watch::Receiver<bool>,
    lost: watch::Sender<bool>,
    metrics: Arc<Metrics>,
) {
    let period = Duration::from_secs(u64::try_from(timeout_secs.max(2) / 2).unwrap_or(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let extended = sqs
            .change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(&receipt)
            .visibility_timeout(timeout_secs)
            .send()
            .await;
        match extended {
            Ok(_) => metrics.count("sqs_visibility_extensions", 1),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "visibility extension failed");
                metrics.count("sqs_visibility_extension_failures", 1);
                let _ = lost.send(true);
                return;
            }
        }
    }
}

/// Turn a message into pipeline inputs, each carrying a share of `token`.
async fn dispatch(ctx: &Ctx, id: &str, body: &str, token: AckToken) {
    match notification::parse(body) {
        Notification::TestEvent => {
            ctx.metrics.skipped("s3_test_event");
            token.resolve(BatchStatus::Delivered);
        }
        Notification::Unknown(reason) => {
            let letter = DeadLetter::input(
                "sqs_unknown_message",
                format!("{reason}; left to the queue's redrive policy"),
                sqs_origin(ctx, id),
                body.as_bytes(),
            );
            ctx.metrics.dead_letter(letter.kind);
            let written = ctx.dead_letters.write(vec![letter]).await.is_ok();
            let status = if written && ctx.config.delete_unknown {
                BatchStatus::Delivered
            } else {
                BatchStatus::Rejected
            };
            token.resolve(status);
        }
        Notification::Record { accounts } => {
            if let Some(reason) = record_not_allowed(&ctx.config, &accounts) {
                let letter =
                    DeadLetter::input("not_allowed", reason, sqs_origin(ctx, id), body.as_bytes());
                return settle_as_dead(ctx, letter, token).await;
            }
            let input = RawInput {
                origin: sqs_origin(ctx, id),
                body: Body::Bytes(body.as_bytes().to_vec()),
                ack: token,
            };
            let _ = ctx.out.send(input).await;
        }
        Notification::Objects(objects) => {
            for object in objects {
                fetch_and_send(ctx, id, object, token.share()).await;
            }
            token.resolve(BatchStatus::Delivered);
        }
    }
}

fn sqs_origin(ctx: &Ctx, id: &str) -> Origin {
    Origin::Sqs {
        queue: ctx.config.queue_url.clone(),
        message_id: id.to_string(),
    }
}

async fn fetch_and_send(ctx: &Ctx, id: &str, object: ObjectRef, share: AckToken) {
    let origin = Origin::S3 {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        message_id: id.to_string(),
    };
    match notification::key_kind(&object.key) {
        KeyKind::Digest => {
            ctx.metrics.skipped("cloudtrail_digest");
            return share.resolve(BatchStatus::Delivered);
        }
        KeyKind::Folder => {
            ctx.metrics.skipped("s3_folder_key");
            return share.resolve(BatchStatus::Delivered);
        }
        KeyKind::Log | KeyKind::Insight => {}
    }
    if let Some(reason) = not_allowed(&ctx.config, &object) {
        let letter = DeadLetter::input("not_allowed", reason, origin, &[]);
        return settle_as_dead(ctx, letter, share).await;
    }
    let Ok(_permit) = ctx.fetches.acquire().await else {
        return share.resolve(BatchStatus::Failed);
    };
    match fetch(ctx, &object).await {
        Ok(Fetched::Body { size, body }) => {
            ctx.metrics.count("sqs_objects", 1);
            ctx.metrics.count("sqs_object_bytes", size);
            let _ = ctx
                .out
                .send(RawInput {
                    origin,
                    body,
                    ack: share,
                })
                .await;
        }
        Ok(Fetched::TooLarge { size, head }) => {
            // Poison for good: fetching it again would fail again, so it is dead-lettered
            // and its message deleted instead of looping towards the dead-letter queue.
            let letter = DeadLetter::input(
                "too_large",
                format!(
                    "object holds at least {size} bytes, over max_object_bytes ({}); raise the limit if the object is genuine",
                    ctx.config.max_object_bytes
                ),
                origin,
                &head,
            );
            settle_as_dead(ctx, letter, share).await;
        }
        Err(reason) => {
            ctx.metrics.count("sqs_object_fetch_failures", 1);
            tracing::warn!(bucket = %object.bucket, key = %object.key, %reason, "object not fetched; the message will be retried");
            share.resolve(BatchStatus::Failed);
        }
    }
}

/// Input that must never be retried: settled once its dead letter is written (its message
/// is then deleted), left for redelivery if the dead letter could not be written.
async fn settle_as_dead(ctx: &Ctx, letter: DeadLetter, token: AckToken) {
    ctx.metrics.dead_letter(letter.kind);
    let status = match ctx.dead_letters.write(vec![letter]).await {
        Ok(()) => BatchStatus::Delivered,
        Err(_) => BatchStatus::Failed,
    };
    token.resolve(status);
}

/// Why a CloudTrail record delivered in the message itself must not be decoded, if it must
/// not: with an `account_allowlist`, every account the event names must be in it, and it
/// must name one.
fn record_not_allowed(config: &SqsSourceConfig, accounts: &[String]) -> Option<String> {
    if config.account_allowlist.is_empty() {
        return None;
    }
    if accounts.is_empty() {
        return Some(
            "the EventBridge event names no account (`account`, `detail.recipientAccountId`) while account_allowlist is set; it was not decoded".into(),
        );
    }
    accounts
        .iter()
        .find(|a| !config.account_allowlist.contains(a))
        .map(|a| {
            format!("account {a} of the EventBridge event is not in account_allowlist; it was not decoded")
        })
}

/// Why an object must not be fetched, if it must not.
fn not_allowed(config: &SqsSourceConfig, object: &ObjectRef) -> Option<String> {
    if !config.bucket_allowlist.is_empty() && !config.bucket_allowlist.contains(&object.bucket) {
        return Some(format!(
            "bucket `{}` is not in bucket_allowlist; the object was not fetched",
            object.bucket
        ));
    }
    if !config.account_allowlist.is_empty() {
        let account = notification::key_account(&object.key);
        if !account.is_some_and(|a| config.account_allowlist.iter().any(|x| x == a)) {
            return Some(format!(
                "account {} of key `{}` is not in account_allowlist; the object was not fetched",
                account.unwrap_or("(none in the key)"),
                object.key
            ));
        }
    }
    None
}

/// Objects up to this size (most CloudTrail files) are held in memory; a larger one is
/// written to `spool_dir` as it arrives and read from there in blocks.
pub const SPOOL_ABOVE: usize = crate::transforms::BLOCK;

/// An object fetched, or found over `max_object_bytes` (and not read past its first 64 KiB).
enum Fetched {
    /// In memory, or spooled to a file.
    Body {
        size: u64,
        body: Body,
    },
    TooLarge {
        size: u64,
        head: Vec<u8>,
    },
}

async fn fetch(ctx: &Ctx, object: &ObjectRef) -> Result<Fetched, String> {
    let get = |key: &str| {
        ctx.clients
            .s3
            .get_object()
            .bucket(&object.bucket)
            .key(key)
            .send()
    };
    let response = match get(&object.key).await {
        Ok(r) => r,
        Err(e) => match (
            &object.fallback_key,
            e.as_service_error().is_some_and(|s| s.is_no_such_key()),
        ) {
            (Some(other), true) => get(other)
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?,
            _ => return Err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()),
        },
    };
    let limit = ctx.config.max_object_bytes;
    let declared = u64::try_from(response.content_length.unwrap_or(0).max(0)).unwrap_or(0);
    let mut body = response.body.into_async_read();
    if declared > limit {
        let mut head = Vec::new();
        // The excerpt is a courtesy: a failure to read it changes nothing.
        let _ = (&mut body)
            .take(crate::dead_letter::INPUT_EXCERPT as u64)
            .read_to_end(&mut head)
            .await;
        return Ok(Fetched::TooLarge {
            size: declared,
            head,
        });
    }
    let in_memory = (SPOOL_ABOVE as u64).min(limit);
    let mut head = Vec::with_capacity(usize::try_from(declared.min(in_memory + 1)).unwrap_or(0));
    (&mut body)
        .take(in_memory + 1)
        .read_to_end(&mut head)
        .await
        .map_err(|e| format!("reading the object: {e}"))?;
    let too_large = |mut head: Vec<u8>| {
        head.truncate(crate::dead_letter::INPUT_EXCERPT);
        Fetched::TooLarge {
            size: limit + 1,
            head,
        }
    };
    if head.len() as u64 > limit {
        return Ok(too_large(head));
    }
    if head.len() as u64 <= in_memory {
        return Ok(Fetched::Body {
            size: head.len() as u64,
            body: Body::Bytes(head),
        });
    }
    let dir = ctx
        .config
        .spool_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let spool_error = |e: std::io::Error| {
        format!(
            "writing the object to the spool directory {}: {e}; make it writable or set spool_dir",
            dir.display()
        )
    };
    let (file, path) = tempfile::Builder::new()
        .prefix("auditbridge-object-")
        .tempfile_in(&dir)
        .map_err(spool_error)?
        .into_parts();
    let mut file = tokio::fs::File::from_std(file);
    file.write_all(&head).await.map_err(spool_error)?;
    let rest = tokio::io::copy(
        &mut (&mut body).take(limit + 1 - head.len() as u64),
        &mut file,
    )
    .await
    .map_err(|e| format!("reading the object into the spool directory: {e}"))?;
    file.flush().await.map_err(spool_error)?;
    let size = head.len() as u64 + rest;
    if size > limit {
        return Ok(too_large(head));
    }
    ctx.metrics.count("sqs_objects_spooled", 1);
    Ok(Fetched::Body {
        size,
        body: Body::Spooled(path),
    })
}

/// Delete settled messages in batches of at most 10 (AWS's limit).
async fn deleter(
    sqs: aws_sdk_sqs::Client,
    queue: String,
    mut input: mpsc::Receiver<(String, String)>,
    metrics: Arc<Metrics>,
) {
    let mut pending: Vec<(String, String)> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            input.recv().await
        } else {
            match tokio::time::timeout(Duration::from_millis(200), input.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    flush(&sqs, &queue, &mut pending, &metrics).await;
                    continue;
                }
            }
        };
        match next {
            Some(m) => {
                pending.push(m);
                if pending.len() == 10 {
                    flush(&sqs, &queue, &mut pending, &metrics).await;
                }
            }
            None => {
                flush(&sqs, &queue, &mut pending, &metrics).await;
                return;
            }
        }
    }
}

async fn flush(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    pending: &mut Vec<(String, String)>,
    metrics: &Metrics,
) {
    if pending.is_empty() {
        return;
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = pending
        .iter()
        .enumerate()
        .filter_map(|(i, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .ok()
        })
        .collect();
    let n = entries.len() as u64;
    match sqs
        .delete_message_batch()
        .queue_url(queue)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(r) => {
            let failed = r.failed.len() as u64;
            for f in &r.failed {
                tracing::warn!(id = %f.id, code = %f.code, "delete failed; the message will be delivered again");
            }
            metrics.count("sqs_messages_deleted", n - failed);
            metrics.count("sqs_delete_failures", failed);
        }
        Err(e) => {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete batch failed; the messages will be delivered again");
            metrics.count("sqs_delete_failures", n);
        }
    }
    pending.clear();
}
