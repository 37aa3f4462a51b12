//! The `kafka` sink's settings and the librdkafka configuration built from them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::record::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// What the message key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyField {
    /// The record's stable id (CloudTrail `eventID`, Entra id): spreads load, and a
    /// redelivered record lands on the same partition.
    Id,
    /// The cloud account (AWS account id, Entra tenant id): one account's records stay
    /// ordered on one partition.
    Account,
    /// No key: round-robin.
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Documents to publish (default: every document the pipeline builds).
    #[serde(default)]
    pub formats: Option<Vec<Format>>,
    /// Topic template; `{format}`, `{provider}` and `{dataset}` are replaced.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Explicit topic per format (`ecs`, `ocsf`, `ocsf_finding`), overriding `topic`.
    #[serde(default)]
    pub topics: BTreeMap<Format, String>,
    /// Topic for records tagged with an ATT&CK technique (all their documents), so
    /// detections can be consumed apart from the bulk.
    #[serde(default)]
    pub tagged_topic: Option<String>,
    #[serde(default = "default_key")]
    pub key: KeyField,
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// `linger.ms`.
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    /// `batch.size` in bytes.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u64,
    /// `queue.buffering.max.messages`: when the producer queue holds this many, the
    /// pipeline waits.
    #[serde(default = "default_queue")]
    pub queue_max_messages: u64,
    /// `message.timeout.ms`: how long librdkafka retries a message before the batch is
    /// left unacknowledged for redelivery.
    #[serde(default = "default_message_timeout")]
    pub message_timeout_ms: u64,
    /// Upper bound of the backoff between sends of what was not delivered.
    #[serde(default = "default_retry_max")]
    pub retry_max_delay_secs: u64,
    /// Any other librdkafka property (`security.protocol`, `sasl.mechanisms`, …).
    /// Put secrets in via `${ENV_VAR}` or `secret_files`, never literally.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose value is read from a file (e.g. `sasl.password` from a
    /// mounted secret).
    #[serde(default)]
    pub secret_files: BTreeMap<String, PathBuf>,
    /// Send SASL credentials with `security.protocol = SASL_PLAINTEXT` to brokers that
    /// are not this machine. Refused otherwise; logged loudly at every start when set.
    #[serde(default)]
    pub allow_cleartext_credentials: bool,
}

fn default_topic() -> String {
    "auditbridge.{format}.{provider}".into()
}
fn default_key() -> KeyField {
    KeyField::Id
}
fn default_compression() -> Compression {
    Compression::Lz4
}
fn default_linger() -> u64 {
    5
}
fn default_batch_bytes() -> u64 {
    1_000_000
}
fn default_queue() -> u64 {
    100_000
}
fn default_message_timeout() -> u64 {
    300_000
}
fn default_retry_max() -> u64 {
    30
}

/// Properties the sink sets itself; overriding them would break delivery guarantees.
const RESERVED: &[&str] = &["enable.idempotence", "acks", "bootstrap.servers"];

#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("kafka property `{0}` is set by auditbridge (idempotent, acks=all) and cannot be overridden")]
    Reserved(String),
    #[error("cannot read the secret file for kafka property `{property}` ({path})")]
    SecretFile {
        property: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl KafkaSinkConfig {
    /// The librdkafka producer configuration. Secrets from files are read here.
    pub fn client_config(&self) -> Result<ClientConfig, KafkaConfigError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", self.compression.as_str())
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", self.batch_bytes.to_string())
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        for (k, v) in &self.properties {
            if RESERVED.contains(&k.as_str()) {
                return Err(KafkaConfigError::Reserved(k.clone()));
            }
            c.set(k, v);
        }
        for (k, path) in &self.secret_files {
            if RESERVED.contains(&k.as_str()) {
                return Err(KafkaConfigError::Reserved(k.clone()));
            }
            let value =
                std::fs::read_to_string(path).map_err(|source| KafkaConfigError::SecretFile {
                    property: k.clone(),
                    path: path.clone(),
                    source,
                })?;
            c.set(k, value.trim_end_matches(['\n', '\r']));
        }
        // Verification is librdkafka's default; turning it off is allowed, never quietly.
        if self
            .properties
            .get("enable.ssl.certificate.verification")
            .is_some_and(|v| v.eq_ignore_ascii_case("false"))
        {
            tracing::warn!(brokers = %self.brokers, "TLS certificate verification is OFF for this Kafka sink (enable.ssl.certificate.verification = false): anyone on the path can read and alter the data");
        }
        Ok(c)
    }
}
