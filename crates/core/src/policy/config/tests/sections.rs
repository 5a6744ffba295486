//! Checks of validate.rs: gateway, listeners, timers, limits, routers.

use super::*;

#[test]
fn missing_gateway_name() {
    assert_eq!(
        diags("[gateway]\nshards = 1\n[[router]]\nname = \"imp1.example.com\"\nsecret = \"s\"\n[[server]]\nname = \"cs1\"\nhost = \"h\"\nport = 1\npassword = \"p\"\n"),
        ["1:1: error: missing `name` in [gateway]"]
    );
}

#[test]
fn gateway_name_must_be_a_domain() {
    let d = diags("[gateway]\nname = \"pali sade.example.com\"\n");
    assert!(d.contains(&"2:8: error: `name` is not a valid domain: the JID's domainpart contains the forbidden character ' '".to_string()), "{d:?}");
    let d = diags("[gateway]\nname = \"user@palisade.example.com\"\n");
    assert!(
        d.contains(
            &"2:8: error: `name` must be a bare domain, not a JID with '@' or '/'".to_string()
        ),
        "{d:?}"
    );
}

#[test]
fn domain_cannot_be_derived_from_a_single_label() {
    let text = BASE.replace("palisade.example.com", "palisade");
    assert_eq!(
        diags(&text),
        ["2:8: error: cannot derive `domain` from `name` \"palisade\": it has a single label"]
    );
}

#[test]
fn negative_shards() {
    let text = BASE.replace("[gateway]\n", "[gateway]\nshards = -2\n");
    assert_eq!(diags(&text), ["2:10: error: `shards` cannot be negative"]);
}

#[test]
fn accept_mode() {
    let text = BASE.replace("[gateway]\n", "[gateway]\naccept = \"roundrobin\"\n");
    assert_eq!(
        diags(&text),
        ["2:10: error: unknown accept mode \"roundrobin\""]
    );
    let reuse = BASE.replace("[gateway]\n", "[gateway]\naccept = \"reuseport\"\n");
    let config = load_str(&reuse, "t.toml").expect("valid").config;
    assert_eq!(config.gateway.accept, crate::policy::AcceptMode::ReusePort);
    let config = load_str(BASE, "t.toml").expect("valid").config;
    assert_eq!(config.gateway.accept, crate::policy::AcceptMode::Handoff);
}

#[test]
fn listen_addresses_must_parse() {
    assert_eq!(
        on_base("[listen]\nrouters = \"localhost:5275\"\ncompliance = \"127.0.0.1\"\n"),
        [
            "12:11: error: `routers` is not an IP:port address: \"localhost:5275\"",
            "13:14: error: `compliance` is not an IP:port address: \"127.0.0.1\"",
        ]
    );
    let text = BASE.replace("[gateway]\n", "[gateway]\nadmin = \"9180\"\n");
    assert_eq!(
        diags(&text),
        ["2:9: error: `admin` is not an IP:port address: \"9180\""]
    );
}

#[test]
fn bad_duration() {
    let text = format!("{BASE}[timers]\nevent_timeout = \"30\"\noutage_window = \"5 m\"\n");
    assert_eq!(
        diags(&text),
        [
            "12:17: error: `event_timeout`: the duration \"30\" has no unit (ms, s, m or h)",
            "13:17: error: `outage_window`: the duration contains whitespace",
        ]
    );
    assert_eq!(
        hints(&text)[0].as_deref(),
        Some("write \"30s\" for seconds")
    );
}

#[test]
fn zero_timers() {
    assert_eq!(
        on_base("[timers]\nhandshake_timeout = \"0s\"\nstanza_timeout = \"0ms\"\n"),
        [
            "12:21: error: `handshake_timeout` must be greater than zero",
            "13:18: error: `stanza_timeout` must be greater than zero",
        ]
    );
}

