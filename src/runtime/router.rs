//! Router connections: the inbound leg (a router dials the gateway's router port and proves its
//! secret) and the outbound leg (the gateway dials an XMPP server's component port as an
//! ordinary external component). The sockets, the dial loop and its sleeps are here; the
//! backoff's schedule (`gateway::Backoff`) and what a router's stream and stanzas mean (names,
//! the trust rule, events, service requests) are the gateway core's (`crate::gateway`).

use super::accept::Slot;
use super::conn;
use super::log::Level;
use super::shard::ShardCtx;
use super::tls::{self, Transport};
use crate::gateway::{Attempt, Backoff, Peer};
use crate::policy::RouterConfig;
use crate::wire::{ComponentStream, FromCheck, StreamEvent};
use glommio::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Serves one accepted router connection until it closes; `slot` counts it against its
/// listener's caps until then.
pub async fn serve_inbound(
    ctx: Rc<ShardCtx>,
    mut tcp: TcpStream,
    transport: Transport,
    slot: Slot,
) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let Some(stream) = ctx.receiver_stream("a router connection") else {
        return;
    };
    let who = format!("the router connection from {peer}");
    let Some(conn) = tls::accepted(&ctx, &mut tcp, transport, stream, &who).await else {
        return;
    };
    let this = conn.clone();
    let id = ctx.open(Peer::RouterInbound, peer.clone(), &conn);
    let label = conn::Label {
        shard: ctx.id,
        name: format!("router connection {id} from {peer}"),
    };
    let ctx2 = ctx.clone();
    let closed = conn::drive(
        tcp,
        conn,
        &label,
        move |_, event, now| {
            if matches!(event, StreamEvent::Active) {
                slot.authenticated();
            }
            ctx2.on_stream_event(id, event, now)
        },
        |conn| ctx.hold(id, conn),
        &ctx.wakes.reads,
    )
    .await;
    tls::ended(&ctx, &this, &who);
    ctx.ended(id, closed);
}

/// Keeps a connection to an XMPP server's component port (`[[router]] connect`), redialing
/// with backoff, until shutdown or until a reload replaces `generation`.
pub async fn dial_outbound(ctx: Rc<ShardCtx>, router: RouterConfig, addr: String, generation: u32) {
    let mut backoff = Backoff::new(ctx.config().timers.reconnect_min, super::backoff::seed());
    let current = |ctx: &ShardCtx| {
        !ctx.shutting_down.get() && ctx.router_generation(&router.name) == generation
    };
    while current(&ctx) {
        // glommio's connect, bounded like the compliance dialer's (an io_uring link timeout).
        let timeout = ctx
            .config()
            .timers
            .handshake_timeout
            .max(Duration::from_millis(1));
        let connected = TcpStream::connect_timeout(addr.as_str(), timeout).await;
        if !current(&ctx) {
            break;
        }
        match connected {
            Ok(mut tcp) => {
                ctx.log(
                    Level::Info,
                    &format!("Connected to router {} at {addr}", router.name),
                );
                let gateway = ctx.config().gateway.name.clone();
                let mut stream = ComponentStream::initiator(
                    ctx.stream_config(),
                    &gateway,
                    router.secret.as_bytes(),
                    crate::wire::stream::NS_ACCEPT,
                    FromCheck::PeerDomainOrSubdomain,
                    Instant::now(),
                );
                stream.expect_peer(&router.name);
                let who = format!("router {} at {addr}", router.name);
                let material = ctx.tls();
                let dial = material.router_dial(&router.name);
                let Ok(conn) = tls::dialed(&ctx, &mut tcp, dial, stream, &who).await else {
                    let delay = backoff.poll_delay(ctx.config().timers.reconnect_max);
                    glommio::timer::sleep(delay).await;
                    continue;
                };
                let this = conn.clone();
                let peer = Peer::RouterOutbound {
                    name: router.name.clone(),
                };
                let id = ctx.open(peer, addr.clone(), &conn);
                let label = conn::Label {
                    shard: ctx.id,
                    name: format!("router {} connection {id} at {addr}", router.name),
                };
                let ctx2 = ctx.clone();
                let closed = conn::drive(
                    tcp,
                    conn,
                    &label,
                    move |_, event, now| ctx2.on_stream_event(id, event, now),
                    |conn| ctx.hold(id, conn),
                    &ctx.wakes.reads,
                )
                .await;
                tls::ended(&ctx, &this, &who);
                ctx.ended(id, closed);
                backoff.handle_attempt(Attempt::Served, ctx.config().timers.reconnect_min);
            }
            Err(e) => ctx.log(
                Level::Warn,
                &format!("Unable to connect to router {} at {addr}: {e}", router.name),
            ),
        }
        if !current(&ctx) {
            break;
        }
        let delay = backoff.poll_delay(ctx.config().timers.reconnect_max);
        glommio::timer::sleep(delay).await;
    }
}
