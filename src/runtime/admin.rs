//! The admin endpoint (`[gateway] admin`): the status page, `/healthz`, `/readyz`, `/metrics`
//! and `/status` over HTTP, served by shard 0 from every shard's snapshot, and `POST /reload`
//! (see `reload.rs`). Parsing, routing and rendering are `crate::admin`'s.

use super::accept::{self, Acceptor, Listener, RateLimit, Refusal, ADMIN_MAX_CONNECTIONS};
use super::shard::ShardCtx;
use crate::admin::health;
use crate::admin::http::{self, parse_head, HeadError, Method, Page, Response, Routed};
use crate::admin::{render_metrics, render_status, Summary};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// A request must arrive whole within this, however slowly its bytes trickle in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After answering, what is still read and dropped before closing, and for how long at most.
const LINGER_BYTES: usize = 256 * 1024;
const LINGER: Duration = Duration::from_secs(1);

/// Serves the endpoint until shutdown: at most [`ADMIN_MAX_CONNECTIONS`] at once, further
/// connections closed at once (counted and logged, rate-limited), failed accepts backed off
/// (see `accept.rs`).
pub async fn serve(ctx: Rc<ShardCtx>, listener: TcpListener, started: Started) {
    let mut token = 0u64;
    let mut acceptor = Acceptor::new(listener, Listener::Admin);
    let mut refusals = RateLimit::default();
    let open = Rc::new(Cell::new(0usize));
    while let Some(accepted) = acceptor.next(&ctx).await {
        let tcp = accepted.bind_to_executor();
        if open.get() >= ADMIN_MAX_CONNECTIONS {
            drop(tcp);
            accept::refused(&ctx, Listener::Admin, Refusal::AdminBusy, &mut refusals);
            continue;
        }
        token += 1;
        let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        // Released however the answer ends, a contained panic included.
        let slot = OpenSlot::take(&open);
        let ctx = ctx.clone();
        super::contain::spawn(
            ctx.id,
            format!("the admin request from {peer}"),
            async move {
                let _slot = slot;
                answer(ctx, tcp, token, started).await;
            },
        );
    }
}

/// One of the admin endpoint's open connections, counted while it lives.
struct OpenSlot(Rc<Cell<usize>>);

impl OpenSlot {
    fn take(open: &Rc<Cell<usize>>) -> OpenSlot {
        open.set(open.get() + 1);
        OpenSlot(open.clone())
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Reads one request head (bounded, within [`REQUEST_TIMEOUT`]); `None` when the peer went
/// away or ran out of time before sending one.
async fn read_head(tcp: &mut TcpStream) -> Option<Result<(Method, String), HeadError>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        let read = async { Some(tcp.read(&mut chunk).await) };
        let timeout = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            None
        };
        match futures_lite::future::or(read, timeout).await {
            Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
        match parse_head(&buf) {
            Ok(None) => continue,
            Ok(Some((method, path))) => return Some(Ok((method, path.to_owned()))),
            Err(e) => return Some(Err(e)),
        }
    }
}

async fn answer(ctx: Rc<ShardCtx>, mut tcp: TcpStream, token: u64, started: Started) {
    let Some(head) = read_head(&mut tcp).await else {
        return;
    };
    let (response, head_only) = match head {
        Err(e) => (http::refusal(&e), false),
        Ok((method, path)) => match http::route(method, &path) {
            Routed::NotFound => (Response::text(404, http::not_found_hint(&path)), false),
            Routed::WrongMethod { allow } => {
                let mut r = Response::text(405, format!("{path} takes {allow}\n"));
                r.allow = Some(allow);
                (r, method == Method::Head)
            }
            Routed::Serve { page, head_only } => {
                (serve_page(&ctx, page, token, &started).await, head_only)
            }
        },
    };
    // A peer that does not read its answer does not hold the connection past the deadline.
    let write = async {
        let _ = tcp.write_all(&response.to_bytes(head_only)).await;
    };
    let timeout = glommio::timer::sleep(REQUEST_TIMEOUT);
    futures_lite::future::or(write, timeout).await;
    // A lingering close: read (and drop) what the peer still sends for a moment, so that
    // closing with unread bytes does not reset the connection before the answer is read.
    let _ = tcp.shutdown(std::net::Shutdown::Write).await;
    let drain = async {
        let mut chunk = [0u8; 2048];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match tcp.read(&mut chunk).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    };
    futures_lite::future::or(drain, glommio::timer::sleep(LINGER)).await;
    let _ = tcp.close().await;
}

/// The answer for `page`.
async fn serve_page(ctx: &Rc<ShardCtx>, page: Page, token: u64, started: &Started) -> Response {
    match page {
        Page::Healthz => Response::text(200, "ok\n"),
        Page::Readyz => {
            let reasons = health::not_ready(&summary(ctx, token, started).await);
            if reasons.is_empty() {
                Response::text(200, "ready\n")
            } else {
                Response::text(503, format!("not ready: {}\n", reasons.join("; ")))
            }
        }
        Page::Metrics => {
            let body = render_metrics(&summary(ctx, token, started).await);
            Response::new(200, http::PROMETHEUS, body)
        }
        Page::Status => {
            let body = render_status(&summary(ctx, token, started).await);
            Response::new(200, http::JSON, body)
        }
        Page::Reload => {
            let (status, _reason, body) = super::reload::on_request(ctx).await;
            Response::new(status, http::JSON, body)
        }
        Page::Index => {
            let status = render_status(&summary(ctx, token, started).await);
            Response::new(200, http::HTML, crate::admin::page::render(&status))
        }
    }
}

/// When the gateway started, by both clocks.
#[derive(Copy, Clone)]
pub struct Started {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Started {
    pub fn now() -> Started {
        Started {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Every shard's snapshot, merged.
async fn summary(ctx: &Rc<ShardCtx>, token: u64, started: &Started) -> Summary {
    let snaps = super::status::gather(ctx, token).await;
    let profiles = (0..ctx.policy().profile_count())
        .map(|p| {
            ctx.policy()
                .profile_name(crate::policy::ProfileId(p as u16))
                .to_owned()
        })
        .collect();
    let mut summary = Summary::merge(
        &ctx.config().gateway.name,
        started.at.elapsed(),
        profiles,
        &snaps,
    );
    summary.config = ctx.reload_report.borrow().to_json();
    summary.shards_expected = usize::from(ctx.shards);
    summary.started_unix = started
        .wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    summary
}
