//! The bundled tools as processes: `palisade load` against `palisade sim --router-echo`, the
//! load generator failing loudly against a gateway that answers wrongly, and `palisade sim` as
//! a compliance server driven by a tiny in-test gateway (rules, notifications, archive, faults).

use bytes::BytesMut;
use palisade_core::policy::{EventId, Handling, PacketType};
use palisade_core::protocol::{
    parse_answer, write_request, Answer, Mode, RequestFields, RequestId,
};
use palisade_core::wire::stream::NS_ACCEPT;
use palisade_core::wire::{
    Closed, ComponentStream, Condition, FromCheck, Stanza, StreamConfig, StreamEvent,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const CS_NAME: &str = "op-cs1.palisade-example-com";
const GATEWAY: &str = "palisade.example.com";

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("palisade-tools-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `palisade sim` child; stopped with SIGTERM (so it flushes its archive) when dropped.
struct Sim {
    child: Child,
    addr: String,
}

impl Sim {
    fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(BIN)
            .arg("sim")
            .args(["--listen", "127.0.0.1:0", "--quiet"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn palisade sim");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Sim { child, addr }
    }

    fn stop(&mut self) {
        // SAFETY: signalling our own child by pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "sim exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("sim did not stop on SIGTERM");
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `palisade load` to completion; returns its exit code, stdout and JSON report.
fn load(addr: &str, args: &[&str], dir: &Path) -> (i32, String, serde_json::Value) {
    let json = dir.join("load.json");
    let out = Command::new(BIN)
        .arg("load")
        .args(["--connect", addr, "--secret", "s", "--quiet"])
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("run palisade load");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no JSON report\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    (out.status.code().unwrap_or(-1), stdout, report)
}

#[test]
fn load_against_the_router_echo_gets_every_verdict_once() {
    let dir = temp_dir("echo");
    let mut sim = Sim::start(&[
        "--router-echo",
        "--secret",
        "s",
        "--handle-rate",
        "0.05",
        "--error-rate",
        "0.05",
        "--seed",
        "7",
    ]);
    // Open loop, two connections, with a chart.
    let plot = dir.join("latency.svg");
    let (code, stdout, r) = load(
        &sim.addr,
        &[
            "--rate",
            "4000",
            "--duration",
            "2s",
            "--connections",
            "2",
            "--plot",
            plot.to_str().unwrap(),
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["ok"], true, "{r}");
    let sent = r["sent"].as_u64().unwrap();
    assert!((6000..=8100).contains(&sent), "sent {sent}");
    assert_eq!(r["answered"].as_u64(), Some(sent));
    for m in [
        "unknown_id",
        "duplicate",
        "misrouted",
        "malformed",
        "unanswered",
    ] {
        assert_eq!(r["mismatches"][m], 0, "{m}: {r}");
    }
    let v = &r["verdicts"];
    let total = ["pass", "pass_modified", "handle", "bounce", "drop"]
        .iter()
        .map(|k| v[*k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(total, sent);
    assert!(
        v["handle"].as_u64().unwrap() > 0 && v["bounce"].as_u64().unwrap() > 0,
        "{v}"
    );
    assert_eq!(r["bad_request"], 0);
    assert!(r["latency_us"]["count"].as_u64() == Some(sent));
    assert!(stdout.contains("OK: every event got exactly one verdict"));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("<polyline") && svg.trim_end().ends_with("</svg>")
    );

    // Closed loop, bounded by an event count.
    let (code, stdout, r) = load(
        &sim.addr,
        &["--rate", "max", "--in-flight", "200", "--events", "20000"],
        &dir,
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["sent"], 20000);
    assert_eq!(r["answered"], 20000);
    assert_eq!(r["mode"], "closed");

    // A shipped profile, shortened by flags: logins only, each user once.
    let profile =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("perf/profiles/login-storm-unthrottled.toml");
    let (code, stdout, r) = load(
        &sim.addr,
        &[
            "--profile",
            profile.to_str().unwrap(),
            "--events",
            "500",
            "--rate",
            "5000",
        ],
        &dir,
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["events"], serde_json::json!({ "e_SESSION": 500 }));
    assert_eq!(r["answered"], 500);
    assert!(r["profile"]
        .as_str()
        .unwrap()
        .ends_with("login-storm-unthrottled.toml"));
    sim.stop();
}

#[test]
fn load_fails_loudly_when_events_go_unanswered() {
    let dir = temp_dir("hang");
    let sim = Sim::start(&["--router-echo", "--secret", "s", "--fault", "hang@1s"]);
    let (code, stdout, r) = load(
        &sim.addr,
        &["--rate", "1000", "--duration", "2s", "--drain", "500ms"],
        &dir,
    );
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(r["ok"], false);
    let unanswered = r["mismatches"]["unanswered"].as_u64().unwrap();
    assert!(unanswered > 500, "{r}");
    assert!(r["answered"].as_u64().unwrap() > 500, "{r}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("unanswered after the 500ms drain"),
        "{stdout}"
    );
}

/// A gateway that answers the first event twice and adds a verdict for an id never sent.
#[test]
fn load_fails_loudly_on_duplicate_and_unknown_verdicts() {
    let dir = temp_dir("dup");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let gateway = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let mut peer = Peer::accept(sock, "s");
        let mut answered = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(s) = peer.next(Duration::from_millis(200)) else {
                if answered > 0 {
                    // The load generator closed: it is done.
                    if peer.closed {
                        return answered;
                    }
                }
                continue;
            };
            let id = String::from_utf8_lossy(s.raw(s.attrs().id).unwrap()).into_owned();
            let verdict = |id: &str| {
                format!(
                    "<iq type='result' id='{id}' from='{GATEWAY}' to='imp1.example.com'>\
                     <verdict xmlns='urn:palisade:compliance:0' action='pass'/></iq>"
                )
            };
            let mut out = verdict(&id);
            if answered == 0 {
                out.push_str(&verdict(&id));
                out.push_str(&verdict("e0.ffffff"));
            }
            peer.send(out.as_bytes());
            answered += 1;
        }
        answered
    });
    let (code, stdout, r) = load(&addr, &["--rate", "500", "--events", "50"], &dir);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(r["ok"], false);
    assert_eq!(r["mismatches"]["duplicate"], 1, "{r}");
    assert_eq!(r["mismatches"]["unknown_id"], 1, "{r}");
    assert_eq!(r["mismatches"]["unanswered"], 0, "{r}");
    assert_eq!(r["answered"], 50);
    assert!(
        stdout.contains("1 second verdict(s) for an event already answered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 verdict(s) for ids that were never sent"),
        "{stdout}"
    );
    assert!(stdout.contains("e0.ffffff"), "{stdout}");
    assert_eq!(gateway.join().unwrap(), 50);
}

/// A blocking XEP-0114 peer over std TCP: the gateway's side in these tests.
struct Peer {
    sock: TcpStream,
    stream: ComponentStream,
    closed: bool,
    how: Option<Closed>,
}

impl Peer {
    fn drive_handshake(mut self, secret: &str) -> Result<Peer, Closed> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            self.flush();
            while let Some(ev) = self.stream.poll_event() {
                match ev {
                    StreamEvent::NameAnnounced { .. } => self.stream.accept_name(secret.as_bytes()),
                    StreamEvent::Active => {
                        self.flush();
                        return Ok(self);
                    }
                    StreamEvent::Closed(c) => return Err(c),
                    StreamEvent::Stanza(_) => {}
                }
            }
            self.flush();
            assert!(Instant::now() < deadline, "handshake timed out");
            if !self.read(Duration::from_millis(100)) {
                self.stream.transport_closed();
            }
        }
    }

    fn dial(addr: &str, name: &str, secret: &str) -> Result<Peer, Closed> {
        let sock = TcpStream::connect(addr).map_err(|_| Closed::TransportEnded)?;
        let stream = ComponentStream::initiator(
            StreamConfig::default(),
            name,
            secret.as_bytes(),
            NS_ACCEPT,
            FromCheck::None,
            Instant::now(),
        );
        Peer {
            sock,
            stream,
            closed: false,
            how: None,
        }
        .drive_handshake(secret)
    }

    fn accept(sock: TcpStream, secret: &str) -> Peer {
        let stream = ComponentStream::receiver(
            StreamConfig::default(),
            [7; 16],
            FromCheck::None,
            Instant::now(),
        );
        Peer {
            sock,
            stream,
            closed: false,
            how: None,
        }
        .drive_handshake(secret)
        .expect("handshake")
    }

    fn flush(&mut self) {
        if let Some(out) = self.stream.take_output() {
            let _ = self.sock.write_all(&out);
        }
    }

    /// Reads once; false on EOF or error.
    fn read(&mut self, timeout: Duration) -> bool {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 65536];
        match self.sock.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.stream.receive(&buf[..n], Instant::now());
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
            Err(_) => false,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream
            .writer()
            .expect("active")
            .extend_from_slice(bytes);
        self.flush();
    }

    /// The next stanza within `timeout`; `None` on timeout or when the stream ended.
    fn next(&mut self, timeout: Duration) -> Option<Stanza> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(ev) = self.stream.poll_event() {
                match ev {
                    StreamEvent::Stanza(s) => return Some(s),
                    StreamEvent::Closed(c) => {
                        self.flush();
                        self.closed = true;
                        self.how = Some(c);
                        return None;
                    }
                    _ => {}
                }
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            if !self.read(left.min(Duration::from_millis(50))) {
                self.stream.transport_closed();
            }
        }
    }
}

