//! One shard's view of every compliance server: which shards hold an active stream to it,
//! whether it is routable (up, in an ungraceful outage window, or down), and the bounded queue
//! of what waits for it to come back (docs/protocol.md §5, "Outages").
//!
//! Every shard keeps its own replica, updated from the link events all shards broadcast; no
//! state is shared. This file decides reachability only; what happens to the events is the
//! engine's.

use super::slots::SlotRef;
use crate::policy::ServerId;
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Whether a server takes events, as docs/protocol.md §5 defines it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// At least one stream is active.
    Up,
    /// No active stream since `since`, the last loss ungraceful (or never connected yet):
    /// routable until the outage window ends; events queue.
    Outage { since: Instant },
    /// Not routable: lost gracefully, or the outage window ended.
    Down,
}

/// Something waiting for the server to come back, or for room on its streams. `seq` is its
/// place in the order this shard gave the server's requests (see [`ServerView::requeue`]).
#[derive(Clone, Debug)]
pub enum Queued {
    /// A wait-mode request of this event.
    Wait { r: SlotRef, seq: u64 },
    /// A fire-and-forget notification, written when a stream returns before `expires`.
    Notify {
        bytes: Bytes,
        expires: Instant,
        seq: u64,
        /// Its spool record, kept if it is dropped here (only with a spool).
        record: Option<Bytes>,
    },
}

impl Queued {
    pub fn seq(&self) -> u64 {
        match self {
            Queued::Wait { seq, .. } | Queued::Notify { seq, .. } => *seq,
        }
    }
}

/// One shard's stream to a server, as this engine sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No active stream on that shard.
    Down,
    /// Active, and taking requests.
    Open,
    /// Active, but its output is full (a send was deferred, or a batch was released): nothing
    /// more goes to it until the runtime reports room (`handle_link_room`).
    Full,
}

/// One server, from one shard's point of view.
#[derive(Debug)]
pub struct ServerView {
    pub id: ServerId,
    pub name: String,
    pub component: String,
    /// The server's stable hash, for rendezvous scoring.
    pub seed: u64,
    /// Each shard's stream.
    links: Vec<LinkState>,
    reach: Reach,
    pub queue: VecDeque<Queued>,
    /// Alarm state: the queue reached its bound and has not drained since.
    pub queue_alarm: bool,
    /// Removed by a reload: down for good, whatever streams say.
    retired: bool,
}

/// What a link change did to reachability.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReachChange {
    None,
    /// The server lost its last active stream (alarm `ComplianceServerConnectionLost`).
    LostLastStream {
        graceful: bool,
    },
    /// The server became up again.
    Recovered,
}

impl ServerView {
    pub fn new(id: ServerId, name: String, component: String, shards: usize, now: Instant) -> Self {
        ServerView {
            id,
            seed: crate::routing::stable_hash(name.as_bytes()),
            name,
            component,
            links: vec![LinkState::Down; shards],
            // Before its first stream is up a server is treated as in an outage, so events
            // arriving at start-up wait for it rather than failing.
            reach: Reach::Outage { since: now },
            queue: VecDeque::new(),
            queue_alarm: false,
            retired: false,
        }
    }

    pub fn retired(&self) -> bool {
        self.retired
    }

    /// Removed from the configuration: down, whatever streams remain (the runtime closes them).
    pub fn retire(&mut self) {
        self.retired = true;
        self.reach = Reach::Down;
        self.links.iter_mut().for_each(|l| *l = LinkState::Down);
    }

    /// Back in the configuration: like a new server, it waits for its first stream.
    pub fn reinstate(&mut self, now: Instant) {
        self.retired = false;
        self.reach = Reach::Outage { since: now };
    }

    pub fn reach(&self) -> Reach {
        self.reach
    }

    pub fn routable(&self) -> bool {
        self.reach != Reach::Down
    }

    /// A shard with an active stream to this server that takes requests: `prefer` if it has
    /// one, else the first.
    pub fn link(&self, prefer: usize) -> Option<usize> {
        if self.links.get(prefer) == Some(&LinkState::Open) {
            return Some(prefer);
        }
        self.links.iter().position(|&l| l == LinkState::Open)
    }

    pub fn link_state(&self, shard: usize) -> LinkState {
        self.links.get(shard).copied().unwrap_or(LinkState::Down)
    }

