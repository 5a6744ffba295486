//! Checks of load.rs: TOML syntax, unknown keys, types, missing keys.

use super::*;

#[test]
fn toml_syntax_error_is_located() {
    let d = diags("[gateway]\nname = \"x.y\"\nshards = = 2\n");
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].starts_with("3:10: error: TOML syntax: "), "{d:?}");
    let text = "[gateway]\nname = palisade\n";
    assert_eq!(diags(text), ["2:8: error: TOML syntax: invalid string"]);
    assert_eq!(hints(text), [Some("expected `\"`, `'`".to_string())]);
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
        [Some("known keys here: max_stanza_bytes, max_depth, max_attributes, queue_per_server, max_in_flight, stream_buffer_bytes, max_connections, max_unauthenticated".to_string())]
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
