//! Live configuration reloads (SIGHUP) against the real binary: new profiles and servers take
//! new events while events in flight finish under the policy they arrived under; removed
//! servers leave; changed servers are redialed; an invalid file changes nothing; restart-only
//! settings are kept and named.

use crate::support;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(5);
const DEFAULT: &str = "SystemDefaultComplianceProfile";

/// A `Walls` profile bouncing es_OUT messages, first in priority.
const WALLS: &str = r#"
[[profile]]
name = "Walls"
events = [ { event = "es_OUT", packet = "message", handling = "bounce" } ]
[routing]
priority = ["Walls", "SystemDefaultComplianceProfile"]
"#;

/// Two shards; cs1 (port `p1`) on the default profile, cs2 (port `p2`) on `Walls`.
fn walled(p1: u16, p2: u16) -> String {
    let servers = format!(
        "{WALLS}{}{}",
        server_block("cs1", p1, DEFAULT),
        server_block("cs2", p2, "Walls")
    );
    config(2, FAST_TIMERS, &servers)
}

fn status(gw: &Gateway) -> serde_json::Value {
    let body = palisade_tools::http_get::get(gw.admin_addr, "/status").expect("status");
    serde_json::from_str(&body).expect("json")
}

fn server_state(gw: &Gateway, name: &str) -> String {
    let doc = status(gw);
    let servers = doc["servers"].as_array().cloned().unwrap_or_default();
    servers
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

#[test]
fn a_wall_added_live_takes_new_events_while_one_in_flight_keeps_its_chain() {
    let p1 = free_port();
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let first = config(2, FAST_TIMERS, &server_block("cs1", p1, DEFAULT));
    let gw = Gateway::start(&first);
    assert!(cs1.wait_streams(2, WAIT), "log:\n{}", gw.log.all());
    let mut router = TestRouter::connect(&gw);
    let warmup = router.chat("alice", "bob", "hello");
    assert!(router.verdict_for(&warmup, WAIT).is("pass"));

    // An event in flight: cs1 holds its answer for a while.
    cs1.set_policy(|_| Answer::Later(Duration::from_millis(300), Box::new(Answer::Pass)));
    let in_flight = router.chat("carol", "dave", "before the wall");
    assert!(cs1.wait_requests(2, WAIT));

    let p2 = free_port();
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    cs2.set_policy(|_| Answer::Error("not-allowed".into()));
    let second = walled(p1, p2);
    let outcome = gw.reload(&second);
    assert!(
        outcome.contains("(generation 1): servers +cs2; profiles +Walls; priority"),
        "{outcome}"
    );
    assert!(cs2.wait_streams(2, WAIT), "log:\n{}", gw.log.all());

    // The event in flight walks the chain it arrived under: no wall.
    let v = router.verdict_for(&in_flight, WAIT);
    assert!(v.is("pass"), "{}", v.xml);
    assert!(cs2.requests().iter().all(|r| !r.key.contains("carol")));

    // New events meet the wall first.
    let walled = router.chat("erin", "frank", "after the wall");
    let v = router.verdict_for(&walled, WAIT);
    assert!(v.is("bounce"), "{}", v.xml);
    assert!(v.xml.contains("profile='Walls' server='cs2'"), "{}", v.xml);

    // Remove the wall and its server again: cs2's streams close and it is retired.
    cs1.set_policy(|_| Answer::Pass);
    let outcome = gw.reload(&first);
    assert!(
        outcome.contains("(generation 2): servers -cs2; profiles -Walls; priority"),
        "{outcome}"
    );
    let closed = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        cs2.streams.load(std::sync::atomic::Ordering::SeqCst) == 0
    });
    assert!(closed, "cs2's streams were closed; log:\n{}", gw.log.all());
    let open = router.chat("erin", "frank", "the wall is gone");
    assert!(router.verdict_for(&open, WAIT).is("pass"));
    assert_eq!(server_state(&gw, "cs2"), "retired");
    assert_eq!(server_state(&gw, "cs1"), "up");
    let doc = status(&gw);
    assert_eq!(doc["config"]["generation"], 2);
    assert_eq!(doc["config"]["last_reload"]["ok"], true);
    assert_eq!(doc["events"]["terminal"]["bounce"], 1);
}

#[test]
fn an_invalid_file_changes_nothing() {
    let p1 = free_port();
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(1, FAST_TIMERS, &server_block("cs1", p1, DEFAULT)));
    assert!(cs1.wait_streams(1, WAIT));
    let broken = config(1, FAST_TIMERS, &server_block("cs1", p1, "NoSuchProfile"));
    let outcome = gw.reload(&broken);
    assert!(outcome.contains("configuration NOT reloaded"), "{outcome}");
    assert!(
        gw.log.wait_for("palisade.toml:", WAIT) && gw.log.wait_for("NoSuchProfile", WAIT),
        "the problem is logged with its position; log:\n{}",
        gw.log.all()
    );
    let mut router = TestRouter::connect(&gw);
    let id = router.chat("alice", "bob", "still checked");
    assert!(router.verdict_for(&id, WAIT).is("pass"));
    assert_eq!(cs1.request_count(), 1, "the running policy still applies");
    let doc = status(&gw);
    assert_eq!(doc["config"]["generation"], 0);
    assert_eq!(doc["config"]["last_reload"]["ok"], false);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["status", "--admin", &gw.admin_addr.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Configuration: generation 0 (") && text.contains("last reload FAILED"),
        "{text}"
    );
}

