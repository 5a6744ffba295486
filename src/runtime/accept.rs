//! Accept loops (the router and compliance listeners, and the admin endpoint's), what they do
//! when accepting fails, and the per-listener connection caps.
//!
//! **Failures.** An accept that fails (EMFILE and ENFILE above all: the descriptors ran out)
//! must not be retried at once: glommio's accept tries the syscall before it waits, so a loop
//! that retries at once never yields, starves every other task of its shard (the connections
//! that would close and give descriptors back, the shutdown flag) and spins a core for good.
//! The loops back off instead, 10 ms doubling to 1 s, reset by the next success, and cut short
//! by the shard's shutdown broadcast (a wake-up, not a check on a timer); failures are logged
//! at most once per ten seconds per listener, with a count of those not logged.
//!
//! **Caps.** `[limits] max_connections` connections per listener, of which
//! `max_unauthenticated` may still be in their handshake. Past a cap a new connection is
//! accepted and closed at once (rather than left unaccepted): its client sees the close at
//! once instead of waiting in the kernel's backlog for as long as the cap holds, the backlog
//! stays empty for the connections that arrive once there is room, and each refusal is counted
//! (`/metrics`, `/status`) and logged at most once per ten seconds.
//!
//! **Counting across shards.** The shard that accepts keeps the count of its listener: in
//! handoff mode shard 0 accepts for every shard, and the shard that serves a handed-off
//! connection sends the count's changes back over the mesh (`ShardMsg::Admission`, one when
//! the handshake completes and one when the connection ends: two small messages per
//! connection, never per event). Nothing mutable is shared. In reuseport mode each shard
//! accepts and counts its own connections, against an equal share of each cap.

pub use super::caps::{Admission, Refusal};
use super::log::Level;
pub use super::log::RateLimit;
use super::mesh::ShardMsg;
use super::shard::ShardCtx;
use super::Leg;
use glommio::net::{AcceptedTcpStream, TcpListener};
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// First pause after a failed accept; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Admin connections served at once: scrapers and operators need a handful, and each is short.
pub const ADMIN_MAX_CONNECTIONS: usize = 32;

/// Which listener a count belongs to, as `/metrics` labels it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Listener {
    Routers,
    Compliance,
    Admin,
}

impl Listener {
    /// Index into the runtime counters' per-listener arrays (see `RuntimeCounters`).
    pub fn index(self) -> usize {
        match self {
            Listener::Routers => 0,
            Listener::Compliance => 1,
            Listener::Admin => 2,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Listener::Routers => "the router port",
            Listener::Compliance => "the compliance port",
            Listener::Admin => "the admin endpoint",
        }
    }
}

impl From<Leg> for Listener {
    fn from(leg: Leg) -> Listener {
        match leg {
            Leg::Router => Listener::Routers,
            Leg::Compliance => Listener::Compliance,
        }
    }
}

// === impl Failures ===

/// The backoff and the log of one listener's failed accepts. Time is a parameter.
#[derive(Debug, Default)]
pub struct Failures {
    /// The next pause; `None` while accepts succeed.
    delay: Option<Duration>,
    /// Failures since the last success.
    run: u64,
    log: RateLimit,
}

/// What to do about one failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct Retry {
    pub after: Duration,
    /// `Some(failures not logged since the last line)` when this one is to be logged.
    pub log: Option<u64>,
}

impl Failures {
    pub fn failed(&mut self, now: Instant) -> Retry {
        let after = self.delay.unwrap_or(FIRST_BACKOFF);
        self.delay = Some((after * 2).min(MAX_BACKOFF));
        self.run += 1;
        Retry {
            after,
            log: self.log.allow(now),
        }
    }

    /// An accept succeeded: `Some(failures in the run that just ended)` if there were any.
    pub fn succeeded(&mut self) -> Option<u64> {
        self.delay = None;
        Some(std::mem::take(&mut self.run)).filter(|&n| n > 0)
    }
}

/// Errors that concern one connection that is already gone, not the listener: retried at once.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EINTR | libc::EAGAIN)
    )
}

// === impl Acceptor ===

/// One listener's accept loop state.
pub struct Acceptor {
    listener: TcpListener,
    kind: Listener,
    failures: Failures,
}

impl Acceptor {
    pub fn new(listener: TcpListener, kind: Listener) -> Acceptor {
        Acceptor {
            listener,
            kind,
            failures: Failures::default(),
        }
    }

