//! The byte budget of documents between the transform stage and the sinks.
//!
//! The channels there are bounded by batches, and a batch's size follows its records: a
//! thousand 6 KB records of `both` weigh as much as a thousand 700-byte ones of `ecs`.
//! The budget bounds the bytes as well. A transform thread takes a batch's bytes before
//! handing it on and waits while the budget is spent; the bytes come back once every
//! sink has taken the batch's documents into its own bounded requests.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::record::Record;

/// What a record keeps alive besides its documents' text: the struct, its id, its tags.
const RECORD_OVERHEAD: usize = 256;

/// The pipeline's budget, shared by its transform threads.
#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    /// The largest amount one batch may take: the whole budget.
    total: u32,
    metrics: Arc<Metrics>,
}

/// Bytes taken from the budget, given back when dropped.
#[derive(Default)]
pub struct Held {
    permit: Option<(OwnedSemaphorePermit, Arc<Metrics>)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((permit, metrics)) = self.permit.take() {
            metrics
                .bytes_in_flight
                .fetch_sub(permit.num_permits() as u64, Ordering::Relaxed);
        }
    }
}

impl Budget {
    /// A budget of `bytes`; at most `u32::MAX`, the most one wait can take.
    pub fn new(bytes: u64, metrics: Arc<Metrics>) -> Self {
        let total = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        Budget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            metrics,
        }
    }

    /// Take what `records` weigh, blocking this (non-async) thread until it is free. A
    /// batch heavier than the whole budget waits for all of it, so it still goes, alone.
    pub fn take_blocking(&self, records: &[Record]) -> Held {
        let want = u32::try_from(weight(records))
            .unwrap_or(u32::MAX)
            .min(self.total);
        let acquire = Arc::clone(&self.permits).acquire_many_owned(want);
        // The semaphore is never closed, so the wait ends only with the permits.
        let Ok(permit) = futures::executor::block_on(acquire) else {
            return Held::default();
        };
        self.metrics
            .bytes_in_flight
            .fetch_add(u64::from(want), Ordering::Relaxed);
        Held {
            permit: Some((permit, Arc::clone(&self.metrics))),
        }
    }
}

/// The bytes `records` hold: their documents' text and a fixed share for the rest.
fn weight(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| RECORD_OVERHEAD + r.outputs.iter().map(|o| o.body.len()).sum::<usize>())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Origin;

    fn record(text_bytes: usize) -> Record {
        Record::test(
            "r",
            Origin::Inline { name: "t".into() },
            Some(vec![b'x'; text_bytes].into()),
        )
    }

    #[test]
    fn a_batch_waits_until_earlier_ones_give_their_bytes_back() {
        let metrics = Arc::new(Metrics::default());
        let budget = Budget::new(3 * (RECORD_OVERHEAD as u64 + 1000), Arc::clone(&metrics));
        let first = budget.take_blocking(&[record(1000), record(1000)]);
        assert_eq!(
            Metrics::get(&metrics.bytes_in_flight),
            2 * (RECORD_OVERHEAD as u64 + 1000)
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = {
            let budget = budget.clone();
            std::thread::spawn(move || {
                let held = budget.take_blocking(&[record(1000), record(1000)]);
                tx.send(()).unwrap();
                held
            })
        };
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second batch went while the first still held the budget"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second batch goes once the first gave its bytes back");
        drop(waiting.join().unwrap());
        assert_eq!(Metrics::get(&metrics.bytes_in_flight), 0);
    }

    #[test]
    fn a_batch_heavier_than_the_budget_takes_all_of_it_and_goes() {
        let metrics = Arc::new(Metrics::default());
        let budget = Budget::new(1000, Arc::clone(&metrics));
        let held = budget.take_blocking(&[record(5000)]);
        assert_eq!(Metrics::get(&metrics.bytes_in_flight), 1000);
        drop(held);
        assert_eq!(Metrics::get(&metrics.bytes_in_flight), 0);
    }
}