#[test]
fn a_moved_server_is_redialed_and_restart_only_settings_are_kept() {
    let p1 = free_port();
    let old = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(1, FAST_TIMERS, &server_block("cs1", p1, DEFAULT)));
    assert!(old.wait_streams(1, WAIT));
    // cs1 moves to another port with another password; the shard count changes too.
    let p2 = free_port();
    let new = TestServer::start(p2, &component("cs1"), "new-secret");
    let moved = config(
        2,
        FAST_TIMERS,
        &server_block("cs1", p2, DEFAULT).replace("pw-cs1", "new-secret"),
    );
    let outcome = gw.reload(&moved);
    assert!(outcome.contains("servers ~cs1"), "{outcome}");
    assert!(gw.log.wait_for(
        "[gateway] shards changed: it takes effect at the next restart",
        WAIT
    ));
    assert!(new.wait_streams(1, WAIT), "log:\n{}", gw.log.all());
    let gone = (0..250).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        old.streams.load(std::sync::atomic::Ordering::SeqCst) == 0
    });
    assert!(gone, "the old stream was closed");
    let mut router = TestRouter::connect(&gw);
    let id = router.chat("alice", "bob", "to the new place");
    assert!(router.verdict_for(&id, WAIT).is("pass"));
    assert_eq!(new.request_count(), 1);
    assert_eq!(old.request_count(), 0);
    assert_eq!(status(&gw)["shards"], 1, "still one shard until a restart");
}

#[test]
fn a_removed_router_is_disconnected_and_a_new_one_admitted() {
    let gw = Gateway::start(&config(1, FAST_TIMERS, ""));
    let mut router = TestRouter::connect(&gw);
    let id = router.chat("alice", "bob", "before");
    assert!(router.verdict_for(&id, WAIT).is("pass"));
    let renamed = config(1, FAST_TIMERS, "").replace(ROUTER, "imp9.example.com");
    let outcome = gw.reload(&renamed);
    assert!(
        outcome.contains(&format!("routers +imp9.example.com -{ROUTER}")),
        "{outcome}"
    );
    assert!(
        router.closed(WAIT).is_some(),
        "the removed router's stream closed"
    );
    assert!(TestRouter::connect_as(gw.router_addr, ROUTER, ROUTER_SECRET).is_err());
    let mut new = TestRouter::connect_as(gw.router_addr, "imp9.example.com", ROUTER_SECRET)
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", gw.log.all()));
    let id = new.event(
        "e_SESSION",
        "",
        "<presence xmlns='jabber:client' from='zoe@imp9.example.com/desk'/>",
    );
    assert!(new.verdict_for(&id, WAIT).is("pass"));
}

#[test]
fn reloads_under_traffic_lose_no_event() {
    let (p1, p2) = (free_port(), free_port());
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    cs1.set_policy(|_| Answer::Later(Duration::from_millis(5), Box::new(Answer::Pass)));
    cs2.set_policy(|_| Answer::Later(Duration::from_millis(5), Box::new(Answer::Pass)));
    let plain = config(2, FAST_TIMERS, &server_block("cs1", p1, DEFAULT));
    let walled = walled(p1, p2);
    let gw = Gateway::start(&plain);
    assert!(cs1.wait_streams(2, WAIT));
    let mut router = TestRouter::connect(&gw);
    let mut ids = Vec::new();
    for round in 0..6 {
        for i in 0..50 {
            ids.push(router.chat(&format!("u{round}x{i}"), "bob", "hi"));
        }
        let next = if round % 2 == 0 { &walled } else { &plain };
        assert!(gw.reload(next).contains("Configuration reloaded"));
        if round % 2 == 0 {
            // The wall's server is added again by every other reload and dialed anew. Events
            // still queued for it when the next reload removes it move to its step's other
            // servers, and a wall has none: they fail as its handling says (as after a
            // graceful loss). That is the documented rule, not a lost event; this test is
            // about events in flight across reloads, so each round starts with the wall's
            // server connected, however slow the machine.
            let deadline = std::time::Instant::now() + WAIT;
            while server_state(&gw, "cs2") != "up" {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cs2 never came up after reload {round}:\n{}",
                    gw.log.all()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    let mut bad = Vec::new();
    for id in &ids {
        let v = router.verdict_for(id, WAIT);
        if !v.is("pass") {
            bad.push(format!("{id}: {}", v.xml));
        }
    }
    assert!(
        bad.is_empty(),
        "{}\n{}\n{}",
        bad.join("\n"),
        status(&gw),
        gw.log.all()
    );
    router.expect_silence(Duration::from_millis(200));
    let doc = status(&gw);
    assert_eq!(doc["events"]["received"], ids.len());
    assert_eq!(doc["events"]["terminal"]["pass"], ids.len());
    assert_eq!(doc["events"]["in_flight"], 0);
    assert_eq!(doc["config"]["generation"], 6);
}
