//! `/metrics`: the summary in Prometheus text exposition format (version 0.0.4). Every family
//! has `# HELP` and `# TYPE`; counters end in `_total`; latencies are histograms with the
//! buckets of [`BUCKETS_US`], cumulative since start (docs/operations.md lists every metric).

use super::snapshot::{LISTENERS, TLS_FAILURE_REASONS};
use super::status::Summary;
use crate::engine::Terminal;
use crate::policy::EventId;
use hdrhistogram::Histogram;
use std::fmt::Write;

/// The gateway's version, for `palisade_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit it was built from: `PALISADE_COMMIT` at build time, else `unknown`.
pub const COMMIT: &str = match option_env!("PALISADE_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Histogram bucket bounds in microseconds: tens of microseconds (an answer over loopback) to
/// minutes (an event queued through an outage window).
pub const BUCKETS_US: [u64; 21] = [
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

/// How many recorded values are at or below each of [`BUCKETS_US`] (cumulative), to within the
/// histogram's resolution (0.1 %). Additive: the counts of a merge of histograms are the sums of
/// their counts, so shards' histograms merge into the same buckets.
pub fn cumulative(h: &Histogram<u64>) -> [u64; BUCKETS_US.len()] {
    let mut per = [0u64; BUCKETS_US.len()];
    for v in h.iter_recorded() {
        let value = v.value_iterated_to();
        if let Some(i) = BUCKETS_US.iter().position(|&b| value <= b) {
            per[i] += v.count_at_value();
        }
    }
    let mut total = 0;
    for c in &mut per {
        total += *c;
        *c = total;
    }
    per
}

/// One histogram series set: `_bucket` (with `le`), `_sum` and `_count`. `labels` is empty or
/// `name="value",...` without braces.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>, sum_us: u64) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, n) in BUCKETS_US.iter().zip(cumulative(h)) {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{}\"}} {n}",
            *bound as f64 / 1e6
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.len());
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count{braces} {}", h.len());
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub fn render_metrics(s: &Summary) -> String {
    let mut out = String::with_capacity(16 * 1024);
    family(
        &mut out,
        "palisade_events_received_total",
        "counter",
        "Events accepted from routers.",
    );
    let _ = writeln!(
        out,
        "palisade_events_received_total {}",
        s.counters.received
    );
    family(
        &mut out,
        "palisade_events_in_flight",
        "gauge",
        "Events walking or waiting to leave in key order.",
    );
    let _ = writeln!(out, "palisade_events_in_flight {}", s.in_flight);
    family(
        &mut out,
        "palisade_conversations_in_flight",
        "gauge",
        "Conversation keys with events in flight.",
    );
    let _ = writeln!(out, "palisade_conversations_in_flight {}", s.keys_in_flight);

    family(
        &mut out,
        "palisade_events_total",
        "counter",
        "Events by event name and terminal state.",
    );
    for id in EventId::all() {
        let row = &s.counters.by_event[id.index()];
        for t in Terminal::ALL {
            if row[t.index()] > 0 {
                let _ = writeln!(
                    out,
                    "palisade_events_total{{event=\"{}\",state=\"{}\"}} {}",
                    id.name(),
                    t.as_str(),
                    row[t.index()]
                );
            }
        }
    }
    family(&mut out, "palisade_verdicts_total", "counter", "Events by the profile and server whose step decided them, and terminal state (profile=\"\" when no step decided).");
    for (p, row) in s.counters.by_decider.iter().enumerate() {
        let profile = s.profiles.get(p).map_or("", String::as_str);
        for (col, cell) in row.iter().enumerate() {
            let server = if col == 0 {
                ""
            } else {
                s.servers.get(col - 1).map_or("", |v| v.name.as_str())
            };
            for t in Terminal::ALL {
                if cell[t.index()] > 0 {
                    let _ =
                        writeln!(
                        out,
                        "palisade_verdicts_total{{profile=\"{}\",server=\"{}\",state=\"{}\"}} {}",
                        label(profile), label(server), t.as_str(), cell[t.index()]
                    );
                }
            }
        }
    }

    family(
        &mut out,
        "palisade_server_requests_total",
        "counter",
        "Requests written to each compliance server: mode=\"wait\" expects an answer, mode=\"notify\" is fire-and-forget.",
    );
    for v in &s.servers {
        for (mode, n) in [("wait", v.counters.sent), ("notify", v.counters.notified)] {
            let _ = writeln!(
                out,
                "palisade_server_requests_total{{server=\"{}\",mode=\"{mode}\"}} {n}",
                label(&v.name)
            );
        }
    }
    family(
        &mut out,
        "palisade_server_answers_total",
        "counter",
        "Answers read in time from each compliance server, by what they said.",
    );
    for v in &s.servers {
        let c = &v.counters;
        for (answer, n) in [
            ("pass", c.passed),
            ("modify", c.modified),
            ("handle", c.handled),
            ("error", c.errors),
        ] {
            let _ = writeln!(
                out,
                "palisade_server_answers_total{{server=\"{}\",answer=\"{answer}\"}} {n}",
                label(&v.name)
            );
        }
    }
    family(
        &mut out,
        "palisade_server_step_failures_total",
        "counter",
        "Steps on each compliance server that failed without an answer: its timer fired (reason=\"timeout\") or its queue was full (reason=\"queue_full\").",
    );
    for v in &s.servers {
        for (reason, n) in [
            ("timeout", v.counters.timeouts),
            ("queue_full", v.counters.queue_full),
        ] {
            let _ = writeln!(
                out,
                "palisade_server_step_failures_total{{server=\"{}\",reason=\"{reason}\"}} {n}",
                label(&v.name)
            );
        }
    }
    for (name, help, get) in [
        (
            "palisade_server_protocol_violations_total",
            "Answers refused by the answer rules (taken as a plain pass) or unreadable.",
            (|c| c.protocol_violations) as fn(&crate::engine::ServerCounters) -> u64,
        ),
        (
            "palisade_server_late_answers_total",
            "Answers to requests no longer waiting (after a timeout or a move).",
            |c| c.late_answers,
        ),
        (
            "palisade_server_requests_resent_total",
            "Requests sent again after the stream they went out on was lost.",
            |c| c.resent,
        ),
        (
            "palisade_server_requests_moved_total",
            "Requests moved to another server after this one left the ring.",
            |c| c.moved_away,
        ),
        (
            "palisade_server_notifications_lost_total",
            "Notifications lost because the server stayed away past their timer.",
            |c| c.notifications_lost,
        ),
        (
            "palisade_server_writes_deferred_total",
            "Requests and notifications queued again because the stream had no room yet.",
            |c| c.deferred,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for v in &s.servers {
            let _ = writeln!(
                out,
                "{name}{{server=\"{}\"}} {}",
                label(&v.name),
                get(&v.counters)
            );
        }
    }
    family(
        &mut out,
        "palisade_server_answer_seconds",
        "histogram",
        "Time from writing a request to reading its answer, per compliance server.",
    );
    for (i, v) in s.servers.iter().enumerate() {
        if let Some(h) = s.counters.latency.get(i) {
            let sum = s.counters.latency_sum_us.get(i).copied().unwrap_or(0);
            histogram(
                &mut out,
                "palisade_server_answer_seconds",
                &format!("server=\"{}\"", label(&v.name)),
                h,
                sum,
            );
        }
    }
    family(
        &mut out,
        "palisade_server_queue_depth",
        "gauge",
        "Events waiting for a compliance server to come back.",
    );
    for v in &s.servers {
        let _ = writeln!(
            out,
            "palisade_server_queue_depth{{server=\"{}\"}} {}",
            label(&v.name),
            v.queued
        );
    }
    family(
        &mut out,
        "palisade_server_streams",
        "gauge",
        "Active streams to each compliance server.",
    );
    for v in &s.servers {
        let _ = writeln!(
            out,
            "palisade_server_streams{{server=\"{}\"}} {}",
            label(&v.name),
            v.streams
        );
    }
    family(
        &mut out,
        "palisade_server_state",
        "gauge",
        "1 for the state each compliance server is in (up, outage, down, retired).",
    );
    for v in &s.servers {
        for state in ["up", "outage", "down", "retired"] {
            let _ = writeln!(
                out,
                "palisade_server_state{{server=\"{}\",state=\"{state}\"}} {}",
                label(&v.name),
                u8::from(v.state == state)
            );
        }
    }
    family(
        &mut out,
        "palisade_residence_seconds",
        "histogram",
        "Time events spend in the gateway, arrival to verdict.",
    );
    histogram(
        &mut out,
        "palisade_residence_seconds",
        "",
        &s.counters.residence,
        s.counters.residence_sum_us,
    );

    family(
        &mut out,
        "palisade_alarm",
        "gauge",
        "1 while a named alarm is raised.",
    );
    for (name, server) in &s.alarms {
        let _ = writeln!(
            out,
            "palisade_alarm{{name=\"{}\",server=\"{}\"}} 1",
            label(name),
            label(server)
        );
    }
    family(
        &mut out,
        "palisade_alarms_raised_total",
        "counter",
        "Times each named alarm was raised.",
    );
    for (name, n) in &s.runtime.alarms_raised {
        let _ = writeln!(
            out,
            "palisade_alarms_raised_total{{name=\"{}\"}} {n}",
            label(name)
        );
    }
    family(
        &mut out,
        "palisade_bad_requests_total",
        "counter",
        "Events answered bad-request.",
    );
    let _ = writeln!(
        out,
        "palisade_bad_requests_total {}",
        s.runtime.bad_requests
    );
    family(
        &mut out,
        "palisade_forbidden_events_total",
        "counter",
        "Events refused forbidden: not sent by the router's own host JID.",
    );
    let _ = writeln!(
        out,
        "palisade_forbidden_events_total {}",
        s.runtime.forbidden_events
    );
    family(
        &mut out,
        "palisade_undeliverable_verdicts_total",
        "counter",
        "Verdicts whose router connection had gone.",
    );
    let _ = writeln!(
        out,
        "palisade_undeliverable_verdicts_total {}",
        s.runtime.undeliverable_verdicts
    );
    family(
        &mut out,
        "palisade_unknown_answers_total",
        "counter",
        "Answers from compliance servers to ids the gateway never sent.",
    );
    let _ = writeln!(
        out,
        "palisade_unknown_answers_total {}",
        s.runtime.unknown_answers
    );
    for (name, help, n) in [
        (
            "palisade_service_requests_total",
            "Requests from routers or servers other than events (pings, disco), answered or refused.",
            s.runtime.service_requests,
        ),
        (
            "palisade_router_output_pauses_total",
            "Times a router's reads paused because it did not read what the gateway wrote.",
            s.runtime.router_output_pauses,
        ),
        (
            "palisade_server_output_pauses_total",
            "Times a compliance stream's reads paused because it did not read what the gateway wrote.",
            s.runtime.server_output_pauses,
        ),
    ] {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {n}");
    }
    family(
        &mut out,
        "palisade_router_read_paused_seconds_total",
        "counter",
        "Time router reads paused because the shard had too many events in flight.",
    );
    let _ = writeln!(
        out,
        "palisade_router_read_paused_seconds_total {}",
        s.runtime.read_pauses as f64 / 1e3
    );
    family(
        &mut out,
        "palisade_connections_refused_total",
        "counter",
        "Connections accepted and closed at once because their listener was at its cap.",
    );
    for (name, n) in LISTENERS.iter().zip(s.runtime.connections_refused) {
        let _ = writeln!(
            out,
            "palisade_connections_refused_total{{listener=\"{name}\"}} {n}"
        );
    }
    family(
        &mut out,
        "palisade_accept_errors_total",
        "counter",
        "Accepts that failed (open files exhausted...), retried with backoff.",
    );
    for (name, n) in LISTENERS.iter().zip(s.runtime.accept_errors) {
        let _ = writeln!(
            out,
            "palisade_accept_errors_total{{listener=\"{name}\"}} {n}"
        );
    }
    family(
        &mut out,
        "palisade_tls_failures_total",
        "counter",
        "TLS connections that failed, by reason (verification, expired, name_mismatch...).",
    );
    for (reason, n) in TLS_FAILURE_REASONS.iter().zip(s.runtime.tls_failures) {
        let _ = writeln!(
            out,
            "palisade_tls_failures_total{{reason=\"{reason}\"}} {n}"
        );
    }
    family(
        &mut out,
        "palisade_router_streams",
        "gauge",
        "Active router streams.",
    );
    let _ = writeln!(out, "palisade_router_streams {}", s.routers.len());
    family(
        &mut out,
        "palisade_uptime_seconds",
        "gauge",
        "Seconds since start.",
    );
    let _ = writeln!(out, "palisade_uptime_seconds {}", s.uptime.as_secs_f64());
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    let _ = writeln!(out, "process_start_time_seconds {}", s.started_unix);
    family(
        &mut out,
        "palisade_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
    );
    let _ = writeln!(
        out,
        "palisade_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        label(VERSION),
        label(COMMIT)
    );
    family(
        &mut out,
        "palisade_ready",
        "gauge",
        "1 when /readyz answers 200 (router listeners open, every profile in use has an ACTIVE server).",
    );
    let _ = writeln!(
        out,
        "palisade_ready {}",
        u8::from(super::health::not_ready(s).is_empty())
    );
    if let Some(spool) = &s.spool {
        spool_metrics(&mut out, spool);
    }
    out
}

/// The spool's gauges and counters (only with `[spool] dir`).
fn spool_metrics(out: &mut String, sp: &super::snapshot::SpoolState) {
    let gauges: [(&str, &str, f64); 7] = [
        (
            "palisade_spool_records",
            "Records in the spool, waiting for replay.",
            sp.records as f64,
        ),
        (
            "palisade_spool_bytes",
            "Bytes the spool's segments take on disk.",
            sp.bytes as f64,
        ),
        (
            "palisade_spool_max_bytes",
            "The spool's bound ([spool] max_bytes).",
            sp.max_bytes as f64,
        ),
        (
            "palisade_spool_oldest_age_seconds",
            "Age of the oldest record in the spool (0 when empty).",
            sp.oldest_age_seconds,
        ),
        (
            "palisade_spool_full",
            "1 while the spool refuses records (alarm SpoolFull).",
            f64::from(u8::from(sp.full)),
        ),
        (
            "palisade_spool_memory_bytes",
            "Payload bytes of pending records held in memory (the rest is read back for replay).",
            sp.memory_bytes as f64,
        ),
        (
            "palisade_spool_memory_bound_bytes",
            "The bound on palisade_spool_memory_bytes.",
            sp.memory_bound as f64,
        ),
    ];
    for (name, help, v) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let counters: [(&str, &str, u64); 5] = [
        (
            "palisade_spool_spooled_total",
            "Records written to the spool.",
            sp.spooled,
        ),
        (
            "palisade_spool_replayed_total",
            "Spooled records replayed to a compliance server.",
            sp.replayed,
        ),
        (
            "palisade_spool_refused_total",
            "Records refused because the spool was full (their events bounced).",
            sp.refused_full,
        ),
        (
            "palisade_spool_write_errors_total",
            "Spool batches that failed to write or sync.",
            sp.write_errors,
        ),
        (
            "palisade_spool_lost_on_error_total",
            "Records a failed write did not keep (their events bounced).",
            sp.lost_on_error,
        ),
    ];
    for (name, help, v) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    family(
        out,
        "palisade_spool_profile_records",
        "gauge",
        "Records in the spool, per profile.",
    );
    for p in &sp.profiles {
        let _ = writeln!(
            out,
            "palisade_spool_profile_records{{profile=\"{}\"}} {}",
            label(&p.profile),
            p.records
        );
    }
    family(
        out,
        "palisade_spool_profile_bytes",
        "gauge",
        "Spool bytes, per profile.",
    );
    for p in &sp.profiles {
        let _ = writeln!(
            out,
            "palisade_spool_profile_bytes{{profile=\"{}\"}} {}",
            label(&p.profile),
            p.bytes
        );
    }
    family(
        out,
        "palisade_spool_profile_oldest_age_seconds",
        "gauge",
        "Age of a profile's oldest spooled record.",
    );
    for p in &sp.profiles {
        let _ = writeln!(
            out,
            "palisade_spool_profile_oldest_age_seconds{{profile=\"{}\"}} {}",
            label(&p.profile),
            p.oldest_age_seconds
        );
    }
    family(
        out,
        "palisade_spool_profile_replayed_total",
        "counter",
        "Records replayed, per profile.",
    );
    for p in &sp.profiles {
        let _ = writeln!(
            out,
            "palisade_spool_profile_replayed_total{{profile=\"{}\"}} {}",
            label(&p.profile),
            p.replayed
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(values: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn buckets_are_cumulative_and_merge_across_shards() {
        let a = h(&[10, 25, 26, 900, 2_000_000]);
        let b = h(&[40, 1_000_000, 400_000_000]);
        let ca = cumulative(&a);
        assert_eq!(ca[0], 2, "10 and 25 are <= 25 us");
        assert_eq!(ca[1], 3);
        assert_eq!(ca[5], 4, "<= 1 ms");
        assert_eq!(ca[BUCKETS_US.len() - 1], 5);
        let cb = cumulative(&b);
        assert_eq!(cb[BUCKETS_US.len() - 1], 2, "400 s is past the last bound");
        let mut merged = a.clone();
        merged.add(&b).unwrap();
        let cm = cumulative(&merged);
        for i in 0..BUCKETS_US.len() {
            assert_eq!(cm[i], ca[i] + cb[i]);
        }
        let mut out = String::new();
        histogram(&mut out, "x_seconds", "server=\"a\"", &a, 2_000_961);
        assert!(
            out.contains("x_seconds_bucket{server=\"a\",le=\"0.000025\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{server=\"a\",le=\"+Inf\"} 5\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_sum{server=\"a\"} 2.000961\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{server=\"a\"} 5\n"), "{out}");
        let mut out = String::new();
        histogram(&mut out, "y_seconds", "", &b, 0);
        assert!(out.contains("y_seconds_bucket{le=\"300\"} 2\n"), "{out}");
        assert!(out.contains("y_seconds_count 3\n"), "{out}");
    }
}
