//! Gathering status: a shard's own snapshot, and collecting every shard's through the mesh
//! (each shard answers `SnapshotRequest` with its `ShardSnapshot`). The figures are the
//! gateway core's (`Gateway::status`); what is added here is the runtime's own (its counts,
//! its outbox, its listeners).

use super::mesh::ShardMsg;
use super::shard::ShardCtx;
use crate::admin::{Listening, ShardSnapshot};
use crate::gateway::GatewayCounters;
use std::time::{Duration, Instant, SystemTime};

/// This shard's snapshot: the core's figures (`Gateway::status`) with what only the runtime
/// knows (its counts, its outbox, its listeners).
pub fn snapshot(ctx: &ShardCtx) -> ShardSnapshot {
    let (status, listens) = {
        let core = ctx.core.borrow();
        (
            core.status(Instant::now(), SystemTime::now()),
            core.listens_for_routers(),
        )
    };
    let router_listeners = if ctx.shutting_down.get() {
        Listening::ShuttingDown
    } else if ctx.routers_listening.get() {
        Listening::Open
    } else if !listens {
        Listening::NotHere
    } else {
        Listening::Starting
    };
    ShardSnapshot {
        spool: status.spool,
        shard: ctx.id,
        counters: status.counters,
        runtime: runtime_counters(ctx, &status.gateway),
        in_flight: status.in_flight,
        keys_in_flight: status.keys_in_flight,
        outbox: ctx.outbox.longest(),
        routers: status.routers,
        servers: status.servers,
        alarms: status.alarms,
        recent: status.recent,
        router_listeners,
    }
}

/// The runtime's counters with the core's added.
fn runtime_counters(ctx: &ShardCtx, core: &GatewayCounters) -> crate::admin::RuntimeCounters {
    let mut c = ctx.counters.borrow().clone();
    c.bad_requests += core.bad_requests;
    c.forbidden_events += core.forbidden_events;
    c.service_requests += core.service_requests;
    c.undeliverable_verdicts += core.undeliverable_verdicts;
    c.unknown_answers += core.unknown_answers;
    c.read_pauses += core.read_pauses;
    c.router_output_pauses += core.router_output_pauses;
    c.server_output_pauses += core.server_output_pauses;
    for (name, n) in &core.alarms_raised {
        for _ in 0..*n {
            c.count_alarm(name);
        }
    }
    c
}

/// A snapshot requested with `token` arrived from another shard.
pub fn collected(ctx: &ShardCtx, token: u64, snapshot: ShardSnapshot) {
    ctx.snapshots
        .borrow_mut()
        .entry(token)
        .or_default()
        .push(snapshot);
    ctx.wakes.snapshots.notify_all();
}

/// Every shard's snapshot (this one's first); shards that do not answer within two seconds
/// are left out (a shard that busy is better reported missing than waited for).
pub async fn gather(ctx: &ShardCtx, token: u64) -> Vec<ShardSnapshot> {
    for peer in (0..ctx.shards).filter(|&p| p != ctx.id) {
        ctx.outbox.push(
            usize::from(peer),
            ShardMsg::SnapshotRequest {
                reply_to: ctx.id,
                token,
            },
        );
    }
    let want = usize::from(ctx.shards) - 1;
    let all_in = async {
        while ctx.snapshots.borrow().get(&token).map_or(0, Vec::len) < want {
            ctx.wakes.snapshots.wait().await;
        }
    };
    futures_lite::future::or(all_in, glommio::timer::sleep(Duration::from_secs(2))).await;
    let mut all = vec![snapshot(ctx)];
    all.extend(
        ctx.snapshots
            .borrow_mut()
            .remove(&token)
            .unwrap_or_default(),
    );
    all.sort_by_key(|s| s.shard);
    all
}
