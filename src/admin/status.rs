//! The gateway-wide summary merged from every shard's snapshot, and its JSON form (`/status`).

use super::snapshot::{Listening, RuntimeCounters, ShardSnapshot};
use crate::engine::{Counters, Reach, ServerCounters, Terminal, Window};
use serde_json::{json, Value};
use std::time::Duration;

/// One server, across shards.
#[derive(Clone, Debug)]
pub struct ServerSummary {
    pub name: String,
    pub component: String,
    pub profile: String,
    /// `up` if any shard sees it up, else `outage` if any sees an outage, else `down`.
    pub state: &'static str,
    pub streams: usize,
    pub queued: usize,
    pub counters: ServerCounters,
    /// Answer latency percentiles (p50, p90, p99, p99.9) in microseconds, and the count.
    pub latency_us: [u64; 4],
    pub answers: u64,
    /// The same over the last minute.
    pub recent_latency_us: [u64; 4],
    pub recent_answers: u64,
}

/// p50, p90, p99 and p99.9 of a histogram.
pub fn percentiles<T: hdrhistogram::Counter>(h: &hdrhistogram::Histogram<T>) -> [u64; 4] {
    [50.0, 90.0, 99.0, 99.9].map(|q| h.value_at_quantile(q / 100.0))
}

/// The gateway as a whole.
#[derive(Clone, Debug)]
pub struct Summary {
    pub gateway: String,
    pub shards: usize,
    pub uptime: Duration,
    pub counters: Counters,
    pub runtime: RuntimeCounters,
    pub in_flight: usize,
    pub keys_in_flight: usize,
    pub servers: Vec<ServerSummary>,
    pub routers: Vec<String>,
    /// Raised alarms (name, server), each once.
    pub alarms: Vec<(String, String)>,
    pub profiles: Vec<String>,
    /// Every shard's spool, merged (`None` without `[spool] dir`).
    pub spool: Option<super::snapshot::SpoolState>,
    /// The configuration in force: its generation (0 until a reload), file, and the latest
    /// reload's outcome.
    pub config: Value,
    /// The last minute, every shard's merged.
    pub recent: Window,
    /// Each answering shard's router listeners.
    pub listeners: Vec<Listening>,
    /// Shards running (those that did not answer in time are missing from the rest).
    pub shards_expected: usize,
    /// When the process started, seconds since the Unix epoch (0 when unknown).
    pub started_unix: f64,
}

impl Summary {
    /// Merges shard snapshots (any order). `profiles` names the rows of `by_decider`.
    pub fn merge(
        gateway: &str,
        uptime: Duration,
        profiles: Vec<String>,
        snaps: &[ShardSnapshot],
    ) -> Summary {
        let mut counters = snaps[0].counters.clone();
        let mut runtime = snaps[0].runtime.clone();
        let mut recent = snaps[0].recent.clone();
        for s in &snaps[1..] {
            counters.merge(&s.counters);
            runtime.merge(&s.runtime);
            recent.merge(&s.recent);
        }
        let servers = (0..snaps[0].servers.len())
            .map(|i| {
                let views: Vec<_> = snaps.iter().filter_map(|s| s.servers.get(i)).collect();
                let state = if views.iter().any(|v| v.retired) {
                    "retired"
                } else if views.iter().any(|v| v.reach == Reach::Up) {
                    "up"
                } else if views
                    .iter()
                    .any(|v| matches!(v.reach, Reach::Outage { .. }))
                {
                    "outage"
                } else {
                    "down"
                };
                let h = &counters.latency[i];
                let recent_h = recent.latency.get(i);
                ServerSummary {
                    name: views[0].name.clone(),
                    component: views[0].component.clone(),
                    profile: views[0].profile.clone(),
                    state,
                    streams: views.iter().map(|v| v.active_links).max().unwrap_or(0),
                    queued: views.iter().map(|v| v.queued).sum(),
                    counters: counters.servers[i].clone(),
                    latency_us: percentiles(h),
                    answers: h.len(),
                    recent_latency_us: recent_h.map_or([0; 4], percentiles),
                    recent_answers: recent_h.map_or(0, |h| h.len()),
                }
            })
            .collect();
        let mut alarms: Vec<(String, String)> =
            snaps.iter().flat_map(|s| s.alarms.clone()).collect();
        alarms.sort();
        alarms.dedup();
        let spool = snaps.iter().filter_map(|s| s.spool.as_ref()).fold(
            None,
            |acc: Option<super::snapshot::SpoolState>, s| {
                let mut acc = acc.unwrap_or_default();
                acc.merge(s);
                Some(acc)
            },
        );
        Summary {
            spool,
            gateway: gateway.to_owned(),
            shards: snaps.len(),
            uptime,
            in_flight: snaps.iter().map(|s| s.in_flight).sum(),
            keys_in_flight: snaps.iter().map(|s| s.keys_in_flight).sum(),
            routers: snaps.iter().flat_map(|s| s.routers.clone()).collect(),
            counters,
            runtime,
            servers,
            alarms,
            profiles,
            config: Value::Null,
            recent,
            listeners: snaps.iter().map(|s| s.router_listeners).collect(),
            shards_expected: snaps.len(),
            started_unix: 0.0,
        }
    }
}

