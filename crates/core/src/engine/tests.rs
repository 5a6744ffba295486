//! Engine tests: every row of docs/protocol.md §3 and §5, outages, key order, and a property
//! test of the terminal-state invariant under random schedules. They drive the shard's gateway
//! core as the runtime does (events and answers as stanzas on its connections, links as
//! connection events, offers taken or refused, room on `Drained`), so the glue under test is
//! the runtime's; the few that check an invariant of the engine itself (reload epochs, early
//! link reports, its count of deferred sends, timer cost) drive the engine alone.

// The tests read the clock for base instants and read the repository's default configuration;
// the engine under test takes both as parameters.
#![allow(clippy::disallowed_methods)]

use super::*;
use crate::gateway::{ConnId, ConnectionEvent, Gateway, Now, Offered, Output, Peer};
use crate::policy::{load_str, CompiledPolicy, ServerId};
use crate::protocol::{parse_answer, parse_event, Reply};
use crate::wire::Stanza;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const TIMEOUT: Duration = Duration::from_millis(100);
const WINDOW: Duration = Duration::from_millis(1000);

/// Two profiles: `Wall` (es_OUT message bounce, onBeforeJoin, e_SESSION pass, es_IN
/// fire-and-forget bounce, onAfterJoin, onServiceReconfig) on cs1 and cs2, and `Log` (es_OUT
/// message pass) on cs3; Wall first.
const TWO_PROFILES: &str = r#"
[gateway]
name = "gw.example.com"
[[router]]
name = "imp1.example.com"
secret = "s"
[[profile]]
name = "Wall"
events = [
  { event = "es_OUT", packet = "message", handling = "bounce" },
  { event = "onBeforeJoin" },
  { event = "e_SESSION", handling = "pass" },
  { event = "es_IN", packet = "message", handling = "bounce", fire_and_forget = true },
  { event = "onAfterJoin" },
  { event = "onServiceReconfig", handling = "pass", fire_and_forget = true },
]
[[profile]]
name = "Log"
events = [ { event = "es_OUT", packet = "message", handling = "pass" } ]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 1
password = "p"
profile = "Wall"
[[server]]
name = "cs2"
host = "127.0.0.1"
port = 2
password = "p"
profile = "Wall"
[[server]]
name = "cs3"
host = "127.0.0.1"
port = 3
password = "p"
profile = "Log"
[routing]
priority = ["Wall", "Log"]
"#;

const CS1: ServerId = ServerId(0);
const CS2: ServerId = ServerId(1);
const CS3: ServerId = ServerId(2);
const ROUTER: RouterRef = RouterRef { shard: 0, conn: 1 };

struct Sent {
    server: ServerId,
    request: Option<crate::protocol::RequestId>,
    xml: String,
}

/// One server's stream as the harness plays it: with a limit, it refuses writes past `limit`
/// unwritten bytes (and every later one until it gave room), as the runtime does.
#[derive(Default, Clone)]
struct Stream {
    limit: Option<usize>,
    unwritten: usize,
    refusing: bool,
    room_wanted: bool,
    deferred: usize,
}

/// What the harness drives.
enum Drive {
    /// The shard's gateway core, fed and drained as the runtime does (`handle_*` in,
    /// `poll_output` out): every test of gateway behaviour goes through the same glue.
    Gateway {
        core: Box<Gateway>,
        router: ConnId,
        /// Each server's current stream (its link on this shard).
        links: Vec<Option<ConnId>>,
    },
    /// The engine alone, for its internal invariants (reload epochs, early link reports,
    /// deferral accounting, timer cost), through its public methods.
    Engine(Box<ShardEngine>),
}

struct Harness {
    drive: Drive,
    policy: Arc<CompiledPolicy>,
    now: Instant,
    sent: Vec<Sent>,
    streams: Vec<Stream>,
    verdicts: Vec<String>,
    alarms: Vec<Alarm>,
    violations: usize,
    next_id: u32,
}

fn frame(xml: &str) -> Stanza {
    crate::wire::test_stanza(xml.as_bytes())
}

/// Whom the harness drives.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Through {
    Gateway,
    Engine,
}

impl Harness {
    /// A shard driven through its gateway core.
    fn new(toml: &str, queue_bound: usize) -> Harness {
        Harness::build(toml, queue_bound, Through::Gateway, |_| {})
    }

    /// The engine alone (see [`Drive::Engine`]).
    fn engine_only(toml: &str, queue_bound: usize) -> Harness {
        Harness::build(toml, queue_bound, Through::Engine, |_| {})
    }

