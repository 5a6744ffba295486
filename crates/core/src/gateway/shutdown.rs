//! The graceful shutdown's sequence on one shard: every event in flight is answered as its
//! handling says when no server can take it ([`Gateway::handle_shutdown`]); the shard waits
//! until nothing is in flight, queued for another shard or being spooled, and that has lasted
//! [`DRAIN_QUIET`] (time for verdicts from shards still draining to arrive), at most
//! [`DRAIN_LIMIT`]; then every router connection and compliance stream is closed with
//! `</stream:stream>`, and their writers get [`CLOSE_LIMIT`] to flush it.
//!
//! Owns the order and the deadlines ([`Gateway::poll_shutdown`], time as a parameter). The
//! runtime stops its accept loops, waits as each [`ShutdownStep`] says (for the shard's
//! progress or a deadline) and closes the sockets. Must not: wait, or read a clock.

use super::{ConnId, Gateway, Level};
use std::time::{Duration, Instant};

/// How long shutdown waits for in-flight events to be answered.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long a draining shard must stay idle (nothing in flight, queued or being spooled)
/// before it closes its streams.
pub const DRAIN_QUIET: Duration = Duration::from_millis(150);
/// How long shutdown waits for every stream's writer to flush its end tag.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// What the runtime does next while the shard shuts down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownStep {
    /// Wait for the shard's progress (anything carried out, the outbox shrinking) or until
    /// `until`, whichever comes first, then ask again.
    Drain {
        /// When to ask again if nothing moves.
        until: Instant,
    },
    /// Close these connections with `</stream:stream>`, then wait until their writers flushed
    /// it, at most until `flush_until`; then ask again.
    Close {
        /// Every active router connection and compliance stream.
        conns: Vec<ConnId>,
        /// The end of the wait for the flush.
        flush_until: Instant,
    },
    /// The shard is done (or no shutdown was started).
    Done,
}

/// Where a shard's shutdown is.
#[derive(Clone, Debug)]
pub(super) enum Stopping {
    /// Not shutting down.
    Running,
    /// Answering what is in flight since `started`; idle since `quiet_since`, if it is.
    Draining {
        started: Instant,
        quiet_since: Option<Instant>,
    },
    /// Its connections were closed.
    Closed,
}

impl Gateway {
    /// Starts the shutdown at `now`: every event in flight gets the verdict its handling gives
    /// when no server can take it, and streams closing from now on raise no alarms. Then
    /// [`Gateway::poll_shutdown`] says what comes next.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.unsettled = true;
        self.shutting_down = true;
        if matches!(self.stopping, Stopping::Running) {
            self.stopping = Stopping::Draining {
                started: now,
                quiet_since: None,
            };
            if self.id == 0 {
                self.log(
                    Level::Info,
                    "Shutting down: answering events in flight".to_owned(),
                );
            }
        }
        self.engine.drain(now);
    }

    /// The shutdown's next step at `now`, with this shard's outbox to other shards empty or
    /// not (`outbox_empty`). Ask again after each step, and after every wake-up while
    /// draining.
    #[must_use]
    pub fn poll_shutdown(&mut self, now: Instant, outbox_empty: bool) -> ShutdownStep {
        let busy = self.busy() || !outbox_empty;
        let (started, quiet_since) = match &mut self.stopping {
            Stopping::Running | Stopping::Closed => return ShutdownStep::Done,
            Stopping::Draining {
                started,
                quiet_since,
            } => (*started, quiet_since),
        };
        let deadline = started + DRAIN_LIMIT;
        if now < deadline {
            if busy {
                // Progress that leaves the shard busy starts the quiet period again.
                *quiet_since = None;
                return ShutdownStep::Drain { until: deadline };
            }
            let quiet_until = *quiet_since.get_or_insert(now) + DRAIN_QUIET;
            if now < quiet_until {
                return ShutdownStep::Drain {
                    until: quiet_until.min(deadline),
                };
            }
        }
        self.stopping = Stopping::Closed;
        ShutdownStep::Close {
            conns: self.active_connections(),
            flush_until: now + CLOSE_LIMIT,
        }
    }
}
