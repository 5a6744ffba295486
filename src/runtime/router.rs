//! Router connections: the inbound leg (a router dials the gateway's router port and proves its
//! secret) and the outbound leg (the gateway dials an XMPP server's component port as an
//! ordinary external component). Either way, stanzas are events to route, or plain requests
//! (ping, disco) to answer; verdicts come back through the shard's router table.

use super::accept::Slot;
use super::conn::{self, ConnRef};
use super::log::Level;
use super::shard::{RouterConn, ShardCtx};
use super::tls::{self, Transport};
use crate::engine::RouterRef;
use crate::policy::{Config, RouterConfig};
use crate::protocol::event::is_event;
use crate::protocol::{
    is_host_jid, parse_event, service, write_bad_request, write_forbidden, Reply,
};
use crate::wire::{Closed, ComponentStream, Condition, FromCheck, Stanza, StreamEvent};
use bytes::BytesMut;
use glommio::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Serves one accepted router connection until it closes; `slot` counts it against its
/// listener's caps until then.
pub async fn serve_inbound(
    ctx: Rc<ShardCtx>,
    mut tcp: TcpStream,
    transport: Transport,
    slot: Slot,
) {
    let peer = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let Some(stream) = ctx.receiver_stream("a router connection") else {
        return;
    };
    let who = format!("the router connection from {peer}");
    let Some(conn) = tls::accepted(&ctx, &mut tcp, transport, stream, &who).await else {
        return;
    };
    let this = conn.clone();
    let id = ctx.next_conn_id();
    let label = conn::Label {
        shard: ctx.id,
        name: format!("router connection {id} from {peer}"),
    };
    let ctx2 = ctx.clone();
    let closed = conn::drive(
        tcp,
        conn,
        &label,
        move |conn, event, now| {
            if matches!(event, StreamEvent::Active) {
                slot.authenticated();
            }
            on_event(&ctx2, id, conn, event, now, None)
        },
        |conn| ctx.router_hold(conn),
        &ctx.wakes.reads,
    )
    .await;
    tls::ended(&ctx, &this, &who);
    finish(&ctx, id, &peer, &closed);
}

/// Keeps a connection to an XMPP server's component port (`[[router]] connect`), redialing
/// with backoff, until shutdown or until a reload replaces `generation`.
pub async fn dial_outbound(ctx: Rc<ShardCtx>, router: RouterConfig, addr: String, generation: u32) {
    let mut backoff = ctx.config().timers.reconnect_min;
    let current = |ctx: &ShardCtx| {
        !ctx.shutting_down.get() && ctx.router_generation(&router.name) == generation
    };
    while current(&ctx) {
        // glommio's connect, bounded like the compliance dialer's (an io_uring link timeout).
        let timeout = ctx
            .config()
            .timers
            .handshake_timeout
            .max(Duration::from_millis(1));
        let connected = TcpStream::connect_timeout(addr.as_str(), timeout).await;
        if !current(&ctx) {
            break;
        }
        match connected {
            Ok(mut tcp) => {
                ctx.log(
                    Level::Info,
                    &format!("Connected to router {} at {addr}", router.name),
                );
                let gateway = ctx.config().gateway.name.clone();
                let mut stream = ComponentStream::initiator(
                    ctx.stream_config(),
                    &gateway,
                    router.secret.as_bytes(),
                    crate::wire::stream::NS_ACCEPT,
                    FromCheck::PeerDomainOrSubdomain,
                    Instant::now(),
                );
                stream.expect_peer(&router.name);
                let who = format!("router {} at {addr}", router.name);
                let material = ctx.tls();
                let dial = material.router_dial(&router.name);
                let Ok(conn) = tls::dialed(&ctx, &mut tcp, dial, stream, &who).await else {
                    glommio::timer::sleep(super::backoff::jittered(backoff)).await;
                    backoff = (backoff * 2).min(ctx.config().timers.reconnect_max);
                    continue;
                };
                let this = conn.clone();
                let id = ctx.next_conn_id();
                let label = conn::Label {
                    shard: ctx.id,
                    name: format!("router {} connection {id} at {addr}", router.name),
                };
                let ctx2 = ctx.clone();
                let name = router.name.clone();
                let closed = conn::drive(
                    tcp,
                    conn,
                    &label,
                    move |conn, event, now| on_event(&ctx2, id, conn, event, now, Some(&name)),
                    |conn| ctx.router_hold(conn),
                    &ctx.wakes.reads,
                )
                .await;
                tls::ended(&ctx, &this, &who);
                finish(&ctx, id, &addr, &closed);
                backoff = ctx.config().timers.reconnect_min;
            }
            Err(e) => ctx.log(
                Level::Warn,
                &format!("Unable to connect to router {} at {addr}: {e}", router.name),
            ),
        }
        if !current(&ctx) {
            break;
        }
        glommio::timer::sleep(super::backoff::jittered(backoff)).await;
        backoff = (backoff * 2).min(ctx.config().timers.reconnect_max);
    }
}

