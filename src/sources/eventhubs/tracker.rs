//! Which position of one partition may be checkpointed.
//!
//! Events are handed to the pipeline in sequence order, but the sinks settle them out of
//! order. The checkpoint may only move to the highest event below which *every* event
//! was settled; anything above a gap must be read again after a restart. The tracker
//! also drops re-deliveries: after a link re-attach the client library replays from its
//! original start filter, so a sequence number at or below the last one seen on this
//! receiver is a replay, never a new event.

use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// A new event: it is now in flight and must be settled.
    New,
    /// Seen before on this receiver: drop it.
    Replay,
}

#[derive(Debug)]
struct InFlight<T> {
    sequence_number: i64,
    event: T,
    settled: bool,
}

/// Tracks the events of one receiver; `T` is the event itself, kept until it is settled
/// so that it can be re-sent and, once it is the highest settled one, checkpointed.
#[derive(Debug)]
pub struct Tracker<T> {
    in_flight: VecDeque<InFlight<T>>,
    last_seen: Option<i64>,
    settled: Option<(i64, T)>,
    checkpointed: Option<i64>,
    checkpointed_at: Option<Instant>,
}

impl<T> Tracker<T> {
    /// A tracker for a receiver that starts after `checkpoint` (if any).
    pub fn starting_after(checkpoint: Option<i64>) -> Self {
        Tracker {
            in_flight: VecDeque::new(),
            last_seen: checkpoint,
            settled: None,
            checkpointed: checkpoint,
            checkpointed_at: None,
        }
    }

    pub fn admit(&mut self, sequence_number: i64, event: T) -> Admit {
        if self.last_seen.is_some_and(|last| sequence_number <= last) {
            return Admit::Replay;
        }
        self.last_seen = Some(sequence_number);
        self.in_flight.push_back(InFlight {
            sequence_number,
            event,
            settled: false,
        });
        Admit::New
    }

    /// An event still in flight, to send again after its delivery failed.
    pub fn get(&self, sequence_number: i64) -> Option<&T> {
        self.position(sequence_number)
            .map(|i| &self.in_flight[i].event)
    }

    fn position(&self, sequence_number: i64) -> Option<usize> {
        self.in_flight
            .binary_search_by_key(&sequence_number, |e| e.sequence_number)
            .ok()
    }

    /// Mark one event settled (delivered, or dead-lettered on purpose).
    pub fn settle(&mut self, sequence_number: i64) {
        if let Some(i) = self.position(sequence_number) {
            self.in_flight[i].settled = true;
        }
        while self.in_flight.front().is_some_and(|e| e.settled) {
            if let Some(done) = self.in_flight.pop_front() {
                self.settled = Some((done.sequence_number, done.event));
            }
        }
    }

    /// Events handed out and not yet settled, gaps included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The event to checkpoint, when the checkpoint can move past the stored one.
    pub fn due(&self) -> Option<(i64, &T)> {
        self.settled
            .as_ref()
            .filter(|(seq, _)| self.checkpointed.is_none_or(|c| *seq > c))
            .map(|(seq, event)| (*seq, event))
    }

    pub fn checkpointed(&mut self, sequence_number: i64) {
        self.checkpointed = Some(sequence_number);
        self.checkpointed_at = Some(Instant::now());
    }

    /// Events received on this receiver and not covered by the stored checkpoint.
    pub fn lag_events(&self) -> u64 {
        match (self.last_seen, self.checkpointed) {
            (Some(seen), Some(done)) => u64::try_from(seen - done).unwrap_or(0),
            (Some(_), None) => self.in_flight.len() as u64 + u64::from(self.settled.is_some()),
            _ => 0,
        }
    }

    /// Seconds since the checkpoint last moved, while events wait behind it.
    pub fn lag_seconds(&self, started: Instant) -> u64 {
        if self.lag_events() == 0 {
            return 0;
        }
        self.checkpointed_at.unwrap_or(started).elapsed().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(t: &mut Tracker<String>, seq: i64) -> Admit {
        t.admit(seq, format!("offset {}", seq * 100))
    }

    fn at(seq: i64) -> Option<(i64, String)> {
        Some((seq, format!("offset {}", seq * 100)))
    }

    fn due(t: &Tracker<String>) -> Option<(i64, String)> {
        t.due().map(|(s, o)| (s, o.clone()))
    }

    #[test]
    fn checkpoint_waits_for_the_lowest_unsettled_event() {
        let mut t: Tracker<String> = Tracker::starting_after(None);
        for s in 0..5 {
            assert_eq!(admit(&mut t, s), Admit::New);
        }
        t.settle(1);
        t.settle(3);
        assert_eq!(due(&t), None, "event 0 is still in flight");
        t.settle(0);
        assert_eq!(due(&t), at(1));
        t.checkpointed(1);
        assert_eq!(due(&t), None);
        t.settle(2);
        assert_eq!(due(&t), at(3), "2 fills the gap below the settled 3");
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.lag_events(), 3);
    }

    #[test]
    fn replays_at_or_below_the_last_seen_are_dropped() {
        let mut t: Tracker<String> = Tracker::starting_after(Some(9));
        assert_eq!(
            admit(&mut t, 9),
            Admit::Replay,
            "the checkpointed event itself"
        );
        assert_eq!(admit(&mut t, 10), Admit::New);
        assert_eq!(admit(&mut t, 11), Admit::New);
        assert_eq!(admit(&mut t, 10), Admit::Replay);
        assert_eq!(admit(&mut t, 11), Admit::Replay);
        assert_eq!(admit(&mut t, 12), Admit::New);
        assert_eq!(t.in_flight(), 3);
    }

    #[test]
    fn nothing_is_due_before_anything_settles() {
        let mut t: Tracker<String> = Tracker::starting_after(Some(4));
        admit(&mut t, 5);
        assert_eq!(due(&t), None);
        t.settle(5);
        assert_eq!(due(&t), at(5));
    }
}
