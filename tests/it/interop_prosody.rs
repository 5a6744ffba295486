//! Interop with Prosody (Debian package `prosody`), software we did not write:
//! - Palisade's XEP-0114 initiator connects to Prosody as an external component and exchanges
//!   stanzas Prosody answers itself; Prosody's refusals come back as the right stream errors;
//! - the real gateway uses Prosody as a router over the outbound router leg, and trusts only
//!   Prosody itself: a c2s user who sends an event iq through Prosody gets `forbidden`, and
//!   nothing reaches a compliance server.
//!
//! A missing Prosody is reported as SKIPPED on stderr (a failure under
//! `PALISADE_INTEROP_REQUIRED=1`, which CI sets).

use crate::interop;
use crate::support;

use interop::*;
use palisade_core::wire::{
    Closed, ComponentStream, Condition, FromCheck, StreamConfig, StreamEvent,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// Palisade's own stream over a blocking socket.
struct Component {
    tcp: TcpStream,
    stream: ComponentStream,
}

impl Component {
    fn connect(port: u16, name: &str, secret: &str) -> Component {
        let tcp = TcpStream::connect(("127.0.0.1", port)).expect("prosody component port");
        let config = StreamConfig {
            keepalive: None,
            dead_interval: None,
            ..StreamConfig::default()
        };
        let stream = ComponentStream::initiator(
            config,
            name,
            secret.as_bytes(),
            palisade_core::wire::stream::NS_ACCEPT,
            FromCheck::PeerDomainOrSubdomain,
            Instant::now(),
        );
        let mut c = Component { tcp, stream };
        c.stream.expect_peer("localhost");
        c.flush();
        c
    }

    fn flush(&mut self) {
        while let Some(out) = self.stream.take_output() {
            self.tcp.write_all(&out).expect("write");
        }
    }

    fn next(&mut self, timeout: Duration) -> Option<StreamEvent> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 16384];
        loop {
            if let Some(e) = self.stream.poll_event() {
                self.flush();
                return Some(e);
            }
            self.flush();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.tcp.set_read_timeout(Some(left)).ok();
            match self.tcp.read(&mut buf) {
                Ok(0) => self.stream.transport_closed(),
                Ok(n) => self.stream.receive(&buf[..n], Instant::now()),
                Err(_) => {}
            }
        }
    }

    fn send(&mut self, xml: &str) {
        self.stream
            .writer()
            .expect("active")
            .extend_from_slice(xml.as_bytes());
        self.flush();
    }

    /// The next stanza's bytes.
    fn stanza(&mut self) -> String {
        loop {
            match self
                .next(Duration::from_secs(10))
                .expect("an event from prosody")
            {
                StreamEvent::Stanza(s) => return String::from_utf8_lossy(s.bytes()).into_owned(),
                StreamEvent::Closed(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }
}

#[test]
fn interop_palisade_initiator_exchanges_stanzas_with_prosody() {
    let Some(prosody) = Prosody::start("initiator") else {
        return;
    };
    let (port, secret, component) = (
        prosody.port("COMPONENT_PORT"),
        prosody.get("SECRET"),
        prosody.get("COMPONENT"),
    );
    let mut c = Component::connect(port, component, secret);
    assert!(
        matches!(c.next(Duration::from_secs(10)), Some(StreamEvent::Active)),
        "prosody accepted our handshake"
    );
    // Prosody answers a ping and a version query itself.
    c.send(&format!("<iq type='get' id='p1' from='{component}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"));
    let pong = c.stanza();
    assert!(
        pong.contains("type='result'")
            && pong.contains("id='p1'")
            && pong.contains("from='localhost'"),
        "{pong}"
    );
    c.send(&format!("<iq type='get' id='v1' from='{component}' to='localhost'><query xmlns='jabber:iq:version'/></iq>"));
    let version = c.stanza();
    assert!(version.contains("<name>Prosody</name>"), "{version}");
    // An iq to the component itself is routed back through Prosody.
    c.send(&format!("<iq type='get' id='self1' from='{component}' to='{component}'><query xmlns='urn:palisade:test'/></iq>"));
    let back = c.stanza();
    assert!(
        back.contains("id='self1'") && back.contains("urn:palisade:test"),
        "{back}"
    );
    c.stream.close();
    c.flush();
    assert!(matches!(
        c.next(Duration::from_secs(5)),
        Some(StreamEvent::Closed(Closed::LocalEnded))
    ));
}

#[test]
fn interop_prosody_refuses_a_wrong_secret_and_an_unknown_name() {
    let Some(prosody) = Prosody::start("refusals") else {
        return;
    };
    let (port, component) = (prosody.port("COMPONENT_PORT"), prosody.get("COMPONENT"));
    let mut c = Component::connect(port, component, "wrong-secret");
    match c.next(Duration::from_secs(10)) {
        Some(StreamEvent::Closed(Closed::PeerError { condition, .. })) => {
            assert_eq!(condition, Condition::NotAuthorized)
        }
        other => panic!("{other:?}"),
    }
    let mut c = Component::connect(port, "nobody.localhost", prosody.get("SECRET"));
    match c.next(Duration::from_secs(10)) {
        Some(StreamEvent::Closed(Closed::PeerError { condition, .. })) => {
            assert_eq!(condition, Condition::HostUnknown)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn interop_gateway_uses_prosody_as_its_router() {
    let Some(prosody) = Prosody::start("router-leg") else {
        return;
    };
    let (port, secret, component) = (
        prosody.port("COMPONENT_PORT"),
        prosody.get("SECRET"),
        prosody.get("COMPONENT"),
    );
    let cs_port = free_port();
    let server = TestServer::start(
        cs_port,
        &format!("op-cs1.{}-localhost", component.split('.').next().unwrap()),
        "pw-cs1",
    );
    let config = format!(
        r#"
[gateway]
name = "{component}"
domain = "localhost"
shards = 1
admin = "127.0.0.1:{{ADMIN_PORT}}"
[listen]
routers = "127.0.0.1:{{ROUTER_PORT}}"
[[router]]
name = "localhost"
secret = "{secret}"
connect = "127.0.0.1:{port}"
{}"#,
        server_block("cs1", cs_port, "SystemDefaultComplianceProfile")
    );
    let gw = Gateway::start(&config);
    assert!(
        server.wait_streams(1, Duration::from_secs(10)),
        "{}",
        gw.log.all()
    );
    assert!(
        gw.log
            .wait_for("Router localhost is ACTIVE", Duration::from_secs(10)),
        "{}",
        gw.log.all()
    );
    // alice (a real c2s session on Prosody) forges an event iq to the gateway's component.
    let event = format!(
        "<iq type='set' id='e1' to='{component}'><event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
         <message xmlns='jabber:client' from='alice@localhost/interop' to='bob@localhost' type='chat'><body>through prosody</body></message>\
         </event></iq>"
    );
    let file = write_temp("prosody-event.xml", &event);
    let out = Command::new("python3")
        .arg(root().join("tests/interop/prosody/client_send.py"))
        .args([
            "--port",
            prosody.get("C2S_PORT"),
            "--jid",
            prosody.get("JID"),
            "--password",
            prosody.get("PASSWORD"),
            "--to",
            component,
        ])
        .arg("--stanza-file")
        .arg(&file)
        .args(["--timeout", "15", "--await-reply"])
        .output()
        .expect("python3");
    // client_send reports the error reply as a bounce (it waits for it: the gateway's answer
    // may come after Prosody's own answer to the ping that follows the event).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("forbidden") && stderr.contains("host JID"),
        "{}\ngateway log:\n{}",
        show(&out),
        gw.log.all()
    );
    assert!(
        server.requests().is_empty(),
        "a forged event reached the compliance server"
    );
    let metrics = palisade_tools::http_get::get(gw.admin_addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("palisade_forbidden_events_total 1"),
        "{metrics}"
    );
}
