//! The TLS handshake of one connection on a glommio socket, before its XEP-0114 stream starts,
//! and the one log line and count of each TLS failure. After the handshake the connection's
//! reader and writer (`conn.rs`) carry the session; the bytes it moves are all it knows of TLS
//! (the rest is `crate::tls`).

use super::conn::{Conn, ConnRef};
use super::log::Level;
use super::shard::ShardCtx;
use crate::tls::{Dial, Session, TlsFailure};
use crate::wire::ComponentStream;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::time::Duration;

/// How a leg's bytes travel.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// Direct TLS: the handshake first, then the stream.
    Tls,
}

/// Runs the handshake of `session` on `tcp`, within `timeout`. Returns the session and any
/// plaintext that arrived with the handshake's last flight (the peer's stream header, often).
/// A peer whose first bytes are not TLS gets no answer.
pub async fn handshake(
    tcp: &mut TcpStream,
    session: Session,
    timeout: Duration,
) -> Result<(Session, Vec<u8>), TlsFailure> {
    let work = run(tcp, session);
    let expired = async {
        glommio::timer::sleep(timeout).await;
        Err(TlsFailure::Timeout)
    };
    futures_lite::future::or(work, expired).await
}

async fn run(tcp: &mut TcpStream, mut session: Session) -> Result<(Session, Vec<u8>), TlsFailure> {
    let mut plain = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    loop {
        out.clear();
        session.take_tls(&mut out);
        if !out.is_empty() {
            tcp.write_all(&out).await.map_err(io_failure)?;
        }
        if !session.is_handshaking() {
            return Ok((session, plain));
        }
        let n = tcp.read(&mut buf).await.map_err(io_failure)?;
        if n == 0 {
            return Err(TlsFailure::Handshake(
                "the peer closed the connection during the handshake".into(),
            ));
        }
        if let Err(failure) = session.receive(&buf[..n], |p| plain.extend_from_slice(p)) {
            if failure != TlsFailure::PlaintextPeer {
                // The alert rustls queued tells the peer why (best effort).
                out.clear();
                session.take_tls(&mut out);
                let _ = tcp.write_all(&out).await;
            }
            return Err(failure);
        }
    }
}

fn io_failure(e: std::io::Error) -> TlsFailure {
    TlsFailure::Handshake(format!("the connection failed during the handshake: {e}"))
}

/// Logs a TLS failure once, with its reason, and counts it for `/metrics`.
pub fn failed(ctx: &ShardCtx, who: &str, failure: &TlsFailure) {
    ctx.counters.borrow_mut().tls_failures[failure.index()] += 1;
    ctx.log(
        Level::Warn,
        &format!(
            "TLS with {who} failed ({}): {}",
            failure.reason(),
            failure.detail()
        ),
    );
}

/// The connection for an accepted socket on a `transport` listener: with TLS, once its
/// handshake is done. A failed handshake is logged and counted, and ends the connection.
pub async fn accepted(
    ctx: &ShardCtx,
    tcp: &mut TcpStream,
    transport: Transport,
    stream: ComponentStream,
    who: &str,
) -> Option<ConnRef> {
    if transport == Transport::Plain {
        return Some(Conn::new(stream));
    }
    let Some(config) = ctx.tls().listener.clone() else {
        ctx.log(
            Level::Warn,
            &format!("Closed {who}: TLS port without a [tls] certificate in force"),
        );
        return None;
    };
    let timeout = ctx.config().timers.handshake_timeout;
    let done = match Session::server(config) {
        // Boxed: inline, the handshake's state would make every plain connection's task as
        // big as a TLS one's.
        Ok(session) => Box::pin(handshake(tcp, session, timeout)).await,
        Err(failure) => Err(failure),
    };
    match done {
        Ok((session, early)) => Some(Conn::with_tls(stream, session, early)),
        Err(failure) => {
            failed(ctx, who, &failure);
            None
        }
    }
}

/// The connection for a dialed socket: with `dial`, once its handshake is done (a failure is
/// logged and counted, and returned: the caller treats it as a failed connection).
pub async fn dialed(
    ctx: &ShardCtx,
    tcp: &mut TcpStream,
    dial: Option<&Dial>,
    stream: ComponentStream,
    who: &str,
) -> Result<ConnRef, TlsFailure> {
    let Some(dial) = dial else {
        return Ok(Conn::new(stream));
    };
    let timeout = ctx.config().timers.handshake_timeout;
    let done = match Session::client(dial) {
        Ok(session) => handshake(tcp, session, timeout).await,
        Err(failure) => Err(failure),
    };
    done.map(|(session, early)| Conn::with_tls(stream, session, early))
        .inspect_err(|failure| failed(ctx, who, failure))
}

/// After a connection ended: logs and counts what TLS (or a TLS peer on a plain leg) did to
/// it, if anything.
pub fn ended(ctx: &ShardCtx, conn: &Conn, who: &str) {
    if let Some(failure) = conn.take_tls_failure() {
        failed(ctx, who, &failure);
    }
}
