//! The figures one shard's status shows, assembled by its core ([`Gateway::status`]): the
//! engine's counters and the core's, each server as this shard sees it (with its profile's
//! name and whether this shard holds a stream to it), the alarms raised with their servers'
//! names, the spool's figures with their ages at the wall time given, the last minute.
//!
//! Owns what goes in a shard's status; the runtime adds what only it knows (its own counts,
//! its outbox, its listeners), then serialises and carries it. Must not: read a clock (the
//! time and the wall time are parameters).

use super::{Gateway, GatewayCounters};
use crate::engine::{Counters, Reach, Window};
use crate::policy::{AcceptMode, ServerId};
use crate::spool::Spool;
use std::time::{Instant, SystemTime};

/// One shard's figures, as its core holds them.
#[derive(Clone, Debug)]
pub struct ShardStatus {
    /// The engine's counters.
    pub counters: Counters,
    /// The core's own counters.
    pub gateway: GatewayCounters,
    /// Events owned and not yet answered.
    pub in_flight: usize,
    /// Conversation keys with events in flight.
    pub keys_in_flight: usize,
    /// The names of the active router connections.
    pub routers: Vec<String>,
    /// Every server, as this shard sees it.
    pub servers: Vec<ServerState>,
    /// Raised alarms: (name, server name; empty for the spool's).
    pub alarms: Vec<(String, String)>,
    /// This shard's spool, when `[spool] dir` is set.
    pub spool: Option<SpoolState>,
    /// The last minute (rates and percentiles for the status page).
    pub recent: Window,
}

/// One server as one shard sees it.
#[derive(Clone, Debug)]
pub struct ServerState {
    /// Its name in the configuration.
    pub name: String,
    /// Its component name.
    pub component: String,
    /// The profile assigned to it.
    pub profile: String,
    /// Whether it is routable.
    pub reach: Reach,
    /// Streams active across all shards (this shard's replica).
    pub active_links: usize,
    /// Whether this shard holds an active stream to it.
    pub local_link: bool,
    /// Requests waiting in this shard's queue for it.
    pub queued: usize,
    /// Removed from the configuration by a reload.
    pub retired: bool,
}

/// One profile's share of a spool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolProfile {
    /// The profile's name.
    pub profile: String,
    /// Records pending.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Age of its oldest pending record (0 with none), as the runtime read the clock.
    pub oldest_age_seconds: f64,
    /// Records replayed (written to a server) since start.
    pub replayed: u64,
}

/// A spool's state (one shard's, or merged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpoolState {
    /// Records pending.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The spool's bound (`[spool] max_bytes`).
    pub max_bytes: u64,
    /// Age of its oldest pending record (0 with none).
    pub oldest_age_seconds: f64,
    /// It refused a record, or a write failed, and it has not kept one since (alarm
    /// `SpoolFull`).
    pub full: bool,
    /// Records written since start.
    pub spooled: u64,
    /// Records replayed (written to a server) since start.
    pub replayed: u64,
    /// Records refused because the spool was full.
    pub refused_full: u64,
    /// Writes or syncs that failed.
    pub write_errors: u64,
    /// Records lost to a failed write (their events bounced).
    pub lost_on_error: u64,
    /// Payload bytes held in memory (the rest is read back from disk for replay).
    pub memory_bytes: u64,
    /// The bound on `memory_bytes`.
    pub memory_bound: u64,
    /// Each profile's share.
    pub profiles: Vec<SpoolProfile>,
}

impl SpoolState {
    /// Adds another shard's spool to this one.
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

impl Gateway {
    /// This shard's figures at `now`, the spool's ages read against `wall`.
    pub fn status(&self, now: Instant, wall: SystemTime) -> ShardStatus {
        let engine = &self.engine;
        let policy = &self.policy;
        let servers = engine
            .servers()
            .iter()
            .enumerate()
            .map(|(i, s)| ServerState {
                name: s.name().to_owned(),
                component: s.component().to_owned(),
                profile: policy
                    .server(ServerId(i as u16))
                    .map_or(String::new(), |info| {
                        policy.profile_name(info.profile).to_owned()
                    }),
                reach: s.reach(),
                active_links: s.active_links(),
                local_link: self.has_link(i),
                queued: s.queued(),
                retired: s.retired(),
            })
            .collect();
        let alarms = self
            .alarms
            .iter()
            .map(|a| {
                let server = a
                    .server()
                    .and_then(|id| policy.server(id).map(|s| s.name.clone()))
                    .unwrap_or_default();
                (a.name().to_owned(), server)
            })
            .collect();
        ShardStatus {
            counters: engine.counters().clone(),
            gateway: self.counters.clone(),
            in_flight: engine.in_flight(),
            keys_in_flight: engine.keys_in_flight(),
            routers: self.router_names(),
            servers,
            alarms,
            spool: engine.spool().map(|s| spool_state(s, wall)),
            recent: engine.recent(now),
        }
    }

    /// Whether this shard listens for routers: every shard with SO_REUSEPORT, shard 0 alone
    /// when it hands connections over.
    pub fn listens_for_routers(&self) -> bool {
        self.config.gateway.accept == AcceptMode::ReusePort || self.id == 0
    }
}

/// A spool's figures, its ages read against `wall`.
fn spool_state(s: &Spool, wall: SystemTime) -> SpoolState {
    let now_ms = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let age = |born: Option<u64>| born.map_or(0.0, |b| now_ms.saturating_sub(b) as f64 / 1000.0);
    let (oldest, per) = s.oldest_ms();
    let c = &s.counters;
    SpoolState {
        records: s.records(),
        bytes: s.bytes(),
        max_bytes: s.max_bytes(),
        oldest_age_seconds: age(oldest),
        full: s.refusing(),
        spooled: c.spooled,
        replayed: c.replayed,
        refused_full: c.refused_full,
        write_errors: c.io_errors,
        lost_on_error: c.lost_on_error,
        memory_bytes: s.held_bytes(),
        memory_bound: s.memory_bound(),
        profiles: s
            .profiles()
            .iter()
            .zip(per)
            .map(|(p, born)| SpoolProfile {
                profile: p.name.clone(),
                records: p.records,
                bytes: p.bytes,
                oldest_age_seconds: age(born),
                replayed: p.replayed,
            })
            .collect(),
    }
}
