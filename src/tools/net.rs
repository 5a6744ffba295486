//! One XEP-0114 stream over one nonblocking TCP socket, driven by the thread that owns it:
//! reading straight into the stream's framer, writing its output in as few syscalls as
//! possible, waiting for readiness with `ppoll(2)`, both handshakes, and abrupt resets.
//!
//! The stream logic itself is [`crate::wire::ComponentStream`]'s; this file only moves bytes
//! and time in and out of it. Must not interpret stanzas: callers poll [`Link::poll_event`].
//!
//! With TLS (`palisade load --tls-ca`, `palisade sim --tls-cert`: set once per process, before
//! any link, by [`use_tls`]) every link's bytes pass through a [`crate::tls::Session`]; the
//! TLS handshake is done blocking, before the stream's.

use crate::wire::stream::NS_ACCEPT;
use crate::wire::{Closed, ComponentStream, Condition, FromCheck, StreamConfig, StreamEvent};
use bytes::{Buf, Bytes};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The TLS a tool uses for all its links (see the module documentation).
pub enum ToolTls {
    /// Dials present nothing and verify the peer with this.
    Dial(crate::tls::Dial),
    /// Accepted connections get this certificate.
    Accept(Arc<rustls::ServerConfig>),
}

static TLS: OnceLock<ToolTls> = OnceLock::new();

/// Makes every link of this process use `tls` (the first call wins).
pub fn use_tls(tls: ToolTls) {
    let _ = TLS.set(tls);
}

/// A blocking TLS handshake on a fresh socket; the session and any plaintext that came with it.
fn tls_handshake(
    mut sock: &TcpStream,
    mut session: crate::tls::Session,
) -> io::Result<(crate::tls::Session, Vec<u8>)> {
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut early = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        session.take_tls(&mut out);
        sock.write_all(&out)?;
        if !session.is_handshaking() {
            sock.set_read_timeout(None)?;
            return Ok((session, early));
        }
        let n = sock.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other("TLS: closed during the handshake"));
        }
        session
            .receive(&buf[..n], |p| early.extend_from_slice(p))
            .map_err(|f| io::Error::other(format!("TLS ({}): {}", f.reason(), f.detail())))?;
    }
}

/// How much one `read(2)` asks for. Big reads mean many stanzas per syscall; the framer zeroes
/// the region first, so this is also the per-read memset.
pub const READ_CHUNK: usize = 128 * 1024;

/// Why a link could not be set up or went down.
#[derive(Debug)]
pub enum NetError {
    /// No address to dial.
    Resolve {
        addr: String,
        source: io::Error,
    },
    Connect {
        addr: String,
        source: io::Error,
    },
    Io(io::Error),
    /// The stream ended during the handshake (refused, peer error, timeout, EOF).
    Handshake(Closed),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Resolve { addr, source } => write!(f, "cannot resolve {addr}: {source}"),
            NetError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            NetError::Io(e) => write!(f, "socket error: {e}"),
            NetError::Handshake(c) => write!(f, "stream ended during the handshake: {}", closed(c)),
        }
    }
}

impl std::error::Error for NetError {}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> Self {
        NetError::Io(e)
    }
}

/// A human description of how a stream ended.
pub fn closed(c: &Closed) -> String {
    match c {
        Closed::PeerEnded => "the peer closed its stream".into(),
        Closed::PeerError { condition, text } => match text {
            Some(t) => format!("the peer sent stream error {}: {t}", condition.as_str()),
            None => format!("the peer sent stream error {}", condition.as_str()),
        },
        Closed::Refused { condition, reason } => {
            format!("we refused the peer ({}): {reason}", condition.as_str())
        }
        Closed::PeerSilent => "the peer was silent past the dead interval".into(),
        Closed::LocalEnded => "we closed the stream".into(),
        Closed::TransportEnded => "the connection ended without a stream close".into(),
    }
}

/// What [`Link::wait`] saw.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub readable: bool,
    pub writable: bool,
}

/// A stream and its socket. See the module documentation.
pub struct Link {
    sock: TcpStream,
    pub stream: ComponentStream,
    /// Output taken from the stream and not yet fully written.
    pending: Bytes,
    /// The peer closed its side; reported to the stream once its buffered input is drained.
    peer_eof: bool,
    eof_reported: bool,
    /// TLS between the socket and the stream, and its read buffer.
    tls: Option<(crate::tls::Session, Vec<u8>)>,
}

