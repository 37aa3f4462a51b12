//! Indexer acknowledgement: ack ids waiting for `true`, polled on the channel that sent
//! them. Splunk forgets an id once it has answered `true`, so the first `true` is final.
//!
//! While the sink keeps sending, the waiting ids are polled every `ack_poll_interval_ms`,
//! one query for all of them. Once it pauses (a burst ends, an input is drained), they are
//! polled after 50 ms, then at gaps that double with each query up to the interval, and
//! start from 50 ms again only after no id was left waiting. The last records before a
//! pause are then acknowledged upstream when Splunk has indexed them, not at the next
//! tick of a long interval. A Splunk that answers at once is asked at most once per
//! request; one whose acks take seconds gets a handful of extra queries, not a stream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};

use super::reply::AckReply;
use crate::metrics::Metrics;

/// The first gap after the sink pauses, and the tick at which a pause is seen.
const QUICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Waiting {
    ids: HashMap<u64, oneshot::Sender<()>>,
    /// Ids registered so far: when it has not moved for a tick, the sink has paused.
    registered: u64,
}

#[derive(Default)]
pub struct AckTracker {
    waiting: Mutex<Waiting>,
    /// Wakes the poller when the first id comes after none were waiting.
    first: Notify,
}

impl AckTracker {
    /// Wait for `id`'s acknowledgement.
    pub fn register(&self, id: u64) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.ids.insert(id, tx);
            w.registered += 1;
        }
        self.first.notify_one();
        rx
    }

    /// Stop waiting for `id` (its request is being resent).
    pub fn forget(&self, id: u64) {
        if let Ok(mut w) = self.waiting.lock() {
            w.ids.remove(&id);
        }
    }

    /// Whether any id is waiting, and how many were ever registered.
    fn state(&self) -> (bool, u64) {
        self.waiting
            .lock()
            .map(|w| (!w.ids.is_empty(), w.registered))
            .unwrap_or_default()
    }

    fn ids(&self) -> Vec<u64> {
        self.waiting
            .lock()
            .map(|w| w.ids.keys().copied().collect())
            .unwrap_or_default()
    }

    fn acknowledged(&self, id: u64) {
        let tx = self.waiting.lock().ok().and_then(|mut w| w.ids.remove(&id));
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

/// When the next query is due, from what the sink has been doing.
struct Schedule {
    interval: Duration,
    last_poll: Instant,
    /// The gap while the sink is paused: [`QUICK`] once ids wait again after none did,
    /// doubled by each query up to the interval.
    gap: Duration,
    registered: u64,
}

impl Schedule {
    fn new(interval: Duration, now: Instant) -> Self {
        let mut schedule = Schedule {
            interval,
            last_poll: now,
            gap: interval,
            registered: 0,
        };
        schedule.restart(now);
        schedule
    }

    /// Ids wait again after none did: the quick gaps start over from `now`.
    fn restart(&mut self, now: Instant) {
        self.last_poll = now;
        self.gap = QUICK.min(self.interval);
    }

    /// Called on each tick with the count of ids ever registered: is a query due?
    fn due(&mut self, registered: u64, now: Instant) -> bool {
        let sending = registered != self.registered;
        self.registered = registered;
        let gap = if sending { self.interval } else { self.gap };
        if now.duration_since(self.last_poll) < gap {
            return false;
        }
        self.last_poll = now;
        self.gap = (self.gap * 2).min(self.interval);
        true
    }
}

/// Poll until `stop`.
pub async fn poll(
    tracker: Arc<AckTracker>,
    how: AckPoll,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(QUICK.min(how.interval));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut schedule = Schedule::new(how.interval, Instant::now());
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let (any, registered) = tracker.state();
        if !any {
            // Nothing to ask about: sleep until an id comes, not tick by tick.
            tokio::select! {
                _ = tracker.first.notified() => {}
                _ = stop.changed() => return,
            }
            schedule.restart(Instant::now());
            continue;
        }
        if !schedule.due(registered, Instant::now()) {
            continue;
        }
        let query = serde_json::json!({ "acks": tracker.ids() }).to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The ticks (in ms from the start) at which `due` says yes, with ids registered at
    /// the ticks `sending` says.
    fn polls(interval: Duration, until_ms: u64, sending: impl Fn(u64) -> bool) -> Vec<u64> {
        let start = Instant::now();
        let mut schedule = Schedule::new(interval, start);
        let mut registered = 0;
        let mut polls = Vec::new();
        for t in (50..=until_ms).step_by(50) {
            if sending(t) {
                registered += 1;
            }
            if schedule.due(registered, start + ms(t)) {
                polls.push(t);
            }
        }
        polls
    }

    #[test]
    fn a_sink_that_keeps_sending_is_polled_at_the_interval() {
        assert_eq!(polls(ms(1000), 3000, |_| true), vec![1000, 2000, 3000]);
    }

    #[test]
    fn a_pause_is_polled_at_doubling_gaps_up_to_the_interval() {
        // Sending until 500 ms, then paused with ids waiting all along.
        assert_eq!(
            polls(ms(1000), 4000, |t| t <= 500),
            vec![550, 650, 850, 1250, 2050, 3050]
        );
    }

    #[test]
    fn quick_gaps_start_over_only_after_nothing_waited() {
        let start = Instant::now();
        let mut schedule = Schedule::new(ms(1000), start);
        assert!(schedule.due(1, start + ms(1000)));
        assert!(!schedule.due(1, start + ms(1050)));
        assert!(schedule.due(1, start + ms(1100)));
        // The gap is now 200 ms. Nothing waited at 1,150 ms and a new id came: 50 ms again.
        schedule.restart(start + ms(1150));
        assert!(!schedule.due(2, start + ms(1200)));
        assert!(schedule.due(2, start + ms(1250)));
    }

    #[test]
    fn an_interval_shorter_than_the_quick_gap_is_kept() {
        assert_eq!(polls(ms(20), 200, |_| false), vec![50, 100, 150, 200]);
    }
}
