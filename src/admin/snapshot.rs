//! What one shard reports about itself (gathered through the channel mesh by the runtime), and
//! the counts the runtime keeps beside the engine's. Plain data.

use crate::engine::{Counters, Window};
// The figures the gateway core assembles (`Gateway::status`), shown as they are.
pub use crate::gateway::{ServerState, SpoolProfile, SpoolState};

/// Counts the runtime keeps beside the engine's.
#[derive(Clone, Debug, Default)]
pub struct RuntimeCounters {
    /// Events answered `bad-request`.
    pub bad_requests: u64,
    /// Events refused `forbidden`: sent by a user, not by the router's host JID.
    pub forbidden_events: u64,
    /// Other requests from routers or servers answered (ping, disco) or refused.
    pub service_requests: u64,
    /// Verdicts whose router connection was gone.
    pub undeliverable_verdicts: u64,
    /// Answers whose id is not ours.
    pub unknown_answers: u64,
    /// Times router reads paused for flow control (events in flight or the outbox full),
    /// counted once per millisecond of pause.
    pub read_pauses: u64,
    /// Times a router's reads paused because its unwritten output passed the limit (once per
    /// pause, which lasts until the output drained to half the limit).
    pub router_output_pauses: u64,
    /// The same for compliance streams (a server that sends pings and does not read).
    pub server_output_pauses: u64,
    /// Alarms raised, by name.
    pub alarms_raised: Vec<(String, u64)>,
    /// Connections accepted and closed at once past a cap, per listener ([`LISTENERS`]).
    pub connections_refused: [u64; 3],
    /// Accepts that failed (descriptors exhausted...), per listener ([`LISTENERS`]).
    pub accept_errors: [u64; 3],
    /// TLS failures, by reason ([`TLS_FAILURE_REASONS`]).
    pub tls_failures: [u64; 9],
}

pub use palisade_tls::TLS_FAILURE_REASONS;

/// The listeners, as the per-listener counts are indexed and labelled.
pub const LISTENERS: [&str; 3] = ["routers", "compliance", "admin"];

impl RuntimeCounters {
    pub fn merge(&mut self, o: &RuntimeCounters) {
        self.bad_requests += o.bad_requests;
        self.forbidden_events += o.forbidden_events;
        self.service_requests += o.service_requests;
        self.undeliverable_verdicts += o.undeliverable_verdicts;
        self.unknown_answers += o.unknown_answers;
        self.read_pauses += o.read_pauses;
        for i in 0..LISTENERS.len() {
            self.connections_refused[i] += o.connections_refused[i];
            self.accept_errors[i] += o.accept_errors[i];
        }
        for (mine, theirs) in self.tls_failures.iter_mut().zip(o.tls_failures) {
            *mine += theirs;
        }
        self.router_output_pauses += o.router_output_pauses;
        self.server_output_pauses += o.server_output_pauses;
        for (name, n) in &o.alarms_raised {
            self.count_alarm_by(name, *n);
        }
    }

    pub fn count_alarm(&mut self, name: &str) {
        self.count_alarm_by(name, 1);
    }

    fn count_alarm_by(&mut self, name: &str, n: u64) {
        match self.alarms_raised.iter_mut().find(|(a, _)| a == name) {
            Some((_, c)) => *c += n,
            None => self.alarms_raised.push((name.to_owned(), n)),
        }
    }
}

/// One shard's state.
#[derive(Clone, Debug)]
pub struct ShardSnapshot {
    pub shard: u16,
    pub counters: Counters,
    pub runtime: RuntimeCounters,
    pub in_flight: usize,
    pub keys_in_flight: usize,
    pub outbox: usize,
    pub routers: Vec<String>,
    pub servers: Vec<ServerState>,
    /// Raised alarms: (name, server name).
    pub alarms: Vec<(String, String)>,
    /// This shard's spool, when `[spool] dir` is set.
    pub spool: Option<SpoolState>,
    /// The last minute (rates and percentiles for the status page).
    pub recent: Window,
    /// This shard's router listeners.
    pub router_listeners: Listening,
}

/// Where a shard's router listeners are.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Listening {
    /// Not bound yet: the shard is starting.
    Starting,
    /// Open and accepting.
    Open,
    /// This shard does not listen (`[gateway] accept = "handoff"`: shard 0 does).
    NotHere,
    /// Shutting down: no longer serving.
    ShuttingDown,
}
