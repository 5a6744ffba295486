//! The thin runtime: glommio executors (one per shard, pinned), the channel mesh between them,
//! listeners (SO_REUSEPORT on every shard), dialers, the per-shard timer task, configuration
//! reloads on SIGHUP, and graceful shutdown on SIGTERM/SIGINT.
//!
//! Owns sockets, tasks and the clock; all protocol and policy decisions are the wire core's,
//! the protocol layer's, the engine's and the gateway core's (flow control, reloads, the
//! redial schedule, the shutdown's sequence and the status figures included). Shards share nothing but immutable configurations
//! (a reload sends each shard the new one); everything else crosses shards as messages (see
//! `mesh.rs`).

mod accept;
mod admin;
mod backoff;
mod caps;
mod conn;
mod contain;
mod link;
mod listen;
pub mod log;
mod mesh;
mod notify;
mod reload;
mod router;
mod shard;
mod spool;
mod startup;
pub mod status;
mod stop;
pub mod systemd;
mod tls;

use crate::engine::ShardEngine;
use crate::gateway::{Dial, Gateway, PeerMessage, ShutdownStep};
use crate::policy::{AcceptMode, CompiledPolicy, Config};
use glommio::channels::channel_mesh::Senders;
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::net::TcpStream;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use log::Level;
use mesh::ShardMsg;
use shard::ShardCtx;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub(crate) use tls::Transport;

