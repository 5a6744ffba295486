//! The chain walk of docs/protocol.md §5, one step at a time: choose the step's server by
//! rendezvous hashing over its routable servers, notify and go on or send and wait, apply the
//! answer (PASS-only rules included), fail a step as its handling says, and finish the event in
//! exactly one terminal state, released in key order.

use super::{Action, Alarm, Outgoing, ShardEngine};
use crate::engine::counters::Terminal;
use crate::engine::events::{Decider, EventState, Phase};
use crate::engine::servers::{Queued, Reach, Retired};
use crate::policy::{AnswerRule, Handling, ServerId, Step};
use crate::protocol::request::{write_request, Mode, RequestFields};
use crate::protocol::verdict::{write_verdict, Origin};
use crate::protocol::{Answer, BounceCause, RequestId, Verdict};
use bytes::Bytes;
use std::time::Instant;

/// Used for an unreadable answer: it counts as an error from the server.
const MALFORMED_ANSWER_ERROR: &[u8] = b"<error type='cancel'><undefined-condition \
    xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

impl ShardEngine {
    /// Walks `slot` from its current step until it waits for an answer or finishes.
    pub(super) fn advance(&mut self, slot: u32, now: Instant) {
        loop {
            let Some(ev) = self.events.by_slot(slot) else {
                return;
            };
            let Some(step) = self.step_of(ev) else {
                let verdict = Verdict::Pass(ev.replaced().cloned());
                let terminal = pass_or_failed(ev.failed_open());
                return self.finish(slot, verdict, terminal, None);
            };
            let notify = step.fire_and_forget || !ev.event().answer().expects_answer();
            let Some(server) = self.choose(&step, ev.epoch(), ev.stable_key()) else {
                if notify && self.spooling.enabled() {
                    // Kept in the spool, the notification is as good as sent.
                    if self.spool_step(slot, &step).is_err() {
                        return self.refuse_closed(slot, &step);
                    }
                    if step.handling == Handling::Bounce {
                        let decider = Some((step.profile, None));
                        return self.finish(slot, Verdict::Drop, Terminal::Drop, decider);
                    }
                    if let Some(ev) = self.events.by_slot_mut(slot) {
                        ev.next_step();
                    }
                    continue;
                }
                // No server can take the step: it fails at once, as its handling says.
                let keep = !notify && self.spooling.enabled();
                if self.fail_or_continue(slot, &step, None, BounceCause::Unavailable, keep) {
                    return;
                }
                continue;
            };
            if notify {
                if !self.notify(slot, &step, server, now) {
                    return self.refuse_closed(slot, &step);
                }
                if step.handling == Handling::Bounce {
                    // The seed's caution: bounce + fire-and-forget discards the event.
                    return self.finish(
                        slot,
                        Verdict::Drop,
                        Terminal::Drop,
                        Some((step.profile, Some(server))),
                    );
                }
                if let Some(ev) = self.events.by_slot_mut(slot) {
                    ev.next_step();
                }
                continue;
            }
            let Some(r) = self.events.bump(slot) else {
                return;
            };
            // Armed before it waits: this event is not `Waiting` yet, and must not look stale.
            self.events.arm_timer(now, self.cfg.event_timeout, r);
            let seq = self.servers.take_seq();
            let tick = self.events.tick(now);
            if let Some(ev) = self.events.by_slot_mut(slot) {
                ev.wait_for(server, seq, tick);
            }
            self.dispatch(slot, now);
            return;
        }
    }

    /// Fails the current step without an answer. Returns true when that ended the walk; with
    /// handling `pass` the event moves to its next step (the caller goes on walking), its
    /// record kept in the spool first when `keep` (no server saw it): a record that cannot be
    /// kept ends the walk with a bounce (fail closed).
    fn fail_or_continue(
        &mut self,
        slot: u32,
        step: &Step,
        server: Option<ServerId>,
        cause: BounceCause,
        keep: bool,
    ) -> bool {
        match step.handling {
            Handling::Bounce => {
                self.finish(
                    slot,
                    Verdict::Bounce(cause),
                    Terminal::Bounce,
                    Some((step.profile, server)),
                );
                true
            }
            Handling::Pass => {
                if keep && self.spool_step(slot, step).is_err() {
                    self.refuse_closed(slot, step);
                    return true;
                }
                if let Some(ev) = self.events.by_slot_mut(slot) {
                    ev.fail_open();
                }
                false
            }
        }
    }

