//! `palisade troubleshoot`: the seed's troubleshooting checklist, run against every compliance
//! server of a configuration in turn: name resolution, TCP connect, stream and handshake
//! (CONNECTED without ACTIVE means a wrong password or component name, and it says which), then
//! one test event round trip with its latency. One green or red line per server, with the hint
//! that fits; green everywhere is exit 0. A server dialed with `tls = true` gets a TLS step
//! between connect and stream: the handshake, the chain and the name, each with its own hint.

use crate::policy::{CompiledPolicy, Config, EventId, Handling, ServerInfo, ServerMode};
use crate::protocol::request::{write_request, Mode, RequestFields, RequestId};
use crate::protocol::{parse_answer, Answer};
use crate::wire::{Closed, ComponentStream, Condition, FromCheck, StreamConfig, StreamEvent};
use bytes::BytesMut;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

/// The result for one server.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub server: String,
    pub component: String,
    pub green: bool,
    /// What was found, in the seed's words where it has them.
    pub detail: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let color = if self.green { "GREEN" } else { "RED  " };
        write!(
            f,
            "{color} {:<10} {}: {}",
            self.server, self.component, self.detail
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n      hint: {h}")?;
        }
        Ok(())
    }
}

/// Checks every server; `admin` (the running gateway's) is used for inbound servers, which
/// dial the gateway and so cannot be dialed from here.
pub fn run(config: &Config, admin_status: Option<&serde_json::Value>) -> Vec<Outcome> {
    let policy = CompiledPolicy::compile(config);
    let (material, problems) =
        crate::tls::Material::build(config, "the configuration", SystemTime::now());
    policy
        .servers()
        .iter()
        .enumerate()
        .map(|(i, info)| match info.mode {
            ServerMode::Outbound => {
                let tls = match (&config.servers[i].tls, &material) {
                    (None, _) => Tls::Plain,
                    (Some(_), Some(m)) => m.server_dial(&info.name).map_or(Tls::Plain, Tls::Dial),
                    (Some(_), None) => Tls::Unusable(&problems),
                };
                check_outbound(config, info, &config.servers[i].password, tls)
            }
            ServerMode::Inbound => check_inbound(info, admin_status),
        })
        .collect()
}

/// How a server is dialed, for the TLS step.
enum Tls<'a> {
    Plain,
    Dial(&'a crate::tls::Dial),
    /// The TLS files do not load: these are the problems.
    Unusable(&'a [crate::policy::Diagnostic]),
}

/// The socket, and the TLS session on it if the server is dialed with TLS.
pub(crate) struct Link {
    tcp: TcpStream,
    tls: Option<crate::tls::Session>,
    plain: Vec<u8>,
}

impl Link {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.tls.as_mut() {
            None => self.tcp.write_all(bytes),
            Some(session) => {
                session.send(bytes);
                let mut out = Vec::new();
                session.take_tls(&mut out);
                self.tcp.write_all(&out)
            }
        }
    }

    /// Reads once; plaintext lands in `self.plain` (what TLS did not complete waits).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        let Some(session) = self.tls.as_mut() else {
            self.plain.clear();
            self.plain.extend_from_slice(&buf[..n]);
            return Ok(n);
        };
        self.plain.clear();
        if n == 0 {
            return Ok(0);
        }
        let plain = &mut self.plain;
        match session.receive(&buf[..n], |p| plain.extend_from_slice(p)) {
            Ok(crate::tls::Fed::Open) => Ok(n),
            Ok(crate::tls::Fed::PeerClosed) => Ok(0),
            Err(f) => Err(std::io::Error::other(f.detail())),
        }
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.tcp.set_read_timeout(t)
    }
}

/// The TLS step: a handshake over the blocking socket; on failure what to say and the hint.
fn tls_step(
    tcp: &mut TcpStream,
    dial: &crate::tls::Dial,
    timeout: Duration,
) -> Result<(crate::tls::Session, Vec<u8>), (String, String)> {
    let failed = |f: crate::tls::TlsFailure| {
        let step = match f {
            crate::tls::TlsFailure::NameMismatch(_) => "name",
            crate::tls::TlsFailure::Expired(_) | crate::tls::TlsFailure::Verification(_) => "chain",
            _ => "handshake",
        };
        (
            format!(
                "CONNECTED, TLS {step} failed ({}): {}",
                f.reason(),
                f.detail()
            ),
            f.hint().to_owned(),
        )
    };
    let mut session = crate::tls::Session::client(dial).map_err(failed)?;
    let deadline = Instant::now() + timeout;
    let mut early = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut out = Vec::new();
        session.take_tls(&mut out);
        if tcp.write_all(&out).is_err() {
            return Err(failed(crate::tls::TlsFailure::Handshake(
                "write failed".into(),
            )));
        }
        if !session.is_handshaking() {
            return Ok((session, early));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(crate::tls::TlsFailure::Timeout));
        }
        let _ = tcp.set_read_timeout(Some(left));
        let n = match tcp.read(&mut buf) {
            Ok(0) | Err(_) => {
                let why = "the server closed the connection during the handshake";
                return Err(failed(crate::tls::TlsFailure::Handshake(why.into())));
            }
            Ok(n) => n,
        };
        session
            .receive(&buf[..n], |p| early.extend_from_slice(p))
            .map_err(failed)?;
    }
}

