//! Sources: where raw input enters the pipeline, each with its own acknowledgement.

pub mod eventhubs;
pub mod file;
pub mod sqs;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::SourceConfig;

/// Reach a source without consuming from it (`validate --check-sinks`); the problems found.
pub async fn check(config: &SourceConfig) -> Vec<String> {
    match config {
        SourceConfig::File { paths } => match file::expand(paths) {
            Ok(files) if files.is_empty() => vec!["no file matches its paths".into()],
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        },
        SourceConfig::Sqs(q) => {
            let clients = sqs::client::build(q).await;
            match clients
                .sqs
                .get_queue_attributes()
                .queue_url(&q.queue_url)
                .send()
                .await
            {
                Ok(_) => Vec::new(),
                Err(e) => vec![format!(
                    "queue {}: {}",
                    q.queue_url,
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )],
            }
        }
        SourceConfig::Eventhubs(e) => eventhubs::check(e).await,
    }
}

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
