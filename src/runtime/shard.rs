//! One shard's runtime context: its engine, its connections, its outbox, and `pump`, which
//! carries the engine's actions to sockets on this shard or to other shards.
//!
//! Everything here is single-threaded (`Rc`/`RefCell` on one executor); nothing is shared with
//! another shard except through the channel mesh. No borrow is held across an await.

use super::conn::{Conn, ConnRef, Hold};
use super::log::{self, Level};
use super::mesh::{Outbox, ShardMsg};
use super::notify::{Notify, ShardWakes};
use crate::engine::{Action, Alarm, Outgoing, RouterRef, ShardEngine};
use crate::policy::{CompiledPolicy, Config, NodeId, ServerId};
use crate::protocol::{InboundEvent, ParsedAnswer};
use crate::routing::{owner_shard, KeyHasher};
use crate::wire::{ComponentStream, FromCheck, StreamConfig};
use ahash::AHashMap;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Protocol violations are logged at most 10 per this window on a shard; the next line says
/// how many were suppressed.
const VIOLATIONS_WINDOW: Duration = Duration::from_secs(1);

/// A router connection on this shard.
pub struct RouterConn {
    pub conn: ConnRef,
    pub name: String,
    pub node: NodeId,
    /// Who asked this stream which events to send (host JID, disco node), to be told again
    /// after a reload.
    pub chain_askers: Vec<(String, String)>,
}

pub use crate::admin::RuntimeCounters;

/// Where one shard's engine stands with one of this shard's streams to a server.
///
/// A stream refuses a send once its output is past `stream_buffer_bytes`, and then refuses
/// every later send of that engine until the engine asked for room and got it: sends already on
/// their way when the first was refused come back deferred too, in order, and the `Room` reply
/// follows them on the same channel, so the engine has every deferred request back in its
/// queue before it releases any of them again (no request of a key overtakes an earlier one).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum PeerFlow {
    /// Sends are taken while there is room.
    Open,
    /// A send was refused; every further one is, until the engine asks for room.
    Refused,
    /// The engine asked for room (`WantRoom`): it gets `Room` once the output drained.
    Waiting,
}

/// Flow control of one stream to a server towards every shard's engine.
pub struct LinkFlow {
    conn: ConnRef,
    peers: Vec<PeerFlow>,
    /// Wakes the stream's room task (`link::grant_room`) when an engine waits for room.
    pub want: Rc<Notify>,
}

/// See the module documentation.
pub struct ShardCtx {
    pub id: u16,
    pub shards: u16,
    /// The configuration and policy in force; replaced whole by a reload (`reload.rs`), never
    /// borrowed across an await.
    config: RefCell<Arc<Config>>,
    policy: RefCell<Arc<CompiledPolicy>>,
    pub hasher: KeyHasher,
    pub engine: RefCell<ShardEngine>,
    pub outbox: Outbox,
    pub routers: RefCell<AHashMap<u32, RouterConn>>,
    /// This shard's active stream to each server.
    pub links: RefCell<Vec<Option<ConnRef>>>,
    /// Flow control of those streams (see [`PeerFlow`]), by server.
    link_flow: RefCell<Vec<Option<LinkFlow>>>,
    pub counters: RefCell<RuntimeCounters>,
    /// Alarms currently raised, by (name, server), as this shard saw them.
    pub alarms: RefCell<Vec<Alarm>>,
    pub shutting_down: Cell<bool>,
    /// Snapshots gathered from other shards, by request token (see `status.rs`).
    pub snapshots: RefCell<AHashMap<u64, Vec<crate::admin::ShardSnapshot>>>,
    next_conn: Cell<u32>,
    /// Per server, the generation of its streams on this shard: a reload that changes or
    /// removes a server bumps it, and dialers and streams of an older generation stand down.
    pub link_generations: RefCell<Vec<u32>>,
    /// The same, per outbound router leg (by router name).
    pub router_generations: RefCell<AHashMap<String, u32>>,
    /// The compliance listener is up on this shard.
    pub compliance_listening: Cell<bool>,
    /// The router listeners are open on this shard (for `/readyz`).
    pub routers_listening: Cell<bool>,
    /// Connections accepted here and still open, per listener (routers, compliance), wherever
    /// they are served (see `accept.rs`).
    pub conn_counts: RefCell<[super::accept::Count; 2]>,
    /// The latest reload's outcome (kept by shard 0, which does the reloading).
    pub reload_report: RefCell<super::reload::ReloadReport>,
    /// The wall time read for the last batch of events, by the instant of that batch's read.
    wall_cache: Cell<(Instant, SystemTime)>,
    /// The log of protocol violations (one per bad answer: rate-limited).
    violations_logged: RefCell<log::RateLimit>,
    /// The TLS configurations in force; replaced whole by a reload, like `config`.
    tls: RefCell<Arc<crate::tls::Material>>,
    /// Wakes the spool's writer (`spool.rs`) when the engine spooled something.
    pub spool_wake: Notify,
    /// Wakes the spool's replay task (`spool.rs`) when a replay pass is due.
    pub replay_wake: Notify,
    /// What this shard's tasks wait on instead of polling (see `notify.rs`).
    pub wakes: ShardWakes,
}

