//! Read holds, the flow control of what the shard reads: whether a connection's reader reads
//! on after a read ([`ReadHold`]), whether an event from another shard waits before the
//! engine takes it, and when those waiting may look again ([`Room`]).
//!
//! A router's output (verdicts, `bad-request`s, service answers) is never refused, so its reads
//! stop once more than `stream_buffer_bytes` are unwritten, until the router has read half of
//! it; and they stop while this shard's engine or outbox holds `max_in_flight`, until both are
//! back at half of it. A compliance stream's requests are refused (deferred) past the output
//! limit; only service answers (to the server's pings) are pushed whatever is unwritten, so a
//! server that pings and never reads stops being read until it does.
//!
//! The overshoot past a router's limit is bounded: what one read (64 KiB of stanzas) produces
//! before the reader is asked again, and the verdicts of events already read from this router
//! and in flight on some shard (at most `max_in_flight` per shard: past it, this shard's reads
//! and the mesh hand-off of events pause). While reads are paused no new event comes from
//! this router, so that second share can only shrink. Nothing is refused or dropped.
//!
//! Owns the decisions and their counts; the runtime measures (unwritten bytes, the outbox's
//! length) and waits. Must not: wait, or know what a socket is.

use super::{ConnId, Gateway, Leg};

/// What a connection's reader does after a read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadHold {
    /// Read on.
    Read,
    /// Wait until the connection's own output has drained to this many bytes.
    UntilDrained(usize),
    /// Wait for the shard's own limits (its events in flight, its outbox) to be back at their
    /// low watermark ([`Room::EventsAndReads`]), or for this connection's output to end.
    UntilRoom,
}

/// Who, of those waiting for the shard's room, may look again.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Room {
    /// Nobody yet: the events in flight are above the low watermark.
    None,
    /// Mesh consumers holding an event: the events in flight are back at the low watermark,
    /// the outbox is not.
    Events,
    /// Those and the readers held with [`ReadHold::UntilRoom`]: both are back at it.
    EventsAndReads,
}

impl Gateway {
    /// Whether connection `conn`'s reader reads on, with `unwritten` bytes of its output not
    /// yet written and this shard's longest outbox at `outbox()` messages (asked only for a
    /// router whose output has room). Each pause is counted ([`super::GatewayCounters`]).
    pub fn poll_read_hold(
        &mut self,
        conn: ConnId,
        unwritten: usize,
        outbox: impl FnOnce() -> usize,
    ) -> ReadHold {
        let router = match self.conns.get(&conn.0).map(|c| &c.leg) {
            Some(Leg::Router(_)) => true,
            Some(Leg::Server(_)) => false,
            None => return ReadHold::Read,
        };
        let limit = self.config.limits.stream_buffer_bytes;
        if unwritten > limit {
            match router {
                true => self.counters.router_output_pauses += 1,
                false => self.counters.server_output_pauses += 1,
            }
            return ReadHold::UntilDrained(limit / 2);
        }
        if router {
            let max = self.config.limits.max_in_flight;
            if self.engine.in_flight() >= max || outbox() >= max {
                self.counters.read_pauses += 1;
                return ReadHold::UntilRoom;
            }
        }
        ReadHold::Read
    }

    /// Whether an event that came from another shard waits before this shard's engine takes
    /// it (its events in flight are at `max_in_flight`; never once shutting down). The
    /// sender's outbox grows meanwhile, and its router reads pause.
    pub fn holds_peer_events(&self) -> bool {
        !self.shutting_down && self.engine.in_flight() >= self.config.limits.max_in_flight
    }

    /// The output a compliance stream must drain to before an engine waiting for its room
    /// hears of it (half of `stream_buffer_bytes`).
    pub fn link_low_water(&self) -> usize {
        self.config.limits.stream_buffer_bytes / 2
    }

    /// Who may look again, with this shard's longest outbox at `outbox()` messages (asked only
    /// once the events in flight are low): the low watermark is half of `max_in_flight`.
    pub fn room(&self, outbox: impl FnOnce() -> usize) -> Room {
        let low = self.config.limits.max_in_flight / 2;
        if self.engine.in_flight() > low {
            return Room::None;
        }
        match outbox() <= low {
            true => Room::EventsAndReads,
            false => Room::Events,
        }
    }
}
