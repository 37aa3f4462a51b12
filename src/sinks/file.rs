//! The `file` sink: NDJSON appended to a file, synced to disk before acknowledging (a
//! named pipe or device is written only).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::ndjson::{write_lines, Target};

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
    fn write(&mut self, docs: &[Bytes]) -> io::Result<()> {
        self.open()?;
        let len = self.len;
        let file = self.file.as_mut().expect("opened above");
        let written = write_lines(file, docs);
        // Pipes and devices can be neither synced nor cut back; regular files can.
        let written = written.and_then(|()| match len {
            Some(_) => file.sync_data(),
            None => Ok(()),
        });
        match written {
            Ok(()) => {
                let n: usize = docs.iter().map(|d| d.len() + 1).sum();
                self.len = len.map(|l| l + n as u64);
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

/// Appends to `path`, creating it and its folder on the first write.
pub fn appender(path: &Path) -> impl Target {
    Appender {
        path: path.to_path_buf(),
        file: None,
        len: None,
    }
}
