//! Newline-delimited JSON writing shared by the stdout and file sinks.

use std::io;

use tokio::sync::mpsc;

use super::retry::{Retrier, Trouble};
use super::SinkBatch;
use crate::ack::BatchStatus;
use crate::metrics::Metrics;
use crate::record::Format;
use crate::supervisor::SinkHealth;

/// Where the lines go: `write` puts one whole batch down durably, or leaves nothing
/// of it behind where it can (a file is cut back to where the batch began).
pub trait Target {
    fn write(&mut self, batch: &[u8]) -> io::Result<()>;
    fn describe(&self) -> String;
}

/// Write every batch, one document per line, and acknowledge it once written. A write
/// that fails is a fault: the batch is held and written again with backoff until it
/// goes through or the supervisor gives up. Runs on a blocking thread.
pub fn run(
    mut target: impl Target,
    formats: &[Format],
    mut input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
    health: &SinkHealth,
    max_delay: std::time::Duration,
) {
    let mut buf = Vec::with_capacity(1 << 16);
    while let Some(batch) = input.blocking_recv() {
        buf.clear();
        let records = encode(&mut buf, formats, &batch);
        let mut retrier = Retrier::new(health, metrics, max_delay);
        let written = loop {
            if retrier.given_up() {
                break false;
            }
            match target.write(&buf) {
                Ok(()) => {
                    retrier.succeeded();
                    break true;
                }
                Err(e) => {
                    let reason = format!("cannot write to {}: {e}", target.describe());
                    if !retrier.after_blocking(Trouble::Fault(reason)) {
                        break false;
                    }
                }
            }
        };
        let status = if written {
            Metrics::add(&metrics.records_emitted, records);
            metrics.count_labeled("sink_records_delivered", health.name(), records);
            BatchStatus::Delivered
        } else {
            BatchStatus::Failed
        };
        for ack in batch.acks {
            ack.resolve(status);
        }
    }
}

/// The batch's lines; returns how many records they hold.
fn encode(out: &mut Vec<u8>, formats: &[Format], batch: &SinkBatch) -> u64 {
    for record in batch.records.iter() {
        for output in record
            .outputs
            .iter()
            .filter(|o| formats.contains(&o.format))
        {
            out.extend_from_slice(&output.body);
            out.push(b'\n');
        }
    }
    batch.records.len() as u64
}
