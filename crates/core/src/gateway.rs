//! The gateway core of one shard, sans-IO: the way quinn-proto's `Endpoint` sits above its
//! `Connection`s, one [`Gateway`] sits above this shard's [`ShardEngine`], its router
//! connections and its streams to compliance servers, and makes every decision about them:
//! whose stanza is an event and which shard owns it, where a verdict or an answer goes, which
//! stream handshakes are accepted, which link changes every shard hears of, what a reload
//! closes, keeps and dials, which alarms are news, and the flow control of each compliance
//! stream towards every shard's engine.
//!
//! The runtime feeds it inputs (`handle_*`, with the time as a parameter) and carries out what
//! [`Gateway::poll_output`] returns: bytes to write, offers to make, streams to close, messages
//! for other shards, log lines, dialers to start. Every input leaves the engine's actions ready
//! to be polled: there is nothing to pump by hand.
//!
//! Must not: perform I/O, read a clock, draw randomness, spawn tasks, log, or know of glommio.
//! It uses only the wire core, the protocol layer, the policy model, the routing math, the
//! engine and the spool model, and its hash maps have fixed seeds, so a run is reproducible
//! from its inputs.
#![deny(missing_docs)]
// A core module: it decides on peer bytes, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

mod backoff;
mod holds;
mod limit;
mod links;
mod message;
mod output;
// The measuring tools' driver (benches, examples).
#[cfg(any(test, feature = "test-support"))]
pub mod pipeline;
mod reload;
mod routers;
mod shutdown;
mod status;
// Tests take a base instant from the clock; the core under test never reads it.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests;

pub use backoff::{Attempt, Backoff};
pub use holds::{ReadHold, Room};
pub use message::PeerMessage;
pub use output::{
    ConnId, ConnectionEvent, Dial, Level, Now, Offer, Offered, Output, Peer, StreamCommand,
};
pub use reload::ReloadPlan;
pub use shutdown::{ShutdownStep, CLOSE_LIMIT, DRAIN_LIMIT, DRAIN_QUIET};
pub use status::{ServerState, ShardStatus, SpoolProfile, SpoolState};

use crate::engine::{Action, Alarm, EngineConfig, LinkChange, Outgoing, RouterRef, ShardEngine};
use crate::policy::DetHashMap;
use crate::policy::{CompiledPolicy, Config, NodeId, ServerId, ServerInfo, ServerMode};
use crate::routing::KeyHasher;
use crate::wire::Stanza;
use bytes::Bytes;
use limit::RateLimit;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Protocol violations are logged at most 10 per this window on a shard; the next line says
/// how many were suppressed.
const VIOLATIONS_WINDOW: Duration = Duration::from_secs(1);

/// The engine's settings for shard `id` of `shards` under `config`.
pub fn engine_config(id: u16, shards: u16, config: &Config) -> EngineConfig {
    EngineConfig {
        shard: id,
        shards,
        gateway_name: config.gateway.name.clone(),
        event_timeout: config.timers.event_timeout,
        outage_window: config.timers.outage_window,
        queue_bound: config
            .limits
            .queue_per_server
            .div_ceil(usize::from(shards))
            .max(1),
        // Every shard may release a batch on one stream at once: together they fit in the
        // room between the stream's low watermark (half its limit) and its limit.
        link_batch_bytes: (config.limits.stream_buffer_bytes / 2 / usize::from(shards)).max(1),
    }
}

/// What the core counted that the engine does not (the admin endpoint shows them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Events answered `bad-request`.
    pub bad_requests: u64,
    /// Events refused `forbidden`: sent by a user, not by the router's host JID.
    pub forbidden_events: u64,
    /// Other requests from routers or servers answered (ping, disco).
    pub service_requests: u64,
    /// Verdicts whose router connection was gone.
    pub undeliverable_verdicts: u64,
    /// Answers whose id is not ours.
    pub unknown_answers: u64,
    /// Alarms raised, by name.
    pub alarms_raised: Vec<(&'static str, u64)>,
    /// Times router reads paused for the shard's limits (events in flight or the outbox full):
    /// once per hold asked for.
    pub read_pauses: u64,
    /// Times a router's reads paused because its unwritten output passed the limit.
    pub router_output_pauses: u64,
    /// The same for compliance streams (a server that sends pings and does not read).
    pub server_output_pauses: u64,
}

