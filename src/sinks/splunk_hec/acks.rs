//! Indexer acknowledgement: ack ids waiting for `true`, polled on the channel that sent
//! them. Splunk forgets an id once it has answered `true`, so the first `true` is final.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::reply::AckReply;
use crate::metrics::Metrics;

#[derive(Default)]
pub struct AckTracker {
    pending: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl AckTracker {
    /// Wait for `id`'s acknowledgement.
    pub fn register(&self, id: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        rx
    }

    /// Stop waiting for `id` (its request is being resent).
    pub fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }

    fn ids(&self) -> Vec<u64> {
        self.pending
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    fn acknowledged(&self, id: u64) {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

/// What the poller needs to reach the collector.
pub struct AckPoll {
    pub client: reqwest::Client,
    pub url: String,
    pub token: reqwest::header::HeaderValue,
    pub channel: String,
    pub interval: Duration,
}

/// Poll until `stop`.
pub async fn poll(
    tracker: Arc<AckTracker>,
    how: AckPoll,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(how.interval) => {}
            _ = stop.changed() => return,
        }
        let ids = tracker.ids();
        if ids.is_empty() {
            continue;
        }
        let query = serde_json::json!({ "acks": ids }).to_string();
        metrics.count("hec_ack_polls", 1);
        metrics.count("hec_ack_poll_bytes", query.len() as u64);
        let sent = how
            .client
            .post(&how.url)
            .header(reqwest::header::AUTHORIZATION, how.token.clone())
            .header("X-Splunk-Request-Channel", &how.channel)
            .body(query)
            .send()
            .await;
        let reply = match sent {
            Ok(r) if r.status().is_success() => r.text().await.ok(),
            Ok(r) => {
                tracing::warn!(status = %r.status(), "HEC ack poll refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "HEC ack poll failed");
                None
            }
        };
        let Some(parsed) = reply.and_then(|t| serde_json::from_str::<AckReply>(&t).ok()) else {
            continue;
        };
        for (id, done) in parsed.acks {
            if let (true, Ok(id)) = (done, id.parse()) {
                tracker.acknowledged(id);
                metrics.count("hec_acks", 1);
            }
        }
    }
}
