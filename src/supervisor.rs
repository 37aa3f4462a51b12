//! The supervisor: sinks tell it how they are doing, and it decides for the whole run.
//!
//! - A *fault* is a sink that cannot work as configured: a refused token, a missing topic,
//!   an unwritable path. Intake pauses (sources stop receiving), the work already inside
//!   stays held by the sink, which keeps retrying it, and readiness names the sink and the
//!   reason. A fault that lasts `pipeline.sink_fault_timeout_secs` ends the run: the
//!   supervisor gives up, sinks release what they hold unacknowledged, and `run` fails.
//! - A *degraded* sink is going through something transient (a broker away, a busy
//!   collector): it retries with backoff, back-pressure slows intake, and the process
//!   stays ready.
//!
//! Holding work instead of failing it keeps a sink fault from being mistaken for bad
//! input: an SQS message is not received again and again towards its dead-letter queue,
//! an Event Hubs event is not resent to the healthy sinks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::admin::{Health, Reporter};

struct Fault {
    reason: String,
    since: Instant,
}

pub struct Supervisor {
    health: Arc<Health>,
    intake: watch::Sender<bool>,
    faults: Mutex<BTreeMap<String, Fault>>,
    /// Bumped on every change of `faults`, so waiters re-read it.
    changes: watch::Sender<u64>,
    given_up: watch::Sender<bool>,
}

/// The sink and reason of a fault that lasted too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlasted {
    pub sink: String,
    pub reason: String,
}

impl Supervisor {
    pub fn new(health: Arc<Health>) -> Arc<Self> {
        Arc::new(Supervisor {
            health,
            intake: watch::Sender::new(true),
            faults: Mutex::new(BTreeMap::new()),
            changes: watch::Sender::new(0),
            given_up: watch::Sender::new(false),
        })
    }

    /// What a source waits on before taking in more work.
    pub fn intake(&self) -> Intake {
        Intake(self.intake.subscribe())
    }

    /// The handle sink `name` reports through; the sink starts out healthy.
    pub fn sink(self: &Arc<Self>, name: &str) -> SinkHealth {
        let reporter = self.health.reporter(format!("sink.{name}"));
        reporter.ok();
        SinkHealth(Arc::new(SinkShared {
            name: name.to_string(),
            state: AtomicU8::new(OK),
            reporter,
            supervisor: Arc::clone(self),
        }))
    }

    /// Tell every sink to stop retrying and release what it holds, unacknowledged.
    pub fn give_up(&self) {
        self.given_up.send_replace(true);
    }

    pub fn is_given_up(&self) -> bool {
        *self.given_up.borrow()
    }

