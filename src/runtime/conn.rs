//! One TCP connection carrying a [`ComponentStream`]: a reader loop that feeds the stream and
//! runs its timers, and a writer task that flushes whatever the stream (or the engine, through
//! it) has to send, many stanzas per write.
//!
//! Knows nothing of routers, servers or events: the caller's `on_event` decides what a stream
//! event means. Never holds the stream borrowed across an await.

use super::notify::Notify;
use crate::wire::{Closed, ComponentStream, StreamEvent};
use futures_lite::future;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Read size: one read usually carries many stanzas.
const READ_CHUNK: usize = 64 * 1024;
/// Output buffer growth step.
const WRITE_RESERVE: usize = 64 * 1024;

/// A connection shared between its reader, its writer, and whoever writes stanzas to it.
pub struct Conn {
    pub stream: RefCell<ComponentStream>,
    pub wake_writer: Notify,
    /// Set once the stream reported `Closed` (the reader has stopped).
    pub closed: Cell<bool>,
    /// Set once the stream is ending and the writer flushed everything it had.
    pub finished: Cell<bool>,
}

pub type ConnRef = Rc<Conn>;

impl Conn {
    pub fn new(stream: ComponentStream) -> ConnRef {
        Rc::new(Conn {
            stream: RefCell::new(stream),
            wake_writer: Notify::default(),
            closed: Cell::new(false),
            finished: Cell::new(false),
        })
    }

    /// Appends stanza bytes if the stream is active; false otherwise (or past `limit` bytes of
    /// unwritten output, so a peer that stops reading cannot make us buffer without bound).
    pub fn send(&self, bytes: &[u8], limit: usize) -> bool {
        let mut stream = self.stream.borrow_mut();
        if stream.pending_output() > limit {
            return false;
        }
        match stream.writer() {
            Some(w) => {
                // Grow in big steps: the previous contents may still be in flight to the
                // socket, so small reservations would reallocate and copy again and again.
                if w.capacity() - w.len() < bytes.len() {
                    w.reserve(bytes.len().max(WRITE_RESERVE));
                }
                w.extend_from_slice(bytes);
                drop(stream);
                self.wake_writer.notify();
                true
            }
            None => false,
        }
    }

    /// Starts closing the stream with `</stream:stream>`.
    pub fn close(&self) {
        self.stream.borrow_mut().close();
        self.wake_writer.notify();
    }
}

/// Drives `tcp` until the stream closes; returns how it closed. `on_event` sees every stream
/// event with the time of the read that carried it; `pause` is polled after each read, and reading waits while it says so (flow control).
pub async fn drive(
    tcp: TcpStream,
    conn: ConnRef,
    mut on_event: impl FnMut(&ConnRef, StreamEvent, Instant),
    pause: impl Fn() -> bool,
) -> Closed {
    let _ = tcp.set_nodelay(true);
    let (mut reader, writer) = futures_lite::io::split(tcp);
    glommio::spawn_local(write_loop(conn.clone(), writer)).detach();
    // Whatever the stream queued at creation (an initiator's header) goes out now.
    conn.wake_writer.notify();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut closed = None;
    while closed.is_none() {
        let deadline = conn.stream.borrow().poll_timeout();
        let read = async { Some(reader.read(&mut buf).await) };
        let outcome = match deadline {
            Some(at) => {
                let timer = async {
                    glommio::timer::sleep(at.saturating_duration_since(Instant::now())).await;
                    None
                };
                future::or(read, timer).await
            }
            None => read.await,
        };
        let now = Instant::now();
        match outcome {
            None => conn.stream.borrow_mut().handle_timeout(now),
            Some(Ok(0)) | Some(Err(_)) => conn.stream.borrow_mut().transport_closed(),
            Some(Ok(n)) => conn.stream.borrow_mut().receive(&buf[..n], now),
        }
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
        conn.wake_writer.notify();
        while closed.is_none() && pause() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    conn.closed.set(true);
    conn.wake_writer.notify();
    closed.unwrap_or(Closed::TransportEnded)
}

async fn write_loop(conn: ConnRef, mut writer: futures_lite::io::WriteHalf<TcpStream>) {
    loop {
        let out = conn.stream.borrow_mut().take_output();
        match out {
            Some(bytes) => {
                if writer.write_all(&bytes).await.is_err() {
                    conn.stream.borrow_mut().transport_closed();
                    break;
                }
            }
            None if conn.closed.get() || conn.stream.borrow().is_closed() => break,
            None => {
                if conn.stream.borrow().is_ending() {
                    // Our end tag is out; the peer's may never come.
                    conn.finished.set(true);
                }
                conn.wake_writer.wait().await
            }
        }
    }
    let _ = writer.close().await;
    conn.finished.set(true);
}
