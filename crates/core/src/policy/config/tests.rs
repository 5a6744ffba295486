//! One test per configuration check: each asserts the exact message and where it points.
//!
//! Documents are built from a valid base so that each test shows only its own mistake; the
//! line numbers in the assertions are those of the full document.

// `load_file` is tested against real files in a temporary directory.
#![allow(clippy::disallowed_methods)]

use super::*;

mod profiles;
mod sections;
mod servers;
mod shape;
use crate::policy::profile::{Handling, SYSTEM_DEFAULT_PROFILE};

/// Gateway and one router: 5 lines.
const GATEWAY_ROUTER: &str = r#"[gateway]
name = "palisade.example.com"
[[router]]
name = "imp1.example.com"
secret = "s3cret"
"#;

/// Plus one valid outbound server: 10 lines in all.
const BASE: &str = r#"[gateway]
name = "palisade.example.com"
[[router]]
name = "imp1.example.com"
secret = "s3cret"
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 7999
password = "pw"
"#;

/// Every diagnostic as `LINE:COL: severity: message`.
fn diags(text: &str) -> Vec<String> {
    let all = match load_str(text, "t.toml") {
        Ok(loaded) => loaded.warnings,
        Err(diags) => diags,
    };
    all.iter()
        .map(|d| {
            format!(
                "{}:{}: {}: {}",
                d.line,
                d.col,
                d.severity.as_str(),
                d.message
            )
        })
        .collect()
}

/// The hints, in the same order as [`diags`].
fn hints(text: &str) -> Vec<Option<String>> {
    match load_str(text, "t.toml") {
        Ok(loaded) => loaded.warnings,
        Err(diags) => diags,
    }
    .into_iter()
    .map(|d| d.hint)
    .collect()
}

fn on_base(extra: &str) -> Vec<String> {
    diags(&format!("{BASE}{extra}"))
}

fn on_gateway_router(extra: &str) -> Vec<String> {
    diags(&format!("{GATEWAY_ROUTER}{extra}"))
}