    /// A shard whose engine `prepare` sets up (a spool, a run id) before anything runs.
    fn build(
        toml: &str,
        queue_bound: usize,
        through: Through,
        prepare: impl FnOnce(&mut ShardEngine),
    ) -> Harness {
        let config = Arc::new(
            load_str(toml, "test.toml")
                .unwrap_or_else(|d| panic!("{d:?}"))
                .config,
        );
        let policy = Arc::new(CompiledPolicy::compile(&config));
        let now = Instant::now();
        let cfg = EngineConfig {
            shard: 0,
            // The gateway's shard owns every key when it is the only one; the engine alone
            // sees a second shard with no stream on it.
            shards: match through {
                Through::Gateway => 1,
                Through::Engine => 2,
            },
            gateway_name: "gw.example.com".into(),
            event_timeout: TIMEOUT,
            outage_window: WINDOW,
            queue_bound,
            link_batch_bytes: 1000,
        };
        let mut engine = ShardEngine::new(cfg, policy.clone(), now);
        prepare(&mut engine);
        let drive = match through {
            Through::Engine => Drive::Engine(Box::new(engine)),
            Through::Gateway => {
                let mut core = Box::new(Gateway::new(engine, config, policy.clone()));
                let router = core.handle_connection_opened(Peer::RouterInbound, "router".into());
                let name = "imp1.example.com".to_owned();
                core.handle_connection_event(router, ConnectionEvent::NameAnnounced { name }, now);
                core.handle_connection_event(router, ConnectionEvent::Active, now);
                while core.poll_output().is_some() {}
                Drive::Gateway {
                    core,
                    router,
                    links: vec![None; 8],
                }
            }
        };
        Harness {
            drive,
            policy,
            now,
            sent: Vec::new(),
            streams: vec![Stream::default(); 8],
            verdicts: Vec::new(),
            alarms: Vec::new(),
            violations: 0,
            next_id: 0,
        }
    }

    /// The engine, to read.
    fn engine(&self) -> &ShardEngine {
        match &self.drive {
            Drive::Gateway { core, .. } => core.engine(),
            Drive::Engine(engine) => engine,
        }
    }

    /// The engine, to feed directly (engine-only harnesses).
    fn engine_mut(&mut self) -> &mut ShardEngine {
        match &mut self.drive {
            Drive::Gateway { .. } => panic!("this harness drives the gateway core"),
            Drive::Engine(engine) => engine,
        }
    }

    fn up(&mut self, server: ServerId) {
        self.link(server, LinkChange::Up);
    }

    /// This shard's stream to `server` comes up or goes away.
    fn link(&mut self, server: ServerId, change: LinkChange) {
        let now = self.now;
        match &mut self.drive {
            Drive::Engine(engine) => engine.handle_link(server, 0, change, now),
            Drive::Gateway { core, links, .. } => match change {
                LinkChange::Up => {
                    let peer = Peer::ServerOutbound {
                        server,
                        generation: 0,
                    };
                    let conn = core.handle_connection_opened(peer, "127.0.0.1:1".into());
                    core.handle_connection_event(conn, ConnectionEvent::Active, now);
                    links[server.index()] = Some(conn);
                }
                LinkChange::Down(closing) => {
                    // A stream that is not there cannot go away.
                    if let Some(conn) = links[server.index()].take() {
                        let closed = match closing {
                            Closing::Graceful => crate::wire::Closed::PeerEnded,
                            Closing::Abrupt => crate::wire::Closed::TransportEnded,
                        };
                        core.handle_connection_event(conn, ConnectionEvent::Ended(closed), now);
                    }
                }
            },
        }
        self.collect();
    }

    fn collect(&mut self) {
        match &self.drive {
            Drive::Engine(_) => self.collect_actions(),
            Drive::Gateway { .. } => self.collect_outputs(),
        }
        let c = self.engine().counters();
        assert_eq!(
            c.received,
            c.terminal_total() + self.engine().in_flight() as u64,
            "received = terminal states + in flight"
        );
    }

    /// Carries out the engine's actions as the runtime's glue would.
    fn collect_actions(&mut self) {
        let Drive::Engine(engine) = &mut self.drive else {
            return;
        };
        while let Some(a) = engine.poll_action() {
            match a {
                Action::Send {
                    server,
                    link,
                    request,
                    bytes,
                } => {
                    assert_eq!(link, 0, "the only stream is on shard 0");
                    let s = &mut self.streams[server.index()];
                    if let Some(limit) = s.limit {
                        if s.refusing || s.unwritten > limit {
                            s.refusing = true;
                            s.deferred += 1;
                            engine.handle_send_deferred(server, link, request, bytes, self.now);
                            continue;
                        }
                        s.unwritten += bytes.len();
                    }
                    self.sent.push(Sent {
                        server,
                        request: request.request(),
                        xml: String::from_utf8(bytes.to_vec()).unwrap(),
                    });
                    if let Outgoing::Replay { seq } = request {
                        engine.handle_replay_written(seq, self.now);
                    }
                }
                Action::AwaitRoom { server, link } => {
                    assert_eq!(link, 0);
                    let s = &mut self.streams[server.index()];
                    s.room_wanted = true;
                    if s.limit.is_none() || s.unwritten <= s.limit.unwrap_or(0) / 2 {
                        s.room_wanted = false;
                        s.refusing = false;
                        engine.handle_link_room(server, link, self.now);
                    }
                }
                Action::Verdict { router, bytes } => {
                    assert_eq!(router, ROUTER);
                    self.verdicts
                        .push(String::from_utf8(bytes.to_vec()).unwrap());
                }
                Action::Alarm(a) => self.alarms.push(a),
                Action::ProtocolViolation { .. } => self.violations += 1,
            }
        }
    }

