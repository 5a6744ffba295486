//! The per-shard engine: the state of every event this shard owns, and its inputs and outputs.
//!
//! Sans-IO in the quinn-proto style: the runtime feeds it events, answers, link changes and the
//! time, and polls it for [`Action`]s (requests to write, verdicts to deliver, alarms). It
//! never blocks, never reads a clock, and never touches a socket or another shard: everything
//! that crosses a shard is an input or an action the runtime carries over a bounded channel.
//!
//! This file holds the engine's parts and its entry points; the parts keep their own state
//! (events in `events.rs`, servers in `servers.rs`, counts in `counters.rs` and `recent.rs`,
//! the spool's side in `shard/spooling.rs`). The walk itself (choosing servers, stepping,
//! finishing, releasing in key order) is in `shard/walk.rs`; link changes and outages in
//! `shard/outage.rs`; reloads in `shard/reload.rs`.

mod outage;
mod reload;
mod spooling;
mod walk;

#[cfg(test)]
pub(super) use spooling::RecordId;

use super::counters::Counters;
use super::events::{EventState, Events, RouterRef};
use super::recent::Recent;
use super::servers::{Queued, ServerView, Servers};
use super::slots::SlotRef;
use crate::policy::{CompiledPolicy, EventId, ServerId};
use crate::protocol::{InboundEvent, ParsedAnswer, RequestId};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The engine's settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This shard's number (request ids and record ids carry it).
    pub shard: u16,
    /// How many shards the gateway runs: one possible stream per shard to each server.
    pub shards: u16,
    /// The gateway's component name (`from` of everything it writes).
    pub gateway_name: String,
    /// How long a step waits for its server's answer before it fails as its handling says.
    pub event_timeout: Duration,
    /// How long a server that lost its last stream abruptly stays in the ring, its events
    /// queued, before it leaves and they fail or move on.
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
    Wait {
        /// The request's id (its answer names it).
        id: RequestId,
        /// Its place in this shard's order for the server.
        seq: u64,
    },
    /// A fire-and-forget notification, worth writing until `expires`.
    Notify {
        /// Its place in this shard's order for the server.
        seq: u64,
        /// After this it is not written any more (counted lost, or spooled).
        expires: Instant,
    },
    /// The replay of spooled record `seq`: once written, report
    /// [`ShardEngine::handle_replay_written`] to the engine that sent it.
    Replay {
        /// The record's number in the spool.
        seq: u64,
    },
}

impl Outgoing {
    /// The id of the answer it waits for (a wait-mode request only).
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
        /// The server the request is for.
        server: ServerId,
        /// The shard whose stream to `server` carries it.
        link: u16,
        /// What it is, to hand back if it cannot be written.
        request: Outgoing,
        /// The request, ready to write.
        bytes: Bytes,
    },
    /// Report [`ShardEngine::handle_link_room`] once the stream to `server` held by shard `link`
    /// has drained below its low watermark (at once if it has already).
    AwaitRoom {
        /// The server whose stream is full.
        server: ServerId,
        /// The shard that holds the stream.
        link: u16,
    },
    /// Deliver a verdict (or `bad-request`) to a router connection.
    Verdict {
        /// The router connection the event came from.
        router: RouterRef,
        /// The verdict, ready to write.
        bytes: Bytes,
    },
    /// Raise or clear a named alarm.
    Alarm(Alarm),
    /// A compliance server broke the protocol; log it.
    ProtocolViolation {
        /// The server that broke it.
        server: ServerId,
        /// The event its answer was about.
        event: EventId,
        /// What was wrong, for the log.
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
    ConnectionLost {
        /// The server.
        server: ServerId,
        /// Raised or cleared.
        state: AlarmState,
    },
    /// A server left the hash ring (raised) or is routable again (cleared).
    LeftRing {
        /// The server.
        server: ServerId,
        /// Raised or cleared.
        state: AlarmState,
    },
    /// A server's queue on this shard reached its bound (raised) or drained (cleared).
    QueueFull {
        /// The server.
        server: ServerId,
        /// Raised or cleared.
        state: AlarmState,
    },
    /// This shard's spool refused a record (raised) or has room again (cleared).
    SpoolFull {
        /// Raised or cleared.
        state: AlarmState,
    },
}

impl Alarm {
    /// The alarm's name as docs/protocol.md §5 spells it (logs, metrics, status).
    pub fn name(&self) -> &'static str {
        match self {
            Alarm::ConnectionLost { .. } => "ComplianceServerConnectionLost",
            Alarm::LeftRing { .. } => "ComplianceServerLeftRing",
            Alarm::QueueFull { .. } => "ComplianceServerQueueFull",
            Alarm::SpoolFull { .. } => "SpoolFull",
        }
    }

    /// Whether the condition began (else it ended).
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

/// Whether the engine still walks events, or is shutting down.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mode {
    Running,
    /// Shutting down: every remaining step fails at once.
    Draining,
}