impl Link {
    pub fn new(sock: TcpStream, stream: ComponentStream) -> io::Result<Link> {
        sock.set_nonblocking(true)?;
        sock.set_nodelay(true)?;
        Ok(Link {
            sock,
            stream,
            pending: Bytes::new(),
            peer_eof: false,
            eof_reported: false,
            tls: None,
        })
    }

    /// [`Link::new`], over TLS when the process uses it ([`use_tls`]): the TLS handshake
    /// first, as `dialer` or acceptor.
    fn secured(sock: TcpStream, mut stream: ComponentStream, dialer: bool) -> io::Result<Link> {
        let session = match (TLS.get(), dialer) {
            (Some(ToolTls::Dial(d)), true) => Some(crate::tls::Session::client(d)),
            (Some(ToolTls::Accept(c)), false) => Some(crate::tls::Session::server(c.clone())),
            _ => None,
        };
        let Some(session) = session else {
            return Link::new(sock, stream);
        };
        let session = session.map_err(|f| io::Error::other(f.detail()))?;
        sock.set_nodelay(true)?;
        let (session, early) = tls_handshake(&sock, session)?;
        stream.receive(&early, Instant::now());
        let mut link = Link::new(sock, stream)?;
        link.tls = Some((session, vec![0; READ_CHUNK]));
        Ok(link)
    }

    /// [`Link::read_some`] through TLS.
    fn read_tls(&mut self, budget: usize, now: Instant) -> io::Result<usize> {
        let Some((session, raw)) = self.tls.as_mut() else {
            return Ok(0);
        };
        let stream = &mut self.stream;
        let mut total = 0;
        while total < budget && !self.peer_eof {
            match (&self.sock).read(raw) {
                Ok(0) => self.peer_eof = true,
                Ok(n) => {
                    total += n;
                    match session.receive(&raw[..n], |p| stream.receive(p, now)) {
                        Ok(crate::tls::Fed::Open) => {}
                        Ok(crate::tls::Fed::PeerClosed) => self.peer_eof = true,
                        Err(f) => {
                            self.peer_eof = true;
                            return Err(io::Error::other(f.detail()));
                        }
                    }
                    if n < raw.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.peer_eof = true;
                    return Err(e);
                }
            }
        }
        Ok(total)
    }

    /// The next bytes to write: the stream's output, encrypted when the link has TLS.
    fn next_output(&mut self) -> Option<Bytes> {
        let plain = self.stream.take_output();
        let Some((session, _)) = self.tls.as_mut() else {
            return plain;
        };
        if let Some(p) = plain {
            session.send(&p);
        }
        if !session.wants_write() {
            return None;
        }
        let mut out = Vec::new();
        session.take_tls(&mut out);
        Some(out.into())
    }

    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Reads what the socket holds, up to about `budget` bytes. Returns the bytes read; an EOF
    /// is remembered and surfaces as [`StreamEvent::Closed`] after the buffered stanzas.
    pub fn read_some(&mut self, budget: usize, now: Instant) -> io::Result<usize> {
        if self.tls.is_some() {
            return self.read_tls(budget, now);
        }
        let mut total = 0;
        while total < budget && !self.peer_eof {
            let buf = self.stream.spare(READ_CHUNK);
            match (&self.sock).read(buf) {
                Ok(0) => {
                    self.stream.commit(0, now);
                    self.peer_eof = true;
                }
                Ok(n) => {
                    self.stream.commit(n, now);
                    total += n;
                    if n < READ_CHUNK {
                        // A short read almost always means the socket is drained; asking
                        // again would cost a syscall that returns EAGAIN.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stream.commit(0, now);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.stream.commit(0, now),
                Err(e) => {
                    self.stream.commit(0, now);
                    self.peer_eof = true;
                    return Err(e);
                }
            }
        }
        Ok(total)
    }

    /// The stream's next event; once the input is drained after an EOF, the close.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        if let Some(ev) = self.stream.poll_event() {
            return Some(ev);
        }
        if self.peer_eof && !self.eof_reported {
            self.eof_reported = true;
            self.stream.transport_closed();
            return self.stream.poll_event();
        }
        None
    }