    /// Carries out the gateway core's outputs as the runtime does: offers written or refused
    /// by the streams, room reported once a stream has drained, verdicts read by the router,
    /// alarms and protocol violations read from the log lines.
    fn collect_outputs(&mut self) {
        let now = self.now;
        let Drive::Gateway {
            core,
            router,
            links,
        } = &mut self.drive
        else {
            return;
        };
        let server_of = |links: &[Option<ConnId>], conn: ConnId| {
            links
                .iter()
                .position(|l| *l == Some(conn))
                .map(|i| ServerId(i as u16))
        };
        while let Some(out) = core.poll_output() {
            match out {
                Output::Offer(offer) => {
                    let server =
                        server_of(links, offer.conn()).expect("offers go to a current link");
                    let s = &mut self.streams[server.index()];
                    if let Some(limit) = s.limit {
                        if s.refusing || s.unwritten > limit {
                            s.refusing = true;
                            s.deferred += 1;
                            core.handle_offer(offer, Offered::Refused, now);
                            continue;
                        }
                        s.unwritten += offer.bytes().len();
                    }
                    self.sent.push(Sent {
                        server,
                        request: offer.request().request(),
                        xml: String::from_utf8(offer.bytes().to_vec()).unwrap(),
                    });
                    core.handle_offer(offer, Offered::Taken, now);
                }
                Output::WakeRoom { conn } => {
                    let Some(server) = server_of(links, conn) else {
                        // A stream that was replaced or is gone: nobody waits on it.
                        continue;
                    };
                    let s = &mut self.streams[server.index()];
                    s.room_wanted = true;
                    if s.limit.is_none() || s.unwritten <= s.limit.unwrap_or(0) / 2 {
                        s.room_wanted = false;
                        s.refusing = false;
                        core.handle_connection_event(conn, ConnectionEvent::Drained, now);
                    }
                }
                Output::Verdict { conn, bytes } => {
                    assert_eq!(conn, *router, "verdicts go to the event's router");
                    self.verdicts
                        .push(String::from_utf8(bytes.to_vec()).unwrap());
                }
                Output::Log { text, .. } => {
                    if text.starts_with("protocol violation by") {
                        self.violations += 1;
                    } else if let Some(alarm) = alarm_of(&text, core.policy()) {
                        self.alarms.push(alarm);
                    }
                }
                _ => {}
            }
        }
    }

    /// Submits an event; returns its router id (`R0`, `R1`...).
    fn event(&mut self, name: &str, extra: &str, inner: &str) -> String {
        let id = format!("R{}", self.next_id);
        self.next_id += 1;
        let xml = format!(
            "<iq type='set' id='{id}' from='imp1.example.com' to='gw.example.com'>\
             <event xmlns='urn:palisade:compliance:0' name='{name}'{extra}>{inner}</event></iq>"
        );
        let iq = frame(&xml);
        let now = self.now;
        let policy = self.policy.clone();
        match &mut self.drive {
            Drive::Engine(engine) => {
                let ev = parse_event(&iq, Reply::of(&iq).unwrap(), |n| {
                    policy.node_id(n.unwrap_or("imp1").as_bytes())
                })
                .unwrap();
                let hash = crate::routing::KeyHasher::new().hash(ev.key());
                engine.handle_event(ev, hash, ROUTER, now, SystemTime::now());
            }
            Drive::Gateway { core, router, .. } => {
                let wall = SystemTime::now();
                core.handle_stanza(*router, &iq, Now { at: now, wall });
            }
        }
        self.collect();
        id
    }

    fn chat(&mut self, from: &str, to: &str) -> String {
        self.event(
            "es_OUT",
            "",
            &format!("<message from='{from}@example.com/r' to='{to}@example.com' type='chat'><body>hi</body></message>"),
        )
    }

    /// Answers the `i`th sent request with `body` (an iq type and payload), on the server's
    /// stream (a server with no stream left cannot answer through the gateway).
    fn answer(&mut self, i: usize, iq_type: &str, payload: &str) {
        let s = &self.sent[i];
        let id = s.request.expect("a wait-mode request").to_string();
        let server = s.server;
        let xml =
            format!("<iq type='{iq_type}' id='{id}' from='cs' to='gw.example.com'>{payload}</iq>");
        let now = self.now;
        match &mut self.drive {
            Drive::Engine(engine) => {
                let parsed = parse_answer(&frame(&xml)).unwrap();
                engine.handle_answer(server, parsed, now);
            }
            Drive::Gateway { core, links, .. } => {
                if let Some(conn) = links[server.index()] {
                    let wall = SystemTime::now();
                    core.handle_stanza(conn, &frame(&xml), Now { at: now, wall });
                }
            }
        }
        self.collect();
    }

    fn pass(&mut self, i: usize) {
        self.answer(i, "result", "");
    }

    /// Gives `server`'s stream a limit of `limit` unwritten bytes (see [`Stream`]).
    fn limit(&mut self, server: ServerId, limit: usize) {
        self.streams[server.index()].limit = Some(limit);
    }

