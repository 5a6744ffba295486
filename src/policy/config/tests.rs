//! One test per configuration check: each asserts the exact message and where it points.
//!
//! Documents are built from a valid base so that each test shows only its own mistake; the
//! line numbers in the assertions are those of the full document.

use super::*;
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

// ---- load.rs: syntax and shape --------------------------------------------------------------

#[test]
fn toml_syntax_error_is_located() {
    let d = diags("[gateway]\nname = \"x.y\"\nshards = = 2\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("3:10: error: TOML syntax: "), "{d:?}");
}

#[test]
fn unknown_key_with_suggestion() {
    let text = format!("{GATEWAY_ROUTER}[[server]]\nname = \"cs1\"\nhost = \"h\"\nprot = 1\nport = 2\npassword = \"p\"\n");
    assert_eq!(
        diags(&text),
        ["9:1: error: unknown key `prot` in [[server]]"]
    );
    assert_eq!(hints(&text), [Some("did you mean `port`?".to_string())]);
}

#[test]
fn unknown_key_without_close_match_lists_known_keys() {
    let text = format!("{BASE}[limits]\nwhatever = 1\n");
    assert_eq!(
        diags(&text),
        ["12:1: error: unknown key `whatever` in [limits]"]
    );
    assert_eq!(
        hints(&text),
        [Some("known keys here: max_stanza_bytes, max_depth, max_attributes, queue_per_server, max_in_flight".to_string())]
    );
}

#[test]
fn unknown_top_level_table() {
    let text = format!("{BASE}[servers]\n");
    assert_eq!(
        diags(&text),
        ["11:2: error: unknown key `servers` at the top level"]
    );
    assert_eq!(hints(&text), [Some("did you mean `server`?".to_string())]);
}

#[test]
fn unknown_key_in_an_event_entry() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\", wait = true }]\n");
    assert_eq!(
        d,
        ["13:30: error: unknown key `wait` in an entry of `events`"]
    );
}

#[test]
fn string_of_wrong_type() {
    let text = format!("{BASE}[listen]\nrouters = 5275\n");
    assert_eq!(
        diags(&text),
        ["12:11: error: `routers` must be a string, found an integer"]
    );
    assert_eq!(hints(&text), [Some("write routers = \"5275\"".to_string())]);
}

#[test]
fn duration_of_wrong_type() {
    let text = format!("{BASE}[timers]\nkeepalive = 30\n");
    assert_eq!(
        diags(&text),
        ["12:13: error: `keepalive` must be a duration string, found an integer"]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "write keepalive = \"30s\" (a duration is a string with a unit)".to_string()
        )]
    );
}

#[test]
fn integer_of_wrong_type() {
    let text = format!("{GATEWAY_ROUTER}[[server]]\nname = \"cs1\"\nhost = \"h\"\nport = \"7999\"\npassword = \"p\"\n");
    assert_eq!(
        diags(&text),
        ["9:8: error: `port` must be an integer, found a string"]
    );
    assert_eq!(
        hints(&text),
        [Some("remove the quotes: port = 7999".to_string())]
    );
}

#[test]
fn boolean_of_wrong_type() {
    let d = on_base(
        "[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\", fire_and_forget = \"true\" }]\n",
    );
    assert_eq!(
        d,
        ["13:48: error: `fire_and_forget` must be true or false, found a string"]
    );
}

#[test]
fn string_array_of_wrong_type() {
    let d = on_gateway_router(
        "[[server]]\nname = \"cs1\"\nhost = \"h\"\nport = 1\npassword = \"p\"\nnodes = \"imp1\"\n",
    );
    assert_eq!(
        d,
        ["11:9: error: `nodes` must be an array of strings, found a string"]
    );
    let d = on_gateway_router("[[server]]\nname = \"cs1\"\nhost = \"h\"\nport = 1\npassword = \"p\"\nnodes = [\"imp1\", 2]\n");
    assert_eq!(
        d,
        ["11:18: error: `nodes` must hold only strings, found an integer"]
    );
}

#[test]
fn table_of_wrong_type() {
    let d = diags("gateway = \"palisade.example.com\"\n");
    assert!(
        d.contains(&"1:11: error: `gateway` must be a table, found a string".to_string()),
        "{d:?}"
    );
}

#[test]
fn single_bracket_array_section() {
    let text = format!("{GATEWAY_ROUTER}[server]\nname = \"cs1\"\n");
    assert_eq!(
        diags(&text),
        ["6:1: error: `server` must be an array of tables, found a table"]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "write [[server]] (double brackets): there can be several".to_string()
        )]
    );
}

