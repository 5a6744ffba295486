//! One TCP connection carrying a [`ComponentStream`]: a reader loop that feeds the stream and
//! runs its timers, and a writer task that flushes whatever the stream (or the engine, through
//! it) has to send, many stanzas per write.
//!
//! Knows nothing of routers, servers or events: the caller's `on_event` decides what a stream
//! event means, and its `hold` whether reading waits (flow control). Never holds the stream
//! borrowed across an await.
//!
//! A connection's output is bounded by whoever writes to it: [`Conn::send`] refuses past a
//! limit, and a writer that must not refuse ([`Conn::push`], for verdicts) pauses the reads that
//! produce its output instead (see `router.rs`). [`Conn::output_below`] waits for the writer to
//! drain the output to a low watermark.
//!
//! With TLS ([`Conn::with_tls`], after `tls.rs`'s handshake) the reader passes what it reads
//! through the session before the stream sees it, and the writer encrypts what the stream
//! queued: the stream itself is the same either way. A plain connection whose peer opens with
//! a TLS record is closed without an answer, and says so ([`Conn::take_tls_failure`]).

use super::contain::{contained, log_panic};
use super::notify::{Notify, Waiters};
use crate::tls::{looks_like_tls, Fed, Session, TlsFailure};
use crate::wire::{Closed, ComponentStream, Condition, ReadSize, StreamEvent};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Smallest output buffer growth step.
const WRITE_RESERVE: usize = 4 * 1024;
/// Room an idle connection may keep in its empty receive and output buffers; anything more
/// (left over from a burst) is let go once it has read nothing for a timer tick.
const IDLE_KEEP: usize = 0;

/// A connection shared between its reader, its writer, and whoever writes stanzas to it.
pub struct Conn {
    pub stream: RefCell<ComponentStream>,
    pub wake_writer: Notify,
    /// Set once the stream reported `Closed` (the reader has stopped).
    pub closed: Cell<bool>,
    /// Set once the stream is ending and the writer flushed everything it had.
    pub finished: Cell<bool>,
    /// Bytes the writer took from the stream and has not finished writing.
    writing: Cell<usize>,
    /// Woken when the unwritten output falls to `low_water` (see [`Conn::output_below`]) or
    /// the output ended. A broadcast: a held reader and a stream's room task may both wait.
    drained: Waiters,
    low_water: Cell<usize>,
    /// How the reader is holding its reads right now (`Hold::Read` while it reads).
    holding: Cell<Hold>,
    /// When the writer last finished a write: progress a held reader's peer is making.
    wrote_at: Cell<Instant>,
    /// The TLS session between the socket and the stream, if the leg has TLS (boxed, so that
    /// a plain connection does not carry its size).
    tls: RefCell<Option<Box<Session>>>,
    /// Plaintext that came with the TLS handshake, fed to the stream before the first read.
    early: RefCell<Vec<u8>>,
    /// Why TLS ended the connection, if it did.
    tls_failure: RefCell<Option<TlsFailure>>,
    /// How much the next read asks for: small while the connection is quiet, more while its
    /// reads fill what they ask for (see `wire::read_size`).
    read_size: Cell<ReadSize>,
    /// Bytes were read since the timer's last tick (a quiet connection's idle buffers go).
    read_since_tick: Cell<bool>,
}

pub type ConnRef = Rc<Conn>;

impl Conn {
    pub fn new(stream: ComponentStream) -> ConnRef {
        Rc::new(Conn {
            stream: RefCell::new(stream),
            wake_writer: Notify::default(),
            closed: Cell::new(false),
            finished: Cell::new(false),
            writing: Cell::new(0),
            drained: Waiters::default(),
            low_water: Cell::new(0),
            holding: Cell::new(Hold::Read),
            wrote_at: Cell::new(Instant::now()),
            tls: RefCell::new(None),
            early: RefCell::new(Vec::new()),
            tls_failure: RefCell::new(None),
            read_size: Cell::new(ReadSize::default()),
            read_since_tick: Cell::new(false),
        })
    }

    /// A connection whose TLS handshake is done: `early` is the plaintext that came with it.
    pub fn with_tls(stream: ComponentStream, session: Session, early: Vec<u8>) -> ConnRef {
        let conn = Conn::new(stream);
        *conn.tls.borrow_mut() = Some(Box::new(session));
        *conn.early.borrow_mut() = early;
        conn
    }

