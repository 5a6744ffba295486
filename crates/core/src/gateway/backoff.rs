//! The redial schedule of one dialer: exponential backoff from `reconnect_min`, doubling up
//! to `reconnect_max`, back to the start once a stream served, each delay spread over ±50% of
//! its nominal value so that shards (and gateways) that lost a server together do not redial
//! it in lockstep.
//!
//! Owns the schedule and the jitter's generator. Must not draw randomness itself: the
//! runtime gives each schedule its seed ([`Backoff::new`]); the sleeping is the runtime's.

use std::time::Duration;

/// How a dial attempt ended, as far as the schedule cares.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// It failed, or its stream ended without serving: the next delay doubles.
    Failed,
    /// Its stream served (the server's stream became this shard's link, a router's leg
    /// came up): the schedule starts again from `reconnect_min`.
    Served,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// The nominal delay before the next attempt.
    nominal: Duration,
    /// xorshift64 state; never zero.
    state: u64,
}

impl Backoff {
    /// A schedule starting at `min`, its jitter drawn from `seed` (any value: the runtime's
    /// random bytes).
    pub fn new(min: Duration, seed: u64) -> Backoff {
        Backoff {
            nominal: min,
            state: seed | 1,
        }
    }

    /// An attempt ended: a served one starts the schedule again from `min`.
    pub fn handle_attempt(&mut self, attempt: Attempt, min: Duration) {
        if attempt == Attempt::Served {
            self.nominal = min;
        }
    }

    /// How long to wait before the next attempt; the nominal delay then doubles, up to `max`.
    #[must_use]
    pub fn poll_delay(&mut self, max: Duration) -> Duration {
        let delay = self.jittered(self.nominal);
        self.nominal = (self.nominal * 2).min(max);
        delay
    }

    /// The nominal delay of the next attempt (before jitter).
    pub fn nominal(&self) -> Duration {
        self.nominal
    }

    /// `nominal` scaled by a factor in [0.5, 1.5).
    fn jittered(&mut self, nominal: Duration) -> Duration {
        let factor = 0.5 + (self.next() % 1_000_000) as f64 / 1_000_000.0;
        nominal.mul_f64(factor)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn a_delay_stays_within_half_either_side_of_its_nominal() {
        let mut b = Backoff::new(MIN, 42);
        for _ in 0..1000 {
            b.handle_attempt(Attempt::Served, MIN);
            let d = b.poll_delay(MAX);
            assert!(d >= MIN / 2 && d < MIN * 3 / 2, "{d:?}");
        }
    }

    #[test]
    fn failures_double_the_delay_up_to_the_maximum_and_a_served_stream_resets_it() {
        let mut b = Backoff::new(MIN, 7);
        let nominals: Vec<Duration> = (0..8)
            .map(|_| {
                let n = b.nominal();
                let _ = b.poll_delay(MAX);
                b.handle_attempt(Attempt::Failed, MIN);
                n
            })
            .collect();
        let ms: Vec<u128> = nominals.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.handle_attempt(Attempt::Served, MIN);
        assert_eq!(b.nominal(), MIN);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let run = |seed| {
            let mut b = Backoff::new(MIN, seed);
            (0..10).map(|_| b.poll_delay(MAX)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    proptest! {
        /// Whatever the seed, the bounds and the order of attempts, each delay is its nominal
        /// (doubling from `min` since the last served attempt, capped at `max`) within ±50%.
        #[test]
        fn every_delay_follows_the_schedule(
            seed in any::<u64>(),
            min_ms in 1u64..2_000,
            max_extra_ms in 0u64..60_000,
            attempts in proptest::collection::vec(any::<bool>(), 1..64),
        ) {
            let min = Duration::from_millis(min_ms);
            let max = min + Duration::from_millis(max_extra_ms);
            let mut b = Backoff::new(min, seed);
            let mut model = min;
            for served in attempts {
                let attempt = match served {
                    true => Attempt::Served,
                    false => Attempt::Failed,
                };
                b.handle_attempt(attempt, min);
                if served {
                    model = min;
                }
                let d = b.poll_delay(max);
                prop_assert!(d >= model / 2 && d <= model * 3 / 2, "{d:?} for {model:?}");
                model = (model * 2).min(max);
                prop_assert_eq!(b.nominal(), model);
            }
        }
    }
}