/// Messages each cross-shard channel holds before senders wait.
const MESH_CAPACITY: usize = 4096;
/// Why the gateway could not run.
#[derive(Debug)]
pub enum RunError {
    /// The executors could not be created (CPU placement, io_uring, locked memory).
    Executors(String),
    /// A port or the TLS files were refused before the shards started.
    Setup(String),
    /// A shard could not start (a listener could not bind...).
    Shard(ShardError),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Executors(e) if e.contains("MemLockLimit") => write!(
                f,
                "cannot start the executors: {e}: io_uring needs locked memory; raise the limit \
                 (ulimit -l, or LimitMEMLOCK= in a systemd unit) to at least 512 KiB, or more \
                 for many shards (see tuning/README.md)"
            ),
            RunError::Executors(e) => write!(f, "cannot start the executors: {e}"),
            RunError::Setup(e) => write!(f, "{e}"),
            RunError::Shard(e) => write!(f, "{e}"),
            RunError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Why a shard could not start, by who is at fault.
#[derive(Debug)]
pub enum ShardError {
    /// The shard could not join the channel mesh (glommio).
    Mesh(String),
    /// The system gave no randomness for this run's record ids.
    Randomness(getrandom::Error),
    /// The spool directory could not be read back (the disk, or what is in it).
    Spool(String),
    /// A listener could not be opened on `addr` (taken, or not this machine's: the
    /// configuration or another process).
    Listen {
        /// What it listens for.
        what: &'static str,
        /// Its address.
        addr: std::net::SocketAddr,
        /// Why, with the address.
        reason: String,
    },
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardError::Mesh(e) | ShardError::Spool(e) => write!(f, "{e}"),
            ShardError::Randomness(e) => write!(f, "no randomness for record ids: {e}"),
            ShardError::Listen { reason, .. } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for ShardError {}

/// Binds `addr` for `what`, saying so in the error.
fn bind(
    addr: std::net::SocketAddr,
    what: &'static str,
    share: bool,
) -> Result<glommio::net::TcpListener, ShardError> {
    listen::bind(addr, what, share).map_err(|reason| ShardError::Listen { what, addr, reason })
}

/// Where a reload comes from: the file to read again (none for the embedded default), and the
/// flag SIGHUP sets.
#[derive(Clone, Debug)]
pub struct ReloadSource {
    pub file: Option<PathBuf>,
    pub requested: Arc<AtomicBool>,
}

/// Runs the gateway until SIGTERM or SIGINT, then shuts it down gracefully. With `file`,
/// SIGHUP reloads the configuration from it.
pub fn run(config: Config, file: Option<PathBuf>) -> Result<(), RunError> {
    let result = run_with(config, file);
    wait_for_detached_threads(DETACHED_THREADS_LIMIT);
    result
}

/// How long the process waits at exit for glommio's detached threads to end.
const DETACHED_THREADS_LIMIT: Duration = Duration::from_secs(2);

/// Waits, at most `limit`, until the calling thread is the process's only thread; returns how
/// many others are left. For the process's exit only (`run`), not for a gateway run inside
/// a larger program.
///
/// `join_all` joins glommio's executor threads, but each executor also starts a blocking-pool
/// thread (`sys::blocking::BlockingThread`) whose `JoinHandle` it drops: the thread is
/// detached, and ends on its own once its executor has dropped the pool's channel, running its
/// thread-local destructors (mimalloc's per-thread heap among them) as it goes. Exiting while
/// one is still doing so lets the allocator's exit walk over the heaps (`mi_process_done`)
/// race a thread that is abandoning its own. Nothing can join a detached thread, so this
/// watches the process's task list until only the caller is left.
fn wait_for_detached_threads(limit: Duration) -> usize {
    let others = || {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| tasks.count().saturating_sub(1))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + limit;
    loop {
        let left = others();
        if left == 0 || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs the gateway until SIGTERM or SIGINT, reloading from `file` on SIGHUP.
fn run_with(config: Config, file: Option<PathBuf>) -> Result<(), RunError> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let shards = match config.gateway.shards {
        0 => cpus,
        n => n,
    };
    // Every shard sleeps until its bell rings (see stop.rs).
    let stop = Arc::new(stop::Stop::install(shards).map_err(RunError::Signals)?);
    let reload = Some(ReloadSource {
        file,
        requested: stop.reload_flag(),
    });
    if shards > cpus {
        log::record(
            Level::Warn,
            None,
            &format!(
                "{shards} shards on {cpus} core(s): shards beyond the cores share them and only \
                 add threads, locked memory and mesh channels; [gateway] shards = 0 runs one \
                 per core"
            ),
        );
    }
    listen::raise_fd_limit(&config, shards);
    // Before any shard binds: in reuseport mode they bind with SO_REUSEPORT, which would join
    // another process's listeners silently.
    listen::probe_reuseport_addresses(&config).map_err(RunError::Setup)?;
    let placement = if shards <= cpus {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let origin = reload
        .as_ref()
        .and_then(|r| r.file.as_ref())
        .map_or_else(|| "<configuration>".to_owned(), |f| f.display().to_string());
    let tls = Arc::new(tls_material(&config, &origin).map_err(RunError::Setup)?);
    let policy = Arc::new(CompiledPolicy::compile(&config));
    let config = Arc::new(config);
    // Every clone of the mesh builder is made here, before any executor runs (see startup.rs).
    let startup = startup::Startup::new(shards, MESH_CAPACITY);
    // systemd's notifications, when started by it (see systemd.rs).
    let supervisor = Arc::new(systemd::Supervisor::from_env(shards));
    log::record(
        Level::Info,
        None,
        &format!(
            "Palisade {} starting: {shards} shard(s), gateway {}, routers on {}",
            env!("CARGO_PKG_VERSION"),
            config.gateway.name,
            config.listen.routers
        ),
    );
    let builder = LocalExecutorPoolBuilder::new(placement)
        .name("palisade")
        .io_memory(1 << 20)
        .preempt_timer(Duration::from_millis(1));
    let handles = executor_experiments(builder)
        .on_all_shards({
            let (startup, stop) = (startup.clone(), stop.clone());
            move || {
                // The first task's first poll: this thread's executor runs (startup.rs).
                startup.enter();
                let (config, policy, startup, stop, reload, tls, supervisor) = (
                    config.clone(),
                    policy.clone(),
                    startup.clone(),
                    stop.clone(),
                    reload.clone(),
                    tls.clone(),
                    supervisor.clone(),
                );
                async move {
                    let result = shard_main(
                        (config, policy, tls),
                        startup,
                        shards,
                        stop.clone(),
                        reload,
                        supervisor,
                    )
                    .await;
                    if result.is_err() {
                        // One shard failing to start stops them all.
                        stop.request();
                    }
                    result
                }
            }
        })
        .map_err(|e| RunError::Executors(e.to_string()))?;
    startup.watch_until_started(handles.handles(), &stop);
    let mut first_error = None;
    for result in handles.join_all() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(RunError::Shard(e));
            }
            Err(e) => {
                first_error.get_or_insert(RunError::Executors(e.to_string()));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => {
            log::record(Level::Info, None, "Palisade stopped");
            Ok(())
        }
    }
}

async fn shard_main(
    (config, policy, tls): (Arc<Config>, Arc<CompiledPolicy>, Arc<crate::tls::Material>),
    startup: Arc<startup::Startup>,
    shards: usize,
    stop: Arc<stop::Stop>,
    reload: Option<ReloadSource>,
    supervisor: Arc<systemd::Supervisor>,
) -> Result<(), ShardError> {
    let mesh = startup.take_mesh();
    let (senders, mut receivers, starting) = startup.join(mesh).await.map_err(ShardError::Mesh)?;
    drop(startup);
    let id = senders.peer_id() as u16;
    let mut engine = ShardEngine::new(
        crate::gateway::engine_config(id, shards as u16, &config),
        policy.clone(),
        Instant::now(),
    );
    // Record ids start with this run's id: random, so no two runs share one.
    let mut boot = [0u8; 8];
    getrandom::getrandom(&mut boot).map_err(ShardError::Randomness)?;
    let boot = u64::from_le_bytes(boot) & 0xffff_ffff_ffff;
    engine.set_boot(boot);
    // The spool is read back before any router is accepted.
    if let Some(dir) = &config.spool.dir {
        let spool = spool::load(dir, id, shards as u16, config.spool.max_bytes)
            .map_err(ShardError::Spool)?;
        engine.attach_spool(spool, boot);
    }
    let core = Gateway::new(engine, config.clone(), policy.clone());
    let ctx = Rc::new(ShardCtx::new(
        id,
        shards as u16,
        config.clone(),
        policy.clone(),
        core,
    ));
    ctx.replace_tls(tls);
    if let Some(source) = &reload {
        ctx.reload_report.borrow_mut().file.clone_from(&source.file);
    }
    let senders = Rc::new(senders);
    for (_, rx) in receivers.streams() {
        glommio::spawn_local(consume(ctx.clone(), rx)).detach();
    }
    for peer in (0..shards).filter(|&p| p != usize::from(id)) {
        glommio::spawn_local(forward(ctx.clone(), senders.clone(), peer)).detach();
    }
    glommio::spawn_local(engine_timers(ctx.clone())).detach();
    glommio::spawn_local(dialers(ctx.clone())).detach();
    if let Some(dir) = config.spool.dir.clone() {
        glommio::spawn_local(spool::writer(ctx.clone(), dir.clone())).detach();
        glommio::spawn_local(spool::replay(ctx.clone(), dir)).detach();
    }

    // Listeners: on every shard with SO_REUSEPORT, or on shard 0 only, which hands each
    // connection to the next shard in turn (`[gateway] accept`).
    let listen_here = ctx.core.borrow().listens_for_routers();
    let handoff = config.gateway.accept == AcceptMode::Handoff;
    if listen_here {
        let routers = bind(config.listen.routers, "routers", listen::shared(&config))?;
        glommio::spawn_local(accept::serve_listener(
            ctx.clone(),
            routers,
            Leg::Router,
            Transport::Plain,
            handoff,
        ))
        .detach();
        if let Some(addr) = config.listen.routers_tls {
            let routers = bind(addr, "routers (TLS)", listen::shared(&config))?;
            glommio::spawn_local(accept::serve_listener(
                ctx.clone(),
                routers,
                Leg::Router,
                Transport::Tls,
                handoff,
            ))
            .detach();
            if id == 0 {
                ctx.log(
                    Level::Info,
                    &format!("Listening for routers with TLS on {addr}"),
                );
            }
        }
        ctx.routers_listening.set(true);
    }
    listen_for_compliance(&ctx, &config, false)?;
    // The dialers the core keeps on this shard start now (its first outputs).
    ctx.execute();
    if id == 0 {
        if let Some(addr) = config.gateway.admin {
            // Only shard 0 serves it: SO_REUSEPORT only when ports are shared on purpose.
            let listener = bind(addr, "the admin endpoint", config.gateway.share_ports)?;
            glommio::spawn_local(admin::serve(ctx.clone(), listener, admin::Started::now()))
                .detach();
            ctx.log(
                Level::Info,
                &format!("Status and metrics on http://{addr}/status and /metrics"),
            );
        }
        ctx.log(
            Level::Info,
            &format!("Listening for routers on {}", config.listen.routers),
        );
    }
    // This shard's startup is complete (whatever must finish before the gateway serves goes
    // above this line); the last shard here tells systemd READY=1.
    supervisor.shard_ready(id);
    if let Some(tick) = supervisor.watchdog_tick() {
        glommio::spawn_local(feed_watchdog(supervisor.clone(), id, tick)).detach();
    }
    // Watched by the starting thread until this task has slept on a timer once (startup.rs):
    // from then on the engine's timer task, always armed, bounds any stall of the executor.
    glommio::timer::sleep(startup::FIRST_TIMER).await;
    drop(starting);
    // Sleeps until a signal (or a shard that failed to start) rings this shard's bell.
    let mut bell = stop.bell(id);
    if bell.is_none() {
        ctx.log(Level::Error, &no_bell("no stop bell for this shard"));
    }
    while !stop.requested() {
        if let Some(source) = reload.as_ref().filter(|_| id == 0) {
            if source.requested.swap(false, Ordering::SeqCst) {
                match &source.file {
                    Some(file) => reload::from_file(&ctx, file).await,
                    None => ctx.log(
                        Level::Warn,
                        "SIGHUP: running the embedded default configuration, no file to reload",
                    ),
                }
                continue;
            }
        }
        match bell.as_mut() {
            Some(b) => {
                if let Err(e) = b.rung().await {
                    ctx.log(Level::Error, &no_bell(&e.to_string()));
                    bell = None;
                }
            }
            // The last resort: the flags looked at on a timer.
            None => glommio::timer::sleep(STOP_POLL).await,
        }
    }
    if id == 0 {
        supervisor.stopping();
    }
    // Hidden, unsupported, for perf/park-counts.sh: glommio's own counts of this shard's run
    // (task polls, and scheduler passes: about one per turn of the executor's loop).
    if std::env::var_os("PALISADE_EXECUTOR_STATS").is_some() {
        let stats = glommio::executor().executor_stats();
        ctx.log(
            Level::Info,
            &format!(
                "executor stats: {} tasks run, {} scheduler runs",
                stats.tasks_executed(),
                stats.scheduler_runs()
            ),
        );
    }
    shutdown(&ctx).await;
    Ok(())
}

/// How often a shard without a working stop bell looks at the stop and reload flags.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The log line of a shard whose stop bell failed (it cannot, short of running out of
/// descriptors at start).
fn no_bell(why: &str) -> String {
    format!("{why}: looking for SIGTERM, SIGINT and SIGHUP every {STOP_POLL:?} instead")
}

/// Marks this shard alive every `tick` from its own executor; on shard 0, feeds systemd's
/// watchdog every second tick while every shard is alive (see systemd.rs).
async fn feed_watchdog(supervisor: Arc<systemd::Supervisor>, id: u16, tick: Duration) {
    let mut feed = false;
    loop {
        supervisor.beat(id, feed);
        feed = !feed;
        glommio::timer::sleep(tick).await;
    }
}

/// Opens the compliance port on the shards that listen, once some server dials in (at start, or
/// when a reload adds the first inbound server: `after_start`).
pub(crate) fn listen_for_compliance(
    ctx: &Rc<ShardCtx>,
    config: &Config,
    after_start: bool,
) -> Result<(), ShardError> {
    // The core decides, under the configuration it holds (the same as `config`).
    if !ctx.core.borrow().listens_for_compliance() {
        return Ok(());
    }
    let addresses = [
        (
            config.listen.compliance,
            Transport::Plain,
            "compliance servers",
        ),
        (
            config.listen.compliance_tls,
            Transport::Tls,
            "compliance servers (TLS)",
        ),
    ];
    for (addr, transport, what) in addresses {
        if let Some(addr) = addr {
            listen_for_compliance_on(ctx, config, addr, transport, what, after_start)?;
        }
    }
    ctx.compliance_listening.set(true);
    Ok(())
}

fn listen_for_compliance_on(
    ctx: &Rc<ShardCtx>,
    config: &Config,
    addr: std::net::SocketAddr,
    transport: Transport,
    what: &'static str,
    after_start: bool,
) -> Result<(), ShardError> {
    let reuseport = config.gateway.accept == AcceptMode::ReusePort;
    if reuseport && ctx.id == 0 && !config.gateway.share_ports && after_start {
        // A reload added the first inbound server: shard 0 applies it before any other shard
        // hears of it, so it can probe the port before the shards bind it with SO_REUSEPORT.
        // (At start, `run_with` probed it before the shards began.)
        listen::probe(addr, what).map_err(|reason| ShardError::Listen { what, addr, reason })?;
    }
    let listener = bind(addr, what, listen::shared(config))?;
    let handoff = config.gateway.accept == AcceptMode::Handoff;
    let leg = Leg::Compliance;
    glommio::spawn_local(accept::serve_listener(
        ctx.clone(),
        listener,
        leg,
        transport,
        handoff,
    ))
    .detach();
    Ok(())
}

/// Builds the TLS material the configuration calls for, logging its warnings; the first error
/// (all are logged) stops the start.
fn tls_material(config: &Config, origin: &str) -> Result<crate::tls::Material, String> {
    let (material, problems) =
        crate::tls::Material::build(config, origin, std::time::SystemTime::now());
    for p in &problems {
        let level = if p.is_error() {
            Level::Error
        } else {
            Level::Warn
        };
        log::record(level, None, &p.to_string());
    }
    material.ok_or_else(|| {
        let errors = problems.iter().filter(|p| p.is_error()).count();
        format!("cannot start: {errors} problem(s) with the TLS files (see above)")
    })
}

/// Which kind of peer a listener serves.
#[derive(Copy, Clone, Debug)]
pub enum Leg {
    Router,
    Compliance,
}

/// Serves an accepted connection on this shard; `slot` is its place in its listener's count.
/// A panic while serving it ends that connection only (see `contain.rs`); the slot is
/// released as the unwinding drops it.
pub(crate) fn serve(
    ctx: Rc<ShardCtx>,
    tcp: TcpStream,
    leg: Leg,
    transport: Transport,
    slot: accept::Slot,
) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let shard = ctx.id;
    if log::enabled(Level::Debug) {
        log::record(
            Level::Debug,
            Some(shard),
            &format!("serving the {leg:?} connection from {peer}"),
        );
    }
    match leg {
        Leg::Router => contain::spawn(
            shard,
            format!("the router connection from {peer}"),
            router::serve_inbound(ctx, tcp, transport, slot),
        ),
        Leg::Compliance => contain::spawn(
            shard,
            format!("the compliance connection from {peer}"),
            link::serve_inbound(ctx, tcp, transport, slot),
        ),
    }
}

/// Takes messages from one peer shard.
async fn consume(ctx: Rc<ShardCtx>, rx: ConnectedReceiver<ShardMsg>) {
    while let Some(msg) = rx.recv().await {
        if matches!(msg, ShardMsg::Peer(PeerMessage::Event { .. })) {
            // Back-pressure, as the core decides: the sender's outbox grows and its router
            // reads pause. Woken at the low watermark (`released`), not on a timer.
            while ctx.core.borrow().holds_peer_events() {
                ctx.wakes.events.wait().await;
            }
        }
        on_message(&ctx, msg);
        // A channel that always has messages makes `recv` ready at every call, and glommio
        // never preempts a task between ready awaits: without this, a peer shard that keeps
        // the channel full (one flooding router is enough) starves every reader, writer and
        // timer of this shard, and quiet routers get dropped as silent.
        glommio::yield_if_needed().await;
    }
}

/// Handles a message from another shard: the core's go to the core; the runtime's own
/// (snapshots, reloads, hand-offs, admission counts) are carried out here.
fn on_message(ctx: &Rc<ShardCtx>, msg: ShardMsg) {
    match msg {
        ShardMsg::Peer(message) => {
            let now = ctx.now_at(Instant::now());
            ctx.feed(|core| core.handle_peer_message(message, now));
        }
        ShardMsg::SnapshotRequest { reply_to, token } => {
            let snapshot = Box::new(status::snapshot(ctx));
            ctx.outbox.push(
                usize::from(reply_to),
                ShardMsg::Snapshot { token, snapshot },
            );
        }
        ShardMsg::Snapshot { token, snapshot } => status::collected(ctx, token, *snapshot),
        ShardMsg::Reconfigure {
            config,
            policy,
            tls,
        } => {
            ctx.replace_tls(tls);
            reload::apply(ctx, config, policy)
        }
        ShardMsg::Accepted {
            stream,
            leg,
            transport,
            acceptor,
        } => {
            let slot = accept::Slot::new(ctx.clone(), acceptor, leg);
            serve(ctx.clone(), stream.bind_to_executor(), leg, transport, slot)
        }
        ShardMsg::Admission { leg, change } => accept::admission(ctx, leg, change),
    }
}

/// Starts the dialers the core asks for: a compliance server's stream or a router's outbound
/// leg, each kept up by its own task until the core's generation for it moves on.
async fn dialers(ctx: Rc<ShardCtx>) {
    loop {
        while let Some(dial) = ctx.take_dial() {
            match dial {
                Dial::Server { server, generation } => {
                    let name = ctx.policy().server(server).map(|s| s.name.clone());
                    let Some(name) = name else { continue };
                    contain::spawn(
                        ctx.id,
                        format!("the dialer of compliance server {name}"),
                        link::dial(ctx.clone(), server, generation),
                    );
                }
                Dial::Router {
                    index,
                    name,
                    generation,
                } => {
                    let router = ctx.config().routers.get(index).cloned();
                    let Some(router) = router.filter(|r| r.name == name) else {
                        continue;
                    };
                    let Some(addr) = router.connect.clone() else {
                        continue;
                    };
                    contain::spawn(
                        ctx.id,
                        format!("the dialer of router {}", router.name),
                        router::dial_outbound(ctx.clone(), router, addr, generation),
                    );
                }
            }
        }
        ctx.dial_wake.wait().await;
    }
}

/// Moves this shard's outbox for `peer` into the bounded channel, waiting while it is full.
async fn forward(ctx: Rc<ShardCtx>, senders: Rc<Senders<ShardMsg>>, peer: usize) {
    loop {
        match ctx.outbox.pop(peer) {
            Some(msg) => {
                ctx.released();
                if let Err(msg) = senders.send_to(peer, msg).await {
                    // The peer is gone (shutting down): nothing more can reach it.
                    drop(msg);
                    return;
                }
                // As in `consume`: a send into a channel with room is ready at once.
                glommio::yield_if_needed().await;
            }
            None => ctx.outbox.wake[peer].wait().await,
        }
    }
}

/// Runs the engine's timers. Sleeps as long as the core says: until the next deadline, but never
/// longer than a tick, so that a timer armed while it sleeps is late by at most one tick.
///
/// This is the one timer every shard keeps armed while it runs, on purpose: glommio 0.9 can
/// park an executor that still has a runnable task (see `startup.rs`), and only I/O, a timer or
/// a wake from another thread ends that sleep. With this tick a stall lasts at most one tick
/// (100 ms at most) however idle the shard is; everything else waits for a wake-up.
async fn engine_timers(ctx: Rc<ShardCtx>) {
    loop {
        // Until the engine's next deadline, at most one tick (the core's `poll_timer_wait`).
        let wait = ctx.core.borrow().poll_timer_wait(Instant::now());
        glommio::timer::sleep(wait).await;
        ctx.feed(|core| core.handle_timeout(Instant::now()));
    }
}

/// Graceful shutdown: stop accepting, then carry out the core's sequence (`Gateway::
/// poll_shutdown`): answer every event in flight as its handling says when no server can take
/// it, let the verdicts reach their routers, then close every stream with `</stream:stream>`.
/// Each wait ends on the shard's progress or the core's deadline, never on a polling timer.
async fn shutdown(ctx: &Rc<ShardCtx>) {
    ctx.shutting_down.set(true);
    // Accept loops and their pauses end; held consumers and reads look again.
    ctx.wakes.shutdown.notify_all();
    ctx.wakes.events.notify_all();
    ctx.wakes.reads.notify_all();
    ctx.feed(|core| core.handle_shutdown(Instant::now()));
    // One timer per deadline the core names, not one per wake-up: while the shard is busy the
    // deadline stays the same however often it makes progress.
    type Sleep = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
    let mut timer: Option<(Instant, Sleep)> = None;
    loop {
        let now = Instant::now();
        let step = ctx
            .core
            .borrow_mut()
            .poll_shutdown(now, ctx.outbox.is_empty());
        match step {
            ShutdownStep::Drain { until } => {
                if timer.as_ref().is_none_or(|(at, _)| *at != until) {
                    let left = until.saturating_duration_since(now);
                    timer = Some((until, Box::pin(glommio::timer::sleep(left))));
                }
                let Some((_, sleep)) = timer.as_mut() else {
                    continue;
                };
                let moved = async {
                    ctx.wakes.progress.wait().await;
                    false
                };
                let fired = async {
                    sleep.as_mut().await;
                    true
                };
                if futures_lite::future::or(moved, fired).await {
                    // A finished timer is never polled again.
                    timer = None;
                }
            }
            ShutdownStep::Close { conns, flush_until } => {
                let conns = ctx.sockets_of(&conns);
                for c in &conns {
                    c.close();
                }
                let flushed = async {
                    for c in &conns {
                        c.flushed().await;
                    }
                };
                let left = flush_until.saturating_duration_since(Instant::now());
                futures_lite::future::or(flushed, glommio::timer::sleep(left)).await;
            }
            ShutdownStep::Done => return,
        }
    }
}

/// Hidden, unsupported knobs for measuring glommio's options (see perf/RESULTS.md, "glommio
/// options"): `PALISADE_SPIN_BEFORE_PARK_US` (spin that long polling io_uring before parking an
/// idle executor; glommio ignores it on unbound shards) and `PALISADE_RING_DEPTH` (io_uring
/// submission depth, glommio's default 128). Unset, the executors are built exactly as without
/// them; neither is a configuration name and neither is documented for users.
fn executor_experiments(builder: LocalExecutorPoolBuilder) -> LocalExecutorPoolBuilder {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let builder = match number("PALISADE_SPIN_BEFORE_PARK_US") {
        Some(us) => builder.spin_before_park(Duration::from_micros(us)),
        None => builder,
    };
    match number("PALISADE_RING_DEPTH") {
        Some(depth) if depth > 0 => builder.ring_depth(usize::try_from(depth).unwrap_or(128)),
        _ => builder,
    }
}
