//! The `kafka` sink: idempotent `acks=all` producer whose delivery reports gate the
//! upstream acknowledgement.
//!
//! A record is accepted when every one of its documents has a successful delivery
//! report. What a failed report means decides what happens to the document:
//! - the message itself is refused (too large, invalid): it is dead-lettered with the
//!   reason and the rest goes on;
//! - the topic is missing or not writable with these credentials: a sink fault. The
//!   batch is held and sent again with backoff while the supervisor pauses intake;
//! - anything else (broker away longer than `message.timeout.ms`): transient, the batch
//!   is held and sent again with backoff.
//!
//! Each topic is looked up in the cluster's metadata before its first message: a broker
//! that lets messages to a missing topic time out (rather than refusing them) is still
//! reported as a fault at once.

pub mod config;
pub mod routing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::retry::{Retrier, Trouble};
use super::{SinkBatch, SinkContext};
use crate::ack::BatchStatus;
use crate::dead_letter::DeadLetter;
use crate::metrics::Metrics;
use crate::record::{Format, Record};
pub use config::KafkaSinkConfig;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    #[error(transparent)]
    Config(#[from] config::KafkaConfigError),
    #[error("cannot create the Kafka producer")]
    Create(#[source] KafkaError),
}

/// How a document's delivery ended.
enum Outcome {
    Delivered,
    /// The message is refused for good: dead-letter it with this reason.
    Rejected(String),
    /// Not delivered this time; send it again.
    Again(Trouble),
}

/// Errors about the message itself, which no retry fixes.
fn refused(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::PolicyViolation
    )
}

/// Errors about the sink's configuration: topics and credentials.
fn fault(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
            | RDKafkaErrorCode::Authentication
    )
}

fn outcome_of(err: &KafkaError, topic: &str) -> Outcome {
    match err.rdkafka_error_code() {
        Some(code) if refused(code) => Outcome::Rejected(format!(
            "kafka rejected the message for topic `{topic}`: {err}"
        )),
        Some(code) if fault(code) => Outcome::Again(Trouble::Fault(format!(
            "kafka refused topic `{topic}`: {err}; check that it exists and that the credentials may write it"
        ))),
        _ => Outcome::Again(Trouble::Retry(format!(
            "delivery to topic `{topic}` failed: {err}"
        ))),
    }
}

/// A document of a batch: its record's index, its format and its topic.
type Doc = (usize, Format, String);

/// What a batch's delivery task shares with the others.
struct Shared {
    producer: FutureProducer,
    config: KafkaSinkConfig,
    formats: Vec<Format>,
    ctx: SinkContext,
    /// Topics seen in the cluster's metadata.
    known_topics: Mutex<HashSet<String>>,
}

/// A sink built from its settings, ready to run.
pub struct Built {
    producer: FutureProducer,
    config: KafkaSinkConfig,
}

/// Create the producer: bad settings and unreadable secret files show here, before any
/// source starts.
pub fn build(config: KafkaSinkConfig) -> Result<Built, KafkaSinkError> {
    let producer = config
        .client_config()?
        .create()
        .map_err(KafkaSinkError::Create)?;
    Ok(Built { producer, config })
}

/// Run the sink until its input closes, then flush within `grace`.
pub async fn run(
    built: Built,
    formats: Vec<Format>,
    mut input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) {
    let Built { producer, config } = built;
    let in_flight = Arc::new(Semaphore::new(ctx.max_in_flight.max(1)));
    let grace = ctx.grace;
    let shared = Arc::new(Shared {
        producer,
        config,
        formats,
        ctx,
        known_topics: Mutex::new(HashSet::new()),
    });
    let mut deliveries = JoinSet::new();
    while let Some(batch) = input.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let shared = Arc::clone(&shared);
        deliveries.spawn(async move {
            deliver(&shared, batch).await;
            drop(permit);
        });
        while deliveries.try_join_next().is_some() {}
    }
    let flush = shared.producer.clone();
    let flushed = tokio::task::spawn_blocking(move || flush.flush(Timeout::After(grace))).await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!(sink = %shared.ctx.health.name(), "not every message was delivered within the grace period; their input stays unacknowledged");
    }
    while deliveries.join_next().await.is_some() {}
}