    /// Why TLS ended this connection, once it ended (the caller logs and counts it).
    pub fn take_tls_failure(&self) -> Option<TlsFailure> {
        self.tls_failure.borrow_mut().take()
    }

    /// Feeds what the socket gave to the stream, through the TLS session if there is one.
    /// `first`: these are the connection's first bytes.
    fn feed(&self, data: &[u8], first: bool, now: Instant) {
        let mut tls = self.tls.borrow_mut();
        let mut stream = self.stream.borrow_mut();
        let Some(session) = tls.as_mut() else {
            if first && looks_like_tls(data) {
                *self.tls_failure.borrow_mut() = Some(TlsFailure::TlsOnPlainPort);
                return stream.transport_closed();
            }
            return stream.receive(data, now);
        };
        match session.receive(data, |plain| stream.receive(plain, now)) {
            Ok(Fed::Open) => {}
            Ok(Fed::PeerClosed) => stream.transport_closed(),
            Err(failure) => {
                *self.tls_failure.borrow_mut() = Some(failure);
                stream.transport_closed();
            }
        }
    }

    /// The next bytes for the socket: the stream's output, encrypted if the leg has TLS (with
    /// whatever else the session has to send).
    fn next_output(&self) -> Option<bytes::Bytes> {
        let plain = self.stream.borrow_mut().take_output();
        let mut tls = self.tls.borrow_mut();
        let Some(session) = tls.as_mut() else {
            return plain;
        };
        let len = plain.as_ref().map_or(0, |p| p.len());
        if let Some(plain) = plain {
            session.send(&plain);
        }
        if !session.wants_write() {
            return None;
        }
        let mut out = Vec::with_capacity(records_len(len));
        session.take_tls(&mut out);
        Some(out.into())
    }

    /// Queues TLS `close_notify` and returns it (nothing for a plain connection).
    fn close_notify(&self) -> Option<Vec<u8>> {
        let mut tls = self.tls.borrow_mut();
        let session = tls.as_mut()?;
        session.close();
        let mut out = Vec::new();
        session.take_tls(&mut out);
        Some(out)
    }

    /// Output not yet written to the socket: queued in the stream, or being written.
    pub fn unwritten(&self) -> usize {
        self.stream.borrow().pending_output() + self.writing.get()
    }

    /// Appends stanza bytes if the stream is active; false otherwise (or past `limit` bytes of
    /// unwritten output, so a peer that stops reading cannot make us buffer without bound).
    pub fn send(&self, bytes: &[u8], limit: usize) -> bool {
        if self.unwritten() > limit {
            return false;
        }
        self.push(bytes)
    }

    /// Appends stanza bytes if the stream is active, whatever is unwritten; false if it is not
    /// active. Whoever pushes bounds the output another way (router reads pause past the limit).
    pub fn push(&self, bytes: &[u8]) -> bool {
        let mut stream = self.stream.borrow_mut();
        match stream.writer() {
            Some(w) => {
                // Grow by doubling what is queued: a burst reallocates a few times, not once
                // per stanza (the previous contents may still be in flight to the socket), and
                // a quiet connection keeps a small buffer.
                if w.capacity() - w.len() < bytes.len() {
                    w.reserve(bytes.len().max(w.len()).max(WRITE_RESERVE));
                }
                w.extend_from_slice(bytes);
                drop(stream);
                self.wake_writer.notify();
                true
            }
            None => false,
        }
    }

    /// After a read: whether the writer has anything to do (output, or a stream ending, which
    /// it finishes), or may have (a TLS leg's session).
    fn wants_writer(&self) -> bool {
        if self.tls.borrow().is_some() {
            return true;
        }
        let stream = self.stream.borrow();
        stream.pending_output() > 0 || stream.is_ending()
    }

    /// Starts closing the stream with `</stream:stream>`.
    pub fn close(&self) {
        self.stream.borrow_mut().close();
        self.wake_writer.notify();
    }

    /// Waits until at most `low` bytes are unwritten, or the output can no longer drain (the
    /// stream or its writer ended).
    pub async fn output_below(&self, low: usize) {
        while self.unwritten() > low && !self.output_ended() {
            self.low_water.set(low);
            self.drained.wait().await;
        }
    }

    fn output_ended(&self) -> bool {
        self.finished.get() || self.closed.get() || self.stream.borrow().is_closed()
    }

