//! The events this shard owns: each one's state in a generational slot, the order events of one
//! conversation key leave in, their timers, their serial numbers, and the policy epoch each
//! walks under (with the earlier policies some event still needs).
//!
//! Keeps the invariants that tie these together: an event is in its key's FIFO from the moment
//! it is inserted until it is released from the head; its epoch's count covers it for exactly
//! that long; a timer or queue entry made before the slot's last bump no longer names it; and an
//! event whose spooled record was lost finishes as a bounce whatever its walk decided.
//!
//! Must not: know of servers, the spool's files, the wire or a clock (`now` is a parameter).

use super::counters::Terminal;
use super::deadlines::Deadlines;
use super::epochs::Epochs;
use super::order::KeyOrder;
use super::slots::{SlotRef, Slots};
use crate::policy::{CompiledPolicy, EventId, NodeId, PacketType, ProfileId, ServerId};
use crate::protocol::{BounceCause, EventBytes, InboundEvent, ReplyTo, Verdict};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An instant kept in 8 bytes: nanoseconds since the shard's base instant ([`Events::new`]).
/// An instant before the base counts as the base.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Tick(u64);

impl Tick {
    /// `t` as a tick of `base`.
    pub(super) fn of(base: Instant, t: Instant) -> Tick {
        let nanos = t.saturating_duration_since(base).as_nanos();
        Tick(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The instant again.
    pub(super) fn at(self, base: Instant) -> Instant {
        base + Duration::from_nanos(self.0)
    }
}

/// Buffers of released events kept for the next ones (see [`Events::recycle`]): at most this
/// many, each of at most [`SPARE_BYTES`] capacity, so at most 512 KiB per shard.
const SPARE_BUFFERS: usize = 256;
/// The largest buffer kept for reuse.
const SPARE_BYTES: usize = 2048;

/// The slot of the next event of the same key, in 4 bytes (`u32::MAX`: none; the slab never
/// holds that many slots).
#[derive(Copy, Clone, Debug)]
struct NextSameKey(u32);

impl NextSameKey {
    const NONE: NextSameKey = NextSameKey(u32::MAX);

    fn of(slot: u32) -> NextSameKey {
        NextSameKey(slot)
    }

    fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }
}

/// A finished event's verdict, kept small: the verdicts without bytes inline, the others (a
/// replacement stanza, a server's error) boxed, as they are rare and allocated anyway.
#[derive(Debug)]
pub(super) enum Kept {
    Pass,
    Handle,
    Drop,
    Timeout,
    Unavailable,
    SpoolFull,
    Boxed(Box<Verdict>),
}

impl Kept {
    fn of(verdict: Verdict) -> Kept {
        match verdict {
            Verdict::Pass(None) => Kept::Pass,
            Verdict::Handle => Kept::Handle,
            Verdict::Drop => Kept::Drop,
            Verdict::Bounce(BounceCause::Timeout) => Kept::Timeout,
            Verdict::Bounce(BounceCause::Unavailable) => Kept::Unavailable,
            Verdict::Bounce(BounceCause::SpoolFull) => Kept::SpoolFull,
            other => Kept::Boxed(Box::new(other)),
        }
    }

    fn into_verdict(self) -> Verdict {
        match self {
            Kept::Pass => Verdict::Pass(None),
            Kept::Handle => Verdict::Handle,
            Kept::Drop => Verdict::Drop,
            Kept::Timeout => Verdict::Bounce(BounceCause::Timeout),
            Kept::Unavailable => Verdict::Bounce(BounceCause::Unavailable),
            Kept::SpoolFull => Verdict::Bounce(BounceCause::SpoolFull),
            Kept::Boxed(v) => *v,
        }
    }
}

/// A router connection, as the runtime names it: its shard and its number there.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouterRef {
    /// The shard that holds the router's connection (verdicts go back there).
    pub shard: u16,
    /// The connection's number on that shard.
    pub conn: u32,
}

