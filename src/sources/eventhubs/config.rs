//! The `eventhubs` source's settings.

use std::path::PathBuf;

use serde::Deserialize;

use crate::secrets::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventHubsSourceConfig {
    /// Fully qualified namespace, e.g. `contoso.servicebus.windows.net`. Read from the
    /// connection string when that is the authentication.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The event hub's name. Read from the connection string's `EntityPath` if absent.
    #[serde(default)]
    pub event_hub: Option<String>,
    /// Give auditbridge a consumer group of its own: two readers on one group steal
    /// partitions from each other.
    #[serde(default = "default_group")]
    pub consumer_group: String,
    pub auth: EventHubsAuth,
    /// Dial this AMQP endpoint instead of the namespace (private endpoints, tests).
    #[serde(default)]
    pub custom_endpoint: Option<String>,
    /// `amqp` (port 5671) or `websocket` (AMQP over wss on 443, through proxies).
    #[serde(default)]
    pub transport: Transport,
    /// Where a partition with no checkpoint starts.
    #[serde(default)]
    pub start_position: StartAt,
    /// Events enqueued after this time (RFC 3339) when `start_position = "enqueued_time"`.
    #[serde(default)]
    pub start_enqueued_after: Option<String>,
    pub checkpoint_store: CheckpointStoreConfig,
    /// How often each partition's checkpoint is written (also written at shutdown).
    #[serde(default = "five")]
    pub checkpoint_interval_secs: u64,
    /// `balanced` claims a fair share of partitions; `greedy` claims all it can.
    #[serde(default)]
    pub strategy: Strategy,
    /// How often ownership is renewed and re-balanced.
    #[serde(default = "ten")]
    pub update_interval_secs: u64,
    /// An owner that has not renewed its claim for this long loses its partitions.
    #[serde(default = "sixty")]
    pub partition_expiration_secs: u64,
    /// Events the client buffers per partition.
    #[serde(default = "three_hundred")]
    pub prefetch: u32,
    /// Events per partition handed to the pipeline and not yet settled, at most.
    #[serde(default = "thousand")]
    pub max_in_flight_events: usize,
    /// This replica's owner id in ownership claims (default: a new UUID per process).
    #[serde(default)]
    pub owner_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum EventHubsAuth {
    /// A SAS connection string: put `${ENV_VAR}` in `connection_string`, or use
    /// `connection_string_file`.
    ConnectionString {
        #[serde(default)]
        connection_string: Option<Secret>,
        #[serde(default)]
        connection_string_file: Option<PathBuf>,
    },
    /// The VM's / container app's managed identity (user-assigned with `client_id`).
    ManagedIdentity {
        #[serde(default)]
        client_id: Option<String>,
    },
    /// Kubernetes workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE` from the environment).
    WorkloadIdentity,
    /// An app registration's client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        #[serde(default)]
        client_secret: Option<Secret>,
        #[serde(default)]
        client_secret_file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Amqp,
    Websocket,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Earliest,
    /// The partition's last enqueued event at startup, resolved to its sequence number.
    Latest,
    EnqueuedTime,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Balanced,
    Greedy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckpointStoreConfig {
    /// One JSON file per partition under `dir`: for a single replica.
    File { dir: PathBuf },
    /// Azure Blob Storage, in the layout the other Event Hubs SDKs use: for replicas
    /// sharing a hub.
    Blob(BlobStoreConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobStoreConfig {
    pub container: String,
    /// A storage connection string with `AccountName` and `AccountKey` (`${ENV_VAR}`).
    #[serde(default)]
    pub connection_string: Option<Secret>,
    #[serde(default)]
    pub connection_string_file: Option<PathBuf>,
    /// Or: the account's blob endpoint, authorised with the source's Entra identity.
    #[serde(default)]
    pub account_url: Option<String>,
    /// How long one request to the storage account may take, connecting included: a
    /// storage account that stops answering must not hold a partition's checkpoint (or
    /// the ownership round) for longer.
    #[serde(default = "default_blob_timeout")]
    pub request_timeout_secs: u64,
    /// Reach a storage account that is not this machine over `http`. Refused otherwise;
    /// logged loudly at every start when set.
    #[serde(default)]
    pub allow_cleartext_key: bool,
}

impl BlobStoreConfig {
    /// The storage connection that would go without TLS to another machine, if any.
    pub fn cleartext(&self) -> Option<crate::cleartext::Cleartext> {
        let by_key = self
            .connection_string
            .as_ref()
            .and_then(|cs| crate::cleartext::storage_connection_string(cs.expose()));
        by_key.or_else(|| {
            self.account_url
                .as_deref()
                .and_then(|u| crate::cleartext::url(u, "http", "Entra access token"))
        })
    }
}

fn default_blob_timeout() -> u64 {
    30
}

impl EventHubsSourceConfig {
    /// The setting that is wrong, and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_in_flight_events == 0 {
            return Err(("max_in_flight_events", "must be at least 1".into()));
        }
        if self.checkpoint_interval_secs == 0 {
            return Err(("checkpoint_interval_secs", "must be at least 1".into()));
        }
        if self.consumer_group.is_empty() {
            return Err((
                "consumer_group",
                "must not be empty (the default is `$Default`)".into(),
            ));
        }
        match (self.start_position, &self.start_enqueued_after) {
            (StartAt::EnqueuedTime, None) => Err((
                "start_enqueued_after",
                "is required with start_position = \"enqueued_time\" (RFC 3339, e.g. 2026-11-01T00:00:00Z)".into(),
            )),
            (StartAt::EnqueuedTime, Some(t)) => self.enqueued_after(t).map(|_| ()),
            (_, Some(_)) => Err((
                "start_enqueued_after",
                "only applies with start_position = \"enqueued_time\"".into(),
            )),
            _ => Ok(()),
        }
    }

    fn enqueued_after(&self, t: &str) -> Result<std::time::SystemTime, (&'static str, String)> {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(std::time::SystemTime::from)
            .map_err(|e| {
                (
                    "start_enqueued_after",
                    format!("`{t}` is not an RFC 3339 time: {e}"),
                )
            })
    }

    /// The configured enqueued time (checked at load).
    pub fn start_time(&self) -> Option<std::time::SystemTime> {
        self.start_enqueued_after
            .as_deref()
            .and_then(|t| self.enqueued_after(t).ok())
    }
}

fn default_group() -> String {
    "$Default".to_string()
}
fn five() -> u64 {
    5
}
fn ten() -> u64 {
    10
}
fn sixty() -> u64 {
    60
}
fn three_hundred() -> u32 {
    300
}
fn thousand() -> usize {
    1000
}