    /// Wakes [`Conn::output_below`] if its watermark is reached (or the output ended).
    fn wake_drained(&self) {
        if self.drained.is_waited()
            && (self.unwritten() <= self.low_water.get() || self.output_ended())
        {
            self.drained.notify_all();
        }
    }

    /// Waits until the writer has flushed everything and ended (or the output can no longer
    /// drain).
    pub async fn flushed(&self) {
        while !self.finished.get() && !self.closed.get() {
            self.drained.wait().await;
        }
    }
}

/// What a connection's reader does after a read: the gateway core decides it
/// (`Gateway::poll_read_hold`); [`drive`] waits as it says (`UntilRoom`: woken by `drive`'s
/// `room`, or when this connection's output ends).
pub use crate::gateway::ReadHold as Hold;

/// Who a connection is, for the log: its shard and a name like `router connection 7 from
/// 10.0.0.5:40312`.
#[derive(Clone, Debug)]
pub struct Label {
    pub shard: u16,
    pub name: String,
}

/// Drives `tcp` until the stream closes; returns how it closed. `on_event` sees every stream
/// event with the time of the read that carried it; `hold` is asked after each read, and
/// reading waits while it says so (flow control); `room` is what wakes a reader held with
/// [`Hold::UntilRoom`].
///
/// A panic in the reader (in `on_event`, most likely) or in the connection's writer or timer
/// task is contained (see `contain.rs`): it is logged, the peer gets
/// `internal-server-error`, and this returns `Closed::Refused` with that condition, so the
/// caller cleans up as after any ungraceful close.
pub async fn drive(
    tcp: TcpStream,
    conn: ConnRef,
    label: &Label,
    mut on_event: impl FnMut(&ConnRef, StreamEvent, Instant),
    hold: impl Fn(&ConnRef) -> Hold,
    room: &Waiters,
) -> Closed {
    let _ = tcp.set_nodelay(true);
    let fd = tcp.as_raw_fd();
    let (mut reader, writer) = futures_lite::io::split(tcp);
    // However this future ends (returning, panicking, dropped), `closed` is set before the
    // read half (which keeps the socket open) is dropped: the other tasks rely on it.
    let _closed_on_drop = SetClosed(conn.clone());
    let (writer_conn, writer_label) = (conn.clone(), label.clone());
    glommio::spawn_local(async move {
        if let Err(panic) = contained(write_loop(writer_conn.clone(), writer)).await {
            log_panic(writer_label.shard, &writer_label.name, &panic);
            writer_conn.finished.set(true);
            shut_down(&writer_conn, fd);
        }
    })
    .detach();
    // The stream's timers are checked by their own task, so a read never has to race a timer.
    let tick = conn.stream.borrow().config().timer_tick();
    let (timer_conn, timer_label) = (conn.clone(), label.clone());
    glommio::spawn_local(async move {
        if let Err(panic) = contained(timer_loop(timer_conn.clone(), fd, tick)).await {
            log_panic(timer_label.shard, &timer_label.name, &panic);
            shut_down(&timer_conn, fd);
        }
    })
    .detach();
    // Whatever the stream queued at creation (an initiator's header) goes out now.
    conn.wake_writer.notify();
    let read_loop = async {
        // Only a TLS leg needs a buffer of its own (for the records, before decryption); a
        // plain one reads straight into the stream's receive buffer.
        let mut tls_buf = Vec::new();
        let mut closed = None;
        let early = std::mem::take(&mut *conn.early.borrow_mut());
        let mut first = true;
        while closed.is_none() {
            if first && !early.is_empty() {
                conn.stream.borrow_mut().receive(&early, Instant::now());
            } else if conn.tls.borrow().is_some() {
                let len = conn.read_size.get().bytes();
                size_tls_buffer(&mut tls_buf, len);
                let read = reader.read(&mut tls_buf).await;
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => conn.stream.borrow_mut().transport_closed(),
                    Ok(n) => {
                        conn.read(n);
                        conn.feed(&tls_buf[..n], first, now);
                    }
                }
            } else {
                match read_plain(&conn, &mut reader, first).await {
                    Ok(0) | Err(_) => conn.stream.borrow_mut().transport_closed(),
                    Ok(n) => conn.read(n),
                }
            }
            first = false;
            let now = Instant::now();
            loop {
                let event = conn.stream.borrow_mut().poll_event();
                match event {
                    None => break,
                    Some(StreamEvent::Closed(how)) => {
                        closed = Some(how.clone());
                        on_event(&conn, StreamEvent::Closed(how), now);
                        break;
                    }
                    Some(e) => on_event(&conn, e, now),
                }
            }
            // Most reads queue output for other connections only (a router's event for a
            // server's stream): this one's writer runs only if its stream queued something
            // (its answers, its end) or a TLS session may have records to send.
            if conn.wants_writer() {
                conn.wake_writer.notify();
            }
            let mut held_for_us = false;
            while closed.is_none() && !conn.stream.borrow().is_closed() {
                let held = hold(&conn);
                conn.holding.set(held);
                match held {
                    Hold::Read => break,
                    Hold::UntilDrained(low) => conn.output_below(low).await,
                    Hold::UntilRoom => {
                        held_for_us = true;
                        // Woken by room, or by this output ending (so that a close is seen)
                        // or draining completely.
                        conn.low_water.set(0);
                        futures_lite::future::or(room.wait(), conn.drained.wait()).await
                    }
                }
            }
            conn.holding.set(Hold::Read);
            if held_for_us {
                // The timer task samples the hold on its tick and may have missed part of
                // it: the silence clocks start again from here, where reading resumes.
                conn.stream.borrow_mut().handle_reads_held(Instant::now());
            }
            // glommio completes a read at once when the socket has data, and never preempts a
            // task between ready awaits: a peer that keeps its socket full would otherwise
            // keep this shard to itself.
            glommio::yield_if_needed().await;
        }
        closed.unwrap_or(Closed::TransportEnded)
    };
    let closed = match contained(read_loop).await {
        Ok(how) => how,
        Err(panic) => {
            log_panic(label.shard, &label.name, &panic);
            const REASON: &str = "internal error";
            // The unwinding released every borrow; `try_` only in case it did not.
            if let Ok(mut stream) = conn.stream.try_borrow_mut() {
                stream.refuse(Condition::InternalServerError, REASON);
            }
            Closed::Refused {
                condition: Condition::InternalServerError,
                reason: REASON.to_owned(),
            }
        }
    };
    conn.closed.set(true);
    conn.wake_writer.notify();
    conn.wake_drained();
    closed
}

