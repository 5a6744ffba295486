//! One shard's runtime context: its gateway core, the sockets behind the core's connection
//! ids, its outbox, and `execute`, which carries out what the core asks for (bytes to write,
//! offers, stream commands, closes, messages for other shards, log lines, dialers to start).
//!
//! Every decision is the core's (`crate::gateway`), whether a connection's reader reads on
//! included (`hold` measures its unwritten output and the outbox, the core decides); what
//! stays here is what needs a socket, a task or the clock: the wall-clock cache, and the tasks
//! that watch a stream's output for room or close a retired stream later.
//!
//! Everything here is single-threaded (`Rc`/`RefCell` on one executor); nothing is shared with
//! another shard except through the channel mesh. No borrow is held across an await, and the
//! core is never borrowed while an output is carried out.

use super::conn::{Conn, ConnRef, Hold};
use super::log::{self, Level};
use super::mesh::{Outbox, ShardMsg};
use super::notify::{Notify, ShardWakes};
use crate::gateway::{
    ConnId, ConnectionEvent, Dial, Gateway, Now, Offered, Output, Peer, Room, StreamCommand,
};
use crate::policy::{CompiledPolicy, Config, ServerId};
use crate::wire::{ComponentStream, FromCheck, StreamConfig, StreamEvent};
use ahash::AHashMap;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub use crate::admin::RuntimeCounters;

/// A connection the core knows by its id.
struct Socket {
    conn: ConnRef,
    /// Wakes the task that watches a link's output for room (`watch_room`).
    room: Option<Rc<Notify>>,
}

/// See the module documentation.
pub struct ShardCtx {
    pub id: u16,
    pub shards: u16,
    /// The configuration and policy in force; replaced whole by a reload (`reload.rs`), never
    /// borrowed across an await. The core holds the same ones.
    config: RefCell<Arc<Config>>,
    policy: RefCell<Arc<CompiledPolicy>>,
    /// The gateway core: every decision about events, routers and links.
    pub core: RefCell<Gateway>,
    pub outbox: Outbox,
    /// The sockets of the core's connections.
    sockets: RefCell<AHashMap<ConnId, Socket>>,
    pub counters: RefCell<RuntimeCounters>,
    pub shutting_down: Cell<bool>,
    /// Snapshots gathered from other shards, by request token (see `status.rs`).
    pub snapshots: RefCell<AHashMap<u64, Vec<crate::admin::ShardSnapshot>>>,
    /// The compliance listener is up on this shard.
    pub compliance_listening: Cell<bool>,
    /// The router listeners are open on this shard (for `/readyz`).
    pub routers_listening: Cell<bool>,
    /// Connections accepted here and still open, per listener (routers, compliance), wherever
    /// they are served (see `accept.rs`).
    pub conn_counts: RefCell<[super::caps::Count; 2]>,
    /// The latest reload's outcome (kept by shard 0, which does the reloading).
    pub reload_report: RefCell<ReloadReport>,
    /// The wall time read for the last batch of events, by the instant of that batch's read.
    wall_cache: Cell<(Instant, SystemTime)>,
    /// The TLS configurations in force; replaced whole by a reload, like `config`.
    tls: RefCell<Arc<crate::tls::Material>>,
    /// Wakes the spool's writer (`spool.rs`) when the engine spooled something.
    pub spool_wake: Notify,
    /// Wakes the spool's replay task (`spool.rs`) when a replay pass is due.
    pub replay_wake: Notify,
    /// Dialers the core asked for, started by the shard's dialer task (`runtime.rs`).
    dials: RefCell<VecDeque<Dial>>,
    pub dial_wake: Notify,
    /// What this shard's tasks wait on instead of polling (see `notify.rs`).
    pub wakes: ShardWakes,
}

