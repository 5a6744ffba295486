//! The Prosody module (`integrations/prosody/mod_palisade.lua`) in a real Prosody, with real c2s
//! clients (raw XMPP over loopback, no TLS), the real gateway on the router outbound leg and a
//! test compliance server: every verdict, the minimum event map, the outage rule (a gateway that
//! stays connected but stops reading included), order within a conversation, the trust rule,
//! stanzas too large for the gateway, and a reload that adds an event.
//!
//! A missing Prosody is reported as SKIPPED on stderr (a failure under
//! `PALISADE_INTEROP_REQUIRED=1`, which CI sets).

use crate::interop;
use crate::support;

use interop::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const MUC: &str = "conference.localhost";

/// Prosody with the module on its VirtualHost and MUC component, users alice, bob and carol,
/// the gateway dialing it, and a test compliance server with `profile`'s entries.
struct Rig {
    prosody: Prosody,
    gw: Gateway,
    server: TestServer,
    c2s: u16,
    template: String,
}

fn gateway_config(prosody: &Prosody, cs_port: u16, events: &str) -> String {
    format!(
        r#"
[gateway]
name = "palisade.localhost"
domain = "localhost"
shards = 1
admin = "127.0.0.1:{{ADMIN_PORT}}"
[listen]
routers = "127.0.0.1:{{ROUTER_PORT}}"
[timers]
event_timeout = "10s"
reconnect_min = "50ms"
reconnect_max = "200ms"
[[router]]
name = "localhost"
secret = "{}"
connect = "127.0.0.1:{}"
[[profile]]
name = "Wall"
events = [
{events}
]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = {cs_port}
password = "pw-cs1"
profile = "Wall"
"#,
        prosody.get("SECRET"),
        prosody.get("COMPONENT_PORT"),
    )
}

fn rig(test: &str, events: &str, timeout_s: u32) -> Option<Rig> {
    rig_with(test, events, timeout_s, "")
}

/// As `rig`, with more modules on the VirtualHost (`extra`: a Lua list's items, e.g. `"offline", `).
fn rig_with(test: &str, events: &str, timeout_s: u32, extra: &str) -> Option<Rig> {
    rig_logging(test, events, timeout_s, extra, None)
}

/// As `rig_with`, with Prosody's log level (default: `PROSODY_TEST_LOG_LEVEL`, else info).
fn rig_logging(
    test: &str,
    events: &str,
    timeout_s: u32,
    extra: &str,
    level: Option<&str>,
) -> Option<Rig> {
    rig_options(test, events, timeout_s, extra, level, "")
}

