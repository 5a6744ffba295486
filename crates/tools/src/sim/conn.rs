//! One simulator stream after its handshake: the read-decide-answer loop, the delay queue that
//! holds answers for `--latency`, and obedience to the fault mode (docs/protocol.md §5 outages).
//!
//! What to answer is a [`Handler`]'s business (the compliance role in `comply.rs`, the
//! router-echo role in `echo.rs`); this file owns only when bytes move. Many stanzas are read
//! per syscall and all the answers of a batch leave in one write.

use super::faults::{Epoch, Mode};
use super::Shared;
use crate::net::{Link, READ_CHUNK};
use crate::wire::{Closed, Condition, Stanza, StreamEvent};
use bytes::{Bytes, BytesMut};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io;
use std::time::{Duration, Instant};

/// How often an idle or hung stream looks at the fault mode and the stop flag.
pub const TICK: Duration = Duration::from_millis(20);
/// Bytes read per batch before answering: bounds the answer latency under a flood.
const READ_BUDGET: usize = 4 * READ_CHUNK;
/// Past this much unwritten output the stream stops reading (the peer is not reading ours).
const MAX_BACKLOG: usize = 16 << 20;

/// What answers a stream's stanzas.
pub trait Handler {
    /// One stanza from the peer, received at `now`; answers go into `answers`.
    fn on_stanza(&mut self, stanza: &Stanza, now: Instant, answers: &mut Answers);
    /// The end of a read batch: publish counters, hand over archive lines.
    fn end_batch(&mut self);
}

/// An answer held back until `due`.
struct Delayed {
    due: Instant,
    seq: u64,
    bytes: Bytes,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Answers of the current batch: immediate ones in one buffer, delayed ones in a queue ordered
/// by due time (ties keep their order, so a fixed latency keeps answers in request order).
#[derive(Default)]
pub struct Answers {
    now: BytesMut,
    later: BytesMut,
    queue: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
}

impl Answers {
    /// Writes one answer with `write`, to leave now (`due` `None`) or at `due`.
    pub fn push(&mut self, due: Option<Instant>, write: impl FnOnce(&mut BytesMut)) {
        match due {
            None => write(&mut self.now),
            Some(due) => {
                write(&mut self.later);
                let bytes = self.later.split().freeze();
                if !bytes.is_empty() {
                    self.seq += 1;
                    self.queue.push(Reverse(Delayed {
                        due,
                        seq: self.seq,
                        bytes,
                    }));
                }
            }
        }
    }

    /// Moves the immediate answers and every delayed one due by `now` into `out`.
    pub fn release(&mut self, now: Instant, out: &mut BytesMut) {
        if out.is_empty() {
            // Hand our buffer over instead of copying it; the stream's empty one comes back.
            std::mem::swap(out, &mut self.now);
        } else if !self.now.is_empty() {
            out.extend_from_slice(&self.now);
            self.now.clear();
        }
        while self.queue.peek().is_some_and(|d| d.0.due <= now) {
            if let Some(Reverse(d)) = self.queue.pop() {
                out.extend_from_slice(&d.bytes);
            }
        }
    }

    /// When the next delayed answer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|d| d.0.due)
    }

    /// Delayed answers not yet released.
    pub fn held(&self) -> usize {
        self.queue.len()
    }
}

/// How a stream's service ended.
#[derive(Debug)]
pub enum End {
    Closed(Closed),
    /// `--fault crash`: reset.
    Crashed,
    /// `--fault graceful`: system-shutdown sent.
    Graceful,
    /// The simulator is exiting.
    Stopped,
    Io(io::Error),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Closed(c) => f.write_str(&crate::net::closed(c)),
            End::Crashed => f.write_str("reset (simulated crash)"),
            End::Graceful => f.write_str("closed with system-shutdown (simulated graceful outage)"),
            End::Stopped => f.write_str("closed: the simulator is stopping"),
            End::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

/// Serves `link` until it ends. `epoch` is the fault state when the connection arrived.
pub fn serve(mut link: Link, shared: &Shared, epoch: Epoch, handler: &mut dyn Handler) -> End {
    let mut answers = Answers::default();
    loop {
        if shared.stopping() {
            link.stream.close();
            link.close_gracefully(Duration::from_millis(500));
            return End::Stopped;
        }
        match shared.faults.for_connection(epoch) {
            Mode::Crash => {
                link.reset();
                return End::Crashed;
            }
            Mode::Graceful => {
                link.stream.refuse(
                    Condition::SystemShutdown,
                    "simulated graceful shutdown (--fault graceful)",
                );
                link.close_gracefully(Duration::from_secs(1));
                return End::Graceful;
            }
            Mode::Hang => {
                // Neither read nor write: the peer sees a live TCP connection that says nothing.
                std::thread::sleep(TICK);
                continue;
            }
            Mode::Normal => {}
        }
        let now = Instant::now();
        let mut deadline = now + TICK;
        for t in [answers.next_due(), link.stream.poll_timeout()]
            .into_iter()
            .flatten()
        {
            deadline = deadline.min(t);
        }
        let read = link.backlog() < MAX_BACKLOG;
        if let Err(e) = link.wait(read, deadline.saturating_duration_since(now)) {
            return End::Io(e);
        }
        let now = Instant::now();
        if read {
            // An error marks the peer gone; the stream reports the close after the input
            // already buffered, so nothing received is lost.
            let _ = link.read_some(READ_BUDGET, now);
        }
        while let Some(ev) = link.poll_event() {
            match ev {
                StreamEvent::Stanza(s) => handler.on_stanza(&s, now, &mut answers),
                StreamEvent::Closed(c) => {
                    if let Some(w) = link.stream.writer() {
                        answers.release(now, w);
                    }
                    handler.end_batch();
                    let _ = link.flush_for(Duration::from_millis(200));
                    return End::Closed(c);
                }
                StreamEvent::NameAnnounced { .. } | StreamEvent::Active => {}
            }
        }
        if let Some(w) = link.stream.writer() {
            answers.release(now, w);
        }
        link.tick(now);
        handler.end_batch();
        if let Err(e) = link.flush() {
            return End::Io(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delayed_answers_leave_in_due_order_and_immediate_ones_first() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut a = Answers::default();
        a.push(Some(ms(5)), |b| b.extend_from_slice(b"<late/>"));
        a.push(Some(ms(2)), |b| b.extend_from_slice(b"<early/>"));
        a.push(Some(ms(2)), |b| b.extend_from_slice(b"<early2/>"));
        a.push(None, |b| b.extend_from_slice(b"<now/>"));
        assert_eq!(a.next_due(), Some(ms(2)));
        let mut out = BytesMut::new();
        a.release(ms(1), &mut out);
        assert_eq!(&out[..], b"<now/>");
        out.clear();
        a.release(ms(3), &mut out);
        assert_eq!(&out[..], b"<early/><early2/>");
        assert_eq!(a.held(), 1);
        out.clear();
        a.release(ms(5), &mut out);
        assert_eq!(&out[..], b"<late/>");
        assert_eq!(a.next_due(), None);
    }
}