impl ShardCtx {
    pub fn new(
        id: u16,
        shards: u16,
        config: Arc<Config>,
        policy: Arc<CompiledPolicy>,
        core: Gateway,
    ) -> ShardCtx {
        ShardCtx {
            id,
            shards,
            config: RefCell::new(config),
            policy: RefCell::new(policy),
            core: RefCell::new(core),
            outbox: Outbox::new(usize::from(shards)),
            sockets: RefCell::new(AHashMap::new()),
            counters: RefCell::new(RuntimeCounters::default()),
            shutting_down: Cell::new(false),
            snapshots: RefCell::new(AHashMap::new()),
            compliance_listening: Cell::new(false),
            routers_listening: Cell::new(false),
            conn_counts: RefCell::new(Default::default()),
            reload_report: RefCell::new(Default::default()),
            wall_cache: Cell::new((Instant::now(), SystemTime::now())),
            tls: RefCell::new(Arc::default()),
            spool_wake: Notify::default(),
            replay_wake: Notify::default(),
            dials: RefCell::new(VecDeque::new()),
            dial_wake: Notify::default(),
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

    /// Puts a reloaded configuration and policy in force for the runtime (the core gets them
    /// through `Gateway::handle_reconfigure`).
    pub fn replace_config(&self, config: Arc<Config>, policy: Arc<CompiledPolicy>) {
        self.config.replace(config);
        self.policy.replace(policy);
    }

    /// A dialer or stream of `generation` still serves `server` (no reload replaced it).
    pub fn link_current(&self, server: ServerId, generation: u32) -> bool {
        self.core.borrow().link_current(server, generation)
    }

    pub fn router_generation(&self, name: &str) -> u32 {
        self.core.borrow().router_generation(name)
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

    /// Whether connection `id`'s reader (on `conn`) reads on: the core decides
    /// (`Gateway::poll_read_hold`) from what is unwritten and this shard's outbox.
    pub fn hold(&self, id: ConnId, conn: &Conn) -> Hold {
        let unwritten = conn.unwritten();
        self.core
            .borrow_mut()
            .poll_read_hold(id, unwritten, || self.outbox.longest())
    }

    /// The time of an input read at `at`: one wall-clock read per batch, not per event.
    pub fn now_at(&self, at: Instant) -> Now {
        let (cached, wall) = self.wall_cache.get();
        if cached == at {
            return Now { at, wall };
        }
        let wall = SystemTime::now();
        self.wall_cache.set((at, wall));
        Now { at, wall }
    }

    /// Gives the core an input, then carries out everything it asks for.
    pub fn feed<R>(self: &Rc<Self>, input: impl FnOnce(&mut Gateway) -> R) -> R {
        let result = input(&mut self.core.borrow_mut());
        self.execute();
        result
    }

    /// A new connection to `peer` at `addr`, carried by `conn`: the core's id for it.
    pub fn open(&self, peer: Peer, addr: String, conn: &ConnRef) -> ConnId {
        let id = self.core.borrow_mut().handle_connection_opened(peer, addr);
        let socket = Socket {
            conn: conn.clone(),
            room: None,
        };
        self.sockets.borrow_mut().insert(id, socket);
        id
    }

    /// A stream event of connection `id`, read at `now`, for the core.
    pub fn on_stream_event(self: &Rc<Self>, id: ConnId, event: StreamEvent, now: Instant) {
        let event = match event {
            StreamEvent::Stanza(stanza) => {
                let now = self.now_at(now);
                return self.feed(|core| core.handle_stanza(id, &stanza, now));
            }
            StreamEvent::NameAnnounced { name } => ConnectionEvent::NameAnnounced { name },
            StreamEvent::Active => ConnectionEvent::Active,
            // Reported by `ended`, once `drive` returned (a contained panic never gets here).
            StreamEvent::Closed(_) => return,
        };
        self.feed(|core| core.handle_connection_event(id, event, now));
    }

    /// Connection `id` ended: the core hears of it, then its socket is forgotten.
    pub fn ended(self: &Rc<Self>, id: ConnId, closed: crate::wire::Closed) {
        self.feed(|core| {
            core.handle_connection_event(id, ConnectionEvent::Ended(closed), Instant::now())
        });
        self.sockets.borrow_mut().remove(&id);
    }

    /// The sockets of the core's connections `ids` (those still open).
    pub fn sockets_of(&self, ids: &[ConnId]) -> Vec<ConnRef> {
        let sockets = self.sockets.borrow();
        ids.iter()
            .filter_map(|id| sockets.get(id).map(|s| s.conn.clone()))
            .collect()
    }

    /// The next dialer the core asked for.
    pub fn take_dial(&self) -> Option<Dial> {
        self.dials.borrow_mut().pop_front()
    }

    fn socket(&self, id: ConnId) -> Option<ConnRef> {
        self.sockets.borrow().get(&id).map(|s| s.conn.clone())
    }

    /// After the shard carried out the core's outputs (`execute`) or its outbox shrank: wakes
    /// whatever waits for progress (the shutdown's drain) and, once the events in flight (and, for
    /// reads, the outbox) are back at the low watermark, half of `max_in_flight`, whatever waits
    /// for room. Costs a few loads when nobody waits.
    pub fn released(&self) {
        let ctx = self;
        let wakes = &ctx.wakes;
        wakes.progress.notify_all();
        if !wakes.reads.is_waited() && !wakes.events.is_waited() {
            return;
        }
        let room = ctx.core.borrow().room(|| ctx.outbox.longest());
        match room {
            Room::None => {}
            Room::Events => wakes.events.notify_all(),
            Room::EventsAndReads => {
                wakes.events.notify_all();
                wakes.reads.notify_all();
            }
        }
    }

    /// Carries out everything the core asks for, until it has nothing more.
    pub fn execute(self: &Rc<Self>) {
        loop {
            let output = self.core.borrow_mut().poll_output();
            let Some(output) = output else {
                // Readers and mesh consumers held for room wake at the low watermark.
                self.released();
                return;
            };
            match output {
                Output::Write { conn, bytes } => {
                    // Bounded by the peer's reads pausing past its output limit (the holds).
                    if let Some(c) = self.socket(conn) {
                        c.push(&bytes);
                    }
                }
                Output::Verdict { conn, bytes } => {
                    if !self.socket(conn).is_some_and(|c| c.push(&bytes)) {
                        self.counters.borrow_mut().undeliverable_verdicts += 1;
                    }
                }
                Output::Offer(offer) => {
                    let taken = self
                        .socket(offer.conn())
                        .is_some_and(|c| c.send(offer.bytes(), offer.limit()));
                    let outcome = match taken {
                        true => Offered::Taken,
                        false => Offered::Refused,
                    };
                    self.core
                        .borrow_mut()
                        .handle_offer(offer, outcome, Instant::now());
                }
                Output::Stream { conn, command } => {
                    if let Some(c) = self.socket(conn) {
                        let mut stream = c.stream.borrow_mut();
                        match command {
                            StreamCommand::AcceptName { secret } => stream.accept_name(&secret),
                            StreamCommand::Refuse { condition, reason } => {
                                stream.refuse(condition, reason)
                            }
                            StreamCommand::EnablePings { from, to } => {
                                stream.enable_pings(&from, &to)
                            }
                        }
                    }
                }
                Output::Close { conn } => {
                    if let Some(c) = self.socket(conn) {
                        c.close();
                    }
                }
                Output::CloseLater {
                    conn,
                    server,
                    after,
                } => {
                    let ctx = self.clone();
                    glommio::spawn_local(async move {
                        glommio::timer::sleep(after).await;
                        ctx.feed(|core| core.handle_retire_due(server, conn));
                    })
                    .detach();
                }
                Output::ToShard { shard, message } => self
                    .outbox
                    .push(usize::from(shard), ShardMsg::Peer(message)),
                Output::Log { level, text } => self.log(log_level(level), &text),
                Output::WatchRoom { conn, server } => {
                    let want = Rc::new(Notify::default());
                    let socket = {
                        let mut sockets = self.sockets.borrow_mut();
                        sockets.get_mut(&conn).map(|s| {
                            s.room = Some(want.clone());
                            s.conn.clone()
                        })
                    };
                    if let Some(socket) = socket {
                        glommio::spawn_local(watch_room(self.clone(), server, conn, socket, want))
                            .detach();
                    }
                }
                Output::WakeRoom { conn } => {
                    if let Some(room) = self
                        .sockets
                        .borrow()
                        .get(&conn)
                        .and_then(|s| s.room.as_ref())
                    {
                        room.notify();
                    }
                }
                Output::Dial(dial) => {
                    self.dials.borrow_mut().push_back(dial);
                    self.dial_wake.notify();
                }
                Output::SpoolWork => self.spool_wake.notify(),
                Output::ReplayDue => self.replay_wake.notify(),
            }
        }
    }
}

fn log_level(level: crate::gateway::Level) -> Level {
    match level {
        crate::gateway::Level::Error => Level::Error,
        crate::gateway::Level::Warn => Level::Warn,
        crate::gateway::Level::Info => Level::Info,
        crate::gateway::Level::Debug => Level::Debug,
    }
}

/// Watches `conn`, this shard's stream to `server`, for room: each time an engine waits for it,
/// waits until the output drained to half of `stream_buffer_bytes` and tells the core; ends
/// with the stream. One task per stream, woken by the core, then by the writer: no polling.
async fn watch_room(
    ctx: Rc<ShardCtx>,
    server: ServerId,
    id: ConnId,
    conn: ConnRef,
    want: Rc<Notify>,
) {
    loop {
        want.wait().await;
        let wanted = ctx.core.borrow().room_wanted(server, id);
        match wanted {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        let low = ctx.core.borrow().link_low_water();
        conn.output_below(low).await;
        if !conn.stream.borrow().is_active() {
            // Going away: its loss, not room, reaches the engines.
            return;
        }
        ctx.feed(|core| core.handle_connection_event(id, ConnectionEvent::Drained, Instant::now()));
    }
}

/// The outcome of the latest reload, for `/status`.
#[derive(Clone, Debug, Default)]
pub struct ReloadReport {
    /// Configurations put in force since start (0: the one the gateway started with).
    pub generation: u32,
    pub file: Option<PathBuf>,
    /// Seconds since the Unix epoch, whether it worked, and what it did or why not.
    pub last: Option<(u64, bool, String)>,
    /// A reload is under way (SIGHUP and `POST /reload` take turns).
    pub in_progress: bool,
}

impl ReloadReport {
    pub fn to_json(&self) -> serde_json::Value {
        let last = self.last.as_ref().map(
            |(at, ok, message)| serde_json::json!({ "at_unix": at, "ok": ok, "message": message }),
        );
        serde_json::json!({
            "generation": self.generation,
            "file": self.file.as_ref().map(|f| f.display().to_string()),
            "last_reload": last,
        })
    }
}
