//! Gathering status: a shard's own snapshot, and collecting every shard's through the mesh
//! (each shard answers `SnapshotRequest` with its `ShardSnapshot`).

use super::mesh::ShardMsg;
use super::shard::ShardCtx;
use crate::admin::{Listening, ServerState, ShardSnapshot};
use crate::gateway::GatewayCounters;
use std::time::{Duration, Instant};

/// This shard's snapshot.
pub fn snapshot(ctx: &ShardCtx) -> ShardSnapshot {
    let core = ctx.core.borrow();
    let engine = core.engine();
    let spool = engine.spool().map(spool_state);
    let policy = ctx.policy();
    let router_listeners = if ctx.shutting_down.get() {
        Listening::ShuttingDown
    } else if ctx.routers_listening.get() {
        Listening::Open
    } else if ctx.config().gateway.accept == crate::policy::AcceptMode::Handoff && ctx.id != 0 {
        Listening::NotHere
    } else {
        Listening::Starting
    };
    ShardSnapshot {
        spool,
        shard: ctx.id,
        counters: engine.counters().clone(),
        runtime: runtime_counters(ctx, core.counters()),
        in_flight: engine.in_flight(),
        keys_in_flight: engine.keys_in_flight(),
        outbox: ctx.outbox.longest(),
        routers: core.router_names(),
        servers: engine
            .servers()
            .iter()
            .enumerate()
            .map(|(i, s)| ServerState {
                name: s.name.clone(),
                component: s.component.clone(),
                profile: policy
                    .server(crate::policy::ServerId(i as u16))
                    .map_or(String::new(), |info| {
                        policy.profile_name(info.profile).to_owned()
                    }),
                reach: s.reach(),
                active_links: s.active_links(),
                local_link: core.has_link(i),
                queued: s.queue.len(),
                retired: s.retired(),
            })
            .collect(),
        alarms: core
            .alarms()
            .iter()
            .map(|a| {
                let server = a
                    .server()
                    .and_then(|id| policy.server(id).map(|s| s.name.clone()))
                    .unwrap_or_default();
                (a.name().to_owned(), server)
            })
            .collect(),
        recent: engine.recent(Instant::now()),
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
    for (name, n) in &core.alarms_raised {
        for _ in 0..*n {
            c.count_alarm(name);
        }
    }
    c
}

/// A spool's figures, its ages read from the wall clock now.
fn spool_state(s: &crate::spool::Spool) -> crate::admin::SpoolState {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let age = |born: Option<u64>| born.map_or(0.0, |b| now_ms.saturating_sub(b) as f64 / 1000.0);
    let (oldest, per) = s.oldest_ms();
    let c = &s.counters;
    crate::admin::SpoolState {
        records: s.records(),
        bytes: s.bytes(),
        max_bytes: s.max_bytes(),
        oldest_age_seconds: age(oldest),
        full: s.refusing(),
        spooled: c.spooled,
        replayed: c.replayed,
        refused_full: c.refused_full,
        write_errors: c.io_errors,
        lost_on_error: c.lost_on_error,
        memory_bytes: s.held_bytes(),
        memory_bound: s.memory_bound(),
        profiles: s
            .profiles()
            .iter()
            .zip(per)
            .map(|(p, born)| crate::admin::SpoolProfile {
                profile: p.name.clone(),
                records: p.records,
                bytes: p.bytes,
                oldest_age_seconds: age(born),
                replayed: p.replayed,
            })
            .collect(),
    }
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
