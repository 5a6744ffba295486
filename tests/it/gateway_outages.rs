//! The seed's outage cases (docs/protocol.md §5, "Outages") against the real binary with timers
//! scaled down: event timer 400 ms, outage window 2 s, dead interval 3 s. Also the component
//! state log lines, the alarms (raised and cleared), and `/status` and `/metrics`.

use crate::support;
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(5);
const DEFAULT: &str = "SystemDefaultComplianceProfile";

fn login(r: &mut TestRouter, user: &str) -> String {
    r.event(
        "e_SESSION",
        "",
        &format!("<presence xmlns='jabber:client' from='{user}@example.com/desk'/>"),
    )
}

fn status(gw: &Gateway) -> serde_json::Value {
    let body = palisade_tools::http_get::get(gw.admin_addr, "/status").expect("status");
    serde_json::from_str(&body).expect("json")
}

fn metrics(gw: &Gateway) -> String {
    palisade_tools::http_get::get(gw.admin_addr, "/metrics").expect("metrics")
}

fn alarms(gw: &Gateway) -> Vec<String> {
    status(gw)["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["name"].as_str().unwrap(),
                a["server"].as_str().unwrap()
            )
        })
        .collect()
}

fn single(shards: usize, timers: &str) -> (TestServer, Gateway, u16) {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(shards, timers, &server_block("cs1", port, DEFAULT)));
    assert!(server.wait_streams(shards, WAIT), "log:\n{}", gw.log.all());
    (server, gw, port)
}

#[test]
fn component_state_lines_are_logged_verbatim() {
    let port = free_port();
    // Nobody listens yet: the seed's three lines.
    let gw = Gateway::start(&config(1, FAST_TIMERS, &server_block("cs1", port, DEFAULT)));
    let c = component("cs1");
    assert!(gw
        .log
        .wait_for(&format!("to host '127.0.0.1', port {port}"), WAIT));
    assert!(
        gw.log.wait_for(
            &format!(
                "Unable to connect to host '127.0.0.1', port {port}: (111) Connection refused"
            ),
            WAIT
        ),
        "{}",
        gw.log.all()
    );
    assert!(gw.log.wait_for(&format!("Component {c} is GONE"), WAIT));
    let log = gw.log.all();
    let connecting = log
        .lines()
        .find(|l| l.contains("Connecting on fd "))
        .unwrap();
    assert!(
        connecting.ends_with(&format!("to host '127.0.0.1', port {port}")),
        "{connecting}"
    );
    let server = TestServer::start(port, &c, "pw-cs1");
    assert!(server.wait_streams(1, WAIT));
    assert!(gw
        .log
        .wait_for(&format!("Component {c} is CONNECTED"), WAIT));
    assert!(gw.log.wait_for(&format!("Component {c} is ACTIVE"), WAIT));
}

#[test]
fn wrong_password_shows_connected_but_never_active() {
    let port = free_port();
    let _server = TestServer::start(port, &component("cs1"), "not-the-password");
    let gw = Gateway::start(&config(1, FAST_TIMERS, &server_block("cs1", port, DEFAULT)));
    assert!(gw.log.wait_count(
        &format!("Component {} is CONNECTED", component("cs1")),
        2,
        WAIT
    ));
    assert_eq!(gw.log.count("is ACTIVE"), 0);
}