    /// True once the peer's side of the connection is closed.
    pub fn peer_eof(&self) -> bool {
        self.peer_eof
    }

    /// Bytes waiting to be written (taken and not).
    pub fn backlog(&self) -> usize {
        let tls = self
            .tls
            .as_ref()
            .map_or(0, |(s, _)| usize::from(s.wants_write()));
        self.pending.len() + self.stream.pending_output() + tls
    }

    pub fn wants_write(&self) -> bool {
        self.backlog() > 0
    }

    /// Writes as much output as the socket takes now. `Ok(true)` when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        loop {
            if self.pending.is_empty() {
                match self.next_output() {
                    Some(b) => self.pending = b,
                    None => return Ok(true),
                }
            }
            match (&self.sock).write(&self.pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pending.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps flushing until everything is written or `limit` passes. `Ok(true)` when done.
    pub fn flush_for(&mut self, limit: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if self.flush()? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.wait(false, deadline - now)?;
        }
    }

    /// Waits until the socket is readable (if `read`), writable (if there is output), or
    /// `timeout` passes.
    pub fn wait(&self, read: bool, timeout: Duration) -> io::Result<Ready> {
        let mut events = 0;
        if read && !self.peer_eof {
            events |= libc::POLLIN;
        }
        if self.wants_write() {
            events |= libc::POLLOUT;
        }
        wait_fd(self.sock.as_raw_fd(), events, timeout)
    }

    /// Runs the stream's timers if one is due.
    pub fn tick(&mut self, now: Instant) {
        if self.stream.poll_timeout().is_some_and(|t| now >= t) {
            self.stream.handle_timeout(now);
        }
    }

    /// Drives the handshake to the active state. A receiver looks each announced NAME up with
    /// `secret_for` (`None` refuses it with `host-unknown`); `refuse_all` refuses every NAME
    /// with that condition instead (a server that is shutting down).
    pub fn handshake(
        &mut self,
        mut secret_for: impl FnMut(&str) -> Option<Vec<u8>>,
        refuse_all: Option<(Condition, &str)>,
    ) -> Result<(), NetError> {
        loop {
            let now = Instant::now();
            while let Some(ev) = self.poll_event() {
                match ev {
                    StreamEvent::NameAnnounced { name } => match (refuse_all, secret_for(&name)) {
                        (Some((condition, why)), _) => self.stream.refuse(condition, why),
                        (None, Some(secret)) => self.stream.accept_name(&secret),
                        (None, None) => self.stream.refuse(
                            Condition::HostUnknown,
                            &format!("no component named {name} here"),
                        ),
                    },
                    StreamEvent::Active => {
                        self.flush_for(Duration::from_secs(5))?;
                        return Ok(());
                    }
                    // Nothing can precede activation; the stream refuses it itself.
                    StreamEvent::Stanza(_) => {}
                    StreamEvent::Closed(c) => {
                        let _ = self.flush_for(Duration::from_millis(200));
                        return Err(NetError::Handshake(c));
                    }
                }
            }
            self.flush()?;
            self.tick(now);
            if self.stream.is_closed() {
                continue;
            }
            let timeout = self
                .stream
                .poll_timeout()
                .map_or(Duration::from_millis(100), |t| {
                    t.saturating_duration_since(now)
                })
                .min(Duration::from_millis(100));
            self.wait(true, timeout)?;
            self.read_some(READ_CHUNK, Instant::now())?;
        }
    }

    /// Ends the connection abruptly: `SO_LINGER` 0 makes the close send a TCP reset.
    pub fn reset(self) {
        reset(&self.sock);
    }

