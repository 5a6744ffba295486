//! The router legs' decisions: which stream names are accepted, what a router's stanza is (an
//! event to route to its owner shard, a request to answer, or something to refuse), the trust
//! rule (events only from the router's host JID), and who asked for the chains (told again
//! after a reload).

use super::{
    ConnId, ConnectionEvent, Gateway, Leg, Level, Now, Output, PeerMessage, StreamCommand,
};
use crate::policy::NodeId;
use crate::protocol::event::is_event;
use crate::protocol::{
    is_host_jid, parse_event_into, service, write_bad_request, write_forbidden, InboundEvent, Reply,
};
use crate::routing::owner_shard;
use crate::wire::{Condition, Stanza};
use bytes::BytesMut;

/// A bound on the hosts one router stream may register for pushes (a server has a few:
/// its VirtualHosts and MUC components).
const MAX_CHAIN_ASKERS: usize = 64;

/// One router connection.
#[derive(Debug)]
pub(super) struct RouterLeg {
    /// The router's name when we dialed it (its stream NAME is ours then).
    outbound: Option<String>,
    /// The name its stream header announced (inbound).
    announced: Option<String>,
    /// Set once the stream is active.
    entry: Option<RouterEntry>,
}

/// An active router connection.
#[derive(Debug)]
pub(super) struct RouterEntry {
    pub(super) name: String,
    pub(super) node: NodeId,
    /// Who asked this stream which events to send (host JID, disco node), to be told again
    /// after a reload.
    pub(super) chain_askers: Vec<(String, String)>,
}

impl RouterLeg {
    pub(super) fn new(outbound: Option<String>) -> RouterLeg {
        RouterLeg {
            outbound,
            announced: None,
            entry: None,
        }
    }

    pub(super) fn entry(&self) -> Option<&RouterEntry> {
        self.entry.as_ref()
    }

    pub(super) fn entry_mut(&mut self) -> Option<&mut RouterEntry> {
        self.entry.as_mut()
    }
}

impl Gateway {
    fn router_leg(&mut self, conn: ConnId) -> Option<&mut RouterLeg> {
        match self.conns.get_mut(&conn.0).map(|c| &mut c.leg) {
            Some(Leg::Router(r)) => Some(r),
            _ => None,
        }
    }

    pub(super) fn router_event(&mut self, conn: ConnId, event: ConnectionEvent) {
        match event {
            ConnectionEvent::NameAnnounced { name } => {
                let secret = self
                    .config
                    .routers
                    .iter()
                    .find(|r| r.name == name)
                    .map(|r| r.secret.as_bytes().to_vec());
                match secret {
                    Some(secret) => {
                        if let Some(leg) = self.router_leg(conn) {
                            leg.announced = Some(name);
                        }
                        self.out(Output::Stream {
                            conn,
                            command: StreamCommand::AcceptName { secret },
                        });
                    }
                    None => {
                        self.log(
                            Level::Warn,
                            format!("Refused a router stream for unknown name '{name}'"),
                        );
                        self.out(Output::Stream {
                            conn,
                            command: StreamCommand::Refuse {
                                condition: Condition::HostUnknown,
                                reason: "no router of that name",
                            },
                        });
                    }
                }
            }
            ConnectionEvent::Active => {
                let Some(leg) = self.router_leg(conn) else {
                    return;
                };
                let name = leg
                    .outbound
                    .clone()
                    .or_else(|| leg.announced.clone())
                    .unwrap_or_default();
                let node = self.node_of(&name);
                let from = self.config.gateway.name.clone();
                self.out(Output::Stream {
                    conn,
                    command: StreamCommand::EnablePings {
                        from,
                        to: name.clone(),
                    },
                });
                self.log(Level::Info, format!("Router {name} is ACTIVE"));
                if let Some(leg) = self.router_leg(conn) {
                    leg.entry = Some(RouterEntry {
                        name,
                        node,
                        chain_askers: Vec::new(),
                    });
                }
            }
            ConnectionEvent::Ended(closed) => {
                if let Some(c) = self.conns.remove(&conn.0) {
                    if let Leg::Router(RouterLeg {
                        entry: Some(entry), ..
                    }) = c.leg
                    {
                        self.log(
                            Level::Info,
                            format!(
                                "Router {} ({}) disconnected: {closed:?}",
                                entry.name, c.peer
                            ),
                        );
                    }
                }
            }
            ConnectionEvent::Drained => {}
        }
    }

