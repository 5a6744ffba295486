//! One shard's runtime context: its engine, its connections, its outbox, and `pump`, which
//! carries the engine's actions to sockets on this shard or to other shards.
//!
//! Everything here is single-threaded (`Rc`/`RefCell` on one executor); nothing is shared with
//! another shard except through the channel mesh. No borrow is held across an await.

use super::conn::ConnRef;
use super::log::{self, Level};
use super::mesh::{Outbox, ShardMsg};
use crate::engine::{Action, Alarm, RouterRef, ShardEngine};
use crate::policy::{CompiledPolicy, Config, NodeId, ServerId};
use crate::protocol::{InboundEvent, ParsedAnswer, RequestId};
use crate::routing::{owner_shard, KeyHasher};
use crate::wire::{ComponentStream, FromCheck, StreamConfig};
use ahash::AHashMap;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
    /// The latest reload's outcome (kept by shard 0, which does the reloading).
    pub reload_report: RefCell<super::reload::ReloadReport>,
    /// The wall time read for the last batch of events, by the instant of that batch's read.
    wall_cache: Cell<(Instant, SystemTime)>,
    /// Protocol violations logged in the current second, to rate-limit the log.
    violations_logged: Cell<(u64, u32)>,
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
            counters: RefCell::new(RuntimeCounters::default()),
            alarms: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
            snapshots: RefCell::new(AHashMap::new()),
            next_conn: Cell::new(0),
            link_generations: RefCell::new(vec![0; servers]),
            router_generations: RefCell::new(AHashMap::new()),
            compliance_listening: Cell::new(false),
            reload_report: RefCell::new(Default::default()),
            violations_logged: Cell::new((0, 0)),
            wall_cache: Cell::new((Instant::now(), SystemTime::now())),
        }
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
                request,
                bytes,
            } => {
                if !self.write_to_link(server, &bytes) {
                    if let Some(id) = request {
                        self.outbox
                            .push(usize::from(id.shard), ShardMsg::SendRejected { id });
                    }
                }
            }
            ShardMsg::SendRejected { id } => self.engine.borrow_mut().on_send_rejected(id, now),
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
            ShardMsg::Reconfigure { config, policy } => super::reload::apply(self, config, policy),
            ShardMsg::Accepted { stream, leg } => {
                super::serve(self.clone(), stream.bind_to_executor(), leg)
            }
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
                return;
            };
            match action {
                Action::Send {
                    server,
                    link,
                    request,
                    bytes,
                } => self.send(server, link, request, bytes),
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

    fn send(&self, server: ServerId, link: u16, request: Option<RequestId>, bytes: Bytes) {
        if link != self.id {
            self.outbox.push(
                usize::from(link),
                ShardMsg::Send {
                    server,
                    request,
                    bytes,
                },
            );
            return;
        }
        if !self.write_to_link(server, &bytes) {
            if let Some(id) = request {
                self.engine
                    .borrow_mut()
                    .on_send_rejected(id, Instant::now());
            }
        }
    }

    fn write_to_link(&self, server: ServerId, bytes: &[u8]) -> bool {
        let links = self.links.borrow();
        match links.get(server.index()).and_then(Option::as_ref) {
            Some(conn) => conn.send(bytes, self.config().limits.stream_buffer_bytes),
            None => false,
        }
    }

    fn deliver_verdict(&self, conn: u32, bytes: &[u8]) {
        let delivered = self
            .routers
            .borrow()
            .get(&conn)
            .is_some_and(|r| r.conn.send(bytes, usize::MAX));
        if !delivered {
            self.counters.borrow_mut().undeliverable_verdicts += 1;
        }
    }

    fn alarm(&self, alarm: Alarm) {
        if self.shutting_down.get() {
            // Streams closing because we are stopping are not outages.
            return;
        }
        let server = self
            .policy()
            .server(alarm.server())
            .map_or_else(|| "?".to_owned(), |s| s.name.clone());
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
                self.log(
                    level,
                    &format!("alarm {} raised: compliance server {server}", alarm.name()),
                );
            }
        } else if raised.iter().any(same) {
            raised.retain(|a| !same(a));
            self.log(
                Level::Info,
                &format!("alarm {} cleared: compliance server {server}", alarm.name()),
            );
        }
    }

    fn protocol_violation(&self, server: ServerId, event: &str, detail: &str) {
        let second = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let (window, count) = self.violations_logged.get();
        let count = if window == second { count + 1 } else { 1 };
        self.violations_logged.set((second, count));
        if count <= 10 {
            let name = self
                .policy()
                .server(server)
                .map_or_else(|| "?".to_owned(), |s| s.name.clone());
            self.log(
                Level::Warn,
                &format!("protocol violation by compliance server {name} on {event}: {detail}"),
            );
        }
    }
}