    /// The step's server for this key among the routable ones (none while draining). `epoch`
    /// is the policy the step comes from.
    pub(super) fn choose(&self, step: &Step, epoch: u32, stable_key: u64) -> Option<ServerId> {
        if self.draining() {
            return None;
        }
        self.servers.rendezvous(
            step.servers(self.policy_of(epoch)),
            stable_key,
            Retired::Include,
        )
    }

    /// Writes the current request of a waiting event, or queues it while its server has no
    /// stream with room, or while earlier requests wait in its queue (they go first); a full
    /// queue fails the step at once.
    pub(super) fn dispatch(&mut self, slot: u32, now: Instant) {
        let Some(server) = self.waiting_server(slot) else {
            return;
        };
        let shard = usize::from(self.cfg.shard);
        let Some(view) = self.servers.get_mut(server) else {
            return;
        };
        if let (Some(link), true) = (view.link(shard), view.queue_is_empty()) {
            self.send_request(slot, server, link as u16, now);
            return;
        }
        if view.queued() >= self.cfg.queue_bound {
            // Entries whose events timed out or moved on still sit in the queue: drop them
            // before calling it full (expired notifications go to the spool, if there is one).
            let events = &self.events;
            let mut expired = Vec::new();
            view.retain_queued(|q| match q {
                Queued::Wait { r, .. } => events.queued(*r),
                Queued::Notify {
                    expires, record, ..
                } => {
                    let keep = *expires > now;
                    if !keep {
                        expired.push(record.take());
                    }
                    keep
                }
            });
            for record in expired {
                if !self.spool_dropped(record) {
                    self.count_lost(server);
                }
            }
        }
        let Some(view) = self.servers.get_mut(server) else {
            return;
        };
        if view.queued() >= self.cfg.queue_bound {
            if view.raise_queue_alarm() {
                self.actions.push_back(Action::Alarm(Alarm::QueueFull {
                    server,
                    state: crate::engine::AlarmState::Raised,
                }));
            }
            if let Some(c) = self.counters.server_mut(server) {
                c.queue_full += 1;
            }
            return self.step_failed(slot, BounceCause::Unavailable, now);
        }
        let seq = match self.events.by_slot(slot).map(EventState::phase) {
            Some(Phase::Waiting { seq, .. }) => *seq,
            _ => return,
        };
        if let Some(r) = self.events.current(slot) {
            view.requeue(Queued::Wait { r, seq });
        }
        if view.link(shard).is_some() {
            // A stream has room: what waits goes out first.
            self.flush_queue(server, now);
        }
    }

    /// The server `slot`'s event waits for, if it waits.
    pub(super) fn waiting_server(&self, slot: u32) -> Option<ServerId> {
        self.events.by_slot(slot)?.waiting_server()
    }

    /// Builds and emits the wait-mode request of `slot` on `server`'s stream at shard `link`;
    /// returns its size.
    pub(super) fn send_request(
        &mut self,
        slot: u32,
        server: ServerId,
        link: u16,
        now: Instant,
    ) -> usize {
        let Some(r) = self.events.current(slot) else {
            return 0;
        };
        let id = RequestId {
            shard: self.cfg.shard,
            slot: r.slot,
            generation: r.generation,
        };
        let Some(bytes) = self.request_bytes(slot, server, id, Mode::Wait) else {
            return 0;
        };
        let mut seq = 0;
        let tick = self.events.tick(now);
        if let Some(ev) = self.events.by_slot_mut(slot) {
            seq = ev.sent(server, link, tick);
        }
        if let Some(c) = self.counters.server_mut(server) {
            c.sent += 1;
        }
        let len = bytes.len();
        self.actions.push_back(Action::Send {
            server,
            link,
            request: Outgoing::Wait { id, seq },
            bytes,
        });
        len
    }

