//! Compliance server streams: the outbound "open port" leg (the gateway dials the server, logs
//! the seed's `Connecting on fd N...` / `Unable to connect...` / `Component NAME is
//! CONNECTED|ACTIVE|GONE` lines verbatim, and redials with jittered exponential backoff) and
//! the inbound leg (the server dials the gateway's compliance port). The sockets, the dial loop
//! and its sleeps are here; the backoff's schedule (`gateway::Backoff`), which inbound stream
//! is admitted, which stream is this shard's link, and what every shard hears when it comes or
//! goes are the gateway core's (`crate::gateway`).

use super::accept::Slot;
use super::conn::{self, ConnRef};
use super::log::{os_error_text, suppressed, Level, RateLimit};
use super::shard::ShardCtx;
use super::tls::{self, Transport};
use crate::gateway::{Attempt, Backoff, Peer};
use crate::policy::{ServerId, ServerInfo};
use crate::wire::{ComponentStream, FromCheck, StreamEvent};
use glommio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Keeps this shard's outbound stream to `server` up for as long as the gateway runs, or until
/// a reload replaces `generation` (the server changed or left).
pub async fn dial(ctx: Rc<ShardCtx>, server: ServerId, generation: u32) {
    let Some(info) = ctx.policy().server(server).cloned() else {
        return;
    };
    let mut backoff = Backoff::new(ctx.config().timers.reconnect_min, super::backoff::seed());
    // Failed attempts in a row are logged once per LOG_EVERY (the rest at debug level), the
    // next one with how many were held back; a stream that comes up starts afresh.
    let mut failures = RateLimit::default();
    let current = |ctx: &ShardCtx| !ctx.shutting_down.get() && ctx.link_current(server, generation);
    while current(&ctx) {
        let t = ctx.config().timers.clone();
        let level = match failures.is_open(Instant::now()) {
            true => Level::Info,
            false => Level::Debug,
        };
        let connected = connect_logged(&ctx, &info, t.handshake_timeout, level).await;
        if !current(&ctx) {
            break;
        }
        match connected {
            Err(e) => {
                let (code, text) = os_error_text(&e);
                let (level, also) = match failures.allow(Instant::now()) {
                    Some(held_back) => (Level::Warn, suppressed(held_back)),
                    None => (Level::Debug, String::new()),
                };
                ctx.log(
                    level,
                    &format!(
                        "Unable to connect to host '{}', port {}: ({code}) {text}{also}",
                        info.host, info.port
                    ),
                );
                ctx.log(level, &format!("Component {} is GONE", info.component));
            }
            Ok(mut tcp) => {
                failures = RateLimit::default();
                ctx.log(
                    Level::Info,
                    &format!("Component {} is CONNECTED", info.component),
                );
                let mut stream = ComponentStream::initiator(
                    ctx.stream_config(),
                    &info.component,
                    info.password.as_bytes(),
                    crate::wire::stream::NS_ACCEPT,
                    FromCheck::PeerDomain,
                    Instant::now(),
                );
                stream.enable_pings(&ctx.config().gateway.name, &info.component);
                let who = format!(
                    "compliance server {} ({}:{})",
                    info.name, info.host, info.port
                );
                let material = ctx.tls();
                let dial = material.server_dial(&info.name);
                match tls::dialed(&ctx, &mut tcp, dial, stream, &who).await {
                    Ok(conn) => {
                        if serve(&ctx, server, generation, &info, (tcp, conn), &who).await {
                            backoff.handle_attempt(Attempt::Served, t.reconnect_min);
                        }
                    }
                    // An ungraceful failure of the connection: the server stays where it
                    // was (in its outage window, if it was up before).
                    Err(failure) => ctx.log(
                        Level::Warn,
                        &format!(
                            "Component {} is GONE (TLS: {})",
                            info.component,
                            failure.reason()
                        ),
                    ),
                }
            }
        }
        if !current(&ctx) {
            break;
        }
        glommio::timer::sleep(backoff.poll_delay(t.reconnect_max)).await;
    }
}

