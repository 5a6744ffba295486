//! Start-up: each shard's copy of the channel mesh builder, and a watch that keeps any shard
//! from sleeping through its mesh join.
//!
//! Two defects of glommio 0.9 meet here; both are worked around in this file, not patched.
//!
//! **The mesh builder is not thread-safe.** `MeshBuilder` keeps its peer list in an
//! `Rc<RwLock<Vec<Peer>>>` and is declared `Send`, so cloning or dropping it on several
//! executor threads at once races the non-atomic reference count. A lost increment frees the
//! list while a shard still holds it, and the next decrement writes `0 - 1` into the freed
//! block, where the allocator keeps its free-list link: at exit mimalloc's `mi_process_done`
//! then walks a thread-free list holding `0xffffffffffffffff` and the process dies of SIGSEGV
//! after "Palisade stopped" (a core shows the freed 64-byte block: strong count `!0`, weak 0,
//! then a `Vec<Peer>` of capacity 4 and length 2). So every clone is made here, on the
//! starting thread, before any executor runs; executors only move theirs out of a mutex, and
//! `join` drops it. Concurrent decrements can then only lose a decrement (a leak of one small
//! block), never free early, because the starting thread keeps one reference until every
//! executor has been joined.
//!
//! **An executor can park with a runnable task.** `LocalExecutor::run` parks whenever
//! `run_task_queues` returns false, and that function returns false both when nothing is
//! runnable and when the 1 ms preemption period had already passed before it ran anything
//! (`if self.need_preempt() { break }` with `ran` still false). The executor then sleeps in
//! `io_uring_enter` (`Reactor::link_rings_and_sleep`) until I/O completes, a timer fires or
//! another thread writes its eventfd; the task it did not run is never looked at before
//! that. Once shards are up there is always a timer (the engine's tick, see `engine_timers`), so
//! such a stall lasts at most one tick. During `MeshBuilder::join` there is none: the join
//! waits in `shared_channel::Connector`, which re-checks the peer on every reactor pass (a
//! connection waker) and so makes a stranded task likely on a busy machine; once stranded,
//! nothing wakes it, and both shards sleep for ever, before the router port is opened and
//! before the stop bell is ever read: about one start in 20 (debug) to 70 (release) on two
//! busy cores. Upstream's later fix ("do not park the executor while a task queue is still
//! runnable") makes `run_task_queues` tell "preempted" from "idle"; 0.9.0 does not have it.
//! So the starting thread, which would only block in `join_all` anyway, wakes every shard
//! still joining every [`JOIN_KICK`] until all have joined: a foreign wake writes the
//! executor's eventfd, the executor leaves `io_uring_enter`, and its next turn runs the
//! stranded task. This is a bounded start-up step: it ends as soon as the last shard has
//! joined (normally within the first kick), and nothing polls afterwards.
//!
//! The same stall can strand a shard just after its join: the join's completion wakes the
//! shard's start-up task, and until that task has registered its first timer, an executor
//! that parks without running it has nothing left to wake it (a shard that had joined was no
//! longer kicked: about one start in 300 on two busy cores hung there, its main thread still
//! watching the other shard). So a shard stays watched past its join, through the rest of its
//! start-up, until the [`Starting`] token that `join` returns is dropped, which the shard does
//! once its own first timer ([`FIRST_TIMER`]) has fired: from then on the engine's tick bounds
//! any stall.
//!
//! The foreign wake is not enough on its own: about one start in 500 to 1,000 still hung in
//! `join` with the kicks going on, the executor asleep in `io_uring_enter` (`io_cqring_wait`,
//! no timeout) for as long as nobody looked; attaching a debugger ended it at once. A timer of
//! the shard's own did not end it either (glommio arms timers in its latency ring and sleeps on
//! the main ring, linked to the other by a poll; upstream has an open report of timers that
//! never fire on some virtual machines). What does end it is a signal: `io_uring_enter` returns
//! `EINTR`, which glommio's sleep takes as a wake-up (`Reactor::intr_ok`). So each starting
//! shard keeps a heartbeat (a local task that counts a beat every [`HEARTBEAT`]), and the
//! starting thread, at each kick, sends [`nudge_signal`] (a no-op handler, no `SA_RESTART`) to the
//! thread of a shard whose beat has not moved for [`NUDGE_AFTER`] kicks: the shard's syscall is
//! interrupted, its executor runs its queues, and its start-up goes on. A shard that is simply
//! busy (a long spool read) beats as soon as it yields and is at worst interrupted and resumed.
//!
//! **The same stall can strike before a shard's first task has run.** `LocalExecutor::run`
//! sets the preemption deadline, then runs the task queues; on a busy machine the deadline can
//! pass in between, and the executor parks before it has ever polled the shard's future. Nothing of
//! the shard exists yet to wake it (no waker, no heartbeat, no timer of its own), so the watch
//! above cannot see it: a start with two shards was caught so, one shard asleep in
//! `io_uring_enter` without having joined and the other spinning in its join waiting for it,
//! "0 nudges" for as long as it was left. So the starting thread also knows every executor
//! thread from the pool's join handles, each shard's first task marks its thread as entered
//! ([`Startup::enter`], the first thing the shard's future does), and a thread that has not
//! entered after [`NUDGE_BEFORE_ENTRY`] kicks is nudged as a silent heartbeat is, and again
//! every as many kicks until it enters. Before its first task a shard's thread is in glommio's
//! executor set-up (ring creation, buffer registration, none of which waits) or in that park,
//! which takes the nudge's `EINTR` as a wake-up.
//!
//! **Where the stranded shard sleeps, as far as it is known.** Every stall seen has the
//! shard's thread in `io_uring_enter(main ring fd, to_submit 0, min_complete 1, GETEVENTS,
//! no timeout)`, i.e. `SleepableRing::sleep` after `Reactor::link_rings_and_sleep`: glommio
//! 0.9's `wait` sleeps on the main ring with one `POLL_ADD` on the latency ring's fd, and
//! arms the next user timer (here the heartbeat's) as a timeout *in the latency ring*; the
//! foreign-wake eventfd is read in the latency ring too. So every wake-up of a sleeping
//! executor — timer, foreign wake — reaches it through that one poll of one ring's fd from
//! the other ring; when that poll does not complete, nothing but a signal (`EINTR`, taken as
//! a wake-up by `Reactor::intr_ok`) or a ptrace attach ends the sleep. Why the poll does not
//! complete is not established (it is in glommio's ring linking or in the kernel's
//! ring-fd poll, not in this crate); fixing it would mean patching glommio, which this crate
//! does not do.
//!
//! **Under valgrind the same sleep freezes the whole process.** valgrind 3.19 does not treat
//! `io_uring_enter` as a system call that may block, so a shard asleep in it keeps
//! valgrind's global lock: every other thread waits on valgrind's scheduler pipe
//! (`anon_pipe_read` in `/proc/PID/task/*/wchan`), the starting thread cannot kick or nudge,
//! and SIGTERM stays pending, since valgrind delivers signals only to a thread it runs or one
//! in a call it knows blocks. With one shard too: its own heartbeat timer did not end the
//! sleep. Nothing in the process can end that (`perf/RESULTS.md`, "Start-up stalls"); outside
//! valgrind the starting thread runs and the stop below applies.
//!
//! **A stop during start-up.** A shard reads its stop bell only once it has started, so a
//! stranded shard would also ignore SIGTERM, and `join_all` would wait for it for ever. So the
//! starting thread, which watches start-up anyway, sees a stop requested while a shard is
//! still starting through: it keeps kicking and nudging, waits until every executor thread
//! has ended, and after [`STOP_DURING_START`] logs why and ends the process with
//! [`EXIT_STOPPED_IN_START`] (`_exit`, not `exit`: executor threads still run).