    /// Flushes what it can within `limit`, then closes our side and waits briefly for the peer
    /// to close its own (so our last bytes are not lost to a reset).
    pub fn close_gracefully(mut self, limit: Duration) {
        let _ = self.flush_for(limit);
        let _ = self.sock.shutdown(Shutdown::Write);
        let deadline = Instant::now() + limit;
        let mut sink = [0u8; 4096];
        while Instant::now() < deadline {
            match (&self.sock).read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if wait_fd(self.sock.as_raw_fd(), libc::POLLIN, left).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// Sets `SO_LINGER` 0 so that dropping the socket resets the connection.
pub fn reset(sock: &TcpStream) {
    let _ = socket2::SockRef::from(sock).set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(Shutdown::Both);
}

/// `ppoll(2)` on one descriptor (nanosecond timeouts: the simulator's latencies go below 1 ms).
pub fn wait_fd(fd: libc::c_int, events: libc::c_short, timeout: Duration) -> io::Result<Ready> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Ready::default());
        }
        return Err(e);
    }
    let broken = pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0;
    Ok(Ready {
        readable: pfd.revents & libc::POLLIN != 0 || broken,
        writable: pfd.revents & libc::POLLOUT != 0 || broken,
    })
}

/// A stream configuration for the tools: the wire defaults, with `dead_interval` when the tool
/// should give up on a silent peer (`None` for the load generator, which reports unanswered
/// events instead).
pub fn tool_config(dead_interval: Option<Duration>) -> StreamConfig {
    StreamConfig {
        dead_interval,
        ..StreamConfig::default()
    }
}

/// Dials `addr` and completes the handshake as the initiator announcing `name`.
pub fn dial(
    addr: &str,
    name: &str,
    secret: &[u8],
    config: StreamConfig,
    connect_timeout: Duration,
) -> Result<Link, NetError> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|source| NetError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut sock = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, connect_timeout) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let sock = sock.ok_or_else(|| NetError::Connect {
        addr: addr.to_string(),
        source: last,
    })?;
    let stream = ComponentStream::initiator(
        config,
        name,
        secret,
        NS_ACCEPT,
        // Peers answer from their own names (a gateway from its name, not ours): no check.
        FromCheck::None,
        Instant::now(),
    );
    let mut link = Link::secured(sock, stream, true)?;
    link.handshake(|_| None, None)?;
    Ok(link)
}

/// 128 random bits for a receiver's stream id.
pub fn stream_id_bits() -> [u8; 16] {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        // Never reached on Linux; a clock-derived id still differs per stream, and the tools
        // are test equipment, not an authentication boundary.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = t.as_nanos().to_le_bytes();
    }
    b
}

/// Wraps an accepted socket in a receiver stream (the handshake is still to be driven).
pub fn receiver(sock: TcpStream, config: StreamConfig, from_check: FromCheck) -> io::Result<Link> {
    let stream = ComponentStream::receiver(config, stream_id_bits(), from_check, Instant::now());
    Link::secured(sock, stream, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn both_roles_handshake_over_loopback_and_exchange_a_stanza() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut link = receiver(sock, tool_config(None), FromCheck::None).unwrap();
            link.handshake(
                |name| (name == "c.example").then(|| b"s3cret".to_vec()),
                None,
            )
            .unwrap();
            loop {
                link.wait(true, Duration::from_millis(100)).unwrap();
                link.read_some(READ_CHUNK, Instant::now()).unwrap();
                if let Some(StreamEvent::Stanza(s)) = link.poll_event() {
                    return s.bytes().clone();
                }
            }
        });
        let mut link = dial(
            &addr,
            "c.example",
            b"s3cret",
            tool_config(None),
            Duration::from_secs(2),
        )
        .unwrap();
        link.stream
            .writer()
            .unwrap()
            .extend_from_slice(b"<message from='c.example' to='x'/>");
        assert!(link.flush_for(Duration::from_secs(1)).unwrap());
        assert_eq!(
            &server.join().unwrap()[..],
            b"<message from='c.example' to='x'/>"
        );
    }

    #[test]
    fn wrong_secret_is_a_handshake_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut link = receiver(sock, tool_config(None), FromCheck::None).unwrap();
            let _ = link.handshake(|_| Some(b"right".to_vec()), None);
        });
        let err = dial(
            &addr,
            "c.example",
            b"wrong",
            tool_config(None),
            Duration::from_secs(2),
        )
        .err()
        .expect("refused");
        assert!(
            matches!(
                err,
                NetError::Handshake(Closed::PeerError {
                    condition: Condition::NotAuthorized,
                    ..
                })
            ),
            "{err}"
        );
        server.join().unwrap();
    }
}
