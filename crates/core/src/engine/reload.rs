//! Live reconfiguration of one shard's engine (`palisade` applies configuration changes
//! without a restart): a new policy takes every event that arrives from now on, while each
//! event in flight finishes its walk under the policy it arrived under, so no event is judged
//! by half of one profile chain and half of another.
//!
//! Ids stay valid across policies (see `policy::matcher`), so servers, queues and counters only
//! grow. A server the new configuration removes is retired here: it leaves the ring at once,
//! what queued for it moves to its step's other servers (as after a graceful loss), and the
//! requests it already has are still its to answer: the runtime keeps its streams open for one
//! event timeout before closing them. This file never reads a clock or touches a socket; the
//! runtime brings the new policy and `now`.

use super::servers::ServerView;
use super::shard::{Alarm, EngineConfig, EventState, LinkChange, ShardEngine};
use crate::policy::{CompiledPolicy, ServerId, Step};
use std::sync::Arc;
use std::time::Instant;

/// Link changes kept for servers this shard does not know yet (another shard applied a reload
/// first and its new stream came up): replayed once the reload arrives here.
const MAX_PENDING_LINKS: usize = 4096;

impl ShardEngine {
    /// Takes a new policy and settings (from a configuration reload). `cfg` keeps this
    /// shard's identity; its timers and bounds apply to what happens from now on.
    pub fn reconfigure(&mut self, cfg: EngineConfig, policy: Arc<CompiledPolicy>, now: Instant) {
        self.now = now;
        let old = std::mem::replace(&mut self.policy, policy);
        self.epochs.retire(self.epoch, old);
        self.epoch = self.epoch.wrapping_add(1);
        self.cfg = EngineConfig {
            shard: self.cfg.shard,
            shards: self.cfg.shards,
            ..cfg
        };
        let policy = self.policy.clone();
        let shards = usize::from(self.cfg.shards);
        for (index, info) in policy.servers().iter().enumerate() {
            let id = ServerId(u16::try_from(index).unwrap_or(u16::MAX));
            match self.servers.get_mut(index) {
                None => self.servers.push(ServerView::new(
                    id,
                    info.name.clone(),
                    info.component.clone(),
                    shards,
                    now,
                )),
                Some(view) => {
                    view.component.clone_from(&info.component);
                    match (view.retired(), info.retired) {
                        (false, true) => self.retire_server(id, now),
                        (true, false) => view.reinstate(now),
                        _ => {}
                    }
                }
            }
        }
        self.counters
            .grow(policy.profile_count(), self.servers.len());
        self.recent.grow(self.servers.len());
        for (server, link, change) in std::mem::take(&mut self.pending_links) {
            self.handle_link(server, link, change, now);
        }
    }

    /// Keeps a link change for a server this shard does not know yet; false if it is known.
    pub(super) fn defer_link(&mut self, server: ServerId, link: u16, change: LinkChange) -> bool {
        if server.index() < self.servers.len() {
            return false;
        }
        if self.pending_links.len() >= MAX_PENDING_LINKS {
            self.pending_links.remove(0);
        }
        self.pending_links.push((server, link, change));
        true
    }

    /// Takes `server` out of the ring for good: what queued for it moves on as after a graceful
    /// loss, requests it holds wait for its answer (or their timer), and its alarms are cleared
    /// (a server that no longer exists is not in trouble).
    fn retire_server(&mut self, server: ServerId, now: Instant) {
        if let Some(view) = self.servers.get_mut(server.index()) {
            view.retire();
        }
        for alarm in [
            Alarm::ConnectionLost {
                server,
                state: crate::engine::AlarmState::Cleared,
            },
            Alarm::LeftRing {
                server,
                state: crate::engine::AlarmState::Cleared,
            },
            Alarm::QueueFull {
                server,
                state: crate::engine::AlarmState::Cleared,
            },
        ] {
            self.actions.push_back(super::shard::Action::Alarm(alarm));
        }
        self.drain_queue(server, now, super::outage::QueueEnd::Redirect);
    }

    /// The policy of `epoch` (the current one for an epoch no longer held, which cannot
    /// happen while an event of it is in flight).
    pub(super) fn policy_of(&self, epoch: u32) -> &CompiledPolicy {
        if epoch == self.epoch {
            return &self.policy;
        }
        self.epochs.policy(epoch).unwrap_or(&self.policy)
    }

    /// The step an event is at, in the chain of the policy it walks under.
    pub(super) fn step_of(&self, ev: &EventState) -> Option<Step> {
        self.policy_of(ev.epoch)
            .chain(ev.event, Some(ev.packet), ev.node)
            .get(usize::from(ev.step))
            .copied()
    }

    pub(super) fn epoch_left(&mut self, epoch: u32) {
        self.epochs.left(epoch);
    }

    /// Earlier policies still held for events in flight (for status).
    pub fn policies_held(&self) -> usize {
        self.epochs.held()
    }
}
