//! Per-event timers without one runtime timer per event.
//!
//! Every event timer on a shard has one of a handful of durations (the event timeout, mostly),
//! and `now` only moves forward, so the deadlines of one duration arrive already sorted: each
//! duration gets a FIFO lane, arming is a push to its lane's back, expiry pops from fronts, and
//! the next deadline is the smallest lane front. Cancelling is lazy (an entry whose reference
//! went stale is skipped when it expires), and every arm also drops a few stale entries from the
//! front of its lane: most events finish long before their timer, so the oldest entries are
//! nearly always stale and the lanes stay short without ever pausing for a compaction. Cost per
//! operation is O(1) and does not grow with the number of pending events.
//!
//! An entry is 16 bytes: its deadline as nanoseconds since the first instant armed (the lanes'
//! base), and the event's reference.
//!
//! Owns deadlines only; never reads a clock (`now` is a parameter) and never wakes anything.

use super::slots::SlotRef;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Lane {
    duration: Duration,
    /// Deadlines in nanoseconds since the base, and whose they are.
    entries: VecDeque<(u64, SlotRef)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    /// The first instant armed; deadlines count from it (an earlier one counts as it).
    base: Option<Instant>,
    lanes: Vec<Lane>,
}

impl Deadlines {
    fn nanos(base: Instant, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(&self, nanos: u64) -> Option<Instant> {
        Some(self.base? + Duration::from_nanos(nanos))
    }

    /// Arms a timer for `r` at `now + duration`.
    pub(crate) fn arm(&mut self, now: Instant, duration: Duration, r: SlotRef) -> Instant {
        let base = *self.base.get_or_insert(now);
        let deadline = Self::nanos(base, now + duration);
        let lane = match self.lanes.iter().position(|l| l.duration == duration) {
            Some(i) => i,
            None => {
                self.lanes.push(Lane {
                    duration,
                    entries: VecDeque::new(),
                });
                self.lanes.len() - 1
            }
        };
        let entries = &mut self.lanes[lane].entries;
        // A clock that stepped backwards would break the order; clamp to keep it sorted.
        let deadline = entries
            .back()
            .map_or(deadline, |(last, _)| deadline.max(*last));
        entries.push_back((deadline, r));
        base + Duration::from_nanos(deadline)
    }

    /// The earliest deadline, live or stale (a stale one only causes an early, empty wake-up).
    pub(crate) fn next(&self) -> Option<Instant> {
        let nanos = self
            .lanes
            .iter()
            .filter_map(|l| l.entries.front().map(|e| e.0))
            .min()?;
        self.instant(nanos)
    }

    /// Pops the earliest entry due at `now`, if any; the caller checks whether it is current.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<SlotRef> {
        let now = Self::nanos(self.base?, now);
        let lane = self
            .lanes
            .iter_mut()
            .filter(|l| l.entries.front().is_some_and(|e| e.0 <= now))
            .min_by_key(|l| l.entries.front().map(|e| e.0))?;
        lane.entries.pop_front().map(|(_, r)| r)
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.entries.len()).sum()
    }

    /// Drops up to a few stale entries from the front of every lane (`live` says whether a
    /// reference is still armed). Called after each arm, it removes more than arming adds
    /// whenever timers are mostly cancelled, in constant time per call.
    pub(crate) fn trim(&mut self, live: impl Fn(SlotRef) -> bool) {
        for lane in &mut self.lanes {
            for _ in 0..4 {
                match lane.entries.front() {
                    Some(&(_, r)) if !live(r) => {
                        lane.entries.pop_front();
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
// The tests read the clock once for a base instant; the code under test takes time as a parameter.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(slot: u32) -> SlotRef {
        SlotRef {
            slot,
            generation: 0,
        }
    }

    #[test]
    fn fires_in_deadline_order_across_lanes() {
        let t = Instant::now();
        let mut d = Deadlines::default();
        d.arm(t, Duration::from_millis(30), r(1));
        d.arm(t, Duration::from_millis(10), r(2));
        d.arm(
            t + Duration::from_millis(5),
            Duration::from_millis(30),
            r(3),
        );
        assert_eq!(d.next(), Some(t + Duration::from_millis(10)));
        assert_eq!(d.pop_due(t + Duration::from_millis(9)), None);
        assert_eq!(d.pop_due(t + Duration::from_millis(40)), Some(r(2)));
        assert_eq!(d.pop_due(t + Duration::from_millis(40)), Some(r(1)));
        assert_eq!(d.pop_due(t + Duration::from_millis(40)), Some(r(3)));
        assert_eq!(d.pop_due(t + Duration::from_millis(40)), None);
    }

    #[test]
    fn trimming_keeps_lanes_short_when_timers_are_cancelled() {
        let t = Instant::now();
        let mut d = Deadlines::default();
        // Each timer is cancelled right after the next is armed, as when answers come quickly.
        for i in 0..100_000u32 {
            d.arm(t, Duration::from_secs(30), r(i));
            d.trim(|x| x.slot == i);
        }
        assert!(d.len() <= 2, "{} entries left", d.len());
        // A live entry at the front holds back what is behind it, and is never dropped.
        let mut d = Deadlines::default();
        for i in 0..10u32 {
            d.arm(t, Duration::from_secs(30), r(i));
            d.trim(|x| x.slot == 0);
        }
        assert_eq!(d.pop_due(t + Duration::from_secs(30)), Some(r(0)));
    }

    proptest! {
        /// Whatever the arming order and durations, entries come out sorted by deadline and none
        /// is lost.
        #[test]
        fn never_out_of_order(ops in proptest::collection::vec((0u64..50, 0usize..3), 1..200)) {
            let t = Instant::now();
            let durations = [Duration::from_millis(10), Duration::from_millis(25), Duration::from_millis(40)];
            let mut d = Deadlines::default();
            let mut now = t;
            let mut deadline_of = crate::policy::DetHashMap::default();
            for (i, (advance, lane)) in ops.iter().enumerate() {
                now += Duration::from_millis(*advance);
                deadline_of.insert(i as u32, d.arm(now, durations[*lane], r(i as u32)));
            }
            let mut fired = Vec::new();
            while let Some(x) = d.pop_due(now + Duration::from_secs(1)) {
                fired.push(deadline_of[&x.slot]);
            }
            prop_assert_eq!(fired.len(), ops.len());
            prop_assert!(fired.windows(2).all(|w| w[0] <= w[1]));
        }
    }
}