fn terminal_json(t: &[u64; 5]) -> Value {
    let mut m = serde_json::Map::new();
    for state in Terminal::ALL {
        m.insert(state.as_str().to_owned(), json!(t[state.index()]));
    }
    Value::Object(m)
}

/// The `/status` document.
pub fn render_status(s: &Summary) -> String {
    let servers: Vec<Value> = s
        .servers
        .iter()
        .map(|v| {
            let c = &v.counters;
            json!({
                "name": v.name,
                "component": v.component,
                "state": v.state,
                "streams": v.streams,
                "queued": v.queued,
                "requests": {
                    "sent": c.sent, "notified": c.notified, "passed": c.passed,
                    "modified": c.modified, "handled": c.handled, "errors": c.errors,
                    "timeouts": c.timeouts, "protocol_violations": c.protocol_violations,
                    "late_answers": c.late_answers, "queue_full": c.queue_full,
                    "resent": c.resent, "moved_away": c.moved_away,
                    "notifications_lost": c.notifications_lost, "deferred": c.deferred,
                },
                "latency_us": { "p50": v.latency_us[0], "p90": v.latency_us[1], "p99": v.latency_us[2], "p999": v.latency_us[3], "answers": v.answers },
                "profile": v.profile,
                "last_minute_us": quantiles_json(&v.recent_latency_us, "answers", v.recent_answers),
            })
        })
        .collect();
    let alarms: Vec<Value> = s
        .alarms
        .iter()
        .map(|(name, server)| json!({ "name": name, "server": server }))
        .collect();
    let reasons = super::health::not_ready(s);
    let rates: serde_json::Map<String, Value> = Terminal::ALL
        .iter()
        .map(|t| (t.as_str().to_owned(), json!(s.recent.per_second(*t))))
        .collect();
    let doc = json!({
        "gateway": s.gateway,
        "version": super::metrics::VERSION,
        "commit": super::metrics::COMMIT,
        "ready": { "ready": reasons.is_empty(), "reasons": reasons },
        "shards": s.shards,
        "uptime_seconds": s.uptime.as_secs_f64(),
        "events": {
            "received": s.counters.received,
            "in_flight": s.in_flight,
            "keys_in_flight": s.keys_in_flight,
            "terminal": terminal_json(&s.counters.terminal),
            "bad_requests": s.runtime.bad_requests,
            "forbidden": s.runtime.forbidden_events,
            "undeliverable_verdicts": s.runtime.undeliverable_verdicts,
        },
        "connections": {
            "refused": per_listener(&s.runtime.connections_refused),
            "accept_errors": per_listener(&s.runtime.accept_errors),
        },
        "last_minute": {
            "window_seconds": s.recent.span.as_secs_f64(),
            "verdicts_per_second": rates,
            "residence_us": quantiles_json(&super::status::percentiles(&s.recent.residence), "verdicts", s.recent.residence.len()),
        },
        "config": s.config,
        "routers": s.routers,
        "servers": servers,
        "alarms": alarms,
        "spool": spool_json(s.spool.as_ref()),
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// The `spool` object: `enabled`, totals, `full`, and one entry per profile.
fn spool_json(spool: Option<&super::snapshot::SpoolState>) -> Value {
    let Some(s) = spool else {
        return json!({
            "enabled": false, "records": 0, "bytes": 0, "oldest_age_seconds": 0.0,
            "full": false, "profiles": [],
        });
    };
    let profiles: Vec<Value> = s
        .profiles
        .iter()
        .map(|p| {
            json!({
                "profile": p.profile, "records": p.records, "bytes": p.bytes,
                "oldest_age_seconds": p.oldest_age_seconds, "replayed": p.replayed,
            })
        })
        .collect();
    json!({
        "enabled": true,
        "records": s.records,
        "bytes": s.bytes,
        "oldest_age_seconds": s.oldest_age_seconds,
        "full": s.full,
        "max_bytes": s.max_bytes,
        "spooled": s.spooled,
        "replayed": s.replayed,
        "refused_full": s.refused_full,
        "write_errors": s.write_errors,
        "profiles": profiles,
    })
}

/// `{"p50": .., "p90": .., "p99": .., "p999": .., COUNT_NAME: count}`.
fn quantiles_json(q: &[u64; 4], count_name: &str, count: u64) -> Value {
    json!({ "p50": q[0], "p90": q[1], "p99": q[2], "p999": q[3], count_name: count })
}

/// `{"routers": n, "compliance": n, "admin": n}`.
fn per_listener(counts: &[u64; 3]) -> Value {
    let map: serde_json::Map<String, Value> = super::snapshot::LISTENERS
        .iter()
        .zip(counts)
        .map(|(name, n)| ((*name).to_owned(), json!(n)))
        .collect();
    Value::Object(map)
}
