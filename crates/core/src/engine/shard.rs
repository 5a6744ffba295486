//! The per-shard engine: the state of every event this shard owns, and its inputs and outputs.
//!
//! Sans-IO in the quinn-proto style: the runtime feeds it events, answers, link changes and the
//! time, and polls it for [`Action`]s (requests to write, verdicts to deliver, alarms). It
//! never blocks, never reads a clock, and never touches a socket or another shard: everything
//! that crosses a shard is an input or an action the runtime carries over a bounded channel.
//!
//! The walk itself (choosing servers, stepping, finishing, releasing in key order) is in
//! `walk.rs`; link changes and outages in `outage.rs`.

use super::counters::{Counters, Terminal};
use super::deadlines::Deadlines;
use super::order::KeyOrder;
use super::servers::{Queued, ServerView};
use super::slots::{SlotRef, Slots};
use crate::policy::{CompiledPolicy, EventId, NodeId, PacketType, ProfileId, ServerId};
use crate::protocol::{InboundEvent, ParsedAnswer, Reply, RequestId, Verdict};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A router connection, as the runtime names it: its shard and its number there.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouterRef {
    pub shard: u16,
    pub conn: u32,
}

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

/// The engine's settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub shard: u16,
    pub shards: u16,
    /// The gateway's component name (`from` of everything it writes).
    pub gateway_name: String,
    pub event_timeout: Duration,
    pub outage_window: Duration,
    /// Bound of each server's queue on this shard.
    pub queue_bound: usize,
    /// Bytes of queued requests released on one stream at a time: when a stream comes back or
    /// reports room, this much goes out, then the engine waits for room again.
    pub link_batch_bytes: usize,
}

/// What an [`Action::Send`] carries, handed back by the runtime when it defers the send.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// The wait-mode request `id`, `seq`th in this shard's order for its server.
    Wait { id: RequestId, seq: u64 },
    /// A fire-and-forget notification, worth writing until `expires`.
    Notify { seq: u64, expires: Instant },
    /// The replay of spooled record `seq`: once written, report
    /// [`ShardEngine::handle_replay_written`] to the engine that sent it.
    Replay { seq: u64 },
}

impl Outgoing {
    pub fn request(&self) -> Option<RequestId> {
        match self {
            Outgoing::Wait { id, .. } => Some(*id),
            Outgoing::Notify { .. } | Outgoing::Replay { .. } => None,
        }
    }
}

/// What the runtime must do.
#[derive(Debug)]
pub enum Action {
    /// Write `bytes` on the stream to `server` held by shard `link`. If it cannot (its output
    /// is full, or it is gone), hand `request` and `bytes` back with
    /// [`ShardEngine::handle_send_deferred`]; it must then also refuse every later send of this
    /// shard on that stream until it reports room ([`ShardEngine::handle_link_room`]), so that the
    /// deferred ones are not overtaken.
    Send {
        server: ServerId,
        link: u16,
        request: Outgoing,
        bytes: Bytes,
    },
    /// Report [`ShardEngine::handle_link_room`] once the stream to `server` held by shard `link`
    /// has drained below its low watermark (at once if it has already).
    AwaitRoom { server: ServerId, link: u16 },
    /// Deliver a verdict (or `bad-request`) to a router connection.
    Verdict { router: RouterRef, bytes: Bytes },
    /// Raise or clear a named alarm.
    Alarm(Alarm),
    /// A compliance server broke the protocol; log it.
    ProtocolViolation {
        server: ServerId,
        event: EventId,
        detail: &'static str,
    },
}

/// Whether an [`Alarm`] is raised or cleared.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AlarmState {
    /// The condition began.
    Raised,
    /// The condition ended.
    Cleared,
}

/// Named alarms (docs/protocol.md §5), raised and cleared by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alarm {
    /// A server lost its last active stream (raised) or has one again (cleared).
    ConnectionLost { server: ServerId, state: AlarmState },
    /// A server left the hash ring (raised) or is routable again (cleared).
    LeftRing { server: ServerId, state: AlarmState },
    /// A server's queue on this shard reached its bound (raised) or drained (cleared).
    QueueFull { server: ServerId, state: AlarmState },
    /// This shard's spool refused a record (raised) or has room again (cleared).
    SpoolFull { state: AlarmState },
}