#[test]
fn event_timeout_longer_than_outage_window_is_only_a_warning() {
    // Valid if unusual: queued events then end when the outage window closes.
    assert_eq!(
        on_base("[timers]\noutage_window = \"20s\"\n"),
        ["12:17: warning: `event_timeout` (30s) is longer than `outage_window` (20s)"]
    );
    assert_eq!(
        on_base("[timers]\nevent_timeout = \"6m\"\n"),
        ["12:17: warning: `event_timeout` (6m) is longer than `outage_window` (5m)"]
    );
}

#[test]
fn reconnect_min_above_max() {
    assert_eq!(
        on_base("[timers]\nreconnect_min = \"20s\"\n"),
        ["12:17: error: `reconnect_min` (20s) is longer than `reconnect_max` (10s)"]
    );
}

#[test]
fn keepalive_not_below_dead_interval() {
    assert_eq!(
        on_base("[timers]\nkeepalive = \"90s\"\n"),
        ["12:13: error: `keepalive` (90s) is not shorter than `dead_interval` (90s)"]
    );
}

#[test]
fn zero_or_negative_limits() {
    assert_eq!(
        on_base("[limits]\nmax_depth = 0\nqueue_per_server = -5\nmax_in_flight = 0\n"),
        [
            "12:13: error: `max_depth` must be greater than zero",
            "13:20: error: `queue_per_server` must be greater than zero",
            "14:17: error: `max_in_flight` must be greater than zero",
        ]
    );
}

#[test]
fn router_name_must_be_a_domain() {
    let d = on_base("[[router]]\nname = \"imp2@example.com\"\nsecret = \"s\"\n");
    assert_eq!(
        d,
        ["12:8: error: `name` must be a bare domain, not a JID with '@' or '/'"]
    );
}

#[test]
fn duplicate_router_names_ignore_case() {
    let d = on_base("[[router]]\nname = \"IMP1.example.com\"\nsecret = \"s\"\n");
    assert_eq!(
        d,
        ["12:8: error: duplicate router `IMP1.example.com` (first defined on line 4)"]
    );
}

#[test]
fn empty_router_secret() {
    let d = on_base("[[router]]\nname = \"imp2.example.com\"\nsecret = \"\"\n");
    assert_eq!(
        d,
        ["13:10: error: the secret of router `imp2.example.com` is empty"]
    );
}

#[test]
fn invalid_router_node() {
    let d = on_base("[[router]]\nname = \"imp2.example.com\"\nsecret = \"s\"\nnode = \"imp 2\"\n");
    assert_eq!(
        d,
        ["14:8: error: invalid node \"imp 2\": use letters, digits, '-', '_' and '.'"]
    );
}

#[test]
fn duplicate_router_node() {
    let d = on_base("[[router]]\nname = \"imp2.example.com\"\nsecret = \"s\"\nnode = \"imp1\"\n");
    assert_eq!(
        d,
        ["14:8: error: node `imp1` is already used by the router on line 4"]
    );
}

#[test]
fn bad_router_connect() {
    let d = on_base(
        "[[router]]\nname = \"xmpp.example.com\"\nsecret = \"s\"\nconnect = \"127.0.0.1\"\n",
    );
    assert_eq!(
        d,
        ["14:11: error: `connect` must be host:port, found \"127.0.0.1\""]
    );
    let d = on_base("[[router]]\nname = \"xmpp.example.com\"\nsecret = \"s\"\nconnect = \"xmpp.example.com:0\"\n");
    assert_eq!(
        d,
        ["14:11: error: `connect` must be host:port, found \"xmpp.example.com:0\""]
    );
}

#[test]
fn nothing_to_connect_is_a_file_level_warning() {
    let d = diags("[gateway]\nname = \"palisade.example.com\"\n");
    assert_eq!(
        d,
        [
            "0:0: warning: no [[router]] is configured: no router can connect",
            "0:0: warning: no [[server]] is configured: every event passes unchecked",
        ]
    );
    assert!(load_str("[gateway]\nname = \"palisade.example.com\"\n", "t").is_ok());
}

