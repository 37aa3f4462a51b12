//! The `stdout` sink: NDJSON on standard output.

use std::io::{self, Write};
use std::time::Duration;

use tokio::sync::mpsc;

use super::ndjson::{self, Target};
use super::SinkBatch;
use crate::metrics::Metrics;
use crate::record::Format;
use crate::supervisor::SinkHealth;

struct Stdout;

impl Target for Stdout {
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(batch)?;
        out.flush()
    }

    fn describe(&self) -> String {
        "standard output".into()
    }
}

pub fn run(
    formats: &[Format],
    input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
    health: &SinkHealth,
) {
    ndjson::run(
        Stdout,
        formats,
        input,
        metrics,
        health,
        Duration::from_secs(5),
    );
}
