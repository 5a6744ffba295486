//! The engine's side of the durable spool (docs/protocol.md §8): record ids, what goes in
//! (a step that could not reach a server), holding a verdict until the runtime reports the
//! sync that covers its records, failing closed when the spool is full or a write failed, and
//! replay to the servers that are back, paced by the streams' flow control.
//!
//! Owns no file: the [`Spool`] it holds is sans-IO; the runtime carries its batches out and
//! reports back through [`ShardEngine::handle_spool_durable`] and
//! [`ShardEngine::handle_spool_failed`].

use super::{Action, Alarm, AlarmState, Outgoing, ShardEngine};
use crate::engine::events::{EventState, Phase};
use crate::engine::servers::{Reach, Retired};
use crate::engine::Terminal;
use crate::policy::{ProfileId, ServerId, Step};
use crate::protocol::request::{write_request, Mode, RequestFields};
use crate::protocol::{BounceCause, RequestId, Verdict};
use crate::spool::{format, Load, RecordRef, Refused, Seq, Spool};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::Instant;

/// Records looked at in one replay turn, at most: a turn holds the shard well under a
/// millisecond, and the runtime lets every other task run between turns.
const REPLAY_SCAN: usize = 512;

/// How far ahead of a replay pass records on disk only are read back.
const PREFETCH: usize = 1024;

/// A record id: `{boot}.{shard}.{event}.{step}` in lowercase hex (see docs/protocol.md), on
/// the stack: one is written for every request.
pub(crate) struct RecordId {
    buf: [u8; RecordId::MAX_LEN],
    len: usize,
}

impl RecordId {
    /// 16 + 4 + 16 + 4 hex digits and three dots.
    const MAX_LEN: usize = 43;

    fn new(parts: [u64; 4]) -> RecordId {
        let mut id = RecordId {
            buf: [0; RecordId::MAX_LEN],
            len: 0,
        };
        for (i, v) in parts.into_iter().enumerate() {
            if i > 0 {
                id.buf[id.len] = b'.';
                id.len += 1;
            }
            crate::protocol::request::write_hex(v, &mut id.buf, &mut id.len);
        }
        id
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    #[cfg(test)]
    pub(crate) fn new_for_test(parts: [u64; 4]) -> String {
        RecordId::new(parts).as_str().to_owned()
    }
}

/// Where replay stands: a pass over the spool, oldest first, resumed across turns.
#[derive(Debug, Default)]
struct Replay {
    /// A pass is under way (or due).
    armed: bool,
    /// The next record the pass looks at.
    cursor: Seq,
    /// Something was sent during this pass (another pass follows it).
    progress: bool,
    /// The pass stopped at `cursor` because that record's server had no stream with room: a
    /// stream's room resumes it.
    blocked: bool,
    /// The pass stopped at `cursor` for that record's payload, which is only on disk.
    waits: ReplayWait,
}

/// What a replay pass stopped for, besides room on a stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ReplayWait {
    /// Nothing.
    #[default]
    Nothing,
    /// The record is not durable yet: it can be read back once it is.
    Durable,
    /// The runtime reads it (and the records after it) back.
    Load,
}

/// A verdict waiting for its record to be durable.
#[derive(Debug, Clone, Copy)]
struct Held {
    seq: Seq,
    slot: u32,
    /// The event's serial: the slot may hold another event by the time the sync is reported.
    serial: u64,
    key_hash: u64,
}

/// The engine's spool state: the spool itself (when `[spool] dir` is set), this run's id,
/// the verdicts waiting for their records, where replay stands, and the spool's alarm.
#[derive(Debug)]
pub(super) struct Spooling {
    spool: Option<Spool>,
    /// This gateway run's id, first in every record id.
    boot: u64,
    /// Verdicts waiting for their records to be durable, by record number.
    held: VecDeque<Held>,
    replay: Replay,
    /// Alarm `SpoolFull`.
    alarm: AlarmState,
}

impl Default for Spooling {
    fn default() -> Self {
        Spooling {
            spool: None,
            boot: 0,
            held: VecDeque::new(),
            replay: Replay::default(),
            alarm: AlarmState::Cleared,
        }
    }
}