impl GatewayCounters {
    fn count_alarm(&mut self, name: &'static str) {
        match self.alarms_raised.iter_mut().find(|(a, _)| *a == name) {
            Some((_, n)) => *n += 1,
            None => self.alarms_raised.push((name, 1)),
        }
    }
}

/// One connection, as the core knows it.
#[derive(Debug)]
struct Connection {
    /// The peer's address, for the log.
    peer: String,
    leg: Leg,
}

#[derive(Debug)]
enum Leg {
    Router(routers::RouterLeg),
    Server(links::ServerLeg),
}

/// See the module documentation.
pub struct Gateway {
    id: u16,
    shards: u16,
    config: Arc<Config>,
    policy: Arc<CompiledPolicy>,
    hasher: KeyHasher,
    engine: ShardEngine,
    conns: DetHashMap<u32, Connection>,
    next_conn: u32,
    links: links::Links,
    /// Per outbound router leg (by router name), the generation of its dialer: a reload that
    /// changes or moves the leg bumps it, and the dialer of an older one stands down.
    router_generations: DetHashMap<String, u32>,
    /// Alarms currently raised, as this shard saw them.
    alarms: Vec<Alarm>,
    counters: GatewayCounters,
    violations: RateLimit,
    shutting_down: bool,
    /// Where the shutdown is (`shutdown.rs`).
    stopping: shutdown::Stopping,
    outputs: VecDeque<Output>,
    /// An input arrived since the spool's and the replay's wake-ups were last given.
    unsettled: bool,
}

impl Gateway {
    /// The core of the shard `engine` belongs to, under `config` and `policy`. Its first
    /// outputs start the dialers this shard keeps.
    pub fn new(engine: ShardEngine, config: Arc<Config>, policy: Arc<CompiledPolicy>) -> Gateway {
        let (id, shards) = (engine.config().shard, engine.config().shards);
        let servers = policy.servers().len();
        let mut gateway = Gateway {
            id,
            shards,
            config,
            policy,
            hasher: KeyHasher::new(),
            engine,
            conns: DetHashMap::default(),
            next_conn: 0,
            links: links::Links::new(servers),
            router_generations: DetHashMap::default(),
            alarms: Vec::new(),
            counters: GatewayCounters::default(),
            violations: RateLimit::new(VIOLATIONS_WINDOW, 10),
            shutting_down: false,
            stopping: shutdown::Stopping::Running,
            outputs: VecDeque::new(),
            unsettled: true,
        };
        for index in 0..servers {
            let info = &gateway.policy.servers()[index];
            if gateway.dials_server(info) {
                let server = ServerId(index as u16);
                gateway.out(Output::Dial(Dial::Server {
                    server,
                    generation: 0,
                }));
            }
        }
        let config = gateway.config.clone();
        for (index, r) in config.routers.iter().enumerate() {
            if gateway.dials_router(&config, index) {
                gateway.out(Output::Dial(Dial::Router {
                    index,
                    name: r.name.clone(),
                    generation: 0,
                }));
            }
        }
        gateway
    }

    // ---- inputs ----

    /// A new connection to `peer` (its address `addr`, for the log); returns its id.
    pub fn handle_connection_opened(&mut self, peer: Peer, addr: String) -> ConnId {
        let id = self.next_conn;
        self.next_conn = self.next_conn.wrapping_add(1);
        let leg = match peer {
            Peer::RouterInbound => Leg::Router(routers::RouterLeg::new(None)),
            Peer::RouterOutbound { name } => Leg::Router(routers::RouterLeg::new(Some(name))),
            Peer::ServerInbound => Leg::Server(links::ServerLeg::inbound()),
            Peer::ServerOutbound { server, generation } => {
                let component = self.policy.server(server).map(|s| s.component.clone());
                Leg::Server(links::ServerLeg::outbound(server, generation, component))
            }
        };
        self.conns.insert(id, Connection { peer: addr, leg });
        ConnId(id)
    }

