//! Stop and reload requests that come from outside the executors (SIGTERM, SIGINT, SIGHUP, or a
//! shard that failed to start), delivered to each shard as a wake-up rather than a flag it
//! polls.
//!
//! A signal handler may only do async-signal-safe things, so it cannot wake a glommio task;
//! and a flag alone makes every shard look at it on a timer. So each shard has a *bell*: one
//! end of a Unix socket pair that the shard reads through its own io_uring (glommio's
//! `UnixStream`), while the signal handlers write a byte into the other end
//! (`signal_hook::low_level::pipe`, which only calls `send`). A request sets its flag first
//! (the flag handler is registered before the bell's), then rings: the shard wakes because
//! I/O completed, reads the flags, and sleeps again on the next read. Nothing polls.
//!
//! Owns the flags and the bells; knows nothing of what a shard does on a stop or a reload.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::SigId;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The requests every shard listens for, and the bells that announce them.
pub struct Stop {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    /// The end of each shard's bell that requests are written to.
    ring: Vec<UnixStream>,
    /// The end each shard reads, until that shard takes it.
    ears: Mutex<Vec<Option<UnixStream>>>,
    /// The bells' signal actions (the flags' stay registered: see `Drop`).
    actions: Vec<SigId>,
}

impl Stop {
    /// Bells for `shards` shards, rung by SIGTERM and SIGINT (every shard) and SIGHUP (shard 0,
    /// which does the reloading). The signals' flags are registered first, so a shard that
    /// wakes always sees the flag of the signal that woke it.
    pub fn install(shards: usize) -> io::Result<Stop> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            signal_hook::flag::register(signal, stop.clone())?;
        }
        // Handled even without a file: SIGHUP's default action would end the process.
        signal_hook::flag::register(SIGHUP, reload.clone())?;
        let mut this = Stop::without_signals(shards, stop, reload)?;
        for (shard, ring) in this.ring.iter().enumerate() {
            let signals: &[i32] = match shard {
                0 => &[SIGTERM, SIGINT, SIGHUP],
                _ => &[SIGTERM, SIGINT],
            };
            for &signal in signals {
                let end = ring.try_clone()?;
                this.actions
                    .push(signal_hook::low_level::pipe::register(signal, end)?);
            }
        }
        Ok(this)
    }

    /// Bells without signal handlers (tests, and `install` before it adds them).
    pub fn without_signals(
        shards: usize,
        stop: Arc<AtomicBool>,
        reload: Arc<AtomicBool>,
    ) -> io::Result<Stop> {
        let mut ring = Vec::with_capacity(shards);
        let mut ears = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (write, read) = UnixStream::pair()?;
            write.set_nonblocking(true)?;
            read.set_nonblocking(true)?;
            ring.push(write);
            ears.push(Some(read));
        }
        Ok(Stop {
            stop,
            reload,
            ring,
            ears: Mutex::new(ears),
            actions: Vec::new(),
        })
    }

    /// The flag SIGHUP sets.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        self.reload.clone()
    }

    pub fn requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks every shard to stop (from any thread).
    pub fn request(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for ring in &self.ring {
            // A full socket already holds a wake-up; nothing else can fail here that a retry
            // would fix.
            let _ = (&*ring).write(b"s");
        }
    }

    /// Shard `shard`'s bell, taken once, on that shard's executor thread.
    pub fn bell(&self, shard: u16) -> Option<Bell> {
        let ear = self
            .ears
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(usize::from(shard))?
            .take()?;
        // SAFETY: `into_raw_fd` hands over an open Unix stream socket that nothing else owns;
        // glommio's stream takes ownership of it and closes it when dropped.
        #[allow(unsafe_code)]
        let stream = unsafe { glommio::net::UnixStream::from_raw_fd(ear.into_raw_fd()) };
        Some(Bell(stream))
    }
}

impl Drop for Stop {
    /// The bells' actions go with the bells; the flags' stay, as they always did, so that a
    /// signal during the process's exit still only sets a flag.
    fn drop(&mut self) {
        for id in self.actions.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// One shard's end of its bell.
pub struct Bell(glommio::net::UnixStream);

impl Bell {
    /// Waits until the bell is rung (at once if it was rung since the last call).
    pub async fn rung(&mut self) -> io::Result<()> {
        use futures_lite::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        match self.0.read(&mut buf).await? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stop bell was closed",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};
    use std::time::Duration;

    #[test]
    fn a_stop_requested_on_another_thread_wakes_every_shards_bell() {
        let flag = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(
            Stop::without_signals(2, flag.clone(), Arc::new(AtomicBool::new(false)))
                .expect("bells"),
        );
        let ex = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("a glommio executor");
        let stop2 = stop.clone();
        ex.run(async move {
            let mut bells: Vec<Bell> = (0..2).map(|s| stop2.bell(s).expect("a bell")).collect();
            assert!(stop2.bell(0).is_none(), "a bell is taken once");
            let from = stop2.clone();
            let thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                from.request();
            });
            // The executor sleeps in its ring until the byte arrives: no timer is armed.
            for bell in &mut bells {
                bell.rung().await.expect("rung");
            }
            assert!(stop2.requested());
            thread.join().expect("the requesting thread");
        });
        assert!(flag.load(Ordering::SeqCst));
    }
}
