//! The compliance legs' decisions: which inbound stream is admitted (a known inbound server
//! with streams to spare), which stream is this shard's link to a server, what every shard
//! hears when it comes or goes, where an answer goes, and the flow control of each link
//! towards every shard's engine.
//!
//! A link refuses an offer once its output is past `stream_buffer_bytes`, and then refuses
//! every later offer of that engine until the engine asked for room and got it: offers already
//! on their way when the first was refused come back deferred too, in order, and the `Room`
//! reply follows them on the same channel, so the engine has every deferred request back in
//! its queue before it releases any of them again (no request of a key overtakes an earlier
//! one).

use super::{
    ConnId, ConnectionEvent, Gateway, Leg, Level, Offer, Output, PeerMessage, StreamCommand,
};
use crate::engine::{Closing, LinkChange, Outgoing};
use crate::policy::{ServerId, ServerMode};
use crate::protocol::{parse_answer, service, AnswerError, ParsedAnswer};
use crate::wire::{Closed, Condition, Stanza};
use bytes::{Bytes, BytesMut};
use std::time::Instant;

/// Where one shard's engine stands with one of this shard's links.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum PeerFlow {
    /// Offers are made while there is room.
    Open,
    /// An offer was refused; every further one is, until the engine asks for room.
    Refused,
    /// The engine asked for room (`WantRoom`): it gets `Room` once the output drained.
    Waiting,
}

/// Flow control of one link towards every shard's engine.
#[derive(Debug)]
struct LinkFlow {
    conn: ConnId,
    peers: Vec<PeerFlow>,
}

/// One compliance connection.
#[derive(Debug)]
pub(super) struct ServerLeg {
    /// The server it serves and the link generation when it was dialed or admitted.
    server: Option<(ServerId, u32)>,
    /// We dialed it.
    outbound: bool,
    /// It became this shard's link.
    active: bool,
    /// The component it was dialed for (for the log when it never became active).
    component: Option<String>,
}

impl ServerLeg {
    pub(super) fn inbound() -> ServerLeg {
        ServerLeg {
            server: None,
            outbound: false,
            active: false,
            component: None,
        }
    }

    pub(super) fn outbound(
        server: ServerId,
        generation: u32,
        component: Option<String>,
    ) -> ServerLeg {
        ServerLeg {
            server: Some((server, generation)),
            outbound: true,
            active: false,
            component,
        }
    }

    pub(super) fn server(&self) -> Option<ServerId> {
        self.server.map(|(s, _)| s)
    }
}

/// This shard's link to each server, and its flow control.
#[derive(Debug)]
pub(super) struct Links {
    /// This shard's active stream to each server.
    active: Vec<Option<ConnId>>,
    /// Flow control of those streams, by server.
    flows: Vec<Option<LinkFlow>>,
    /// Per server, the generation of its streams on this shard: a reload that changes or
    /// removes a server bumps it, and dialers and streams of an older generation stand down.
    generations: Vec<u32>,
}

impl Links {
    pub(super) fn new(servers: usize) -> Links {
        Links {
            active: vec![None; servers],
            flows: Vec::new(),
            generations: vec![0; servers],
        }
    }

    pub(super) fn grow(&mut self, servers: usize) {
        if self.active.len() < servers {
            self.active.resize(servers, None);
        }
        if self.generations.len() < servers {
            self.generations.resize(servers, 0);
        }
    }

    pub(super) fn get(&self, server: ServerId) -> Option<ConnId> {
        self.active.get(server.index()).copied().flatten()
    }

    pub(super) fn take(&mut self, server: ServerId) -> Option<ConnId> {
        self.active.get_mut(server.index()).and_then(Option::take)
    }

    /// Clears `server`'s link if it is `conn`.
    pub(super) fn clear(&mut self, server: ServerId, conn: ConnId) {
        if let Some(slot) = self.active.get_mut(server.index()) {
            if *slot == Some(conn) {
                *slot = None;
            }
        }
    }

    pub(super) fn active(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.active.iter().flatten().copied()
    }

    pub(super) fn generation(&self, server: ServerId) -> u32 {
        self.generations.get(server.index()).copied().unwrap_or(0)
    }

