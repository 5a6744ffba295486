//! What the gateway core asks of its runtime, and the inputs that describe the outside world:
//! connection identities, connection events, the time.
//!
//! Every type here is plain data; none touches a socket, a task or a clock.

use super::message::PeerMessage;
use crate::engine::Outgoing;
use crate::policy::ServerId;
use crate::wire::{Closed, Condition};
use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime};

/// One connection of this shard, as the core names it (the runtime keeps the socket).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u32);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who is at the other end of a new connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A router that dialed the router port; its name comes with its stream header.
    RouterInbound,
    /// The outbound leg to the router named `name` (`[[router]] connect`).
    RouterOutbound {
        /// The router's name (the peer of the stream).
        name: String,
    },
    /// A compliance server that dialed the compliance port; which one it is comes with its
    /// stream header.
    ServerInbound,
    /// The outbound stream to `server`, dialed under link generation `generation`.
    ServerOutbound {
        /// The server dialed.
        server: ServerId,
        /// The server's link generation when its dialer started (see [`Dial::Server`]).
        generation: u32,
    },
}

/// Something that happened to a connection's stream (stanzas go to
/// [`super::Gateway::handle_stanza`]).
#[derive(Clone, Debug)]
pub enum ConnectionEvent {
    /// The peer's stream header named it (receiving side): the core answers with
    /// [`StreamCommand::AcceptName`] or [`StreamCommand::Refuse`].
    NameAnnounced {
        /// The name in the header's `to`.
        name: String,
    },
    /// The handshake completed: the stream carries stanzas.
    Active,
    /// The connection is over, however it ended (the runtime reports it once, last).
    Ended(Closed),
    /// This link's output drained below its low watermark after the core asked to watch it
    /// ([`Output::WatchRoom`], [`Output::WakeRoom`]).
    Drained,
}

/// When an input happened: the monotonic instant (timers, residence) and the wall time read
/// with it (the stamps events carry).
#[derive(Copy, Clone, Debug)]
pub struct Now {
    /// The monotonic time.
    pub at: Instant,
    /// The wall time.
    pub wall: SystemTime,
}

/// Severity of a [`Output::Log`] line.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something is broken.
    Error,
    /// Something is wrong or refused.
    Warn,
    /// What operators follow.
    Info,
    /// Detail.
    Debug,
}

/// What the runtime must do to a connection's stream state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamCommand {
    /// Accept the announced name: check the handshake against `secret`.
    AcceptName {
        /// The shared secret the peer must prove.
        secret: Vec<u8>,
    },
    /// Refuse the stream with a stream error.
    Refuse {
        /// The stream error's condition.
        condition: Condition,
        /// Its text.
        reason: &'static str,
    },
    /// Start liveness pings from `from` to `to`.
    EnablePings {
        /// Our name.
        from: String,
        /// The peer's name.
        to: String,
    },
}

/// A task the runtime must start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dial {
    /// Keep this shard's outbound stream to `server` up while its link generation is
    /// `generation` ([`super::Gateway::link_current`]).
    Server {
        /// The server to dial.
        server: ServerId,
        /// Its link generation now.
        generation: u32,
    },
    /// Keep the outbound leg of the configuration's `index`th router up while its generation
    /// is `generation` ([`super::Gateway::router_generation`]).
    Router {
        /// Its place in `[[router]]`.
        index: usize,
        /// The router's name.
        name: String,
        /// Its generation now.
        generation: u32,
    },
}

/// A request offered to a compliance stream: written only if the stream has room. The runtime
/// reports the outcome with [`super::Gateway::handle_offer`] before it polls again.
#[derive(Debug)]
#[must_use = "an offer must be reported back with Gateway::handle_offer"]
pub struct Offer {
    pub(super) conn: ConnId,
    pub(super) server: ServerId,
    pub(super) from: u16,
    pub(super) request: Outgoing,
    pub(super) bytes: Bytes,
    pub(super) limit: usize,
}

impl Offer {
    /// The stream to write on.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// What to write.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// What the request is (a wait-mode request carries the id its answer will name).
    pub fn request(&self) -> Outgoing {
        self.request
    }

    /// Refuse the write past this many unwritten bytes on the stream.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Whether an [`Offer`] was written.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Appended to the stream's output.
    Taken,
    /// The stream is past its limit or no longer active.
    Refused,
}

/// What the core asks the runtime to do, drained with [`super::Gateway::poll_output`] after
/// every input.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Append `bytes` to the connection's output whatever is unwritten (verdicts and answers:
    /// bounded by the router's reads pausing).
    Write {
        /// The connection.
        conn: ConnId,
        /// Stanzas to append.
        bytes: Bytes,
    },
    /// Append a verdict to a router connection's output, whatever is unwritten; if the
    /// connection can no longer take it, count it undeliverable.
    Verdict {
        /// The router connection.
        conn: ConnId,
        /// The verdict stanza.
        bytes: Bytes,
    },
    /// Write a request if the stream has room; report back with
    /// [`super::Gateway::handle_offer`].
    Offer(Offer),
    /// Act on the connection's stream state machine.
    Stream {
        /// The connection.
        conn: ConnId,
        /// What to do.
        command: StreamCommand,
    },
    /// Close the connection's stream with `</stream:stream>`.
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// After `after`, report [`super::Gateway::handle_retire_due`] for `server` and `conn`
    /// (a removed server's stream answers what it holds, then closes).
    CloseLater {
        /// The stream.
        conn: ConnId,
        /// Its server.
        server: ServerId,
        /// How long it stays open.
        after: Duration,
    },
    /// Send a message to another shard (through its outbox: never blocking).
    ToShard {
        /// The shard.
        shard: u16,
        /// The message.
        message: PeerMessage,
    },
    /// Write a log line.
    Log {
        /// Its level.
        level: Level,
        /// Its text.
        text: String,
    },
    /// A new active stream to `server`: after each [`Output::WakeRoom`] for it, while
    /// [`super::Gateway::room_wanted`] says so, wait until its output has drained to half of
    /// `stream_buffer_bytes` and report [`ConnectionEvent::Drained`]; stop once
    /// `room_wanted` says `None`.
    WatchRoom {
        /// The stream.
        conn: ConnId,
        /// Its server.
        server: ServerId,
    },
    /// An engine waits for room on this stream, or its watch ends: look again.
    WakeRoom {
        /// The stream.
        conn: ConnId,
    },
    /// Start a dialer.
    Dial(Dial),
    /// The spool has a batch for the writer ([`super::Gateway::take_spool_batch`]).
    SpoolWork,
    /// A replay turn is due ([`super::Gateway::handle_replay_turn`]).
    ReplayDue,
}
