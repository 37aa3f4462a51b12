//! Sources: where raw input enters the pipeline, each with its own acknowledgement.

pub mod eventhubs;
pub mod file;
pub mod gcp_pubsub;
pub mod sqs;

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::admin::{Health, Reporter};
use crate::config::SourceConfig;
use crate::dead_letter::DeadLetterSink;
use crate::event::RawInput;
use crate::metrics::Metrics;
use crate::supervisor::{Intake, Supervisor};
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

/// What a running source is given.
pub struct SourceContext {
    /// Where its inputs go, each with the acknowledgement that settles it upstream.
    pub out: mpsc::Sender<RawInput>,
    pub shutdown: watch::Receiver<bool>,
    /// Closed while a sink is faulted: a source takes nothing new in until it opens.
    pub intake: Intake,
    pub dead_letters: Arc<DeadLetterSink>,
    pub metrics: Arc<Metrics>,
    pub health: Reporter,
    pub progress: Arc<FileProgress>,
}

/// A source built from its settings, ready to run.
pub trait Source: Send {
    /// Read until shutdown (files: until every file is taken in), and return once what
    /// was taken in is settled.
    fn run(self: Box<Self>, ctx: SourceContext) -> BoxFuture<'static, ()>;
}

/// Build source `name`: missing files, bad patterns and unusable credentials show here,
/// before anything starts.
pub fn build(name: &str, config: &SourceConfig) -> Result<Box<dyn Source>, SourceError> {
    Ok(match config {
        SourceConfig::File { paths } => {
            Box::new(file::Files::new(file::expand(paths).map_err(|source| {
                SourceError::File {
                    name: name.to_string(),
                    source,
                }
            })?))
        }
        SourceConfig::Sqs(q) => Box::new(sqs::Queue::new(q.clone())),
        SourceConfig::GcpPubsub(p) => Box::new(gcp_pubsub::Subscription::new(p.clone())),
        SourceConfig::Eventhubs(e) => {
            Box::new(
                eventhubs::Prepared::new(e).map_err(|source| SourceError::EventHubs {
                    name: name.to_string(),
                    source: Box::new(source),
                })?,
            )
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
pub fn spawn(tasks: &mut JoinSet<()>, name: &str, source: Box<dyn Source>, env: &SourceEnv) {
    let ctx = SourceContext {
        out: env.out.clone(),
        shutdown: env.shutdown.clone(),
        intake: env.supervisor.intake(),
        dead_letters: Arc::clone(&env.dead_letters),
        metrics: Arc::clone(&env.metrics),
        health: env.health.reporter(format!("source.{name}")),
        progress: Arc::clone(&env.progress),
    };
    tasks.spawn(source.run(ctx));
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
        // The subscriber role cannot read the subscription's settings, and a pull would
        // take messages: the credentials and endpoint are what can be checked without.
        SourceConfig::GcpPubsub(p) => match gcp_pubsub::client::build(p).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        },
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