/// Deliver every document of a batch: sent again (with backoff) until each is delivered
/// or refused, or the supervisor gives up.
async fn deliver(shared: &Shared, batch: SinkBatch) {
    let health = &shared.ctx.health;
    let metrics = &shared.ctx.metrics;
    // Each document with its topic, routed once however often it is sent.
    let mut todo: Vec<Doc> = Vec::new();
    for (i, record) in batch.records.iter().enumerate() {
        for output in record
            .outputs
            .iter()
            .filter(|o| shared.formats.contains(&o.format))
        {
            let topic = routing::topic(&shared.config, record, output.format);
            todo.push((i, output.format, topic));
        }
    }
    let mut letters = Vec::new();
    let mut retrier = Retrier::new(health, metrics, Duration::from_secs(30));
    let delivered = loop {
        if retrier.given_up() {
            break false;
        }
        let mut trouble = None;
        if let Err(t) = check_topics(shared, &todo).await {
            trouble = Some(t);
        } else {
            let mut pending = Vec::with_capacity(todo.len());
            for doc in std::mem::take(&mut todo) {
                let (i, format, topic) = &doc;
                let record = &batch.records[*i];
                let body = record
                    .outputs_of(*format)
                    .next()
                    .map(|o| o.body.as_slice())
                    .unwrap_or_default();
                let sent = enqueue(shared, record, *format, body, topic).await;
                pending.push((doc, sent));
            }
            let mut again = Vec::new();
            for (doc, sent) in pending {
                let topic = &doc.2;
                let outcome = match sent {
                    Ok(future) => match future.await {
                        Ok(Ok(_)) => Outcome::Delivered,
                        Ok(Err((err, _))) => outcome_of(&err, topic),
                        Err(_) => Outcome::Again(Trouble::Retry(
                            "the Kafka producer went away before reporting delivery".into(),
                        )),
                    },
                    Err(o) => o,
                };
                match outcome {
                    Outcome::Delivered => {}
                    Outcome::Rejected(reason) => letters.push((doc, reason)),
                    Outcome::Again(t) => {
                        if let Trouble::Retry(_) = t {
                            // A timeout may hide a topic the broker does not have.
                            forget_topic(shared, topic);
                        }
                        // A fault outranks a transient problem in what is reported.
                        if !matches!(trouble, Some(Trouble::Fault(_))) {
                            trouble = Some(t);
                        }
                        again.push(doc);
                    }
                }
            }
            todo = again;
        }
        match trouble {
            None => {
                retrier.succeeded();
                break true;
            }
            Some(t) => {
                if let Trouble::Retry(reason) = &t {
                    tracing::warn!(sink = %health.name(), documents = todo.len(), %reason, "delivery failed; sending again");
                }
                if !retrier.after(t).await {
                    break false;
                }
            }
        }
    };
    let mut status = vec![BatchStatus::Delivered; batch.records.len()];
    if !delivered {
        for &(i, _, _) in &todo {
            status[i] = BatchStatus::Failed;
        }
    }
    if !dead_letter(shared, &batch.records, letters).await {
        status.fill(BatchStatus::Failed);
    }
    let ok = status
        .iter()
        .filter(|s| **s == BatchStatus::Delivered)
        .count() as u64;
    Metrics::add(&metrics.records_emitted, ok);
    metrics.count_labeled("sink_records_delivered", health.name(), ok);
    for (ack, s) in batch.acks.into_iter().zip(status) {
        ack.resolve(s);
    }
}

/// Write refused documents to the dead letters; false when that failed.
async fn dead_letter(shared: &Shared, records: &[Record], letters: Vec<(Doc, String)>) -> bool {
    if letters.is_empty() {
        return true;
    }
    let sink = shared.ctx.health.name();
    let letters: Vec<DeadLetter> = letters
        .into_iter()
        .map(|((i, format, _), reason)| {
            let record = &records[i];
            DeadLetter {
                kind: "kafka_rejected",
                reason: format!("sink `{sink}`: {reason}"),
                origin: (*record.origin).clone(),
                position: None,
                bytes: record
                    .outputs_of(format)
                    .next()
                    .map(|o| o.body.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    for l in &letters {
        shared.ctx.metrics.dead_letter(l.kind);
    }
    shared
        .ctx
        .metrics
        .count_labeled("sink_records_rejected", sink, letters.len() as u64);
    match shared.ctx.dead_letters.write(letters).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(sink, error = %e, "cannot write dead letters; the records stay unacknowledged");
            false
        }
    }
}

fn forget_topic(shared: &Shared, topic: &str) {
    if let Ok(mut known) = shared.known_topics.lock() {
        known.remove(topic);
    }
}

/// Every topic in the cluster's metadata, with its error if it has one.
type TopicList = Vec<(String, Option<rdkafka::types::RDKafkaRespErr>)>;

async fn fetch_topics(producer: &FutureProducer, brokers: &str) -> Result<TopicList, String> {
    let producer = producer.clone();
    let looked_up = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, Timeout::After(Duration::from_secs(10)))
            .map(|m| {
                m.topics()
                    .iter()
                    .map(|t| (t.name().to_string(), t.error()))
                    .collect::<Vec<_>>()
            })
    })
    .await;
    match looked_up {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("cannot fetch metadata from {brokers}: {e}")),
        Err(e) => Err(format!("metadata lookup failed: {e}")),
    }
}

