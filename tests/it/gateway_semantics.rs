//! docs/protocol.md §3 and §5 against the real binary over loopback: one test per row, plus order,
//! affinity, fairness, unreadable events and graceful shutdown. Timers are in milliseconds.

use crate::support;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// One profile `P` (the given entries) on one server `cs1`.
fn one_server(shards: usize, entries: &str) -> (TestServer, Gateway) {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let rest = format!(
        "[[profile]]\nname = \"P\"\nevents = [{entries}]\n{}",
        server_block("cs1", port, "P")
    );
    let gw = Gateway::start(&config(shards, FAST_TIMERS, &rest));
    assert!(server.wait_streams(shards, WAIT), "log:\n{}", gw.log.all());
    (server, gw)
}

const CHAT_BOUNCE: &str = r#"{ event = "es_OUT", packet = "message", handling = "bounce" }"#;
const CHAT_PASS: &str = r#"{ event = "es_OUT", packet = "message", handling = "pass" }"#;

#[test]
fn pass() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("pass"), "{v:?}");
    assert!(v
        .xml
        .contains("<verdict xmlns='urn:palisade:compliance:0' action='pass'/>"));
    let req = &server.requests()[0];
    assert_eq!(
        (req.event.as_str(), req.mode.as_str(), req.profile.as_str()),
        ("es_OUT", "wait", "P")
    );
    assert_eq!(req.packet.as_deref(), Some("message"));
    assert!(
        req.stanza.contains("<body>hello</body>"),
        "the stanza is forwarded unchanged"
    );
}

#[test]
fn handle() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    server.set_policy(|_| Answer::Handle);
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("handle"), "{v:?}");
    assert!(v.xml.contains("profile='P' server='cs1'"), "{v:?}");
}

#[test]
fn bounce_with_the_servers_error() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    server.set_policy(|_| Answer::Error("not-allowed".into()));
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("bounce"), "{v:?}");
    assert!(
        v.xml
            .contains("<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{v:?}"
    );
    assert!(
        v.xml
            .contains("blocked by compliance profile P on server cs1"),
        "{v:?}"
    );
}

#[test]
fn error_with_handling_pass_becomes_pass() {
    let (server, gw) = one_server(1, CHAT_PASS);
    server.set_policy(|_| Answer::Error("internal-server-error".into()));
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
}

#[test]
fn timeout_bounces_with_remote_server_timeout() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    server.set_policy(|_| Answer::Silent);
    let mut r = TestRouter::connect(&gw);
    let sent = std::time::Instant::now();
    let id = r.chat("alice", "bob", "hello");
    let v = r.verdict_for(&id, WAIT);
    let took = sent.elapsed();
    assert!(
        v.is("bounce") && v.xml.contains("<remote-server-timeout "),
        "{v:?}"
    );
    assert!(
        took >= Duration::from_millis(390),
        "answered before the 400 ms timer: {took:?}"
    );
    // A timeout with handling pass passes.
    let (server, gw) = one_server(1, CHAT_PASS);
    server.set_policy(|_| Answer::Silent);
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
}

#[test]
fn fire_and_forget_passes_at_once_and_notifies() {
    let (server, gw) = one_server(
        1,
        r#"{ event = "es_OUT", packet = "message", handling = "pass", fire_and_forget = true }"#,
    );
    server.set_policy(|_| Answer::Silent);
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    assert!(server.wait_requests(1, WAIT));
    let req = &server.requests()[0];
    assert_eq!(req.mode, "notify");
    assert!(
        req.xml.starts_with("<message "),
        "notifications are messages: {}",
        req.xml
    );
}

#[test]
fn bounce_with_fire_and_forget_drops() {
    let (server, gw) = one_server(
        1,
        r#"{ event = "es_OUT", packet = "message", handling = "bounce", fire_and_forget = true }"#,
    );
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hello");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("drop"), "{v:?}");
    assert!(
        server.wait_requests(1, WAIT),
        "the event is passed to the server, then discarded"
    );
}