    pub(super) fn bump_generation(&mut self, server: ServerId) {
        if let Some(g) = self.generations.get_mut(server.index()) {
            *g = g.wrapping_add(1);
        }
    }

    /// The flow of `conn` towards shard `from`'s engine, if `conn` is `server`'s link in
    /// service.
    fn peer_mut(&mut self, server: ServerId, conn: ConnId, from: u16) -> Option<&mut PeerFlow> {
        self.flows
            .get_mut(server.index())
            .and_then(Option::as_mut)
            .filter(|f| f.conn == conn)
            .and_then(|f| f.peers.get_mut(usize::from(from)))
    }

    /// `conn` refused an offer of shard `from`'s engine.
    pub(super) fn refused(&mut self, server: ServerId, conn: ConnId, from: u16) {
        if let Some(p) = self.peer_mut(server, conn, from) {
            *p = PeerFlow::Refused;
        }
    }
}

impl Gateway {
    fn server_leg(&mut self, conn: ConnId) -> Option<&mut ServerLeg> {
        match self.conns.get_mut(&conn.0).map(|c| &mut c.leg) {
            Some(Leg::Server(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether a dialer or stream of `generation` still serves `server` (no reload replaced
    /// it).
    pub fn link_current(&self, server: ServerId, generation: u32) -> bool {
        self.links.generation(server) == generation
    }

    /// The generation of the outbound leg to the router named `name`.
    pub fn router_generation(&self, name: &str) -> u32 {
        self.router_generations.get(name).copied().unwrap_or(0)
    }

    /// Whether this shard holds an active stream to the `index`th server.
    pub fn has_link(&self, index: usize) -> bool {
        self.links.get(ServerId(index as u16)).is_some()
    }

    /// Whether `conn` became this shard's link to its server (an outbound stream that did is
    /// redialed at once when it ends, one that did not after a backoff).
    pub fn became_link(&self, conn: ConnId) -> bool {
        matches!(
            self.conns.get(&conn.0).map(|c| &c.leg),
            Some(Leg::Server(ServerLeg { active: true, .. }))
        )
    }

    /// Whether an engine waits for room on `conn`, this shard's stream to `server`; `None`
    /// once that stream is no longer the one in service (its watch ends).
    pub fn room_wanted(&self, server: ServerId, conn: ConnId) -> Option<bool> {
        let flow = self
            .links
            .flows
            .get(server.index())
            .and_then(Option::as_ref)
            .filter(|f| f.conn == conn)?;
        Some(flow.peers.contains(&PeerFlow::Waiting))
    }

    pub(super) fn server_event(&mut self, conn: ConnId, event: ConnectionEvent, now: Instant) {
        match event {
            ConnectionEvent::NameAnnounced { name } => {
                let inbound = self.server_leg(conn).is_some_and(|l| !l.outbound);
                if inbound {
                    let admitted = self.admit_inbound(conn, &name);
                    let server = admitted.map(|id| (id, self.links.generation(id)));
                    if let Some(leg) = self.server_leg(conn) {
                        leg.server = server;
                    }
                }
            }
            ConnectionEvent::Active => self.link_active(conn, now),
            ConnectionEvent::Drained => {
                if let Some(server) = self.server_leg(conn).and_then(|l| l.server()) {
                    self.grant_room(server, conn, now);
                }
            }
            ConnectionEvent::Ended(closed) => self.link_ended(conn, &closed, now),
        }
    }

    /// Finds the inbound server announcing `name` and accepts it, unless it is unknown or
    /// already has all the streams it may have (`conflict`).
    fn admit_inbound(&mut self, conn: ConnId, name: &str) -> Option<ServerId> {
        let found = self.policy.servers().iter().position(|s| {
            s.mode == ServerMode::Inbound && !s.retired && s.component.eq_ignore_ascii_case(name)
        });
        let Some(index) = found else {
            self.log(
                Level::Warn,
                format!("Refused a compliance stream for unknown component '{name}'"),
            );
            self.out(Output::Stream {
                conn,
                command: StreamCommand::Refuse {
                    condition: Condition::HostUnknown,
                    reason: "no inbound compliance server of that name",
                },
            });
            return None;
        };
        let id = ServerId(index as u16);
        let info = &self.policy.servers()[index];
        let allowed = info.connections.unwrap_or(usize::from(self.shards));
        let here = self.links.get(id).is_some();
        let everywhere = self
            .engine
            .servers()
            .get(index)
            .map_or(0, |s| s.active_links());
        if here || everywhere >= allowed {
            self.log(
                Level::Warn,
                format!("Refused a second stream for component '{name}'"),
            );
            self.out(Output::Stream {
                conn,
                command: StreamCommand::Refuse {
                    condition: Condition::Conflict,
                    reason: "this component already has its streams",
                },
            });
            return None;
        }
        let secret = info.password.as_bytes().to_vec();
        self.out(Output::Stream {
            conn,
            command: StreamCommand::AcceptName { secret },
        });
        Some(id)
    }

    fn link_active(&mut self, conn: ConnId, now: Instant) {
        let Some((server, generation)) = self.server_leg(conn).and_then(|l| l.server) else {
            return;
        };
        if !self.link_current(server, generation) {
            // A reload changed or removed the server while this stream was opening.
            self.out(Output::Close { conn });
            return;
        }
        let component = self
            .policy
            .server(server)
            .map_or_else(|| "?".to_owned(), |s| s.component.clone());
        self.log(Level::Info, format!("Component {component} is ACTIVE"));
        let from = self.config.gateway.name.clone();
        self.out(Output::Stream {
            conn,
            command: StreamCommand::EnablePings {
                from,
                to: component,
            },
        });
        if let Some(leg) = self.server_leg(conn) {
            leg.active = true;
        }
        if let Some(slot) = self.links.active.get_mut(server.index()) {
            *slot = Some(conn);
        }
        self.open_link_flow(server, conn);
        self.link_changed(server, LinkChange::Up, now);
    }

    /// Starts flow control for a new link `conn` to `server`; the stream it replaces (if any)
    /// stops being watched.
    fn open_link_flow(&mut self, server: ServerId, conn: ConnId) {
        let flows = &mut self.links.flows;
        if flows.len() <= server.index() {
            flows.resize_with(server.index() + 1, || None);
        }
        let old = flows[server.index()].replace(LinkFlow {
            conn,
            peers: vec![PeerFlow::Open; usize::from(self.shards)],
        });
        if let Some(old) = old {
            self.out(Output::WakeRoom { conn: old.conn });
        }
        self.out(Output::WatchRoom { conn, server });
    }

    /// `conn` to `server` ended: its watch ends.
    fn close_link_flow(&mut self, server: ServerId, conn: ConnId) {
        if let Some(slot) = self.links.flows.get_mut(server.index()) {
            if slot.as_ref().is_some_and(|f| f.conn == conn) {
                *slot = None;
                self.out(Output::WakeRoom { conn });
            }
        }
    }

    fn link_ended(&mut self, conn: ConnId, closed: &Closed, now: Instant) {
        let Some(c) = self.conns.remove(&conn.0) else {
            return;
        };
        let Leg::Server(leg) = c.leg else {
            return;
        };
        if let Some((server, generation)) = leg.server {
            self.close_link_flow(server, conn);
            self.lost(server, generation, conn, leg.active, closed, now);
        }
        if leg.outbound && !leg.active {
            let component = leg.component.or_else(|| {
                leg.server
                    .and_then(|(s, _)| self.policy.server(s))
                    .map(|s| s.component.clone())
            });
            let component = component.unwrap_or_else(|| "?".to_owned());
            self.log(
                Level::Warn,
                format!("Component {component} is GONE ({closed:?})"),
            );
        }
    }

    /// A stream that was active went away. One a reload replaced was already reported lost
    /// then (and its slot may hold its successor): nothing more to do for it.
    fn lost(
        &mut self,
        server: ServerId,
        generation: u32,
        conn: ConnId,
        was_active: bool,
        closed: &Closed,
        now: Instant,
    ) {
        if !was_active || !self.link_current(server, generation) {
            return;
        }
        self.links.clear(server, conn);
        let component = self
            .policy
            .server(server)
            .map_or_else(|| "?".to_owned(), |s| s.component.clone());
        let (how, closing) = if closed.is_graceful() {
            ("gracefully", Closing::Graceful)
        } else {
            ("ungracefully", Closing::Abrupt)
        };
        self.log(
            Level::Warn,
            format!("Component {component} is GONE ({how}: {closed:?})"),
        );
        self.link_changed(server, LinkChange::Down(closing), now);
    }

    pub(super) fn server_stanza(
        &mut self,
        conn: ConnId,
        server: ServerId,
        stanza: &Stanza,
        now: Instant,
    ) {
        match parse_answer(stanza) {
            Ok(answer) => self.route_answer(server, answer, now),
            Err(AnswerError::UnknownId) => self.counters.unknown_answers += 1,
            Err(AnswerError::NotAnAnswer) => {
                let mut out = BytesMut::new();
                if service::answer(&mut out, &self.config.gateway.name, stanza)
                    != service::ServiceOutcome::Ignored
                {
                    self.counters.service_requests += 1;
                    // Bounded by the stream's reads pausing past its output limit.
                    self.out(Output::Write {
                        conn,
                        bytes: out.freeze(),
                    });
                }
            }
        }
    }

    /// Sends an answer read on this shard to the shard that owns its event.
    fn route_answer(&mut self, server: ServerId, answer: ParsedAnswer, now: Instant) {
        let owner = answer.id.shard;
        if owner == self.id {
            self.engine.handle_answer(server, answer, now);
        } else if owner < self.shards {
            self.send_to_shard(owner, PeerMessage::Answer { server, answer });
        } else {
            self.counters.unknown_answers += 1;
        }
    }

    /// Offers a send of shard `from`'s engine to this shard's link to `server`, unless there
    /// is none or it still refuses that engine; then the send is deferred at once.
    pub(super) fn offer(&mut self, server: ServerId, from: u16, request: Outgoing, bytes: Bytes) {
        let Some(conn) = self.links.get(server) else {
            return self.deferred(server, from, request, bytes, self.engine.now());
        };
        if self
            .links
            .peer_mut(server, conn, from)
            .is_some_and(|p| *p != PeerFlow::Open)
        {
            return self.deferred(server, from, request, bytes, self.engine.now());
        }
        let limit = self.config.limits.stream_buffer_bytes;
        self.out(Output::Offer(Offer {
            conn,
            server,
            from,
            request,
            bytes,
            limit,
        }));
    }

    /// A send of shard `from`'s engine could not be written on this shard's link: back to
    /// that engine.
    pub(super) fn deferred(
        &mut self,
        server: ServerId,
        from: u16,
        request: Outgoing,
        bytes: Bytes,
        now: Instant,
    ) {
        if from == self.id {
            self.engine
                .handle_send_deferred(server, self.id, request, bytes, now);
        } else {
            let link = self.id;
            self.send_to_shard(
                from,
                PeerMessage::SendDeferred {
                    server,
                    link,
                    request,
                    bytes,
                },
            );
        }
    }

    /// Shard `from`'s engine waits for room on this shard's link to `server`. A link that is
    /// gone gives none: its loss reaches every engine instead.
    pub(super) fn want_room(&mut self, server: ServerId, from: u16) {
        let Some(flow) = self
            .links
            .flows
            .get_mut(server.index())
            .and_then(Option::as_mut)
        else {
            return;
        };
        if let Some(p) = flow.peers.get_mut(usize::from(from)) {
            *p = PeerFlow::Waiting;
        }
        let conn = flow.conn;
        self.out(Output::WakeRoom { conn });
    }

    /// `conn` to `server` drained below its low watermark: every engine waiting for room gets
    /// it (its deferred sends reached it before this, on the same channel).
    fn grant_room(&mut self, server: ServerId, conn: ConnId, now: Instant) {
        let Some(flow) = self
            .links
            .flows
            .get_mut(server.index())
            .and_then(Option::as_mut)
            .filter(|f| f.conn == conn)
        else {
            return;
        };
        let mut granted = Vec::new();
        for (peer, p) in flow.peers.iter_mut().enumerate() {
            if *p == PeerFlow::Waiting {
                *p = PeerFlow::Open;
                granted.push(peer as u16);
            }
        }
        for peer in granted {
            if peer == self.id {
                self.engine.handle_link_room(server, self.id, now);
            } else {
                let link = self.id;
                self.send_to_shard(peer, PeerMessage::Room { server, link });
            }
        }
    }
}