impl Alarm {
    pub fn name(&self) -> &'static str {
        match self {
            Alarm::ConnectionLost { .. } => "ComplianceServerConnectionLost",
            Alarm::LeftRing { .. } => "ComplianceServerLeftRing",
            Alarm::QueueFull { .. } => "ComplianceServerQueueFull",
            Alarm::SpoolFull { .. } => "SpoolFull",
        }
    }

    pub fn raised(&self) -> bool {
        match self {
            Alarm::ConnectionLost { state, .. }
            | Alarm::LeftRing { state, .. }
            | Alarm::QueueFull { state, .. }
            | Alarm::SpoolFull { state } => *state == AlarmState::Raised,
        }
    }

    /// The server the alarm is about (none for the spool's).
    pub fn server(&self) -> Option<ServerId> {
        match self {
            Alarm::ConnectionLost { server, .. }
            | Alarm::LeftRing { server, .. }
            | Alarm::QueueFull { server, .. } => Some(*server),
            Alarm::SpoolFull { .. } => None,
        }
    }
}

/// Where an event is in its walk.
#[derive(Debug)]
pub(super) enum Phase {
    /// Between steps (only while the engine is working on it).
    Walking,
    /// Waiting for `server`'s answer; `link` is the shard whose stream carried the request, or
    /// `None` while it waits in the server's queue.
    Waiting {
        server: ServerId,
        link: Option<u16>,
        sent_at: Instant,
        /// The request's place in this shard's order for `server` (see `Queued`).
        seq: u64,
    },
    /// Walk over; waiting for earlier events of its key to leave.
    Done {
        verdict: Verdict,
        terminal: Terminal,
        decider: Option<(ProfileId, Option<ServerId>)>,
    },
}

/// One event in flight.
#[derive(Debug)]
pub(super) struct EventState {
    pub event: EventId,
    pub packet: PacketType,
    pub node: NodeId,
    pub key: String,
    pub key_hash: u64,
    pub stable_key: u64,
    /// The stanza as the walk has it now (modified by a PASS, or the original).
    pub stanza: Bytes,
    pub modified: bool,
    pub reply: Reply,
    pub router: RouterRef,
    pub received_at: Instant,
    pub stamp: [u8; 24],
    pub step: u16,
    /// The policy the event walks under: the one in force when it arrived (see `reload.rs`).
    pub epoch: u32,
    pub failed_open: bool,
    /// This shard's number for the event (record ids).
    pub serial: u64,
    /// The last spooled record its verdict waits for (0: none).
    pub hold: u64,
    /// A record it depended on could not be kept: it bounces (fail closed).
    pub spool_lost: bool,
    pub phase: Phase,
    /// The next event of the same key, for [`KeyOrder`].
    pub next_same_key: Option<u32>,
}

/// See the module documentation.
pub struct ShardEngine {
    pub(super) cfg: EngineConfig,
    /// The policy new events walk under, and its epoch.
    pub(super) policy: Arc<CompiledPolicy>,
    pub(super) epoch: u32,
    /// Earlier policies that events in flight still walk under (see `reload.rs`).
    pub(super) epochs: super::epochs::Epochs,
    pub(super) events: Slots<EventState>,
    pub(super) order: KeyOrder,
    pub(super) timers: Deadlines,
    pub(super) servers: Vec<ServerView>,
    pub(super) counters: Counters,
    /// The last minute of the same (see `recent.rs`).
    pub(super) recent: super::recent::Recent,
    pub(super) actions: VecDeque<Action>,
    /// Shutting down: every remaining step fails at once.
    pub(super) draining: bool,
    /// The latest `now` any input brought, for measuring residence at release.
    pub(super) now: Instant,
    stamp_cache: (u128, [u8; 24]),
    /// Link changes for servers a reload has not brought here yet (see `reload.rs`).
    pub(super) pending_links: Vec<(ServerId, u16, LinkChange)>,
    /// The next place in the order requests are given to servers.
    pub(super) next_seq: u64,
    /// The durable spool, when `[spool] dir` is set (see `spooling.rs`).
    pub(super) spool: Option<crate::spool::Spool>,
    /// This gateway run's id, first in every record id.
    pub(super) boot: u64,
    /// The last event serial given.
    pub(super) serial: u64,
    /// Verdicts waiting for their records to be durable, by record number.
    pub(super) held: VecDeque<super::spooling::Held>,
    pub(super) replay: super::spooling::Replay,
    /// Alarm `SpoolFull` is raised.
    pub(super) spool_alarm: bool,
}

