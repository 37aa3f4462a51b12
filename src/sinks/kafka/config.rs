//! The `kafka` sink's settings and the librdkafka configuration built from them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer};

use crate::record::Format;
use crate::secrets::Secret;

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
    /// `queue.buffering.max.kbytes`, in bytes: the same bound by size. librdkafka's own
    /// default (1 GiB) would let a broker that stops answering hold that much twice, in
    /// its copy and in the sink's, until the message timeout.
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: u64,
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
    pub properties: Properties,
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
fn default_queue_bytes() -> u64 {
    32 << 20
}
/// librdkafka's default `message.max.bytes`.
const MESSAGE_MAX_BYTES: u64 = 1_000_000;
fn default_message_timeout() -> u64 {
    300_000
}
fn default_retry_max() -> u64 {
    30
}

/// librdkafka properties as configured. The values of those that carry credentials are
/// [`Secret`]s: they print as `[redacted]` and only the client configuration reads them.
#[derive(Debug, Clone, Default)]
pub struct Properties(BTreeMap<String, Property>);

#[derive(Debug, Clone)]
enum Property {
    Plain(String),
    Secret(Secret),
}

/// The properties librdkafka itself flags as sensitive (`_RK_SENSITIVE` in
/// `rdkafka_conf.c`, 2.12). Any other name with `password` or `secret` in it (aliases,
/// newer versions) counts too.
const SENSITIVE: &[&str] = &[
    "sasl.oauthbearer.assertion.private.key.file",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.config",
    "sasl.username",
    "ssl.ca.pem",
    "ssl.key.location",
    "ssl.key.pem",
    "ssl_key",
];

fn sensitive(name: &str) -> bool {
    SENSITIVE.contains(&name) || name.contains("password") || name.contains("secret")
}

impl Properties {
    /// A setting that is not a credential, such as `security.protocol`.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self.0.get(name)? {
            Property::Plain(v) => Some(v),
            Property::Secret(_) => None,
        }
    }

    /// Every property with its value, credentials included: for the client only.
    fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| {
            let value = match v {
                Property::Plain(v) => v.as_str(),
                Property::Secret(s) => s.expose(),
            };
            (k.as_str(), value)
        })
    }
}

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = BTreeMap::<String, String>::deserialize(d)?;
        Ok(Properties(
            given
                .into_iter()
                .map(|(k, v)| {
                    let v = if sensitive(&k) {
                        Property::Secret(Secret::from(v))
                    } else {
                        Property::Plain(v)
                    };
                    (k, v)
                })
                .collect(),
        ))
    }
}

/// Properties the sink sets itself; overriding them would break delivery guarantees.
const RESERVED: &[&str] = &["enable.idempotence", "acks", "bootstrap.servers"];

#[derive(Debug, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("kafka property `{0}` is set by auditbridge (idempotent, acks=all) and cannot be overridden")]
    Reserved(String),
    #[error("queue_max_bytes ({queue}) is below the largest message librdkafka sends (message.max.bytes = {message}): such a message could never be queued; raise queue_max_bytes")]
    QueueBelowMessage { queue: u64, message: u64 },
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
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_bytes.div_ceil(1024).to_string(),
            )
            .set("message.timeout.ms", self.message_timeout_ms.to_string());
        let message = self
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(MESSAGE_MAX_BYTES);
        if self.queue_max_bytes < message {
            return Err(KafkaConfigError::QueueBelowMessage {
                queue: self.queue_max_bytes,
                message,
            });
        }
        for (k, v) in self.properties.exposed() {
            if RESERVED.contains(&k) {
                return Err(KafkaConfigError::Reserved(k.to_string()));
            }
            c.set(k, v);
        }
        for (k, path) in &self.secret_files {
            if RESERVED.contains(&k.as_str()) {
                return Err(KafkaConfigError::Reserved(k.clone()));
            }
            let value =
                crate::secrets::read(path).map_err(|source| KafkaConfigError::SecretFile {
                    property: k.clone(),
                    path: path.clone(),
                    source,
                })?;
            c.set(k, value.expose());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_from_everything_but_the_client() {
        let config: KafkaSinkConfig = toml::from_str(
            r#"brokers = "kafka:9093"
properties = { "security.protocol" = "SASL_SSL", "sasl.username" = "svc", "sasl.password" = "pw-1", "sasl.oauthbearer.client.credentials.client.secret" = "pw-2" }"#,
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw-") && !debug.contains("svc"), "{debug}");
        assert!(debug.contains("Plain(\"SASL_SSL\")"), "{debug}");
        assert_eq!(config.properties.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(config.properties.get("sasl.password"), None);
        let client = config.client_config().unwrap();
        assert_eq!(client.get("sasl.password"), Some("pw-1"));
        assert_eq!(
            client.get("sasl.oauthbearer.client.credentials.client.secret"),
            Some("pw-2")
        );
        assert_eq!(client.get("sasl.username"), Some("svc"));
    }

    #[test]
    fn the_queue_is_bounded_by_bytes_and_never_below_one_message() {
        let client = |extra: &str| {
            toml::from_str::<KafkaSinkConfig>(&format!("brokers = \"kafka:9093\"\n{extra}"))
                .unwrap()
                .client_config()
        };
        let default = client("").unwrap();
        assert_eq!(default.get("queue.buffering.max.kbytes"), Some("32768"));
        assert_eq!(default.get("queue.buffering.max.messages"), Some("100000"));
        let odd = client("queue_max_bytes = 1000001").unwrap();
        assert_eq!(odd.get("queue.buffering.max.kbytes"), Some("977"));
        let err = client("queue_max_bytes = 999999").unwrap_err();
        assert_eq!(
            err.to_string(),
            "queue_max_bytes (999999) is below the largest message librdkafka sends (message.max.bytes = 1000000): such a message could never be queued; raise queue_max_bytes"
        );
        let err = client(
            "queue_max_bytes = 2000000\nproperties = { \"message.max.bytes\" = \"4000000\" }",
        )
        .unwrap_err();
        assert!(matches!(
            err,
            KafkaConfigError::QueueBelowMessage {
                queue: 2_000_000,
                message: 4_000_000
            }
        ));
    }
}