use super::mesh::ShardMsg;
use super::stop::Stop;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How often a starting shard's heartbeat counts a beat.
pub const HEARTBEAT: Duration = Duration::from_millis(5);
/// How often a start-up that has not finished is reported in the log.
pub const SLOW_START: Duration = Duration::from_secs(2);
/// Kicks without a beat after which the starting thread nudges a shard's thread.
pub const NUDGE_AFTER: u32 = 3;
/// How often the starting thread wakes the shards that have not joined the mesh yet.
pub const JOIN_KICK: Duration = Duration::from_millis(10);
/// Kicks after which an executor thread whose first task has not run yet is nudged (and
/// again every as many kicks until it runs): longer than [`NUDGE_AFTER`], because executor
/// set-up on a busy machine can take a while and needs no help.
pub const NUDGE_BEFORE_ENTRY: u32 = 10;
/// The timer a shard sleeps on once, at the end of its start-up, before it drops its
/// [`Starting`] token.
pub const FIRST_TIMER: Duration = Duration::from_millis(1);
/// How long a stop (SIGTERM, SIGINT, or a shard that failed) requested while a shard is
/// still starting may wait for every shard's thread to end before the process exits without
/// them (see [`Startup::watch_until_started`]).
pub const STOP_DURING_START: Duration = Duration::from_secs(5);
/// The exit status of a process that stopped during its start-up without every shard ending.
pub const EXIT_STOPPED_IN_START: libc::c_int = 1;
/// A test hook: when this variable is set to `1`, the first shard to join the mesh blocks
/// its thread for [`TEST_STALL`] right after the join, as a shard that does not make progress
/// would; set to [`TEST_STALL_FIRST_TASK`], the first shard's first task sleeps in `pause`,
/// which only a signal ends, before it marks its thread as entered, as an executor parked
/// before its first task would. Only the integration tests set it.
pub const TEST_STALL_VAR: &str = "PALISADE_TEST_STALL_START";
/// The [`TEST_STALL_VAR`] value that stalls a shard before its first task has entered.
pub const TEST_STALL_FIRST_TASK: &str = "first-task";
/// How long the [`TEST_STALL_VAR`] hook blocks the shard's thread.
pub const TEST_STALL: Duration = Duration::from_secs(120);

