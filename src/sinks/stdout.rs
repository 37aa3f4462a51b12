//! The `stdout` sink: NDJSON on standard output.

use std::io::{self, BufWriter};

use tokio::sync::mpsc;

use super::{ndjson, SinkBatch};
use crate::metrics::Metrics;
use crate::record::Format;

pub fn run(
    formats: &[Format],
    input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
) -> io::Result<()> {
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    ndjson::run(out, formats, input, metrics, |_| Ok(()))
}
