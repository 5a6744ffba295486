//! What one shard reports about itself (gathered through the channel mesh by the runtime), and
//! the counts the runtime keeps beside the engine's. Plain data.

use crate::engine::{Counters, Reach, Window};

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

/// One server as one shard sees it.
#[derive(Clone, Debug)]
pub struct ServerState {
    pub name: String,
    pub component: String,
    /// The profile assigned to it.
    pub profile: String,
    pub reach: Reach,
    /// Streams active across all shards (this shard's replica).
    pub active_links: usize,
    /// Whether this shard holds an active stream to it.
    pub local_link: bool,
    pub queued: usize,
    /// Removed from the configuration by a reload.
    pub retired: bool,
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

/// One profile's share of a spool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolProfile {
    pub profile: String,
    pub records: u64,
    pub bytes: u64,
    /// Age of its oldest pending record (0 with none), as the runtime read the clock.
    pub oldest_age_seconds: f64,
    /// Records replayed (written to a server) since start.
    pub replayed: u64,
}

/// A spool's state (one shard's, or merged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolState {
    pub records: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub oldest_age_seconds: f64,
    /// It refused a record and has not freed space since (alarm `SpoolFull`).
    pub full: bool,
    pub spooled: u64,
    pub replayed: u64,
    pub refused_full: u64,
    pub write_errors: u64,
    pub lost_on_error: u64,
    /// Payload bytes held in memory, and their bound (the rest is read back for replay).
    pub memory_bytes: u64,
    pub memory_bound: u64,
    pub profiles: Vec<SpoolProfile>,
}

impl SpoolState {
    pub fn merge(&mut self, o: &SpoolState) {
        self.records += o.records;
        self.bytes += o.bytes;
        self.max_bytes += o.max_bytes;
        self.oldest_age_seconds = self.oldest_age_seconds.max(o.oldest_age_seconds);
        self.full |= o.full;
        self.spooled += o.spooled;
        self.replayed += o.replayed;
        self.refused_full += o.refused_full;
        self.write_errors += o.write_errors;
        self.lost_on_error += o.lost_on_error;
        self.memory_bytes += o.memory_bytes;
        self.memory_bound += o.memory_bound;
        for p in &o.profiles {
            match self.profiles.iter_mut().find(|q| q.profile == p.profile) {
                Some(q) => {
                    q.records += p.records;
                    q.bytes += p.bytes;
                    q.replayed += p.replayed;
                    q.oldest_age_seconds = q.oldest_age_seconds.max(p.oldest_age_seconds);
                }
                None => self.profiles.push(p.clone()),
            }
        }
        self.profiles.sort_by(|a, b| a.profile.cmp(&b.profile));
    }
}
