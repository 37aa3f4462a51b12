//! The `kafka` sink: idempotent `acks=all` producer whose delivery reports gate the
//! upstream acknowledgement.
//!
//! A record is accepted when every one of its documents has a successful delivery
//! report. A permanent rejection (message too large, topic unknown or not authorized)
//! dead-letters that document with the reason; a retriable failure (broker gone longer
//! than `message.timeout.ms`) fails the record so its source redelivers it. When the
//! producer queue is full the sink waits, which backs the whole pipeline up.

pub mod config;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::{SinkBatch, SinkContext};
use crate::ack::BatchStatus;
use crate::dead_letter::{DeadLetter, DeadLetterSink};
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
    /// Rejected for good: dead-letter with this reason.
    Rejected(String),
    /// Not delivered this time: the record must come again.
    Retry(String),
}

/// Errors that redelivery cannot fix.
fn permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::PolicyViolation
    )
}

fn outcome_of(err: &KafkaError, topic: &str) -> Outcome {
    let reason = format!("kafka rejected the message for topic `{topic}`: {err}");
    match err.rdkafka_error_code() {
        Some(code) if permanent(code) => Outcome::Rejected(reason),
        _ => Outcome::Retry(reason),
    }
}

/// Everything one batch's delivery task needs.
struct Pending {
    record: usize,
    format: Format,
    topic: String,
    delivery: Result<DeliveryFuture, Outcome>,
}

/// Run the sink until its input closes, then flush within `grace`.
pub async fn run(
    name: String,
    config: KafkaSinkConfig,
    formats: Vec<Format>,
    mut input: mpsc::Receiver<SinkBatch>,
    ctx: SinkContext,
) -> Result<(), KafkaSinkError> {
    let SinkContext {
        dead_letters,
        metrics,
        max_in_flight,
        grace,
    } = ctx;
    let producer: FutureProducer = config
        .client_config()?
        .create()
        .map_err(KafkaSinkError::Create)?;
    let in_flight = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut deliveries = JoinSet::new();
    while let Some(batch) = input.recv().await {
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let mut pending = Vec::new();
        for (i, record) in batch.records.iter().enumerate() {
            for output in record
                .outputs
                .iter()
                .filter(|o| formats.contains(&o.format))
            {
                let topic = routing::topic(&config, record, output.format);
                let delivery = enqueue(
                    &producer,
                    &config,
                    record,
                    output.format,
                    &output.body,
                    &topic,
                )
                .await;
                pending.push(Pending {
                    record: i,
                    format: output.format,
                    topic,
                    delivery,
                });
            }
        }
        let dead_letters = Arc::clone(&dead_letters);
        let metrics = Arc::clone(&metrics);
        let sink = name.clone();
        deliveries.spawn(async move {
            settle(batch, pending, &dead_letters, &metrics, &sink).await;
            drop(permit);
        });
        while deliveries.try_join_next().is_some() {}
    }
    let flush = producer.clone();
    let flushed = tokio::task::spawn_blocking(move || flush.flush(Timeout::After(grace))).await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!(sink = %name, "not every message was delivered within the grace period; their input stays unacknowledged");
    }
    while deliveries.join_next().await.is_some() {}
    Ok(())
}

/// Hand one document to librdkafka, waiting while its queue is full.
async fn enqueue(
    producer: &FutureProducer,
    config: &KafkaSinkConfig,
    record: &Record,
    format: Format,
    body: &[u8],
    topic: &str,
) -> Result<DeliveryFuture, Outcome> {
    let key = routing::key(config, record);
    loop {
        let mut message = FutureRecord::<str, [u8]>::to(topic)
            .payload(body)
            .headers(routing::headers(record, format));
        if let Some(k) = key {
            message = message.key(k);
        }
        match producer.send_result(message) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((err, _)) => return Err(outcome_of(&err, topic)),
        }
    }
}

/// Wait for every delivery report of a batch, dead-letter permanent rejections, and
/// resolve each record's acknowledgement.
async fn settle(
    batch: SinkBatch,
    pending: Vec<Pending>,
    dead_letters: &DeadLetterSink,
    metrics: &Metrics,
    sink: &str,
) {
    let mut status = vec![BatchStatus::Delivered; batch.records.len()];
    let mut letters = Vec::new();
    for p in pending {
        let outcome = match p.delivery {
            Ok(future) => match future.await {
                Ok(Ok(_)) => Outcome::Delivered,
                Ok(Err((err, _))) => outcome_of(&err, &p.topic),
                Err(_) => {
                    Outcome::Retry("the Kafka producer went away before reporting delivery".into())
                }
            },
            Err(o) => o,
        };
        match outcome {
            Outcome::Delivered => {}
            Outcome::Rejected(reason) => {
                let record = &batch.records[p.record];
                let body = record
                    .outputs_of(p.format)
                    .next()
                    .map(|o| o.body.clone())
                    .unwrap_or_default();
                letters.push(DeadLetter {
                    kind: "kafka_rejected",
                    reason: format!("sink `{sink}`: {reason}"),
                    origin: (*record.origin).clone(),
                    position: None,
                    bytes: body,
                });
            }
            Outcome::Retry(reason) => {
                tracing::warn!(sink, record = %batch.records[p.record].id, %reason, "delivery failed; the record will be redelivered");
                status[p.record] = status[p.record].max(BatchStatus::Failed);
            }
        }
    }
    if !letters.is_empty() {
        for l in &letters {
            metrics.dead_letter(l.kind);
        }
        if let Err(e) = dead_letters.write_all(&letters) {
            tracing::error!(sink, error = %e, "cannot write dead letters; the records stay unacknowledged");
            for s in status.iter_mut() {
                *s = (*s).max(BatchStatus::Failed);
            }
        }
    }
    let delivered = status
        .iter()
        .filter(|s| **s == BatchStatus::Delivered)
        .count();
    Metrics::add(&metrics.records_emitted, delivered as u64);
    for (ack, s) in batch.acks.into_iter().zip(status) {
        ack.resolve(s);
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
    let metadata = tokio::task::spawn_blocking(move || {
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
    let topics = match metadata {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            return vec![format!(
                "cannot fetch metadata from {}: {e}",
                config.brokers
            )]
        }
        Err(e) => return vec![format!("metadata lookup failed: {e}")],
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