#[test]
fn event_entry_that_is_not_a_table() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [\"es_OUT\"]\n");
    assert_eq!(
        d,
        ["13:11: error: each entry of `events` must be a table, found a string"]
    );
}

#[test]
fn missing_required_keys() {
    assert_eq!(
        diags("[gateway]\nname = \"g.example.com\"\n[[router]]\nname = \"imp1.example.com\"\n[[server]]\nname = \"cs1\"\nhost = \"h\"\nport = 1\n"),
        ["3:1: error: missing `secret` in [[router]]", "5:1: error: missing `password` in [[server]]"]
    );
    assert_eq!(
        on_base("[[profile]]\ndescription = \"x\"\n"),
        ["11:1: error: missing `name` in [[profile]]"]
    );
    assert_eq!(
        on_base("[[profile]]\nname = \"P\"\nevents = [{ handling = \"pass\" }]\n"),
        ["13:11: error: missing `event` in an entry of `events`"]
    );
    assert_eq!(
        on_base(
            "[[router]]\nsecret = \"x\"\n[[server]]\npassword = \"p\"\nhost = \"h\"\nport = 1\n"
        ),
        [
            "11:1: error: missing `name` in [[router]]",
            "13:1: error: missing `name` in [[server]]"
        ]
    );
}

// ---- validate.rs: gateway, listeners, timers, limits, routers --------------------------------

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
fn event_timeout_longer_than_outage_window() {
    assert_eq!(
        on_base("[timers]\noutage_window = \"20s\"\n"),
        ["12:17: error: `event_timeout` (30s) is longer than `outage_window` (20s)"]
    );
    assert_eq!(
        on_base("[timers]\nevent_timeout = \"6m\"\n"),
        ["12:17: error: `event_timeout` (6m) is longer than `outage_window` (5m)"]
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

// ---- profiles.rs ----------------------------------------------------------------------------

#[test]
fn system_default_profile_cannot_be_redefined() {
    let d = on_base("[[profile]]\nname = \"SystemDefaultComplianceProfile\"\nevents = []\n");
    assert_eq!(
        d,
        ["12:8: error: `SystemDefaultComplianceProfile` is built in and cannot be redefined"]
    );
    let d = on_base("[[profile]]\nname = \"systemdefaultcomplianceprofile\"\n");
    assert_eq!(
        d,
        ["12:8: error: `SystemDefaultComplianceProfile` is built in and cannot be redefined"]
    );
}

#[test]
fn profile_names_are_letters_and_digits() {
    let d = on_base("[[profile]]\nname = \"Ethical Wall\"\nevents = [{ event = \"es_IN\" }]\n");
    assert_eq!(d, ["12:8: error: invalid profile name \"Ethical Wall\": a profile name may contain only letters and digits, not ' '"]);
}

#[test]
fn duplicate_profile_names() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\" }]\n[[profile]]\nname = \"P\"\nevents = [{ event = \"es_OUT\" }]\n");
    assert_eq!(
        d,
        ["15:8: error: duplicate profile `P` (first defined on line 12)"]
    );
}

#[test]
fn profile_without_events_warns() {
    let d = on_base("[[profile]]\nname = \"Empty\"\n");
    assert_eq!(
        d,
        ["12:8: warning: profile `Empty` has no events: it matches nothing"]
    );
}

#[test]
fn unknown_event_name_suggests_the_nearest() {
    let text =
        format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"onBeforeJion\" }}]\n");
    assert_eq!(
        diags(&text),
        ["13:21: error: unknown event `onBeforeJoin`".replace("onBeforeJoin", "onBeforeJion")]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "did you mean `onBeforeJoin`? (`palisade events` lists every event)".to_string()
        )]
    );
}

#[test]
fn packet_on_a_tc_event() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onBeforeJoin\", packet = \"message\" }]\n");
    assert_eq!(
        d,
        ["13:46: error: `packet` applies to JSM events only; `onBeforeJoin` is a TC event"]
    );
}

#[test]
fn unknown_packet_type() {
    let text = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_IN\", packet = \"mesage\" }}]\n");
    assert_eq!(
        diags(&text),
        ["13:39: error: unknown packet type \"mesage\""]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "expected one of all, iq, message, presence, subscription; did you mean `message`?"
                .to_string()
        )]
    );
}

#[test]
fn unknown_handling() {
    let d = on_base(
        "[[profile]]\nname = \"P\"\nevents = [{ event = \"es_IN\", handling = \"block\" }]\n",
    );
    assert_eq!(d, ["13:41: error: unknown handling \"block\""]);
}

