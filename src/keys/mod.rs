//! Access-key context: which keys exist, when they were created, whether they are active.
//! Fed by the stream itself (CreateAccessKey / UpdateAccessKey / DeleteAccessKey, Entra
//! credential additions) and by an IAM credential report; read by the key-age enricher
//! and by `auditbridge keys audit`.

pub mod audit;
pub mod gcp_iam;
pub mod iam;
pub mod inventory;
pub mod report;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use std::path::PathBuf;

/// The kind of an AWS access key id, from its prefix.
pub fn key_type(access_key_id: &str) -> Option<&'static str> {
    match access_key_id.get(..4) {
        Some("AKIA") => Some("long-term"),
        Some("ASIA") => Some("temporary"),
        _ => None,
    }
}

/// `createDate` as CloudTrail writes it for IAM (`Jul 10, 2023 12:24:29 PM`), or ISO 8601.
pub fn parse_create_date(s: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = crate::transforms::decode::time::parse_time(s) {
        return Some(t);
    }
    NaiveDateTime::parse_from_str(s, "%b %d, %Y %I:%M:%S %p")
        .ok()
        .map(|t| t.and_utc())
}

/// Whole days from `from` to `to` (0 when `to` is earlier).
pub fn age_days(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days().max(0)
}

/// The `[keys]` settings: key age and where the inventory comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Keys older than this many days are `over_max_age`.
    pub max_age_days: i64,
    /// Credentials the inventory remembers at most (oldest forgotten first).
    pub capacity: usize,
    /// IAM credential report (CSV) read at start.
    pub credential_report: Option<PathBuf>,
    /// Where the inventory is saved at shutdown and read at start.
    pub state_path: Option<PathBuf>,
    /// Poll IAM (ListUsers + ListAccessKeys) this often; unset: no polling.
    pub iam_poll_interval_secs: Option<u64>,
    /// Region and endpoint for the IAM poll (default: from the environment).
    pub iam_region: Option<String>,
    pub iam_endpoint: Option<String>,
    /// Google Cloud projects whose service-account keys are read from the IAM API at
    /// start and every `gcp_poll_interval_secs`; empty: none.
    pub gcp_projects: Vec<String>,
    pub gcp_poll_interval_secs: u64,
    /// A service-account key file for those calls (default: Application Default
    /// Credentials).
    pub gcp_credentials_file: Option<PathBuf>,
    /// Endpoint override for Google's IAM API (tests; `http://` is sent no credentials).
    pub gcp_iam_endpoint: Option<String>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            max_age_days: 90,
            capacity: 100_000,
            credential_report: None,
            state_path: None,
            iam_poll_interval_secs: None,
            iam_region: None,
            iam_endpoint: None,
            gcp_projects: Vec::new(),
            gcp_poll_interval_secs: 3600,
            gcp_credentials_file: None,
            gcp_iam_endpoint: None,
        }
    }
}

/// Call `refresh` every `interval` until `shutdown` (the first refresh is the caller's,
/// before records flow). A failed refresh is logged; key ages then use what the stream
/// and earlier refreshes showed.
pub(crate) async fn repeat<F, Fut, E>(
    what: &'static str,
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut refresh: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
    E: std::fmt::Display,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = refresh().await {
            tracing::warn!(error = %e, api = what, "key poll failed; key ages use what the stream and earlier polls showed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dates() {
        assert_eq!(
            parse_create_date("Jan 8, 2020 8:43:06 PM")
                .unwrap()
                .to_rfc3339(),
            "2020-01-08T20:43:06+00:00"
        );
        assert_eq!(
            parse_create_date("Jul 10, 2023 12:24:29 PM")
                .unwrap()
                .to_rfc3339(),
            "2023-07-10T12:24:29+00:00"
        );
        assert_eq!(
            parse_create_date("2023-07-10T12:24:29Z")
                .unwrap()
                .to_rfc3339(),
            "2023-07-10T12:24:29+00:00"
        );
        assert!(parse_create_date("yesterday").is_none());
    }

    #[test]
    fn prefixes() {
        assert_eq!(key_type("AKIATFQZ7NSC8Q4X21BJ"), Some("long-term"));
        assert_eq!(key_type("ASIATFQR7NSCTM3XVF6B"), Some("temporary"));
        assert_eq!(key_type("AIDA"), None);
    }
}
