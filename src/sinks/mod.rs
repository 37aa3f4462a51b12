//! Sinks: where records leave the pipeline. A sink resolves each record's acknowledgement
//! only once the destination has accepted it.

pub mod file;
pub mod kafka;
pub mod ndjson;
pub mod retry;
pub mod splunk_hec;
pub mod stdout;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::ack::AckToken;
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

/// A sink built from its settings, ready to start.
pub enum Built {
    Stdout,
    File(std::path::PathBuf),
    Kafka(kafka::Built),
    SplunkHec(splunk_hec::Built),
}

/// Build sink `name`: what its settings get wrong shows here, before any source starts.
pub fn build(name: &str, config: &SinkConfig) -> Result<Built, SinkError> {
    Ok(match config {
        SinkConfig::Stdout { .. } => Built::Stdout,
        SinkConfig::File { path, .. } => Built::File(path.clone()),
        SinkConfig::Kafka(k) => {
            Built::Kafka(kafka::build(k.clone()).map_err(|source| SinkError::Kafka {
                name: name.to_string(),
                source,
            })?)
        }
        SinkConfig::SplunkHec(h) => Built::SplunkHec(splunk_hec::build(h.clone()).map_err(
            |source| SinkError::Hec {
                name: name.to_string(),
                source,
            },
        )?),
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
    match built {
        Built::Stdout => {
            tasks.spawn_blocking(move || stdout::run(&formats, input, &ctx.metrics, &ctx.health));
        }
        Built::File(path) => {
            tasks.spawn_blocking(move || {
                file::run(&path, &formats, input, &ctx.metrics, &ctx.health)
            });
        }
        Built::Kafka(k) => {
            tasks.spawn(kafka::run(k, formats, input, ctx));
        }
        Built::SplunkHec(h) => {
            tasks.spawn(splunk_hec::run(h, formats, input, ctx));
        }
    }
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
