//! How every sink retries: jittered exponential backoff between tries, and the
//! supervisor told each time whether the trouble is transient or a fault.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::metrics::Metrics;
use crate::supervisor::SinkHealth;

/// How one try of a sink's request ended.
pub enum Attempt<T> {
    Done(T),
    /// Transient (broker away, HTTP 5xx or 429, timeout): retried, the process stays ready.
    Retry(String),
    /// The sink cannot work as configured (credentials, missing topic, unwritable path):
    /// retried, intake paused, and the run ends if it lasts.
    Fault(String),
}

/// Waits from 100 ms up to `max`, with full jitter, without end.
pub fn backoff(max: Duration) -> impl Iterator<Item = Duration> + Send {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(max.max(Duration::from_millis(100)))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The trouble one try ran into.
pub enum Trouble {
    Retry(String),
    Fault(String),
}

/// The retry state of one piece of work: backoff, and whether it ran into trouble.
pub struct Retrier<'a> {
    health: &'a SinkHealth,
    metrics: &'a Metrics,
    waits: Box<dyn Iterator<Item = Duration> + Send>,
    max_delay: Duration,
    troubled: bool,
}

impl<'a> Retrier<'a> {
    pub fn new(health: &'a SinkHealth, metrics: &'a Metrics, max_delay: Duration) -> Self {
        Retrier {
            health,
            metrics,
            waits: Box::new(backoff(max_delay)),
            max_delay,
            troubled: false,
        }
    }

    /// Tell the supervisor and count it; the caller then waits [`Retrier::next_wait`].
    fn report(&mut self, trouble: Trouble) {
        let name = self.health.name();
        match trouble {
            Trouble::Retry(reason) => {
                self.metrics.count_labeled("sink_retries", name, 1);
                tracing::debug!(sink = %name, %reason, "retrying");
                self.health.degraded(&reason);
            }
            Trouble::Fault(reason) => {
                self.metrics.count_labeled("sink_faults", name, 1);
                self.health.fault(&reason);
            }
        }
        self.troubled = true;
    }

    fn next_wait(&mut self) -> Duration {
        self.waits.next().unwrap_or(self.max_delay)
    }

    /// Report `trouble` and wait before the next try; false when the supervisor gave up.
    pub async fn after(&mut self, trouble: Trouble) -> bool {
        self.report(trouble);
        let wait = self.next_wait();
        self.health.pause(wait).await
    }

    /// The work went through. Only work that had trouble clears it: a request that went
    /// through on another topic says nothing about the one that failed.
    pub fn succeeded(&mut self) {
        if std::mem::take(&mut self.troubled) {
            self.health.ok();
        }
    }

    pub fn given_up(&self) -> bool {
        self.health.given_up()
    }
}

/// Run `attempt` until it is done. `None` when the supervisor gave up first: the caller
/// releases its work unacknowledged.
pub async fn until_done<T, F, Fut>(
    health: &SinkHealth,
    metrics: &Metrics,
    max_delay: Duration,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let mut retrier = Retrier::new(health, metrics, max_delay);
    loop {
        if retrier.given_up() {
            return None;
        }
        let trouble = match attempt().await {
            Attempt::Done(value) => {
                retrier.succeeded();
                return Some(value);
            }
            Attempt::Retry(reason) => Trouble::Retry(reason),
            Attempt::Fault(reason) => Trouble::Fault(reason),
        };
        if !retrier.after(trouble).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::admin::Health;
    use crate::supervisor::Supervisor;

    #[tokio::test(start_paused = true)]
    async fn a_fault_then_success_clears_the_fault_and_returns_the_value() {
        let sup = Supervisor::new(Arc::new(Health::default()));
        let sink = sup.sink("s");
        let metrics = Metrics::default();
        let tries = AtomicU32::new(0);
        let out = until_done(&sink, &metrics, Duration::from_secs(1), || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 => Attempt::Fault("token refused".into()),
                1 => {
                    assert!(!sup.intake().is_open(), "paused while faulted");
                    Attempt::Retry("HTTP 503".into())
                }
                _ => Attempt::Done(7),
            }
        })
        .await;
        assert_eq!(out, Some(7));
        assert!(sup.intake().is_open());
        assert!(sup.faults().is_empty());
        assert_eq!(metrics.labeled("sink_faults", "s"), 1);
        assert_eq!(metrics.labeled("sink_retries", "s"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_releases_the_work() {
        let sup = Supervisor::new(Arc::new(Health::default()));
        let sink = sup.sink("s");
        let metrics = Metrics::default();
        let giver = Arc::clone(&sup);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            giver.give_up();
        });
        let out: Option<()> = until_done(&sink, &metrics, Duration::from_secs(5), || async {
            Attempt::Fault("missing topic".into())
        })
        .await;
        assert_eq!(out, None);
    }
}
