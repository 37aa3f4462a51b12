//! Newline-delimited JSON, the service of the stdout and file sinks: one document per
//! line, a request is one write of many lines.

use std::io::{self, IoSlice, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::driver::{Called, Outcome, Service, Settings};
use super::retry::Trouble;
use crate::record::{Output, Record};

/// Where the lines go: `write` puts every document down durably, each on a line of its
/// own, or leaves nothing of them behind where it can (a file is cut back to where the
/// write began).
pub trait Target: Send + 'static {
    fn write(&mut self, docs: &[Bytes]) -> io::Result<()>;
    fn describe(&self) -> String;
}

/// Lines of one `writev` call: the documents and their newlines are handed to the kernel
/// as they are, so a request is a few system calls and no copy (1,024 is Linux's
/// `IOV_MAX`).
const LINES_PER_CALL: usize = 512;

/// Writes each document followed by a newline.
pub fn write_lines(out: &mut impl Write, docs: &[Bytes]) -> io::Result<()> {
    for chunk in docs.chunks(LINES_PER_CALL) {
        let mut slices: Vec<IoSlice> = chunk
            .iter()
            .flat_map(|d| [IoSlice::new(d), IoSlice::new(b"\n")])
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match out.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    out.flush()
}

/// Lines are written by one request at a time, so they land in the order they came.
pub fn settings() -> Settings {
    Settings {
        max_events: 10_000,
        max_bytes: 4 << 20,
        linger: Duration::ZERO,
        max_in_flight: 1,
        max_retry_delay: Duration::from_secs(5),
    }
}

pub struct Lines<T> {
    target: Arc<Mutex<T>>,
}

impl<T: Target> Lines<T> {
    pub fn new(target: T) -> Self {
        Lines {
            target: Arc::new(Mutex::new(target)),
        }
    }
}

impl<T: Target> Service for Lines<T> {
    type Doc = Bytes;
    const REJECTED: &'static str = "sink_rejected";

    fn encode(&self, _record: &Record, output: &Output) -> Bytes {
        output.body.clone()
    }

    async fn call(self: Arc<Self>, docs: Vec<Bytes>) -> Called<Bytes> {
        let target = Arc::clone(&self.target);
        // Writes and syncs block: they run off the async workers.
        let written = tokio::task::spawn_blocking(move || {
            let mut target = match target.lock() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            let result = target
                .write(&docs)
                .map_err(|e| format!("cannot write to {}: {e}", target.describe()));
            (docs, result)
        })
        .await;
        Called::Done(match written {
            Ok((_, Ok(()))) => Outcome::Delivered,
            Ok((docs, Err(reason))) => Outcome::Again(docs, Trouble::Fault(reason)),
            Err(e) => {
                tracing::error!(error = %e, "a write to an NDJSON sink panicked; its records stay unacknowledged");
                Outcome::Released
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that takes at most a few bytes a call, and is interrupted every
    /// other call, the way a pipe near full or a signal can make `writev` return.
    struct Trickle {
        taken: Vec<u8>,
        calls: usize,
        per_call: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % 2 == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let mut room = self.per_call;
            for b in bufs {
                let n = b.len().min(room);
                self.taken.extend_from_slice(&b[..n]);
                room -= n;
            }
            Ok(self.per_call - room)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_document_lands_on_its_own_line_through_short_and_interrupted_writes() {
        let docs: Vec<Bytes> = (0..LINES_PER_CALL * 2 + 7)
            .map(|i| Bytes::from(format!("{{\"n\":{i}}}")))
            .collect();
        let mut out = Trickle {
            taken: Vec::new(),
            calls: 0,
            per_call: 5,
        };
        write_lines(&mut out, &docs).unwrap();
        let want: String = docs
            .iter()
            .map(|d| format!("{}\n", std::str::from_utf8(d).unwrap()))
            .collect();
        assert_eq!(String::from_utf8(out.taken).unwrap(), want);
    }

    #[test]
    fn a_destination_that_takes_nothing_is_an_error_not_a_loop() {
        let mut out = Trickle {
            taken: Vec::new(),
            calls: 0,
            per_call: 0,
        };
        let e = write_lines(&mut out, &[Bytes::from_static(b"{}")]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
        assert_eq!(out.calls, 1);
    }
}
