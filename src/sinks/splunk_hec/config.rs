//! The `splunk_hec` sink's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::record::Format;
use crate::secrets::{secret, Secret, SecretError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL of the collector, e.g. `https://splunk.example.com:8088`.
    pub endpoint: String,
    /// The HEC token: put `${ENV_VAR}` here, or use `token_file`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// File holding the HEC token (e.g. a mounted secret).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Documents to send (default: every document the pipeline builds).
    #[serde(default)]
    pub formats: Option<Vec<Format>>,
    /// Index for every event (default: the token's default index).
    #[serde(default)]
    pub index: Option<String>,
    /// Index per dataset (`aws.cloudtrail`, `azure.auditlogs`, `azure.signinlogs`,
    /// `azure.activitylogs`, `gcp.audit`).
    #[serde(default)]
    pub indexes: BTreeMap<String, String>,
    /// Sourcetype per dataset (`aws.cloudtrail`, …) for `raw` events, per format
    /// (`ecs`, `ocsf`, `ocsf_finding`) for documents. Defaults: the vendor's record under
    /// the sourcetypes Splunk's add-ons read (`aws:cloudtrail`, `azure:monitor:aad`,
    /// `azure:monitor:activity`, `google:gcp:pubsub:message`);
    /// documents under `auditbridge:ecs`, `auditbridge:ocsf`, `auditbridge:ocsf:finding`.
    #[serde(default)]
    pub sourcetypes: BTreeMap<String, String>,
    /// `source` of every event.
    #[serde(default = "default_source")]
    pub source: String,
    /// `host` of every event (default: none, Splunk uses the token's).
    #[serde(default)]
    pub host: Option<String>,
    /// Add the indexed fields (`auditbridge_format`, `auditbridge_dataset`,
    /// `auditbridge_tagged`, `mitre_technique`, `auditbridge_rule`,
    /// `auditbridge_key_age_days`) to ECS and OCSF documents too. `raw` events always
    /// carry them: they are the only place their enrichment goes.
    #[serde(default)]
    pub indexed_fields: bool,
    #[serde(default = "default_max_events")]
    pub batch_max_events: usize,
    /// Uncompressed bytes per request.
    #[serde(default = "default_max_bytes")]
    pub batch_max_bytes: usize,
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout_ms: u64,
    /// gzip request bodies.
    #[serde(default = "yes")]
    pub compression: bool,
    /// Wait for indexer acknowledgement before acknowledging upstream.
    #[serde(default = "yes")]
    pub indexer_ack: bool,
    /// When the token has acknowledgement disabled, accept HTTP 200 as delivered instead
    /// of stopping with a configuration error.
    #[serde(default)]
    pub allow_without_ack: bool,
    /// How often the ids waiting for indexer acknowledgement are queried (one request
    /// for all of them) while the sink keeps sending; once it pauses they are queried
    /// sooner (see `acks`). Each waiting request's body is kept for a resend, so this,
    /// with Splunk's own indexing delay, sets how much `max_pending_ack_bytes` holds.
    #[serde(default = "default_ack_poll")]
    pub ack_poll_interval_ms: u64,
    /// Request bodies (compressed, as sent) the collector took and has not yet
    /// acknowledged, kept for a resend. When they reach this, new requests wait.
    #[serde(default = "default_pending_ack_bytes")]
    pub max_pending_ack_bytes: u64,
    /// Resend a request whose acknowledgement has not come after this long.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_secs: u64,
    #[serde(default = "default_in_flight")]
    pub max_in_flight_requests: usize,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Upper bound of the retry backoff.
    #[serde(default = "default_retry_max")]
    pub retry_max_delay_secs: u64,
    /// Events per second at most (unset: unlimited).
    #[serde(default)]
    pub rate_limit_events_per_sec: Option<u32>,
    /// Uncompressed bytes per second at most (unset: unlimited).
    #[serde(default)]
    pub rate_limit_bytes_per_sec: Option<u32>,
    /// PEM file of the CA that signed the collector's certificate.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Accept any certificate. Logged loudly at start; never in production.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Send the token over `http://` to a host that is not this machine. Refused
    /// otherwise; logged loudly at every start when set.
    #[serde(default)]
    pub allow_cleartext_token: bool,
}

fn default_source() -> String {
    "auditbridge".into()
}
fn default_max_events() -> usize {
    500
}
fn default_max_bytes() -> usize {
    1_000_000
}
fn default_batch_timeout() -> u64 {
    1000
}
fn yes() -> bool {
    true
}
fn default_ack_poll() -> u64 {
    1_000
}
fn default_pending_ack_bytes() -> u64 {
    128 << 20
}
fn default_ack_timeout() -> u64 {
    300
}
fn default_in_flight() -> usize {
    8
}
fn default_request_timeout() -> u64 {
    30
}
fn default_retry_max() -> u64 {
    60
}

impl SplunkHecConfig {
    /// The token, from the environment (interpolated into `token`) or its file.
    pub fn token(&self) -> Result<Secret, SecretError> {
        secret(self.token.as_ref(), self.token_file.as_deref(), "token")
    }

    /// `max_pending_ack_bytes` as a semaphore's permit count (at least 1).
    pub fn max_pending_ack_bytes_u32(&self) -> u32 {
        u32::try_from(self.max_pending_ack_bytes)
            .unwrap_or(u32::MAX)
            .max(1)
    }

    pub fn sourcetype(&self, format: Format, dataset: &str) -> &str {
        let key = match format {
            Format::Raw => dataset,
            other => other.as_str(),
        };
        if let Some(s) = self.sourcetypes.get(key) {
            return s;
        }
        match format {
            Format::Raw if dataset == "azure.activitylogs" => "azure:monitor:activity",
            Format::Raw if dataset.starts_with("azure.") => "azure:monitor:aad",
            // The sourcetype the Google Cloud add-on's Pub/Sub input writes.
            Format::Raw if dataset == "gcp.audit" => "google:gcp:pubsub:message",
            Format::Raw => "aws:cloudtrail",
            Format::Ecs => "auditbridge:ecs",
            Format::Ocsf => "auditbridge:ocsf",
            Format::OcsfFinding => "auditbridge:ocsf:finding",
        }
    }

    pub fn index(&self, dataset: &str) -> Option<&str> {
        self.indexes
            .get(dataset)
            .or(self.index.as_ref())
            .map(String::as_str)
    }
}