impl Conn {
    /// A read brought `n` bytes (`n` > 0): the next one's size follows.
    fn read(&self, n: usize) {
        let mut size = self.read_size.get();
        size.record(n);
        self.read_size.set(size);
        self.read_since_tick.set(true);
    }

    /// On a timer tick: a connection that read nothing since the last tick, and is not held
    /// (whatever waits unread in its socket will come at once), reads small again and lets
    /// its empty buffers go. Never while reads flow, so a busy connection keeps its buffers.
    fn tick_buffers(&self) {
        if self.read_since_tick.replace(false) || self.holding.get() != Hold::Read {
            return;
        }
        let mut size = self.read_size.get();
        size.quiet();
        self.read_size.set(size);
        self.stream.borrow_mut().release_idle(IDLE_KEEP);
    }
}

/// Sizes the TLS leg's read buffer to `len`, letting go of room a burst left behind.
fn size_tls_buffer(buf: &mut Vec<u8>, len: usize) {
    if buf.capacity() > 2 * len {
        *buf = Vec::new();
    }
    buf.resize(len, 0);
}

thread_local! {
    /// This shard's landing buffer for plain reads (see `read_plain`): zeroed once, when it
    /// grows, and reused by every connection of the shard, since a read only holds it while
    /// it is polled.
    static READ_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads up to the connection's read size from a plain socket into the shard's scratch
/// buffer, then appends what came to the stream's receive buffer. The bytes read are copied
/// once; reading straight into the receive buffer meant handing the socket a zeroed region
/// of the whole read size on every poll (twice per read: the poll that finds nothing waiting,
/// then the one that reads), which for reads of a few events, as a server that sends one
/// event at a time makes them, cost several times the copy. A connection that says nothing
/// still holds no receive buffer: it gets one with its first bytes. `first`: these are the
/// connection's first bytes, refused if they open a TLS record.
async fn read_plain(
    conn: &Conn,
    reader: &mut futures_lite::io::ReadHalf<TcpStream>,
    first: bool,
) -> std::io::Result<usize> {
    use futures_lite::AsyncRead;
    use std::task::Poll;
    futures_lite::future::poll_fn(|cx| {
        let len = conn.read_size.get().bytes();
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            if scratch.len() < len {
                scratch.resize(len, 0);
            }
            let landing = &mut scratch[..len];
            match std::pin::Pin::new(&mut *reader).poll_read(cx, landing) {
                Poll::Ready(Ok(n)) if first && n > 0 && looks_like_tls(&landing[..n]) => {
                    *conn.tls_failure.borrow_mut() = Some(TlsFailure::TlsOnPlainPort);
                    conn.stream.borrow_mut().transport_closed();
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Ok(n)) if n > 0 => {
                    conn.stream
                        .borrow_mut()
                        .receive(&landing[..n], Instant::now());
                    Poll::Ready(Ok(n))
                }
                other => other,
            }
        })
    })
    .await
}

