//! Newline-delimited JSON, the service of the stdout and file sinks: one document per
//! line, a request is one write of many lines.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::driver::{Called, Outcome, Service, Settings};
use super::retry::Trouble;
use crate::record::{Output, Record};

/// Where the lines go: `write` puts every line down durably, or leaves nothing of them
/// behind where it can (a file is cut back to where the write began).
pub trait Target: Send + 'static {
    fn write(&mut self, lines: &[Vec<u8>]) -> io::Result<()>;
    fn describe(&self) -> String;
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
    type Doc = Vec<u8>;
    const REJECTED: &'static str = "sink_rejected";

    fn encode(&self, _record: &Record, output: &Output) -> Vec<u8> {
        let mut line = Vec::with_capacity(output.body.len() + 1);
        line.extend_from_slice(&output.body);
        line.push(b'\n');
        line
    }

    async fn call(self: Arc<Self>, docs: Vec<Vec<u8>>) -> Called<Vec<u8>> {
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
