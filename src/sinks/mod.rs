//! Sinks: where records leave the pipeline. A sink resolves each record's acknowledgement
//! only once the destination has accepted it.

pub mod driver;
pub mod file;
pub mod kafka;
pub mod ndjson;
pub mod retry;
pub mod splunk_hec;
pub mod stdout;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::ack::AckToken;
use crate::budget::Held;
use crate::config::SinkConfig;
use crate::dead_letter::DeadLetterSink;
use crate::metrics::Metrics;
use crate::record::{Format, Record};
use crate::supervisor::{SinkHealth, Supervisor};

/// Records handed to one sink, each with its own acknowledgement share
/// (`acks[i]` belongs to `records[i]`).
pub struct SinkBatch {
    pub records: Arc<[Record]>,
    pub acks: Vec<AckToken>,
    /// The records' bytes in the pipeline's budget, given back once every sink has
    /// dropped its batch, that is, taken the documents into its own bounded requests.
    pub held: Arc<Held>,
}

/// A sink that could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{name}`: cannot build it")]
    Kafka {
        name: String,
        source: kafka::KafkaSinkError,
    },
    #[error("sink `{name}`: cannot build it")]
    Hec {
        name: String,
        source: splunk_hec::HecError,
    },
}

/// What every sink may need besides its own settings.
#[derive(Clone)]
pub struct SinkContext {
    pub dead_letters: Arc<DeadLetterSink>,
    pub metrics: Arc<Metrics>,
    pub max_in_flight: usize,
    pub grace: Duration,
    /// This sink's line to the supervisor: faults, retries, giving up.
    pub health: SinkHealth,
}

/// What the pipeline gives every sink it starts.
pub struct SinkEnv {
    pub dead_letters: Arc<DeadLetterSink>,
    pub metrics: Arc<Metrics>,
    pub max_in_flight: usize,
    pub grace: Duration,
    pub supervisor: Arc<Supervisor>,
}

/// What starts a built sink: its formats, its input and its context in, its task out.
type Start = Box<
    dyn FnOnce(Vec<Format>, mpsc::Receiver<SinkBatch>, SinkContext) -> BoxFuture<'static, ()>
        + Send,
>;

/// A sink built from its settings, ready to start.
pub struct Built {
    start: Start,
}

impl Built {
    /// A sink that starts by running `start`.
    pub fn new<F, Fut>(start: F) -> Self
    where
        F: FnOnce(Vec<Format>, mpsc::Receiver<SinkBatch>, SinkContext) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Built {
            start: Box::new(move |formats, input, ctx| Box::pin(start(formats, input, ctx))),
        }
    }

    /// A sink that is `service` on the shared driver.
    pub fn driven<S: driver::Service>(service: S, settings: driver::Settings) -> Self {
        Built::new(move |formats, input, ctx| driver::run(service, formats, settings, input, ctx))
    }
}

/// Build sink `name`: what its settings get wrong shows here, before any source starts.
pub fn build(name: &str, config: &SinkConfig) -> Result<Built, SinkError> {
    Ok(match config {
        SinkConfig::Stdout { .. } => {
            Built::driven(ndjson::Lines::new(stdout::Stdout), ndjson::settings())
        }
        SinkConfig::File { path, .. } => {
            Built::driven(ndjson::Lines::new(file::appender(path)), ndjson::settings())
        }
        SinkConfig::Kafka(k) => kafka::build(k.clone()).map_err(|source| SinkError::Kafka {
            name: name.to_string(),
            source,
        })?,
        SinkConfig::SplunkHec(h) => {
            splunk_hec::build(h.clone()).map_err(|source| SinkError::Hec {
                name: name.to_string(),
                source,
            })?
        }
    })
}

/// Start sink `name` on `tasks`, reading batches from `input`; the task ends once its
/// input is closed and everything it took is settled.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    name: &str,
    built: Built,
    formats: Vec<Format>,
    input: mpsc::Receiver<SinkBatch>,
    env: &SinkEnv,
) {
    let ctx = SinkContext {
        dead_letters: Arc::clone(&env.dead_letters),
        metrics: Arc::clone(&env.metrics),
        max_in_flight: env.max_in_flight,
        grace: env.grace,
        health: env.supervisor.sink(name),
    };
    tasks.spawn((built.start)(formats, input, ctx));
}

/// Reach a sink without sending data; returns the problems found.
pub async fn check(config: &SinkConfig, formats: &[Format]) -> Vec<String> {
    match config {
        SinkConfig::Stdout { .. } => Vec::new(),
        SinkConfig::File { path, .. } => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            match std::fs::metadata(dir) {
                Ok(m) if m.permissions().readonly() => {
                    vec![format!("{} is read-only", dir.display())]
                }
                Ok(_) => Vec::new(),
                Err(_) => Vec::new(),
            }
        }
        SinkConfig::Kafka(k) => kafka::check(k, formats).await,
        SinkConfig::SplunkHec(h) => splunk_hec::check(h).await,
    }
}
