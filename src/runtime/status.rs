//! What a shard reports about itself for status and metrics: a snapshot of its counters and of
//! its view of routers, servers and alarms, gathered on request through the channel mesh.
//!
//! Plain data; rendering (JSON, Prometheus text) is the admin layer's.

use super::shard::{RuntimeCounters, ShardCtx};
use crate::engine::{Counters, Reach};

/// One server as one shard sees it.
#[derive(Clone, Debug)]
pub struct ServerState {
    pub name: String,
    pub component: String,
    pub reach: Reach,
    /// Streams active across all shards (this shard's replica).
    pub active_links: usize,
    /// Whether this shard holds an active stream to it.
    pub local_link: bool,
    pub queued: usize,
}

/// One shard's state.
#[derive(Clone, Debug)]
pub struct ShardSnapshot {
    pub shard: u16,
    pub counters: Counters,
    pub runtime: RuntimeCounters,
    pub in_flight: usize,
    pub keys_in_flight: usize,
    pub outbox: usize,
    pub routers: Vec<String>,
    pub servers: Vec<ServerState>,
    /// Raised alarms: (name, server name).
    pub alarms: Vec<(String, String)>,
}

impl ShardSnapshot {
    pub fn of(ctx: &ShardCtx) -> ShardSnapshot {
        let engine = ctx.engine.borrow();
        let links = ctx.links.borrow();
        ShardSnapshot {
            shard: ctx.id,
            counters: engine.counters().clone(),
            runtime: ctx.counters.borrow().clone(),
            in_flight: engine.in_flight(),
            keys_in_flight: engine.keys_in_flight(),
            outbox: ctx.outbox.longest(),
            routers: ctx
                .routers
                .borrow()
                .values()
                .map(|r| r.name.clone())
                .collect(),
            servers: engine
                .servers()
                .iter()
                .enumerate()
                .map(|(i, s)| ServerState {
                    name: s.name.clone(),
                    component: s.component.clone(),
                    reach: s.reach(),
                    active_links: s.active_links(),
                    local_link: links.get(i).is_some_and(Option::is_some),
                    queued: s.queue.len(),
                })
                .collect(),
            alarms: ctx
                .alarms
                .borrow()
                .iter()
                .map(|a| {
                    let server = ctx
                        .policy
                        .server(a.server())
                        .map_or(String::new(), |s| s.name.clone());
                    (a.name().to_owned(), server)
                })
                .collect(),
        }
    }
}

/// A snapshot requested with `token` arrived from another shard.
pub fn collected(ctx: &ShardCtx, token: u64, snapshot: ShardSnapshot) {
    ctx.snapshots
        .borrow_mut()
        .entry(token)
        .or_default()
        .push(snapshot);
}