/// The profile (and server, if one answered) whose step decided an event's verdict.
pub(super) type Decider = Option<(ProfileId, Option<ServerId>)>;

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
        sent_at: Tick,
        /// The request's place in this shard's order for `server` (see `Queued`).
        seq: u64,
    },
    /// Walk over; waiting for earlier events of its key to leave.
    Done {
        verdict: Kept,
        terminal: Terminal,
        decider: Decider,
    },
}

/// One event in flight. Its fields change only through the transitions below.
#[derive(Debug)]
pub(super) struct EventState {
    event: EventId,
    packet: PacketType,
    node: NodeId,
    key_hash: u64,
    stable_key: u64,
    /// Its key, original stanza and reply address, in one buffer.
    bytes: EventBytes,
    /// The stanza a PASS replaced the original with (rare: boxed).
    replaced: Option<Box<Bytes>>,
    router: RouterRef,
    received_at: Tick,
    /// When it arrived, in milliseconds since the Unix epoch (its XEP-0082 stamp).
    stamp: u64,
    step: u16,
    /// The policy the event walks under: the one in force when it arrived (see `reload.rs`).
    epoch: u32,
    failed_open: bool,
    /// This shard's number for the event (record ids).
    serial: u64,
    /// The last spooled record its verdict waits for (0: none).
    hold: u64,
    /// A record it depended on could not be kept: it bounces (fail closed).
    spool_lost: bool,
    phase: Phase,
    /// The next event of the same key, for [`KeyOrder`].
    next_same_key: NextSameKey,
}

impl EventState {
    /// A new event read by a router at `received_at` (a tick of [`Events::base`]), stamped
    /// `stamp` (milliseconds since the Unix epoch). Its epoch and serial are given by
    /// [`Events::insert`].
    pub(super) fn new(
        ev: InboundEvent,
        key_hash: u64,
        router: RouterRef,
        received_at: Tick,
        stamp: u64,
    ) -> EventState {
        EventState {
            event: ev.event,
            packet: ev.packet,
            node: ev.node,
            stable_key: crate::routing::stable_hash(ev.key().as_bytes()),
            key_hash,
            bytes: ev.bytes,
            replaced: None,
            router,
            received_at,
            stamp,
            step: 0,
            epoch: 0,
            failed_open: false,
            serial: 0,
            hold: 0,
            spool_lost: false,
            phase: Phase::Walking,
            next_same_key: NextSameKey::NONE,
        }
    }

    // ---- what it is ----

    pub(super) fn event(&self) -> EventId {
        self.event
    }

    pub(super) fn packet(&self) -> PacketType {
        self.packet
    }

    pub(super) fn node(&self) -> NodeId {
        self.node
    }

    pub(super) fn key(&self) -> &str {
        self.bytes.key()
    }

    pub(super) fn key_hash(&self) -> u64 {
        self.key_hash
    }

    /// The key's stable hash: rendezvous scores and spool records use it.
    pub(super) fn stable_key(&self) -> u64 {
        self.stable_key
    }

    /// The stanza as the walk has it now (replaced by a PASS, or the original).
    pub(super) fn stanza(&self) -> &[u8] {
        match &self.replaced {
            Some(stanza) => stanza,
            None => self.bytes.stanza(),
        }
    }

    /// The stanza a PASS replaced the original with, if one did.
    pub(super) fn replaced(&self) -> Option<&Bytes> {
        self.replaced.as_deref()
    }

