//! The `gcp_pubsub` source's settings.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpPubsubSourceConfig {
    /// The subscription's full name: `projects/PROJECT/subscriptions/SUBSCRIPTION`.
    pub subscription: String,
    /// Endpoint override (regional endpoints, Private Service Connect, a local
    /// emulator). Default: `http://$PUBSUB_EMULATOR_HOST` when that variable is set, else
    /// Google's. An `http://` endpoint is an emulator: it is sent no credentials.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A service-account key file (JSON). Default: Application Default Credentials
    /// (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's login, the metadata server of GCE and
    /// GKE Workload Identity).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Streaming pulls open at once.
    #[serde(default = "one")]
    pub streams: usize,
    /// Messages delivered to a stream and not yet settled, at most (Pub/Sub's flow
    /// control: the service stops sending until some are settled).
    #[serde(default = "thousand")]
    pub max_outstanding_messages: i64,
    /// Bytes of those messages, at most.
    #[serde(default = "hundred_mib")]
    pub max_outstanding_bytes: i64,
    /// How far each extension moves a held message's ack deadline (10–600 s). It is also
    /// how long a message stays hidden after a crash before Pub/Sub redelivers it.
    #[serde(default = "sixty")]
    pub ack_deadline_secs: u64,
    /// A message held longer than this is no longer extended, and Pub/Sub redelivers it.
    #[serde(default = "hour")]
    pub max_lease_secs: u64,
}

impl GcpPubsubSourceConfig {
    /// The first setting that cannot work, as (key, what is wrong).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let parts: Vec<&str> = self.subscription.split('/').collect();
        if !matches!(parts.as_slice(), ["projects", p, "subscriptions", s] if !p.is_empty() && !s.is_empty())
        {
            return Err((
                "subscription",
                format!(
                    "`{}` is not a subscription's full name; write projects/PROJECT/subscriptions/SUBSCRIPTION",
                    self.subscription
                ),
            ));
        }
        if !(10..=600).contains(&self.ack_deadline_secs) {
            return Err((
                "ack_deadline_secs",
                "must be between 10 and 600 (Pub/Sub's limits)".into(),
            ));
        }
        if self.streams == 0 {
            return Err(("streams", "must be at least 1".into()));
        }
        if self.max_lease_secs < self.ack_deadline_secs {
            return Err((
                "max_lease_secs",
                "must be at least ack_deadline_secs".into(),
            ));
        }
        Ok(())
    }
}

fn one() -> usize {
    1
}
fn thousand() -> i64 {
    1000
}
fn hundred_mib() -> i64 {
    100 << 20
}
fn sixty() -> u64 {
    60
}
fn hour() -> u64 {
    3600
}