fn loaded(text: &str) -> Config {
    match load_str(text, "t.toml") {
        Ok(l) => {
            assert!(l.warnings.is_empty(), "{:?}", l.warnings);
            l.config
        }
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

// ---- valid configurations -------------------------------------------------------------------

#[test]
fn base_is_valid_and_fills_defaults() {
    let c = loaded(BASE);
    assert_eq!(c.gateway.domain, "example.com");
    assert_eq!(c.gateway.shards, 0);
    assert_eq!(c.listen.routers.to_string(), "127.0.0.1:5275");
    assert_eq!(c.listen.compliance, None);
    assert_eq!(c.timers, Timers::default());
    assert_eq!(c.timers.event_timeout, Duration::from_secs(30));
    assert_eq!(c.timers.outage_window, Duration::from_secs(300));
    assert_eq!(c.timers.reconnect_min, Duration::from_millis(250));
    assert_eq!(c.timers.stanza_timeout, Duration::from_secs(30));
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.limits.max_stanza_bytes, 262_144);
    assert_eq!(c.limits.max_in_flight, 65_536);
    assert_eq!(c.routers[0].node, "imp1");
    let s = &c.servers[0];
    assert_eq!(s.component, "op-cs1.palisade-example-com");
    assert_eq!(
        (s.mode, s.profile.as_str()),
        (ServerMode::Outbound, SYSTEM_DEFAULT_PROFILE)
    );
    assert_eq!(s.profile_id, ProfileId::SYSTEM_DEFAULT);
    assert_eq!(c.profiles.len(), 1);
    assert_eq!(c.priority, vec![ProfileId::SYSTEM_DEFAULT]);
}

#[test]
fn every_key_of_config_md_is_accepted() {
    let text = r#"
[gateway]
name = "palisade.example.com"
domain = "corp.example"
shards = 4
admin = "127.0.0.1:9180"
[listen]
routers = "0.0.0.0:5275"
compliance = "[::1]:5276"
[timers]
event_timeout = "2s"
outage_window = "10s"
reconnect_min = "100ms"
reconnect_max = "1s"
keepalive = "1s"
dead_interval = "3s"
handshake_timeout = "1s"
stanza_timeout = "5s"
[limits]
max_stanza_bytes = 1024
max_depth = 8
max_attributes = 16
queue_per_server = 10
max_in_flight = 100
[[router]]
name = "imp1.example.com"
secret = "a"
node = "nodeA"
[[router]]
name = "xmpp.example.com"
secret = "b"
connect = "127.0.0.1:5347"
[[server]]
name = "cs1"
host = "cs1.example.com"
port = 7999
password = "p"
mode = "inbound"
profile = "Log"
nodes = ["nodeA"]
component = "compliance1.example.com"
connections = 2
[[profile]]
name = "Log"
description = "IM logging"
events = [
  { event = "es_OUT", packet = "message", handling = "pass", fire_and_forget = false },
]
[routing]
priority = ["Log"]
"#;
    let c = loaded(text);
    assert_eq!(c.gateway.domain, "corp.example");
    assert_eq!(c.gateway.shards, 4);
    assert_eq!(c.gateway.admin.map(|a| a.port()), Some(9180));
    assert_eq!(c.listen.compliance.map(|a| a.port()), Some(5276));
    assert_eq!(c.timers.event_timeout, Duration::from_secs(2));
    assert_eq!(c.timers.stanza_timeout, Duration::from_secs(5));
    assert_eq!(c.limits.max_in_flight, 100);
    assert_eq!(c.routers[0].node, "nodeA");
    assert_eq!(c.routers[1].node, "xmpp");
    assert_eq!(c.routers[1].connect.as_deref(), Some("127.0.0.1:5347"));
    let s = &c.servers[0];
    assert_eq!(s.component, "compliance1.example.com");
    assert_eq!((s.mode, s.connections), (ServerMode::Inbound, Some(2)));
    assert_eq!(s.profile_id, ProfileId(1));
    assert_eq!(c.profiles[1].description, "IM logging");
    assert_eq!(c.priority, vec![ProfileId(1), ProfileId::SYSTEM_DEFAULT]);
}

#[test]
fn events_may_be_written_as_array_of_tables() {
    let c = loaded(&format!(
        "{BASE}[[profile]]\nname = \"P\"\n[[profile.events]]\nevent = \"onLeave\"\nhandling = \"pass\"\n"
    ));
    assert_eq!(c.profiles[1].entries.len(), 1);
    assert_eq!(c.profiles[1].entries[0].handling, Handling::Pass);
}

#[test]
fn default_priority_is_definition_order_with_builtin_first() {
    let c = loaded(&format!(
        "{BASE}[[profile]]\nname = \"B\"\nevents = [{{ event = \"es_IN\" }}]\n\
         [[profile]]\nname = \"A\"\nevents = [{{ event = \"es_IN\" }}]\n"
    ));
    let names: Vec<_> = c
        .priority
        .iter()
        .map(|&id| c.profiles[id.index()].name.as_str())
        .collect();
    assert_eq!(names, [SYSTEM_DEFAULT_PROFILE, "B", "A"]);
}

#[test]
fn partial_priority_puts_the_rest_after_in_definition_order() {
    let c = loaded(&format!(
        "{BASE}[[profile]]\nname = \"B\"\nevents = [{{ event = \"es_IN\" }}]\n\
         [[profile]]\nname = \"A\"\nevents = [{{ event = \"es_IN\" }}]\n\
         [routing]\npriority = [\"A\"]\n"
    ));
    let names: Vec<_> = c
        .priority
        .iter()
        .map(|&id| c.profiles[id.index()].name.as_str())
        .collect();
    assert_eq!(names, ["A", SYSTEM_DEFAULT_PROFILE, "B"]);
}

#[test]
fn embedded_default_is_valid_and_as_documented() {
    let loaded = load_str(DEFAULT_TOML, "default.toml").unwrap_or_else(|d| panic!("{d:?}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = default_config();
    assert_eq!(c.gateway.name, "palisade.example.com");
    assert_eq!(c.gateway.domain, "example.com");
    assert_eq!(c.listen.routers.to_string(), "127.0.0.1:5275");
    assert_eq!(
        c.listen.compliance.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:5276")
    );
    assert!(c.listen.routers.ip().is_loopback());
    assert_eq!(c.routers.len(), 1);
    assert_eq!(
        (c.routers[0].name.as_str(), c.routers[0].node.as_str()),
        ("imp1.example.com", "imp1")
    );
    assert_eq!(c.servers.len(), 1);
    let s = &c.servers[0];
    assert_eq!(
        (s.name.as_str(), s.host.as_str(), s.port),
        ("cs1", "127.0.0.1", 7999)
    );
    assert_eq!(
        (s.mode, s.profile.as_str()),
        (ServerMode::Outbound, SYSTEM_DEFAULT_PROFILE)
    );
    assert_eq!(s.component, "op-cs1.palisade-example-com");
    assert_eq!(c.timers, Timers::default());
    assert_eq!(c.limits, Limits::default());
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let c = loaded(BASE);
    let text = format!("{:?} {:?}", c.routers[0], c.servers[0]);
    assert!(
        !text.contains("s3cret") && !text.contains("\"pw\""),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
}

#[test]
fn generated_component_names_follow_config_md() {
    assert_eq!(
        generated_component_name("cs1", "palisade.example.com", "example.com"),
        "op-cs1.palisade-example-com"
    );
    assert_eq!(
        generated_component_name("gwydlvm131", "gwydlvm1153.cisco.com", "cisco.com"),
        "op-gwydlvm131.gwydlvm1153-cisco-com"
    );
}

// ---- reporting ------------------------------------------------------------------------------

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let d = on_base("[timers]\nkeepalive = \"0s\"\n[limits]\nmax_depth = 0\n[[profile]]\nname = \"a b\"\nevents = [{ event = \"nope\" }]\n");
    let lines: Vec<_> = d
        .iter()
        .map(|l| l.split(':').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(lines, ["12", "14", "16", "17"], "{d:?}");
}
