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

/// How much of a whole input a dead letter keeps: its first 64 KiB. A poisoned object of a
/// gigabyte must not become a gigabyte in memory and again in the dead-letter file.
pub const INPUT_EXCERPT: usize = 64 << 10;

/// One piece of input that could not be delivered as a record.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Stable label for counters (`invalid_json`, `wrong_type`, …).
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
    pub origin: Origin,
    pub position: Option<Position>,
    /// The bytes, or their beginning when `whole` is set.
    pub bytes: Vec<u8>,
    /// The size and SHA-256 of everything, when `bytes` holds only its beginning.
    pub whole: Option<Whole>,
}

/// What identifies bytes a dead letter keeps only the beginning of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whole {
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl DeadLetter {
    /// A dead letter for a whole input (a file, an object, a message): its first
    /// [`INPUT_EXCERPT`] bytes, and its size and SHA-256 when it is longer.
    pub fn input(kind: &'static str, reason: String, origin: Origin, bytes: &[u8]) -> Self {
        Self::record(kind, reason, origin, None, bytes, INPUT_EXCERPT)
    }

    /// [`DeadLetter::input`] for an input that is not in memory: the file is read again,
    /// its first 64 KiB kept and the rest only hashed.
    pub fn of_file(kind: &'static str, reason: String, origin: Origin, path: &Path) -> Self {
        let excerpt = File::open(path).and_then(|f| excerpt_of(f, INPUT_EXCERPT));
        let (bytes, whole) = excerpt.unwrap_or_default();
        DeadLetter {
            kind,
            reason,
            origin,
            position: None,
            bytes,
            whole,
        }
    }

    /// A dead letter for one record (or document): its bytes up to `cap`
    /// (`limits.max_record_bytes`), and their size and SHA-256 when they are longer.
    pub fn record(
        kind: &'static str,
        reason: String,
        origin: Origin,
        position: Option<Position>,
        bytes: &[u8],
        cap: usize,
    ) -> Self {
        let (kept, whole) = if bytes.len() > cap {
            use sha2::Digest;
            let whole = Whole {
                size: bytes.len() as u64,
                sha256: format!("{:x}", sha2::Sha256::digest(bytes)),
            };
            (&bytes[..cap], Some(whole))
        } else {
            (bytes, None)
        };
        DeadLetter {
            kind,
            reason,
            origin,
            position,
            bytes: kept.to_vec(),
            whole,
        }
    }

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
        // A cut may fall inside a UTF-8 sequence: the excerpt is text up to there.
        let text = match std::str::from_utf8(&self.bytes) {
            Ok(text) => Some(text),
            Err(e) if self.whole.is_some() && e.error_len().is_none() => {
                std::str::from_utf8(&self.bytes[..e.valid_up_to()]).ok()
            }
            Err(_) => None,
        };
        match text {
            Some(text) => v["original"] = json!(text),
            None => {
                v["original_base64"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&self.bytes))
            }
        }
        if let Some(whole) = &self.whole {
            v["truncated"] = json!(true);
            v["size"] = json!(whole.size);
            v["sha256"] = json!(whole.sha256);
        }
        v
    }
}

/// The first `cap` bytes of `input`, and its size and SHA-256 when it is longer.
fn excerpt_of(mut input: impl std::io::Read, cap: usize) -> io::Result<(Vec<u8>, Option<Whole>)> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    let mut head = Vec::with_capacity(cap);
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
        let room = cap.saturating_sub(head.len()).min(n);
        head.extend_from_slice(&buf[..room]);
    }
    let whole = (size > cap as u64).then(|| Whole {
        size,
        sha256: format!("{:x}", hash.finalize()),
    });
    Ok((head, whole))
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
    Stdout,
    Stderr,
}

/// Requests waiting for the writer at most; more make their senders wait.
const QUEUE: usize = 1024;
/// Requests written under one sync at most.
const GROUP: usize = 256;

impl DeadLetterSink {
    /// The destination `[dead_letter]` names: its file, or standard output for `-`.
    pub fn open(config: &DeadLetterConfig) -> io::Result<Self> {
        if config.is_stdout() {
            Self::start(Target::Stdout, "stdout".into())
        } else {
            Self::file(&config.path)
        }
    }

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
        // A pipe or a terminal has no sync: a line is handed on once it is flushed.
        Target::Stdout => write_lines(&mut io::stdout().lock(), letters),
        Target::Stderr => write_lines(&mut io::stderr().lock(), letters),
    }
}

fn write_lines<'a>(
    out: &mut impl Write,
    letters: impl Iterator<Item = &'a DeadLetter>,
) -> io::Result<()> {
    for l in letters {
        serde_json::to_writer(&mut *out, &l.to_json())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The `[dead_letter]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// NDJSON file dead letters are appended to; `-` writes them to standard output, where
    /// a container platform's log collector takes them (logs go to standard error).
    pub path: PathBuf,
}

impl DeadLetterConfig {
    pub fn is_stdout(&self) -> bool {
        self.path.as_os_str() == "-"
    }
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
        let l = DeadLetter::input(
            "invalid_json",
            "x".into(),
            Origin::Inline { name: "t".into() },
            &[0xff, 0xfe],
        );
        assert_eq!(l.to_json()["original_base64"], "//4=");
        assert!(l.to_json().get("sha256").is_none(), "kept whole");
    }

    #[test]
    fn a_large_input_keeps_its_first_64_kib_its_size_and_its_hash() {
        // A two-byte character straddles the cut: the excerpt stays text, up to it.
        let mut bytes = vec![b'a'; INPUT_EXCERPT - 1];
        bytes.extend_from_slice("é".as_bytes());
        bytes.extend(std::iter::repeat_n(b'b', 1 << 20));
        let l = DeadLetter::input(
            "too_large",
            "x".into(),
            Origin::Inline { name: "t".into() },
            &bytes,
        );
        assert_eq!(l.bytes.len(), INPUT_EXCERPT);
        let json = l.to_json();
        assert_eq!(json["original"].as_str().unwrap().len(), INPUT_EXCERPT - 1);
        assert_eq!(json["truncated"], true);
        assert_eq!(json["size"], bytes.len() as u64);
        use sha2::Digest;
        assert_eq!(
            json["sha256"],
            format!("{:x}", sha2::Sha256::digest(&bytes))
        );
        assert!(json.to_string().len() < INPUT_EXCERPT + 1024);
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
                        let letter = DeadLetter::input(
                            "invalid_json",
                            format!("thread {t} letter {i}"),
                            Origin::Inline { name: "t".into() },
                            b"x",
                        );
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