/// Serves one accepted connection on the compliance port until it closes; `slot` counts it
/// against its listener's caps until then.
pub async fn serve_inbound(
    ctx: Rc<ShardCtx>,
    mut tcp: TcpStream,
    transport: Transport,
    slot: Slot,
) {
    let Some(stream) = ctx.receiver_stream("a compliance connection") else {
        return;
    };
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let label = conn::Label {
        shard: ctx.id,
        name: format!("compliance connection from {peer}"),
    };
    let who = format!("the {}", label.name);
    let Some(conn) = tls::accepted(&ctx, &mut tcp, transport, stream, &who).await else {
        return;
    };
    let this = conn.clone();
    let id = ctx.open(Peer::ServerInbound, peer, &conn);
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

/// Runs an outbound stream; true if it became this shard's link to `server`.
async fn serve(
    ctx: &Rc<ShardCtx>,
    server: ServerId,
    generation: u32,
    info: &ServerInfo,
    (tcp, conn): (TcpStream, ConnRef),
    who: &str,
) -> bool {
    let this = conn.clone();
    let addr = format!("{}:{}", info.host, info.port);
    let id = ctx.open(Peer::ServerOutbound { server, generation }, addr, &conn);
    let ctx2 = ctx.clone();
    let label = conn::Label {
        shard: ctx.id,
        name: format!(
            "compliance link to {} ({}:{})",
            info.component, info.host, info.port
        ),
    };
    let closed = conn::drive(
        tcp,
        conn,
        &label,
        move |_, event, now| ctx2.on_stream_event(id, event, now),
        |conn| ctx.hold(id, conn),
        &ctx.wakes.reads,
    )
    .await;
    tls::ended(ctx, &this, who);
    let was_link = ctx.core.borrow().became_link(id);
    ctx.ended(id, closed);
    was_link
}

/// Resolves the server's address (off the executor thread for host names) and connects,
/// logging the fd first as the seed's log does.
///
/// The socket is made here, not by glommio's `TcpStream::connect`, because the seed's line
/// names its descriptor before the attempt, and glommio's connect makes its socket inside.
/// The connect itself starts non-blocking and glommio's stream waits for it: a zero-byte send
/// on a socket still connecting fails with EAGAIN, so glommio arms a poll for writability in
/// its ring, and the task wakes when the connect completes or fails (the failure comes back
/// from the next send as the socket's error, as `connect(2)` would have reported it). A timer
/// raced with it bounds the wait: no polling, no sleeping between looks.
async fn connect_logged(
    ctx: &ShardCtx,
    info: &ServerInfo,
    timeout: Duration,
    level: Level,
) -> io::Result<TcpStream> {
    let addr = resolve(&info.host, info.port).await?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    ctx.log(
        level,
        &format!(
            "Connecting on fd {} to host '{}', port {}",
            socket.as_raw_fd(),
            info.host,
            info.port
        ),
    );
    let in_progress = match socket.connect(&addr.into()) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) => return Err(e),
    };
    let mut tcp = TcpStream::from(socket);
    if in_progress {
        connected(&mut tcp, timeout).await?;
    }
    Ok(tcp)
}

/// Waits for `tcp`'s non-blocking connect to complete, at most `timeout` (see
/// [`connect_logged`]).
async fn connected(tcp: &mut TcpStream, timeout: Duration) -> io::Result<()> {
    use futures_lite::io::AsyncWriteExt;
    let established = async {
        // Ready with 0 once connected; the connect's error if it failed.
        tcp.write(&[]).await.map(drop)
    };
    let timed_out = async {
        glommio::timer::sleep(timeout).await;
        Err(io::Error::from_raw_os_error(libc::ETIMEDOUT))
    };
    futures_lite::future::or(established, timed_out).await
}

async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let target = format!("{host}:{port}");
    glommio::executor()
        .spawn_blocking(move || target.to_socket_addrs().map(|mut a| a.next()))
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host name has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};

    /// A non-blocking connect to `addr`, waited for as `connect_logged` does.
    async fn dial(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        let in_progress = match socket.connect(&addr.into()) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return Err(e),
        };
        let mut tcp = TcpStream::from(socket);
        if in_progress {
            connected(&mut tcp, timeout).await?;
        }
        Ok(tcp)
    }

    #[test]
    fn a_connect_completes_or_fails_through_the_ring() {
        let ex = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("a glommio executor");
        ex.run(async {
            use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let accepted = glommio::spawn_local(async move {
                let mut tcp = listener.accept().await.expect("accept");
                let mut got = [0u8; 5];
                tcp.read_exact(&mut got).await.expect("read");
                got
            });
            let mut tcp = dial(addr, Duration::from_secs(5)).await.expect("connected");
            // The zero-byte send that waited for the connect sent nothing.
            tcp.write_all(b"hello").await.expect("write");
            assert_eq!(&accepted.await, b"hello");

            // Nobody listens there any more: refused, with the errno the seed's line shows.
            let gone = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                l.local_addr().expect("addr")
            };
            let refused = dial(gone, Duration::from_secs(5)).await.map(drop);
            assert_eq!(
                refused.unwrap_err().raw_os_error(),
                Some(libc::ECONNREFUSED)
            );
        });
    }
}
