//! How fast requests may go: configured caps (events/s, bytes/s) through `governor`, and
//! an additive-increase / multiplicative-decrease request rate that busy replies lower and
//! successes raise back. Until a busy reply, and again once the rate is back at
//! [`CEILING`], requests are not paced at all: `max_in_flight_requests` bounds them.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::metrics::Metrics;

/// The request rate the first busy reply halves, and at which pacing ends again. It is not
/// a cap on a collector that has not been busy: as one, it held the sink to 200 requests a
/// second, 100,000 events a second in batches of 500, a third of what the transform fed
/// it (BENCHMARKS.md).
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
            if a.rate >= CEILING {
                a.next = now;
                now
            } else {
                let at = a.next.max(now);
                a.next = at + Duration::from_secs_f64(1.0 / a.rate);
                at
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(m: &Metrics) -> u64 {
        m.named("hec_rate_limiter_waits")
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_not_paced_until_a_busy_reply_nor_after_the_rate_recovers() {
        let (pacer, m) = (Pacer::new(None, None, 500, 1 << 20), Metrics::default());
        let start = tokio::time::Instant::now();
        for _ in 0..1000 {
            pacer.wait(500, 1 << 20, &m).await;
        }
        assert_eq!(waits(&m), 0);
        assert_eq!(start.elapsed(), Duration::ZERO, "no request waited");

        pacer.busy(&m);
        assert_eq!(pacer.rate(), CEILING / 2.0);
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            pacer.wait(500, 1 << 20, &m).await;
        }
        // At 100 requests a second, the eleventh goes 100 ms after the first (the timer
        // wakes on whole milliseconds, late rather than early).
        let paced = start.elapsed();
        assert!(
            (Duration::from_millis(100)..Duration::from_millis(111)).contains(&paced),
            "{paced:?}"
        );
        assert_eq!(waits(&m), 10);

        for _ in 0..100 {
            pacer.success(&m);
        }
        assert_eq!(pacer.rate(), CEILING);
        assert_eq!(m.named("hec_rate_recovered"), 1);
        let start = tokio::time::Instant::now();
        for _ in 0..1000 {
            pacer.wait(500, 1 << 20, &m).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(waits(&m), 10);
    }

    #[tokio::test]
    async fn a_configured_event_cap_still_holds_without_a_busy_reply() {
        let (pacer, m) = (
            Pacer::new(Some(1000), None, 500, 1 << 20),
            Metrics::default(),
        );
        for _ in 0..4 {
            pacer.wait(500, 100, &m).await;
        }
        // A burst of 1,000 events goes at once; each 500 after it waits its half second
        // (governor keeps its own clock, so this test takes a second).
        assert_eq!(waits(&m), 2);
    }
}
