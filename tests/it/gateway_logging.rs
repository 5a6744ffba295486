//! The gateway's log as operators read it: `text` (the state lines of docs/protocol.md §5
//! inside `STAMP LEVEL [shard N] message`) or `json` (one object per line, the same text in
//! `msg`), and levels chosen by `[log] level`, `RUST_LOG` and `--log-level`.

use crate::support;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const PROFILE: &str = "SystemDefaultComplianceProfile";

fn one_server(port: u16, extra: &str) -> String {
    config(
        1,
        FAST_TIMERS,
        &format!("{}\n{extra}", server_block("cs1", port, PROFILE)),
    )
}

#[test]
fn json_logs_are_one_object_per_line_with_the_state_lines_in_msg() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let mut gw = Gateway::start_with(&one_server(port, ""), |c| {
        c.args(["--log-format", "json"]).env_remove("RUST_LOG");
    });
    let active = format!("Component {} is ACTIVE", component("cs1"));
    assert!(server.wait_streams(1, WAIT));
    assert!(gw.log.wait_for(&active, WAIT), "{}", gw.log.all());
    assert!(gw.stop().success());
    let all = gw.log.all();
    let mut seen_active = false;
    for line in all.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        for key in ["timestamp", "level", "shard", "target", "msg", "fields"] {
            assert!(v.get(key).is_some(), "no {key}: {line}");
        }
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        if v["msg"] == active.as_str() {
            seen_active = true;
            assert_eq!(v["level"], "INFO", "{line}");
            assert_eq!(v["shard"], 0, "{line}");
            assert_eq!(v["target"], "palisade", "{line}");
        }
    }
    assert!(seen_active, "{all}");
}

#[test]
fn the_format_can_come_from_the_file() {
    let port = free_port();
    let mut gw = Gateway::start_with(&one_server(port, "[log]\nformat = \"json\"\n"), |c| {
        c.env_remove("RUST_LOG");
    });
    assert!(gw.log.wait_for("Listening for routers", WAIT));
    assert!(gw.stop().success());
    let all = gw.log.all();
    assert!(
        all.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{all}"
    );
}

/// Connects a router and waits until the gateway logged it ACTIVE: the debug line for the
/// connection, if written, comes before it.
fn connect_router(gw: &Gateway) -> TestRouter {
    let router = TestRouter::connect(gw);
    assert!(
        gw.log.wait_for(&format!("Router {ROUTER} is ACTIVE"), WAIT),
        "{}",
        gw.log.all()
    );
    router
}

const DEBUG_LINE: &str = "serving the Router connection from 127.0.0.1:";

#[test]
fn debug_lines_exist_and_are_off_by_default() {
    let port = free_port();
    let mut gw = Gateway::start_with(&one_server(port, ""), |c| {
        c.env_remove("RUST_LOG");
    });
    let _router = connect_router(&gw);
    assert_eq!(gw.log.count(DEBUG_LINE), 0, "{}", gw.log.all());
    assert_eq!(gw.log.count(" DEBUG "), 0, "{}", gw.log.all());
    assert!(gw.stop().success());

    let mut gw = Gateway::start_with(&one_server(port, ""), |c| {
        c.args(["--log-level", "debug"]).env_remove("RUST_LOG");
    });
    let _router = connect_router(&gw);
    // (`start_with`'s probe of the listener is a connection too.)
    assert!(gw.log.count(DEBUG_LINE) >= 1, "{}", gw.log.all());
    assert!(gw.stop().success());
}

#[test]
fn rust_log_beats_the_file_and_the_flag_beats_rust_log() {
    let port = free_port();
    let quiet = one_server(port, "[log]\nlevel = \"warn\"\n");
    // The file alone: warnings only (the outbound server is refused: WARN lines appear).
    let mut gw = Gateway::start_with(&quiet, |c| {
        c.env_remove("RUST_LOG");
    });
    assert!(
        gw.log.wait_for("Unable to connect", WAIT),
        "{}",
        gw.log.all()
    );
    let _router = TestRouter::connect(&gw);
    assert!(gw.log.wait_for("Component", WAIT));
    assert!(gw.stop().success());
    assert_eq!(gw.log.count(" INFO "), 0, "{}", gw.log.all());

    let mut gw = Gateway::start_with(&quiet, |c| {
        c.env("RUST_LOG", "palisade=debug");
    });
    let _router = connect_router(&gw);
    // (`start_with`'s probe of the listener is a connection too.)
    assert!(gw.log.count(DEBUG_LINE) >= 1, "{}", gw.log.all());
    assert!(gw.stop().success());

    let mut gw = Gateway::start_with(&quiet, |c| {
        c.env("RUST_LOG", "palisade=debug")
            .args(["--log-level", "info"]);
    });
    let _router = connect_router(&gw);
    assert_eq!(gw.log.count(DEBUG_LINE), 0, "{}", gw.log.all());
    assert!(gw.stop().success());
}

#[test]
fn a_bad_level_is_refused_before_starting() {
    let port = free_port();
    let mut gw = Gateway::spawn_with(&one_server(port, ""), |c| {
        c.args(["--log-level", "palisade=loud"]);
    });
    assert!(
        gw.log.wait_for("invalid log filter", WAIT),
        "{}",
        gw.log.all()
    );
    let status = gw.stop_within(WAIT).expect("it exits");
    assert!(!status.success(), "{status:?}");

    let mut gw = Gateway::spawn(&one_server(port, "[log]\nlevel = \"loud\"\n"));
    assert!(
        gw.log.wait_for("unknown log level \"loud\"", WAIT),
        "{}",
        gw.log.all()
    );
    let status = gw.stop_within(WAIT).expect("it exits");
    assert!(!status.success(), "{status:?}");
}

#[test]
fn a_server_that_keeps_refusing_is_logged_once_per_window() {
    // Nobody listens on the server's port: the dialer retries every 20..100 ms.
    let port = free_port();
    let mut gw = Gateway::start_with(&one_server(port, ""), |c| {
        c.env_remove("RUST_LOG");
    });
    assert!(gw.log.wait_for("Unable to connect", WAIT));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(gw.stop().success());
    assert_eq!(gw.log.count("Unable to connect"), 1, "{}", gw.log.all());
    assert_eq!(gw.log.count("is GONE"), 1, "{}", gw.log.all());

    // At debug level the held-back attempts are there.
    let mut gw = Gateway::start_with(&one_server(port, ""), |c| {
        c.args(["--log-level", "debug"]).env_remove("RUST_LOG");
    });
    assert!(
        gw.log.wait_count("Unable to connect", 3, WAIT),
        "{}",
        gw.log.all()
    );
    assert!(gw.stop().success());
}