/// See the module documentation.
pub struct ShardEngine {
    cfg: EngineConfig,
    /// The policy new events walk under (earlier ones are kept by [`Events`]).
    policy: Arc<CompiledPolicy>,
    events: Events,
    servers: Servers,
    counters: Counters,
    /// The last minute of the same (see `recent.rs`).
    recent: Recent,
    /// The durable spool's side (see `shard/spooling.rs`).
    spooling: spooling::Spooling,
    actions: VecDeque<Action>,
    mode: Mode,
    /// The latest `now` any input brought, for measuring residence at release.
    now: Instant,
    /// What requests and verdicts are written into (see `outbuf.rs`).
    out: super::outbuf::OutBuffers,
}

impl ShardEngine {
    /// The engine of shard `cfg.shard`, walking events under `policy`, every server waiting
    /// for its first stream from `now`.
    pub fn new(cfg: EngineConfig, policy: Arc<CompiledPolicy>, now: Instant) -> ShardEngine {
        let servers = Servers::new(&policy, usize::from(cfg.shards), now);
        let profiles = policy.profile_count();
        ShardEngine {
            counters: Counters::new(profiles, servers.len()),
            recent: Recent::new(servers.len(), now),
            cfg,
            policy,
            events: Events::new(now),
            servers,
            spooling: Default::default(),
            actions: VecDeque::new(),
            mode: Mode::Running,
            now,
            out: Default::default(),
        }
    }

    /// A buffer for the bytes of the next event read on this shard ([`crate::protocol::parse_event_into`]):
    /// one a released event left, or a new one.
    pub fn spare_buffer(&mut self) -> Vec<u8> {
        self.events.spare_buffer()
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
        let stamp = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let stamp = u64::try_from(stamp).unwrap_or(u64::MAX);
        let received = self.events.tick(now);
        let slot = self
            .events
            .insert(EventState::new(ev, key_hash, router, received, stamp));
        self.advance(slot, now);
    }

    /// An answer from `server` (read on whichever shard holds its stream).
    pub fn handle_answer(&mut self, server: ServerId, answer: ParsedAnswer, now: Instant) {
        self.now = now;
        let r = SlotRef {
            slot: answer.id.slot,
            generation: answer.id.generation,
        };
        let Some(sent_at) = self.events.sent_at(r, server) else {
            if let Some(c) = self.counters.server_mut(server) {
                c.late_answers += 1;
            }
            return;
        };
        let micros = now.saturating_duration_since(sent_at).as_micros() as u64;
        self.counters.record_answer(server, micros);
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
        let Some(view) = self.servers.get_mut(server) else {
            return;
        };
        if view.link_full(usize::from(link)) {
            self.actions.push_back(Action::AwaitRoom { server, link });
        }
        let counters = self.counters.server_mut(server);
        match request {
            Outgoing::Wait { id, seq } => {
                let r = SlotRef {
                    slot: id.slot,
                    generation: id.generation,
                };
                if !self.events.sent_on(r, server, link) {
                    // Answered, timed out or moved on meanwhile.
                    return;
                }
                if let Some(ev) = self.events.by_slot_mut(r.slot) {
                    ev.unsent();
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
                let Some(view) = self.servers.get_mut(server) else {
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
        let Some(view) = self.servers.get_mut(server) else {
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
        while let Some(due) = self.events.pop_expired(now) {
            if let Some(r) = due {
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
        let outage = self.servers.next_outage_end(self.cfg.outage_window);
        match (self.events.next_deadline(), outage) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing the runtime must do; call until `None` after every input.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Events owned and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.events.len()
    }

    /// Conversation keys with events in flight.
    pub fn keys_in_flight(&self) -> usize {
        self.events.keys()
    }

    /// Everything this shard counted since start-up.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The last minute up to `now`: rates and percentiles for the status page.
    pub fn recent(&self, now: Instant) -> super::Window {
        self.recent.window(now)
    }

    /// This shard's view of every server, by id (for status).
    pub fn servers(&self) -> &[ServerView] {
        self.servers.all()
    }

    /// The settings in force.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Starts the shutdown: every event still walking gets the verdict its handling gives when
    /// no server can take it, and so does every event submitted from now on.
    pub fn drain(&mut self, now: Instant) {
        self.now = now;
        self.mode = Mode::Draining;
        for slot in self.events.waiting() {
            self.step_failed(slot, crate::protocol::BounceCause::Unavailable, now);
        }
        // Notifications still queued for a server are kept in the spool, if there is one.
        for i in 0..self.servers.len() {
            let server = ServerId(i as u16);
            let records: Vec<Option<Bytes>> = match self.servers.get_mut(server) {
                Some(view) => view
                    .take_queue()
                    .into_iter()
                    .filter_map(|q| match q {
                        Queued::Notify { record, .. } => Some(record),
                        Queued::Wait { .. } => None,
                    })
                    .collect(),
                None => continue,
            };
            for record in records {
                if !self.spool_dropped(record) {
                    self.count_lost(server);
                }
            }
        }
    }

    /// Whether the engine is shutting down (no step is started any more).
    fn draining(&self) -> bool {
        self.mode == Mode::Draining
    }

    /// A notification for `server` is lost (not written, not spooled).
    fn count_lost(&mut self, server: ServerId) {
        if let Some(c) = self.counters.server_mut(server) {
            c.notifications_lost += 1;
        }
    }
}