    /// The server reads everything written to its stream: room for whoever waits for it.
    fn drain(&mut self, server: ServerId) {
        let s = &mut self.streams[server.index()];
        s.unwritten = 0;
        if s.room_wanted {
            s.room_wanted = false;
            s.refusing = false;
            let now = self.now;
            match &mut self.drive {
                Drive::Engine(engine) => engine.handle_link_room(server, 0, now),
                Drive::Gateway { core, links, .. } => {
                    if let Some(conn) = links[server.index()] {
                        core.handle_connection_event(conn, ConnectionEvent::Drained, now);
                    }
                }
            }
        }
        self.collect();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        match &mut self.drive {
            Drive::Engine(engine) => engine.handle_timeout(now),
            Drive::Gateway { core, .. } => core.handle_timeout(now),
        }
        self.collect();
    }

    /// The shard shuts down: what is in flight gets its verdict.
    fn shutdown(&mut self) {
        let now = self.now;
        match &mut self.drive {
            Drive::Engine(engine) => engine.drain(now),
            Drive::Gateway { core, .. } => core.handle_shutdown(now),
        }
        self.collect();
    }

    fn verdict_for(&self, id: &str) -> &str {
        self.verdicts
            .iter()
            .find(|v| v.contains(&format!("id='{id}'")))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no verdict for {id}: {:?}", self.verdicts))
    }
}

/// The alarm a gateway log line raises or clears (`alarm NAME raised: compliance server S`).
fn alarm_of(text: &str, policy: &CompiledPolicy) -> Option<Alarm> {
    let rest = text.strip_prefix("alarm ")?;
    let (name, rest) = rest.split_once(' ')?;
    let (state, about) = match rest.split_once(": ")? {
        ("raised", about) => (crate::engine::AlarmState::Raised, about),
        ("cleared", about) => (crate::engine::AlarmState::Cleared, about),
        _ => return None,
    };
    let server = about.strip_prefix("compliance server ").and_then(|n| {
        policy
            .servers()
            .iter()
            .position(|s| s.name == n)
            .map(|i| ServerId(i as u16))
    });
    match (name, server) {
        ("ComplianceServerConnectionLost", Some(server)) => {
            Some(Alarm::ConnectionLost { server, state })
        }
        ("ComplianceServerLeftRing", Some(server)) => Some(Alarm::LeftRing { server, state }),
        ("ComplianceServerQueueFull", Some(server)) => Some(Alarm::QueueFull { server, state }),
        ("SpoolFull", None) => Some(Alarm::SpoolFull { state }),
        _ => None,
    }
}

fn all_up() -> Harness {
    let mut h = Harness::new(TWO_PROFILES, 100);
    for s in [CS1, CS2, CS3] {
        h.up(s);
    }
    h
}

/// [`all_up`] for the engine alone.
fn all_up_engine() -> Harness {
    let mut h = Harness::engine_only(TWO_PROFILES, 100);
    for s in [CS1, CS2, CS3] {
        h.up(s);
    }
    h
}

#[test]
fn empty_chain_passes_at_once() {
    let mut h = all_up();
    let id = h.event(
        "es_OUT",
        "",
        "<presence from='a@example.com' to='b@example.com'/>",
    );
    assert!(h.sent.is_empty());
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
    assert_eq!(h.engine().counters().terminal[Terminal::Pass.index()], 1);
}

#[test]
fn two_profiles_walk_in_priority_order_then_pass() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    assert_eq!(h.sent.len(), 1);
    assert!(h.sent[0].server == CS1 || h.sent[0].server == CS2);
    assert!(h.sent[0]
        .xml
        .contains("profile='Wall' handling='bounce' mode='wait'"));
    assert!(h.sent[0]
        .xml
        .contains("key='alice@example.com|bob@example.com'"));
    h.pass(0);
    assert_eq!(
        h.sent.len(),
        2,
        "the second profile's step follows the first's PASS"
    );
    assert_eq!(h.sent[1].server, CS3);
    assert!(h.verdicts.is_empty());
    h.pass(1);
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
}

#[test]
fn handle_ends_the_walk() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    h.answer(
        0,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>",
    );
    assert!(h
        .verdict_for(&id)
        .contains("action='handle' profile='Wall' server='cs"));
    assert_eq!(h.sent.len(), 1, "later profiles never see a handled event");
}

#[test]
fn bounce_carries_the_servers_error_and_stops_the_chain() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    h.answer(
        0,
        "error",
        "<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    );
    let v = h.verdict_for(&id);
    assert!(v.contains("action='bounce' profile='Wall'"), "{v}");
    assert!(
        v.contains("<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{v}"
    );
    assert_eq!(h.sent.len(), 1, "the Log profile never sees it");
    assert_eq!(h.engine().counters().terminal[Terminal::Bounce.index()], 1);
}

#[test]
fn error_with_handling_pass_is_discarded_and_fails_open() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    h.pass(0);
    h.answer(1, "error", "<error type='wait'><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
    assert_eq!(
        h.engine().counters().terminal[Terminal::FailedOpen.index()],
        1
    );
}

#[test]
fn timeout_bounces_with_remote_server_timeout() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    h.advance(TIMEOUT - Duration::from_millis(1));
    assert!(h.verdicts.is_empty());
    h.advance(Duration::from_millis(1));
    assert!(h
        .verdict_for(&id)
        .contains("<error type='wait'><remote-server-timeout "));
    let late = h.sent.len() - 1;
    h.pass(late);
    assert_eq!(h.verdicts.len(), 1, "a late answer changes nothing");
    assert_eq!(
        h.engine().counters().servers[h.sent[0].server.index()].late_answers,
        1
    );
}