    /// A fire-and-forget notification of the current step, written now or queued for the
    /// server's return; with a spool, kept there instead while the server has no active
    /// stream, or when its queue is full. False when it had to be kept and could not be (the
    /// caller fails the event closed).
    fn notify(&mut self, slot: u32, step: &Step, server: ServerId, now: Instant) -> bool {
        let Some(r) = self.events.current(slot) else {
            return true;
        };
        let id = RequestId {
            shard: self.cfg.shard,
            slot: r.slot,
            generation: r.generation,
        };
        let Some(bytes) = self.request_bytes(slot, server, id, Mode::Notify) else {
            return true;
        };
        let shard = usize::from(self.cfg.shard);
        let seq = self.servers.take_seq();
        let expires = now + self.cfg.event_timeout;
        let spooling = self.spooling.enabled();
        let Some(view) = self.servers.get(server) else {
            return true;
        };
        let link = view.link(shard).filter(|_| view.queue_is_empty());
        let queue_full = view.queued() >= self.cfg.queue_bound;
        if link.is_none() && spooling && (view.reach() != Reach::Up || queue_full) {
            if queue_full {
                if let Some(c) = self.counters.server_mut(server) {
                    c.queue_full += 1;
                }
            }
            return self.spool_step(slot, step).is_ok();
        }
        let record = match link {
            None => self.queued_record(slot),
            Some(_) => None,
        };
        let Some(view) = self.servers.get_mut(server) else {
            return true;
        };
        match link {
            Some(link) => {
                if let Some(c) = self.counters.server_mut(server) {
                    c.notified += 1;
                }
                self.actions.push_back(Action::Send {
                    server,
                    link: link as u16,
                    request: Outgoing::Notify { seq, expires },
                    bytes,
                });
            }
            None if view.queued() < self.cfg.queue_bound => {
                view.enqueue(Queued::Notify {
                    bytes,
                    expires,
                    seq,
                    record,
                });
            }
            None => {
                if let Some(c) = self.counters.server_mut(server) {
                    c.queue_full += 1;
                    c.notifications_lost += 1;
                }
            }
        }
        true
    }

    /// The request of `slot`'s current step for `server`, in `mode`.
    fn request_bytes(
        &mut self,
        slot: u32,
        server: ServerId,
        id: RequestId,
        mode: Mode,
    ) -> Option<Bytes> {
        let ev = self.events.by_slot(slot)?;
        let step = self.step_of(ev)?;
        let view = self.servers.get(server)?;
        let record = self.record_id(ev);
        let stamp = ev.stamp();
        let fields = RequestFields {
            id,
            event: ev.event(),
            packet: (ev.event().kind() == crate::policy::EventKind::Jsm).then_some(ev.packet()),
            profile: self.policy.profile_name(step.profile),
            handling: step.handling,
            mode,
            node: self.policy.node_name(ev.node()).unwrap_or(""),
            key: ev.key(),
            stamp: stamp.as_str(),
            record: record.as_str(),
            replay: false,
        };
        let (from, to, stanza) = (&self.cfg.gateway_name, view.component(), ev.stanza());
        Some(self.out.write(stanza.len() + 384, |out| {
            write_request(out, from, to, &fields, stanza)
        }))
    }

    /// Applies a server's answer to the waiting event in `slot`.
    pub(super) fn apply_answer(
        &mut self,
        slot: u32,
        server: ServerId,
        answer: Answer,
        now: Instant,
    ) {
        let Some(ev) = self.events.by_slot(slot) else {
            return;
        };
        let event = ev.event();
        let Some(step) = self.step_of(ev) else {
            return;
        };
        let (judged, violation) = judge(answer, event.answer());
        let Some(counters) = self.counters.server_mut(server) else {
            return;
        };
        if let Some(detail) = violation {
            counters.protocol_violations += 1;
            self.actions.push_back(Action::ProtocolViolation {
                server,
                event,
                detail,
            });
        }
        let Some(counters) = self.counters.server_mut(server) else {
            return;
        };
        match judged {
            Judged::Pass => {
                counters.passed += 1;
                self.next_step(slot, now);
            }
            Judged::Modified(stanza) => {
                counters.modified += 1;
                if let Some(ev) = self.events.by_slot_mut(slot) {
                    ev.modify(stanza);
                }
                self.next_step(slot, now);
            }
            Judged::Handle => {
                counters.handled += 1;
                let decider = Some((step.profile, Some(server)));
                self.finish(slot, Verdict::Handle, Terminal::Handle, decider);
            }
            Judged::Error(error) => {
                counters.errors += 1;
                let cause = BounceCause::ServerError(error);
                // The server saw it and answered: never a record.
                self.step_failed_with(slot, step, Some(server), cause, now, false);
            }
        }
    }

    /// On to the next step of `slot`'s chain, and walks it.
    fn next_step(&mut self, slot: u32, now: Instant) {
        if let Some(ev) = self.events.by_slot_mut(slot) {
            ev.next_step();
        }
        self.advance(slot, now);
    }

    /// The event's timer fired while it waited.
    pub(super) fn timed_out(&mut self, slot: u32, now: Instant) {
        if let Some(server) = self.waiting_server(slot) {
            if let Some(c) = self.counters.server_mut(server) {
                c.timeouts += 1;
            }
        }
        self.step_failed(slot, BounceCause::Timeout, now);
    }

