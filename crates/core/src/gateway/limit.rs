//! A rate limit for log lines that could repeat once per event, with the time as a parameter.

use std::time::{Duration, Instant};

/// Lets `burst` lines through per `window`, counting the ones it holds back.
#[derive(Debug)]
pub(super) struct RateLimit {
    window: Duration,
    burst: u32,
    /// When the current window started, and the lines let through in it.
    current: Option<(Instant, u32)>,
    held_back: u64,
}

impl RateLimit {
    pub(super) const fn new(window: Duration, burst: u32) -> RateLimit {
        RateLimit {
            window,
            burst,
            current: None,
            held_back: 0,
        }
    }

    /// `Some(lines held back since the last one let through)` when a line may be written at
    /// `now`.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match &mut self.current {
            Some((start, used)) if now.saturating_duration_since(*start) < self.window => {
                if *used >= self.burst {
                    self.held_back += 1;
                    return None;
                }
                *used += 1;
            }
            _ => self.current = Some((now, 1)),
        }
        Some(std::mem::take(&mut self.held_back))
    }
}

/// `" (N more suppressed since the last report)"`, or nothing for 0.
pub(super) fn suppressed(held_back: u64) -> String {
    match held_back {
        0 => String::new(),
        n => format!(" ({n} more suppressed since the last report)"),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a base instant for the test
mod tests {
    use super::*;

    #[test]
    fn lets_a_burst_through_per_window_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(Duration::from_secs(1), 2);
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0), Some(0));
        assert_eq!(limit.allow(t0), None);
        assert_eq!(limit.allow(t0), None);
        assert_eq!(limit.allow(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(suppressed(2), " (2 more suppressed since the last report)");
        assert_eq!(suppressed(0), "");
    }
}