fn red(info: &ServerInfo, detail: String, hint: &str) -> Outcome {
    Outcome {
        server: info.name.clone(),
        component: info.component.clone(),
        green: false,
        detail,
        hint: Some(hint.to_owned()),
    }
}

fn check_inbound(info: &ServerInfo, admin: Option<&serde_json::Value>) -> Outcome {
    let Some(doc) = admin else {
        return red(
            info,
            "inbound: the server dials the gateway, so it cannot be checked from here".into(),
            "set [gateway] admin and run this while the gateway runs, to read the server's stream state",
        );
    };
    let found = doc["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"].as_str() == Some(&info.name));
    match found {
        Some(s) if s["streams"].as_u64().unwrap_or(0) > 0 => Outcome {
            server: info.name.clone(),
            component: info.component.clone(),
            green: true,
            detail: format!("inbound: {} active stream(s) to the running gateway", s["streams"]),
            hint: None,
        },
        _ => red(
            info,
            "inbound: the running gateway has no active stream from this server".into(),
            "check that the server dials the gateway's [listen] compliance port with this component name and password",
        ),
    }
}

fn check_outbound(config: &Config, info: &ServerInfo, password: &str, tls: Tls<'_>) -> Outcome {
    let (host, port) = (&info.host, info.port);
    let addr: SocketAddr = match (host.as_str(), port)
        .to_socket_addrs()
        .map(|mut a| a.next())
    {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => return red(
            info,
            format!("cannot resolve host '{host}'"),
            "check the Hostname/IP Address of the compliance server (a-z A-Z 0-9 . \\ - _ only)",
        ),
    };
    let timeout = config.timers.handshake_timeout;
    let mut tcp = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(t) => t,
        Err(e) => {
            let (code, text) = crate::runtime::log::os_error_text(&e);
            return red(
                info,
                format!("Unable to connect to host '{host}', port {port}: ({code}) {text}"),
                "check that the compliance server is running and listening on that port, and that the IP/FQDN and port match on both sides",
            );
        }
    };
    let _ = tcp.set_nodelay(true);
    let (session, early, secured) = match tls {
        Tls::Plain => (None, Vec::new(), ""),
        Tls::Unusable(problems) => {
            let first = problems.iter().find(|p| p.is_error());
            return red(
                info,
                format!(
                    "CONNECTED, but the TLS files do not load: {}",
                    first.map_or_else(String::new, |p| p.message.clone())
                ),
                "run palisade check-config on this configuration",
            );
        }
        Tls::Dial(dial) => match tls_step(&mut tcp, dial, timeout) {
            Ok((session, early)) => (Some(session), early, ", TLS verified"),
            Err((detail, hint)) => return red(info, detail, &hint),
        },
    };
    let mut tcp = Link {
        tcp,
        tls: session,
        plain: Vec::new(),
    };
    let stream_config = StreamConfig {
        handshake_timeout: timeout,
        keepalive: None,
        dead_interval: None,
        ..StreamConfig::default()
    };
    let mut stream = ComponentStream::initiator(
        stream_config,
        &info.component,
        password.as_bytes(),
        crate::wire::stream::NS_ACCEPT,
        FromCheck::PeerDomain,
        Instant::now(),
    );
    stream.receive(&early, Instant::now());
    match wait_for(&mut tcp, &mut stream, timeout, |e| matches!(e, StreamEvent::Active)) {
        Waited::Done(_) => {}
        Waited::Closed(Closed::PeerError { condition: Condition::NotAuthorized, .. }) => {
            return red(info, "CONNECTED but not ACTIVE: the server refused the password".into(),
                "configure the same password on the gateway and on the compliance server")
        }
        Waited::Closed(Closed::PeerError { condition: Condition::HostUnknown, .. }) => {
            return red(info, format!("CONNECTED but not ACTIVE: the server does not know the component name {}", info.component),
                "configure this open-port component name on the compliance server (or set [[server]] component to the name it expects)")
        }
        Waited::Closed(how) => {
            return red(info, format!("CONNECTED but not ACTIVE: the stream ended ({how:?})"),
                "verify the password and the component name configured on both sides")
        }
        Waited::Timeout => {
            return red(info, format!("CONNECTED but not ACTIVE: no handshake answer within {timeout:?}"),
                "verify that the port is the compliance server's XEP-0114 component port, and the password and component name on both sides")
        }
    }
    let wait = config.timers.event_timeout.min(Duration::from_secs(10));
    let (started, result) = test_event(&mut tcp, &mut stream, config, info, wait);
    match result {
        Some(answer) => Outcome {
            server: info.name.clone(),
            component: info.component.clone(),
            green: true,
            detail: format!(
                "resolved {addr}, CONNECTED{secured}, ACTIVE, test event answered {answer} in {:.1} ms",
                started.elapsed().as_secs_f64() * 1000.0
            ),
            hint: None,
        },
        None => red(
            info,
            format!("CONNECTED and ACTIVE, but the test event got no answer within {wait:?}"),
            "the compliance server must answer every event before the gateway can go on: check the compliance server's logs",
        ),
    }
}