/// `Wall` (es_OUT bounce) on cs1, `Log` (es_OUT pass) on cs2, Wall first.
fn two_profiles() -> (TestServer, TestServer, Gateway) {
    let (p1, p2) = (free_port(), free_port());
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    let rest = format!(
        "[[profile]]\nname = \"Log\"\nevents = [{CHAT_PASS}]\n[[profile]]\nname = \"Wall\"\nevents = [{CHAT_BOUNCE}]\n{}{}\n[routing]\npriority = [\"Wall\", \"Log\"]\n",
        server_block("cs1", p1, "Wall"),
        server_block("cs2", p2, "Log")
    );
    let gw = Gateway::start(&config(1, FAST_TIMERS, &rest));
    assert!(cs1.wait_streams(1, WAIT) && cs2.wait_streams(1, WAIT));
    (cs1, cs2, gw)
}

#[test]
fn two_profile_chain_in_priority_order_and_stopping_at_a_bounce() {
    let (cs1, cs2, gw) = two_profiles();
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "first");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    let (a, b) = (&cs1.requests()[0], &cs2.requests()[0]);
    assert!(a.at <= b.at, "Wall (priority) before Log");
    assert_eq!((a.profile.as_str(), b.profile.as_str()), ("Wall", "Log"));
    cs1.set_policy(|_| Answer::Error("forbidden".into()));
    let id = r.chat("alice", "bob", "second");
    assert!(r.verdict_for(&id, WAIT).is("bounce"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        cs2.request_count(),
        1,
        "the Log profile never sees a bounced event"
    );
}

#[test]
fn modification_is_carried_forward() {
    let (cs1, cs2, gw) = two_profiles();
    let modified = "<message xmlns='jabber:client' from='alice@example.com/desk' to='bob@example.com' type='chat'><body>hi [recorded]</body></message>";
    cs1.set_policy(move |_| Answer::Modify(modified.into()));
    let mut r = TestRouter::connect(&gw);
    let id = r.chat("alice", "bob", "hi");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("pass") && v.xml.contains("[recorded]"), "{v:?}");
    assert_eq!(
        cs2.requests()[0].stanza,
        modified,
        "the later profile judges the modified stanza"
    );
}

#[test]
fn pass_only_events_refuse_handle_and_modification() {
    let (server, gw) = one_server(1, r#"{ event = "onAfterJoin" }, { event = "onLeave" }"#);
    let mut r = TestRouter::connect(&gw);
    let join = "<presence from='alice@example.com/d' to='trading@conference.example.com/alice'/>";
    server.set_policy(|_| Answer::Handle);
    let id = r.event("onLeave", " room='trading@conference.example.com'", join);
    assert!(
        r.verdict_for(&id, WAIT).is("pass"),
        "HANDLE refused: onLeave accepts only PASS"
    );
    server.set_policy(|_| Answer::Modify("<presence to='x@example.com'/>".into()));
    let id = r.event(
        "onAfterJoin",
        " room='trading@conference.example.com'",
        join,
    );
    let v = r.verdict_for(&id, WAIT);
    assert!(
        v.is("pass") && !v.xml.contains("x@example.com"),
        "modification refused: {v:?}"
    );
    assert!(
        gw.log
            .wait_count("protocol violation by compliance server cs1", 2, WAIT),
        "{}",
        gw.log.all()
    );
}

#[test]
fn out_of_order_answers_are_released_in_order() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    server.set_policy(|req| {
        if req.stanza.contains("first") {
            Answer::Later(Duration::from_millis(200), Box::new(Answer::Pass))
        } else {
            Answer::Pass
        }
    });
    let mut r = TestRouter::connect(&gw);
    let first = r.chat("alice", "bob", "first");
    let second = r.chat("bob", "alice", "second");
    let other = r.chat("carol", "dave", "unrelated");
    let order: Vec<String> = (0..3)
        .map(|_| r.verdict(WAIT).expect("verdict").id)
        .collect();
    assert_eq!(
        order,
        vec![other, first, second],
        "same key in arrival order; others need not wait"
    );
}

