//! Hostile peers against the real binary over loopback: input that used to crash a shard, and
//! input that is not well-formed, which must be refused at once (not when the stanza timer
//! runs out) and never reach a compliance server.

use crate::support;
use palisade_core::wire::{Closed, Condition};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// One server `cs1` answering pass for chat messages; `limits` and extra `[timers]` lines.
fn gateway(shards: usize, timers: &str, limits: &str) -> (TestServer, Gateway) {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let rest = format!(
        "[limits]\n{limits}\n\n[[profile]]\nname = \"P\"\n\
         events = [{{ event = \"es_OUT\", packet = \"message\", handling = \"bounce\" }}]\n{}",
        server_block("cs1", port, "P")
    );
    let gw = Gateway::start(&config(shards, &format!("{FAST_TIMERS}\n{timers}"), &rest));
    assert!(server.wait_streams(shards, WAIT), "log:\n{}", gw.log.all());
    (server, gw)
}

/// A router's chat event gets its verdict.
fn gets_verdicts(r: &mut TestRouter, gw: &Gateway) {
    let id = r.chat("a", "b", "x");
    let v = r.verdict_for(&id, WAIT);
    assert!(v.is("pass"), "{v:?}; log:\n{}", gw.log.all());
}

/// The process has not exited (a zombie counts as exited).
fn running(gw: &Gateway) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", gw.pid())).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

fn status_answers(gw: &Gateway) {
    let body = palisade_tools::http_get::get(gw.admin_addr, "/status")
        .unwrap_or_else(|e| panic!("/status: {e:?}; log:\n{}", gw.log.all()));
    assert!(body.contains("palisade.example.com"), "{body}");
}

/// Opens a router stream and, before the handshake, sends one stanza whose character `é`
/// straddles byte `limit` of the stanza; returns all the gateway sent until it closed.
fn straddling_attack(addr: SocketAddr, limit: usize) -> String {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    let mut stanza = String::from("<handshake x='");
    while stanza.len() < limit - 1 {
        stanza.push('A');
    }
    stanza.push('é');
    stanza.push_str(&"A".repeat(100));
    stanza.push_str("'/>");
    let header = format!(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{ROUTER}'>"
    );
    tcp.write_all(header.as_bytes()).expect("header");
    // The gateway may refuse and close before it has read everything.
    let _ = tcp.write_all(stanza.as_bytes());
    read_to_close(&mut tcp)
}

fn read_to_close(tcp: &mut TcpStream) -> String {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not closed; got {}",
            String::from_utf8_lossy(&seen)
        );
        tcp.set_read_timeout(Some(left)).unwrap();
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn straddling_character_at_the_limit(shards: usize) {
    for limit in [300, 4096, 32768] {
        let (_server, gw) = gateway(shards, "", &format!("max_stanza_bytes = {limit}"));
        let mut before = TestRouter::connect(&gw);
        gets_verdicts(&mut before, &gw);
        // With several shards, enough attackers that every shard very likely gets one.
        for _ in 0..shards * 3 {
            let seen = straddling_attack(gw.router_addr, limit);
            assert!(
                seen.contains("<policy-violation") && seen.ends_with("</stream:stream>"),
                "limit {limit}: {seen}"
            );
        }
        gets_verdicts(&mut before, &gw);
        let mut after = TestRouter::connect(&gw);
        gets_verdicts(&mut after, &gw);
        status_answers(&gw);
        assert!(running(&gw), "limit {limit}: the gateway exited");
    }
}

#[test]
fn a_character_straddling_the_limit_one_shard() {
    straddling_character_at_the_limit(1);
}

#[test]
fn a_character_straddling_the_limit_two_shards() {
    straddling_character_at_the_limit(2);
}

/// Sends `bad` on an active router stream; the stream error must come well before the
/// 30-second stanza timer, and nothing may reach the compliance server.
fn refused_at_once(bad: &str) {
    let (server, gw) = gateway(1, "stanza_timeout = \"30s\"", "");
    let mut r = TestRouter::connect(&gw);
    let start = Instant::now();
    r.send_raw(bad);
    let closed = r.closed(Duration::from_secs(2));
    let elapsed = start.elapsed();
    match closed {
        Some(Closed::PeerError {
            condition: Condition::NotWellFormed,
            ..
        }) => {}
        other => panic!("{bad}: {other:?}; log:\n{}", gw.log.all()),
    }
    assert!(
        elapsed < Duration::from_millis(500),
        "{bad}: took {elapsed:?}"
    );
    assert_eq!(server.request_count(), 0, "{bad} reached the server");
    let mut other = TestRouter::connect(&gw);
    gets_verdicts(&mut other, &gw);
}

/// A chat event whose inner message has `extra` inside it.
fn event_with(extra: &str) -> String {
    format!(
        "<iq type='set' id='H1' from='{ROUTER}' to='{GATEWAY}'><event xmlns='urn:palisade:compliance:0' \
         name='es_OUT'><message xmlns='jabber:client' from='a@example.com/d' to='b@example.com' \
         type='chat'>{extra}</message></event></iq>"
    )
}

#[test]
fn the_stream_end_inside_a_stanza_is_refused_at_once() {
    refused_at_once(&format!(
        "<iq type='set' id='H1' from='{ROUTER}' to='{GATEWAY}'><event></stream:stream>"
    ));
}

#[test]
fn a_second_stream_header_is_refused_at_once() {
    refused_at_once(&format!(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{ROUTER}'>"
    ));
}

#[test]
fn a_mismatched_end_tag_is_refused_at_once() {
    refused_at_once(&format!(
        "<message from='{ROUTER}' to='{GATEWAY}'><body>hi</message>"
    ));
}

#[test]
fn an_unbound_element_prefix_is_refused() {
    refused_at_once(&event_with("<z:body>hi</z:body>"));
}

#[test]
fn an_unbound_attribute_prefix_is_refused() {
    refused_at_once(&event_with("<body z:a='1'>hi</body>"));
}