impl Spooling {
    /// A spool is attached: steps no server can take are kept.
    pub(super) fn enabled(&self) -> bool {
        self.spool.is_some()
    }

    /// Whether the verdict of an event holding `hold` may leave.
    pub(super) fn hold_released(&self, hold: Seq) -> bool {
        hold == 0 || self.spool.as_ref().is_none_or(|s| s.durable() >= hold)
    }
}

impl ShardEngine {
    /// Gives this engine its spool (read back at start-up), and the id of this gateway run
    /// that every record id starts with. Without it, nothing is spooled.
    pub fn attach_spool(&mut self, spool: Spool, boot: u64) {
        self.spooling.spool = Some(spool);
        self.spooling.boot = boot;
        self.arm_replay(true);
    }

    /// Sets the run id record ids start with (without a spool).
    pub fn set_boot(&mut self, boot: u64) {
        self.spooling.boot = boot;
    }

    /// The spool, when one is attached (for status and tests).
    pub fn spool(&self) -> Option<&Spool> {
        self.spooling.spool.as_ref()
    }

    /// Records or removals wait for the spool's writer.
    pub fn spool_has_work(&self) -> bool {
        self.spooling.spool.as_ref().is_some_and(Spool::has_work)
    }

    /// Nothing of the spool waits to be written or is being written (shutdown waits for it).
    pub fn spool_idle(&self) -> bool {
        self.spooling.spool.as_ref().is_none_or(Spool::idle)
    }

    /// The next batch of spool file operations to carry out (see [`Spool::take_batch`]).
    pub fn take_spool_batch(&mut self) -> Option<crate::spool::IoBatch> {
        self.spooling.spool.as_mut()?.take_batch()
    }

    /// The record id of `ev`'s current step.
    pub(super) fn record_id(&self, ev: &EventState) -> RecordId {
        // The boot id is 48 bits and the shard 16: the longest id fits MAX_LEN.
        RecordId::new([
            self.spooling.boot & 0xffff_ffff_ffff,
            u64::from(self.cfg.shard),
            ev.serial(),
            u64::from(ev.step()),
        ])
    }

    /// Whether a failed step of `slot` is a record to keep: the spool is on and no server saw
    /// the request (it never left the queue, or its server is not ACTIVE).
    pub(super) fn unseen(&self, slot: u32) -> bool {
        if !self.spooling.enabled() {
            return false;
        }
        match self.events.by_slot(slot).map(EventState::phase) {
            Some(Phase::Waiting { server, link, .. }) => {
                link.is_none()
                    || self
                        .servers
                        .get(*server)
                        .is_some_and(|s| s.reach() != Reach::Up)
            }
            _ => true,
        }
    }

    /// The current step of `slot` as a record.
    fn encode_step(&self, slot: u32, step: &Step) -> Option<(Vec<u8>, u64, u64)> {
        let ev = self.events.by_slot(slot)?;
        let id = self.record_id(ev);
        let stamp = ev.stamp();
        let record = RecordRef {
            id: id.as_str(),
            stamp: stamp.as_str(),
            stable_key: ev.stable_key(),
            profile: self.policy_of(ev.epoch()).profile_name(step.profile),
            event: ev.event(),
            packet: (ev.event().kind() == crate::policy::EventKind::Jsm).then_some(ev.packet()),
            handling: step.handling,
            node: self.policy.node_name(ev.node()).unwrap_or(""),
            key: ev.key(),
            stanza: ev.stanza(),
        };
        let born = crate::protocol::stamp::parse_millis(stamp.as_str()).unwrap_or(0);
        Some((format::encode_payload(&record), ev.stable_key(), born))
    }

    /// The encoded record of `slot`'s current step, for a notification that waits in a queue
    /// (spooled if it is dropped there); `None` without a spool.
    pub(super) fn queued_record(&self, slot: u32) -> Option<Bytes> {
        self.spooling.spool.as_ref()?;
        let ev = self.events.by_slot(slot)?;
        let step = self.step_of(ev)?;
        self.encode_step(slot, &step)
            .map(|(p, _, _)| Bytes::from(p))
    }