#[test]
fn duplicate_event_and_packet_in_one_profile() {
    let d = on_base(
        "[[profile]]\nname = \"P\"\nevents = [\n  { event = \"es_IN\", packet = \"message\" },\n  { event = \"es_IN\", packet = \"iq\" },\n  { event = \"es_IN\", packet = \"message\", handling = \"pass\" },\n]\n",
    );
    assert_eq!(
        d,
        ["16:13: error: `es_IN` for packet `message` is already in profile `P` (line 14)"]
    );
}

#[test]
fn notify_only_event_settings_warn() {
    let d = on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onServiceReconfig\", handling = \"bounce\" }]\n");
    assert_eq!(d, ["13:21: warning: `onServiceReconfig` is a notification only: it is always sent fire-and-forget and always passes"]);
    assert!(
        on_base("[[profile]]\nname = \"P\"\nevents = [{ event = \"onServiceReconfig\" }]\n")
            .is_empty()
    );
}

#[test]
fn bounce_with_fire_and_forget_quotes_the_seed_caution() {
    let text = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_OUT\", fire_and_forget = true }}]\n");
    let caution = "If a combination of Bounce, and Fire and Forget is selected, an event to which this applies will be passed to the compliance server and then discarded. This means it will not be processed further by IM and Presence Service. Use this combination with care.";
    assert_eq!(
        diags(&text),
        [format!("13:49: warning: `es_OUT` in profile `P` combines bounce with fire-and-forget: {caution}")]
    );
    assert!(
        load_str(&text, "t").is_ok(),
        "a warning does not make the file invalid"
    );
    let pass = format!("{BASE}[[profile]]\nname = \"P\"\nevents = [{{ event = \"es_OUT\", handling = \"pass\", fire_and_forget = true }}]\n");
    assert!(diags(&pass).is_empty());
}

#[test]
fn priority_naming_an_unknown_profile() {
    let text = format!("{BASE}[[profile]]\nname = \"EthicalWall\"\nevents = [{{ event = \"es_IN\" }}]\n[routing]\npriority = [\"EthicalWal\"]\n");
    assert_eq!(
        diags(&text),
        ["15:13: error: routing priority names unknown profile `EthicalWal`"]
    );
    assert_eq!(
        hints(&text),
        [Some("did you mean `EthicalWall`?".to_string())]
    );
}

#[test]
fn priority_listing_a_profile_twice() {
    let d = on_base("[routing]\npriority = [\n  \"SystemDefaultComplianceProfile\",\n  \"SystemDefaultComplianceProfile\",\n]\n");
    assert_eq!(d, ["14:3: error: profile `SystemDefaultComplianceProfile` is listed twice in the routing priority (first on line 13)"]);
}

// ---- servers.rs -----------------------------------------------------------------------------

const SERVER: &str =
    "[[server]]\nname = \"cs2\"\nhost = \"127.0.0.1\"\nport = 8000\npassword = \"pw\"\n";

#[test]
fn server_names_are_letters_and_digits() {
    let d = on_base(&SERVER.replace("cs2", "cs_2"));
    assert_eq!(
        d,
        ["12:8: error: invalid server name \"cs_2\": use letters and digits only, not '_'"]
    );
}

#[test]
fn duplicate_server_names_ignore_case() {
    let d = on_base(&SERVER.replace("cs2", "CS1"));
    assert_eq!(
        d,
        ["12:8: error: duplicate server `CS1` (first defined on line 7)"]
    );
}

#[test]
fn unknown_mode() {
    let d = on_base(&format!("{SERVER}mode = \"dial\"\n"));
    assert_eq!(d, ["16:8: error: unknown mode \"dial\""]);
}

