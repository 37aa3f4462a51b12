//! The `sqs` source's settings.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsSourceConfig {
    /// The queue's URL.
    pub queue_url: String,
    /// AWS region (default: from the environment / profile).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override for SQS and S3 (VPC endpoints, local test servers).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Role to assume for reading objects (cross-account trail buckets).
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// Concurrent receive loops.
    #[serde(default = "two")]
    pub receivers: usize,
    /// Messages per ReceiveMessage call (1–10).
    #[serde(default = "ten")]
    pub max_messages: i32,
    /// Long-poll wait (0–20 s).
    #[serde(default = "twenty")]
    pub wait_time_secs: i32,
    /// Visibility timeout set on receive and renewed while a message is being worked on.
    #[serde(default = "five_minutes")]
    pub visibility_timeout_secs: i32,
    /// After a failure, the message becomes visible again after this long.
    #[serde(default = "thirty")]
    pub retry_delay_secs: i32,
    /// Objects fetched and handed to the pipeline at once.
    #[serde(default = "eight")]
    pub fetch_concurrency: usize,
    /// Messages received and not yet settled, at most.
    #[serde(default = "hundred")]
    pub max_in_flight_messages: usize,
    /// Largest object fetched (compressed size).
    #[serde(default = "one_gib")]
    pub max_object_bytes: u64,
    /// Where an object larger than 8 MiB is written while it is transformed, so memory
    /// never holds it whole (default: the system's temporary directory). Each file is
    /// removed once its records are settled.
    #[serde(default)]
    pub spool_dir: Option<std::path::PathBuf>,
    /// Only fetch from these buckets (empty: any).
    #[serde(default)]
    pub bucket_allowlist: Vec<String>,
    /// Only fetch logs of these accounts, read from `AWSLogs/<account>/` (empty: any).
    #[serde(default)]
    pub account_allowlist: Vec<String>,
    /// Delete messages of unknown shape after dead-lettering them, instead of leaving
    /// them to the queue's redrive policy.
    #[serde(default)]
    pub delete_unknown: bool,
}

fn two() -> usize {
    2
}
fn ten() -> i32 {
    10
}
fn twenty() -> i32 {
    20
}
fn five_minutes() -> i32 {
    300
}
fn thirty() -> i32 {
    30
}
fn eight() -> usize {
    8
}
fn hundred() -> usize {
    100
}
fn one_gib() -> u64 {
    1 << 30
}