    /// Spools the current step of `slot`; its verdict waits until the record is durable.
    pub(super) fn spool_step(&mut self, slot: u32, step: &Step) -> Result<(), Refused> {
        let Some((payload, stable_key, born)) = self.encode_step(slot, step) else {
            return Ok(());
        };
        let profile = self.policy.profile_name(step.profile).to_owned();
        let seq = self.spool_payload(payload, &profile, stable_key, born)?;
        if let Some(ev) = self.events.by_slot_mut(slot) {
            ev.hold_for(seq);
            let held = Held {
                seq,
                slot,
                serial: ev.serial(),
                key_hash: ev.key_hash(),
            };
            self.spooling.held.push_back(held);
        }
        Ok(())
    }

    /// Appends a record; raises alarm `SpoolFull` when the spool refuses it.
    fn spool_payload(
        &mut self,
        payload: Vec<u8>,
        profile: &str,
        stable_key: u64,
        born: u64,
    ) -> Result<Seq, Refused> {
        let spool = self.spooling.spool.as_mut().ok_or(Refused::Full)?;
        let result = spool.append_encoded(payload, profile, stable_key, born);
        if result.is_err() {
            self.raise_spool_alarm();
        }
        // No replay pass for it now: it is here because no server could take it; a server
        // coming back or leaving the ring starts one. If some server is up (its queue or
        // streams are full), the next room on a stream starts one too.
        if result.is_ok() && self.servers.any_up() {
            self.spooling.replay.blocked = true;
        }
        result
    }

    /// A notification dropped from a queue after its event left (a server that left the
    /// ring, an expired entry, shutdown): kept if the spool has room, else lost (counted).
    pub(super) fn spool_dropped(&mut self, record: Option<Bytes>) -> bool {
        let Some(payload) = record else {
            return false;
        };
        let Some(r) = format::decode_payload(&payload) else {
            return false;
        };
        let born = crate::protocol::stamp::parse_millis(&r.stamp).unwrap_or(0);
        self.spool_payload(payload.to_vec(), &r.profile, r.stable_key, born)
            .is_ok()
    }

    /// The record of a notification sent straight to a stream and handed back by it (full, or
    /// going away), read back from the request's own bytes: its event may be gone by now, and
    /// encoding a record for every notification sent would cost the path with no outage.
    /// `None` without a spool, or for bytes this engine did not write.
    pub(crate) fn record_of_request(&self, bytes: &[u8]) -> Option<Bytes> {
        self.spooling.spool.as_ref()?;
        record_of_notify(bytes).map(Bytes::from)
    }

    /// The runtime made every record up to `upto` durable: the verdicts waiting for them go.
    pub fn handle_spool_durable(&mut self, upto: Seq, now: Instant) {
        self.now = now;
        if let Some(spool) = self.spooling.spool.as_mut() {
            spool.on_durable(upto);
        }
        self.release_held(upto, false);
        self.check_spool_alarm();
        if self.spooling.replay.waits == ReplayWait::Durable {
            self.spooling.replay.waits = ReplayWait::Nothing;
            self.arm_replay(false);
        }
    }

    /// The read of spooled records replay waits for, once.
    pub fn take_spool_load(&mut self) -> Option<Load> {
        self.spooling.spool.as_mut()?.take_load()
    }

    /// The runtime read back `load` (`Err`: it could not): the pass that waited for it goes
    /// on (and asks again if it must).
    pub fn handle_spool_loaded(&mut self, load: &Load, data: Result<&[u8], ()>, now: Instant) {
        self.now = now;
        if let Some(spool) = self.spooling.spool.as_mut() {
            spool.on_loaded(load, data);
        }
        if self.spooling.replay.waits == ReplayWait::Load {
            self.spooling.replay.waits = ReplayWait::Nothing;
            if data.is_ok() {
                self.arm_replay(false);
            } else {
                // Tried again when something else starts a pass (a server back, room).
                self.spooling.replay.blocked = true;
            }
        }
        self.check_spool_alarm();
    }