#[test]
fn shards_have_an_upper_bound() {
    let text = BASE.replace("[gateway]\n", "[gateway]\nshards = 100000\n");
    let d = diags(&text);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].starts_with("2:10: error: `shards` is 100000, more than the maximum of 256: "),
        "{d:?}"
    );
    assert!(d[0].contains("locked memory"), "{d:?}");
    let most = BASE.replace("[gateway]\n", "[gateway]\nshards = 256\n");
    assert_eq!(loaded(&most).gateway.shards, 256);
}

#[test]
fn connection_caps() {
    let c = loaded(BASE);
    assert_eq!(
        (c.limits.max_connections, c.limits.max_unauthenticated),
        (512, 128)
    );
    let c = loaded(&format!("{BASE}[limits]\nmax_connections = 40\n"));
    assert_eq!(
        (c.limits.max_connections, c.limits.max_unauthenticated),
        (40, 10),
        "unset, max_unauthenticated follows max_connections"
    );
    let c = loaded(&format!("{BASE}[limits]\nmax_connections = 2\n"));
    assert_eq!(c.limits.max_unauthenticated, 1);
    let c = loaded(&format!(
        "{BASE}[limits]\nmax_connections = 8\nmax_unauthenticated = 8\n"
    ));
    assert_eq!(c.limits.max_unauthenticated, 8);
    assert_eq!(
        on_base("[limits]\nmax_connections = 8\nmax_unauthenticated = 9\n"),
        ["13:23: error: `max_unauthenticated` (9) is larger than `max_connections` (8)"]
    );
    assert_eq!(
        on_base("[limits]\nmax_connections = 0\n"),
        ["12:19: error: `max_connections` must be greater than zero"]
    );
}

#[test]
fn share_ports() {
    assert!(!loaded(BASE).gateway.share_ports);
    let text = BASE.replace("[gateway]\n", "[gateway]\nshare_ports = true\n");
    assert!(loaded(&text).gateway.share_ports);
    let text = BASE.replace("[gateway]\n", "[gateway]\nshare_ports = \"yes\"\n");
    assert_eq!(
        diags(&text),
        ["2:15: error: `share_ports` must be true or false, found a string"]
    );
}

#[test]
fn spool_section() {
    let text = format!("{BASE}\n[spool]\ndir = \"/var/lib/palisade/spool\"\nmax_bytes = 2097152\n");
    let config = crate::policy::load_str(&text, "t.toml").unwrap().config;
    assert_eq!(
        config.spool.dir.as_deref(),
        Some(std::path::Path::new("/var/lib/palisade/spool"))
    );
    assert_eq!(config.spool.max_bytes, 2 << 20);
    let config = crate::policy::load_str(BASE, "t.toml").unwrap().config;
    assert_eq!(config.spool.dir, None, "off by default");
    assert_eq!(config.spool.max_bytes, 1 << 30);
    let d = diags(&format!(
        "{BASE}\n[spool]\ndir = \"/s\"\nmax_bytes = 1000\n"
    ));
    assert!(
        d.iter()
            .any(|m| m.contains("`max_bytes` (1000) is below 1 MiB")),
        "{d:?}"
    );
    let d = diags(&format!("{BASE}\n[spool]\ndirectory = \"/s\"\n"));
    assert!(d.iter().any(|m| m.contains("directory")), "{d:?}");
}

#[test]
fn log_level_and_format() {
    let config = load_str(BASE, "t.toml").expect("valid").config;
    assert_eq!(config.log, LogConfig::default());
    assert_eq!(
        (config.log.level, config.log.format),
        (LogLevel::Info, LogFormat::Text)
    );
    let config = loaded(&format!(
        "{BASE}[log]\nlevel = \"debug\"\nformat = \"json\"\n"
    ));
    assert_eq!(
        (config.log.level, config.log.format),
        (LogLevel::Debug, LogFormat::Json)
    );
    assert_eq!(
        on_base("[log]\nlevel = \"verbose\"\nformat = \"xml\"\n"),
        [
            "12:9: error: unknown log level \"verbose\"",
            "13:10: error: unknown log format \"xml\"",
        ]
    );
    let d = on_base("[log]\nlevl = \"info\"\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("12:1: error: unknown key `levl`"), "{d:?}");
}
