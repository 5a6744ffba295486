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
//! runnable and when the 1 ms preempt timer had already fired before it ran anything
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
//! `join` with the kicks going on, the executor asleep in `io_cqring_wait`. Why the eventfd
//! write did not end that sleep is not established (glommio writes it only when its
//! `should_notify` flag, set in `prepare_to_sleep` and cleared by the first notification with a
//! `Relaxed` compare-and-swap, says the executor sleeps; its sleep also depends on the eventfd's
//! poll being armed in the ring). A timer of the executor's own is the one wake the reactor
//! always honours: it becomes the timeout of the ring it sleeps on. So each shard also keeps a
//! [`Heartbeat`] while it starts: a local task that sleeps [`HEARTBEAT`] in a loop until the
//! shard has started, so that the executor never sleeps longer than that, and each wake runs
//! its task queues (a stranded task) and re-polls the mesh connectors.

use super::mesh::ShardMsg;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How often a starting shard's own heartbeat timer fires (see [`Heartbeat`]).
pub const HEARTBEAT: Duration = Duration::from_millis(5);
/// How often the starting thread wakes the shards that have not joined the mesh yet.
pub const JOIN_KICK: Duration = Duration::from_millis(10);
/// The timer a shard sleeps on once, at the end of its start-up, before it drops its
/// [`Starting`] token.
pub const FIRST_TIMER: Duration = Duration::from_millis(1);

type Mesh = MeshBuilder<ShardMsg, Full>;

/// What the starting thread shares with the shards until they have joined the mesh.
pub struct Startup {
    /// The starting thread's own reference to the mesh; see the module doc for why it lives
    /// until every executor has been joined (the mutex only makes `Startup` shareable).
    _keep: Mutex<Mesh>,
    /// One builder per shard, cloned on the starting thread.
    meshes: Mutex<Vec<Mesh>>,
    /// The waker of each shard that is starting, by slot.
    wakers: Mutex<Vec<Option<Waker>>>,
    /// Shards whose start-up is still watched: not yet past their first timer (or failed).
    starting: AtomicUsize,
}

impl Startup {
    /// A mesh of `shards` peers whose channels hold `capacity` messages each.
    pub fn new(shards: usize, capacity: usize) -> Arc<Startup> {
        let keep: Mesh = MeshBuilder::full(shards, capacity);
        let meshes = (0..shards).map(|_| keep.clone()).collect();
        Arc::new(Startup {
            _keep: Mutex::new(keep),
            meshes: Mutex::new(meshes),
            wakers: Mutex::new(Vec::new()),
            starting: AtomicUsize::new(shards),
        })
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
        let starting = self.watch(waker);
        let mesh = mesh.ok_or_else(|| "no channel mesh left for this shard".to_owned())?;
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|_| "cannot join the channel mesh".to_owned())?;
        Ok((senders, receivers, starting))
    }

    /// Until every shard is past its start-up (or one executor thread has ended), wakes the
    /// shards still starting every [`JOIN_KICK`]. Runs on the starting thread.
    pub fn watch_until_started<T>(&self, threads: &[std::thread::JoinHandle<T>]) {
        while self.starting.load(Ordering::SeqCst) > 0 && !threads.iter().any(|t| t.is_finished()) {
            std::thread::sleep(JOIN_KICK);
            for waker in self
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .flatten()
            {
                // A foreign wake: glommio queues it and writes the shard's eventfd if the
                // shard sleeps. A shard that is not stranded just polls its join once more.
                waker.wake_by_ref();
            }
        }
    }

    fn watch(self: &Arc<Self>, waker: Waker) -> Starting {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.push(Some(waker));
        Starting {
            startup: self.clone(),
            slot: wakers.len() - 1,
        }
    }
}

/// A shard being watched while it starts; dropping it (on the shard's thread, so that the
/// waker is dropped there too) ends the watch for that shard.
pub struct Starting {
    startup: Arc<Startup>,
    slot: usize,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let waker = self
            .startup
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(self.slot)
            .and_then(Option::take);
        drop(waker);
        self.startup.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A starting shard's own timer: a local task that sleeps [`HEARTBEAT`] in a loop until this is
/// dropped (see the module doc). Created on the shard's executor, before it joins the mesh.
pub struct Heartbeat {
    started: Rc<Cell<bool>>,
}

impl Heartbeat {
    /// Starts the heartbeat task on the current executor.
    pub fn start() -> Heartbeat {
        let started = Rc::new(Cell::new(false));
        let done = started.clone();
        glommio::spawn_local(async move {
            while !done.get() {
                glommio::timer::sleep(HEARTBEAT).await;
            }
        })
        .detach();
        Heartbeat { started }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.started.set(true);
    }
}