    /// Something happened to connection `conn`'s stream at `now`.
    pub fn handle_connection_event(&mut self, conn: ConnId, event: ConnectionEvent, now: Instant) {
        self.unsettled = true;
        let is_router = match self.conns.get(&conn.0) {
            Some(c) => matches!(c.leg, Leg::Router(_)),
            None => return,
        };
        match is_router {
            true => self.router_event(conn, event),
            false => self.server_event(conn, event, now),
        }
    }

    /// A stanza read on connection `conn`.
    pub fn handle_stanza(&mut self, conn: ConnId, stanza: &Stanza, now: Now) {
        self.unsettled = true;
        let server = match self.conns.get(&conn.0).map(|c| &c.leg) {
            Some(Leg::Router(_)) => None,
            Some(Leg::Server(leg)) => match leg.server() {
                Some(server) => Some(server),
                None => return,
            },
            None => return,
        };
        match server {
            None => self.router_stanza(conn, stanza, now),
            Some(server) => self.server_stanza(conn, server, stanza, now.at),
        }
    }

    /// A message from another shard's core.
    pub fn handle_peer_message(&mut self, message: PeerMessage, now: Now) {
        self.unsettled = true;
        let at = now.at;
        match message {
            PeerMessage::Event {
                ev,
                key_hash,
                router,
                received,
            } => {
                // Timers and residence count from when the router's shard read the event.
                self.engine
                    .handle_event(ev, key_hash, router, received, now.wall);
            }
            PeerMessage::Verdict { conn, bytes } => self.deliver_verdict(conn, bytes),
            PeerMessage::Send {
                server,
                from,
                request,
                bytes,
            } => self.offer(server, from, request, bytes),
            PeerMessage::ReplayWritten { seq } => self.engine.handle_replay_written(seq, at),
            PeerMessage::SendDeferred {
                server,
                link,
                request,
                bytes,
            } => self
                .engine
                .handle_send_deferred(server, link, request, bytes, at),
            PeerMessage::WantRoom { server, from } => self.want_room(server, from),
            PeerMessage::Room { server, link } => self.engine.handle_link_room(server, link, at),
            PeerMessage::Answer { server, answer } => self.engine.handle_answer(server, answer, at),
            PeerMessage::Link {
                server,
                link,
                change,
            } => self.engine.handle_link(server, link, change, at),
        }
    }

    /// Reports whether an [`Output::Offer`] was written.
    pub fn handle_offer(&mut self, offer: Offer, outcome: Offered, now: Instant) {
        self.unsettled = true;
        let Offer {
            conn,
            server,
            from,
            request,
            bytes,
            ..
        } = offer;
        match outcome {
            Offered::Taken => {
                if let Outgoing::Replay { seq } = request {
                    if from == self.id {
                        self.engine.handle_replay_written(seq, now);
                    } else {
                        self.send_to_shard(from, PeerMessage::ReplayWritten { seq });
                    }
                }
            }
            Offered::Refused => {
                self.links.refused(server, conn, from);
                self.deferred(server, from, request, bytes, now);
            }
        }
    }