impl ShardCtx {
    pub fn new(
        id: u16,
        shards: u16,
        config: Arc<Config>,
        policy: Arc<CompiledPolicy>,
        engine: ShardEngine,
    ) -> ShardCtx {
        let servers = policy.servers().len();
        ShardCtx {
            id,
            shards,
            config: RefCell::new(config),
            policy: RefCell::new(policy),
            hasher: KeyHasher::new(),
            engine: RefCell::new(engine),
            outbox: Outbox::new(usize::from(shards)),
            routers: RefCell::new(AHashMap::new()),
            links: RefCell::new(vec![None; servers]),
            link_flow: RefCell::new(Vec::new()),
            counters: RefCell::new(RuntimeCounters::default()),
            alarms: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            snapshots: RefCell::new(AHashMap::new()),
            next_conn: Cell::new(0),
            link_generations: RefCell::new(vec![0; servers]),
            router_generations: RefCell::new(AHashMap::new()),
            compliance_listening: Cell::new(false),
            routers_listening: Cell::new(false),
            conn_counts: RefCell::new(Default::default()),
            reload_report: RefCell::new(Default::default()),
            violations_logged: RefCell::new(log::RateLimit::new(VIOLATIONS_WINDOW, 10)),
            wall_cache: Cell::new((Instant::now(), SystemTime::now())),
            tls: RefCell::new(Arc::default()),
            spool_wake: Notify::default(),
            replay_wake: Notify::default(),
            wakes: ShardWakes::default(),
        }
    }

    /// The TLS configurations in force (an `Arc`: hold it across an await, not the borrow).
    pub fn tls(&self) -> Arc<crate::tls::Material> {
        self.tls.borrow().clone()
    }

    pub fn replace_tls(&self, tls: Arc<crate::tls::Material>) {
        *self.tls.borrow_mut() = tls;
    }

