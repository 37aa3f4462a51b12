//! Sinks: where records leave the pipeline. A sink resolves each record's acknowledgement
//! only once the destination has accepted it.

pub mod file;
pub mod kafka;
pub mod ndjson;
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

/// Records handed to one sink, each with its own acknowledgement share
/// (`acks[i]` belongs to `records[i]`).
pub struct SinkBatch {
    pub records: Arc<[Record]>,
    pub acks: Vec<AckToken>,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink `{name}` failed; undelivered input stays unacknowledged")]
    Io {
        name: String,
        source: std::io::Error,
    },
    #[error("sink `{name}` failed; undelivered input stays unacknowledged")]
    Kafka {
        name: String,
        source: kafka::KafkaSinkError,
    },
    #[error("sink `{name}` failed; undelivered input stays unacknowledged")]
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
}

/// Start a sink on `tasks`, reading batches from `input`.
pub fn spawn(
    tasks: &mut JoinSet<Result<(), SinkError>>,
    name: String,
    config: SinkConfig,
    formats: Vec<Format>,
    input: mpsc::Receiver<SinkBatch>,
    ctx: &SinkContext,
) {
    let metrics = Arc::clone(&ctx.metrics);
    match config {
        SinkConfig::Stdout { .. } => {
            tasks.spawn_blocking(move || {
                stdout::run(&formats, input, &metrics)
                    .map_err(|source| SinkError::Io { name, source })
            });
        }
        SinkConfig::File { path, .. } => {
            tasks.spawn_blocking(move || {
                file::run(&path, &formats, input, &metrics)
                    .map_err(|source| SinkError::Io { name, source })
            });
        }
        SinkConfig::Kafka(k) => {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                kafka::run(name.clone(), k, formats, input, ctx)
                    .await
                    .map_err(|source| SinkError::Kafka { name, source })
            });
        }
        SinkConfig::SplunkHec(h) => {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                splunk_hec::run(name.clone(), h, formats, input, ctx)
                    .await
                    .map_err(|source| SinkError::Hec { name, source })
            });
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
