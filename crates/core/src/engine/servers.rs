//! One shard's view of every compliance server: which shards hold an active stream to it,
//! whether it is routable (up, in an ungraceful outage window, or down), the bounded queue of
//! what waits for it to come back, the order this shard gives it requests in, and the link
//! changes kept for servers a reload has not brought here yet (docs/protocol.md §5, "Outages").
//!
//! Every shard keeps its own replica, updated from the link events all shards broadcast; no
//! state is shared. This file decides reachability and keeps each queue's order and its alarm
//! state; what happens to the events is the engine's.

use super::slots::SlotRef;
use crate::policy::{CompiledPolicy, ServerId, ServerInfo};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Link changes kept for servers this shard does not know yet (another shard applied a reload
/// first and its new stream came up): replayed once the reload arrives here.
const MAX_PENDING_LINKS: usize = 4096;

/// How a stream to a server ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    /// With `</stream:stream>` or a stream error: the server left on purpose, and leaves the
    /// ring once it has no stream left.
    Graceful,
    /// The connection broke: the server is in an outage window, and what waits for it queues.
    Abrupt,
}

/// What happened to one shard's stream to a server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// The stream became active.
    Up,
    /// The stream went away.
    Down(Closing),
}

/// Whether a server takes events, as docs/protocol.md §5 defines it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// At least one stream is active.
    Up,
    /// No active stream since `since`, the last loss ungraceful (or never connected yet):
    /// routable until the outage window ends; events queue.
    Outage {
        /// When the last stream was lost (or when the server became known).
        since: Instant,
    },
    /// Not routable: lost gracefully, or the outage window ended.
    Down,
}

/// Something waiting for the server to come back, or for room on its streams. `seq` is its
/// place in the order this shard gave the server's requests (see [`ServerView::requeue`]).
#[derive(Clone, Debug)]
pub(super) enum Queued {
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
    /// Its place in this shard's order for the server.
    pub(super) fn seq(&self) -> u64 {
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

/// One server, from one shard's point of view (the status page reads it).
#[derive(Debug)]
pub struct ServerView {
    id: ServerId,
    name: String,
    component: String,
    /// The server's stable hash, for rendezvous scoring.
    seed: u64,
    /// Each shard's stream.
    links: Vec<LinkState>,
    reach: Reach,
    queue: VecDeque<Queued>,
    /// Alarm state: the queue reached its bound and has not drained since.
    queue_alarm: QueueAlarm,
    /// Removed by a reload: down for good, whatever streams say.
    retired: bool,
}

/// Whether alarm `ComplianceServerQueueFull` stands for a server's queue on this shard.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum QueueAlarm {
    Clear,
    Raised,
}

/// What a link change did to reachability.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum ReachChange {
    /// Nothing the alarms care about.
    None,
    /// The server lost its last active stream (alarm `ComplianceServerConnectionLost`).
    LostLastStream { graceful: bool },
    /// The server became up again.
    Recovered,
}

