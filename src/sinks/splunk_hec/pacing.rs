//! How fast requests may go: configured caps (events/s, bytes/s) through `governor`, and
//! an additive-increase / multiplicative-decrease request rate that busy replies lower and
//! successes raise back.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics::Metrics;

/// Requests per second when nothing has been busy.
const CEILING: f64 = 200.0;
const FLOOR: f64 = 0.5;

struct Aimd {
    rate: f64,
    next: Instant,
}

pub struct Pacer {
    events: Option<DefaultDirectRateLimiter>,
    bytes: Option<DefaultDirectRateLimiter>,
    aimd: Mutex<Aimd>,
}

fn limiter(per_sec: Option<u32>, burst_at_least: usize) -> Option<DefaultDirectRateLimiter> {
    let rate = NonZeroU32::new(per_sec?)?;
    let burst = NonZeroU32::new(
        u32::try_from(burst_at_least)
            .unwrap_or(u32::MAX)
            .max(rate.get()),
    )?;
    Some(RateLimiter::direct(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Pacer {
    pub fn new(
        events_per_sec: Option<u32>,
        bytes_per_sec: Option<u32>,
        max_events: usize,
        max_bytes: usize,
    ) -> Self {
        Pacer {
            events: limiter(events_per_sec, max_events),
            bytes: limiter(bytes_per_sec, max_bytes),
            aimd: Mutex::new(Aimd {
                rate: CEILING,
                next: Instant::now(),
            }),
        }
    }

    /// Wait until a request of `events` events and `bytes` bytes may go.
    pub async fn wait(&self, events: usize, bytes: usize, metrics: &Metrics) {
        let mut waited = false;
        for (limiter, n) in [(&self.events, events), (&self.bytes, bytes)] {
            if let (Some(l), Some(n)) = (
                limiter,
                NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)),
            ) {
                if l.check_n(n).map(|r| r.is_err()).unwrap_or(false) {
                    waited = true;
                    let _ = l.until_n_ready(n).await;
                }
            }
        }
        let sleep_until = {
            let Ok(mut a) = self.aimd.lock() else { return };
            let now = Instant::now();
            let at = a.next.max(now);
            a.next = at + Duration::from_secs_f64(1.0 / a.rate);
            at
        };
        if sleep_until > Instant::now() {
            waited = true;
            tokio::time::sleep_until(sleep_until.into()).await;
        }
        if waited {
            metrics.count("hec_rate_limiter_waits", 1);
        }
    }

    /// A busy reply: halve the request rate.
    pub fn busy(&self, metrics: &Metrics) {
        if let Ok(mut a) = self.aimd.lock() {
            a.rate = (a.rate / 2.0).max(FLOOR);
            metrics.count("hec_rate_lowered", 1);
        }
    }

    /// A successful reply: raise the rate back by one request per second.
    pub fn success(&self, metrics: &Metrics) {
        if let Ok(mut a) = self.aimd.lock() {
            if a.rate < CEILING {
                a.rate = (a.rate + 1.0).min(CEILING);
                if a.rate >= CEILING {
                    metrics.count("hec_rate_recovered", 1);
                }
            }
        }
    }

    pub fn rate(&self) -> f64 {
        self.aimd.lock().map(|a| a.rate).unwrap_or(CEILING)
    }
}
