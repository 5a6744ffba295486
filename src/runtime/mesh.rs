//! What crosses shards, and the outbox in front of the bounded channels.
//!
//! Every cross-shard message goes through glommio's bounded channel mesh. Most are the gateway
//! core's own ([`PeerMessage`]: the runtime carries them and never looks inside); the rest are
//! the runtime's (a reload's configuration with its TLS material, an accepted socket, admission
//! counts, status snapshots). Shard-local code never blocks on a full channel (two shards
//! sending to each other would deadlock): it puts the message in this shard's outbox, and one
//! forwarder task per peer moves it into the channel, waiting when the channel is full. The
//! outbox holds only messages tied to events in flight, to a stream's room or to a link
//! change, and router reads pause while it is long, so its size stays bounded by
//! `max_in_flight`.

use crate::gateway::PeerMessage;
use std::cell::RefCell;
use std::collections::VecDeque;

/// A message from one shard to another.
#[derive(Debug)]
pub enum ShardMsg {
    /// A message between the gateway cores of two shards.
    Peer(PeerMessage),
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
        change: super::caps::Admission,
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
