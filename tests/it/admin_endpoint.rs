//! The admin endpoint as operators and their tools use it, against the real binary: `/healthz`
//! and `/readyz` (ready only while every profile in use has an ACTIVE server), `HEAD` on every
//! route, `Content-Type` with a charset, 404 with the list of routes, 405 with `Allow`; and
//! hostile clients (garbage, oversized heads, control bytes, slow and silent peers) refused
//! without harm to the next request.

use crate::support;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const DEFAULT: &str = "SystemDefaultComplianceProfile";

/// Writes `bytes` and reads the whole answer (the endpoint closes after it).
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    // The endpoint may answer and close before it read everything: a reset is fine here.
    let _ = tcp.write_all(bytes);
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn request(addr: SocketAddr, method: &str, path: &str) -> String {
    raw(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn gateway(shards: usize) -> (TestServer, Gateway) {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(
        shards,
        FAST_TIMERS,
        &server_block("cs1", port, DEFAULT),
    ));
    assert!(server.wait_streams(shards, WAIT), "log:\n{}", gw.log.all());
    (server, gw)
}

fn wait_status(gw: &Gateway, path: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let a = request(gw.admin_addr, "GET", path);
        if status_line(&a).contains(want) || Instant::now() > deadline {
            return a;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthz_and_readyz_follow_the_compliance_servers() {
    let (server, gw) = gateway(2);
    let a = request(gw.admin_addr, "GET", "/healthz");
    assert!(status_line(&a).contains(" 200 "), "{a}");
    assert_eq!(body(&a), "ok\n");
    let a = wait_status(&gw, "/readyz", " 200 ");
    assert!(status_line(&a).contains(" 200 "), "{a}");
    assert_eq!(body(&a), "ready\n");

    // The only server of the profile in use goes away: not ready, and the body says why.
    server.crash();
    let a = wait_status(&gw, "/readyz", " 503 ");
    assert!(status_line(&a).contains(" 503 "), "{a}");
    assert!(
        body(&a).contains(&format!(
            "profile {DEFAULT} has no ACTIVE compliance server (cs1 "
        )),
        "{a}"
    );
    // Alive all the same.
    assert!(status_line(&request(gw.admin_addr, "GET", "/healthz")).contains(" 200 "));
    let s: serde_json::Value =
        serde_json::from_str(body(&request(gw.admin_addr, "GET", "/status"))).unwrap();
    assert_eq!(s["ready"]["ready"], false, "{s}");
    assert!(
        gw.admin_get("/metrics", WAIT)
            .unwrap_or_default()
            .contains("\npalisade_ready 0\n"),
        "metrics say not ready"
    );

    server.recover();
    let a = wait_status(&gw, "/readyz", " 200 ");
    assert!(status_line(&a).contains(" 200 "), "{a}");
}

#[test]
fn readyz_is_ready_with_no_profile_in_use() {
    // No compliance servers at all: nothing to wait for once the router listener is open.
    let gw = Gateway::start(&config(1, FAST_TIMERS, ""));
    let a = wait_status(&gw, "/readyz", " 200 ");
    assert!(status_line(&a).contains(" 200 "), "{a}");
}

#[test]
fn every_route_answers_head_with_charset_and_wrong_ones_get_hints() {
    let (_server, gw) = gateway(1);
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/healthz", "text/plain; charset=utf-8"),
        ("/readyz", "text/plain; charset=utf-8"),
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8"),
        ("/status", "application/json; charset=utf-8"),
    ] {
        let get = request(gw.admin_addr, "GET", path);
        assert!(status_line(&get).contains(" 200 "), "{path}: {get}");
        assert_eq!(header(&get, "content-type"), Some(kind), "{path}");
        let length: usize = header(&get, "content-length").unwrap().parse().unwrap();
        assert_eq!(length, body(&get).len(), "{path}");

        let head = request(gw.admin_addr, "HEAD", path);
        assert!(status_line(&head).contains(" 200 "), "{path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(kind), "{path}");
        assert!(
            header(&head, "content-length").is_some_and(|l| l != "0"),
            "{path}: {head}"
        );
        assert_eq!(body(&head), "", "HEAD has no body: {path}");

        let wrong = request(gw.admin_addr, "DELETE", path);
        assert!(status_line(&wrong).contains(" 405 "), "{path}: {wrong}");
        assert_eq!(header(&wrong, "allow"), Some("GET, HEAD"), "{path}");
        assert_eq!(
            header(&wrong, "content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let missing = request(gw.admin_addr, "GET", "/metricz?x=1");
    assert!(status_line(&missing).contains(" 404 "), "{missing}");
    assert_eq!(
        header(&missing, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    for route in ["/healthz", "/readyz", "/metrics", "/status", "/ "] {
        assert!(body(&missing).contains(route), "{route}: {missing}");
    }
    let head_missing = request(gw.admin_addr, "HEAD", "/nope");
    assert!(status_line(&head_missing).contains(" 404 "));
}

#[test]
fn hostile_clients_are_refused_and_the_endpoint_keeps_serving() {
    let (_server, gw) = gateway(1);
    let addr = gw.admin_addr;
    let mut long_line = b"GET /".to_vec();
    long_line.extend(vec![b'a'; 64 * 1024]);
    long_line.extend(b" HTTP/1.1\r\n\r\n");
    let mut many_headers = b"GET /status HTTP/1.1\r\n".to_vec();
    for i in 0..2000 {
        many_headers.extend(format!("X-{i}: y\r\n").as_bytes());
    }
    many_headers.extend(b"\r\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            " 400 ",
        ),
        (
            "nul in the method",
            b"G\0T / HTTP/1.1\r\n\r\n".to_vec(),
            " 400 ",
        ),
        (
            "not utf-8",
            b"GET /\xc3\x28 HTTP/1.1\r\n\r\n".to_vec(),
            " 400 ",
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            " 400 ",
        ),
        ("no version", b"GET /status\r\n\r\n".to_vec(), " 400 "),
        (
            "control byte in a header",
            b"GET / HTTP/1.1\r\nX: \x07\r\n\r\n".to_vec(),
            " 400 ",
        ),
        ("a 64 KiB request line", long_line, " 431 "),
        ("2000 headers", many_headers, " 431 "),
        (
            "endless head, no blank line",
            vec![b'A'; 100 * 1024],
            " 431 ",
        ),
    ];
    for (what, bytes, want) in &cases {
        let a = raw(addr, bytes);
        assert!(status_line(&a).contains(want), "{what}: {a:?}");
        assert_eq!(
            header(&a, "content-type"),
            Some("text/plain; charset=utf-8"),
            "{what}"
        );
    }
    // A body after the head is never read, and does not confuse the answer.
    let a = raw(
        addr,
        b"POST /status HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(status_line(&a).contains(" 405 "), "{a}");

    // Peers that connect and go silent, or trickle half a head, or hang up midway: each is
    // dropped (after the request deadline at worst) and never answered with a partial page.
    let mut silent: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect_timeout(&addr, WAIT).unwrap())
        .collect();
    for (i, s) in silent.iter_mut().enumerate() {
        let _ = s.write_all(&b"GET /status HTTP/1.1\r\nHost: "[..i * 3]);
    }
    {
        let mut gone = TcpStream::connect_timeout(&addr, WAIT).unwrap();
        let _ = gone.write_all(b"GET /metr");
    }
    // Meanwhile the endpoint serves others.
    assert!(status_line(&request(addr, "GET", "/healthz")).contains(" 200 "));
    for s in &mut silent {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(
            out.is_empty() || out.starts_with(b"HTTP/1.1 4"),
            "a silent peer gets nothing or a refusal: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let a = request(addr, "GET", "/status");
    assert!(status_line(&a).contains(" 200 "), "{a}");
    assert!(!gw.log.all().contains("panicked"), "{}", gw.log.all());
}