    /// Runs the engine's timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.unsettled = true;
        self.engine.handle_timeout(now);
    }

    /// When [`Gateway::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// How long the runtime's timer task sleeps from `now` before [`Gateway::handle_timeout`]:
    /// until the engine's next deadline, but at most one tick (a twentieth of the shorter of
    /// the event timeout and the outage window, between 1 ms and 100 ms), so that a timer
    /// armed meanwhile is late by at most one tick; and at least 100 µs.
    pub fn poll_timer_wait(&self, now: Instant) -> Duration {
        let t = &self.config.timers;
        let tick = (t.event_timeout.min(t.outage_window) / 20)
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        let next = self.engine.poll_timeout();
        let wait = next.map_or(tick, |at| at.saturating_duration_since(now).min(tick));
        wait.max(Duration::from_micros(100))
    }

    /// The runtime made the spool's records up to `upto` durable.
    pub fn handle_spool_durable(&mut self, upto: u64, now: Instant) {
        self.unsettled = true;
        self.engine.handle_spool_durable(upto, now);
    }

    /// The runtime failed to make the spool's records up to `upto` durable.
    pub fn handle_spool_failed(&mut self, upto: u64, now: Instant) {
        self.unsettled = true;
        self.engine.handle_spool_failed(upto, now);
    }

    /// The runtime read back what replay waited for (see [`crate::spool::Spool::want_load`]).
    pub fn handle_spool_loaded(
        &mut self,
        load: &crate::spool::Load,
        data: Result<&[u8], ()>,
        now: Instant,
    ) {
        self.unsettled = true;
        self.engine.handle_spool_loaded(load, data, now);
    }

    /// The read of spooled records replay waits for, if it was not handed out yet.
    pub fn take_spool_load(&mut self) -> Option<crate::spool::Load> {
        self.engine.take_spool_load()
    }

    /// Runs one bounded replay turn.
    pub fn handle_replay_turn(&mut self, now: Instant) {
        self.unsettled = true;
        self.engine.replay_turn(now);
    }

    /// Whether a replay turn is due.
    pub fn replay_due(&self) -> bool {
        self.engine.replay_due()
    }

    /// The next batch of spool work for the runtime's writer, if any.
    pub fn take_spool_batch(&mut self) -> Option<crate::spool::IoBatch> {
        self.engine.take_spool_batch()
    }

    // ---- outputs ----

    /// The next thing the runtime must do. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            // The engine's actions are carried out one at a time, as they are polled, so a
            // refused offer defers its request before the next send is looked at.
            match self.engine.poll_action() {
                Some(action) => self.carry(action),
                None if self.unsettled => {
                    self.unsettled = false;
                    if self.engine.spool_has_work() {
                        self.out(Output::SpoolWork);
                    }
                    if self.engine.replay_due() {
                        self.out(Output::ReplayDue);
                    }
                }
                None => return None,
            }
        }
    }

    // ---- queries ----

    /// This shard's number.
    pub fn shard(&self) -> u16 {
        self.id
    }

    /// The engine (read-only: every input goes through the core).
    pub fn engine(&self) -> &ShardEngine {
        &self.engine
    }

    /// Events owned and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// Whether the engine or its spool still has work (shutdown waits for it).
    pub fn busy(&self) -> bool {
        self.engine.in_flight() > 0 || !self.engine.spool_idle()
    }

    /// What the core counted.
    pub fn counters(&self) -> &GatewayCounters {
        &self.counters
    }

    /// Alarms currently raised, as this shard saw them.
    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    /// The names of the active router connections.
    pub fn router_names(&self) -> Vec<String> {
        self.conns
            .values()
            .filter_map(|c| match &c.leg {
                Leg::Router(r) => r.entry().map(|e| e.name.clone()),
                Leg::Server(_) => None,
            })
            .collect()
    }

    /// Every active router connection and compliance stream (closed at shutdown).
    pub fn active_connections(&self) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(&c.leg, Leg::Router(r) if r.entry().is_some()))
            .map(|(id, _)| ConnId(*id))
            .collect();
        conns.extend(self.links.active());
        conns
    }

    /// The configuration the core decides by.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The policy the core decides by.
    pub fn policy(&self) -> &Arc<CompiledPolicy> {
        &self.policy
    }

    // ---- the engine's actions ----

    fn carry(&mut self, action: Action) {
        match action {
            Action::Send {
                server,
                link,
                request,
                bytes,
            } => {
                if link == self.id {
                    self.offer(server, self.id, request, bytes);
                } else {
                    let from = self.id;
                    self.send_to_shard(
                        link,
                        PeerMessage::Send {
                            server,
                            from,
                            request,
                            bytes,
                        },
                    );
                }
            }
            Action::AwaitRoom { server, link } => {
                if link == self.id {
                    self.want_room(server, self.id);
                } else {
                    let from = self.id;
                    self.send_to_shard(link, PeerMessage::WantRoom { server, from });
                }
            }
            Action::Verdict { router, bytes } => {
                if router.shard == self.id {
                    self.deliver_verdict(router.conn, bytes);
                } else {
                    self.send_to_shard(
                        router.shard,
                        PeerMessage::Verdict {
                            conn: router.conn,
                            bytes,
                        },
                    );
                }
            }
            Action::Alarm(alarm) => self.alarm(alarm),
            Action::ProtocolViolation {
                server,
                event,
                detail,
            } => self.protocol_violation(server, event.name(), detail),
        }
    }

    /// Verdicts are never refused: the router's output is bounded by its reads pausing.
    fn deliver_verdict(&mut self, conn: u32, bytes: Bytes) {
        let active = matches!(
            self.conns.get(&conn).map(|c| &c.leg),
            Some(Leg::Router(r)) if r.entry().is_some()
        );
        if active {
            self.out(Output::Verdict {
                conn: ConnId(conn),
                bytes,
            });
        } else {
            self.counters.undeliverable_verdicts += 1;
        }
    }

    fn alarm(&mut self, alarm: Alarm) {
        if self.shutting_down {
            // Streams closing because we are stopping are not outages.
            return;
        }
        let server = alarm
            .server()
            .and_then(|id| self.policy.server(id).map(|s| s.name.clone()))
            .unwrap_or_else(|| "?".to_owned());
        // The spool's alarm is about this shard's spool, not a server.
        let what = match alarm.server() {
            Some(_) => format!("compliance server {server}"),
            None => format!("the spool of shard {} refuses records", self.id),
        };
        let same = |a: &Alarm| a.name() == alarm.name() && a.server() == alarm.server();
        if alarm.raised() {
            if !self.alarms.iter().any(same) {
                self.alarms.push(alarm.clone());
                self.counters.count_alarm(alarm.name());
                let level = match alarm {
                    Alarm::QueueFull { .. } => Level::Warn,
                    _ => Level::Error,
                };
                self.log(level, format!("alarm {} raised: {what}", alarm.name()));
            }
        } else if self.alarms.iter().any(same) {
            self.alarms.retain(|a| !same(a));
            self.log(
                Level::Info,
                format!("alarm {} cleared: {what}", alarm.name()),
            );
        }
    }

    fn protocol_violation(&mut self, server: ServerId, event: &str, detail: &str) {
        let Some(held_back) = self.violations.allow(self.engine.now()) else {
            return;
        };
        let name = self
            .policy
            .server(server)
            .map_or_else(|| "?".to_owned(), |s| s.name.clone());
        self.log(
            Level::Warn,
            format!(
                "protocol violation by compliance server {name} on {event}: {detail}{}",
                limit::suppressed(held_back)
            ),
        );
    }

    // ---- helpers ----

    fn out(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn log(&mut self, level: Level, text: String) {
        self.out(Output::Log { level, text });
    }

    fn send_to_shard(&mut self, shard: u16, message: PeerMessage) {
        self.out(Output::ToShard { shard, message });
    }

    /// A stream of this shard to `server` came up or went away: tell every engine.
    fn link_changed(&mut self, server: ServerId, change: LinkChange, now: Instant) {
        self.engine.handle_link(server, self.id, change, now);
        let link = self.id;
        for peer in (0..self.shards).filter(|&p| p != link) {
            self.send_to_shard(
                peer,
                PeerMessage::Link {
                    server,
                    link,
                    change,
                },
            );
        }
    }

    /// Whether this shard keeps an outbound stream to `server`.
    fn dials_server(&self, server: &ServerInfo) -> bool {
        let shards = usize::from(self.shards);
        let streams = server.connections.unwrap_or(shards).clamp(1, shards);
        server.mode == ServerMode::Outbound && !server.retired && usize::from(self.id) < streams
    }

    /// Whether this shard keeps the outbound leg of router `index` of `config`.
    fn dials_router(&self, config: &Config, index: usize) -> bool {
        let connects = config
            .routers
            .get(index)
            .is_some_and(|r| r.connect.is_some());
        connects && index % usize::from(self.shards) == usize::from(self.id)
    }

    /// The node a router name stands for.
    fn node_of(&self, name: &str) -> NodeId {
        let node_name = self
            .config
            .routers
            .iter()
            .find(|r| r.name == name)
            .map_or(name, |r| r.node.as_str());
        self.policy.node_id(node_name.as_bytes())
    }

    fn router_ref(&self, conn: ConnId) -> RouterRef {
        RouterRef {
            shard: self.id,
            conn: conn.0,
        }
    }
}
