//! Link changes and outages (PROTOCOL.md §5): what happens to a server's events when one of its
//! streams comes up or goes away, gracefully or not, and when an ungraceful outage outlasts its
//! window. Raises and clears the server alarms.

use super::servers::{Queued, Reach, ReachChange};
use super::shard::{Action, Alarm, Phase, ShardEngine};
use crate::policy::ServerId;
use crate::protocol::BounceCause;
use std::time::Instant;

impl ShardEngine {
    /// A stream to `server` held by shard `link` became active.
    pub fn on_link_up(&mut self, server: ServerId, link: u16, now: Instant) {
        self.now = now;
        if self.defer_link(server, link, true, false) {
            return;
        }
        let Some(view) = self.servers.get_mut(server.index()) else {
            return;
        };
        let was_down = view.reach() == Reach::Down;
        if view.link_up(usize::from(link)) == ReachChange::Recovered {
            self.actions.push_back(Action::Alarm(Alarm::ConnectionLost {
                server,
                raised: false,
            }));
            if was_down {
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    raised: false,
                }));
            }
        }
        self.flush_queue(server, now);
    }

    /// A stream to `server` held by shard `link` went away.
    pub fn on_link_down(&mut self, server: ServerId, link: u16, graceful: bool, now: Instant) {
        self.now = now;
        if self.defer_link(server, link, false, graceful) {
            return;
        }
        let Some(view) = self.servers.get_mut(server.index()) else {
            return;
        };
        let change = view.link_down(usize::from(link), graceful, now);
        let reach = view.reach();
        if let ReachChange::LostLastStream { graceful } = change {
            self.actions.push_back(Action::Alarm(Alarm::ConnectionLost {
                server,
                raised: true,
            }));
            if graceful {
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    raised: true,
                }));
            }
        }
        // Requests that went out on the lost stream will never be answered there.
        let mut orphans: Vec<(Instant, u32)> = self
            .events
            .occupied()
            .filter_map(|slot| match self.events.by_slot(slot)?.phase {
                Phase::Waiting {
                    server: s,
                    link: Some(l),
                    sent_at,
                } if s == server && l == link => Some((sent_at, slot)),
                _ => None,
            })
            .collect();
        orphans.sort_unstable();
        match reach {
            Reach::Up => {
                for (_, slot) in orphans {
                    self.count_resent(server);
                    self.dispatch(slot, now);
                }
            }
            Reach::Outage { .. } => {
                // They were sent before anything now queued: they go back in front, in order.
                for &(_, slot) in orphans.iter().rev() {
                    if let Some(ev) = self.events.by_slot_mut(slot) {
                        if let Phase::Waiting { link, .. } = &mut ev.phase {
                            *link = None;
                        }
                    }
                    if let (Some(r), Some(view)) = (
                        self.events.current(slot),
                        self.servers.get_mut(server.index()),
                    ) {
                        view.queue.push_front(Queued::Wait(r));
                    }
                }
            }
            Reach::Down => {
                for (_, slot) in orphans {
                    self.redirect(slot, now);
                }
                self.drain_queue(server, now, QueueEnd::Redirect);
            }
        }
    }

    /// Ends the outages whose window has passed: those servers leave the ring and what waits for
    /// them fails at once.
    pub(super) fn expire_outages(&mut self, now: Instant) {
        let window = self.cfg.outage_window;
        for i in 0..self.servers.len() {
            if self.servers[i].expire_outage(now, window) {
                let server = self.servers[i].id;
                self.actions.push_back(Action::Alarm(Alarm::LeftRing {
                    server,
                    raised: true,
                }));
                self.drain_queue(server, now, QueueEnd::Fail);
            }
        }
    }

    /// Writes what waited for `server`, now that it has a stream.
    fn flush_queue(&mut self, server: ServerId, now: Instant) {
        let shard = usize::from(self.cfg.shard);
        while let Some(view) = self.servers.get_mut(server.index()) {
            let Some(link) = view.link(shard) else {
                return;
            };
            let Some(item) = view.queue.pop_front() else {
                break;
            };
            match item {
                Queued::Wait(r) => {
                    let waiting_here = matches!(
                        self.events.get(r).map(|e| &e.phase),
                        Some(Phase::Waiting { server: s, link: None, .. }) if *s == server
                    );
                    if waiting_here {
                        self.send_request(r.slot, server, link as u16, now);
                    }
                }
                Queued::Notify { bytes, expires } => {
                    let counters = &mut self.counters.servers[server.index()];
                    if expires > now {
                        counters.notified += 1;
                        self.actions.push_back(Action::Send {
                            server,
                            link: link as u16,
                            request: None,
                            bytes,
                        });
                    } else {
                        counters.notifications_lost += 1;
                    }
                }
            }
        }
        self.clear_queue_alarm(server);
    }

    /// Empties a server's queue: its waiting events move to another server or fail at once.
    pub(super) fn drain_queue(&mut self, server: ServerId, now: Instant, end: QueueEnd) {
        let items: Vec<Queued> = match self.servers.get_mut(server.index()) {
            Some(view) => view.queue.drain(..).collect(),
            None => return,
        };
        for item in items {
            match item {
                Queued::Wait(r) => {
                    let waiting_here = matches!(
                        self.events.get(r).map(|e| &e.phase),
                        Some(Phase::Waiting { server: s, link: None, .. }) if *s == server
                    );
                    if !waiting_here {
                        continue;
                    }
                    match end {
                        QueueEnd::Redirect => self.redirect(r.slot, now),
                        QueueEnd::Fail => self.step_failed(r.slot, BounceCause::Unavailable, now),
                    }
                }
                Queued::Notify { .. } => {
                    self.counters.servers[server.index()].notifications_lost += 1;
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
        let from = match ev.phase {
            Phase::Waiting { server, .. } => server,
            _ => return,
        };
        let next = self
            .step_of(ev)
            .and_then(|step| self.choose(&step, ev.epoch, ev.stable_key));
        self.counters.servers[from.index()].moved_away += 1;
        match next {
            Some(server) => {
                if let Some(ev) = self.events.by_slot_mut(slot) {
                    ev.phase = Phase::Waiting {
                        server,
                        link: None,
                        sent_at: now,
                    };
                }
                self.dispatch(slot, now);
            }
            None => self.step_failed(slot, BounceCause::Unavailable, now),
        }
    }

    fn count_resent(&mut self, server: ServerId) {
        if let Some(c) = self.counters.servers.get_mut(server.index()) {
            c.resent += 1;
        }
    }

    fn clear_queue_alarm(&mut self, server: ServerId) {
        if let Some(view) = self.servers.get_mut(server.index()) {
            if view.queue_alarm && view.queue.len() < self.cfg.queue_bound {
                view.queue_alarm = false;
                self.actions.push_back(Action::Alarm(Alarm::QueueFull {
                    server,
                    raised: false,
                }));
            }
        }
    }
}

#[derive(Copy, Clone)]
pub(super) enum QueueEnd {
    Redirect,
    Fail,
}
