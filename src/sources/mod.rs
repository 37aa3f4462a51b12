//! Sources: where raw input enters the pipeline, each with its own acknowledgement.

pub mod eventhubs;
pub mod file;
pub mod sqs;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Jittered exponential waits between reconnection attempts, up to 30 s, never giving up:
/// a source outlives any outage of the service it reads.
pub(crate) fn retry_backoff(min: Duration) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}