type Mesh = MeshBuilder<ShardMsg, Full>;

/// What the starting thread shares with the shards until they have joined the mesh.
pub struct Startup {
    /// The starting thread's own reference to the mesh; see the module doc for why it lives
    /// until every executor has been joined (the mutex only makes `Startup` shareable).
    _keep: Mutex<Mesh>,
    /// One builder per shard, cloned on the starting thread.
    meshes: Mutex<Vec<Mesh>>,
    /// Each shard that is starting, by slot.
    watched: Mutex<Vec<Option<Watched>>>,
    /// Shards whose start-up is still watched: not yet past their first timer (or failed).
    starting: AtomicUsize,
    /// The executor threads whose first task has run (see [`Startup::enter`]).
    entered: Mutex<Vec<libc::pthread_t>>,
    /// Whether the [`TEST_STALL_FIRST_TASK`] hook has stalled a shard already.
    first_task_stalled: AtomicBool,
}

impl Startup {
    /// A mesh of `shards` peers whose channels hold `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Arc<Startup> {
        install_nudge_handler();
        let keep: Mesh = MeshBuilder::full(shards, capacity);
        let meshes = (0..shards).map(|_| keep.clone()).collect();
        Arc::new(Startup {
            _keep: Mutex::new(keep),
            meshes: Mutex::new(meshes),
            watched: Mutex::new(Vec::new()),
            starting: AtomicUsize::new(shards),
            entered: Mutex::new(Vec::with_capacity(shards)),
            first_task_stalled: AtomicBool::new(false),
        })
    }

    /// Marks the calling executor thread as one whose first task runs: from here on its shard
    /// is watched through its join and heartbeat, no longer as a thread that never started
    /// (see the module doc). The first thing each shard's future does.
    pub fn enter(&self) {
        if std::env::var(TEST_STALL_VAR).is_ok_and(|v| v == TEST_STALL_FIRST_TASK)
            && !self.first_task_stalled.swap(true, Ordering::SeqCst)
        {
            // Blocks the executor until a signal arrives, as the park it stands for does.
            // SAFETY: `pause` has no preconditions; the nudge's handler makes it return.
            #[allow(unsafe_code)]
            unsafe {
                libc::pause();
            }
        }
        self.entered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(current_thread());
    }

    /// This shard's builder (taken once per shard, on its executor thread; moving it out
    /// touches no reference count).
    pub fn take_mesh(&self) -> Option<Mesh> {
        self.meshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Joins the mesh from a shard, watched by the starting thread from here until the
    /// shard drops the returned [`Starting`] (see the module doc).
    pub async fn join(
        self: &Arc<Self>,
        mesh: Option<Mesh>,
    ) -> Result<(Senders<ShardMsg>, Receivers<ShardMsg>, Starting), String> {
        let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
        let starting = self.watch(waker, Heartbeat::start());
        let mesh = mesh.ok_or_else(|| "no channel mesh left for this shard".to_owned())?;
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|_| "cannot join the channel mesh".to_owned())?;
        if starting.slot == 0 && std::env::var(TEST_STALL_VAR).is_ok_and(|v| v == "1") {
            // Blocks the executor: no wake, nudge or bell reaches the shard until this ends.
            std::thread::sleep(TEST_STALL);
        }
        Ok((senders, receivers, starting))
    }

    /// Until every shard is past its start-up (or one executor thread has ended), wakes the
    /// shards still starting every [`JOIN_KICK`], and nudges the thread of any whose heartbeat
    /// stopped (see the module doc). Runs on the starting thread.
    ///
    /// A stop requested while a shard is still starting is the starting thread's to see
    /// through: a shard only reads its stop bell once it has started, so a shard that cannot
    /// finish its start-up would never end, and neither would the process (`join_all` waits
    /// for every executor). So from such a request on, this keeps watching (kicks and nudges
    /// go on, so a stranded shard can still start and then stop gracefully) until every
    /// executor thread has ended, and if they have not all ended within
    /// [`STOP_DURING_START`], logs which and exits the process with
    /// [`EXIT_STOPPED_IN_START`].
    pub fn watch_until_started<T>(&self, threads: &[std::thread::JoinHandle<T>], stop: &Stop) {
        use std::os::unix::thread::JoinHandleExt;
        // Per slot: the beat last seen, and for how many kicks it has not moved.
        let mut seen: Vec<(u64, u32)> = Vec::new();
        // Per executor thread: for how many kicks its first task has not run.
        let mut not_entered: Vec<u32> = vec![0; threads.len()];
        let mut nudges = 0u64;
        let begun = Instant::now();
        let mut next_report = SLOW_START;
        let mut stop_in_start: Option<Instant> = None;
        loop {
            let starting = self.starting.load(Ordering::SeqCst);
            if stop_in_start.is_none() && starting > 0 && stop.requested() {
                stop_in_start = Some(Instant::now());
                super::log::record(
                    super::log::Level::Warn,
                    None,
                    &format!(
                        "Stop requested during start-up with {starting} shard(s) still \
                         starting: the process ends within {STOP_DURING_START:?}, gracefully \
                         if they finish starting by then"
                    ),
                );
            }
            match stop_in_start {
                Some(at) => {
                    if threads.iter().all(|t| t.is_finished()) {
                        return;
                    }
                    if at.elapsed() >= STOP_DURING_START {
                        let left = threads.iter().filter(|t| !t.is_finished()).count();
                        abandon(&format!(
                            "Stop requested during start-up: {left} shard thread(s) still \
                             running after {STOP_DURING_START:?} ({starting} shard(s) never \
                             finished starting, {nudges} nudge(s) sent): exiting without a \
                             graceful stop"
                        ));
                    }
                }
                None => {
                    if starting == 0 || threads.iter().any(|t| t.is_finished()) {
                        return;
                    }
                }
            }
            std::thread::sleep(JOIN_KICK);
            if starting > 0 && begun.elapsed() >= next_report {
                next_report += SLOW_START;
                super::log::record(
                    super::log::Level::Warn,
                    None,
                    &format!(
                        "Start-up is slow: {} shard(s) still starting after {} s, {} of them \
                         before their first task ({nudges} nudge(s) so far)",
                        self.starting.load(Ordering::SeqCst),
                        begun.elapsed().as_secs(),
                        threads.len().saturating_sub(
                            self.entered
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .len()
                        ),
                    ),
                );
            }
            {
                let entered = self.entered.lock().unwrap_or_else(PoisonError::into_inner);
                for (handle, still) in threads.iter().zip(not_entered.iter_mut()) {
                    let thread = handle.as_pthread_t();
                    if handle.is_finished() || entered.contains(&thread) {
                        continue;
                    }
                    *still += 1;
                    if *still >= NUDGE_BEFORE_ENTRY {
                        *still = 0;
                        nudges += 1;
                        nudge(thread);
                    }
                }
            }
            let watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            seen.resize(watched.len(), (0, 0));
            for (slot, w) in watched.iter().enumerate() {
                let Some(w) = w else { continue };
                // A foreign wake: glommio queues it and writes the shard's eventfd if the
                // shard sleeps. A shard that is not stranded just polls its join once more.
                w.waker.wake_by_ref();
                let beat = w.beats.load(Ordering::Relaxed);
                let (last, still) = &mut seen[slot];
                if beat != *last {
                    (*last, *still) = (beat, 0);
                    continue;
                }
                *still += 1;
                if *still >= NUDGE_AFTER {
                    *still = 0;
                    nudges += 1;
                    nudge(w.thread);
                }
            }
        }
    }

    fn watch(self: &Arc<Self>, waker: Waker, heartbeat: Heartbeat) -> Starting {
        let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        watched.push(Some(Watched {
            waker,
            thread: current_thread(),
            beats: heartbeat.beats.clone(),
        }));
        Starting {
            startup: self.clone(),
            slot: watched.len() - 1,
            _heartbeat: heartbeat,
        }
    }
}

