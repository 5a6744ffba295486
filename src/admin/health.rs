//! `/readyz`: whether the gateway can do its job, decided from the merged summary. Ready when
//! every shard answered, every router listener is open, and every profile in use (assigned to
//! at least one server still in the configuration) has an ACTIVE compliance server, one with
//! an active stream. Otherwise the reasons, each naming what is missing.
//!
//! Pure: the runtime gathers the summary and serves the answer.

use super::snapshot::Listening;
use super::status::Summary;

/// Why the gateway is not ready; empty when it is.
pub fn not_ready(s: &Summary) -> Vec<String> {
    let mut reasons = Vec::new();
    if s.listeners.len() < s.shards_expected {
        reasons.push(format!(
            "{} of {} shards did not answer in time",
            s.shards_expected - s.listeners.len(),
            s.shards_expected
        ));
    }
    if s.listeners.contains(&Listening::ShuttingDown) {
        reasons.push("shutting down".to_owned());
    } else if s.listeners.contains(&Listening::Starting) {
        reasons.push("router listener not open yet".to_owned());
    }
    // Profiles in the order of the summary's servers, each with its servers' states.
    let mut profiles: Vec<(&str, Vec<(&str, &str)>)> = Vec::new();
    for v in s.servers.iter().filter(|v| v.state != "retired") {
        match profiles.iter_mut().find(|(p, _)| *p == v.profile) {
            Some((_, servers)) => servers.push((&v.name, v.state)),
            None => profiles.push((&v.profile, vec![(&v.name, v.state)])),
        }
    }
    for (profile, servers) in profiles {
        if !servers.iter().any(|(_, state)| *state == "up") {
            let list: Vec<String> = servers
                .iter()
                .map(|(name, state)| format!("{name} {state}"))
                .collect();
            reasons.push(format!(
                "profile {profile} has no ACTIVE compliance server ({})",
                list.join(", ")
            ));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::ServerSummary;
    use crate::engine::{Counters, ServerCounters, Window};

    fn server(name: &str, profile: &str, state: &'static str) -> ServerSummary {
        ServerSummary {
            name: name.into(),
            component: String::new(),
            profile: profile.into(),
            state,
            streams: 0,
            queued: 0,
            counters: ServerCounters::default(),
            latency_us: [0; 4],
            answers: 0,
            recent_latency_us: [0; 4],
            recent_answers: 0,
        }
    }

    fn summary(servers: Vec<ServerSummary>, listeners: Vec<Listening>) -> Summary {
        Summary {
            gateway: "gw".into(),
            shards: listeners.len(),
            uptime: Default::default(),
            counters: Counters::new(1, servers.len()),
            runtime: Default::default(),
            in_flight: 0,
            keys_in_flight: 0,
            servers,
            routers: Vec::new(),
            alarms: Vec::new(),
            profiles: Vec::new(),
            config: serde_json::Value::Null,
            recent: Window::empty(0),
            shards_expected: 2,
            listeners,
            started_unix: 0.0,
            spool: None,
        }
    }

    #[test]
    fn ready_needs_listeners_and_an_active_server_per_profile_in_use() {
        let open = vec![Listening::Open, Listening::NotHere];
        let s = summary(
            vec![
                server("cs1", "Wall", "down"),
                server("cs2", "Wall", "up"),
                server("cs3", "Default", "outage"),
                server("old", "Gone", "retired"),
            ],
            open.clone(),
        );
        assert_eq!(
            not_ready(&s),
            ["profile Default has no ACTIVE compliance server (cs3 outage)"]
        );
        let s = summary(vec![server("cs2", "Wall", "up")], open);
        assert!(not_ready(&s).is_empty());
        let s = summary(vec![server("cs2", "Wall", "up")], vec![Listening::Starting]);
        assert_eq!(
            not_ready(&s),
            [
                "1 of 2 shards did not answer in time",
                "router listener not open yet"
            ]
        );
        let s = summary(Vec::new(), vec![Listening::Open, Listening::ShuttingDown]);
        assert_eq!(not_ready(&s), ["shutting down"]);
    }
}
