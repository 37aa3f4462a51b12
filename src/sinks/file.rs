//! The `file` sink: NDJSON appended to a file, synced to disk before acknowledging (a
//! named pipe or device is written only).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::ndjson::{self, Target};
use super::SinkBatch;
use crate::metrics::Metrics;
use crate::record::Format;
use crate::supervisor::SinkHealth;

struct Appender {
    path: PathBuf,
    file: Option<File>,
    /// Length of what was written whole, for regular files: a failed batch is cut back
    /// to it, so a half-written line never stays in front of the retry.
    len: Option<u64>,
}

impl Appender {
    fn open(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let meta = file.metadata()?;
            self.len = meta.is_file().then_some(meta.len());
            self.file = Some(file);
        }
        Ok(())
    }
}

impl Target for Appender {
    fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        self.open()?;
        let len = self.len;
        let file = self.file.as_mut().expect("opened above");
        // Pipes and devices can be neither synced nor cut back; regular files can.
        let written = file.write_all(batch).and_then(|()| match len {
            Some(_) => file.sync_data(),
            None => Ok(()),
        });
        match written {
            Ok(()) => {
                self.len = len.map(|l| l + batch.len() as u64);
                Ok(())
            }
            Err(e) => {
                if let Some(l) = len {
                    let _ = file.set_len(l);
                }
                self.file = None;
                Err(e)
            }
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

pub fn run(
    path: &Path,
    formats: &[Format],
    input: mpsc::Receiver<SinkBatch>,
    metrics: &Metrics,
    health: &SinkHealth,
) {
    let target = Appender {
        path: path.to_path_buf(),
        file: None,
        len: None,
    };
    ndjson::run(
        target,
        formats,
        input,
        metrics,
        health,
        Duration::from_secs(5),
    );
}