#[test]
fn fire_and_forget_pass_goes_on_and_bounce_drops() {
    let mut h = all_up();
    // es_IN message: Wall has it fire-and-forget with bounce: notify, then drop.
    let id = h.event(
        "es_IN",
        "",
        "<message from='b@example.com' to='a@example.com'><body>x</body></message>",
    );
    assert_eq!(h.sent.len(), 1);
    assert!(h.sent[0].xml.starts_with("<message id='g0."));
    assert!(h.sent[0].xml.contains("mode='notify'"));
    assert!(h.verdict_for(&id).contains("action='drop' profile='Wall'"));
    // onServiceReconfig: notify-only; handling pass: notified and passed at once.
    let id = h.event(
        "onServiceReconfig",
        "",
        "<iq type='set' from='x@example.com' to='conference.example.com'/>",
    );
    assert!(
        h.sent[1].xml.contains("name='onServiceReconfig'")
            && h.sent[1].xml.contains("mode='notify'")
    );
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
    assert_eq!(h.engine().counters().terminal[Terminal::Drop.index()], 1);
}

#[test]
fn pass_only_events_refuse_handle_and_modification() {
    let mut h = all_up();
    // onAfterJoin: "PASS with nothing in it": HANDLE and a modified stanza count as plain PASS.
    let join = "<presence from='a@example.com/r' to='room@conf.example.com/a'/>";
    let id = h.event("onAfterJoin", " room='room@conf.example.com'", join);
    h.answer(
        0,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>",
    );
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
    let id = h.event("onAfterJoin", " room='room@conf.example.com'", join);
    h.answer(
        1,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='pass'><presence to='x'/></verdict>",
    );
    assert!(
        h.verdict_for(&id).contains("action='pass'/>"),
        "modification refused"
    );
    let id = h.event("onAfterJoin", " room='room@conf.example.com'", join);
    h.answer(
        2,
        "error",
        "<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    );
    assert!(
        h.verdict_for(&id).contains("action='pass'/>"),
        "errors refused too"
    );
    assert_eq!(h.violations, 3);
    let cs = h.sent[0].server.index();
    assert_eq!(
        h.engine().counters().servers[cs].protocol_violations
            + h.engine().counters().servers[1 - cs].protocol_violations,
        3
    );
}

#[test]
fn modification_is_carried_to_later_steps_and_the_verdict() {
    let mut h = all_up();
    let id = h.chat("alice", "bob");
    let modified = "<message from='alice@example.com/r' to='bob@example.com' type='chat'><body>hi [disclaimer]</body></message>";
    h.answer(
        0,
        "result",
        &format!("<verdict xmlns='urn:palisade:compliance:0' action='pass'>{modified}</verdict>"),
    );
    assert!(
        h.sent[1].xml.contains(modified),
        "the next profile judges the modified stanza"
    );
    h.pass(1);
    assert!(h
        .verdict_for(&id)
        .contains(&format!("action='pass'>{modified}</verdict>")));
}

#[test]
fn verdicts_leave_in_arrival_order_per_key() {
    let mut h = all_up();
    let first = h.chat("alice", "bob");
    let second = h.chat("bob", "alice");
    let other = h.chat("carol", "dave");
    assert_eq!(h.sent.len(), 3);
    h.answer(
        2,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>",
    );
    assert_eq!(h.verdicts.len(), 1);
    assert!(h.verdicts[0].contains(&format!("id='{other}'")));
    // The second alice/bob event finishes its walk first, but waits for the first.
    h.answer(
        1,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>",
    );
    assert_eq!(h.verdicts.len(), 1);
    h.answer(
        0,
        "result",
        "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>",
    );
    assert_eq!(h.verdicts.len(), 3);
    assert!(h.verdicts[1].contains(&format!("id='{first}'")));
    assert!(h.verdicts[2].contains(&format!("id='{second}'")));
}

#[test]
fn affinity_both_directions_and_rooms_land_on_one_server() {
    let mut h = all_up();
    h.chat("alice", "bob");
    h.chat("bob", "alice");
    assert_eq!(h.sent[0].server, h.sent[1].server);
    for who in ["a", "b", "c", "d"] {
        h.event(
            "onBeforeJoin",
            " room='trading@conf.example.com'",
            &format!("<presence from='{who}@example.com/r' to='trading@conf.example.com/{who}'/>"),
        );
    }
    let room: Vec<ServerId> = h.sent[2..].iter().map(|s| s.server).collect();
    assert!(room.windows(2).all(|w| w[0] == w[1]), "{room:?}");
}

#[test]
fn graceful_loss_moves_the_share_including_unanswered_events() {
    let mut h = all_up();
    // Find a conversation that cs1 takes.
    let mut n = 0;
    let id = loop {
        let id = h.chat(&format!("u{n}"), "bob");
        n += 1;
        if h.sent.last().unwrap().server == CS1 {
            break id;
        }
    };
    let before = h.sent.len();
    h.link(CS1, LinkChange::Down(Closing::Graceful));
    assert_eq!(h.engine().reach(CS1), Some(Reach::Down));
    assert!(h.alarms.contains(&Alarm::ConnectionLost {
        server: CS1,
        state: crate::engine::AlarmState::Raised
    }));
    assert!(h.alarms.contains(&Alarm::LeftRing {
        server: CS1,
        state: crate::engine::AlarmState::Raised
    }));
    assert_eq!(
        h.sent.len(),
        before + 1,
        "the unanswered event went to cs2 at once"
    );
    assert_eq!(h.sent.last().unwrap().server, CS2);
    let moved = h.sent.len() - 1;
    h.pass(moved);
    h.pass(h.sent.len() - 1);
    assert!(h.verdict_for(&id).contains("action='pass'"));
    // cs1 back: it takes its share again.
    h.up(CS1);
    assert!(h.alarms.contains(&Alarm::LeftRing {
        server: CS1,
        state: crate::engine::AlarmState::Cleared
    }));
    h.chat(&format!("u{}", n - 1), "bob");
    assert_eq!(h.sent.last().unwrap().server, CS1);
}

#[test]
fn graceful_loss_of_the_only_server_fails_steps_at_once() {
    let mut h = all_up();
    h.link(CS3, LinkChange::Down(Closing::Graceful));
    // e_SESSION (Wall, pass) still goes to cs1/cs2; the Log step (pass) has no server: fails open.
    let id = h.chat("alice", "bob");
    h.pass(0);
    assert!(h.verdict_for(&id).contains("action='pass'/>"));
    assert_eq!(
        h.engine().counters().terminal[Terminal::FailedOpen.index()],
        1
    );
    h.link(CS1, LinkChange::Down(Closing::Graceful));
    h.link(CS2, LinkChange::Down(Closing::Graceful));
    let id = h.chat("alice", "bob");
    assert!(
        h.verdict_for(&id).contains("<service-unavailable "),
        "IMs bounce at once"
    );
    let login = h.event("e_SESSION", "", "<presence from='alice@example.com/r'/>");
    assert!(
        h.verdict_for(&login).contains("action='pass'/>"),
        "logins pass at once"
    );
}

#[test]
fn ungraceful_loss_queues_until_each_timer_then_delivers_on_return() {
    let mut h = Harness::new(TWO_PROFILES, 100);
    h.up(CS3);
    // cs1 and cs2 have never connected: they are in their start-up outage window.
    let a = h.chat("alice", "bob");
    assert!(h.sent.is_empty(), "queued, not sent");
    h.advance(TIMEOUT);
    assert!(
        h.verdict_for(&a).contains("remote-server-timeout"),
        "bounced when its own timer fired"
    );
    let b = h.chat("carol", "dave");
    h.advance(TIMEOUT / 2);
    h.up(CS1);
    h.up(CS2);
    assert_eq!(
        h.sent.len(),
        1,
        "the queued event is delivered when the server returns"
    );
    h.pass(0);
    h.pass(1);
    assert!(h.verdict_for(&b).contains("action='pass'/>"));
    // An established server dropping ungracefully: its unanswered event goes back in the queue.
    let c = h.chat("erin", "frank");
    let server = h.sent.last().unwrap().server;
    h.link(server, LinkChange::Down(Closing::Abrupt));
    assert_eq!(
        h.engine().reach(server),
        Some(Reach::Outage { since: h.now })
    );
    assert!(h.alarms.contains(&Alarm::ConnectionLost {
        server,
        state: crate::engine::AlarmState::Raised
    }));
    assert!(!h.alarms.contains(&Alarm::LeftRing {
        server,
        state: crate::engine::AlarmState::Raised
    }));
    let sent = h.sent.len();
    h.up(server);
    assert_eq!(h.sent.len(), sent + 1, "resent on the new stream");
    assert_eq!(h.sent.last().unwrap().request, h.sent[sent - 1].request);
    h.pass(sent);
    h.pass(sent + 1);
    assert!(h.verdict_for(&c).contains("action='pass'"));
}

#[test]
fn after_the_outage_window_the_queue_fails_and_the_share_moves() {
    let mut h = all_up();
    h.link(CS1, LinkChange::Down(Closing::Abrupt));
    let mut queued = None;
    for n in 0..40 {
        let id = h.chat(&format!("u{n}"), "bob");
        if h.verdicts.is_empty() && h.sent.iter().all(|s| s.server != CS1) && queued.is_none() {
            // Nothing sent for this one and no verdict: it waits in cs1's queue.
            if h.engine().servers()[CS1.index()].queued() == 1 {
                queued = Some((id, n));
            }
        }
    }
    let (queued_id, n) = queued.expect("some conversation belongs to cs1");
    // Keep the queued event alive past the window: the window is longer than the timer, so
    // use a fresh event just before the window ends.
    h.advance(WINDOW - TIMEOUT / 2);
    assert!(h.verdict_for(&queued_id).contains("remote-server-timeout"));
    let late = h.chat(&format!("u{n}"), "bob");
    h.advance(TIMEOUT / 2);
    assert_eq!(h.engine().reach(CS1), Some(Reach::Down));
    assert!(h.alarms.contains(&Alarm::LeftRing {
        server: CS1,
        state: crate::engine::AlarmState::Raised
    }));
    assert!(
        h.verdict_for(&late).contains("service-unavailable"),
        "its queue fails at once"
    );
    h.chat(&format!("u{n}"), "bob");
    assert_eq!(
        h.sent.last().unwrap().server,
        CS2,
        "new events go to the remaining server"
    );
}

#[test]
fn seed_two_profile_example_first_server_down_bounces_and_second_never_sees_it() {
    let mut h = Harness::new(
        include_str!("../../../../tests/configs/seed_outage_two_profiles.toml"),
        100,
    );
    h.up(ServerId(1)); // Compliance Server 2 is up; Server 1 fails ungracefully (never up).
    let id = h.chat("a", "b");
    h.advance(TIMEOUT);
    assert!(h
        .verdict_for(&id)
        .contains("action='bounce' profile='Profile1'"));
    assert!(
        h.sent.is_empty(),
        "the es_OUT for Profile 2 is never sent to Compliance Server 2"
    );
}

#[test]
fn a_full_queue_fails_the_step_at_once_and_raises_its_alarm() {
    let mut h = Harness::new(TWO_PROFILES, 2);
    h.up(CS3);
    let ids: Vec<String> = (0..30).map(|n| h.chat(&format!("u{n}"), "v")).collect();
    let full =
        h.engine().counters().servers[0].queue_full + h.engine().counters().servers[1].queue_full;
    assert_eq!(full, 26, "two queued per server, the rest refused");
    assert_eq!(h.verdicts.len(), 26);
    assert!(h.verdicts.iter().all(|v| v.contains("service-unavailable")));
    assert!(h.alarms.iter().any(|a| matches!(
        a,
        Alarm::QueueFull {
            state: crate::engine::AlarmState::Raised,
            ..
        }
    )));
    h.up(CS1);
    h.up(CS2);
    assert!(h.alarms.iter().any(|a| matches!(
        a,
        Alarm::QueueFull {
            state: crate::engine::AlarmState::Cleared,
            ..
        }
    )));
    assert_eq!(h.sent.len(), 4);
    drop(ids);
}

#[test]
fn drain_answers_everything_in_flight() {
    let mut h = all_up();
    let a = h.chat("alice", "bob");
    let b = h.event("e_SESSION", "", "<presence from='carol@example.com/r'/>");
    h.shutdown();
    assert!(h.verdict_for(&a).contains("service-unavailable"));
    assert!(h.verdict_for(&b).contains("action='pass'/>"));
    let c = h.chat("x", "y");
    assert!(h.verdict_for(&c).contains("service-unavailable"));
    assert_eq!(h.engine().in_flight(), 0);
}

#[test]
fn a_backlog_larger_than_the_stream_goes_out_in_order_as_room_appears() {
    let mut h = Harness::new(TWO_PROFILES, 1000);
    h.up(CS3);
    // cs1 and cs2 have never connected: a backlog queues for them, in arrival order.
    let ids: Vec<String> = (0..60).map(|n| h.chat(&format!("u{n}"), "bob")).collect();
    assert!(h.sent.is_empty());
    // Each request is about 700 bytes: the streams take a few at a time.
    h.limit(CS1, 2000);
    h.limit(CS2, 2000);
    h.up(CS1);
    h.up(CS2);
    assert!(
        h.sent.len() < 20,
        "released in batches, not all at once: {}",
        h.sent.len()
    );
    let mut rounds = 0;
    while h.sent.len() < 60 {
        h.drain(CS1);
        h.drain(CS2);
        rounds += 1;
        assert!(rounds < 100, "stuck at {} sent", h.sent.len());
    }
    assert!(rounds > 3, "the backlog took several rounds: {rounds}");
    assert!(h.verdicts.is_empty(), "nothing failed: {:?}", h.verdicts);
    assert_eq!(
        h.engine().counters().servers[0].timeouts + h.engine().counters().servers[1].timeouts,
        0
    );
    // In arrival order on each server.
    for server in [CS1, CS2] {
        let order: Vec<usize> = h
            .sent
            .iter()
            .filter(|s| s.server == server)
            .map(|s| {
                let at = s.xml.find("from='u").unwrap() + 7;
                s.xml[at..].split('@').next().unwrap().parse().unwrap()
            })
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{server:?}: {order:?}"
        );
    }
    // Everything is answered by the servers: 60 first steps, then 60 Log steps.
    for i in 0..60 {
        h.pass(i);
    }
    while h.sent.len() < 120 {
        h.drain(CS1);
        h.drain(CS2);
    }
    for i in 60..120 {
        h.pass(i);
    }
    for id in &ids {
        assert!(h.verdict_for(id).contains("action='pass'/>"), "{id}");
    }
    assert_eq!(h.engine().in_flight(), 0);
}