impl ShardEngine {
    pub fn new(cfg: EngineConfig, policy: Arc<CompiledPolicy>, now: Instant) -> ShardEngine {
        let servers = policy
            .servers()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ServerView::new(
                    ServerId(i as u16),
                    s.name.clone(),
                    s.component.clone(),
                    usize::from(cfg.shards),
                    now,
                )
            })
            .collect::<Vec<_>>();
        let profiles = policy.profile_count();
        ShardEngine {
            counters: Counters::new(profiles, servers.len()),
            recent: super::recent::Recent::new(servers.len(), now),
            cfg,
            policy,
            epoch: 0,
            epochs: Default::default(),
            events: Slots::default(),
            order: KeyOrder::default(),
            timers: Deadlines::default(),
            servers,
            actions: VecDeque::new(),
            draining: false,
            now,
            stamp_cache: (u128::MAX, [b'0'; 24]),
            pending_links: Vec::new(),
            next_seq: 0,
            spool: None,
            boot: 0,
            serial: 0,
            held: VecDeque::new(),
            replay: Default::default(),
            spool_alarm: false,
        }
    }

    /// Takes an event this shard owns. `key_hash` is the [`crate::routing::KeyHasher`] hash of
    /// its key (already computed to pick this shard).
    pub fn handle_event(
        &mut self,
        ev: InboundEvent,
        key_hash: u64,
        router: RouterRef,
        now: Instant,
        wall: SystemTime,
    ) {
        self.now = now;
        self.counters.received += 1;
        self.serial += 1;
        let stamp = self.stamp(wall);
        let state = EventState {
            event: ev.event,
            packet: ev.packet,
            node: ev.node,
            stable_key: crate::routing::stable_hash(ev.key.as_bytes()),
            key: ev.key,
            key_hash,
            stanza: ev.stanza,
            modified: false,
            reply: ev.reply,
            router,
            received_at: now,
            stamp,
            step: 0,
            epoch: self.epoch,
            failed_open: false,
            serial: self.serial,
            hold: 0,
            spool_lost: false,
            phase: Phase::Walking,
            next_same_key: None,
        };
        self.epochs.entered(self.epoch);
        let r = self.events.insert(state);
        if let Some(prev_tail) = self.order.push(key_hash, r.slot) {
            if let Some(prev) = self.events.by_slot_mut(prev_tail) {
                prev.next_same_key = Some(r.slot);
            }
        }
        self.advance(r.slot, now);
    }

    /// An answer from `server` (read on whichever shard holds its stream).
    pub fn handle_answer(&mut self, server: ServerId, answer: ParsedAnswer, now: Instant) {
        self.now = now;
        let r = SlotRef {
            slot: answer.id.slot,
            generation: answer.id.generation,
        };
        let waiting = match self.events.get(r).map(|e| &e.phase) {
            Some(Phase::Waiting {
                server: s,
                link: Some(_),
                sent_at,
                ..
            }) if *s == server => Some(*sent_at),
            _ => None,
        };
        let Some(sent_at) = waiting else {
            if let Some(c) = self.counters.servers.get_mut(server.index()) {
                c.late_answers += 1;
            }
            return;
        };
        let micros = now.saturating_duration_since(sent_at).as_micros() as u64;
        if let Some(h) = self.counters.latency.get_mut(server.index()) {
            h.saturating_record(micros.max(1));
        }
        if let Some(sum) = self.counters.latency_sum_us.get_mut(server.index()) {
            *sum += micros;
        }
        self.recent.record_answer(server.index(), micros, now);
        self.apply_answer(r.slot, server, answer.answer, now);
    }

    /// The runtime could not write what an [`Action::Send`] carried on shard `link`'s stream
    /// to `server` (its output is full, or it is going away). Nothing fails: the stream takes
    /// nothing more from this shard until it reports room (or comes back), and the request goes
    /// back to the server's queue in its place, to be sent again in order. Its timer runs on.
    pub fn handle_send_deferred(
        &mut self,
        server: ServerId,
        link: u16,
        request: Outgoing,
        bytes: Bytes,
        now: Instant,
    ) {
        self.now = now;
        let Some(view) = self.servers.get_mut(server.index()) else {
            return;
        };
        if view.link_full(usize::from(link)) {
            self.actions.push_back(Action::AwaitRoom { server, link });
        }
        let counters = self.counters.servers.get_mut(server.index());
        match request {
            Outgoing::Wait { id, seq } => {
                let r = SlotRef {
                    slot: id.slot,
                    generation: id.generation,
                };
                let sent_here = matches!(
                    self.events.get(r).map(|e| &e.phase),
                    Some(Phase::Waiting { server: s, link: Some(l), .. }) if *s == server && *l == link
                );
                if !sent_here {
                    // Answered, timed out or moved on meanwhile.
                    return;
                }
                if let Some(Phase::Waiting { link, .. }) =
                    self.events.by_slot_mut(r.slot).map(|e| &mut e.phase)
                {
                    *link = None;
                }
                if let Some(c) = counters {
                    c.deferred += 1;
                    c.sent = c.sent.saturating_sub(1);
                }
                view.requeue(Queued::Wait { r, seq });
            }
            Outgoing::Notify { seq, expires } => {
                if let Some(c) = counters {
                    c.deferred += 1;
                    c.notified = c.notified.saturating_sub(1);
                }
                // Its record goes back with it: spooled if it is dropped from the queue.
                let record = self.record_of_request(&bytes);
                let Some(view) = self.servers.get_mut(server.index()) else {
                    return;
                };
                view.requeue(Queued::Notify {
                    bytes,
                    expires,
                    seq,
                    record,
                });
            }
            Outgoing::Replay { seq } => {
                self.replay_deferred(seq);
                return;
            }
        }
        // Another stream may still take it.
        self.flush_queue(server, now);
    }

    /// Shard `link`'s stream to `server` drained after an [`Action::AwaitRoom`]: the next
    /// batch of what waits for the server goes out.
    pub fn handle_link_room(&mut self, server: ServerId, link: u16, now: Instant) {
        self.now = now;
        let Some(view) = self.servers.get_mut(server.index()) else {
            return;
        };
        if view.link_room(usize::from(link)) {
            self.flush_queue(server, now);
            // Live requests first; replay takes what room is left.
            self.resume_replay();
            self.replay_turn(now);
        }
    }

    /// Runs the timers due at `now`: event timers and outage windows.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(r) = self.timers.pop_due(now) {
            if let Some(Phase::Waiting { .. }) = self.events.get(r).map(|e| &e.phase) {
                self.timed_out(r.slot, now);
            }
        }
        self.expire_outages(now);
        self.replay_turn(now);
    }

    /// The latest `now` any input brought.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When [`ShardEngine::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let window = self.cfg.outage_window;
        let outage = self
            .servers
            .iter()
            .filter_map(|s| s.outage_deadline(window))
            .min();
        match (self.timers.next(), outage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Events owned and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.events.len()
    }

    /// Conversation keys with events in flight.
    pub fn keys_in_flight(&self) -> usize {
        self.order.keys()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The last minute up to `now`: rates and percentiles for the status page.
    pub fn recent(&self, now: Instant) -> super::Window {
        self.recent.window(now)
    }

    pub fn servers(&self) -> &[ServerView] {
        &self.servers
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Starts the shutdown: every event still walking gets the verdict its handling gives when
    /// no server can take it, and so does every event submitted from now on.
    pub fn drain(&mut self, now: Instant) {
        self.now = now;
        self.draining = true;
        let waiting: Vec<u32> = self
            .events
            .occupied()
            .filter(|&s| {
                matches!(
                    self.events.by_slot(s).map(|e| &e.phase),
                    Some(Phase::Waiting { .. })
                )
            })
            .collect();
        for slot in waiting {
            self.step_failed(slot, crate::protocol::BounceCause::Unavailable, now);
        }
        // Notifications still queued for a server are kept in the spool, if there is one.
        for i in 0..self.servers.len() {
            let records: Vec<Option<Bytes>> = self.servers[i]
                .queue
                .drain(..)
                .filter_map(|q| match q {
                    Queued::Notify { record, .. } => Some(record),
                    Queued::Wait { .. } => None,
                })
                .collect();
            for record in records {
                if !self.spool_dropped(record) {
                    self.counters.servers[i].notifications_lost += 1;
                }
            }
        }
    }

    /// XEP-0082 stamp of `wall`, formatted once per millisecond.
    fn stamp(&mut self, wall: SystemTime) -> [u8; 24] {
        let ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        if ms != self.stamp_cache.0 {
            let text = crate::protocol::stamp::format(wall);
            let mut buf = [b'0'; 24];
            let n = text.len().min(24);
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            self.stamp_cache = (ms, buf);
        }
        self.stamp_cache.1
    }
}