    pub(super) fn reply(&self) -> ReplyTo<'_> {
        self.bytes.reply()
    }

    pub(super) fn router(&self) -> RouterRef {
        self.router
    }

    /// When it arrived, as a tick of [`Events::base`].
    pub(super) fn received_at(&self) -> Tick {
        self.received_at
    }

    /// Its XEP-0082 stamp, as text.
    pub(super) fn stamp(&self) -> crate::protocol::stamp::Stamp {
        crate::protocol::stamp::Stamp::of_millis(self.stamp)
    }

    /// The index of its current step in its chain.
    pub(super) fn step(&self) -> u16 {
        self.step
    }

    pub(super) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// A step failed open on the way (the final pass is `failed_open`).
    pub(super) fn failed_open(&self) -> bool {
        self.failed_open
    }

    pub(super) fn serial(&self) -> u64 {
        self.serial
    }

    /// The last spooled record its verdict waits for (0: none).
    pub(super) fn hold(&self) -> u64 {
        self.hold
    }

    pub(super) fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The server it waits for, if it waits.
    pub(super) fn waiting_server(&self) -> Option<ServerId> {
        match self.phase {
            Phase::Waiting { server, .. } => Some(server),
            _ => None,
        }
    }

    // ---- transitions ----

    /// On to the next step.
    pub(super) fn next_step(&mut self) {
        self.step += 1;
        self.phase = Phase::Walking;
    }

    /// The step failed and its handling lets the event go on: on to the next step.
    pub(super) fn fail_open(&mut self) {
        self.failed_open = true;
        self.next_step();
    }

    /// A PASS with a modified stanza.
    pub(super) fn modify(&mut self, stanza: Bytes) {
        match &mut self.replaced {
            Some(old) => **old = stanza,
            None => self.replaced = Some(Box::new(stanza)),
        }
    }

    /// The step waits for `server`, its request `seq`th in the server's order, not sent yet.
    pub(super) fn wait_for(&mut self, server: ServerId, seq: u64, now: Tick) {
        self.phase = Phase::Waiting {
            server,
            link: None,
            sent_at: now,
            seq,
        };
    }

    /// Its request went out on shard `link`'s stream to `server` at `now`; returns its place
    /// in the server's order.
    pub(super) fn sent(&mut self, server: ServerId, link: u16, now: Tick) -> u64 {
        let seq = match self.phase {
            Phase::Waiting { seq, .. } => seq,
            _ => 0,
        };
        self.phase = Phase::Waiting {
            server,
            link: Some(link),
            sent_at: now,
            seq,
        };
        seq
    }

    /// Its request was not written after all (deferred, or its stream was lost): it waits in
    /// its server's queue again.
    pub(super) fn unsent(&mut self) {
        if let Phase::Waiting { link, .. } = &mut self.phase {
            *link = None;
        }
    }

    /// The walk is over. An event whose record was lost bounces whatever the walk decided.
    pub(super) fn finish(&mut self, verdict: Verdict, terminal: Terminal, decider: Decider) {
        let (verdict, terminal) = match self.spool_lost {
            true => (Verdict::Bounce(BounceCause::SpoolFull), Terminal::Bounce),
            false => (verdict, terminal),
        };
        self.phase = Phase::Done {
            verdict: Kept::of(verdict),
            terminal,
            decider,
        };
    }

    /// Its verdict waits until spooled record `seq` is durable.
    pub(super) fn hold_for(&mut self, seq: u64) {
        self.hold = self.hold.max(seq);
    }

    /// A record it depended on could not be kept: it bounces (fail closed), now if its walk is
    /// already over, else when it finishes.
    pub(super) fn lose_record(&mut self) {
        self.spool_lost = true;
        if let Phase::Done {
            verdict, terminal, ..
        } = &mut self.phase
        {
            *verdict = Kept::SpoolFull;
            *terminal = Terminal::Bounce;
        }
    }

    /// What a released event leaves with: its verdict, terminal state and decider, if its
    /// walk is over.
    fn into_done(mut self) -> Option<(EventState, Verdict, Terminal, Decider)> {
        match std::mem::replace(&mut self.phase, Phase::Walking) {
            Phase::Done {
                verdict,
                terminal,
                decider,
            } => Some((self, verdict.into_verdict(), terminal, decider)),
            _ => None,
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Events {
    /// The instant the shard's ticks count from.
    base: Instant,
    /// Buffers of released events, for the next events' bytes (bounded: [`SPARE_BUFFERS`]).
    spare: Vec<Vec<u8>>,
    slots: Slots<EventState>,
    order: KeyOrder,
    timers: Deadlines,
    /// The epoch of the policy new events walk under.
    epoch: u32,
    /// Events in flight per epoch, and the earlier policies they still need.
    epochs: Epochs,
    /// The last event serial given.
    serial: u64,
}

impl Events {
    /// No events yet; ticks count from `base`.
    pub(super) fn new(base: Instant) -> Events {
        Events {
            base,
            spare: Vec::new(),
            slots: Slots::default(),
            order: KeyOrder::default(),
            timers: Deadlines::default(),
            epoch: 0,
            epochs: Epochs::default(),
            serial: 0,
        }
    }

    /// The instant the shard's ticks count from.
    pub(super) fn base(&self) -> Instant {
        self.base
    }

    /// `t` as a tick.
    pub(super) fn tick(&self, t: Instant) -> Tick {
        Tick::of(self.base, t)
    }

    /// A buffer for the next event's bytes: one a released event left, or a new one.
    pub(super) fn spare_buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps a released event's buffer for a next event, unless enough are kept already or it
    /// is too large to be worth keeping.
    pub(super) fn recycle(&mut self, ev: EventState) {
        let buffer = ev.bytes.into_buffer();
        if self.spare.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_BYTES {
            self.spare.push(buffer);
        }
    }

    /// Takes a new event: it walks under the current epoch, gets the next serial, and goes to
    /// the back of its key's FIFO. Returns its slot.
    pub(super) fn insert(&mut self, mut ev: EventState) -> u32 {
        self.serial += 1;
        ev.serial = self.serial;
        ev.epoch = self.epoch;
        let key_hash = ev.key_hash;
        self.epochs.entered(self.epoch);
        let r = self.slots.insert(ev);
        if let Some(prev_tail) = self.order.push(key_hash, r.slot) {
            if let Some(prev) = self.slots.by_slot_mut(prev_tail) {
                prev.next_same_key = NextSameKey::of(r.slot);
            }
        }
        r.slot
    }

    /// The event in `slot`, whatever its generation.
    pub(super) fn by_slot(&self, slot: u32) -> Option<&EventState> {
        self.slots.by_slot(slot)
    }

    /// The event in `slot`, to move it on.
    pub(super) fn by_slot_mut(&mut self, slot: u32) -> Option<&mut EventState> {
        self.slots.by_slot_mut(slot)
    }

    /// The current reference of an occupied slot.
    pub(super) fn current(&self, slot: u32) -> Option<SlotRef> {
        self.slots.current(slot)
    }

    /// Stales every timer and queue entry made for `slot` so far; returns the new reference.
    pub(super) fn bump(&mut self, slot: u32) -> Option<SlotRef> {
        self.slots.bump(slot)
    }

    /// Events in flight.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Conversation keys with events in flight.
    pub(super) fn keys(&self) -> usize {
        self.order.keys()
    }

    /// Whether `r` still waits for `server` without having been sent (it sits in a queue).
    pub(super) fn queued_for(&self, r: SlotRef, server: ServerId) -> bool {
        matches!(
            self.slots.get(r).map(|e| &e.phase),
            Some(Phase::Waiting { server: s, link: None, .. }) if *s == server
        )
    }

    /// Whether `r` waits in some queue (not sent, its request still current).
    pub(super) fn queued(&self, r: SlotRef) -> bool {
        matches!(
            self.slots.get(r).map(|e| &e.phase),
            Some(Phase::Waiting { link: None, .. })
        )
    }

    /// Whether `r` waits for `server`'s answer to the request shard `link`'s stream carried.
    pub(super) fn sent_on(&self, r: SlotRef, server: ServerId, link: u16) -> bool {
        matches!(
            self.slots.get(r).map(|e| &e.phase),
            Some(Phase::Waiting { server: s, link: Some(l), .. }) if *s == server && *l == link
        )
    }

    /// When `r`'s request was written to `server`, if `r` still waits for its answer.
    pub(super) fn sent_at(&self, r: SlotRef, server: ServerId) -> Option<Instant> {
        match self.slots.get(r).map(|e| &e.phase) {
            Some(Phase::Waiting {
                server: s,
                link: Some(_),
                sent_at,
                ..
            }) if *s == server => Some(sent_at.at(self.base)),
            _ => None,
        }
    }

    /// The slots of every waiting event, in slot order.
    pub(super) fn waiting(&self) -> Vec<u32> {
        self.slots
            .occupied()
            .filter(|&s| {
                matches!(
                    self.slots.by_slot(s).map(|e| &e.phase),
                    Some(Phase::Waiting { .. })
                )
            })
            .collect()
    }

    /// The events whose requests went out on shard `link`'s stream to `server`, with their
    /// places in its order.
    pub(super) fn sent_on_link(&self, server: ServerId, link: u16) -> Vec<(u32, u64)> {
        self.slots
            .occupied()
            .filter_map(|slot| match self.slots.by_slot(slot)?.phase {
                Phase::Waiting {
                    server: s,
                    link: Some(l),
                    seq,
                    ..
                } if s == server && l == link => Some((slot, seq)),
                _ => None,
            })
            .collect()
    }

    // ---- timers ----

    /// Arms `r`'s timer for `now + timeout`, dropping a few stale timers first. `r` must not be
    /// waiting yet (it must not look stale to the trim).
    pub(super) fn arm_timer(&mut self, now: Instant, timeout: Duration, r: SlotRef) {
        let slots = &self.slots;
        self.timers.trim(|t| {
            t == r
                || slots
                    .get(t)
                    .is_some_and(|e| matches!(e.phase, Phase::Waiting { .. }))
        });
        self.timers.arm(now, timeout, r);
    }

    /// The next timer due at `now` whose event still waits.
    pub(super) fn pop_expired(&mut self, now: Instant) -> Option<Option<SlotRef>> {
        let r = self.timers.pop_due(now)?;
        let waiting = matches!(
            self.slots.get(r).map(|e| &e.phase),
            Some(Phase::Waiting { .. })
        );
        Some(waiting.then_some(r))
    }

    /// The earliest timer, live or stale.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    // ---- release ----

    /// Removes the head of `key_hash`'s FIFO if its walk is over and `ready` lets it go;
    /// returns it with its verdict, terminal state and decider.
    pub(super) fn release_head(
        &mut self,
        key_hash: u64,
        ready: impl Fn(&EventState) -> bool,
    ) -> Option<(EventState, Verdict, Terminal, Decider)> {
        let head = self.order.head(key_hash)?;
        let done = self
            .slots
            .by_slot(head)
            .is_some_and(|e| matches!(e.phase, Phase::Done { .. }) && ready(e));
        if !done {
            return None;
        }
        let ev = self.slots.remove(head)?;
        self.epochs.left(ev.epoch);
        self.order.pop(key_hash, ev.next_same_key.get());
        ev.into_done()
    }

    // ---- epochs ----

    /// The epoch new events walk under.
    pub(super) fn epoch(&self) -> u32 {
        self.epoch
    }

    /// A reload replaced `old`, the current policy: its events keep it until they leave, and
    /// new events walk under the next epoch.
    pub(super) fn new_epoch(&mut self, old: Arc<CompiledPolicy>) {
        self.epochs.retire(self.epoch, old);
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// The policy of an earlier epoch some event still walks under.
    pub(super) fn earlier_policy(&self, epoch: u32) -> Option<&CompiledPolicy> {
        self.epochs.policy(epoch)
    }

    /// Earlier policies still held for events in flight.
    pub(super) fn policies_held(&self) -> usize {
        self.epochs.held()
    }
}