    /// The runtime failed to make the records up to `upto` durable: they are not kept, and the
    /// events that depended on them bounce (fail closed).
    pub fn handle_spool_failed(&mut self, upto: Seq, now: Instant) {
        self.now = now;
        let upto = match self.spooling.spool.as_mut() {
            Some(spool) => spool.on_failed(upto),
            None => upto,
        };
        self.release_held(upto, true);
        // The spool keeps nothing while its writes fail: the same alarm as a full one.
        self.raise_spool_alarm();
    }

    fn raise_spool_alarm(&mut self) {
        if self.spooling.alarm == AlarmState::Cleared {
            self.spooling.alarm = AlarmState::Raised;
            self.actions.push_back(Action::Alarm(Alarm::SpoolFull {
                state: crate::engine::AlarmState::Raised,
            }));
        }
    }

    /// The verdicts held for records up to `upto` may go (bounced if the records were `lost`).
    fn release_held(&mut self, upto: Seq, lost: bool) {
        while let Some(h) = self.spooling.held.front().copied() {
            if h.seq > upto {
                break;
            }
            self.spooling.held.pop_front();
            if lost {
                if let Some(ev) = self.events.by_slot_mut(h.slot) {
                    if ev.serial() == h.serial {
                        ev.lose_record();
                    }
                }
            }
            self.release(h.key_hash);
        }
    }

    /// Clears alarm `SpoolFull` once the spool has room again.
    fn check_spool_alarm(&mut self) {
        if self.spooling.alarm == AlarmState::Raised
            && self.spooling.spool.as_ref().is_some_and(|s| !s.refusing())
        {
            self.spooling.alarm = AlarmState::Cleared;
            self.actions.push_back(Action::Alarm(Alarm::SpoolFull {
                state: crate::engine::AlarmState::Cleared,
            }));
        }
    }

    /// Something changed that may let records go out: a pass starts (from the oldest record
    /// when `from_start`) at the next turn.
    pub(super) fn arm_replay(&mut self, from_start: bool) {
        if self
            .spooling
            .spool
            .as_ref()
            .is_none_or(|s| s.records() == 0)
        {
            return;
        }
        let replay = &mut self.spooling.replay;
        if from_start && !replay.armed {
            replay.cursor = 0;
        }
        replay.blocked = false;
        replay.armed = true;
    }

    /// A stream reported room: a pass that waited for room goes on (a pass that found
    /// nothing to send is not started again for it: room changes nothing for records whose
    /// servers are away).
    pub(super) fn resume_replay(&mut self) {
        if self.spooling.replay.blocked {
            self.arm_replay(false);
        }
    }

    /// Whether a replay turn is due now (the runtime runs [`ShardEngine::replay_turn`] until
    /// it is not, yielding between turns).
    /// A read a pass waits for counts: the runtime's replay task carries it out.
    pub fn replay_due(&self) -> bool {
        (self.spooling.replay.armed && !self.draining())
            || self.spooling.spool.as_ref().is_some_and(Spool::load_wanted)
    }

    /// One replay turn: looks at up to [`REPLAY_SCAN`] records from the pass's cursor, and
    /// writes each whose server (rendezvous among its profile's routable servers) has a
    /// stream with room, at most `link_batch_bytes` per stream; a stream that took its batch
    /// is full until it reports room. Live requests waiting in a server's queue went first
    /// (callers flush queues before replay).
    pub fn replay_turn(&mut self, now: Instant) {
        self.replay_pass(now);
        self.prefetch();
    }

    /// While a pass goes on, the next records it will reach that are on disk only are read
    /// back ahead of it (one read at a time, at most [`PREFETCH`] records ahead), so that the
    /// pass does not stop at each read.
    fn prefetch(&mut self) {
        let going = self.spooling.replay.armed || self.spooling.replay.blocked;
        let draining = self.draining();
        let Some(spool) = self.spooling.spool.as_mut() else {
            return;
        };
        if !going || spool.loading() || draining {
            return;
        }
        let next = spool
            .pending_from(self.spooling.replay.cursor)
            .take(PREFETCH)
            .find(|(_, p)| p.payload.is_none())
            .map(|(seq, _)| seq);
        if let Some(seq) = next {
            spool.want_load(seq);
        }
    }