const RULES: &str = r#"
[groups]
traders = ["*@trading.example.com"]
research = ["*@research.example.com", "research-*@conference.example.com"]

[[wall]]
between = ["traders", "research"]
text = "ethical wall: trading/research"

[[content]]
name = "insider"
pattern = "(?i)insider"
action = "handle"

[[content]]
name = "disclaimer"
pattern = "(?i)price"
action = "append"
append = " [recorded]"
"#;

fn request(out: &mut BytesMut, slot: u32, event: &str, mode: Mode, key: &str, stanza: &str) {
    let event = EventId::lookup(event.as_bytes()).unwrap();
    let fields = RequestFields {
        id: RequestId {
            shard: 0,
            slot,
            generation: 1,
        },
        event,
        packet: (event.kind() == palisade_core::policy::EventKind::Jsm)
            .then_some(PacketType::Message),
        profile: "EthicalWall",
        handling: Handling::Bounce,
        mode,
        node: "imp1",
        key,
        stamp: "2026-11-21T10:00:00.123Z",
        record: "",
        replay: false,
    };
    write_request(out, GATEWAY, CS_NAME, &fields, stanza.as_bytes());
}

fn chat(from: &str, to: &str, body: &str) -> String {
    format!("<message xmlns='jabber:client' from='{from}/desk' to='{to}' type='chat' id='m1'><body>{body}</body></message>")
}

