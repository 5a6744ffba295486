//! Keeping a panic to the connection it happened on.
//!
//! What glommio 0.9 does with a task that panics (read in its source: `RawTask::run` in
//! `task/raw.rs`, `run_one_task_queue` and `LocalExecutor::run` in `executor/mod.rs`): it
//! polls the task's future with no `catch_unwind`. A guard marks the task closed and drops its
//! future while the panic unwinds, and the panic then goes on up through the task-queue loop
//! and out of `LocalExecutor::run`, unwinding the executor's thread. Every other task of that
//! executor goes with it: all the shard's connections, its engine timers, its mesh consumers
//! and forwarders. With one shard the pool's `join_all` reports a thread panic and the process
//! exits with status 1; with several, the other shards run on without the dead one's events,
//! connections and mesh traffic.
//!
//! So each task serving one connection runs its future through [`contained`]: a panic is
//! caught inside that task's own poll (glommio never sees it), logged once as an error that
//! names the connection, and the task ends; its caller then closes the connection and cleans
//! up after it as after any other close. The shard's shared state is left as the panicking
//! code left it (`AssertUnwindSafe`): every `RefCell` borrow is released by the unwinding, and
//! losing one connection is far better than losing the shard.

use super::log::{self, Level};
use futures_lite::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Runs `fut`; `Err` carries the panic's message if it panicked.
pub async fn contained<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(message)
}

/// Spawns `fut` as a detached task under [`contained`]; a panic is logged as an error naming
/// `what` (a connection, or the task that serves one).
pub fn spawn(shard: u16, what: String, fut: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(async move {
        if let Err(panic) = contained(fut).await {
            log_panic(shard, &what, &panic);
        }
    })
    .detach();
}

/// The one error line for a contained panic.
pub fn log_panic(shard: u16, what: &str, panic: &str) {
    log::record(
        Level::Error,
        Some(shard),
        &format!("{what}: internal error (panic: {panic}); closing the connection"),
    );
}

fn message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast::<&'static str>()
            .map_or_else(|_| "unknown payload".to_owned(), |s| (*s).to_owned()),
    }
}