    /// The next connection; `None` once the shard shuts down. Never returns without having
    /// yielded when accepts keep failing.
    pub async fn next(&mut self, ctx: &ShardCtx) -> Option<AcceptedTcpStream> {
        while !ctx.shutting_down.get() {
            let result = self.accept_or_shutdown(ctx).await?;
            match result {
                Ok(accepted) => {
                    if let Some(n) = self.failures.succeeded() {
                        ctx.log(
                            Level::Info,
                            &format!(
                                "accepting again on {} after {n} failed accept(s)",
                                self.kind.describe()
                            ),
                        );
                    }
                    // A burst of ready connections is accepted without waiting: let the rest
                    // of the shard run in between.
                    glommio::yield_if_needed().await;
                    return Some(accepted);
                }
                Err(e) if transient(&e) => glommio::yield_if_needed().await,
                Err(e) => {
                    ctx.counters.borrow_mut().accept_errors[self.kind.index()] += 1;
                    let retry = self.failures.failed(Instant::now());
                    if let Some(held_back) = retry.log {
                        let also = match held_back {
                            0 => String::new(),
                            n => format!(" ({n} more since the last report)"),
                        };
                        ctx.log(
                            Level::Warn,
                            &format!(
                                "accept failed on {}: {e}; retrying in {:?}{also}",
                                self.kind.describe(),
                                retry.after
                            ),
                        );
                    }
                    pause(ctx, retry.after).await;
                }
            }
        }
        None
    }
}

impl Acceptor {
    /// One accept, or `None` at shutdown: the accept waits beside the shard's shutdown
    /// broadcast, and is given up only when shutdown comes (the listener closes with it).
    async fn accept_or_shutdown(&self, ctx: &ShardCtx) -> Option<io::Result<AcceptedTcpStream>> {
        if ctx.shutting_down.get() {
            return None;
        }
        let shutdown = async {
            ctx.wakes.shutdown.wait().await;
            None
        };
        let next = async { Some(self.listener.shared_accept().await) };
        futures_lite::future::or(next, shutdown)
            .await
            .map(|result| result.map_err(io::Error::from))
    }
}

/// Sleeps `total`, cut short by shutdown.
async fn pause(ctx: &ShardCtx, total: Duration) {
    if ctx.shutting_down.get() {
        return;
    }
    futures_lite::future::or(glommio::timer::sleep(total), ctx.wakes.shutdown.wait()).await;
}

/// This shard's caps for its listeners: the whole caps on the one acceptor of handoff mode, an
/// equal share on each shard in reuseport mode.
fn caps(ctx: &ShardCtx) -> (usize, usize) {
    let config = ctx.config();
    let l = &config.limits;
    let share = match config.gateway.accept {
        crate::policy::AcceptMode::Handoff => 1,
        crate::policy::AcceptMode::ReusePort => usize::from(ctx.shards).max(1),
    };
    (
        l.max_connections.div_ceil(share).max(1),
        l.max_unauthenticated.div_ceil(share).max(1),
    )
}

// === impl Slot ===

/// One admitted connection's place in its acceptor's count; given back when dropped.
pub struct Slot {
    ctx: Rc<ShardCtx>,
    /// The shard that accepted the connection and counts it.
    acceptor: u16,
    leg: Leg,
    authenticated: Cell<bool>,
}

impl Slot {
    /// The slot of a connection `acceptor` admitted, on the shard (`ctx`) that serves it.
    pub fn new(ctx: Rc<ShardCtx>, acceptor: u16, leg: Leg) -> Slot {
        Slot {
            ctx,
            acceptor,
            leg,
            authenticated: Cell::new(false),
        }
    }

    /// The connection completed its handshake: it no longer counts as unauthenticated.
    pub fn authenticated(&self) {
        if !self.authenticated.replace(true) {
            self.report(Admission::Authenticated);
        }
    }