impl ServerView {
    /// A server this shard has just learnt of, with `shards` streams none of which is up.
    pub(super) fn new(
        id: ServerId,
        name: String,
        component: String,
        shards: usize,
        now: Instant,
    ) -> Self {
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
            queue_alarm: QueueAlarm::Clear,
            retired: false,
        }
    }

    /// Its number in the policy.
    pub fn id(&self) -> ServerId {
        self.id
    }

    /// Its configured name (for status and verdict origins).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component JID its requests are addressed to.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// Its rendezvous score seed: the stable hash of its name.
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    /// Removed by a reload: down for good, whatever its streams say.
    pub fn retired(&self) -> bool {
        self.retired
    }

    /// Requests and notifications waiting for it on this shard.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Removed from the configuration: down, whatever streams remain (the runtime closes them).
    pub(super) fn retire(&mut self) {
        self.retired = true;
        self.reach = Reach::Down;
        self.links.iter_mut().for_each(|l| *l = LinkState::Down);
    }

    /// Back in the configuration: like a new server, it waits for its first stream.
    pub(super) fn reinstate(&mut self, now: Instant) {
        self.retired = false;
        self.reach = Reach::Outage { since: now };
    }

    /// Whether it takes events now (docs/protocol.md §5).
    pub fn reach(&self) -> Reach {
        self.reach
    }

    /// Not down: it may be chosen for a step (events queue while it is in an outage).
    pub fn routable(&self) -> bool {
        self.reach != Reach::Down
    }

    /// A shard with an active stream to this server that takes requests: `prefer` if it has
    /// one, else the first.
    pub(super) fn link(&self, prefer: usize) -> Option<usize> {
        if self.links.get(prefer) == Some(&LinkState::Open) {
            return Some(prefer);
        }
        self.links.iter().position(|&l| l == LinkState::Open)
    }

    /// Shard `shard`'s stream to it.
    pub fn link_state(&self, shard: usize) -> LinkState {
        self.links.get(shard).copied().unwrap_or(LinkState::Down)
    }

    /// Marks shard `shard`'s stream full; true if it was open.
    pub(super) fn link_full(&mut self, shard: usize) -> bool {
        match self.links.get_mut(shard) {
            Some(l @ LinkState::Open) => {
                *l = LinkState::Full;
                true
            }
            _ => false,
        }
    }

    /// Marks shard `shard`'s stream open again; true if it was full.
    pub(super) fn link_room(&mut self, shard: usize) -> bool {
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
    pub(super) fn requeue(&mut self, item: Queued) {
        let at = self.queue.partition_point(|q| q.seq() < item.seq());
        self.queue.insert(at, item);
    }

    /// Nothing waits in its queue.
    pub(super) fn queue_is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Appends to its queue (the caller checked the bound).
    pub(super) fn enqueue(&mut self, item: Queued) {
        self.queue.push_back(item);
    }

    /// The oldest entry of its queue.
    pub(super) fn pop_queued(&mut self) -> Option<Queued> {
        self.queue.pop_front()
    }

    /// Empties its queue, oldest first.
    pub(super) fn take_queue(&mut self) -> Vec<Queued> {
        self.queue.drain(..).collect()
    }

    /// Keeps the queue entries `keep` says are still worth sending, in their order.
    pub(super) fn retain_queued(&mut self, keep: impl FnMut(&mut Queued) -> bool) {
        self.queue.retain_mut(keep);
    }

    /// The queue is at its bound: true if alarm `ComplianceServerQueueFull` is news.
    pub(super) fn raise_queue_alarm(&mut self) -> bool {
        let news = self.queue_alarm == QueueAlarm::Clear;
        self.queue_alarm = QueueAlarm::Raised;
        news
    }

    /// The queue has drained below `bound`: true if its raised alarm is now cleared.
    pub(super) fn clear_queue_alarm(&mut self, bound: usize) -> bool {
        if self.queue_alarm == QueueAlarm::Raised && self.queue.len() < bound {
            self.queue_alarm = QueueAlarm::Clear;
            return true;
        }
        false
    }

    /// Shard `shard`'s stream came up.
    pub(super) fn link_up(&mut self, shard: usize) -> ReachChange {
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

    /// Shard `shard`'s stream went away, `graceful` if the server closed it on purpose.
    pub(super) fn link_down(&mut self, shard: usize, graceful: bool, now: Instant) -> ReachChange {
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
    pub(super) fn outage_deadline(&self, window: Duration) -> Option<Instant> {
        match self.reach {
            Reach::Outage { since } => Some(since + window),
            _ => None,
        }
    }

    /// Ends an outage whose window has passed; true if it did.
    pub(super) fn expire_outage(&mut self, now: Instant, window: Duration) -> bool {
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

/// What a reload did to one server this shard knew or did not know (see [`Servers::sync`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Sync {
    /// New to this shard: it waits for its first stream.
    Added,
    /// Still configured as it was (its component may have changed).
    Kept,
    /// The reload removes it: the caller retires it ([`ServerView::retire`]).
    Removed,
    /// Back in the configuration after a removal.
    Reinstated,
}

/// Every server this shard knows of, by id, the order it gives them requests in, and the link
/// changes kept for servers it does not know yet. Ids only grow (see `policy::matcher`).
#[derive(Debug)]
pub(super) struct Servers {
    views: Vec<ServerView>,
    /// Link changes for servers a reload has not brought here yet (see `reload.rs`).
    pending: Vec<(ServerId, u16, LinkChange)>,
    /// The last place given in the order requests go to servers.
    seq: u64,
}

impl Servers {
    /// The servers of `policy`, each with `shards` streams none of which is up yet.
    pub(super) fn new(policy: &CompiledPolicy, shards: usize, now: Instant) -> Servers {
        let views = policy
            .servers()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ServerView::new(
                    ServerId(i as u16),
                    s.name.clone(),
                    s.component.clone(),
                    shards,
                    now,
                )
            })
            .collect();
        Servers {
            views,
            pending: Vec::new(),
            seq: 0,
        }
    }

    /// Every server, by id.
    pub(super) fn all(&self) -> &[ServerView] {
        &self.views
    }

    pub(super) fn len(&self) -> usize {
        self.views.len()
    }

    pub(super) fn get(&self, id: ServerId) -> Option<&ServerView> {
        self.views.get(id.index())
    }

    pub(super) fn get_mut(&mut self, id: ServerId) -> Option<&mut ServerView> {
        self.views.get_mut(id.index())
    }

    /// Brings server `index` of a new policy here: added if it is new, its component updated
    /// and its retirement compared otherwise.
    pub(super) fn sync(
        &mut self,
        index: usize,
        info: &ServerInfo,
        shards: usize,
        now: Instant,
    ) -> Sync {
        let id = ServerId(u16::try_from(index).unwrap_or(u16::MAX));
        match self.views.get_mut(index) {
            None => {
                self.views.push(ServerView::new(
                    id,
                    info.name.clone(),
                    info.component.clone(),
                    shards,
                    now,
                ));
                Sync::Added
            }
            Some(view) => {
                view.component.clone_from(&info.component);
                match (view.retired(), info.retired) {
                    (false, true) => Sync::Removed,
                    (true, false) => {
                        view.reinstate(now);
                        Sync::Reinstated
                    }
                    _ => Sync::Kept,
                }
            }
        }
    }

    /// The server among `ids` that rendezvous hashing gives `stable_key`, among the routable
    /// ones (and, with [`Retired::Skip`], not retired).
    pub(super) fn rendezvous(
        &self,
        ids: &[ServerId],
        stable_key: u64,
        retired: Retired,
    ) -> Option<ServerId> {
        let candidates = ids
            .iter()
            .filter_map(|id| self.get(*id))
            .filter(|s| s.routable() && (retired == Retired::Include || !s.retired()))
            .map(|s| (s.id, s.seed()));
        crate::routing::rendezvous(stable_key, candidates)
    }

    /// Some server has an active stream.
    pub(super) fn any_up(&self) -> bool {
        self.views.iter().any(|v| v.reach() == Reach::Up)
    }

    /// When the first outage window ends.
    pub(super) fn next_outage_end(&self, window: Duration) -> Option<Instant> {
        self.views
            .iter()
            .filter_map(|s| s.outage_deadline(window))
            .min()
    }

    /// The next place in the order requests are given to servers.
    pub(super) fn take_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keeps a link change for a server this shard does not know yet (at most
    /// `MAX_PENDING_LINKS`, the oldest dropped first); false if it is known.
    pub(super) fn defer_link(&mut self, server: ServerId, link: u16, change: LinkChange) -> bool {
        if server.index() < self.views.len() {
            return false;
        }
        if self.pending.len() >= MAX_PENDING_LINKS {
            self.pending.remove(0);
        }
        self.pending.push((server, link, change));
        true
    }

    /// The link changes kept so far, oldest first.
    pub(super) fn take_pending_links(&mut self) -> Vec<(ServerId, u16, LinkChange)> {
        std::mem::take(&mut self.pending)
    }
}

/// Whether a rendezvous may choose a retired server (none is routable anyway).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Retired {
    Include,
    Skip,
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