    fn replay_pass(&mut self, now: Instant) {
        if !self.spooling.replay.armed || self.draining() {
            return;
        }
        let Some(spool) = self.spooling.spool.as_ref() else {
            return;
        };
        let profile_ids: Vec<Option<ProfileId>> = spool
            .profiles()
            .iter()
            .map(|p| {
                (0..self.policy.profile_count())
                    .map(|i| ProfileId(i as u16))
                    .find(|&id| self.policy.profile_name(id) == p.name)
            })
            .collect();
        let batch: Vec<(Seq, usize, u64, bool)> = spool
            .pending_from(self.spooling.replay.cursor)
            .take(REPLAY_SCAN)
            .map(|(seq, p)| (seq, p.profile, p.stable_key, p.payload.is_some()))
            .collect();
        let reached_end = batch.len() < REPLAY_SCAN;
        let shard = usize::from(self.cfg.shard);
        let limit = self.cfg.link_batch_bytes.max(1);
        let mut sent_on = vec![0usize; usize::from(self.cfg.shards)];
        for (seq, profile, stable_key, in_memory) in batch {
            self.spooling.replay.cursor = seq + 1;
            let Some(Some(profile)) = profile_ids.get(profile).copied() else {
                continue;
            };
            let Some(server) = self.replay_server(profile, stable_key) else {
                continue;
            };
            let Some(view) = self.servers.get(server) else {
                continue;
            };
            let Some(link) = view.link(shard) else {
                if view.reach() == Reach::Up {
                    // Its streams are full: the pass waits here for room (`handle_link_room`
                    // arms it again), rather than scanning on past what it cannot send.
                    let replay = &mut self.spooling.replay;
                    replay.cursor = seq;
                    replay.armed = false;
                    replay.progress = false;
                    replay.blocked = true;
                    return;
                }
                // Its server is in an outage window: the record waits for it.
                continue;
            };
            if !in_memory {
                // Only on disk: the pass waits here until it is read back.
                let Some(spool) = self.spooling.spool.as_mut() else {
                    return;
                };
                let waits = if spool.want_load(seq) || spool.loading() {
                    ReplayWait::Load
                } else if seq > spool.durable() {
                    ReplayWait::Durable
                } else {
                    continue;
                };
                self.spooling.replay.cursor = seq;
                self.spooling.replay.armed = false;
                self.spooling.replay.progress = false;
                self.spooling.replay.waits = waits;
                return;
            }
            let Some(bytes) = self.replay_bytes(seq, server) else {
                continue;
            };
            let len = bytes.len();
            if let Some(spool) = self.spooling.spool.as_mut() {
                spool.set_in_transit(seq, true);
            }
            self.spooling.replay.progress = true;
            self.actions.push_back(Action::Send {
                server,
                link: link as u16,
                request: Outgoing::Replay { seq },
                bytes,
            });
            if let Some(n) = sent_on.get_mut(link) {
                *n += len;
                if *n >= limit {
                    *n = 0;
                    if let Some(view) = self.servers.get_mut(server) {
                        view.link_full(link);
                    }
                    self.actions.push_back(Action::AwaitRoom {
                        server,
                        link: link as u16,
                    });
                }
            }
        }
        let _ = now;
        if reached_end {
            let replay = &mut self.spooling.replay;
            replay.cursor = 0;
            replay.armed = replay.progress;
            replay.progress = false;
        }
    }

    /// The server a record of `profile` goes to now: rendezvous over the routable ones.
    fn replay_server(&self, profile: ProfileId, stable_key: u64) -> Option<ServerId> {
        self.servers.rendezvous(
            self.policy.profile_servers(profile),
            stable_key,
            Retired::Skip,
        )
    }

    /// The replay request of record `seq` for `server`.
    fn replay_bytes(&self, seq: Seq, server: ServerId) -> Option<Bytes> {
        let pending = self.spooling.spool.as_ref()?.get(seq)?;
        let r = format::decode_payload(pending.payload.as_ref()?)?;
        let view = self.servers.get(server)?;
        let fields = RequestFields {
            id: RequestId {
                shard: self.cfg.shard,
                slot: u32::MAX,
                generation: (seq & 0xffff_ffff) as u32,
            },
            event: r.event,
            packet: r.packet,
            profile: &r.profile,
            handling: r.handling,
            mode: Mode::Notify,
            node: &r.node,
            key: &r.key,
            stamp: &r.stamp,
            record: &r.id,
            replay: true,
        };
        let mut out = BytesMut::with_capacity(r.stanza.len() + 384);
        write_request(
            &mut out,
            &self.cfg.gateway_name,
            view.component(),
            &fields,
            &r.stanza,
        );
        Some(out.freeze())
    }

