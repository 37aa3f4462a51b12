//! Dead letters: input that could not become a record, kept with the reason, where it came
//! from and its original bytes, so nothing is ever dropped silently.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tokio::sync::{mpsc, oneshot};

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::event::{Origin, Position};
use serde::Deserialize;
use std::path::PathBuf;

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

/// Where dead letters go: one writer thread, fed through a bounded channel. It writes
/// what is queued together and syncs once for all of it, and only then tells each writer
/// its letters are durable; fsync never runs on an async worker, and many small dead
/// letters cost one sync instead of one each.
pub struct DeadLetterSink {
    requests: mpsc::Sender<Request>,
    describe: String,
}

struct Request {
    letters: Vec<DeadLetter>,
    done: oneshot::Sender<io::Result<()>>,
}

enum Target {
    File(BufWriter<File>),
    Stderr,
}

/// Requests waiting for the writer at most; more make their senders wait.
const QUEUE: usize = 1024;
/// Requests written under one sync at most.
const GROUP: usize = 256;

impl DeadLetterSink {
    pub fn file(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Self::start(
            Target::File(BufWriter::new(file)),
            path.display().to_string(),
        )
    }

    /// Dead letters as NDJSON on standard error (`replay`).
    pub fn stderr() -> Self {
        Self::start(Target::Stderr, "stderr".into()).expect("a thread for the dead-letter writer")
    }

    fn start(target: Target, describe: String) -> io::Result<Self> {
        let (requests, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("dead-letters".into())
            .spawn(move || writer(target, rx))?;
        Ok(DeadLetterSink { requests, describe })
    }

    /// Write `letters` and wait until they are durable. Only after this returns `Ok` may
    /// the input they came from be acknowledged.
    pub async fn write(&self, letters: Vec<DeadLetter>) -> io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        self.requests
            .send(Request { letters, done })
            .await
            .map_err(|_| gone())?;
        written.await.map_err(|_| gone())?
    }

    /// [`DeadLetterSink::write`] for blocking threads (the transform workers).
    pub fn write_blocking(&self, letters: Vec<DeadLetter>) -> io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let (done, written) = oneshot::channel();
        self.requests
            .blocking_send(Request { letters, done })
            .map_err(|_| gone())?;
        written.blocking_recv().map_err(|_| gone())?
    }

    pub fn describe(&self) -> String {
        self.describe.clone()
    }
}

fn gone() -> io::Error {
    io::Error::other("the dead-letter writer stopped")
}

fn writer(mut target: Target, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(more) => group.push(more),
                Err(_) => break,
            }
        }
        let result = write_group(&mut target, &group);
        for request in group {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            // A writer that stopped waiting has nothing left to learn.
            let _ = request.done.send(answer);
        }
    }
}

fn write_group(target: &mut Target, group: &[Request]) -> io::Result<()> {
    let letters = group.iter().flat_map(|r| &r.letters);
    match target {
        Target::File(out) => {
            for l in letters {
                serde_json::to_writer(&mut *out, &l.to_json())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            out.get_ref().sync_data()
        }
        Target::Stderr => {
            let mut err = io::stderr().lock();
            for l in letters {
                serde_json::to_writer(&mut err, &l.to_json())?;
                err.write_all(b"\n")?;
            }
            err.flush()
        }
    }
}

/// The `[dead_letter]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// NDJSON file dead letters are appended to.
    pub path: PathBuf,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        DeadLetterConfig {
            path: PathBuf::from("dead-letters.ndjson"),
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

    #[test]
    fn letters_from_many_threads_are_all_written_before_each_write_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dlq.ndjson");
        let sink = std::sync::Arc::new(DeadLetterSink::file(&path).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let sink = std::sync::Arc::clone(&sink);
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let letter = DeadLetter {
                            kind: "invalid_json",
                            reason: format!("thread {t} letter {i}"),
                            origin: Origin::Inline { name: "t".into() },
                            position: None,
                            bytes: b"x".to_vec(),
                        };
                        sink.write_blocking(vec![letter]).unwrap();
                        let text = std::fs::read_to_string(&path).unwrap();
                        assert!(text.contains(&format!("\"thread {t} letter {i}\"")));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 400);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["kind"], "invalid_json");
        }
    }
}