#[test]
fn sim_answers_by_its_rules_archives_everything_and_never_answers_notifications() {
    let dir = temp_dir("rules");
    let rules = dir.join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let archive = dir.join("archive.jsonl");
    let mut sim = Sim::start(&[
        "--secret",
        "s",
        "--name",
        CS_NAME,
        "--rules",
        rules.to_str().unwrap(),
        "--archive",
        archive.to_str().unwrap(),
    ]);
    // Only the configured name is accepted.
    match Peer::dial(&sim.addr, "op-cs9.palisade-example-com", "s") {
        Err(Closed::PeerError { condition, .. }) => assert_eq!(condition, Condition::HostUnknown),
        Ok(_) => panic!("a foreign name was accepted"),
        Err(other) => panic!("{other:?}"),
    }
    let mut peer = Peer::dial(&sim.addr, CS_NAME, "s").expect("handshake");
    let mut out = BytesMut::new();
    let trader = "bob@trading.example.com";
    let analyst = "carol@research.example.com";
    let plain = "dan@example.com";
    request(
        &mut out,
        1,
        "es_OUT",
        Mode::Wait,
        "k",
        &chat(trader, analyst, "hello"),
    );
    request(
        &mut out,
        2,
        "es_OUT",
        Mode::Wait,
        "k",
        &chat(trader, plain, "hello"),
    );
    request(
        &mut out,
        3,
        "es_IN",
        Mode::Wait,
        "k",
        &chat(plain, trader, "some INSIDER news"),
    );
    request(
        &mut out,
        4,
        "es_OUT",
        Mode::Wait,
        "k",
        &chat(plain, trader, "what price &amp; size?"),
    );
    request(
        &mut out,
        5,
        "onBeforeJoin",
        Mode::Wait,
        "research-desk@conference.example.com",
        "<presence from='bob@trading.example.com/desk' to='research-desk@conference.example.com/bob'/>",
    );
    // onAfterJoin accepts only PASS: the wall does not cover it.
    request(
        &mut out,
        6,
        "onAfterJoin",
        Mode::Wait,
        "research-desk@conference.example.com",
        "<presence from='bob@trading.example.com/desk' to='research-desk@conference.example.com/bob'/>",
    );
    // A notification, even one the wall would block: archived, never answered.
    request(
        &mut out,
        7,
        "es_OUT",
        Mode::Notify,
        "k",
        &chat(trader, analyst, "fyi"),
    );
    peer.send(&out);

    let mut answers: HashMap<u32, Answer> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers.len() < 6 && Instant::now() < deadline {
        if let Some(s) = peer.next(Duration::from_millis(100)) {
            assert_eq!(
                s.from().as_deref(),
                Some(CS_NAME),
                "answers come from the component"
            );
            assert_eq!(s.to().as_deref(), Some(GATEWAY));
            let a = parse_answer(&s).expect("an answer");
            answers.insert(a.id.slot, a.answer);
        }
    }
    // Nothing more: the notification is not answered.
    assert!(peer.next(Duration::from_millis(300)).is_none());
    assert_eq!(answers.len(), 6, "{answers:?}");
    let Answer::Error(e) = &answers[&1] else {
        panic!("{:?}", answers[&1])
    };
    let e = String::from_utf8_lossy(e);
    assert!(
        e.contains("type='cancel'")
            && e.contains("<forbidden")
            && e.contains("ethical wall: trading/research"),
        "{e}"
    );
    assert_eq!(answers[&2], Answer::Pass);
    assert_eq!(answers[&3], Answer::Handle);
    let Answer::PassModified(m) = &answers[&4] else {
        panic!("{:?}", answers[&4])
    };
    assert_eq!(
        String::from_utf8_lossy(m),
        chat(plain, trader, "what price &amp; size? [recorded]")
    );
    assert!(matches!(answers[&5], Answer::Error(_)), "{:?}", answers[&5]);
    assert_eq!(answers[&6], Answer::Pass);

    sim.stop();
    let text = std::fs::read_to_string(&archive).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{text}");
    let by_id: HashMap<String, &serde_json::Value> = lines
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l))
        .collect();
    let notify = by_id["g0.7.1"];
    assert_eq!(notify["mode"], "notify");
    assert_eq!(notify["answer"], "none");
    assert_eq!(by_id["g0.1.1"]["answer"], "error");
    assert_eq!(by_id["g0.1.1"]["rule"], "traders/research");
    assert_eq!(by_id["g0.3.1"]["answer"], "handle");
    assert_eq!(by_id["g0.4.1"]["answer"], "pass-modified");
    assert_eq!(
        by_id["g0.5.1"]["key"],
        "research-desk@conference.example.com"
    );
    for l in &lines {
        assert_eq!(l["component"], CS_NAME);
        assert_eq!(l["from"], GATEWAY);
        assert_eq!(l["profile"], "EthicalWall");
        assert_eq!(l["stamp"], "2026-11-21T10:00:00.123Z");
        assert_eq!(l["node"], "imp1");
        assert!(l["stanza"].as_str().unwrap().starts_with('<'));
    }
}