    pub fn config(&self) -> std::cell::Ref<'_, Arc<Config>> {
        self.config.borrow()
    }

    pub fn policy(&self) -> std::cell::Ref<'_, Arc<CompiledPolicy>> {
        self.policy.borrow()
    }

    /// Puts a reloaded configuration and policy in force; returns the ones they replace.
    pub fn replace_config(
        &self,
        config: Arc<Config>,
        policy: Arc<CompiledPolicy>,
    ) -> (Arc<Config>, Arc<CompiledPolicy>) {
        (self.config.replace(config), self.policy.replace(policy))
    }

    pub fn link_generation(&self, server: ServerId) -> u32 {
        let generations = self.link_generations.borrow();
        generations.get(server.index()).copied().unwrap_or(0)
    }

    pub fn bump_link_generation(&self, server: ServerId) {
        if let Some(g) = self.link_generations.borrow_mut().get_mut(server.index()) {
            *g = g.wrapping_add(1);
        }
    }

    /// A dialer or stream of `generation` still serves `server` (no reload replaced it).
    pub fn link_current(&self, server: ServerId, generation: u32) -> bool {
        self.link_generation(server) == generation
    }

    pub fn router_generation(&self, name: &str) -> u32 {
        self.router_generations
            .borrow()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn log(&self, level: Level, message: &str) {
        log::record(level, Some(self.id), message);
    }

    pub fn stream_config(&self) -> StreamConfig {
        let t = &self.config().timers;
        let l = &self.config().limits;
        StreamConfig {
            limits: crate::wire::Limits {
                max_stanza_bytes: l.max_stanza_bytes,
                max_depth: l.max_depth,
                max_attributes: l.max_attributes,
            },
            handshake_timeout: t.handshake_timeout,
            stanza_timeout: t.stanza_timeout,
            keepalive: Some(t.keepalive),
            dead_interval: Some(t.dead_interval),
        }
    }

    /// The receiving side of a new XEP-0114 stream with a fresh random stream id; `None`
    /// (logged, the connection refused) when the system has no randomness to give.
    pub fn receiver_stream(&self, what: &str) -> Option<ComponentStream> {
        let mut random = [0u8; 16];
        if getrandom::getrandom(&mut random).is_err() {
            self.log(
                Level::Error,
                &format!("no randomness for a stream id: refusing {what}"),
            );
            return None;
        }
        Some(ComponentStream::receiver(
            self.stream_config(),
            random,
            FromCheck::PeerDomain,
            Instant::now(),
        ))
    }

    pub fn next_conn_id(&self) -> u32 {
        let id = self.next_conn.get();
        self.next_conn.set(id.wrapping_add(1));
        id
    }

    /// Router reads pause while this shard's engine or outbox is too full.
    pub fn must_pause_reads(&self) -> bool {
        let max = self.config().limits.max_in_flight;
        let full = self.engine.borrow().in_flight() >= max || self.outbox.longest() >= max;
        if full {
            self.counters.borrow_mut().read_pauses += 1;
        }
        full
    }

    /// Whether a router's reader reads on. Its output (verdicts, `bad-request`s, service
    /// answers) is never refused, so reads stop once more than `stream_buffer_bytes` are
    /// unwritten, until the router has read half of it.
    ///
    /// The overshoot past the limit is bounded. Its sources are: what one read (64 KiB of
    /// stanzas) produces before the reader is asked again, and the verdicts of events already
    /// read from this router and in flight on some shard (at most `max_in_flight` per shard:
    /// past it, this shard's reads and the mesh hand-off of events pause, see `consume`). While
    /// reads are paused no new event comes from this router, so that second share can only
    /// shrink: the output stays under the limit plus one read's answers plus the verdicts of
    /// `shards x max_in_flight` events, whatever the router does. Nothing is refused or dropped.
    pub fn router_hold(&self, conn: &Conn) -> Hold {
        let limit = self.config().limits.stream_buffer_bytes;
        if conn.unwritten() > limit {
            self.counters.borrow_mut().router_output_pauses += 1;
            return Hold::UntilDrained(limit / 2);
        }
        if self.must_pause_reads() {
            return Hold::UntilRoom;
        }
        Hold::Read
    }

    /// Whether a compliance stream's reader reads on. Requests are refused (deferred) past the
    /// output limit; only service answers (to the server's pings) are pushed whatever is
    /// unwritten, so a server that pings and never reads stops being read until it does.
    pub fn server_hold(&self, conn: &Conn) -> Hold {
        let limit = self.config().limits.stream_buffer_bytes;
        if conn.unwritten() > limit {
            self.counters.borrow_mut().server_output_pauses += 1;
            return Hold::UntilDrained(limit / 2);
        }
        Hold::Read
    }

    /// Wall time for events read at `now`: one clock read per batch, not per event.
    pub fn wall(&self, now: Instant) -> SystemTime {
        let (at, wall) = self.wall_cache.get();
        if at == now {
            return wall;
        }
        let wall = SystemTime::now();
        self.wall_cache.set((now, wall));
        wall
    }

    /// Sends an event read on this shard to its owner.
    pub fn route_event(&self, ev: InboundEvent, router: RouterRef, now: Instant) {
        let key_hash = self.hasher.hash(&ev.key);
        let owner = owner_shard(key_hash, usize::from(self.shards));
        if owner == usize::from(self.id) {
            let wall = self.wall(now);
            self.engine
                .borrow_mut()
                .submit(ev, key_hash, router, now, wall);
            self.pump();
        } else {
            self.outbox.push(
                owner,
                ShardMsg::Event {
                    ev,
                    key_hash,
                    router,
                    received: now,
                },
            );
        }
    }

    /// Sends an answer read on this shard to the shard that owns its event.
    pub fn route_answer(&self, server: ServerId, answer: ParsedAnswer, now: Instant) {
        let owner = usize::from(answer.id.shard);
        if owner == usize::from(self.id) {
            self.engine.borrow_mut().on_answer(server, answer, now);
            self.pump();
        } else if owner < usize::from(self.shards) {
            self.outbox.push(owner, ShardMsg::Answer { server, answer });
        } else {
            self.counters.borrow_mut().unknown_answers += 1;
        }
    }

    /// Handles a message from another shard.
    pub fn on_message(self: &std::rc::Rc<Self>, msg: ShardMsg) {
        let now = Instant::now();
        match msg {
            ShardMsg::Event {
                ev,
                key_hash,
                router,
                received,
            } => {
                // Timers and residence count from when the router's shard read the event.
                let wall = self.wall(now);
                self.engine
                    .borrow_mut()
                    .submit(ev, key_hash, router, received, wall);
            }
            ShardMsg::Verdict { conn, bytes } => self.deliver_verdict(conn, &bytes),
            ShardMsg::Send {
                server,
                from,
                request,
                bytes,
            } => {
                if !self.offer(server, from, &bytes) {
                    self.outbox.push(
                        usize::from(from),
                        ShardMsg::SendDeferred {
                            server,
                            link: self.id,
                            request,
                            bytes,
                        },
                    );
                } else if let Outgoing::Replay { seq } = request {
                    self.outbox
                        .push(usize::from(from), ShardMsg::ReplayWritten { seq });
                }
            }
            ShardMsg::ReplayWritten { seq } => self.engine.borrow_mut().on_replay_written(seq, now),
            ShardMsg::SendDeferred {
                server,
                link,
                request,
                bytes,
            } => self
                .engine
                .borrow_mut()
                .on_send_deferred(server, link, request, bytes, now),
            ShardMsg::WantRoom { server, from } => self.want_room(server, from),
            ShardMsg::Room { server, link } => {
                self.engine.borrow_mut().on_link_room(server, link, now)
            }
            ShardMsg::Answer { server, answer } => {
                self.engine.borrow_mut().on_answer(server, answer, now)
            }
            ShardMsg::Link {
                server,
                link,
                up,
                graceful,
            } => {
                let mut engine = self.engine.borrow_mut();
                if up {
                    engine.on_link_up(server, link, now);
                } else {
                    engine.on_link_down(server, link, graceful, now);
                }
            }
            ShardMsg::SnapshotRequest { reply_to, token } => {
                let snapshot = Box::new(super::status::snapshot(self));
                self.outbox.push(
                    usize::from(reply_to),
                    ShardMsg::Snapshot { token, snapshot },
                );
            }
            ShardMsg::Snapshot { token, snapshot } => {
                super::status::collected(self, token, *snapshot)
            }
            ShardMsg::Reconfigure {
                config,
                policy,
                tls,
            } => {
                self.replace_tls(tls);
                super::reload::apply(self, config, policy)
            }
            ShardMsg::Accepted {
                stream,
                leg,
                transport,
                acceptor,
            } => {
                let slot = super::accept::Slot::new(self.clone(), acceptor, leg);
                super::serve(
                    self.clone(),
                    stream.bind_to_executor(),
                    leg,
                    transport,
                    slot,
                )
            }
            ShardMsg::Admission { leg, change } => super::accept::admission(self, leg, change),
        }
        self.pump();
    }

    /// A stream of this shard to `server` came up or went away: tell every engine.
    pub fn link_changed(&self, server: ServerId, up: bool, graceful: bool) {
        let now = Instant::now();
        {
            let mut engine = self.engine.borrow_mut();
            if up {
                engine.on_link_up(server, self.id, now);
            } else {
                engine.on_link_down(server, self.id, graceful, now);
            }
        }
        for peer in 0..usize::from(self.shards) {
            if peer != usize::from(self.id) {
                self.outbox.push(
                    peer,
                    ShardMsg::Link {
                        server,
                        link: self.id,
                        up,
                        graceful,
                    },
                );
            }
        }
        self.pump();
    }

    /// Carries out everything the engine asked for.
    pub fn pump(&self) {
        loop {
            let action = self.engine.borrow_mut().poll_action();
            let Some(action) = action else {
                let engine = self.engine.borrow();
                if engine.spool_has_work() {
                    self.spool_wake.notify();
                }
                if engine.replay_due() {
                    self.replay_wake.notify();
                }
                drop(engine);
                super::released(self);
                return;
            };
            match action {
                Action::Send {
                    server,
                    link,
                    request,
                    bytes,
                } => self.send(server, link, request, bytes),
                Action::AwaitRoom { server, link } => {
                    if link == self.id {
                        self.want_room(server, self.id);
                    } else {
                        self.outbox.push(
                            usize::from(link),
                            ShardMsg::WantRoom {
                                server,
                                from: self.id,
                            },
                        );
                    }
                }
                Action::Verdict { router, bytes } => {
                    if router.shard == self.id {
                        self.deliver_verdict(router.conn, &bytes);
                    } else {
                        self.outbox.push(
                            usize::from(router.shard),
                            ShardMsg::Verdict {
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
    }

    fn send(&self, server: ServerId, link: u16, request: Outgoing, bytes: Bytes) {
        if link != self.id {
            self.outbox.push(
                usize::from(link),
                ShardMsg::Send {
                    server,
                    from: self.id,
                    request,
                    bytes,
                },
            );
            return;
        }
        if !self.offer(server, self.id, &bytes) {
            self.engine.borrow_mut().on_send_deferred(
                server,
                self.id,
                request,
                bytes,
                Instant::now(),
            );
        } else if let Outgoing::Replay { seq } = request {
            self.engine
                .borrow_mut()
                .on_replay_written(seq, Instant::now());
        }
    }

    /// Writes a send of shard `from`'s engine on this shard's stream to `server`; false if the
    /// stream is gone, its output is past `stream_buffer_bytes`, or it still refuses that
    /// engine (see [`PeerFlow`]).
    fn offer(&self, server: ServerId, from: u16, bytes: &[u8]) -> bool {
        let links = self.links.borrow();
        let Some(conn) = links.get(server.index()).and_then(Option::as_ref) else {
            return false;
        };
        let mut flows = self.link_flow.borrow_mut();
        let peer = flows
            .get_mut(server.index())
            .and_then(Option::as_mut)
            .filter(|f| Rc::ptr_eq(&f.conn, conn))
            .and_then(|f| f.peers.get_mut(usize::from(from)));
        if peer.as_ref().is_some_and(|p| **p != PeerFlow::Open) {
            return false;
        }
        if conn.send(bytes, self.config().limits.stream_buffer_bytes) {
            return true;
        }
        if let Some(p) = peer {
            *p = PeerFlow::Refused;
        }
        false
    }

    /// Shard `from`'s engine waits for room on this shard's stream to `server`. A stream that
    /// is gone gives none: its loss reaches every engine instead.
    fn want_room(&self, server: ServerId, from: u16) {
        let mut flows = self.link_flow.borrow_mut();
        if let Some(flow) = flows.get_mut(server.index()).and_then(Option::as_mut) {
            if let Some(p) = flow.peers.get_mut(usize::from(from)) {
                *p = PeerFlow::Waiting;
            }
            flow.want.notify();
        }
    }

    /// Starts flow control for a new active stream `conn` to `server`; returns what wakes its
    /// room task. The stream it replaces (if any) stops being waited for.
    pub fn open_link_flow(&self, server: ServerId, conn: &ConnRef) -> Rc<Notify> {
        let want = Rc::new(Notify::default());
        let mut flows = self.link_flow.borrow_mut();
        if flows.len() <= server.index() {
            flows.resize_with(server.index() + 1, || None);
        }
        let old = flows[server.index()].replace(LinkFlow {
            conn: conn.clone(),
            peers: vec![PeerFlow::Open; usize::from(self.shards)],
            want: want.clone(),
        });
        if let Some(old) = old {
            old.want.notify();
        }
        want
    }

    /// `conn` to `server` ended: its room task stops.
    pub fn close_link_flow(&self, server: ServerId, conn: &ConnRef) {
        let mut flows = self.link_flow.borrow_mut();
        if let Some(slot) = flows.get_mut(server.index()) {
            if slot.as_ref().is_some_and(|f| Rc::ptr_eq(&f.conn, conn)) {
                if let Some(old) = slot.take() {
                    old.want.notify();
                }
            }
        }
    }

    /// Whether an engine waits for room on `conn`, this shard's stream to `server`; `None` once
    /// that stream is no longer the one in service (its room task ends).
    pub fn room_wanted(&self, server: ServerId, conn: &ConnRef) -> Option<bool> {
        let flows = self.link_flow.borrow();
        let flow = flows
            .get(server.index())
            .and_then(Option::as_ref)
            .filter(|f| Rc::ptr_eq(&f.conn, conn))?;
        Some(flow.peers.contains(&PeerFlow::Waiting))
    }

    /// `conn` to `server` drained below its low watermark: every engine waiting for room gets
    /// it (its deferred sends reached it before this, on the same channel).
    pub fn grant_room(&self, server: ServerId, conn: &ConnRef) {
        let mut granted = Vec::new();
        {
            let mut flows = self.link_flow.borrow_mut();
            let Some(flow) = flows
                .get_mut(server.index())
                .and_then(Option::as_mut)
                .filter(|f| Rc::ptr_eq(&f.conn, conn))
            else {
                return;
            };
            for (peer, p) in flow.peers.iter_mut().enumerate() {
                if *p == PeerFlow::Waiting {
                    *p = PeerFlow::Open;
                    granted.push(peer as u16);
                }
            }
        }
        let now = Instant::now();
        for peer in granted {
            if peer == self.id {
                self.engine.borrow_mut().on_link_room(server, self.id, now);
            } else {
                self.outbox.push(
                    usize::from(peer),
                    ShardMsg::Room {
                        server,
                        link: self.id,
                    },
                );
            }
        }
        self.pump();
    }

    /// Verdicts are never refused: the router's output is bounded by its reads pausing (see
    /// [`ShardCtx::router_hold`]).
    fn deliver_verdict(&self, conn: u32, bytes: &[u8]) {
        let delivered = self
            .routers
            .borrow()
            .get(&conn)
            .is_some_and(|r| r.conn.push(bytes));
        if !delivered {
            self.counters.borrow_mut().undeliverable_verdicts += 1;
        }
    }

    fn alarm(&self, alarm: Alarm) {
        if self.shutting_down.get() {
            // Streams closing because we are stopping are not outages.
            return;
        }
        let server = alarm
            .server()
            .and_then(|id| self.policy().server(id).map(|s| s.name.clone()))
            .unwrap_or_else(|| "?".to_owned());
        // The spool's alarm is about this shard's spool, not a server.
        let what = match alarm.server() {
            Some(_) => format!("compliance server {server}"),
            None => format!("the spool of shard {} refuses records", self.id),
        };
        let mut raised = self.alarms.borrow_mut();
        let same = |a: &Alarm| a.name() == alarm.name() && a.server() == alarm.server();
        if alarm.raised() {
            if !raised.iter().any(same) {
                raised.push(alarm.clone());
                self.counters.borrow_mut().count_alarm(alarm.name());
                let level = match alarm {
                    Alarm::QueueFull { .. } => Level::Warn,
                    _ => Level::Error,
                };
                self.log(level, &format!("alarm {} raised: {what}", alarm.name()));
            }
        } else if raised.iter().any(same) {
            raised.retain(|a| !same(a));
            self.log(
                Level::Info,
                &format!("alarm {} cleared: {what}", alarm.name()),
            );
        }
    }

    fn protocol_violation(&self, server: ServerId, event: &str, detail: &str) {
        let Some(held_back) = self.violations_logged.borrow_mut().allow(Instant::now()) else {
            return;
        };
        let name = self
            .policy()
            .server(server)
            .map_or_else(|| "?".to_owned(), |s| s.name.clone());
        self.log(
            Level::Warn,
            &format!(
                "protocol violation by compliance server {name} on {event}: {detail}{}",
                log::suppressed(held_back)
            ),
        );
    }
}