/// Whether this shard keeps the outbound leg of router `index` of `config`.
pub fn dials_here(ctx: &ShardCtx, config: &Config, index: usize) -> bool {
    let connects = config
        .routers
        .get(index)
        .is_some_and(|r| r.connect.is_some());
    connects && index % usize::from(ctx.shards) == usize::from(ctx.id)
}

/// After a reload: closes this shard's connections of routers that were removed or whose
/// secret or address changed (they must prove the new one), follows node changes, and stops
/// and starts outbound legs.
pub fn reconcile(ctx: &Rc<ShardCtx>, old: &Config, new: &Config) {
    let policy = ctx.policy().clone();
    let mut to_close = Vec::new();
    for r in ctx.routers.borrow_mut().values_mut() {
        match (old.router(&r.name), new.router(&r.name)) {
            (_, None) => to_close.push((
                r.conn.clone(),
                r.name.clone(),
                "removed from the configuration",
            )),
            (Some(o), Some(n)) if o.secret != n.secret || o.connect != n.connect => {
                to_close.push((
                    r.conn.clone(),
                    r.name.clone(),
                    "its secret or address changed",
                ))
            }
            (_, Some(n)) => r.node = policy.node_id(n.node.as_bytes()),
        }
    }
    let unchanged_here = |name: &str, config: &Config, other: &Config| {
        let i = config.routers.iter().position(|r| r.name == name);
        let j = other.routers.iter().position(|r| r.name == name);
        match (i, j) {
            (Some(i), Some(j)) => {
                config.routers[i] == other.routers[j]
                    && dials_here(ctx, other, j) == dials_here(ctx, config, i)
            }
            _ => false,
        }
    };
    for (j, o) in old.routers.iter().enumerate() {
        if dials_here(ctx, old, j) && !unchanged_here(&o.name, old, new) {
            *ctx.router_generations
                .borrow_mut()
                .entry(o.name.clone())
                .or_default() += 1;
            for r in ctx.routers.borrow().values().filter(|r| r.name == o.name) {
                to_close.push((
                    r.conn.clone(),
                    r.name.clone(),
                    "its outbound leg moved or changed",
                ));
            }
        }
    }
    for (conn, name, why) in to_close {
        ctx.log(
            Level::Info,
            &format!("Closing router {name}'s stream: {why}"),
        );
        conn.close();
    }
    for (i, r) in new.routers.iter().enumerate() {
        let Some(addr) = &r.connect else { continue };
        if dials_here(ctx, new, i) && !unchanged_here(&r.name, new, old) {
            let generation = ctx.router_generation(&r.name);
            super::contain::spawn(
                ctx.id,
                format!("the dialer of router {}", r.name),
                dial_outbound(ctx.clone(), r.clone(), addr.clone(), generation),
            );
        }
    }
}

fn finish(ctx: &ShardCtx, id: u32, peer: &str, closed: &Closed) {
    if let Some(r) = ctx.routers.borrow_mut().remove(&id) {
        ctx.log(
            Level::Info,
            &format!("Router {} ({peer}) disconnected: {closed:?}", r.name),
        );
    }
}

/// `outbound`: the router's name when we dialed it (its stream NAME is ours then).
fn on_event(
    ctx: &ShardCtx,
    id: u32,
    conn: &ConnRef,
    event: StreamEvent,
    now: Instant,
    outbound: Option<&str>,
) {
    match event {
        StreamEvent::NameAnnounced { name } => {
            let config = ctx.config();
            let router = config.routers.iter().find(|r| r.name == name);
            let mut stream = conn.stream.borrow_mut();
            match router {
                Some(r) => stream.accept_name(r.secret.as_bytes()),
                None => {
                    drop(stream);
                    ctx.log(
                        Level::Warn,
                        &format!("Refused a router stream for unknown name '{name}'"),
                    );
                    conn.stream
                        .borrow_mut()
                        .refuse(Condition::HostUnknown, "no router of that name");
                }
            }
        }
        StreamEvent::Active => {
            let name = match outbound {
                Some(n) => n.to_owned(),
                None => conn.stream.borrow().name().unwrap_or("").to_owned(),
            };
            let node_name = ctx
                .config()
                .routers
                .iter()
                .find(|r| r.name == name)
                .map_or(name.as_str(), |r| r.node.as_str())
                .to_owned();
            let node = ctx.policy().node_id(node_name.as_bytes());
            conn.stream
                .borrow_mut()
                .enable_pings(&ctx.config().gateway.name, &name);
            ctx.log(Level::Info, &format!("Router {name} is ACTIVE"));
            ctx.routers.borrow_mut().insert(
                id,
                RouterConn {
                    conn: conn.clone(),
                    name,
                    node,
                    chain_askers: Vec::new(),
                },
            );
        }
        StreamEvent::Stanza(stanza) => on_stanza(ctx, id, conn, &stanza, now),
        StreamEvent::Closed(_) => {}
    }
}

