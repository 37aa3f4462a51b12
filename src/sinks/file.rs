//! The `file` sink: NDJSON appended to a file, synced to disk before acknowledging (a
//! named pipe or device is flushed only).

use std::fs::OpenOptions;
use std::io::{self, BufWriter};
use std::path::Path;

use tokio::sync::mpsc;

use super::{ndjson, SinkBatch};
use crate::metrics::Metrics;
use crate::record::Format;

pub fn run(
    path: &Path,
    formats: &[Format],
    input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    // Pipes and devices cannot be synced; flushing is all there is for them.
    let regular = file.metadata()?.is_file();
    let out = BufWriter::with_capacity(1 << 16, file);
    ndjson::run(out, formats, input, metrics, |w| {
        if regular {
            w.get_ref().sync_data()
        } else {
            Ok(())
        }
    })
}