    /// A replayed record was written to a server's stream: it leaves the spool.
    pub fn handle_replay_written(&mut self, seq: Seq, now: Instant) {
        self.now = now;
        if let Some(spool) = self.spooling.spool.as_mut() {
            spool.delivered(seq);
        }
        self.check_spool_alarm();
    }

    /// A replayed record could not be written: it stays, for a later pass.
    pub(super) fn replay_deferred(&mut self, seq: Seq) {
        if let Some(spool) = self.spooling.spool.as_mut() {
            spool.set_in_transit(seq, false);
        }
        // Sent again once the stream that handed it back has room.
        let replay = &mut self.spooling.replay;
        if replay.cursor > seq || !replay.armed {
            replay.cursor = replay.cursor.min(seq);
            replay.blocked = true;
            replay.armed = false;
        }
    }

    /// The step could not be kept: the event bounces, whatever its handling (fail closed).
    pub(super) fn refuse_closed(&mut self, slot: u32, step: &Step) {
        self.finish(
            slot,
            Verdict::Bounce(BounceCause::SpoolFull),
            Terminal::Bounce,
            Some((step.profile, None)),
        );
    }
}

/// Reads a notification written by [`write_request`] back into a record payload: the
/// `<event/>`'s attributes (unescaped) and its content, the router's stanza as it came.
fn record_of_notify(bytes: &[u8]) -> Option<Vec<u8>> {
    const CLOSE: &[u8] = b"</event></message>";
    let outer_end = tag_end(bytes, 0)?;
    let rest = bytes.get(outer_end + 1..)?;
    if !rest.starts_with(b"<event ") || !bytes.ends_with(CLOSE) {
        return None;
    }
    let start = outer_end + 1;
    let event_end = tag_end(bytes, start)?;
    let stanza = bytes.get(event_end + 1..bytes.len().checked_sub(CLOSE.len())?)?;
    let tag = std::str::from_utf8(bytes.get(start + b"<event".len()..event_end)?).ok()?;
    let mut attrs: Vec<(&str, std::borrow::Cow<'_, str>)> = Vec::new();
    let mut rest = tag.trim_start();
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].trim();
        let after = &rest[eq + 1..];
        let quote = after.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let close = after[1..].find(quote)? + 1;
        attrs.push((name, crate::wire::xml::unescape(&after[1..close])));
        rest = after[close + 1..].trim_start();
    }
    let get = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    };
    if get("mode")? != "notify" {
        return None;
    }
    let event = crate::policy::EventId::lookup(get("name")?.as_bytes())?;
    let packet = match get("packet") {
        None => None,
        Some(p) => Some(
            [
                crate::policy::PacketType::Message,
                crate::policy::PacketType::Iq,
                crate::policy::PacketType::Presence,
                crate::policy::PacketType::Subscription,
            ]
            .into_iter()
            .find(|t| t.as_str() == p)?,
        ),
    };
    let handling = match get("handling")? {
        "bounce" => crate::policy::Handling::Bounce,
        "pass" => crate::policy::Handling::Pass,
        _ => return None,
    };
    let key = get("key")?;
    let record = RecordRef {
        id: get("record")?,
        stamp: get("stamp")?,
        stable_key: crate::routing::stable_hash(key.as_bytes()),
        profile: get("profile")?,
        event,
        packet,
        handling,
        node: get("node")?,
        key,
        stanza,
    };
    Some(format::encode_payload(&record))
}

/// The `>` that ends the tag opening at `from`, outside quoted attribute values.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.get(from..)?.iter().enumerate() {
        match (quote, b) {
            (None, b'\'' | b'"') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(from + i),
            _ => {}
        }
    }
    None
}