/// Sends one wait-mode request and waits for its answer.
fn ask(peer: &mut Peer, slot: u32, within: Duration) -> Option<Answer> {
    let mut out = BytesMut::new();
    request(
        &mut out,
        slot,
        "es_OUT",
        Mode::Wait,
        "k",
        &chat("a@x.example", "b@x.example", "hi"),
    );
    peer.send(&out);
    let s = peer.next(within)?;
    parse_answer(&s).ok().map(|a| a.answer)
}

#[test]
fn sim_faults_graceful_hang_and_crash_then_recover() {
    // graceful at 0.6 s, recover at 1.4 s, hang at 2.2 s, recover at 3.4 s,
    // crash at 4.2 s, recover at 5.4 s.
    let mut sim = Sim::start(&[
        "--secret",
        "s",
        "--fault",
        "graceful@600ms,recover@1400ms,hang@2200ms,recover@3400ms,crash@4200ms,recover@5400ms",
    ]);
    let t0 = Instant::now();
    let at = |ms: u64| {
        let t = t0 + Duration::from_millis(ms);
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
    };
    let mut peer = Peer::dial(&sim.addr, CS_NAME, "s").expect("handshake");
    assert_eq!(
        ask(&mut peer, 1, Duration::from_secs(2)),
        Some(Answer::Pass)
    );

    // Graceful: the stream ends with system-shutdown; new streams are refused the same way.
    assert!(peer.next(Duration::from_secs(3)).is_none());
    assert!(
        matches!(
            &peer.how,
            Some(Closed::PeerError {
                condition: Condition::SystemShutdown,
                ..
            })
        ),
        "{:?}",
        peer.how
    );
    at(900);
    match Peer::dial(&sim.addr, CS_NAME, "s") {
        Err(Closed::PeerError { condition, .. }) => {
            assert_eq!(condition, Condition::SystemShutdown)
        }
        other => panic!("{:?}", other.map(|_| ())),
    }

    // Recovered: streams work again.
    at(1700);
    let mut peer = Peer::dial(&sim.addr, CS_NAME, "s").expect("recovered");
    assert_eq!(
        ask(&mut peer, 2, Duration::from_secs(2)),
        Some(Answer::Pass)
    );

    // Hang: the stream stays up but nothing is answered until the recovery.
    at(2600);
    assert_eq!(ask(&mut peer, 3, Duration::from_millis(500)), None);
    assert!(!peer.closed, "a hang keeps the stream open");
    at(3000);
    let s = peer
        .next(Duration::from_secs(3))
        .expect("answered after the recovery");
    assert!(
        Instant::now() >= t0 + Duration::from_millis(3300),
        "answered during the hang"
    );
    assert_eq!(
        parse_answer(&s).map(|a| (a.id.slot, a.answer)),
        Ok((3, Answer::Pass))
    );

    // Crash: reset without a stream close; connections refused until the recovery.
    at(3800);
    assert!(peer.next(Duration::from_secs(2)).is_none());
    assert_eq!(peer.how, Some(Closed::TransportEnded));
    at(4700);
    let refused = TcpStream::connect(&sim.addr).map_err(|e| e.kind());
    assert_eq!(refused.err(), Some(ErrorKind::ConnectionRefused));
    at(5900);
    let mut peer = Peer::dial(&sim.addr, CS_NAME, "s").expect("recovered after the crash");
    assert_eq!(
        ask(&mut peer, 4, Duration::from_secs(2)),
        Some(Answer::Pass)
    );
    sim.stop();
}

