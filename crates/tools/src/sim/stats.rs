//! The simulator's counters: shared atomics that connections add to once per batch, and the
//! status line printed from them.
//!
//! Owns counting and its text; must not decide answers or touch sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

macro_rules! counters {
    ($($field:ident),* $(,)?) => {
        /// Totals across every stream, since the start.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(pub $field: AtomicU64,)*
        }

        /// One connection's counts since its last [`Local::publish`].
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct Local {
            $(pub $field: u64,)*
        }

        impl Local {
            /// Adds these counts to the shared totals and resets them.
            pub fn publish(&mut self, to: &Counters) {
                $(
                    if self.$field != 0 {
                        to.$field.fetch_add(self.$field, Ordering::Relaxed);
                        self.$field = 0;
                    }
                )*
            }
        }

        impl Counters {
            pub fn snapshot(&self) -> Local {
                Local { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    // Wait-mode requests (compliance role) or router events (router-echo role).
    requests,
    // Fire-and-forget notifications: archived, never answered.
    notifications,
    pass,
    modified,
    handle,
    // Error answers (compliance role) or bounce verdicts (router-echo role).
    error,
    // Events the router-echo could not read, answered with bad-request.
    bad_events,
    // Requests naming an event outside the catalog (answered PASS).
    unknown_events,
    // Anything else (pings, results, stray stanzas).
    other,
    streams_opened,
    streams_closed,
);

/// The periodic status line.
pub fn status_line(now: &Local, before: &Local, interval: Duration) -> String {
    let rate =
        now.requests.saturating_sub(before.requests) as f64 / interval.as_secs_f64().max(1e-9);
    format!(
        "streams {} | requests {} ({:.0}/s) notify {} | pass {} modified {} handle {} error {} | bad {} other {}",
        now.streams_opened.saturating_sub(now.streams_closed),
        now.requests,
        rate,
        now.notifications,
        now.pass,
        now.modified,
        now.handle,
        now.error,
        now.bad_events,
        now.other,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_adds_and_resets() {
        let shared = Counters::default();
        let mut local = Local {
            requests: 3,
            pass: 2,
            error: 1,
            ..Local::default()
        };
        local.publish(&shared);
        assert_eq!(local, Local::default());
        local.requests = 1;
        local.publish(&shared);
        let s = shared.snapshot();
        assert_eq!((s.requests, s.pass, s.error), (4, 2, 1));
        let line = status_line(&s, &Local::default(), Duration::from_secs(2));
        assert!(line.contains("requests 4 (2/s)"), "{line}");
    }
}