    /// Fails the current step of a waiting event, as its handling says.
    pub(super) fn step_failed(&mut self, slot: u32, cause: BounceCause, now: Instant) {
        let Some(ev) = self.events.by_slot(slot) else {
            return;
        };
        let server = ev.waiting_server();
        let Some(step) = self.step_of(ev) else {
            return;
        };
        // No answer: a record to keep if no server saw the request.
        let keep = self.unseen(slot);
        self.step_failed_with(slot, step, server, cause, now, keep);
    }

    /// Fails `step` of `slot` (answered by `server`, if one answered) for `cause`; `keep`
    /// spools its record first (no server saw it).
    fn step_failed_with(
        &mut self,
        slot: u32,
        step: Step,
        server: Option<ServerId>,
        cause: BounceCause,
        now: Instant,
        keep: bool,
    ) {
        // The request is over: stale its timer and any queue entry.
        self.events.bump(slot);
        if !self.fail_or_continue(slot, &step, server, cause, keep) {
            self.advance(slot, now);
        }
    }

    /// Records the verdict and releases whatever its key's order allows.
    pub(super) fn finish(
        &mut self,
        slot: u32,
        verdict: Verdict,
        terminal: Terminal,
        decider: Decider,
    ) {
        let Some(ev) = self.events.by_slot_mut(slot) else {
            return;
        };
        ev.finish(verdict, terminal, decider);
        let key_hash = ev.key_hash();
        // Stale the slot's timers and queue entries.
        self.events.bump(slot);
        self.release(key_hash);
    }

    /// Emits the verdicts at the head of a key's order that are done, and whose records (if
    /// any) are durable.
    pub(super) fn release(&mut self, key_hash: u64) {
        loop {
            let spooling = &self.spooling;
            let Some((ev, verdict, terminal, decider)) = self
                .events
                .release_head(key_hash, |e| spooling.hold_released(e.hold()))
            else {
                return;
            };
            let origin = decider.map(|(profile, server)| Origin {
                profile: self.policy.profile_name(profile),
                server: server.and_then(|s| self.servers.get(s)).map(|s| s.name()),
            });
            let from = &self.cfg.gateway_name;
            let bytes = self.out.write(256, |out| {
                write_verdict(out, from, ev.reply(), &verdict, origin)
            });
            let received_at = ev.received_at().at(self.events.base());
            let residence = self.now.saturating_duration_since(received_at);
            let micros = residence.as_micros() as u64;
            self.counters
                .count_terminal(ev.event(), terminal, decider, micros);
            self.recent.record_terminal(terminal, micros, self.now);
            self.actions.push_back(Action::Verdict {
                router: ev.router(),
                bytes,
            });
            self.events.recycle(ev);
        }
    }

    /// The outage state of a server, for tests and status.
    pub fn reach(&self, server: ServerId) -> Option<Reach> {
        self.servers.get(server).map(|s| s.reach())
    }
}

/// An answer after the answer rules.
enum Judged {
    Pass,
    Modified(Bytes),
    Handle,
    Error(Bytes),
}

/// Applies the event's answer rule: a refused answer is a plain PASS, an unreadable one an
/// error; either way the second value names the protocol violation.
fn judge(answer: Answer, rule: AnswerRule) -> (Judged, Option<&'static str>) {
    if let Answer::Malformed(detail) = answer {
        return (
            Judged::Error(Bytes::from_static(MALFORMED_ANSWER_ERROR)),
            Some(detail),
        );
    }
    if !rule.permits(answer.kind()) {
        return (Judged::Pass, Some(refusal(rule)));
    }
    let judged = match answer {
        Answer::Pass => Judged::Pass,
        Answer::PassModified(s) => Judged::Modified(s),
        Answer::Handle => Judged::Handle,
        Answer::Error(e) => Judged::Error(e),
        Answer::Malformed(_) => Judged::Error(Bytes::from_static(MALFORMED_ANSWER_ERROR)),
    };
    (judged, None)
}

fn pass_or_failed(failed_open: bool) -> Terminal {
    if failed_open {
        Terminal::FailedOpen
    } else {
        Terminal::Pass
    }
}

fn refusal(rule: AnswerRule) -> &'static str {
    match rule {
        AnswerRule::PassOnly => {
            "answer other than PASS to an event whose only valid response is PASS"
        }
        AnswerRule::PassUnmodified => {
            "answer other than an unmodified PASS to an event that allows only that"
        }
        AnswerRule::NotifyOnly => "answer to a notification-only event",
        AnswerRule::Any => "refused answer",
    }
}
