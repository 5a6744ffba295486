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

use super::outage::QueueEnd;
use super::{Action, Alarm, EngineConfig, ShardEngine};
use crate::engine::events::EventState;
use crate::engine::servers::Sync;
use crate::policy::{CompiledPolicy, ServerId, Step};
use std::sync::Arc;
use std::time::Instant;

impl ShardEngine {
    /// Takes a new policy and settings (from a configuration reload). `cfg` keeps this
    /// shard's identity; its timers and bounds apply to what happens from now on.
    pub fn reconfigure(&mut self, cfg: EngineConfig, policy: Arc<CompiledPolicy>, now: Instant) {
        self.now = now;
        let old = std::mem::replace(&mut self.policy, policy);
        self.events.new_epoch(old);
        self.cfg = EngineConfig {
            shard: self.cfg.shard,
            shards: self.cfg.shards,
            ..cfg
        };
        let policy = self.policy.clone();
        let shards = usize::from(self.cfg.shards);
        for (index, info) in policy.servers().iter().enumerate() {
            if self.servers.sync(index, info, shards, now) == Sync::Removed {
                let id = ServerId(u16::try_from(index).unwrap_or(u16::MAX));
                self.retire_server(id, now);
            }
        }
        self.counters
            .grow(policy.profile_count(), self.servers.len());
        self.recent.grow(self.servers.len());
        for (server, link, change) in self.servers.take_pending_links() {
            self.handle_link(server, link, change, now);
        }
    }

    /// Takes `server` out of the ring for good: what queued for it moves on as after a graceful
    /// loss, requests it holds wait for its answer (or their timer), and its alarms are cleared
    /// (a server that no longer exists is not in trouble).
    fn retire_server(&mut self, server: ServerId, now: Instant) {
        if let Some(view) = self.servers.get_mut(server) {
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
            self.actions.push_back(Action::Alarm(alarm));
        }
        self.drain_queue(server, now, QueueEnd::Redirect);
    }

    /// The policy of `epoch` (the current one for an epoch no longer held, which cannot
    /// happen while an event of it is in flight).
    pub(super) fn policy_of(&self, epoch: u32) -> &CompiledPolicy {
        if epoch == self.events.epoch() {
            return &self.policy;
        }
        self.events.earlier_policy(epoch).unwrap_or(&self.policy)
    }

    /// The step an event is at, in the chain of the policy it walks under.
    pub(super) fn step_of(&self, ev: &EventState) -> Option<Step> {
        self.policy_of(ev.epoch())
            .chain(ev.event(), Some(ev.packet()), ev.node())
            .get(usize::from(ev.step()))
            .copied()
    }

    /// Earlier policies still held for events in flight (for status).
    pub fn policies_held(&self) -> usize {
        self.events.policies_held()
    }
}
