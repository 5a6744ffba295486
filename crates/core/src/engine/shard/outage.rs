//! Link changes and outages (docs/protocol.md §5): what happens to a server's events when one of its
//! streams comes up or goes away, gracefully or not, and when an ungraceful outage outlasts its
//! window. Raises and clears the server alarms.

use super::{Action, Alarm, Outgoing, ShardEngine};
use crate::engine::servers::{Closing, LinkChange, Queued, Reach, ReachChange};
use crate::policy::ServerId;
use crate::protocol::BounceCause;
use std::time::Instant;

impl ShardEngine {
    /// A stream to `server` held by shard `link` came up or went away.
    pub fn handle_link(&mut self, server: ServerId, link: u16, change: LinkChange, now: Instant) {
        self.now = now;
        if self.servers.defer_link(server, link, change) {
            return;
        }
        match change {
            LinkChange::Up => self.on_link_up(server, link, now),
            LinkChange::Down(closing) => {
                self.on_link_down(server, link, closing == Closing::Graceful, now)
            }
        }
    }

    /// A stream to `server` held by shard `link` became active.
    fn on_link_up(&mut self, server: ServerId, link: u16, now: Instant) {
        let Some(view) = self.servers.get_mut(server) else {
            return;
        };
        let was_down = view.reach() == Reach::Down;
        if view.link_up(usize::from(link)) == ReachChange::Recovered {
            self.actions.push_back(Action::Alarm(Alarm::ConnectionLost {
                server,
                state: crate::engine::AlarmState::Cleared,
            }));
            if was_down {
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    state: crate::engine::AlarmState::Cleared,
                }));
            }
        }
        self.flush_queue(server, now);
        // Spooled records of its profiles may go now (after what waited in its queue).
        self.arm_replay(true);
        self.replay_turn(now);
    }

    /// A stream to `server` held by shard `link` went away.
    fn on_link_down(&mut self, server: ServerId, link: u16, graceful: bool, now: Instant) {
        let Some(view) = self.servers.get_mut(server) else {
            return;
        };
        let change = view.link_down(usize::from(link), graceful, now);
        let reach = view.reach();
        if let ReachChange::LostLastStream { graceful } = change {
            self.actions.push_back(Action::Alarm(Alarm::ConnectionLost {
                server,
                state: crate::engine::AlarmState::Raised,
            }));
            if graceful {
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    state: crate::engine::AlarmState::Raised,
                }));
            }
        }
        // Requests that went out on the lost stream will never be answered there.
        let orphans = self.events.sent_on_link(server, link);
        match reach {
            Reach::Up | Reach::Outage { .. } => {
                // They go back in the queue in their place, before anything given to the
                // server after them; another stream takes them now, or the server's return.
                for (slot, seq) in orphans {
                    if let Some(ev) = self.events.by_slot_mut(slot) {
                        ev.unsent();
                    }
                    if reach == Reach::Up {
                        self.count_resent(server);
                    }
                    if let (Some(r), Some(view)) =
                        (self.events.current(slot), self.servers.get_mut(server))
                    {
                        view.requeue(Queued::Wait { r, seq });
                    }
                }
                self.flush_queue(server, now);
            }
            Reach::Down => {
                for (slot, _) in orphans {
                    self.redirect(slot, now);
                }
                self.drain_queue(server, now, QueueEnd::Redirect);
                // Its share of the spool maps to the servers left.
                self.arm_replay(true);
            }
        }
    }

    /// Ends the outages whose window has passed: those servers leave the ring and what waits for
    /// them fails at once.
    pub(super) fn expire_outages(&mut self, now: Instant) {
        let window = self.cfg.outage_window;
        for i in 0..self.servers.len() {
            let server = ServerId(i as u16);
            if self
                .servers
                .get_mut(server)
                .is_some_and(|v| v.expire_outage(now, window))
            {
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    state: crate::engine::AlarmState::Raised,
                }));
                self.drain_queue(server, now, QueueEnd::Fail);
                self.arm_replay(true);
            }
        }
    }

    /// Writes what waits for `server` on its streams with room, in order: at most
    /// `link_batch_bytes` on each, after which that stream is full until the runtime reports
    /// room again (so a backlog goes out at the rate the stream takes it, never all at once).
    pub(super) fn flush_queue(&mut self, server: ServerId, now: Instant) {
        let shard = usize::from(self.cfg.shard);
        let batch = self.cfg.link_batch_bytes.max(1);
        let mut released: Option<(usize, usize)> = None;
        while let Some(view) = self.servers.get_mut(server) {
            let Some(link) = view.link(shard) else {
                break;
            };
            if view.queue_is_empty() {
                break;
            }
            let sent = match released {
                Some((l, n)) if l == link => n,
                _ => 0,
            };
            if sent >= batch {
                view.link_full(link);
                self.actions.push_back(Action::AwaitRoom {
                    server,
                    link: link as u16,
                });
                released = None;
                continue;
            }
            let Some(item) = view.pop_queued() else {
                break;
            };
            let len = match item {
                Queued::Wait { r, .. } => {
                    if self.events.queued_for(r, server) {
                        self.send_request(r.slot, server, link as u16, now)
                    } else {
                        0
                    }
                }
                Queued::Notify {
                    bytes,
                    expires,
                    seq,
                    record,
                } => {
                    if expires > now {
                        if let Some(c) = self.counters.server_mut(server) {
                            c.notified += 1;
                        }
                        let len = bytes.len();
                        self.actions.push_back(Action::Send {
                            server,
                            link: link as u16,
                            request: Outgoing::Notify { seq, expires },
                            bytes,
                        });
                        len
                    } else {
                        if !self.spool_dropped(record) {
                            self.count_lost(server);
                        }
                        0
                    }
                }
            };
            released = Some((link, sent + len));
        }
        self.clear_queue_alarm(server);
    }

    /// Empties a server's queue: its waiting events move to another server or fail at once.
    pub(super) fn drain_queue(&mut self, server: ServerId, now: Instant, end: QueueEnd) {
        let items: Vec<Queued> = match self.servers.get_mut(server) {
            Some(view) => view.take_queue(),
            None => return,
        };
        for item in items {
            match item {
                Queued::Wait { r, .. } => {
                    if !self.events.queued_for(r, server) {
                        continue;
                    }
                    match end {
                        QueueEnd::Redirect => self.redirect(r.slot, now),
                        QueueEnd::Fail => self.step_failed(r.slot, BounceCause::Unavailable, now),
                    }
                }
                Queued::Notify { record, .. } => {
                    if !self.spool_dropped(record) {
                        self.count_lost(server);
                    }
                }
            }
        }
        self.clear_queue_alarm(server);
    }

    /// Moves a waiting event to another routable server of its step (its timer keeps running);
    /// with none left the step fails at once.
    fn redirect(&mut self, slot: u32, now: Instant) {
        let Some(ev) = self.events.by_slot(slot) else {
            return;
        };
        let Some(from) = ev.waiting_server() else {
            return;
        };
        let next = self
            .step_of(ev)
            .and_then(|step| self.choose(&step, ev.epoch(), ev.stable_key()));
        if let Some(c) = self.counters.server_mut(from) {
            c.moved_away += 1;
        }
        match next {
            Some(server) => {
                let seq = self.servers.take_seq();
                let tick = self.events.tick(now);
                if let Some(ev) = self.events.by_slot_mut(slot) {
                    ev.wait_for(server, seq, tick);
                }
                self.dispatch(slot, now);
            }
            None => self.step_failed(slot, BounceCause::Unavailable, now),
        }
    }

    /// A request went out again after its stream was lost.
    fn count_resent(&mut self, server: ServerId) {
        if let Some(c) = self.counters.server_mut(server) {
            c.resent += 1;
        }
    }

    /// Clears alarm `ComplianceServerQueueFull` once the server's queue is below its bound.
    fn clear_queue_alarm(&mut self, server: ServerId) {
        if let Some(view) = self.servers.get_mut(server) {
            if view.clear_queue_alarm(self.cfg.queue_bound) {
                self.actions.push_back(Action::Alarm(Alarm::QueueFull {
                    server,
                    state: crate::engine::AlarmState::Cleared,
                }));
            }
        }
    }
}

/// What becomes of the waiting events of a queue that is emptied.
#[derive(Copy, Clone)]
pub(super) enum QueueEnd {
    /// They move to another server of their step (the server left gracefully or was removed).
    Redirect,
    /// Their step fails at once (the server's outage window ended).
    Fail,
}