    fn report(&self, change: Admission) {
        if self.acceptor == self.ctx.id {
            admission(&self.ctx, self.leg, change);
        } else {
            self.ctx.outbox.push(
                usize::from(self.acceptor),
                ShardMsg::Admission {
                    leg: self.leg,
                    change,
                },
            );
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let authenticated = self.authenticated.get();
        self.report(Admission::Ended { authenticated });
    }
}

/// Applies a change to this shard's count for `leg`.
pub fn admission(ctx: &ShardCtx, leg: Leg, change: Admission) {
    if let Some(count) = ctx
        .conn_counts
        .borrow_mut()
        .get_mut(Listener::from(leg).index())
    {
        count.apply(change);
    }
}

/// Accepts connections until shutdown. With `handoff`, each connection goes to the next shard
/// in turn, through the mesh; the count stays here.
pub async fn serve_listener(
    ctx: Rc<ShardCtx>,
    listener: TcpListener,
    leg: Leg,
    transport: super::Transport,
    handoff: bool,
) {
    let kind = Listener::from(leg);
    let mut acceptor = Acceptor::new(listener, kind);
    let mut refusals = RateLimit::default();
    let mut next_shard = 0usize;
    while let Some(accepted) = acceptor.next(&ctx).await {
        let (max, max_unauthenticated) = caps(&ctx);
        let admitted = ctx
            .conn_counts
            .borrow_mut()
            .get_mut(kind.index())
            .map_or(Ok(()), |c| c.admit(max, max_unauthenticated));
        if let Err(refusal) = admitted {
            // Closed at once: see the module documentation.
            drop(accepted.bind_to_executor());
            refused(&ctx, kind, refusal, &mut refusals);
            continue;
        }
        let target = if handoff {
            next_shard % usize::from(ctx.shards)
        } else {
            usize::from(ctx.id)
        };
        next_shard = next_shard.wrapping_add(1);
        if target == usize::from(ctx.id) {
            let slot = Slot::new(ctx.clone(), ctx.id, leg);
            super::serve(
                ctx.clone(),
                accepted.bind_to_executor(),
                leg,
                transport,
                slot,
            );
        } else {
            ctx.outbox.push(
                target,
                ShardMsg::Accepted {
                    stream: accepted,
                    leg,
                    transport,
                    acceptor: ctx.id,
                },
            );
        }
    }
}

/// Counts a refused connection and logs it, rate-limited.
pub fn refused(ctx: &ShardCtx, kind: Listener, refusal: Refusal, log: &mut RateLimit) {
    ctx.counters.borrow_mut().connections_refused[kind.index()] += 1;
    let Some(held_back) = log.allow(Instant::now()) else {
        return;
    };
    let cap = match refusal {
        Refusal::MaxConnections(n) => {
            format!("{n} connections are open ([limits] max_connections)")
        }
        Refusal::MaxUnauthenticated(n) => {
            format!("{n} connections are still in their handshake ([limits] max_unauthenticated)")
        }
        Refusal::AdminBusy => format!("{ADMIN_MAX_CONNECTIONS} requests are being served"),
    };
    let also = match held_back {
        0 => String::new(),
        n => format!(" ({n} more refused since the last report)"),
    };
    ctx.log(
        Level::Warn,
        &format!("refused a connection on {}: {cap}{also}", kind.describe()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::caps::Count;
    use crate::runtime::log::LOG_EVERY;

    #[test]
    fn backoff_doubles_to_a_second_and_resets_on_success() {
        let mut f = Failures::default();
        let t = Instant::now();
        let pauses: Vec<_> = (0..10).map(|_| f.failed(t).after).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            pauses,
            [
                ms(10),
                ms(20),
                ms(40),
                ms(80),
                ms(160),
                ms(320),
                ms(640),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(f.succeeded(), Some(10));
        assert_eq!(f.succeeded(), None);
        assert_eq!(f.failed(t).after, ms(10));
    }

    #[test]
    fn failures_are_logged_once_per_window_with_what_was_held_back() {
        let mut f = Failures::default();
        let t = Instant::now();
        assert_eq!(f.failed(t).log, Some(0));
        for i in 1..50 {
            assert_eq!(f.failed(t + Duration::from_millis(i * 100)).log, None);
        }
        assert_eq!(f.failed(t + LOG_EVERY).log, Some(49));
        assert_eq!(f.failed(t + LOG_EVERY).log, None);
    }

    #[test]
    fn counts_admit_up_to_each_cap_and_give_back() {
        let mut c = Count::default();
        assert_eq!(c.admit(3, 2), Ok(()));
        assert_eq!(c.admit(3, 2), Ok(()));
        assert_eq!(c.admit(3, 2), Err(Refusal::MaxUnauthenticated(2)));
        c.apply(Admission::Authenticated);
        assert_eq!(c.admit(3, 2), Ok(()));
        assert_eq!(c.admit(3, 2), Err(Refusal::MaxConnections(3)));
        c.apply(Admission::Ended {
            authenticated: true,
        });
        assert_eq!(
            c,
            Count {
                open: 2,
                unauthenticated: 2
            }
        );
        c.apply(Admission::Ended {
            authenticated: false,
        });
        c.apply(Admission::Ended {
            authenticated: false,
        });
        c.apply(Admission::Ended {
            authenticated: false,
        });
        assert_eq!(c, Count::default(), "never below zero");
    }
}