#[test]
fn unknown_events_get_bad_request_and_the_stream_stays_up() {
    let (_server, gw) = one_server(1, CHAT_BOUNCE);
    let mut r = TestRouter::connect(&gw);
    let id = r.event(
        "es_NOPE",
        "",
        "<message from='a@example.com' to='b@example.com'/>",
    );
    let v = r.verdict_for(&id, WAIT);
    assert!(
        v.is("error") && v.xml.contains("<bad-request ") && v.xml.contains("unknown event name"),
        "{v:?}"
    );
    let id = r.event("es_OUT", "", "");
    assert!(r.verdict_for(&id, WAIT).xml.contains("holds no stanza"));
    let id = r.event(
        "es_OUT",
        "",
        "<message to='b@example.com'/><message to='c@example.com'/>",
    );
    assert!(r
        .verdict_for(&id, WAIT)
        .xml
        .contains("more than one stanza"));
    let id = r.chat("alice", "bob", "still here");
    assert!(r.verdict_for(&id, WAIT).is("pass"), "the stream stayed up");
}

#[test]
fn empty_chain_passes_at_once() {
    let (server, gw) = one_server(1, CHAT_BOUNCE);
    let mut r = TestRouter::connect(&gw);
    let id = r.event(
        "es_OUT",
        "",
        "<presence from='alice@example.com/d' to='bob@example.com'/>",
    );
    assert!(r.verdict_for(&id, WAIT).is("pass"));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(server.request_count(), 0);
}

