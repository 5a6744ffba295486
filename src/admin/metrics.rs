//! `/metrics`: the summary in Prometheus text exposition format (version 0.0.4).

use super::snapshot::{LISTENERS, TLS_FAILURE_REASONS};
use super::status::Summary;
use crate::engine::Terminal;
use crate::policy::EventId;
use std::fmt::Write;

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
        "Steps on each compliance server by outcome.",
    );
    for v in &s.servers {
        let c = &v.counters;
        for (outcome, n) in [
            ("sent", c.sent),
            ("notified", c.notified),
            ("passed", c.passed),
            ("modified", c.modified),
            ("handled", c.handled),
            ("errors", c.errors),
            ("timeouts", c.timeouts),
            ("protocol_violations", c.protocol_violations),
            ("late_answers", c.late_answers),
            ("queue_full", c.queue_full),
            ("resent", c.resent),
            ("moved_away", c.moved_away),
            ("notifications_lost", c.notifications_lost),
            ("deferred", c.deferred),
        ] {
            let _ = writeln!(
                out,
                "palisade_server_requests_total{{server=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(&v.name)
            );
        }
    }
    family(
        &mut out,
        "palisade_server_answer_seconds",
        "summary",
        "Time from writing a request to reading its answer.",
    );
    for v in &s.servers {
        for (q, us) in ["0.5", "0.9", "0.99", "0.999"].iter().zip(v.latency_us) {
            let _ = writeln!(
                out,
                "palisade_server_answer_seconds{{server=\"{}\",quantile=\"{q}\"}} {}",
                label(&v.name),
                us as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "palisade_server_answer_seconds_count{{server=\"{}\"}} {}",
            label(&v.name),
            v.answers
        );
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
        "summary",
        "Time events spend in the gateway, arrival to verdict.",
    );
    let h = &s.counters.residence;
    for q in [0.5, 0.9, 0.99, 0.999] {
        let _ = writeln!(
            out,
            "palisade_residence_seconds{{quantile=\"{q}\"}} {}",
            h.value_at_quantile(q) as f64 / 1e6
        );
    }
    let _ = writeln!(out, "palisade_residence_seconds_count {}", h.len());

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
            "palisade_router_read_pauses_total",
            "Milliseconds router reads paused because the shard had too many events in flight.",
            s.runtime.read_pauses,
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
    if let Some(spool) = &s.spool {
        spool_metrics(&mut out, spool);
    }
    out
}

/// The spool's gauges and counters (only with `[spool] dir`).
fn spool_metrics(out: &mut String, sp: &super::snapshot::SpoolState) {
    let gauges: [(&str, &str, f64); 5] = [
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
