//! Checks of servers.rs: names, hosts, ports, passwords, modes, assignments, components.

use super::*;

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

#[test]
fn empty_server_name_and_host() {
    let d = on_base("[[server]]\nname = \"\"\nhost = \"\"\nport = 1\npassword = \"p\"\n");
    assert_eq!(
        d,
        [
            "12:8: error: a server name cannot be empty",
            "13:8: error: the host of server `` is empty",
        ]
    );
}

#[test]
#[ignore = "slow in debug builds (parses 65536 tables): run with --ignored"]
fn server_ids_fit_in_u16() {
    let mut text = String::from(GATEWAY_ROUTER);
    for i in 0..=u16::MAX as usize {
        text.push_str(&format!(
            "[[server]]\nname = \"s{i}\"\nhost = \"h\"\nport = 1\npassword = \"p\"\n"
        ));
    }
    let d = diags(&text);
    let line = GATEWAY_ROUTER.lines().count() + 5 * usize::from(u16::MAX) + 1;
    assert_eq!(
        d,
        [format!("{line}:1: error: too many servers: at most 65535")]
    );
}