#[test]
fn ping_and_disco_are_answered() {
    let (_server, gw) = one_server(1, CHAT_BOUNCE);
    let mut r = TestRouter::connect(&gw);
    r.send_raw(&format!(
        "<iq type='get' id='p1' from='{ROUTER}' to='{GATEWAY}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ));
    // (Short waits: a test router sends no keepalives, and the dead interval is 3 s.)
    let v = r.verdict(Duration::from_millis(300));
    assert!(v.is_none(), "a ping result is not a verdict");
    r.send_raw(&format!("<iq type='get' id='d1' from='{ROUTER}' to='{GATEWAY}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
    let id = r.chat("alice", "bob", "after ping");
    assert!(r.verdict_for(&id, WAIT).is("pass"));
}

/// Three servers share one profile; `shards` executors.
fn three_servers(shards: usize) -> (Vec<TestServer>, Gateway) {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let servers: Vec<TestServer> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            TestServer::start(
                *p,
                &component(&format!("cs{}", i + 1)),
                &format!("pw-cs{}", i + 1),
            )
        })
        .collect();
    let blocks: String = ports
        .iter()
        .enumerate()
        .map(|(i, p)| server_block(&format!("cs{}", i + 1), *p, "P"))
        .collect();
    let rest = format!(
        "[[profile]]\nname = \"P\"\nevents = [{CHAT_BOUNCE}, {{ event = \"onBeforeJoin\" }}, {{ event = \"onBeforeSend\" }}]\n{blocks}"
    );
    let gw = Gateway::start(&config(shards, FAST_TIMERS, &rest));
    for s in &servers {
        assert!(s.wait_streams(shards, WAIT), "log:\n{}", gw.log.all());
    }
    (servers, gw)
}

fn affinity_and_fairness(shards: usize) {
    let (servers, gw) = three_servers(shards);
    let mut r = TestRouter::connect(&gw);
    let n = 300;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(r.chat(&format!("user{i}"), &format!("peer{i}"), "x"));
        ids.push(r.chat(&format!("peer{i}"), &format!("user{i}"), "y"));
    }
    for id in &ids {
        assert!(r.verdict_for(id, WAIT).is("pass"));
    }
    let mut owner = std::collections::HashMap::new();
    for (s, server) in servers.iter().enumerate() {
        for req in server.requests() {
            assert_eq!(
                *owner.entry(req.key.clone()).or_insert(s),
                s,
                "both directions on one server"
            );
        }
    }
    assert_eq!(owner.len(), n);
    for (s, server) in servers.iter().enumerate() {
        let keys = owner.values().filter(|&&o| o == s).count();
        assert!(
            (70..=130).contains(&keys),
            "server {s} has {keys} of {n} conversations: not a fair share"
        );
        assert_eq!(server.request_count(), keys * 2);
    }
    // Every event of one room lands on one server.
    let room = " room='trading@conference.example.com'";
    let mut ids = Vec::new();
    for who in ["a", "b", "c", "d", "e"] {
        let join = format!(
            "<presence from='{who}@example.com/x' to='trading@conference.example.com/{who}'/>"
        );
        ids.push(r.event("onBeforeJoin", room, &join));
        let send = format!("<message from='{who}@example.com/x' to='trading@conference.example.com' type='groupchat'><body>hi</body></message>");
        ids.push(r.event("onBeforeSend", room, &send));
    }
    for id in &ids {
        assert!(r.verdict_for(id, WAIT).is("pass"));
    }
    let holders: Vec<usize> = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.requests()
                .iter()
                .any(|q| q.key == "trading@conference.example.com")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(holders.len(), 1, "one room, one server");
    assert_eq!(
        servers[holders[0]]
            .requests()
            .iter()
            .filter(|q| q.key == "trading@conference.example.com")
            .count(),
        10
    );
}

#[test]
fn affinity_and_fair_share_one_shard() {
    affinity_and_fairness(1);
}

#[test]
fn affinity_and_fair_share_two_shards() {
    affinity_and_fairness(2);
}

#[test]
fn sigterm_answers_events_in_flight_and_exits_zero() {
    let (server, mut gw) = one_server(
        2,
        &format!("{CHAT_BOUNCE}, {{ event = \"e_SESSION\", handling = \"pass\" }}"),
    );
    server.set_policy(|_| Answer::Silent);
    let mut r = TestRouter::connect(&gw);
    let chat = r.chat("alice", "bob", "in flight");
    let login = r.event("e_SESSION", "", "<presence from='carol@example.com/d'/>");
    assert!(server.wait_requests(2, WAIT));
    let status = {
        let pid = gw.pid();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let chat = r.verdict_for(&chat, WAIT);
        assert!(
            chat.is("bounce") && chat.xml.contains("service-unavailable"),
            "{chat:?}"
        );
        assert!(
            r.verdict_for(&login, WAIT).is("pass"),
            "logins pass when no server can take them"
        );
        let closed = r.closed(WAIT);
        assert_eq!(
            closed,
            Some(palisade_core::wire::Closed::PeerEnded),
            "the gateway ended its stream"
        );
        gw.stop()
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn both_accept_modes_serve_routers_on_every_shard() {
    for mode in ["handoff", "reuseport"] {
        let port = free_port();
        let server = TestServer::start(port, &component("cs1"), "pw-cs1");
        let rest = format!(
            "{}\n",
            server_block("cs1", port, "SystemDefaultComplianceProfile")
        );
        let text = config(2, FAST_TIMERS, &rest).replace(
            "shards = 2\n",
            &format!("shards = 2\naccept = \"{mode}\"\n"),
        );
        let gw = Gateway::start(&text);
        assert!(server.wait_streams(2, WAIT));
        let mut routers: Vec<TestRouter> = (0..4).map(|_| TestRouter::connect(&gw)).collect();
        for (i, r) in routers.iter_mut().enumerate() {
            let id = r.chat(&format!("a{i}"), "b", "hi");
            assert!(r.verdict_for(&id, WAIT).is("pass"), "{mode}");
        }
        if mode == "handoff" {
            // Four connections, handed out in turn: two per shard.
            assert_eq!(
                gw.log.count("[shard 0] Router imp1.example.com is ACTIVE"),
                2,
                "{}",
                gw.log.all()
            );
            assert_eq!(
                gw.log.count("[shard 1] Router imp1.example.com is ACTIVE"),
                2
            );
        }
    }
}