fn on_stanza(ctx: &ShardCtx, id: u32, conn: &ConnRef, stanza: &Stanza, now: Instant) {
    // Events are iq sets; only other stanzas need the (rarer) question of what they are.
    let set = stanza.name() == b"iq" && stanza.raw(stanza.attrs().type_) == Some(b"set");
    if !set && !is_event(stanza) {
        return service(ctx, id, conn, stanza);
    }
    let Some(reply) = Reply::of(stanza) else {
        // An event without an id cannot be answered; the stream's checks ensured a from.
        ctx.counters.borrow_mut().bad_requests += 1;
        return;
    };
    // Only the router itself produces events: a user's (or a resource's) iq is refused before
    // it is read, judged or sent anywhere.
    if is_event(stanza) && !is_host_jid(&reply.to) {
        ctx.counters.borrow_mut().forbidden_events += 1;
        let mut out = BytesMut::new();
        write_forbidden(
            &mut out,
            &ctx.config().gateway.name,
            &reply,
            "events are accepted only from the router's own host JID",
        );
        // Bounded by the router's reads pausing past its output limit (`router_hold`).
        conn.push(&out);
        return;
    }
    let router_node = ctx.routers.borrow().get(&id).map(|r| r.node);
    let policy = &ctx.policy();
    let parsed = parse_event(stanza, reply.clone(), |node| match node {
        Some(n) => policy.node_id(n.as_bytes()),
        None => router_node.unwrap_or_else(|| policy.unknown_node()),
    });
    match parsed {
        Ok(ev) => ctx.route_event(
            ev,
            RouterRef {
                shard: ctx.id,
                conn: id,
            },
            now,
        ),
        // An iq set with some other payload is a request we do not serve, not a bad event.
        Err(crate::protocol::BadEvent::NoEventElement) if !is_event(stanza) => {
            service(ctx, id, conn, stanza)
        }
        Err(bad) => {
            ctx.counters.borrow_mut().bad_requests += 1;
            let mut out = BytesMut::new();
            write_bad_request(
                &mut out,
                &ctx.config().gateway.name,
                &reply,
                &bad.to_string(),
            );
            // Bounded by the router's reads pausing past its output limit (`router_hold`).
            conn.push(&out);
        }
    }
}

/// Pings, disco (with the chains this router must send) and requests we do not serve.
fn service(ctx: &ShardCtx, id: u32, conn: &ConnRef, stanza: &Stanza) {
    let mut out = BytesMut::new();
    let policy = ctx.policy().clone();
    let node = ctx.routers.borrow().get(&id).map(|r| r.node);
    let chains = node.map(|n| (&*policy, n));
    let outcome = service::answer_router(&mut out, &ctx.config().gateway.name, stanza, chains);
    if outcome == service::ServiceOutcome::Ignored {
        return;
    }
    ctx.counters.borrow_mut().service_requests += 1;
    // Bounded by the router's reads pausing past its output limit (`router_hold`).
    conn.push(&out);
    if outcome == service::ServiceOutcome::Chains {
        remember_asker(ctx, id, stanza);
    }
}

/// Keeps who asked for the chains (a host JID only: a user cannot subscribe to pushes), and on
/// which disco node, so a reload can tell it to ask again.
fn remember_asker(ctx: &ShardCtx, id: u32, stanza: &Stanza) {
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
    if let Some(r) = ctx.routers.borrow_mut().get_mut(&id) {
        let asker = (from, node);
        if !r.chain_askers.contains(&asker) && r.chain_askers.len() < MAX_CHAIN_ASKERS {
            r.chain_askers.push(asker);
        }
    }
}

/// A bound on the hosts one router stream may register for pushes (a server has a few:
/// its VirtualHosts and MUC components).
const MAX_CHAIN_ASKERS: usize = 64;

/// After a reload: tells every host that asked which events to send that the chains changed.
pub fn push_chains_changed(ctx: &ShardCtx) {
    let gateway = ctx.config().gateway.name.clone();
    for r in ctx.routers.borrow().values() {
        for (to, node) in &r.chain_askers {
            let mut out = BytesMut::new();
            service::write_chains_changed(&mut out, &gateway, to, node);
            // One small stanza per asker (at most MAX_CHAIN_ASKERS) per reload.
            r.conn.push(&out);
        }
    }
}
