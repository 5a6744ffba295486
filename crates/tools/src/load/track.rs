//! Which events of one connection still wait for their verdict, and when each was meant to be
//! sent: the check that every event gets exactly one verdict.
//!
//! Sequence numbers are handed out in order, so the outstanding ones live in a window
//! `[base, next)`: a verdict below the window or for a slot already answered is a duplicate,
//! one at or past `next` is for an id never sent. The window slides as its oldest events are
//! answered, so memory follows the oldest unanswered event, not the run's length. Must not
//! read stanzas or clocks (times are numbers the caller chose).

use std::collections::VecDeque;

const ANSWERED: u64 = u64::MAX;

/// What a verdict's id turned out to be.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// An outstanding event, meant to be sent at this time (ns since the start).
    Expected { intended_ns: u64 },
    /// This event already had its verdict.
    Duplicate,
    /// No event with this id was sent.
    Unknown,
}

/// One connection's outstanding events. See the module documentation.
#[derive(Debug, Default)]
pub struct Tracker {
    base: u64,
    /// Intended send time (ns since the start) of events `base..`, or `ANSWERED`.
    slots: VecDeque<u64>,
    outstanding: u64,
}

impl Tracker {
    /// Registers the next event, meant to leave at `intended_ns`; returns its sequence number.
    #[inline]
    pub fn push(&mut self, intended_ns: u64) -> u64 {
        let seq = self.base + self.slots.len() as u64;
        // `ANSWERED` is reserved; a time that large is 584 years into the run.
        self.slots.push_back(intended_ns.min(ANSWERED - 1));
        self.outstanding += 1;
        seq
    }

    /// The sequence number the next [`Tracker::push`] returns.
    pub fn next_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    /// Records the verdict for `seq`.
    #[inline]
    pub fn answer(&mut self, seq: u64) -> Check {
        if seq < self.base {
            return Check::Duplicate;
        }
        let Some(slot) = self.slots.get_mut((seq - self.base) as usize) else {
            return Check::Unknown;
        };
        if *slot == ANSWERED {
            return Check::Duplicate;
        }
        let intended_ns = std::mem::replace(slot, ANSWERED);
        self.outstanding -= 1;
        while self.slots.front() == Some(&ANSWERED) {
            self.slots.pop_front();
            self.base += 1;
        }
        Check::Expected { intended_ns }
    }

    /// Events sent and not answered.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The first `n` unanswered sequence numbers, for the failure message.
    pub fn unanswered(&self, n: usize) -> Vec<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, &t)| t != ANSWERED)
            .map(|(i, _)| self.base + i as u64)
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_verdict_per_event() {
        let mut t = Tracker::default();
        for i in 0..5 {
            assert_eq!(t.push(i * 10), i);
        }
        assert_eq!(t.answer(2), Check::Expected { intended_ns: 20 });
        assert_eq!(t.answer(2), Check::Duplicate);
        assert_eq!(t.answer(0), Check::Expected { intended_ns: 0 });
        // 0 slid out of the window: still a duplicate.
        assert_eq!(t.answer(0), Check::Duplicate);
        assert_eq!(t.answer(5), Check::Unknown);
        assert_eq!(t.answer(u64::MAX), Check::Unknown);
        assert_eq!(t.outstanding(), 3);
        assert_eq!(t.unanswered(10), vec![1, 3, 4]);
        assert_eq!(t.unanswered(1), vec![1]);
        for s in [4, 3, 1] {
            assert!(matches!(t.answer(s), Check::Expected { .. }));
        }
        assert_eq!(t.outstanding(), 0);
        assert!(t.unanswered(10).is_empty());
        assert_eq!(t.next_seq(), 5);
        // The window is empty again: memory does not grow with the run.
        assert!(t.slots.is_empty());
    }
}