#[test]
fn inbound_server_needs_a_compliance_listener() {
    let d = on_base(&format!("{SERVER}mode = \"inbound\"\n"));
    assert_eq!(
        d,
        ["16:8: error: server `cs2` is inbound but [listen] has no `compliance` address"]
    );
    let ok = on_base(&format!(
        "{SERVER}mode = \"inbound\"\n[listen]\ncompliance = \"127.0.0.1:5276\"\n"
    ));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn inbound_server_needs_no_host_or_port() {
    let text = format!("{BASE}[listen]\ncompliance = \"127.0.0.1:5276\"\n[[server]]\nname = \"cs2\"\npassword = \"p\"\nmode = \"inbound\"\n");
    let c = loaded(&text);
    assert_eq!((c.servers[1].host.as_str(), c.servers[1].port), ("", 0));
}

#[test]
fn host_characters_follow_the_seed() {
    let text = format!("{BASE}{}", SERVER.replace("127.0.0.1", "10.0.0.1:7999"));
    assert_eq!(
        diags(&text),
        ["13:8: error: invalid host \"10.0.0.1:7999\": character ':' is not allowed"]
    );
    assert_eq!(hints(&text), [Some("put the port in `port`".to_string())]);
    let d = on_base(&SERVER.replace("127.0.0.1", "cs two"));
    assert_eq!(
        d,
        ["13:8: error: invalid host \"cs two\": character ' ' is not allowed"]
    );
    assert!(on_base(&SERVER.replace("127.0.0.1", "A-b_c.d\\\\e")).is_empty());
}

#[test]
fn outbound_server_needs_host_and_port() {
    let d = on_base("[[server]]\nname = \"cs2\"\npassword = \"p\"\n");
    assert_eq!(
        d,
        [
            "11:1: error: missing `host` in [[server]] `cs2`: an outbound server is dialled",
            "11:1: error: missing `port` in [[server]] `cs2`: an outbound server is dialled",
        ]
    );
}

#[test]
fn port_range() {
    assert_eq!(
        on_base(&SERVER.replace("8000", "0")),
        ["14:8: error: `port` must be between 1 and 65535"]
    );
    assert_eq!(
        on_base(&SERVER.replace("8000", "65536")),
        ["14:8: error: `port` must be between 1 and 65535"]
    );
}

#[test]
fn empty_password() {
    let d = on_base(&SERVER.replace("\"pw\"", "\"\""));
    assert_eq!(d, ["15:12: error: the password of server `cs2` is empty"]);
}

#[test]
fn server_assigned_an_unknown_profile() {
    let text = format!("{BASE}{SERVER}profile = \"SystemDefault\"\n");
    assert_eq!(
        diags(&text),
        ["16:11: error: server `cs2` is assigned unknown profile `SystemDefault`"]
    );
    assert_eq!(
        hints(&text),
        [Some(
            "define it with [[profile]] or use SystemDefaultComplianceProfile".to_string()
        )]
    );
}

#[test]
fn server_node_that_no_router_has_warns() {
    let text = format!("{BASE}{SERVER}nodes = [\"imp1\", \"imp9\"]\n");
    assert_eq!(
        diags(&text),
        ["16:18: warning: server `cs2` serves node `imp9`, which no [[router]] has"]
    );
    assert_eq!(hints(&text), [Some("router nodes: imp1".to_string())]);
}

#[test]
fn component_override_must_be_a_domain() {
    let d = on_base(&format!("{SERVER}component = \"op cs2\"\n"));
    assert_eq!(d, ["16:13: error: `component` is not a valid domain: the JID's domainpart contains the forbidden character ' '"]);
}

#[test]
fn duplicate_component_names() {
    let d = on_base(&format!(
        "{SERVER}component = \"OP-cs1.palisade-example-com\"\n"
    ));
    assert_eq!(d, ["16:13: error: component name `OP-cs1.palisade-example-com` is already used by the server on line 7"]);
}

#[test]
fn zero_connections() {
    let d = on_base(&format!("{SERVER}connections = 0\n"));
    assert_eq!(d, ["16:15: error: `connections` must be greater than zero"]);
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

#[test]
fn report_for_an_invalid_file() {
    let dir = std::env::temp_dir().join(format!("palisade-cfg-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("bad.toml");
    let _ = std::fs::write(&path, format!("{BASE}[timers]\nkeepalive = \"0s\"\n"));
    let (text, code) = check_config_report(&path);
    let file = path.display();
    assert_eq!(code, 1);
    assert_eq!(
        text,
        format!("{file}:12:13: error: `keepalive` must be greater than zero\ninvalid: 1 error, 0 warnings\n")
    );
    let _ = std::fs::write(&path, format!("{BASE}[[profile]]\nname = \"E\"\n"));
    let (text, code) = check_config_report(&path);
    assert_eq!(code, 0);
    assert_eq!(
        text,
        format!("{file}:12:8: warning: profile `E` has no events: it matches nothing\nok\n")
    );
    let _ = std::fs::write(&path, b"[gateway]\nname = \"\xff\"\n");
    let (text, code) = check_config_report(&path);
    assert_eq!((text, code), (format!("{file}:2:9: error: the configuration file is not valid UTF-8\ninvalid: 1 error, 0 warnings\n"), 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_for_a_missing_file() {
    let (text, code) = check_config_report(Path::new("/nonexistent/palisade.toml"));
    assert_eq!(code, 1);
    assert!(
        text.starts_with("/nonexistent/palisade.toml: error: cannot read the configuration file: "),
        "{text}"
    );
}