#[test]
fn sends_deferred_by_a_full_stream_go_back_in_order_and_fail_only_on_their_timer() {
    // The engine's own count of what its streams handed back (through the gateway, a refused
    // stream's later sends are handed back by the core, not the stream).
    let mut h = all_up_engine();
    h.limit(CS1, 1000);
    h.limit(CS2, 1000);
    let ids: Vec<String> = (0..20).map(|n| h.chat(&format!("w{n}"), "bob")).collect();
    let deferred = h.streams[0].deferred + h.streams[1].deferred;
    assert!(deferred > 0, "the streams were full");
    assert!(
        h.verdicts.is_empty(),
        "a deferred send does not fail its step"
    );
    assert_eq!(
        h.engine().counters().servers[0].deferred + h.engine().counters().servers[1].deferred,
        deferred as u64
    );
    // Nobody reads: each event fails on its own timer, not before.
    h.advance(TIMEOUT - Duration::from_millis(1));
    assert!(h.verdicts.is_empty());
    h.advance(Duration::from_millis(1));
    for id in &ids {
        assert!(h.verdict_for(id).contains("remote-server-timeout"), "{id}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Chat(u8, u8),
    Login(u8),
    Answer(usize, u8),
    Advance(u16),
    LinkDown(u8, bool),
    LinkUp(u8),
    /// The server reads all its stream holds.
    Drain(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..6).prop_map(|(a, b)| Op::Chat(a, b)),
        1 => (0u8..6).prop_map(Op::Login),
        5 => (0usize..64, 0u8..5).prop_map(|(i, k)| Op::Answer(i, k)),
        2 => (1u16..150).prop_map(Op::Advance),
        1 => (0u8..3, any::<bool>()).prop_map(|(s, g)| Op::LinkDown(s, g)),
        1 => (0u8..3).prop_map(Op::LinkUp),
        2 => (0u8..3).prop_map(Op::Drain),
    ]
}

/// Plays one step of a random schedule; new event ids go to `ids`.
fn apply(h: &mut Harness, ids: &mut Vec<String>, op: Op) {
    match op {
        Op::Chat(a, b) => ids.push(h.chat(&format!("u{a}"), &format!("u{b}"))),
        Op::Login(a) => ids.push(h.event(
            "e_SESSION",
            "",
            &format!("<presence from='u{a}@example.com/r'/>"),
        )),
        Op::Answer(i, kind) => {
            if h.sent.is_empty() {
                return;
            }
            let i = i % h.sent.len();
            if h.sent[i].request.is_none() {
                return;
            }
            match kind {
                0 => h.answer(i, "result", ""),
                1 => h.answer(i, "result", "<verdict xmlns='urn:palisade:compliance:0' action='handle'/>"),
                2 => h.answer(i, "error", "<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"),
                3 => h.answer(i, "result", "<verdict xmlns='urn:palisade:compliance:0' action='pass'><message to='x@example.com'/></verdict>"),
                _ => h.answer(i, "result", "<verdict xmlns='urn:palisade:compliance:0' action='nonsense'/>"),
            }
        }
        Op::Advance(ms) => h.advance(Duration::from_millis(u64::from(ms))),
        Op::LinkDown(s, graceful) => {
            h.link(
                ServerId(u16::from(s)),
                LinkChange::Down(if graceful {
                    Closing::Graceful
                } else {
                    Closing::Abrupt
                }),
            );
        }
        Op::LinkUp(s) => h.up(ServerId(u16::from(s))),
        Op::Drain(s) => h.drain(ServerId(u16::from(s))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Under any schedule of events, answers, timers and link changes: received = terminal
    /// states + in flight after every step (checked in `collect`), every event gets exactly one
    /// verdict, and once time runs out nothing is left in flight.
    #[test]
    fn every_event_ends_exactly_once(ops in proptest::collection::vec(op(), 1..120)) {
        let mut h = all_up();
        // Streams that hold two requests or so: sends are deferred, queued and released.
        for s in [CS1, CS2, CS3] {
            h.limit(s, 1500);
        }
        let mut ids = Vec::new();
        for op in ops {
            apply(&mut h, &mut ids, op);
        }
        // Let every timer and window run out.
        for _ in 0..30 {
            h.advance(TIMEOUT);
        }
        prop_assert_eq!(h.engine().in_flight(), 0);
        for id in &ids {
            let n = h.verdicts.iter().filter(|v| v.contains(&format!("id='{id}'"))).count();
            prop_assert_eq!(n, 1, "event {} got {} verdicts", id, n);
        }
        prop_assert_eq!(h.verdicts.len(), ids.len());
    }
}

#[test]
fn many_pending_events_cost_no_runtime_timers() {
    let mut h = all_up_engine();
    for n in 0..50_000 {
        let ev = {
            let iq = frame(&format!(
                "<iq type='set' id='X{n}' from='imp1.example.com' to='gw'><event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
                 <message from='u{n}@example.com' to='v@example.com'/></event></iq>"
            ));
            let policy = h.policy.clone();
            parse_event(&iq, Reply::of(&iq).unwrap(), |_| policy.node_id(b"imp1")).unwrap()
        };
        let now = h.now;
        h.engine_mut()
            .handle_event(ev, n, ROUTER, now, SystemTime::now());
    }
    while h.engine_mut().poll_action().is_some() {}
    assert_eq!(h.engine().in_flight(), 50_000);
    assert!(h.engine().poll_timeout().is_some());
    h.now += TIMEOUT;
    let now = h.now;
    h.engine_mut().handle_timeout(now);
    let mut verdicts = 0;
    while let Some(a) = h.engine_mut().poll_action() {
        if matches!(a, Action::Verdict { .. }) {
            verdicts += 1;
        }
    }
    assert_eq!(verdicts, 50_000);
    assert_eq!(h.engine().in_flight(), 0);
    let _ = CS3;
}

mod reload;
mod spool;