/// Sends one harmless wait-mode event (e_STATS, handling pass) and waits for its answer.
fn test_event(
    tcp: &mut Link,
    stream: &mut ComponentStream,
    config: &Config,
    info: &ServerInfo,
    wait: Duration,
) -> (Instant, Option<&'static str>) {
    let id = RequestId {
        shard: 0,
        slot: 0xfeed,
        generation: 1,
    };
    let Some(event) = EventId::lookup(b"e_STATS") else {
        return (Instant::now(), None);
    };
    let mut out = BytesMut::new();
    let stamp = crate::protocol::stamp::format(SystemTime::now());
    let policy = CompiledPolicy::compile(config);
    let fields = RequestFields {
        id,
        event,
        packet: Some(crate::policy::PacketType::Iq),
        profile: policy.profile_name(info.profile),
        handling: Handling::Pass,
        mode: Mode::Wait,
        node: "troubleshooter",
        key: "palisade-troubleshooter",
        stamp: &stamp,
        record: "troubleshoot.0",
        replay: false,
    };
    let probe = format!(
        "<iq xmlns='jabber:client' type='get' id='probe' from='{0}' to='{0}'><query xmlns='urn:palisade:troubleshooter'/></iq>",
        config.gateway.name
    );
    write_request(
        &mut out,
        &config.gateway.name,
        &info.component,
        &fields,
        probe.as_bytes(),
    );
    let started = Instant::now();
    if let Some(w) = stream.writer() {
        w.extend_from_slice(&out);
    }
    let answered = wait_for(tcp, stream, wait, |e| match e {
        StreamEvent::Stanza(s) => parse_answer(s).is_ok_and(|a| a.id == id),
        _ => false,
    });
    let kind = match answered {
        Waited::Done(event) => match *event {
            StreamEvent::Stanza(s) => match parse_answer(&s).map(|a| a.answer) {
                Ok(Answer::Pass) => Some("PASS"),
                Ok(Answer::PassModified(_)) => Some("PASS (modified)"),
                Ok(Answer::Handle) => Some("HANDLE"),
                Ok(Answer::Error(_)) => Some("with an error"),
                Ok(Answer::Malformed(_)) => Some("with an unreadable verdict"),
                Err(_) => None,
            },
            _ => None,
        },
        _ => None,
    };
    stream.close();
    if let Some(out) = stream.take_output() {
        let _ = tcp.write_all(&out);
    }
    (started, kind)
}

enum Waited {
    Done(Box<StreamEvent>),
    Closed(Closed),
    Timeout,
}

/// Pumps the stream over the blocking socket until `done` accepts an event.
fn wait_for(
    tcp: &mut Link,
    stream: &mut ComponentStream,
    timeout: Duration,
    done: impl Fn(&StreamEvent) -> bool,
) -> Waited {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(e) = stream.poll_event() {
            if let StreamEvent::Closed(how) = e {
                return Waited::Closed(how);
            }
            if done(&e) {
                if let Some(out) = stream.take_output() {
                    let _ = tcp.write_all(&out);
                }
                return Waited::Done(Box::new(e));
            }
        }
        // Whatever the events produced (a handshake, an answer to a ping) goes out before the
        // next read blocks.
        if let Some(out) = stream.take_output() {
            if tcp.write_all(&out).is_err() {
                stream.transport_closed();
                continue;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Waited::Timeout;
        }
        let _ = tcp.set_read_timeout(Some(deadline - now));
        match tcp.read(&mut buf) {
            Ok(0) => stream.transport_closed(),
            Ok(_) => stream.receive(&tcp.plain, Instant::now()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => stream.transport_closed(),
        }
    }
}