/// As `rig_logging`, with more option lines (`options`, e.g. `"    palisade_max_unsent = 1"`)
/// for the module on the VirtualHost and on the MUC component alike.
fn rig_options(
    test: &str,
    events: &str,
    timeout_s: u32,
    extra: &str,
    level: Option<&str>,
    options: &str,
) -> Option<Rig> {
    let plugins = format!("\"{}\"", root().join("integrations/prosody").display());
    let vhost = format!(
        "    modules_enabled = {{ {extra}\"palisade\" }}\n    palisade_timeout = {timeout_s}\n{options}"
    );
    let module = format!(
        "    modules_enabled = {{ \"palisade\" }}\n    palisade_timeout = {timeout_s}\n{options}"
    );
    let level = level.map(str::to_owned).unwrap_or_else(|| {
        std::env::var("PROSODY_TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into())
    });
    let prosody = Prosody::start_with(
        test,
        &[
            ("PROSODY_PLUGIN_PATHS", &plugins),
            ("PROSODY_VHOST_LINES", &vhost),
            ("PROSODY_MUC", MUC),
            (
                "PROSODY_MUC_LINES",
                &format!("{module}\n    muc_room_locking = false"),
            ),
            ("PROSODY_EXTRA_USERS", "bob:bob-pw carol:carol-pw"),
            ("PROSODY_LOG_LEVEL", &level),
        ],
    )?;
    let cs_port = free_port();
    let server = TestServer::start(cs_port, "op-cs1.palisade-localhost", "pw-cs1");
    let template = gateway_config(&prosody, cs_port, "{EVENTS}");
    let gw = Gateway::start(&template.replace("{EVENTS}", events));
    let c2s = prosody.port("C2S_PORT");
    let rig = Rig {
        prosody,
        gw,
        server,
        c2s,
        template,
    };
    assert!(
        rig.server.wait_streams(1, Duration::from_secs(10)),
        "{}",
        rig.gw.log.all()
    );
    rig.wait_prosody_log("pair(s) to send", 2);
    Some(rig)
}

impl Rig {
    fn prosody_log(&self) -> String {
        std::fs::read_to_string(self.prosody.get("LOG")).unwrap_or_default()
    }

    /// Waits until Prosody's log holds `needle` at least `n` times.
    fn wait_prosody_log(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.prosody_log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "prosody never logged {needle:?} x{n}:\n{}\ngateway:\n{}",
                self.prosody_log(),
                self.gw.log.all()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn login(&self, user: &str, resource: &str) -> Client {
        let mut c = Client::connect(self.c2s, user, &format!("{user}-pw"));
        let bound = c.bind(resource);
        assert!(bound.contains("type='result'"), "{user} bind: {bound}");
        // Available, so that messages to the bare JID reach this session.
        c.send("<presence/>");
        let own = format!("from='{user}@localhost/{resource}'");
        c.expect("own presence", |s| {
            s.starts_with("<presence") && s.contains(&own)
        });
        c
    }

    fn requests(&self, event: &str) -> Vec<Request> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.event == event)
            .collect()
    }

    fn wait_request(&self, event: &str, needle: &str) -> Request {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self
                .requests(event)
                .into_iter()
                .find(|r| r.stanza.contains(needle))
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {event} request holding {needle:?}; got {:?}\nprosody:\n{}",
                self.server
                    .requests()
                    .iter()
                    .map(|r| format!("{} {}", r.event, r.stanza))
                    .collect::<Vec<_>>(),
                self.prosody_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A raw XMPP c2s client: PLAIN over plain TCP, stanzas split by a small tag-depth scanner.
struct Client {
    tcp: TcpStream,
    buf: String,
    jid: String,
    next_id: u32,
    /// Stanzas read and passed over, for failure messages.
    seen: Vec<String>,
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The end of the first complete top-level stanza in `s` (after the stream header), if any.
fn stanza_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(lt) = s[i..].find('<').map(|p| p + i) {
        let gt = s[lt..].find('>').map(|p| p + lt)?;
        let tag = &bytes[lt..=gt];
        i = gt + 1;
        if tag.starts_with(b"<?") || tag.starts_with(b"<stream:stream") {
            continue;
        }
        if tag.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        } else if tag.ends_with(b"/>") {
            if depth == 0 {
                return Some(i);
            }
        } else {
            depth += 1;
        }
    }
    None
}

impl Client {
    fn connect(port: u16, user: &str, password: &str) -> Client {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("c2s port");
        let mut c = Client {
            tcp,
            buf: String::new(),
            jid: format!("{user}@localhost"),
            next_id: 0,
            seen: Vec::new(),
        };
        c.open();
        c.read_until("</stream:features>", Duration::from_secs(10));
        let token = base64(format!("\0{user}\0{password}").as_bytes());
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        ));
        let auth = c.read_until("success", Duration::from_secs(10));
        assert!(auth.contains("<success"), "auth: {auth}");
        c.buf.clear();
        c.open();
        c.read_until("</stream:features>", Duration::from_secs(10));
        c.buf.clear();
        c
    }

    fn open(&mut self) {
        self.send("<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
    }

    fn send(&mut self, xml: &str) {
        self.tcp.write_all(xml.as_bytes()).expect("write");
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.tcp.set_read_timeout(Some(left)).ok();
        let mut b = [0u8; 16384];
        match self.tcp.read(&mut b) {
            Ok(0) => {
                std::thread::sleep(left.min(Duration::from_millis(50)));
                false
            }
            Ok(n) => {
                self.buf.push_str(&String::from_utf8_lossy(&b[..n]));
                true
            }
            Err(_) => false,
        }
    }

    /// Reads until the buffer holds `needle`; returns everything read so far.
    fn read_until(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.buf.contains(needle) && self.fill(deadline) {}
        self.buf.clone()
    }

    fn bind(&mut self, resource: &str) -> String {
        self.send(&format!("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"));
        let s = self.stanza(|s| s.contains("id='bind1'"), Duration::from_secs(15));
        let s = s.unwrap_or_else(|| panic!("no bind answer: {}", self.buf));
        if s.contains("type='result'") {
            self.jid = format!("{}/{resource}", self.jid);
        }
        s
    }

    /// The next stanza that satisfies `want` (stanzas before it are dropped).
    fn stanza(&mut self, want: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = stanza_end(&self.buf) {
                let start = self.buf.find('<').unwrap_or(0);
                let stanza = self.buf[start..end].to_owned();
                self.buf.drain(..end);
                if stanza.starts_with("<stream:stream") || stanza.starts_with("<?") {
                    continue;
                }
                if want(&stanza) {
                    return Some(stanza);
                }
                self.seen.push(stanza);
            }
            if !self.fill(deadline) && Instant::now() >= deadline {
                return None;
            }
        }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("c{}", self.next_id)
    }

    /// Sends a chat message; returns its id.
    fn chat(&mut self, to: &str, body: &str) -> String {
        let id = self.id();
        self.send(&format!(
            "<message type='chat' to='{to}' id='{id}'><body>{body}</body></message>"
        ));
        id
    }

    fn expect(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        self.stanza(want, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: no {what}; passed over {:#?}", self.jid, self.seen))
    }

    fn expect_none(&mut self, what: &str, want: impl Fn(&str) -> bool, wait: Duration) {
        if let Some(s) = self.stanza(want, wait) {
            panic!("{}: unexpected {what}: {s}", self.jid);
        }
    }

    /// The next message carrying `body`.
    fn message_with(&mut self, body: &str) -> String {
        let needle = format!("<body>{body}</body>");
        self.expect(body, |s| s.starts_with("<message") && s.contains(&needle))
    }

    /// The error answer to the stanza with `id`.
    fn error_for(&mut self, id: &str) -> String {
        let needle = format!("id='{id}'");
        self.expect(&format!("error for {id}"), |s| {
            s.contains(&needle) && s.contains("type='error'")
        })
    }

    fn join(&mut self, room: &str, nick: &str) -> String {
        self.send(&format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        let from = format!("from='{room}/{nick}'");
        self.expect("join answer", |s| {
            s.starts_with("<presence") && s.contains(&from)
        })
    }
}

/// Every verdict is the compliance server's answer to a message body.
fn by_body(r: &Request) -> Answer {
    let s = &r.stanza;
    if s.contains("please-handle") {
        Answer::Handle
    } else if s.contains("please-bounce") {
        Answer::Error("not-acceptable".into())
    } else if s.contains("please-modify") {
        Answer::Modify(s.replace("please-modify", "modified by compliance"))
    } else if s.contains("please-silence") {
        Answer::Silent
    } else if s.contains("<resource>refused</resource>") {
        Answer::Error("not-authorized".into())
    } else if s.contains("forbidden-room") {
        Answer::Error("forbidden".into())
    } else if let Some(later) = s.split("later-").nth(1) {
        let ms: u64 = later
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Answer::Later(Duration::from_millis(ms), Box::new(Answer::Pass))
    } else {
        Answer::Pass
    }
}

const WALL: &str = r#"
{ event = "e_SESSION", handling = "bounce" },
{ event = "es_END", fire_and_forget = true, handling = "pass" },
{ event = "es_OUT", packet = "message", handling = "bounce" },
{ event = "es_OUT", packet = "subscription", fire_and_forget = true, handling = "bounce" },
{ event = "es_IN", packet = "message", handling = "bounce" },
{ event = "onBeforeRoomCreate", handling = "bounce" },
{ event = "onBeforeJoin", handling = "bounce" },
{ event = "onAfterJoin", fire_and_forget = true, handling = "pass" },
{ event = "onLeave", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeSend", handling = "bounce" },
{ event = "onBeforeInvite", handling = "bounce" },
"#;

#[test]
fn prosody_module_enforces_every_verdict() {
    let Some(rig) = rig("module-verdicts", WALL, 5) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");

    // pass: delivered as sent.
    alice.chat("bob@localhost", "plain hello");
    bob.message_with("plain hello");
    // pass with a replacement: delivered as the compliance server rewrote it.
    alice.chat("bob@localhost", "please-modify");
    bob.message_with("modified by compliance");
    // handle: not delivered, no error.
    let handled = alice.chat("bob@localhost", "please-handle");
    // bounce: the sender gets the stanza back with the server's error.
    let bounced = alice.chat("bob@localhost", "please-bounce");
    let error = alice.error_for(&bounced);
    assert!(
        error.contains("<not-acceptable") && error.contains("please-bounce"),
        "{error}"
    );
    // drop: a subscription request (fire-and-forget, handling bounce) vanishes silently.
    alice.send("<presence type='subscribe' to='bob@localhost' id='sub1'/>");
    rig.wait_request("es_OUT", "type='subscribe'");
    alice.chat("bob@localhost", "after the others");
    bob.message_with("after the others");
    bob.expect_none(
        "blocked stanza",
        |s| s.contains("please-handle") || s.contains("please-bounce") || s.contains("subscribe"),
        Duration::from_millis(300),
    );
    alice.expect_none(
        "answer to handled or dropped stanza",
        |s| s.contains(&format!("id='{handled}'")) || s.contains("id='sub1'"),
        Duration::from_millis(100),
    );
    // A refused login fails the bind with the server's error.
    let mut refused = Client::connect(rig.c2s, "carol", "carol-pw");
    let bind = refused.bind("refused");
    assert!(
        bind.contains("type='error'") && bind.contains("not-authorized"),
        "{bind}"
    );
    // A refused join gets the presence error; the room is not joined.
    let join = alice.join(&format!("forbidden-room@{MUC}"), "alice");
    assert!(
        join.contains("type='error'") && join.contains("<forbidden"),
        "{join}"
    );
}

#[test]
fn prosody_module_sends_the_minimum_event_map() {
    let Some(rig) = rig("module-events", WALL, 5) else {
        return;
    };
    let mut alice = rig.login("alice", "desk");
    let login = rig.wait_request("e_SESSION", "from='alice@localhost/desk'");
    assert_eq!(login.key, "alice@localhost");
    let mut bob = rig.login("bob", "desk");
    alice.chat("bob@localhost", "map hello");
    bob.message_with("map hello");
    let out = rig.wait_request("es_OUT", "map hello");
    assert_eq!(out.key, "alice@localhost|bob@localhost");
    assert!(
        out.stanza.contains("from='alice@localhost/desk'"),
        "{}",
        out.stanza
    );
    let inbound = rig.wait_request("es_IN", "map hello");
    assert_eq!(inbound.packet.as_deref(), Some("message"));
    // Unmatched events cost nothing: no presence was ever sent to the gateway.
    assert!(rig
        .requests("es_OUT")
        .iter()
        .all(|r| !r.stanza.starts_with("<presence")));

    let room = format!("trading@{MUC}");
    let join = alice.join(&room, "alice");
    assert!(!join.contains("type='error'"), "{join}");
    let create = rig.wait_request("onBeforeRoomCreate", "trading@");
    assert_eq!(create.key, room);
    rig.wait_request("onBeforeJoin", "from='alice@localhost/desk'");
    rig.wait_request("onAfterJoin", "alice@localhost");
    bob.join(&room, "bob");
    rig.wait_request("onBeforeJoin", "from='bob@localhost/desk'");
    let id = alice.id();
    alice.send(&format!(
        "<message type='groupchat' to='{room}' id='{id}'><body>room hello</body></message>"
    ));
    bob.message_with("room hello");
    let send = rig.wait_request("onBeforeSend", "room hello");
    assert_eq!(send.key, room);
    alice.send(&format!(
        "<message to='{room}' id='inv1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='carol@localhost'/></x></message>"
    ));
    rig.wait_request("onBeforeInvite", "carol@localhost");
    bob.send(&format!("<presence type='unavailable' to='{room}/bob'/>"));
    rig.wait_request("onLeave", "bob");
    drop(bob);
    rig.wait_request("es_END", "bob@localhost/desk");
}

#[test]
fn prosody_module_keeps_order_within_a_conversation() {
    let Some(rig) = rig("module-order", WALL, 5) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    // Early messages are judged slowest; they still arrive first.
    for i in 0..10 {
        alice.chat("bob@localhost", &format!("seq-{i}-later-{}", (10 - i) * 30));
    }
    for i in 0..10 {
        let got = bob.expect("next message", |s| s.starts_with("<message"));
        assert!(
            got.contains(&format!("seq-{i}-")),
            "message {i} out of order: {got}"
        );
    }
}

/// The verdicts are taken off the gateway's stream by the module's own parser and never go
/// through Prosody's stanza router (which logs, at debug level, every stanza it is handed as
/// `Received[component]: <top tag>`), and they are enforced all the same; a plain pass verdict
/// is matched as text without going through the XML parser at all.
#[test]
fn prosody_module_takes_verdicts_off_the_gateway_stream() {
    let Some(mut rig) = rig_logging("module-verdict-path", WALL, 5, "", Some("debug")) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    alice.chat("bob@localhost", "straight through");
    bob.message_with("straight through");
    let id = alice.chat("bob@localhost", "please-bounce this one");
    let err = alice.error_for(&id);
    assert!(err.contains("not-acceptable"), "{err}");
    assert!(rig.requests("es_OUT").len() >= 2);
    let log = rig.prosody_log();
    let routed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Received[component]") && l.contains("palisade-"))
        .collect();
    assert!(
        routed.is_empty(),
        "verdicts went through the stanza router: {routed:#?}"
    );
    // A plain pass verdict is not even parsed; the bounce above was.
    assert!(
        log.contains("pass verdict(s) taken unparsed"),
        "no pass verdict was taken without the parser:\n{log}"
    );
    // A gateway that reconnects gets the module's parser on its new session too.
    rig.gw.stop();
    rig.wait_prosody_log("component disconnected", 1);
    rig.gw = Gateway::start(&rig.template.replace("{EVENTS}", WALL));
    assert!(
        rig.gw.log.wait_for(
            "Component op-cs1.palisade-localhost is ACTIVE",
            Duration::from_secs(10)
        ),
        "{}",
        rig.gw.log.all()
    );
    rig.wait_prosody_log("pair(s) to send", 4);
    alice.chat("bob@localhost", "after the reconnection");
    bob.message_with("after the reconnection");
    let id = alice.chat("bob@localhost", "please-bounce again");
    let err = alice.error_for(&id);
    assert!(err.contains("not-acceptable"), "{err}");
    let log = rig.prosody_log();
    assert!(
        !log.lines()
            .any(|l| l.contains("Received[component]") && l.contains("palisade-")),
        "verdicts went through the stanza router after the reconnection:\n{log}"
    );
}

#[test]
fn prosody_module_outage_rule() {
    let Some(mut rig) = rig("module-outage", WALL, 2) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    // The compliance server is silent past palisade_timeout: wait / remote-server-timeout.
    let silent = alice.chat("bob@localhost", "please-silence");
    let started = Instant::now();
    let error = alice.error_for(&silent);
    assert!(
        error.contains("type='wait'") && error.contains("<remote-server-timeout"),
        "{error}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    bob.expect_none(
        "unjudged message",
        |s| s.contains("please-silence"),
        Duration::from_millis(200),
    );
    // The gateway goes away: cancel / service-unavailable, at once; logged once.
    rig.gw.stop();
    rig.wait_prosody_log("component disconnected", 1);
    for n in 0..3 {
        let id = alice.chat("bob@localhost", &format!("while down {n}"));
        let error = alice.error_for(&id);
        assert!(
            error.contains("type='cancel'") && error.contains("<service-unavailable"),
            "{error}"
        );
    }
    bob.expect_none(
        "unjudged message",
        |s| s.contains("while down"),
        Duration::from_millis(200),
    );
    // Logins and logouts go on.
    let mut carol = rig.login("carol", "desk");
    carol.send("</stream:stream>");
    let log = rig.prosody_log();
    assert_eq!(
        log.matches("refusing what must be judged").count(),
        2,
        "one line for the timeout, one for the disconnection:\n{log}"
    );
}

/// Sends `signal` (e.g. "-STOP") to process `pid`; true when `kill` did.
fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Stops process `pid` (SIGSTOP) until dropped, so that a failing test does not leave it
/// stopped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        assert!(signal(pid, "-STOP"), "kill -STOP {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

/// `n` attributes, ` a0='v' a1='v' ...`: more than the gateway takes on one element.
fn many_attributes(n: usize) -> String {
    (0..n).map(|i| format!(" a{i}='v'")).collect()
}

const NOT_READING: &str = "not reading its stream";

/// A gateway that stays connected but stops reading (SIGSTOP) must not make Prosody hold every
/// event for it: past `palisade_max_unsent` bytes the outage rule applies at once (a join that
/// waits is refused without waiting `palisade_timeout`, notices are not sent and counted), and
/// once the gateway reads again everything sent reaches the compliance server and the count of
/// what was not sent is logged, so that the two add up to what users sent.
#[test]
fn prosody_module_bounds_what_a_gateway_that_stops_reading_holds() {
    const EVENTS: &str = r#"
{ event = "es_OUT", packet = "message", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeJoin", handling = "bounce" },
"#;
    let Some(rig) = rig_options(
        "module-not-reading",
        EVENTS,
        60,
        "",
        None,
        "    palisade_max_unsent = 262144",
    ) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    // Messages to a user who does not exist: each is an es_OUT notice, and Prosody answers with
    // a small error instead of holding a delivery.
    alice.chat("nobody@localhost", "before-the-stop");
    rig.wait_request("es_OUT", "before-the-stop");

    let stopped = Stopped::stop(rig.gw.pid());
    let body = "x".repeat(16 * 1024);
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Far more than the kernel's socket buffers take, so that Prosody's own buffer fills.
    while !rig.prosody_log().contains(NOT_READING) {
        assert!(
            Instant::now() < deadline,
            "after {sent} notices of 16 KiB, no outage:\n{}",
            rig.prosody_log()
        );
        for _ in 0..20 {
            sent += 1;
            alice.chat("nobody@localhost", &format!("flood-{sent}-{body}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // What would wait is refused at once, with the error of a verdict that does not come.
    let started = Instant::now();
    let refused = alice.join(&format!("desk@{MUC}"), "alice");
    assert!(
        refused.contains("type='error'") && refused.contains("<remote-server-timeout"),
        "{refused}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused only after {:?} (palisade_timeout is 60 s)",
        started.elapsed()
    );
    for _ in 0..5 {
        sent += 1;
        alice.chat("nobody@localhost", &format!("flood-{sent}-while-full"));
    }

    // The gateway reads again: the buffer drains, the outage ends with the count of notices
    // that were not sent, and the rest reaches the compliance server.
    drop(stopped);
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = |log: &str| {
        log.lines()
            .find(|l| l.contains(" localhost:palisade") && l.contains("reads its stream again"))
            .map(str::to_owned)
    };
    while ended(&rig.prosody_log()).is_none() {
        assert!(
            Instant::now() < deadline,
            "the outage never ended:\n{}",
            rig.prosody_log()
        );
        sent += 1;
        alice.chat("nobody@localhost", &format!("flood-{sent}-probe"));
        std::thread::sleep(Duration::from_millis(100));
    }
    sent += 1;
    let last = format!("flood-{sent}-last");
    alice.chat("nobody@localhost", &last);
    // One conversation's events arrive in order: once the last is there, all sent ones are.
    rig.wait_request("es_OUT", &last);
    let log = rig.prosody_log();
    let not_sent: usize = ended(&log)
        .as_deref()
        .and_then(|l| l.split("; ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of notices not sent:\n{log}"));
    let received = rig
        .requests("es_OUT")
        .iter()
        .filter(|r| r.stanza.contains("flood-"))
        .count();
    assert!(not_sent > 0, "{log}");
    assert_eq!(
        received + not_sent,
        sent,
        "every notice is either recorded or counted as not sent"
    );
    // Once per outage and module instance: the VirtualHost's here (the MUC component's
    // instance, which refused the join, has its own).
    let begun = log
        .lines()
        .filter(|l| l.contains(" localhost:palisade") && l.contains(NOT_READING))
        .filter(|l| l.contains("refusing what must be judged"))
        .count();
    assert_eq!(begun, 1, "logged once:\n{log}");
    // And what waits is judged again.
    let joined = alice.join(&format!("desk@{MUC}"), "alice");
    assert!(!joined.contains("type='error'"), "{joined}");
}

/// A client stanza the gateway's limits would refuse inside an event (too many attributes on
/// an element, too deep, or too long once escaped) must not reach the gateway: the gateway
/// would close the router stream, an outage for every user. The module refuses the stanza
/// itself (`policy-violation`), waiting or not, and the stream stays up.
#[test]
fn prosody_module_refuses_what_the_gateway_could_not_take() {
    const EVENTS: &str = r#"
{ event = "es_OUT", packet = "message", handling = "bounce" },
{ event = "es_OUT", packet = "presence", fire_and_forget = true, handling = "pass" },
"#;
    let Some(rig) = rig("module-limits", EVENTS, 5) else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    let attrs = many_attributes(70);
    let deep = format!(
        "{}{}",
        "<x xmlns='urn:example:deep'>".repeat(31),
        "</x>".repeat(31)
    );
    // Plain apostrophes in text are one byte each as sent and six once escaped (&apos;).
    let quotes = "'".repeat(60 * 1024);
    let crafted = [
        (
            "attributes",
            format!("<wide xmlns='urn:example:wide'{attrs}/>"),
        ),
        ("depth", deep),
        ("escaped length", format!("<body>{quotes}</body>")),
    ];
    for (what, payload) in &crafted {
        let id = alice.id();
        alice.send(&format!(
            "<message type='chat' to='bob@localhost' id='{id}'>{payload}<body>crafted {what}</body></message>"
        ));
        let error = alice.error_for(&id);
        assert!(error.contains("<policy-violation"), "{what}: {error}");
        // A notice (nothing waits for it) is refused the same way: it would go unrecorded.
        let id = alice.id();
        alice.send(&format!(
            "<presence to='bob@localhost' id='{id}'>{payload}</presence>"
        ));
        let error = alice.error_for(&id);
        assert!(
            error.contains("<policy-violation"),
            "{what}, presence: {error}"
        );
    }
    bob.expect_none(
        "a crafted message",
        |s| s.contains("crafted "),
        Duration::from_millis(300),
    );
    // The router stream never went down, and ordinary messages are judged as before.
    alice.chat("bob@localhost", "after the crafted ones");
    bob.message_with("after the crafted ones");
    let log = rig.prosody_log();
    assert_eq!(
        log.matches("External component successfully authenticated")
            .count(),
        1,
        "the gateway connected once:\n{log}"
    );
    assert!(
        !rig.gw.log.all().contains("policy-violation"),
        "{}",
        rig.gw.log.all()
    );
}

/// After the fact there is nothing left to refuse: a room join (no event before it here) whose
/// presence is too large to be recorded goes on, and Prosody's log says it was not recorded (at
/// most once a minute, with a count).
#[test]
fn prosody_module_tells_what_it_could_not_record() {
    const EVENTS: &str = r#"
{ event = "onAfterJoin", fire_and_forget = true, handling = "pass" },
"#;
    let Some(rig) = rig("module-not-recorded", EVENTS, 5) else {
        return;
    };
    let mut alice = rig.login("alice", "desk");
    let attrs = many_attributes(70);
    let room = format!("desk@{MUC}");
    alice.send(&format!(
        "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/>\
         <wide xmlns='urn:example:wide'{attrs}/></presence>"
    ));
    let from = format!("from='{room}/alice'");
    let joined = alice.expect("join answer", |s| {
        s.starts_with("<presence") && s.contains(&from)
    });
    assert!(!joined.contains("type='error'"), "{joined}");
    rig.wait_prosody_log(
        "1 stanza(s) too large for the gateway's limits not recorded since the last such warning (the last as onAfterJoin)",
        1,
    );
    // An ordinary join is recorded.
    let mut bob = rig.login("bob", "desk");
    bob.join(&room, "bob");
    rig.wait_request("onAfterJoin", "bob@localhost");
}

#[test]
fn prosody_module_trust_rule() {
    let Some(rig) = rig("module-trust", WALL, 5) else {
        return;
    };
    let mut alice = rig.login("alice", "desk");
    // The module refuses a client's stanza to the gateway...
    alice.send("<iq type='set' id='forged' to='palisade.localhost'><event xmlns='urn:palisade:compliance:0' name='es_OUT'><message xmlns='jabber:client' from='bob@localhost/desk' to='carol@localhost' type='chat'><body>forged</body></message></event></iq>");
    let error = alice.error_for("forged");
    assert!(error.contains("<forbidden"), "{error}");
    alice.chat("palisade.localhost", "probe");
    let error = alice.stanza(|s| s.contains("type='error'"), Duration::from_secs(5));
    assert!(error.is_some_and(|e| e.contains("<forbidden")));
    assert!(rig
        .server
        .requests()
        .iter()
        .all(|r| !r.stanza.contains("forged")));
}

#[test]
fn prosody_module_learns_a_reload_without_restart() {
    let events = r#"{ event = "e_SESSION", fire_and_forget = true, handling = "pass" },"#;
    let Some(rig) = rig("module-reload", events, 5) else {
        return;
    };
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    alice.chat("bob@localhost", "before reload");
    bob.message_with("before reload");
    assert!(
        rig.requests("es_OUT").is_empty(),
        "no round trip for an unmatched event"
    );
    let reloaded = rig.gw.reload(&rig.template.replace(
        "{EVENTS}",
        &format!(
            "{events}\n{{ event = \"es_OUT\", packet = \"message\", handling = \"bounce\" }},"
        ),
    ));
    assert!(reloaded.contains("reloaded from"), "{reloaded}");
    rig.wait_prosody_log("pair(s) to send", 3);
    rig.server.set_policy(by_body);
    alice.chat("bob@localhost", "after reload");
    bob.message_with("after reload");
    rig.wait_request("es_OUT", "after reload");
    let id = alice.chat("bob@localhost", "please-bounce");
    assert!(alice.error_for(&id).contains("<not-acceptable"));
}

/// The events beyond the minimum map: before-events wait (handling pass), after-events are
/// notices.
const REST: &str = r#"
{ event = "e_SERVER", packet = "iq", handling = "pass" },
{ event = "e_DISCOFEAT", handling = "pass" },
{ event = "onServicePacket", handling = "pass" },
{ event = "onServiceDiscoInfo", fire_and_forget = true, handling = "pass" },
{ event = "onAfterRoomCreate", fire_and_forget = true, handling = "pass" },
{ event = "onPacket", handling = "pass" },
{ event = "onExamineRoom", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeSubject", handling = "pass" },
{ event = "onBeforeBroadcast", handling = "pass" },
{ event = "onAfterInvite", fire_and_forget = true, handling = "pass" },
{ event = "onMetaInfoGet", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeMetaInfoSet", handling = "pass" },
{ event = "onAfterMetaInfoSet", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeChangeAffiliation", handling = "pass" },
{ event = "onAfterChangeAffiliation", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeRemoveAffiliation", handling = "pass" },
{ event = "onAfterRemoveAffiliation", fire_and_forget = true, handling = "pass" },
{ event = "onBeforeChangeUser", handling = "pass" },
{ event = "onHistory", fire_and_forget = true, handling = "pass" },
{ event = "onClose", handling = "pass" },
{ event = "onDestroy", fire_and_forget = true, handling = "pass" },
"#;

#[test]
fn prosody_module_sends_the_rest_of_the_map() {
    let Some(rig) = rig("module-rest", REST, 5) else {
        return;
    };
    let mut alice = rig.login("alice", "desk");
    let mut bob = rig.login("bob", "desk");
    let answer = |c: &mut Client, id: &str| {
        let needle = format!("id='{id}'");
        let s = c.expect(id, |s| s.contains(&needle));
        assert!(!s.contains("type='error'"), "{s}");
        s
    };
    alice.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    answer(&mut alice, "d1");
    rig.wait_request("e_SERVER", "id='d1'");
    rig.wait_request("e_DISCOFEAT", "id='d1'");
    alice.send(&format!("<iq type='get' id='d2' to='{MUC}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
    answer(&mut alice, "d2");
    rig.wait_request("onServiceDiscoInfo", "id='d2'");
    rig.wait_request("onServicePacket", "id='d2'");

    let room = format!("rest@{MUC}");
    let join = alice.join(&room, "alice");
    assert!(!join.contains("type='error'"), "{join}");
    rig.wait_request("onAfterRoomCreate", "alice@localhost");
    alice.send(&format!("<iq type='get' id='d3' to='{room}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
    answer(&mut alice, "d3");
    rig.wait_request("onExamineRoom", "id='d3'");
    rig.wait_request("onPacket", "id='d3'");
    alice.send(&format!(
        "<message type='groupchat' to='{room}' id='s1'><subject>today</subject></message>"
    ));
    rig.wait_request("onBeforeSubject", "today");
    alice.send(&format!(
        "<message type='groupchat' to='{room}' id='g1'><body>to all</body></message>"
    ));
    alice.message_with("to all");
    rig.wait_request("onBeforeBroadcast", "to all");
    bob.join(&room, "bob");
    rig.wait_request("onHistory", "bob@localhost");
    alice.send(&format!("<message to='{room}' id='i1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='carol@localhost'/></x></message>"));
    rig.wait_request("onAfterInvite", "carol@localhost");
    alice.send(&format!("<iq type='get' id='f1' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>"));
    answer(&mut alice, "f1");
    rig.wait_request("onMetaInfoGet", "muc#owner");
    alice.send(&format!("<iq type='set' id='f2' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_roomname'><value>Rest</value></field></x></query></iq>"));
    answer(&mut alice, "f2");
    rig.wait_request("onBeforeMetaInfoSet", "id='f2'");
    rig.wait_request("onAfterMetaInfoSet", "Rest");
    let admin = |id: &str, item: &str| {
        format!("<iq type='set' id='{id}' to='{room}'><query xmlns='http://jabber.org/protocol/muc#admin'><item {item}/></query></iq>")
    };
    alice.send(&admin("a1", "jid='carol@localhost' affiliation='member'"));
    answer(&mut alice, "a1");
    rig.wait_request("onBeforeChangeAffiliation", "carol@localhost");
    rig.wait_request("onAfterChangeAffiliation", "carol@localhost");
    alice.send(&admin("a2", "jid='carol@localhost' affiliation='none'"));
    answer(&mut alice, "a2");
    rig.wait_request("onBeforeRemoveAffiliation", "carol@localhost");
    rig.wait_request("onAfterRemoveAffiliation", "carol@localhost");
    alice.send(&admin("r1", "nick='bob' role='visitor'"));
    answer(&mut alice, "r1");
    rig.wait_request("onBeforeChangeUser", "role='visitor'");
    bob.send(&format!(
        "<presence to='{room}/bob'><show>away</show></presence>"
    ));
    rig.wait_request("onBeforeChangeUser", "<show>away</show>");
    alice.send(&format!("<iq type='set' id='x1' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>"));
    answer(&mut alice, "x1");
    rig.wait_request("onClose", "destroy");
    rig.wait_request("onDestroy", "destroy");
}

#[test]
fn prosody_module_judges_offline_storage() {
    let events = r#"{ event = "e_OFFLINE", handling = "bounce" },"#;
    // start.sh disables mod_offline globally; this VirtualHost enables it again.
    let Some(rig) = rig_with("module-offline", events, 5, "\"offline\", ") else {
        return;
    };
    rig.server.set_policy(by_body);
    let mut alice = rig.login("alice", "desk");
    // bob has no session: the messages are for mod_offline to store, each judged first.
    alice.chat("bob@localhost", "kept for later");
    let stored = rig.wait_request("e_OFFLINE", "kept for later");
    assert_eq!(stored.packet.as_deref(), Some("message"));
    assert!(
        stored.stanza.contains("from='alice@localhost/desk'"),
        "{}",
        stored.stanza
    );
    let refused = alice.chat("bob@localhost", "please-bounce");
    let error = alice.error_for(&refused);
    assert!(error.contains("<not-acceptable"), "{error}");
    rig.wait_request("e_OFFLINE", "please-bounce");
    // bob comes online: what passed was stored and is delivered; what was bounced was not.
    let mut bob = rig.login("bob", "desk");
    bob.message_with("kept for later");
    bob.expect_none(
        "a refused offline message",
        |s| s.contains("please-bounce"),
        Duration::from_millis(300),
    );
}

#[test]
fn prosody_module_tells_a_prosody_reconfiguration() {
    let events = r#"{ event = "onServiceReconfig", fire_and_forget = true, handling = "pass" },"#;
    let Some(rig) = rig("module-reconfig", events, 5) else {
        return;
    };
    assert!(rig.requests("onServiceReconfig").is_empty());
    // Prosody reloads its configuration on SIGHUP (mod_posix) and fires config-reloaded.
    let pid = rig.prosody.get("PID");
    let status = std::process::Command::new("kill")
        .args(["-HUP", pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -HUP {pid}");
    let told = rig.wait_request("onServiceReconfig", "id='reconfig'");
    assert_eq!(told.key, MUC, "{}", told.xml);
    assert!(
        told.stanza.contains(&format!("from='{MUC}'")),
        "{}",
        told.stanza
    );
}

/// True when a `prosody` binary is on PATH (the scripts that start one need nothing else).
fn prosody_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("prosody").is_file()))
}

/// Runs `command`, asserts it exited 0 (showing its output if not), and returns its stdout.
fn stdout_of_success(command: &mut std::process::Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn palisade_demo_prosody_shows_the_wall_with_real_users() {
    // The demo needs Prosody like the rest; without it, it says what is missing and exits 77.
    if !prosody_on_path() {
        skip("demo-prosody", "prosody not installed");
        return;
    }
    let text = stdout_of_success(
        std::process::Command::new(env!("CARGO_BIN_EXE_palisade")).args(["demo", "--prosody"]),
        "palisade demo --prosody",
    );
    for line in [
        "[ok] alice (trading) -> bob (research) is refused: forbidden",
        "[ok] alice -> carol arrives",
        "[ok] alice cannot join research-desk@conference.localhost: forbidden",
        "RESULT: the wall held; allowed messages arrived",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(
        text.contains("blocked: es_OUT error key=alice@localhost|bob@localhost"),
        "{text}"
    );
}

/// The cost benchmark runs, small, in both of its client modes (every message of a sender at
/// once, and at most one on its way per sender), and every message reaches its receiver once.
#[test]
fn prosody_bench_delivers_every_message_in_both_client_modes() {
    if !prosody_on_path() {
        skip("prosody-bench", "prosody not installed");
        return;
    }
    for window in ["0", "1"] {
        let work = std::env::temp_dir().join(format!(
            "palisade-prosody-bench-{}-{window}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&work);
        let text = stdout_of_success(
            std::process::Command::new("bash")
                .arg(root().join("integrations/prosody/bench.sh"))
                .args(["400", "8"])
                .arg(&work)
                .env("PALISADE", env!("CARGO_BIN_EXE_palisade"))
                .env("BENCH_WINDOW", window)
                .env("BENCH_COUNT", "0")
                .env("BENCH_RECV_TIMEOUT", "30"),
            &format!("bench.sh, window {window}"),
        );
        assert!(
            text.contains("delivered: plain 400, with module 400"),
            "window {window}: {text}"
        );
        let mode = if window == "1" {
            "each sender with at most 1 on their way"
        } else {
            "each sender's sent at once"
        };
        assert!(text.contains(mode), "window {window}: {text}");
        // Where Prosody and the gateway's shard ran, read off the processes, not assumed.
        assert!(
            text.contains("placement: Prosody on CPU(s) ")
                && text.contains(", the gateway's shard on CPU(s) ")
                && !text.contains("shard on CPU(s) ?"),
            "window {window}: {text}"
        );
        let _ = std::fs::remove_dir_all(&work);
    }
}