#[test]
fn sim_dials_the_gateway_in_inbound_mode_answers_late_and_redials() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut child = Command::new(BIN)
        .args(["sim", "--connect", &addr, "--name", "cs1.example.com"])
        .args(["--secret", "s", "--latency", "150ms", "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn palisade sim");
    let (sock, _) = listener.accept().unwrap();
    let mut peer = Peer::accept(sock, "s");
    assert_eq!(peer.stream.name(), Some("cs1.example.com"));
    let asked = Instant::now();
    let mut out = BytesMut::new();
    request(
        &mut out,
        1,
        "es_OUT",
        Mode::Wait,
        "k",
        &chat("a@x.example", "b@x.example", "hi"),
    );
    peer.send(&out);
    let s = peer.next(Duration::from_secs(3)).expect("an answer");
    assert!(
        asked.elapsed() >= Duration::from_millis(150),
        "--latency not applied"
    );
    assert_eq!(s.from().as_deref(), Some("cs1.example.com"));
    assert_eq!(parse_answer(&s).map(|a| a.answer), Ok(Answer::Pass));
    // The gateway ends the stream: the simulator dials again.
    peer.stream.close();
    peer.flush();
    drop(peer);
    listener.set_nonblocking(false).unwrap();
    let (sock, _) = listener.accept().unwrap();
    let mut peer = Peer::accept(sock, "s");
    assert_eq!(
        ask(&mut peer, 2, Duration::from_secs(3)),
        Some(Answer::Pass)
    );
    // SAFETY: signalling our own child by pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// User + system CPU seconds a process has used so far (Linux `/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// The simulator's own capacity as a compliance server: two streams (a two-shard gateway)
/// each keeping 4000 plain wait-mode requests outstanding. Prints answers/s; run with
/// `cargo test --release --test tools_sim_load -- --ignored --nocapture sim_throughput`.
#[test]
#[ignore = "a benchmark: run it in release mode on an otherwise idle machine"]
fn sim_throughput_as_a_compliance_server() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let sim = Sim::start(&["--secret", "s"]);
    const STREAMS: usize = 2;
    const WINDOW: u64 = 4000;
    const BATCH: u32 = 500;
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..STREAMS {
        let peer = Peer::dial(&sim.addr, CS_NAME, "s").expect("handshake");
        let mut batch = BytesMut::new();
        for slot in 0..BATCH {
            let body = "Can you send me the deck before the 10:00? The client asked about the settlement date.";
            request(
                &mut batch,
                slot,
                "es_OUT",
                Mode::Wait,
                "alice@example.com|bob@example.com",
                &chat("alice@example.com", "bob@example.com", body),
            );
        }
        let mut writer = peer.sock.try_clone().unwrap();
        let mut reader = peer.sock.try_clone().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let got = Arc::new(AtomicU64::new(0));
        let (s2, g2, stop2) = (sent.clone(), got.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if s2.load(Ordering::Relaxed) - g2.load(Ordering::Relaxed) + u64::from(BATCH)
                    > WINDOW
                {
                    // Sleep rather than spin: the driver must not take the simulator's CPU.
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                if writer.write_all(&batch).is_err() {
                    break;
                }
                s2.fetch_add(u64::from(BATCH), Ordering::Relaxed);
            }
        }));
        let (stop3, total) = (stop.clone(), answered.clone());
        threads.push(std::thread::spawn(move || {
            // Counting `<iq` is enough to count answers; framing them here would measure us.
            let mut buf = vec![0u8; 1 << 20];
            let mut carry = 0usize;
            while !stop3.load(Ordering::Relaxed) {
                let n = match reader.read(&mut buf[carry..]) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(_) => continue,
                };
                let end = carry + n;
                let count = memchr::memmem::find_iter(&buf[..end], b"<iq").count() as u64;
                got.fetch_add(count, Ordering::Relaxed);
                total.fetch_add(count, Ordering::Relaxed);
                // Keep the last two bytes: a `<iq` cut by the read boundary is counted next time.
                let keep = end.min(2);
                buf.copy_within(end - keep..end, 0);
                carry = keep;
            }
        }));
        drop(peer);
    }
    std::thread::sleep(Duration::from_secs(1));
    let (t0, a0, c0) = (
        Instant::now(),
        answered.load(Ordering::Relaxed),
        cpu_seconds(sim.child.id()),
    );
    std::thread::sleep(Duration::from_secs(5));
    let n = answered.load(Ordering::Relaxed) - a0;
    let cpu = cpu_seconds(sim.child.id()) - c0;
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let per_answer_us = cpu / n.max(1) as f64 * 1e6;
    println!(
        "palisade sim (compliance role, {STREAMS} streams, PASS): {rate:.0} answers/s, \
         {:.0}% CPU, {per_answer_us:.2} us CPU per answer ({:.0} answers/s per core)",
        cpu / t0.elapsed().as_secs_f64() * 100.0,
        1e6 / per_answer_us
    );
    assert!(rate > 10_000.0);
    drop(sim);
    for t in threads {
        let _ = t.join();
    }
}