/// Sets `closed` (and wakes the writer, so it flushes and ends, and a reader held for its
/// output) when dropped.
struct SetClosed(ConnRef);

impl Drop for SetClosed {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.wake_writer.notify();
        self.0.wake_drained();
    }
}

/// Shuts the socket down both ways, so that the reader's pending read returns and it sees
/// the close; nothing once the reader has stopped (the descriptor may be gone by then).
#[allow(unsafe_code)] // shutdown(2) on the connection's descriptor: see SAFETY below.
fn shut_down(conn: &Conn, fd: RawFd) {
    if conn.closed.get() {
        return;
    }
    // SAFETY: `closed` is unset, so `drive` has not returned nor been dropped (`SetClosed`
    // sets it first in either case), so its read half still holds the socket and `fd` is that
    // socket's open descriptor, not a reused number. `shutdown` only changes the socket's
    // state; it touches no memory.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Runs the stream's timers (handshake, stanza completion, keepalive, liveness ping, dead
/// peer) on a fixed tick. When a timer ends the stream, the socket's read side is shut so that
/// the reader's pending read returns and it sees the close.
async fn timer_loop(conn: ConnRef, fd: RawFd, tick: Duration) {
    while !conn.closed.get() {
        let last_tick = Instant::now();
        glommio::timer::sleep(tick).await;
        let now = Instant::now();
        // While we hold the reads, the peer's silence is ours: what it sent waits unread. Held
        // for our own limits, that is always so; held for its output, only while the peer
        // still takes some of it (one that reads nothing for a dead interval is dead).
        let ours = match conn.holding.get() {
            Hold::Read => false,
            Hold::UntilRoom => true,
            Hold::UntilDrained(_) => conn.wrote_at.get() >= last_tick,
        };
        if ours {
            conn.stream.borrow_mut().handle_reads_held(now);
        }
        conn.tick_buffers();
        let due = conn
            .stream
            .borrow()
            .poll_timeout()
            .is_some_and(|at| at <= now);
        if !due {
            continue;
        }
        conn.stream.borrow_mut().handle_timeout(now);
        conn.wake_writer.notify();
        // A reader held for its output must see the close too.
        conn.wake_drained();
        if conn.stream.borrow().is_closed() && !conn.closed.get() {
            // SAFETY: as in `shut_down`: `closed` is unset, so the reader's half still holds
            // the socket and `fd` is its open descriptor; shutdown touches no memory.
            #[allow(unsafe_code)]
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
            return;
        }
    }
}
async fn write_loop(conn: ConnRef, mut writer: futures_lite::io::WriteHalf<TcpStream>) {
    loop {
        let out = conn.next_output();
        match out {
            Some(bytes) => {
                conn.writing.set(bytes.len());
                let written = writer.write_all(&bytes).await;
                conn.writing.set(0);
                if written.is_err() {
                    conn.stream.borrow_mut().transport_closed();
                    break;
                }
                conn.wrote_at.set(Instant::now());
                conn.wake_drained();
            }
            None if conn.closed.get() || conn.stream.borrow().is_closed() => break,
            None => {
                if conn.stream.borrow().is_ending() {
                    // Our end tag is out; the peer's may never come.
                    conn.finished.set(true);
                    conn.wake_drained();
                }
                conn.wake_writer.wait().await
            }
        }
    }
    if let Some(notify) = conn.close_notify() {
        let _ = writer.write_all(&notify).await;
    }
    conn.finished.set(true);
    conn.wake_drained();
    let _ = writer.close().await;
}

/// Room for the TLS records of `plain` bytes: a header and a tag per 16 KiB record, and
/// some room for what else the session sends.
fn records_len(plain: usize) -> usize {
    plain + (plain / 16_384 + 2) * 64
}

#[cfg(test)]
mod tests;