/// Look up in the cluster's metadata every topic of `todo` not seen there yet.
async fn check_topics(shared: &Shared, todo: &[Doc]) -> Result<(), Trouble> {
    let mut unknown: Vec<&str> = {
        let known = shared
            .known_topics
            .lock()
            .map_err(|_| Trouble::Retry("the topic cache is poisoned".into()))?;
        todo.iter()
            .map(|(_, _, t)| t.as_str())
            .filter(|t| !known.contains(*t))
            .collect()
    };
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    unknown.dedup();
    let topics = fetch_topics(&shared.producer, &shared.config.brokers)
        .await
        .map_err(Trouble::Retry)?;
    for topic in unknown {
        match topics.iter().find(|(name, _)| *name == topic) {
            None => {
                return Err(Trouble::Fault(format!(
                    "topic `{topic}` does not exist on {}; create it (most clusters do not auto-create topics)",
                    shared.config.brokers
                )))
            }
            Some((_, Some(err))) => {
                let code: RDKafkaErrorCode = (*err).into();
                let reason = format!("topic `{topic}`: {code}");
                return Err(if fault(code) {
                    Trouble::Fault(reason)
                } else {
                    Trouble::Retry(reason)
                });
            }
            Some(_) => {
                if let Ok(mut known) = shared.known_topics.lock() {
                    known.insert(topic.to_string());
                }
            }
        }
    }
    Ok(())
}

/// Hand one document to librdkafka, waiting while its queue is full.
async fn enqueue(
    shared: &Shared,
    record: &Record,
    format: Format,
    body: &[u8],
    topic: &str,
) -> Result<DeliveryFuture, Outcome> {
    let key = routing::key(&shared.config, record);
    loop {
        let mut message = FutureRecord::<str, [u8]>::to(topic)
            .payload(body)
            .headers(routing::headers(record, format));
        if let Some(k) = key {
            message = message.key(k);
        }
        match shared.producer.send_result(message) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((err, _)) => return Err(outcome_of(&err, topic)),
        }
    }
}

/// Every topic the sink may write to, for the formats it publishes.
pub fn expected_topics(config: &KafkaSinkConfig, formats: &[Format]) -> Vec<String> {
    let mut topics = Vec::new();
    let datasets = [
        (crate::event::Provider::Aws, "aws.cloudtrail"),
        (crate::event::Provider::Azure, "azure.auditlogs"),
        (crate::event::Provider::Azure, "azure.signinlogs"),
    ];
    for &format in formats {
        let candidates: Vec<String> = match config.topics.get(&format) {
            Some(t) => vec![t.clone()],
            None => datasets
                .iter()
                .map(|(provider, dataset)| {
                    config
                        .topic
                        .replace("{format}", format.as_str())
                        .replace("{provider}", provider.as_str())
                        .replace("{dataset}", dataset)
                })
                .collect(),
        };
        topics.extend(candidates);
    }
    topics.extend(config.tagged_topic.clone());
    topics.sort();
    topics.dedup();
    topics
}

/// Connect, fetch metadata and report what would stop delivery: an unreachable
/// cluster, missing topics, topics the credentials may not see. Sends no data.
pub async fn check(config: &KafkaSinkConfig, formats: &[Format]) -> Vec<String> {
    let producer: FutureProducer = match config.client_config() {
        Ok(c) => match c.create() {
            Ok(p) => p,
            Err(e) => return vec![format!("cannot create a producer: {e}")],
        },
        Err(e) => return vec![e.to_string()],
    };
    let expected = expected_topics(config, formats);
    let topics = match fetch_topics(&producer, &config.brokers).await {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for topic in expected {
        match topics.iter().find(|(name, _)| *name == topic) {
            None => problems.push(format!("topic `{topic}` does not exist; create it (most clusters do not auto-create topics)")),
            Some((_, Some(err))) => {
                let code: RDKafkaErrorCode = (*err).into();
                problems.push(format!("topic `{topic}`: {code}"))
            }
            Some(_) => {}
        }
    }
    problems
}