#[test]
fn one_server_graceful_logins_pass_and_ims_bounce_at_once() {
    let (server, gw, _) = single(1, FAST_TIMERS);
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "before");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    server.shutdown_gracefully();
    assert!(
        gw.log.wait_for("is GONE (gracefully", WAIT),
        "{}",
        gw.log.all()
    );
    let start = Instant::now();
    let im = r.chat("alice", "bob", "during");
    let v = r.verdict_for(&im, WAIT);
    assert!(
        v.is("bounce") && v.xml.contains("<service-unavailable "),
        "{v:?}"
    );
    let l = login(&mut r, "carol");
    assert!(r.verdict_for(&l, WAIT).is("pass"), "logins go on, unlogged");
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "no waiting: {:?}",
        start.elapsed()
    );
    assert!(alarms(&gw).contains(&"ComplianceServerLeftRing:cs1".to_owned()));
    assert_eq!(status(&gw)["servers"][0]["state"], "down");
    // It stays unroutable until it is ACTIVE again, then takes events back.
    server.recover();
    assert!(server.wait_streams(1, WAIT));
    assert!(
        gw.log
            .wait_for("alarm ComplianceServerLeftRing cleared", WAIT),
        "{}",
        gw.log.all()
    );
    let id = r.chat("alice", "bob", "after");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
}

#[test]
fn one_server_ungraceful_queues_each_event_until_its_own_timer() {
    let (server, gw, _) = single(1, FAST_TIMERS);
    let mut r = TestRouter::connect(&gw);
    server.crash();
    assert!(
        gw.log.wait_for("is GONE (ungracefully", WAIT),
        "{}",
        gw.log.all()
    );
    assert!(gw.log.wait_for(
        "alarm ComplianceServerConnectionLost raised: compliance server cs1",
        WAIT
    ));
    let start = Instant::now();
    let im = r.chat("alice", "bob", "queued");
    let l = login(&mut r, "carol");
    let v = r.verdict_for(&im, WAIT);
    let waited = start.elapsed();
    assert!(
        v.is("bounce") && v.xml.contains("<remote-server-timeout "),
        "{v:?}"
    );
    assert!(
        waited >= Duration::from_millis(390),
        "bounced only when its timer fired: {waited:?}"
    );
    assert!(
        r.verdict_for(&l, WAIT).is("pass"),
        "the login passes when its timer fires"
    );
    assert_eq!(status(&gw)["servers"][0]["state"], "outage");
    // Back inside the window: what is queued is delivered.
    let queued = r.chat("dave", "erin", "delivered");
    std::thread::sleep(Duration::from_millis(100));
    server.recover();
    let v = r.verdict_for(&queued, WAIT);
    assert!(v.is("pass"), "{v:?}");
    assert!(server
        .requests()
        .iter()
        .any(|q| q.stanza.contains("delivered")));
    assert!(gw
        .log
        .wait_for("alarm ComplianceServerConnectionLost cleared", WAIT));
}