/// A starting shard as the starting thread sees it.
struct Watched {
    waker: Waker,
    /// The shard's executor thread, to nudge.
    thread: libc::pthread_t,
    /// Beats of the shard's heartbeat.
    beats: Arc<AtomicU64>,
}

/// The signal that nudges a shard's thread out of a sleep it does not leave (module doc).
pub fn nudge_signal() -> libc::c_int {
    libc::SIGRTMIN() + 1
}

extern "C" fn on_nudge(_: libc::c_int) {}

/// Installs the no-op handler of [`nudge_signal`] (once per process is enough; repeating it
/// is harmless). Without `SA_RESTART`, so that the `io_uring_enter` the nudge interrupts
/// returns `EINTR` (glommio's sleep takes it as a wake-up). The shard's other system calls
/// during start-up are binds, socket options and file reads that retry on `EINTR`.
fn install_nudge_handler() {
    // SAFETY: a zeroed `sigaction` is a valid empty one; the handler does nothing, so it is
    // async-signal-safe; `sigaction` only reads the struct.
    #[allow(unsafe_code)]
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_nudge as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No `SA_RESTART`: a restarted `io_uring_enter` went straight back to sleep.
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(nudge_signal(), &action, std::ptr::null_mut());
    }
}

/// Logs `why` and ends the process at once, without running exit handlers: executor threads
/// are still running, and the allocator's exit walk over every thread's heap
/// (`mi_process_done`) must not race them (see `wait_for_detached_threads` in runtime.rs).
fn abandon(why: &str) -> ! {
    super::log::record(super::log::Level::Error, None, why);
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` has no preconditions; it ends every thread of the process.
    #[allow(unsafe_code)]
    unsafe {
        libc::_exit(EXIT_STOPPED_IN_START)
    }
}

fn current_thread() -> libc::pthread_t {
    // SAFETY: `pthread_self` has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::pthread_self()
    }
}

fn nudge(thread: libc::pthread_t) {
    // SAFETY: `thread` is a shard's executor thread, alive while its slot is watched (the
    // slot is cleared on that thread before it can end) or, before its first task, one whose
    // join handle the caller holds: an unjoined thread's id stays valid even once it ends,
    // and `pthread_kill` then does nothing. The signal has a handler.
    #[allow(unsafe_code)]
    unsafe {
        libc::pthread_kill(thread, nudge_signal());
    }
}

/// A shard being watched while it starts; dropping it (on the shard's thread, so that the
/// waker is dropped there too) ends the watch for that shard.
pub struct Starting {
    startup: Arc<Startup>,
    slot: usize,
    _heartbeat: Heartbeat,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let watched = self
            .startup
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(self.slot)
            .and_then(Option::take);
        drop(watched);
        self.startup.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A starting shard's heartbeat: a local task that counts a beat every [`HEARTBEAT`] until
/// this is dropped, so that the starting thread can tell a shard that runs from one that
/// sleeps (see the module doc).
struct Heartbeat {
    beats: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Heartbeat {
    /// Starts the heartbeat task on the current executor.
    fn start() -> Heartbeat {
        let beats = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (beats.clone(), stop.clone());
        glommio::spawn_local(async move {
            while !done.load(Ordering::Relaxed) {
                count.fetch_add(1, Ordering::Relaxed);
                glommio::timer::sleep(HEARTBEAT).await;
            }
        })
        .detach();
        Heartbeat { beats, stop }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
