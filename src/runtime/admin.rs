//! The admin endpoint (`[gateway] admin`): `/metrics` and `/status` over HTTP, served by
//! shard 0 from every shard's snapshot. Rendering is `crate::admin`'s.

use super::shard::ShardCtx;
use crate::admin::http::{parse_head, response};
use crate::admin::{render_metrics, render_status, Summary};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub async fn serve(ctx: Rc<ShardCtx>, listener: TcpListener, started: Instant) {
    let mut token = 0u64;
    while !ctx.shutting_down.get() {
        let tick = async {
            glommio::timer::sleep(Duration::from_millis(100)).await;
            None
        };
        let next = async { Some(listener.accept().await) };
        if let Some(Ok(tcp)) = futures_lite::future::or(next, tick).await {
            token += 1;
            let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            super::contain::spawn(
                ctx.id,
                format!("the admin request from {peer}"),
                answer(ctx.clone(), tcp, token, started),
            );
        }
    }
}

async fn answer(ctx: Rc<ShardCtx>, mut tcp: TcpStream, token: u64, started: Instant) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let (status, reason, kind, body) = loop {
        let read = async { Some(tcp.read(&mut chunk).await) };
        let timeout = async {
            glommio::timer::sleep(Duration::from_secs(5)).await;
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