    /// The faults now standing, by sink.
    #[cfg(test)]
    pub fn faults(&self) -> Vec<(String, String)> {
        self.faults
            .lock()
            .map(|f| {
                f.iter()
                    .map(|(k, v)| (k.clone(), v.reason.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resolves once some sink has been faulted for `limit` without a recovery.
    pub async fn outlasted(&self, limit: Duration) -> Outlasted {
        let mut changes = self.changes.subscribe();
        loop {
            let oldest = self.faults.lock().ok().and_then(|f| {
                f.iter()
                    .min_by_key(|(_, v)| v.since)
                    .map(|(k, v)| (k.clone(), v.reason.clone(), v.since))
            });
            match oldest {
                Some((sink, reason, since)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(since + limit) => {
                            let still = self.faults.lock().ok().is_some_and(|f| {
                                f.get(&sink).is_some_and(|v| v.since == since)
                            });
                            if still {
                                return Outlasted { sink, reason };
                            }
                        }
                        _ = changes.changed() => {}
                    }
                }
                None => {
                    if changes.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    fn set_fault(&self, sink: &str, reason: Option<&str>) {
        let Ok(mut faults) = self.faults.lock() else {
            return;
        };
        match reason {
            Some(reason) => {
                let fault = faults.entry(sink.to_string()).or_insert_with(|| Fault {
                    reason: reason.to_string(),
                    since: Instant::now(),
                });
                fault.reason = reason.to_string();
            }
            None => {
                faults.remove(sink);
            }
        }
        let open = faults.is_empty();
        drop(faults);
        self.intake
            .send_if_modified(|o| std::mem::replace(o, open) != open);
        self.changes.send_modify(|n| *n += 1);
    }
}

const OK: u8 = 0;
const DEGRADED: u8 = 1;
const FAULTED: u8 = 2;

struct SinkShared {
    name: String,
    state: AtomicU8,
    reporter: Reporter,
    supervisor: Arc<Supervisor>,
}

/// One sink's line to the supervisor. Cheap to clone and to call on every request.
#[derive(Clone)]
pub struct SinkHealth(Arc<SinkShared>);

impl SinkHealth {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The sink delivered: whatever was wrong is over.
    pub fn ok(&self) {
        match self.0.state.swap(OK, Ordering::AcqRel) {
            OK => {}
            FAULTED => {
                tracing::info!(sink = %self.0.name, "sink recovered; intake resumes");
                self.0.supervisor.set_fault(&self.0.name, None);
                self.0.reporter.ok();
            }
            _ => self.0.reporter.ok(),
        }
    }

    /// A transient problem: retried, and the process stays ready.
    pub fn degraded(&self, reason: &str) {
        if self.0.state.load(Ordering::Acquire) != FAULTED {
            self.0.state.store(DEGRADED, Ordering::Release);
            self.0.reporter.degraded(reason);
        }
    }

    /// The sink cannot work as configured: intake pauses until it recovers.
    pub fn fault(&self, reason: &str) {
        if self.0.state.swap(FAULTED, Ordering::AcqRel) != FAULTED {
            tracing::error!(sink = %self.0.name, %reason, "sink fault: intake paused; the work inside is held and retried");
        }
        self.0.supervisor.set_fault(&self.0.name, Some(reason));
        self.0.reporter.failed(format!("fault: {reason}"));
    }

    /// True once the supervisor gave up: held work is to be released unacknowledged.
    pub fn given_up(&self) -> bool {
        self.0.supervisor.is_given_up()
    }

    /// Wait `delay` before the next try; false (at once) when the supervisor gives up.
    pub async fn pause(&self, delay: Duration) -> bool {
        let mut given_up = self.0.supervisor.given_up.subscribe();
        let slept = tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = given_up.wait_for(|g| *g) => false,
        };
        slept && !self.given_up()
    }
}

/// A source's view of whether it may take in more work.
#[derive(Clone)]
pub struct Intake(watch::Receiver<bool>);

impl Intake {
    /// Wait while a sink fault has intake paused.
    pub async fn open(&mut self) {
        // A supervisor that is gone pauses nothing.
        let _ = self.0.wait_for(|open| *open).await;
    }

    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(health: &Health) -> bool {
        health.ready().0
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_pauses_intake_until_recovery_and_readiness_names_it() {
        let health = Arc::new(Health::default());
        let sup = Supervisor::new(Arc::clone(&health));
        let sink = sup.sink("splunk");
        let intake = sup.intake();
        assert!(intake.is_open());
        assert!(ready(&health));

        sink.degraded("HTTP 503");
        assert!(
            intake.is_open(),
            "a transient problem does not pause intake"
        );
        assert!(ready(&health));
        assert_eq!(health.ready().1["sink.splunk"], "degraded: HTTP 503");

        sink.fault("the collector refused the token");
        assert!(!intake.is_open());
        assert!(!ready(&health));
        assert_eq!(
            health.ready().1["sink.splunk"],
            "fault: the collector refused the token"
        );
        assert_eq!(
            sup.faults(),
            vec![(
                "splunk".to_string(),
                "the collector refused the token".to_string()
            )]
        );

        sink.ok();
        assert!(intake.is_open());
        assert!(ready(&health));
        assert!(sup.faults().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_outlasts_its_limit_only_without_recovery() {
        let sup = Supervisor::new(Arc::new(Health::default()));
        let sink = sup.sink("kafka");
        let limit = Duration::from_secs(60);

        sink.fault("topic `t` does not exist");
        tokio::time::sleep(Duration::from_secs(59)).await;
        sink.ok();
        let waiting = tokio::time::timeout(Duration::from_secs(120), sup.outlasted(limit)).await;
        assert!(waiting.is_err(), "a recovered fault never outlasts");

        sink.fault("topic `t` does not exist");
        let started = Instant::now();
        let out = sup.outlasted(limit).await;
        assert_eq!(started.elapsed(), limit);
        assert_eq!(out.sink, "kafka");
        assert_eq!(out.reason, "topic `t` does not exist");
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_ends_every_pause_at_once() {
        let sup = Supervisor::new(Arc::new(Health::default()));
        let sink = sup.sink("file");
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.pause(Duration::from_secs(3600)).await }
        });
        tokio::task::yield_now().await;
        sup.give_up();
        assert!(!waiting.await.unwrap());
        assert!(sink.given_up());
        assert!(!sink.pause(Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn intake_waits_while_paused() {
        let sup = Supervisor::new(Arc::new(Health::default()));
        let sink = sup.sink("hec");
        sink.fault("token refused");
        let mut intake = sup.intake();
        let opened = tokio::spawn(async move {
            intake.open().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!opened.is_finished());
        sink.ok();
        tokio::time::timeout(Duration::from_secs(1), opened)
            .await
            .expect("intake opens on recovery")
            .unwrap();
    }
}
