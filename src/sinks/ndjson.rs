//! Newline-delimited JSON writing shared by the stdout and file sinks.

use std::io::{self, Write};

use tokio::sync::mpsc;

use super::SinkBatch;
use crate::ack::BatchStatus;
use crate::metrics::Metrics;
use crate::record::Format;

/// Write every batch, one document per line, and acknowledge it once written and flushed.
/// `sync` is called after each flush (fsync for files). Runs on a blocking thread.
pub fn run<W: Write>(
    mut out: W,
    formats: &[Format],
    mut input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
    sync: impl Fn(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    while let Some(batch) = input.blocking_recv() {
        let written = write_batch(&mut out, formats, &batch).and_then(|n| {
            out.flush()?;
            sync(&mut out)?;
            Ok(n)
        });
        match written {
            Ok(n) => {
                Metrics::add(&metrics.records_emitted, n);
                for ack in batch.acks {
                    ack.resolve(BatchStatus::Delivered);
                }
            }
            Err(e) => {
                for ack in batch.acks {
                    ack.resolve(BatchStatus::Failed);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

fn write_batch<W: Write>(out: &mut W, formats: &[Format], batch: &SinkBatch) -> io::Result<u64> {
    let mut n = 0;
    for record in batch.records.iter() {
        for output in record
            .outputs
            .iter()
            .filter(|o| formats.contains(&o.format))
        {
            out.write_all(&output.body)?;
            out.write_all(b"\n")?;
        }
        n += 1;
    }
    Ok(n)
}