#[test]
fn after_the_outage_window_steps_fail_at_once() {
    let (server, gw, _) = single(1, FAST_TIMERS);
    let mut r = TestRouter::connect(&gw);
    server.crash();
    assert!(
        gw.log.wait_for(
            "alarm ComplianceServerLeftRing raised",
            Duration::from_secs(6)
        ),
        "{}",
        gw.log.all()
    );
    assert_eq!(status(&gw)["servers"][0]["state"], "down");
    let start = Instant::now();
    let im = r.chat("alice", "bob", "late");
    let v = r.verdict_for(&im, WAIT);
    assert!(
        v.is("bounce") && v.xml.contains("<service-unavailable "),
        "{v:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(300));
    server.recover();
    assert!(gw
        .log
        .wait_for("alarm ComplianceServerLeftRing cleared", WAIT));
}

/// Two servers with the default profile.
fn pair() -> (TestServer, TestServer, Gateway) {
    let (p1, p2) = (free_port(), free_port());
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    let rest = format!(
        "{}{}",
        server_block("cs1", p1, DEFAULT),
        server_block("cs2", p2, DEFAULT)
    );
    let gw = Gateway::start(&config(1, FAST_TIMERS, &rest));
    assert!(cs1.wait_streams(1, WAIT) && cs2.wait_streams(1, WAIT));
    (cs1, cs2, gw)
}

/// A conversation cs1 takes: returns its two users.
fn conversation_on(r: &mut TestRouter, server: &TestServer) -> (String, String) {
    for i in 0..100 {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let before = server.request_count();
        let id = r.chat(&a, &b, "probe");
        assert!(r.verdict_for(&id, WAIT).is("pass"));
        if server.request_count() > before {
            return (a, b);
        }
    }
    panic!("no conversation landed on the server");
}

#[test]
fn several_servers_graceful_share_moves_at_once_with_unanswered_events() {
    let (cs1, cs2, gw) = pair();
    let mut r = TestRouter::connect(&gw);
    let (a, b) = conversation_on(&mut r, &cs1);
    cs1.set_policy(|_| Answer::Silent);
    let held = r.chat(&a, &b, "held by cs1");
    assert!(cs1.wait_requests(2, WAIT));
    let before = cs2.request_count();
    cs1.shutdown_gracefully();
    let v = r.verdict_for(&held, WAIT);
    assert!(v.is("pass"), "the unanswered event went to cs2: {v:?}");
    assert!(cs2.requests()[before..]
        .iter()
        .any(|q| q.stanza.contains("held by cs1")));
    let id = r.chat(&b, &a, "after");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    assert!(
        cs2.requests().iter().any(|q| q.stanza.contains("after")),
        "the share moved"
    );
    // Recovery: cs1 takes its share back.
    cs1.set_policy(|_| Answer::Pass);
    cs1.recover();
    assert!(cs1.wait_streams(1, WAIT));
    std::thread::sleep(Duration::from_millis(50));
    let id = r.chat(&a, &b, "back home");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    assert!(cs1
        .requests()
        .iter()
        .any(|q| q.stanza.contains("back home")));
}

#[test]
fn several_servers_ungraceful_share_queues_for_the_window_then_moves() {
    let (cs1, cs2, gw) = pair();
    let mut r = TestRouter::connect(&gw);
    let (a, b) = conversation_on(&mut r, &cs1);
    let (c, d) = conversation_on(&mut r, &cs2);
    cs1.crash();
    assert!(gw.log.wait_for("is GONE (ungracefully", WAIT));
    let start = Instant::now();
    let queued = r.chat(&a, &b, "cs1 share");
    let other = r.chat(&c, &d, "cs2 share");
    assert!(
        r.verdict_for(&other, WAIT).is("pass"),
        "other users are not affected"
    );
    let v = r.verdict_for(&queued, WAIT);
    assert!(
        v.is("bounce") && v.xml.contains("remote-server-timeout"),
        "blocked while cs1 may come back: {v:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(390));
    assert!(gw.log.wait_for(
        "alarm ComplianceServerLeftRing raised: compliance server cs1",
        Duration::from_secs(6)
    ));
    let id = r.chat(&a, &b, "after the window");
    assert!(
        r.verdict_for(&id, WAIT).is("pass"),
        "routed to the remaining server"
    );
    assert!(cs2
        .requests()
        .iter()
        .any(|q| q.stanza.contains("after the window")));
}

#[test]
fn two_profiles_first_server_down_bounces_and_the_second_never_sees_it() {
    let (p1, p2) = (free_port(), free_port());
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    let rest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/seed_outage_two_profiles.toml"))
        .unwrap()
        .replace("host = \"10.0.0.1\"\nport = 7999\npassword = \"cs1-password\"", &format!("host = \"127.0.0.1\"\nport = {p1}\npassword = \"pw-cs1\""))
        .replace("host = \"10.0.0.2\"\nport = 7999\npassword = \"cs2-password\"", &format!("host = \"127.0.0.1\"\nport = {p2}\npassword = \"pw-cs2\""))
        .replace("[gateway]\nname = \"palisade.example.com\"", "[gateway]\nname = \"palisade.example.com\"\ndomain = \"example.com\"\nadmin = \"127.0.0.1:{ADMIN_PORT}\"\n[listen]\nrouters = \"127.0.0.1:{ROUTER_PORT}\"\n[timers]\nevent_timeout = \"400ms\"\noutage_window = \"2s\"\nreconnect_min = \"20ms\"\nreconnect_max = \"100ms\"")
        .replace("secret = \"router-secret\"", &format!("secret = \"{ROUTER_SECRET}\""));
    assert!(
        rest.contains(&format!("port = {p1}")) && rest.contains("ADMIN_PORT"),
        "{rest}"
    );
    let gw = Gateway::start(&rest);
    assert!(cs2.wait_streams(1, WAIT));
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("usera", "userb", "hello");
    let v = r.verdict_for(&id, WAIT);
    assert!(
        v.is("bounce") && v.xml.contains("profile='Profile1'"),
        "{v:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        cs2.request_count(),
        0,
        "Compliance Server 2 never sees the es_OUT"
    );
}

#[test]
fn a_hung_server_is_found_dead_and_treated_as_ungraceful() {
    let (server, gw, _) = single(1, FAST_TIMERS);
    server.hang();
    let start = Instant::now();
    assert!(
        gw.log
            .wait_for("is GONE (ungracefully: PeerSilent)", Duration::from_secs(8)),
        "{}",
        gw.log.all()
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(2900),
        "declared dead before the 3 s dead interval: {took:?}"
    );
    // (The router connects now: a test router left undriven for 3 s would be found silent too.)
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "while dead");
    assert!(r.verdict_for(&id, WAIT).is("bounce"));
}

#[test]
fn a_quiet_live_server_is_pinged_not_dropped() {
    let (_server, gw, _) = single(1, FAST_TIMERS);
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(gw.log.count("is GONE"), 0, "{}", gw.log.all());
}

#[test]
fn queue_full_alarm_is_raised_and_cleared() {
    let timers = format!("{FAST_TIMERS}\n");
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let rest = format!(
        "[limits]\nqueue_per_server = 2\n{}",
        server_block("cs1", port, DEFAULT)
    );
    let gw = Gateway::start(&config(1, &timers, &rest));
    assert!(server.wait_streams(1, WAIT));
    let mut r = TestRouter::connect(&gw);
    server.crash();
    assert!(gw.log.wait_for("is GONE (ungracefully", WAIT));
    let ids: Vec<String> = (0..5).map(|i| r.chat(&format!("u{i}"), "v", "x")).collect();
    let full = r.verdict_for(&ids[2], WAIT);
    assert!(
        full.is("bounce") && full.xml.contains("service-unavailable"),
        "the third fails at once: {full:?}"
    );
    assert!(gw.log.wait_for(
        "alarm ComplianceServerQueueFull raised: compliance server cs1",
        WAIT
    ));
    assert!(alarms(&gw).contains(&"ComplianceServerQueueFull:cs1".to_owned()));
    assert!(metrics(&gw)
        .contains("palisade_alarm{name=\"ComplianceServerQueueFull\",server=\"cs1\"} 1"));
    server.recover();
    assert!(
        gw.log
            .wait_for("alarm ComplianceServerQueueFull cleared", WAIT),
        "{}",
        gw.log.all()
    );
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 2) {
        let v = r.verdict_for(id, WAIT);
        assert!(v.is(if i < 2 { "pass" } else { "bounce" }), "{i}: {v:?}");
    }
    let m = metrics(&gw);
    assert!(
        m.contains("palisade_alarms_raised_total{name=\"ComplianceServerQueueFull\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("palisade_server_step_failures_total{server=\"cs1\",reason=\"queue_full\"} 3"),
        "{m}"
    );
}

#[test]
fn status_and_metrics_account_for_every_event() {
    let (server, gw, _) = single(2, FAST_TIMERS);
    server.set_policy(|q| {
        if q.stanza.contains("block") {
            Answer::Error("forbidden".into())
        } else {
            Answer::Pass
        }
    });
    let mut r = TestRouter::connect(&gw);
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(r.chat(
            &format!("u{i}"),
            "v",
            if i % 4 == 0 { "block" } else { "ok" },
        ));
    }
    ids.push(r.event("es_NOPE", "", "<message to='a@example.com'/>"));
    for id in &ids {
        r.verdict_for(id, WAIT);
    }
    let s = status(&gw);
    assert_eq!(s["shards"], 2);
    assert_eq!(s["events"]["received"], 40);
    assert_eq!(s["events"]["terminal"]["bounce"], 10);
    assert_eq!(s["events"]["terminal"]["pass"], 30);
    assert_eq!(s["events"]["in_flight"], 0);
    assert_eq!(s["events"]["bad_requests"], 1);
    assert_eq!(s["servers"][0]["state"], "up");
    assert_eq!(s["servers"][0]["streams"], 2);
    assert_eq!(s["routers"][0], ROUTER);
    let m = metrics(&gw);
    assert!(m.contains("palisade_events_received_total 40"), "{m}");
    assert!(
        m.contains("palisade_events_total{event=\"es_OUT\",state=\"bounce\"} 10"),
        "{m}"
    );
    assert!(m.contains("palisade_verdicts_total{profile=\"SystemDefaultComplianceProfile\",server=\"cs1\",state=\"bounce\"} 10"), "{m}");
    assert!(
        m.contains("palisade_server_answer_seconds_count{server=\"cs1\"} 40"),
        "{m}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["status", "--admin", &gw.admin_addr.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("40 received")
            && text.contains("bounce 10")
            && text.contains("cs1")
            && text.contains("UP"),
        "{text}"
    );
    assert!(text.contains("Alarms: none"), "{text}");
}