    pub(super) fn router_stanza(&mut self, conn: ConnId, stanza: &Stanza, now: Now) {
        // Events are iq sets; only other stanzas need the (rarer) question of what they are.
        let set = stanza.name() == b"iq" && stanza.raw(stanza.attrs().type_) == Some(b"set");
        if !set && !is_event(stanza) {
            return self.router_service(conn, stanza);
        }
        let Some(reply) = Reply::of(stanza) else {
            // An event without an id cannot be answered; the stream's checks ensured a from.
            self.counters.bad_requests += 1;
            return;
        };
        // Only the router itself produces events: a user's (or a resource's) iq is refused
        // before it is read, judged or sent anywhere. The sender's address is the cheaper
        // question, and for the router's own events the only one asked.
        if !is_host_jid(&reply.to) && is_event(stanza) {
            self.counters.forbidden_events += 1;
            let mut out = BytesMut::new();
            write_forbidden(
                &mut out,
                &self.config.gateway.name,
                &reply,
                "events are accepted only from the router's own host JID",
            );
            // Bounded by the router's reads pausing past its output limit.
            self.out(Output::Write {
                conn,
                bytes: out.freeze(),
            });
            return;
        }
        let router_node = self.conns.get(&conn.0).and_then(|c| match &c.leg {
            Leg::Router(r) => r.entry().map(|e| e.node),
            Leg::Server(_) => None,
        });
        let policy = &self.policy;
        let buffer = self.engine.spare_buffer();
        let node_of = |node: Option<&str>| match node {
            Some(n) => policy.node_id(n.as_bytes()),
            None => router_node.unwrap_or_else(|| policy.unknown_node()),
        };
        let parsed = parse_event_into(stanza, &reply, node_of, buffer);
        match parsed {
            Ok(ev) => self.route_event(ev, conn, now),
            // An iq set with some other payload is a request we do not serve, not a bad event.
            Err(crate::protocol::BadEvent::NoEventElement) if !is_event(stanza) => {
                self.router_service(conn, stanza)
            }
            Err(bad) => {
                self.counters.bad_requests += 1;
                let mut out = BytesMut::new();
                write_bad_request(
                    &mut out,
                    &self.config.gateway.name,
                    &reply,
                    &bad.to_string(),
                );
                // Bounded by the router's reads pausing past its output limit.
                self.out(Output::Write {
                    conn,
                    bytes: out.freeze(),
                });
            }
        }
    }

    /// Sends an event read on this shard to its owner.
    fn route_event(&mut self, ev: InboundEvent, conn: ConnId, now: Now) {
        let router = self.router_ref(conn);
        let key_hash = self.hasher.hash(ev.key());
        let owner = owner_shard(key_hash, usize::from(self.shards));
        if owner == usize::from(self.id) {
            self.engine
                .handle_event(ev, key_hash, router, now.at, now.wall);
        } else {
            self.send_to_shard(
                owner as u16,
                PeerMessage::Event {
                    ev,
                    key_hash,
                    router,
                    received: now.at,
                },
            );
        }
    }

    /// Pings, disco (with the chains this router must send) and requests we do not serve.
    fn router_service(&mut self, conn: ConnId, stanza: &Stanza) {
        let mut out = BytesMut::new();
        let node = self.conns.get(&conn.0).and_then(|c| match &c.leg {
            Leg::Router(r) => r.entry().map(|e| e.node),
            Leg::Server(_) => None,
        });
        let chains = node.map(|own| service::ChainsAnswer {
            policy: &self.policy,
            own,
            limits: &self.config.limits,
        });
        let outcome = service::answer_router(&mut out, &self.config.gateway.name, stanza, chains);
        if outcome == service::ServiceOutcome::Ignored {
            return;
        }
        self.counters.service_requests += 1;
        // Bounded by the router's reads pausing past its output limit.
        self.out(Output::Write {
            conn,
            bytes: out.freeze(),
        });
        if outcome == service::ServiceOutcome::Chains {
            self.remember_asker(conn, stanza);
        }
    }

    /// Keeps who asked for the chains (a host JID only: a user cannot subscribe to pushes),
    /// and on which disco node, so a reload can tell it to ask again.
    fn remember_asker(&mut self, conn: ConnId, stanza: &Stanza) {
        let from = stanza
            .raw(stanza.attrs().from)
            .map(|f| String::from_utf8_lossy(f).into_owned());
        let node = stanza
            .children()
            .next()
            .and_then(|q| stanza.element_attr(q, "node"))
            .map(|n| n.into_owned());
        let (Some(from), Some(node)) = (from, node) else {
            return;
        };
        if !is_host_jid(from.as_bytes()) {
            return;
        }
        if let Some(r) = self.router_leg(conn).and_then(RouterLeg::entry_mut) {
            let asker = (from, node);
            if !r.chain_askers.contains(&asker) && r.chain_askers.len() < MAX_CHAIN_ASKERS {
                r.chain_askers.push(asker);
            }
        }
    }

    /// After a reload: tells every host that asked which events to send that the chains
    /// changed.
    pub(super) fn push_chains_changed(&mut self) {
        let gateway = self.config.gateway.name.clone();
        let mut writes = Vec::new();
        for (id, c) in &self.conns {
            let Leg::Router(r) = &c.leg else { continue };
            let Some(entry) = r.entry() else { continue };
            for (to, node) in &entry.chain_askers {
                let mut out = BytesMut::new();
                service::write_chains_changed(&mut out, &gateway, to, node);
                // One small stanza per asker (at most MAX_CHAIN_ASKERS) per reload.
                writes.push(Output::Write {
                    conn: ConnId(*id),
                    bytes: out.freeze(),
                });
            }
        }
        self.outputs.extend(writes);
    }
}
