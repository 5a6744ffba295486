//! Compliance server streams: the outbound "open port" leg (the gateway dials the server, logs
//! the seed's `Connecting on fd N...` / `Unable to connect...` / `Component NAME is
//! CONNECTED|ACTIVE|GONE` lines verbatim, and redials with jittered exponential backoff) and
//! the inbound leg (the server dials the gateway's compliance port). The sockets, the dial loop
//! and its backoff are here; which inbound stream is admitted, which stream is this shard's
//! link, and what every shard hears when it comes or goes are the gateway core's
//! (`crate::gateway`).

use super::accept::Slot;
use super::conn::{self, ConnRef};
use super::log::{os_error_text, suppressed, Level, RateLimit};
use super::shard::ShardCtx;
use super::tls::{self, Transport};
use crate::gateway::Peer;
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
    let mut backoff = ctx.config().timers.reconnect_min;
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
                            backoff = t.reconnect_min;
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
        glommio::timer::sleep(super::backoff::jittered(backoff)).await;
        backoff = (backoff * 2).min(t.reconnect_max);
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
        |conn| ctx.server_hold(conn),
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
        |conn| ctx.server_hold(conn),
    )
    .await;
    tls::ended(ctx, &this, who);
    let was_link = ctx.core.borrow().became_link(id);
    ctx.ended(id, closed);
    was_link
}

/// Resolves the server's address (off the executor thread for host names) and connects,
/// logging the fd first as the seed's log does.
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
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            wait_connected(&socket, timeout).await?
        }
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from(socket))
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

/// Waits for a non-blocking connect to finish, polling its socket without blocking the shard.
async fn wait_connected(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        let mut pfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout; poll only reads and writes that struct.
        let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
        if ready < 0 {
            return Err(io::Error::last_os_error());
        }
        if ready > 0 {
            return match socket.take_error()? {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        if Instant::now() >= deadline {
            return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
        }
        glommio::timer::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
