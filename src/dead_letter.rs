//! Dead letters: input that could not become a record, kept with the reason, where it came
//! from and its original bytes, so nothing is ever dropped silently.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::event::{Origin, Position};

/// One piece of input that could not be delivered as a record.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Stable label for counters (`invalid_json`, `wrong_type`, …).
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
    pub origin: Origin,
    pub position: Option<Position>,
    pub bytes: Vec<u8>,
}

impl DeadLetter {
    /// The NDJSON line written for this dead letter.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "kind": self.kind,
            "reason": self.reason,
            "origin": self.origin.to_string(),
        });
        if let Some(p) = self.position {
            v["line"] = json!(p.line);
            v["offset"] = json!(p.offset);
            if let Some(i) = p.index {
                v["index"] = json!(i);
            }
        }
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => v["original"] = json!(text),
            Err(_) => {
                v["original_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&self.bytes))
            }
        }
        v
    }
}

/// Where dead letters go.
pub enum DeadLetterSink {
    File {
        path: PathBuf,
        out: Mutex<BufWriter<File>>,
    },
    Stderr,
}

impl DeadLetterSink {
    pub fn file(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DeadLetterSink::File {
            path: path.to_path_buf(),
            out: Mutex::new(BufWriter::new(file)),
        })
    }

    /// Write and flush a group of dead letters. Only after this returns `Ok` may the input
    /// they came from be acknowledged.
    pub fn write_all(&self, letters: &[DeadLetter]) -> io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        match self {
            DeadLetterSink::File { out, .. } => {
                let mut out = out
                    .lock()
                    .map_err(|_| io::Error::other("dead-letter writer poisoned"))?;
                for l in letters {
                    serde_json::to_writer(&mut *out, &l.to_json())?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
                out.get_ref().sync_data()
            }
            DeadLetterSink::Stderr => {
                let mut err = io::stderr().lock();
                for l in letters {
                    serde_json::to_writer(&mut err, &l.to_json())?;
                    err.write_all(b"\n")?;
                }
                err.flush()
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DeadLetterSink::File { path, .. } => path.display().to_string(),
            DeadLetterSink::Stderr => "stderr".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_utf8_is_base64() {
        let l = DeadLetter {
            kind: "invalid_json",
            reason: "x".into(),
            origin: Origin::Inline { name: "t".into() },
            position: None,
            bytes: vec![0xff, 0xfe],
        };
        assert_eq!(l.to_json()["original_base64"], "//4=");
    }
}
