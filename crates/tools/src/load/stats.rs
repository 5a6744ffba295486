//! The load generator's live numbers: counters and a latency histogram that each connection
//! adds its share to a few times a second, and the one-line progress report built from them.
//!
//! Connections count locally ([`Tally`]) and publish in bulk, so the hot loop touches no shared
//! cache line per event. Must not decide pass or fail (see `report.rs`).

use crate::units::human;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latencies are recorded in nanoseconds, from 1 ns to an hour, to 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, 3 digits <= 5):
    // this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid constant bounds")
}

macro_rules! tallies {
    ($($field:ident),* $(,)?) => {
        /// Totals across connections since the start.
        #[derive(Debug, Default)]
        pub struct Counts {
            $(pub $field: AtomicU64,)*
        }

        /// A plain copy of [`Counts`].
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
        pub struct Snapshot {
            $(pub $field: u64,)*
        }

        impl Counts {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }

        impl Tally {
            fn publish_counts(&mut self, to: &Counts) {
                $(
                    if self.counts.$field != 0 {
                        to.$field.fetch_add(self.counts.$field, Ordering::Relaxed);
                        self.counts.$field = 0;
                    }
                )*
            }
        }
    };
}

tallies!(
    sent,
    answered,
    pass,
    pass_modified,
    handle,
    bounce,
    drop,
    bad_request,
    // Error iqs other than bad-request.
    iq_error,
    // Mismatches: each one fails the run.
    unknown_id,
    duplicate,
    misrouted,
    malformed,
    // Requests from the gateway (pings) we answered.
    requests,
);

impl Snapshot {
    pub fn mismatches(&self) -> u64 {
        self.unknown_id + self.duplicate + self.misrouted + self.malformed
    }
}

/// What every connection publishes into.
pub struct Live {
    pub counts: Counts,
    pub latency: Mutex<Histogram<u64>>,
    /// The first few mismatch descriptions, for the failure message.
    pub notes: Mutex<Vec<String>>,
}

/// How many mismatch descriptions are kept.
pub const MAX_NOTES: usize = 10;

impl Default for Live {
    fn default() -> Self {
        Live {
            counts: Counts::default(),
            latency: Mutex::new(new_histogram()),
            notes: Mutex::new(Vec::new()),
        }
    }
}

impl Live {
    pub fn note(&self, text: String) {
        if let Ok(mut n) = self.notes.lock() {
            if n.len() < MAX_NOTES {
                n.push(text);
            }
        }
    }

    /// The latency histogram so far (a copy).
    pub fn latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_histogram())
    }
}

/// One connection's counts and latencies since its last publish.
pub struct Tally {
    pub counts: Snapshot,
    pub latency: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            counts: Snapshot::default(),
            latency: new_histogram(),
        }
    }
}

impl Tally {
    /// Records one latency in nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        // Out-of-range values saturate rather than fail: an hour-long stall is still counted.
        self.latency.saturating_record(ns.max(1));
    }

    /// Adds everything to `live` and starts over.
    pub fn publish(&mut self, live: &Live) {
        self.publish_counts(&live.counts);
        if !self.latency.is_empty() {
            if let Ok(mut h) = live.latency.lock() {
                // Same bounds on both sides: adding cannot fail.
                let _ = h.add(&self.latency);
            }
            self.latency.reset();
        }
    }
}

/// The progress line printed each second.
pub fn progress_line(
    elapsed: Duration,
    now: &Snapshot,
    before: &Snapshot,
    interval: Duration,
    p99: Option<Duration>,
) -> String {
    let per_s = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / interval.as_secs_f64().max(1e-9);
    format!(
        "load {:>5.0}s | sent {} ({:.0}/s) | answered {} ({:.0}/s) | in flight {} | p99 {} | pass {} handle {} bounce {} drop {} | bad-request {} errors {} | mismatches {}",
        elapsed.as_secs_f64(),
        now.sent,
        per_s(now.sent, before.sent),
        now.answered,
        per_s(now.answered, before.answered),
        now.sent.saturating_sub(now.answered),
        p99.map_or_else(|| "-".to_string(), human),
        now.pass + now.pass_modified,
        now.handle,
        now.bounce,
        now.drop,
        now.bad_request,
        now.iq_error,
        now.mismatches(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_publish_into_live() {
        let live = Live::default();
        let mut t = Tally::default();
        t.counts.sent = 10;
        t.counts.answered = 9;
        t.counts.pass = 9;
        t.counts.duplicate = 1;
        for ns in [1_000, 2_000, 3_000_000] {
            t.record(ns);
        }
        t.publish(&live);
        assert_eq!(t.counts, Snapshot::default());
        assert!(t.latency.is_empty());
        let s = live.counts.snapshot();
        assert_eq!((s.sent, s.answered, s.mismatches()), (10, 9, 1));
        let h = live.latency();
        assert_eq!(h.len(), 3);
        assert!(h.max() >= 2_990_000);
        let line = progress_line(
            Duration::from_secs(2),
            &s,
            &Snapshot::default(),
            Duration::from_secs(1),
            Some(Duration::from_micros(1500)),
        );
        assert!(
            line.contains("sent 10 (10/s)")
                && line.contains("in flight 1")
                && line.contains("p99 1.50ms")
                && line.contains("mismatches 1"),
            "{line}"
        );
        for i in 0..20 {
            live.note(format!("n{i}"));
        }
        assert_eq!(live.notes.lock().unwrap().len(), MAX_NOTES);
    }
}
