//! What crosses shards, and the outbox in front of the bounded channels.
//!
//! Every cross-shard message goes through glommio's bounded channel mesh. Shard-local code never
//! blocks on a full channel (two shards sending to each other would deadlock): it puts the
//! message in this shard's outbox, and one forwarder task per peer moves it into the channel,
//! waiting when the channel is full. The outbox holds only messages tied to events in flight
//! (an event, a request, a deferred request, an answer, a verdict) or to a stream's room (at
//! most one `WantRoom` and one `Room` per shard and stream each time it fills), and router reads
//! pause while it is long, so its size stays bounded by `max_in_flight` (see `router.rs`).

use crate::engine::{Outgoing, RouterRef};
use crate::policy::ServerId;
use crate::protocol::{InboundEvent, ParsedAnswer};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Instant;

/// A message from one shard to another.
#[derive(Debug)]
pub enum ShardMsg {
    /// An event the receiving shard owns.
    Event {
        ev: InboundEvent,
        key_hash: u64,
        router: RouterRef,
        received: Instant,
    },
    /// A verdict for a router connection held by the receiving shard.
    Verdict { conn: u32, bytes: Bytes },
    /// Write on the receiving shard's stream to `server`, for the engine of shard `from`.
    Send {
        server: ServerId,
        from: u16,
        request: Outgoing,
        bytes: Bytes,
    },
    /// The receiving shard's send could not be written on shard `link`'s stream to `server`
    /// (full or going away): back to its engine, which sends it again once there is room.
    SendDeferred {
        server: ServerId,
        link: u16,
        request: Outgoing,
        bytes: Bytes,
    },
    /// The receiving shard's replay of spooled record `seq` was written to a stream.
    ReplayWritten { seq: u64 },
    /// Shard `from`'s engine waits for room on the receiving shard's stream to `server`.
    WantRoom { server: ServerId, from: u16 },
    /// Shard `link`'s stream to `server` has room for the receiving shard's engine again.
    Room { server: ServerId, link: u16 },
    /// An answer to a request of the receiving shard.
    Answer {
        server: ServerId,
        answer: ParsedAnswer,
    },
    /// A stream to `server` held by shard `link` came up or went away.
    Link {
        server: ServerId,
        link: u16,
        up: bool,
        graceful: bool,
    },
    /// A reloaded configuration to put in force (from shard 0, which read it).
    Reconfigure {
        config: std::sync::Arc<crate::policy::Config>,
        policy: std::sync::Arc<crate::policy::CompiledPolicy>,
        tls: std::sync::Arc<crate::tls::Material>,
    },
    /// A connection the acceptor (shard 0) hands to this shard.
    Accepted {
        stream: glommio::net::AcceptedTcpStream,
        leg: super::Leg,
        transport: super::Transport,
        /// The shard that counts it (see `accept.rs`).
        acceptor: u16,
    },
    /// A connection the receiving shard accepted (and counts) completed its handshake or ended.
    Admission {
        leg: super::Leg,
        change: super::accept::Admission,
    },
    /// A request for this shard's counters and state (answered with `Snapshot`).
    SnapshotRequest { reply_to: u16, token: u64 },
    Snapshot {
        token: u64,
        snapshot: Box<crate::admin::ShardSnapshot>,
    },
}

/// Messages waiting for their channel, per destination shard.
pub struct Outbox {
    queues: RefCell<Vec<VecDeque<ShardMsg>>>,
    pub wake: Vec<super::notify::Notify>,
}

impl Outbox {
    pub fn new(shards: usize) -> Outbox {
        Outbox {
            queues: RefCell::new((0..shards).map(|_| VecDeque::new()).collect()),
            wake: (0..shards).map(|_| Default::default()).collect(),
        }
    }

    pub fn push(&self, to: usize, msg: ShardMsg) {
        if let Some(q) = self.queues.borrow_mut().get_mut(to) {
            q.push_back(msg);
        }
        if let Some(w) = self.wake.get(to) {
            w.notify();
        }
    }

    pub fn pop(&self, to: usize) -> Option<ShardMsg> {
        self.queues.borrow_mut().get_mut(to)?.pop_front()
    }

    /// The longest queue.
    pub fn longest(&self) -> usize {
        self.queues
            .borrow()
            .iter()
            .map(VecDeque::len)
            .max()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.queues.borrow().iter().all(VecDeque::is_empty)
    }
}
