//! What one shard's gateway core sends another's. The runtime carries these over the bounded
//! channel mesh and hands each to [`super::Gateway::handle_peer_message`] on the receiving
//! shard; it never looks inside.
//!
//! Every message is tied to an event in flight (an event, a request, a deferred request, an
//! answer, a verdict), to a stream's room (at most one `WantRoom` and one `Room` per shard and
//! stream each time it fills), or to a link change, so what waits in the outboxes stays bounded
//! by the shards' events in flight.

use crate::engine::{LinkChange, Outgoing, RouterRef};
use crate::policy::ServerId;
use crate::protocol::{InboundEvent, ParsedAnswer};
use bytes::Bytes;
use std::time::Instant;

/// A message from one shard's core to another's.
#[derive(Debug)]
pub enum PeerMessage {
    /// An event the receiving shard owns.
    Event {
        /// The event.
        ev: InboundEvent,
        /// Its key's hash (which picked the owner).
        key_hash: u64,
        /// The router connection its verdict goes to.
        router: RouterRef,
        /// When the router's shard read it.
        received: Instant,
    },
    /// A verdict for a router connection held by the receiving shard.
    Verdict {
        /// The router connection.
        conn: u32,
        /// The verdict stanza.
        bytes: Bytes,
    },
    /// Write on the receiving shard's stream to `server`, for the engine of shard `from`.
    Send {
        /// The server.
        server: ServerId,
        /// The engine that sends.
        from: u16,
        /// What the send is, to hand back if it cannot be written.
        request: Outgoing,
        /// The request stanza.
        bytes: Bytes,
    },
    /// The receiving shard's send could not be written on shard `link`'s stream to `server`
    /// (full or going away): back to its engine, which sends it again once there is room.
    SendDeferred {
        /// The server.
        server: ServerId,
        /// The shard whose stream refused it.
        link: u16,
        /// What the send was.
        request: Outgoing,
        /// The request stanza.
        bytes: Bytes,
    },
    /// The receiving shard's replay of spooled record `seq` was written to a stream.
    ReplayWritten {
        /// The record.
        seq: u64,
    },
    /// Shard `from`'s engine waits for room on the receiving shard's stream to `server`.
    WantRoom {
        /// The server.
        server: ServerId,
        /// The engine that waits.
        from: u16,
    },
    /// Shard `link`'s stream to `server` has room for the receiving shard's engine again.
    Room {
        /// The server.
        server: ServerId,
        /// The shard holding the stream.
        link: u16,
    },
    /// An answer to a request of the receiving shard.
    Answer {
        /// The server that answered.
        server: ServerId,
        /// The answer.
        answer: ParsedAnswer,
    },
    /// A stream to `server` held by shard `link` came up or went away.
    Link {
        /// The server.
        server: ServerId,
        /// The shard holding the stream.
        link: u16,
        /// What happened.
        change: LinkChange,
    },
}
