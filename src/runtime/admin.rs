//! The admin endpoint (`[gateway] admin`): `/metrics` and `/status` over HTTP, served by
//! shard 0 from every shard's snapshot, and `POST /reload` (see `reload.rs`). Rendering is
//! `crate::admin`'s.

use super::accept::{self, Acceptor, Listener, RateLimit, Refusal, ADMIN_MAX_CONNECTIONS};
use super::shard::ShardCtx;
use crate::admin::http::{parse_head, response};
use crate::admin::{render_metrics, render_status, Summary};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A request must arrive whole within this, however slowly its bytes trickle in.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the endpoint until shutdown: at most [`ADMIN_MAX_CONNECTIONS`] at once, further
/// connections closed at once (counted and logged, rate-limited), failed accepts backed off
/// (see `accept.rs`).
pub async fn serve(ctx: Rc<ShardCtx>, listener: TcpListener, started: Instant) {
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

async fn answer(ctx: Rc<ShardCtx>, mut tcp: TcpStream, token: u64, started: Instant) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let (status, reason, kind, body) = loop {
        let read = async { Some(tcp.read(&mut chunk).await) };
        let timeout = async {
            glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
            None
        };
        match futures_lite::future::or(read, timeout).await {
            Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
        match parse_head(&buf) {
            Ok(None) => continue,
            Err(_) => break (400, "Bad Request", "text/plain", b"bad request\n".to_vec()),
            Ok(Some((method, path))) => {
                if (method, path) == ("POST", "/reload") {
                    let (status, reason, body) = super::reload::on_request(&ctx).await;
                    break (status, reason, "application/json", body);
                }
                if method != "GET" {
                    break (
                        405,
                        "Method Not Allowed",
                        "text/plain",
                        b"GET only\n".to_vec(),
                    );
                }
                let render = match path {
                    "/metrics" => Some(("text/plain; version=0.0.4", true)),
                    "/status" => Some(("application/json", false)),
                    _ => None,
                };
                let Some((kind, metrics)) = render else {
                    break (
                        404,
                        "Not Found",
                        "text/plain",
                        b"try /metrics or /status\n".to_vec(),
                    );
                };
                let snaps = super::status::gather(&ctx, token).await;
                let profiles = (0..ctx.policy().profile_count())
                    .map(|p| {
                        ctx.policy()
                            .profile_name(crate::policy::ProfileId(p as u16))
                            .to_owned()
                    })
                    .collect();
                let mut summary = Summary::merge(
                    &ctx.config().gateway.name,
                    started.elapsed(),
                    profiles,
                    &snaps,
                );
                summary.config = ctx.reload_report.borrow().to_json();
                let body = if metrics {
                    render_metrics(&summary)
                } else {
                    render_status(&summary)
                };
                break (200, "OK", kind, body.into_bytes());
            }
        }
    };
    let _ = tcp.write_all(&response(status, reason, kind, &body)).await;
    let _ = tcp.close().await;
}