    /// Marks shard `shard`'s stream full; true if it was open.
    pub fn link_full(&mut self, shard: usize) -> bool {
        match self.links.get_mut(shard) {
            Some(l @ LinkState::Open) => {
                *l = LinkState::Full;
                true
            }
            _ => false,
        }
    }

    /// Marks shard `shard`'s stream open again; true if it was full.
    pub fn link_room(&mut self, shard: usize) -> bool {
        match self.links.get_mut(shard) {
            Some(l @ LinkState::Full) => {
                *l = LinkState::Open;
                true
            }
            _ => false,
        }
    }

    /// Puts back something that was sent (or popped to be sent) in its place: before every
    /// entry that came after it in this shard's order, so a key's requests keep their order.
    pub fn requeue(&mut self, item: Queued) {
        let at = self.queue.partition_point(|q| q.seq() < item.seq());
        self.queue.insert(at, item);
    }

    pub fn link_up(&mut self, shard: usize) -> ReachChange {
        if self.retired {
            return ReachChange::None;
        }
        if let Some(l) = self.links.get_mut(shard) {
            *l = LinkState::Open;
        }
        let was_up = self.reach == Reach::Up;
        self.reach = Reach::Up;
        if was_up {
            ReachChange::None
        } else {
            ReachChange::Recovered
        }
    }

    pub fn link_down(&mut self, shard: usize, graceful: bool, now: Instant) -> ReachChange {
        let was_active = self.link_state(shard) != LinkState::Down;
        if let Some(l) = self.links.get_mut(shard) {
            *l = LinkState::Down;
        }
        if !was_active || self.links.iter().any(|&l| l != LinkState::Down) {
            return ReachChange::None;
        }
        self.reach = match (graceful, self.reach) {
            (true, _) => Reach::Down,
            (false, Reach::Outage { since }) => Reach::Outage { since },
            (false, _) => Reach::Outage { since: now },
        };
        ReachChange::LostLastStream { graceful }
    }

    /// When the outage window ends, if the server is in one.
    pub fn outage_deadline(&self, window: Duration) -> Option<Instant> {
        match self.reach {
            Reach::Outage { since } => Some(since + window),
            _ => None,
        }
    }

    /// Ends an outage whose window has passed; true if it did.
    pub fn expire_outage(&mut self, now: Instant, window: Duration) -> bool {
        match self.reach {
            Reach::Outage { since } if now >= since + window => {
                self.reach = Reach::Down;
                true
            }
            _ => false,
        }
    }

    /// Shards with an active stream.
    pub fn active_links(&self) -> usize {
        self.links.iter().filter(|&&l| l != LinkState::Down).count()
    }
}

#[cfg(test)]
// The tests read the clock once for a base instant; the code under test takes time as a parameter.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    fn view(now: Instant) -> ServerView {
        ServerView::new(
            ServerId(0),
            "cs1".into(),
            "op-cs1.gw-example-com".into(),
            2,
            now,
        )
    }

    #[test]
    fn reachability_follows_the_outage_rules() {
        let t = Instant::now();
        let w = Duration::from_secs(300);
        let mut s = view(t);
        assert_eq!(
            s.reach(),
            Reach::Outage { since: t },
            "waits for its first stream"
        );
        assert_eq!(s.link_up(1), ReachChange::Recovered);
        assert_eq!(s.link(0), Some(1));
        assert_eq!(s.link_up(0), ReachChange::None);
        assert_eq!(s.link(0), Some(0));
        assert_eq!(
            s.link_down(0, false, t),
            ReachChange::None,
            "another stream is still up"
        );
        let t1 = t + Duration::from_secs(1);
        assert_eq!(
            s.link_down(1, false, t1),
            ReachChange::LostLastStream { graceful: false }
        );
        assert_eq!(s.reach(), Reach::Outage { since: t1 });
        assert!(s.routable());
        assert!(!s.expire_outage(t1 + w - Duration::from_millis(1), w));
        assert!(s.expire_outage(t1 + w, w));
        assert!(!s.routable());
        assert_eq!(s.link_up(0), ReachChange::Recovered);
        assert_eq!(
            s.link_down(0, true, t1),
            ReachChange::LostLastStream { graceful: true }
        );
        assert_eq!(s.reach(), Reach::Down, "graceful: unroutable at once");
        assert_eq!(
            s.link_down(0, false, t1),
            ReachChange::None,
            "a stream that was not up"
        );
    }
}