#[test]
fn a_backlog_larger_than_the_stream_is_sent_when_the_server_returns_in_time() {
    // One stream, held by shard 0, of 64 KiB; shard 1's events cross to it. Long timers: the
    // backlog has time to drain, so any failure would be the stream's, not a timer's.
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let timers = "event_timeout = \"20s\"\noutage_window = \"30s\"\nreconnect_min = \"20ms\"\nreconnect_max = \"100ms\"\nkeepalive = \"5s\"\ndead_interval = \"30s\"\n";
    let rest = format!(
        "[limits]\nstream_buffer_bytes = 65536\n{}connections = 1\n",
        server_block("cs1", port, DEFAULT)
    );
    let gw = Gateway::start(&config(2, timers, &rest));
    assert!(server.wait_streams(1, WAIT), "log:\n{}", gw.log.all());
    let mut r = TestRouter::connect(&gw);
    server.crash();
    assert!(
        gw.log.wait_for("is GONE (ungracefully", WAIT),
        "{}",
        gw.log.all()
    );
    // About 700 bytes a request: some 30 times what the stream holds.
    const EVENTS: usize = 3000;
    let ids: Vec<String> = (0..EVENTS)
        .map(|i| r.chat(&format!("u{i}"), &format!("v{}", i % 7), "backlog"))
        .collect();
    let queued = |gw: &Gateway| {
        status(gw)["servers"][0]["queued"]
            .as_u64()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + WAIT;
    while queued(&gw) < EVENTS as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(queued(&gw), EVENTS as u64, "{}", status(&gw));
    server.recover();
    for id in &ids {
        let v = r.verdict_for(id, Duration::from_secs(30));
        assert!(v.is("pass"), "{v:?}");
    }
    let s = status(&gw);
    assert_eq!(s["events"]["terminal"]["pass"], EVENTS as u64, "{s}");
    assert_eq!(s["events"]["terminal"]["bounce"], 0, "{s}");
    assert_eq!(s["events"]["terminal"]["failed_open"], 0, "{s}");
    assert_eq!(
        server
            .requests()
            .iter()
            .filter(|q| q.stanza.contains("backlog"))
            .count(),
        EVENTS
    );
    let m = metrics(&gw);
    assert!(
        m.lines().any(|l| l
            .starts_with("palisade_server_answers_total{server=\"cs1\",answer=\"pass\"}")
            && l.ends_with(&format!(" {EVENTS}"))),
        "{m}"
    );
}
