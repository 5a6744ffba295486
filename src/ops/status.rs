//! `palisade status`: a readable summary of a running gateway, from its `/status` document.

use serde_json::Value;
use std::fmt::Write;
use std::net::SocketAddr;

/// Fetches `/status` from `admin` and renders it (or returns the raw JSON with `json`).
pub fn run(admin: SocketAddr, json: bool) -> Result<String, crate::tools::http_get::GetError> {
    let body = crate::tools::http_get::get(admin, "/status")?;
    if json {
        return Ok(body);
    }
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    Ok(render(&doc))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn ms(us: &Value) -> String {
    format!("{:.2}ms", n(us) as f64 / 1000.0)
}

/// The summary people read.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let uptime = doc["uptime_seconds"].as_f64().unwrap_or(0.0) as u64;
    let _ = writeln!(
        out,
        "Palisade {}: {} shard(s), up {}h{:02}m{:02}s",
        doc["gateway"].as_str().unwrap_or("?"),
        n(&doc["shards"]),
        uptime / 3600,
        uptime / 60 % 60,
        uptime % 60
    );
    let e = &doc["events"];
    let t = &e["terminal"];
    let _ = writeln!(
        out,
        "Events: {} received, {} in flight ({} conversations); pass {}, handle {}, bounce {}, drop {}, failed-open {}; {} bad requests",
        n(&e["received"]),
        n(&e["in_flight"]),
        n(&e["keys_in_flight"]),
        n(&t["pass"]),
        n(&t["handle"]),
        n(&t["bounce"]),
        n(&t["drop"]),
        n(&t["failed_open"]),
        n(&e["bad_requests"]),
    );
    let ready = &doc["ready"];
    if let Some(ok) = ready["ready"].as_bool() {
        let reasons: Vec<&str> = ready["reasons"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "Ready: {}",
            if ok {
                "yes".to_owned()
            } else {
                format!("NO: {}", reasons.join("; "))
            }
        );
    }
    let lm = &doc["last_minute"];
    if let Some(window) = lm["window_seconds"].as_f64() {
        let rate = |t: &str| lm["verdicts_per_second"][t].as_f64().unwrap_or(0.0);
        let r = &lm["residence_us"];
        let _ = writeln!(
            out,
            "Last {window:.0}s: pass {:.1}/s, handle {:.1}/s, bounce {:.1}/s, drop {:.1}/s, failed-open {:.1}/s; in the gateway p50 {} p99 {}",
            rate("pass"),
            rate("handle"),
            rate("bounce"),
            rate("drop"),
            rate("failed_open"),
            ms(&r["p50"]),
            ms(&r["p99"]),
        );
    }
    let routers: Vec<&str> = doc["routers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Routers: {}",
        if routers.is_empty() {
            "none connected".to_owned()
        } else {
            routers.join(", ")
        }
    );
    let c = &doc["config"];
    if let Some(generation) = c["generation"].as_u64() {
        let last = &c["last_reload"];
        let outcome = match last["ok"].as_bool() {
            None => String::new(),
            Some(ok) => format!(
                "; last reload {}: {}",
                if ok { "applied" } else { "FAILED" },
                last["message"].as_str().unwrap_or("")
            ),
        };
        let _ = writeln!(
            out,
            "Configuration: generation {generation} ({}){outcome}",
            c["file"].as_str().unwrap_or("embedded default"),
        );
    }
    let _ = writeln!(out, "Compliance servers:");
    for s in doc["servers"].as_array().into_iter().flatten() {
        let r = &s["requests"];
        let l = &s["latency_us"];
        let _ = writeln!(
            out,
            "  {:<10} {:<7} streams {:<2} queued {:<5} sent {} notified {} timeouts {} errors {} | answer p50 {} p99 {}   ({})",
            s["name"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?").to_uppercase(),
            n(&s["streams"]),
            n(&s["queued"]),
            n(&r["sent"]),
            n(&r["notified"]),
            n(&r["timeouts"]),
            n(&r["errors"]),
            ms(&l["p50"]),
            ms(&l["p99"]),
            s["component"].as_str().unwrap_or("?"),
        );
    }
    let sp = &doc["spool"];
    if sp["enabled"].as_bool() == Some(true) {
        let _ = writeln!(
            out,
            "Spool: {} record(s), {} byte(s) of {}, oldest {:.1} s, replayed {}{}",
            n(&sp["records"]),
            n(&sp["bytes"]),
            n(&sp["max_bytes"]),
            sp["oldest_age_seconds"].as_f64().unwrap_or(0.0),
            n(&sp["replayed"]),
            if sp["full"].as_bool() == Some(true) {
                "  FULL: refusing records"
            } else {
                ""
            },
        );
        for p in sp["profiles"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:<24} records {:<8} bytes {:<10} oldest {:.1} s  replayed {}",
                p["profile"].as_str().unwrap_or("?"),
                n(&p["records"]),
                n(&p["bytes"]),
                p["oldest_age_seconds"].as_f64().unwrap_or(0.0),
                n(&p["replayed"]),
            );
        }
    } else {
        let _ = writeln!(out, "Spool: off");
    }
    let alarms = doc["alarms"].as_array().cloned().unwrap_or_default();
    if alarms.is_empty() {
        let _ = writeln!(out, "Alarms: none");
    } else {
        for a in alarms {
            let name = a["name"].as_str().unwrap_or("?");
            let _ = match a["server"].as_str().filter(|s| !s.is_empty()) {
                Some(server) => writeln!(out, "ALARM {name} on compliance server {server}"),
                None => writeln!(out, "ALARM {name}"),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_spool_per_profile_and_a_spool_alarm_without_a_server() {
        let doc = serde_json::json!({
            "gateway": "gw", "shards": 1, "uptime_seconds": 1.0, "routers": [], "servers": [],
            "events": {}, "config": {},
            "alarms": [{ "name": "SpoolFull", "server": "" }],
            "spool": {
                "enabled": true, "records": 7, "bytes": 2048, "max_bytes": 4096,
                "oldest_age_seconds": 12.5, "full": true, "replayed": 3,
                "profiles": [{ "profile": "Archive", "records": 7, "bytes": 2048,
                               "oldest_age_seconds": 12.5, "replayed": 3 }],
            },
        });
        let text = render(&doc);
        assert!(
            text.contains(
                "Spool: 7 record(s), 2048 byte(s) of 4096, oldest 12.5 s, replayed 3  FULL"
            ),
            "{text}"
        );
        assert!(
            text.contains("Archive") && text.contains("records 7"),
            "{text}"
        );
        assert!(text.contains("ALARM SpoolFull\n"), "{text}");
        let off = render(&serde_json::json!({ "spool": { "enabled": false } }));
        assert!(off.contains("Spool: off"), "{off}");
    }
}
