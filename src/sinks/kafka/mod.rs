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

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::Message as _;

use super::driver::{self, Called, Doc, Fate, Outcome, Settings};
use super::retry::Trouble;
use super::Built;
use crate::record::{Format, Output, Record};
pub use config::KafkaSinkConfig;

#[derive(Debug, thiserror::Error)]
pub enum KafkaSinkError {
    #[error(transparent)]
    Config(#[from] config::KafkaConfigError),
    #[error("cannot create the Kafka producer")]
    Create(#[source] KafkaError),
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

fn fate_of(err: &KafkaError, topic: &str) -> Fate {
    match err.rdkafka_error_code() {
        Some(code) if refused(code) => {
            Fate::Rejected(format!("kafka rejected the message for topic `{topic}`: {err}"))
        }
        Some(code) if fault(code) => Fate::Again(Trouble::Fault(format!(
            "kafka refused topic `{topic}`: {err}; check that it exists and that the credentials may write it"
        ))),
        _ => Fate::Again(Trouble::Retry(format!(
            "delivery to topic `{topic}` failed: {err}"
        ))),
    }
}

/// One message, routed once however often it is sent. The payload is the record's own
/// document, shared, until librdkafka has taken its copy (see [`Service::call`]).
pub struct Message {
    topic: String,
    key: Option<String>,
    headers: routing::Headers,
    payload: Bytes,
}

impl Doc for Message {
    fn bytes(&self) -> &[u8] {
        &self.payload
    }
}

struct Service {
    producer: FutureProducer,
    config: KafkaSinkConfig,
    /// Topics seen in the cluster's metadata.
    known_topics: Mutex<HashSet<String>>,
}

/// Create the producer: bad settings and unreadable secret files show here, before any
/// source starts.
pub fn build(config: KafkaSinkConfig) -> Result<Built, KafkaSinkError> {
    let producer: FutureProducer = config
        .client_config()?
        .create()
        .map_err(KafkaSinkError::Create)?;
    Ok(Built::new(move |formats, input, ctx| async move {
        let grace = ctx.grace;
        let name = ctx.health.name().to_string();
        // Messages are handed to librdkafka, which batches them itself: a request is
        // what one batch from the pipeline holds, sent without waiting for more. A request
        // holds its slot only while it queues its messages, and its documents while it
        // waits for room in a full queue: two at a time keep the queue fed and bound
        // what waits.
        let settings = Settings {
            max_events: 10_000,
            max_bytes: 8 << 20,
            linger: Duration::ZERO,
            max_in_flight: ctx.max_in_flight.min(2),
            max_retry_delay: Duration::from_secs(config.retry_max_delay_secs.max(1)),
        };
        let service = Service {
            producer: producer.clone(),
            config,
            known_topics: Mutex::new(HashSet::new()),
        };
        driver::run(service, formats, settings, input, ctx).await;
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(grace))).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(sink = %name, "not every message was delivered within the grace period; their input stays unacknowledged");
        }
    }))
}

impl driver::Service for Service {
    type Doc = Message;
    const REJECTED: &'static str = "kafka_rejected";

    fn encode(&self, record: &Record, output: &Output) -> Message {
        Message {
            topic: routing::topic(&self.config, record, output.format),
            key: routing::key(&self.config, record).map(str::to_string),
            headers: routing::Headers::of(record, output.format),
            payload: output.body.clone(),
        }
    }

    async fn call(self: Arc<Self>, mut docs: Vec<Message>) -> Called<Message> {
        if let Err(trouble) = self.check_topics(&docs).await {
            return Called::Done(Outcome::Again(docs, trouble));
        }
        let mut sent = Vec::with_capacity(docs.len());
        for doc in &mut docs {
            let queued = self.enqueue(doc).await;
            if queued.is_ok() {
                // librdkafka holds its own copy until the delivery report, which hands it
                // back when delivery failed. Keeping ours too held every queued message
                // twice, and with it the text blocks its document shares with others.
                doc.payload = Bytes::new();
            }
            sent.push(queued);
        }
        Called::Confirming(Box::pin(async move {
            let mut fates = Vec::with_capacity(docs.len());
            let mut all = true;
            for (mut doc, sent) in docs.into_iter().zip(sent) {
                let fate = match sent {
                    Ok(future) => match future.await {
                        Ok(Ok(_)) => Fate::Delivered,
                        Ok(Err((err, message))) => {
                            doc.payload =
                                Bytes::copy_from_slice(message.payload().unwrap_or_default());
                            fate_of(&err, &doc.topic)
                        }
                        // The producer went away with the message: nothing is left to send
                        // again, so its input must come back.
                        Err(_) => Fate::Released,
                    },
                    Err(fate) => fate,
                };
                if let Fate::Again(Trouble::Retry(_)) = fate {
                    // A timeout may hide a topic the broker does not have.
                    self.forget_topic(&doc.topic);
                }
                all &= matches!(fate, Fate::Delivered);
                fates.push((doc, fate));
            }
            if all {
                Outcome::Delivered
            } else {
                Outcome::Each(fates)
            }
        }))
    }
}

impl Service {
    fn forget_topic(&self, topic: &str) {
        if let Ok(mut known) = self.known_topics.lock() {
            known.remove(topic);
        }
    }

    /// Look up in the cluster's metadata every topic of `docs` not seen there yet.
    async fn check_topics(&self, docs: &[Message]) -> Result<(), Trouble> {
        let mut unknown: Vec<&str> = {
            let known = self
                .known_topics
                .lock()
                .map_err(|_| Trouble::Retry("the topic cache is poisoned".into()))?;
            docs.iter()
                .map(|d| d.topic.as_str())
                .filter(|t| !known.contains(*t))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        unknown.dedup();
        let topics = fetch_topics(&self.producer, &self.config.brokers)
            .await
            .map_err(Trouble::Retry)?;
        for topic in unknown {
            match topics.iter().find(|(name, _)| *name == topic) {
                None => {
                    return Err(Trouble::Fault(format!(
                        "topic `{topic}` does not exist on {}; create it (most clusters do not auto-create topics)",
                        self.config.brokers
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
                    if let Ok(mut known) = self.known_topics.lock() {
                        known.insert(topic.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// Hand one message to librdkafka, waiting while its queue is full.
    async fn enqueue(&self, doc: &Message) -> Result<DeliveryFuture, Fate> {
        loop {
            let mut message = FutureRecord::<str, [u8]>::to(&doc.topic)
                .payload(doc.payload.as_ref())
                .headers(doc.headers.owned());
            if let Some(k) = &doc.key {
                message = message.key(k.as_str());
            }
            match self.producer.send_result(message) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err((err, _)) => return Err(fate_of(&err, &doc.topic)),
            }
        }
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

/// Every topic the sink may write to, for the formats it publishes.
pub fn expected_topics(config: &KafkaSinkConfig, formats: &[Format]) -> Vec<String> {
    let mut topics = Vec::new();
    let datasets = [
        (crate::event::Provider::Aws, "aws.cloudtrail"),
        (crate::event::Provider::Azure, "azure.auditlogs"),
        (crate::event::Provider::Azure, "azure.signinlogs"),
        (crate::event::Provider::Azure, "azure.activitylogs"),
        (crate::event::Provider::Gcp, "gcp.audit"),
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
