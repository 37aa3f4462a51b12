//! Sources: where raw input enters the pipeline, each with its own acknowledgement.

pub mod eventhubs;
pub mod file;
pub mod sqs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::admin::Health;
use crate::config::SourceConfig;
use crate::dead_letter::DeadLetterSink;
use crate::event::RawInput;
use crate::metrics::Metrics;
use crate::supervisor::Supervisor;
use file::FileProgress;

/// A source that could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{name}`")]
    File {
        name: String,
        source: file::FileSourceError,
    },
    #[error("source `{name}`")]
    EventHubs {
        name: String,
        source: Box<eventhubs::EventHubsSetupError>,
    },
}

/// A source built from its settings, ready to start.
pub enum Built {
    File(Vec<PathBuf>),
    Sqs(Box<sqs::SqsSourceConfig>),
    EventHubs(Box<eventhubs::Prepared>),
}

/// Build source `name`: missing files, bad patterns and unusable credentials show here,
/// before anything starts.
pub fn build(name: &str, config: &SourceConfig) -> Result<Built, SourceError> {
    Ok(match config {
        SourceConfig::File { paths } => {
            Built::File(file::expand(paths).map_err(|source| SourceError::File {
                name: name.to_string(),
                source,
            })?)
        }
        SourceConfig::Sqs(q) => Built::Sqs(Box::new(q.clone())),
        SourceConfig::Eventhubs(e) => {
            Built::EventHubs(Box::new(eventhubs::Prepared::new(e).map_err(|source| {
                SourceError::EventHubs {
                    name: name.to_string(),
                    source: Box::new(source),
                }
            })?))
        }
    })
}

/// What the pipeline gives every source it starts.
pub struct SourceEnv {
    pub out: mpsc::Sender<RawInput>,
    pub shutdown: watch::Receiver<bool>,
    pub supervisor: Arc<Supervisor>,
    pub health: Arc<Health>,
    pub dead_letters: Arc<DeadLetterSink>,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<FileProgress>,
}

/// Start source `name` on `tasks`; the task ends after shutdown (or, for files, once
/// every file is settled), when what it took in is settled.
pub fn spawn(tasks: &mut JoinSet<()>, name: &str, built: Built, env: &SourceEnv) {
    let health = env.health.reporter(format!("source.{name}"));
    let (out, shutdown, intake) = (
        env.out.clone(),
        env.shutdown.clone(),
        env.supervisor.intake(),
    );
    let metrics = Arc::clone(&env.metrics);
    match built {
        Built::File(files) => {
            health.ok();
            tasks.spawn(file::run(
                files,
                out,
                shutdown,
                intake,
                metrics,
                Arc::clone(&env.progress),
            ));
        }
        Built::Sqs(queue) => {
            tasks.spawn(sqs::run(
                *queue,
                out,
                shutdown,
                intake,
                Arc::clone(&env.dead_letters),
                metrics,
                health,
            ));
        }
        Built::EventHubs(hub) => {
            tasks.spawn(eventhubs::run(*hub, out, shutdown, intake, metrics, health));
        }
    }
}

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
