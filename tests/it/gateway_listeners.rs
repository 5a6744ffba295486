//! The listeners against the real binary: running out of file descriptors, the open-files
//! limit, the per-listener connection caps, and a second gateway on the same ports.

use crate::support;
use std::io::Read;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// FAST_TIMERS with a long handshake timeout: idle connections stay until their peer closes
/// them (or the gateway does), never because the handshake timed out during the test.
fn slow_handshake_timers() -> String {
    FAST_TIMERS.replace("handshake_timeout = \"2s\"", "handshake_timeout = \"60s\"")
}

/// Connects a router and checks that an event gets its verdict, retrying the connection until
/// `within` has passed.
fn router_gets_a_verdict(gw: &Gateway, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match TestRouter::connect_as(gw.router_addr, ROUTER, ROUTER_SECRET) {
            Ok(mut r) => {
                let id = r.chat("alice", "bob", "hello");
                return match r.verdict(WAIT) {
                    Some(v) if v.id == id && v.is("pass") => Ok(()),
                    other => Err(format!("no pass verdict: {other:?}")),
                };
            }
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no router could connect: {last}"))
}

/// Whether the peer closed `tcp` within `timeout` (EOF or reset), rather than leaving it open.
fn closed_by_peer(tcp: &mut TcpStream, timeout: Duration) -> bool {
    tcp.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 256];
    match tcp.read(&mut buf) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[test]
fn running_out_of_descriptors_does_not_wedge_the_gateway() {
    let limits = "max_connections = 100000\nmax_unauthenticated = 100000\n";
    let config = config_with(1, "", &slow_handshake_timers(), limits, "");
    let mut gw = Gateway::start_with_nofile(&config, 128, 128);
    // More idle connections than the gateway has descriptors, to both ports; then close them.
    let mut idle = Vec::new();
    for i in 0..300 {
        let addr = if i % 3 == 0 {
            gw.admin_addr
        } else {
            gw.router_addr
        };
        if let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            idle.push(tcp);
        }
    }
    assert!(idle.len() > 200, "only {} connected", idle.len());
    thread::sleep(Duration::from_millis(500));
    drop(idle);
    router_gets_a_verdict(&gw, WAIT).unwrap_or_else(|e| panic!("{e}; log:\n{}", gw.log.all()));
    let status = gw.admin_get("/status", WAIT);
    assert!(
        status
            .as_deref()
            .is_some_and(|s| s.starts_with("HTTP/1.1 200")),
        "/status: {status:?}; log:\n{}",
        gw.log.all()
    );
    let metrics = gw.admin_get("/metrics", WAIT).unwrap_or_default();
    assert!(
        metrics.contains("palisade_accept_errors_total{listener=\"routers\"}"),
        "{metrics}"
    );
    let asked = Instant::now();
    let exit = gw.stop();
    assert!(exit.success(), "{exit:?}");
    assert!(asked.elapsed() < WAIT, "stopped in {:?}", asked.elapsed());
    let failures = gw.log.count("accept failed");
    assert!(
        (1..=6).contains(&failures),
        "{failures} accept-failure lines; log:\n{}",
        gw.log.all()
    );
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let gw = Gateway::start_with_nofile(&config(1, FAST_TIMERS, ""), 256, 512);
    assert!(
        gw.log
            .wait_for("raised the open-files limit from 256 to 512", WAIT),
        "log:\n{}",
        gw.log.all()
    );
    // 512 descriptors cannot hold a listener at the default cap plus the rest.
    assert!(
        gw.log
            .wait_for("the open-files limit is 512, lower than", WAIT),
        "log:\n{}",
        gw.log.all()
    );
}

#[test]
fn connections_past_the_caps_are_closed_at_once() {
    // Two shards in handoff mode: shard 0 counts, connections served on shard 1 report back.
    let limits = "max_connections = 5\nmax_unauthenticated = 2\n";
    let gw = Gateway::start(&config_with(2, "", &slow_handshake_timers(), limits, ""));
    let settle = || thread::sleep(Duration::from_millis(300));
    settle();
    let connect = || TestRouter::connect_as(gw.router_addr, ROUTER, ROUTER_SECRET);
    let mut a = connect().expect("router a");
    let mut b = connect().expect("router b");
    settle();
    let idle1 = TcpStream::connect(gw.router_addr).unwrap();
    let mut idle2 = TcpStream::connect(gw.router_addr).unwrap();
    settle();
    // Two are still in their handshake: a third is refused, though only 4 of 5 are open.
    let mut third = TcpStream::connect(gw.router_addr).unwrap();
    assert!(
        closed_by_peer(&mut third, Duration::from_secs(2)),
        "past max_unauthenticated; log:\n{}",
        gw.log.all()
    );
    assert!(
        !closed_by_peer(&mut idle2, Duration::from_millis(200)),
        "admitted ones stay"
    );
    assert!(
        gw.log.wait_for("max_unauthenticated", WAIT),
        "log:\n{}",
        gw.log.all()
    );
    // One idle connection leaves (wherever it was served, its slot comes back): a router
    // gets in, and then the fifth connection fills max_connections.
    drop(idle1);
    settle();
    let mut c = connect().expect("router c, once a slot is free");
    settle();
    let _idle3 = TcpStream::connect(gw.router_addr).unwrap();
    settle();
    let mut sixth = TcpStream::connect(gw.router_addr).unwrap();
    assert!(
        closed_by_peer(&mut sixth, Duration::from_secs(2)),
        "past max_connections; log:\n{}",
        gw.log.all()
    );
    // The routers already in keep working.
    for r in [&mut a, &mut b, &mut c] {
        let id = r.chat("alice", "bob", "still here");
        assert!(r.verdict_for(&id, WAIT).is("pass"));
    }
    let metrics = gw.admin_get("/metrics", WAIT).unwrap_or_default();
    assert!(
        metrics.contains("palisade_connections_refused_total{listener=\"routers\"} 2"),
        "{metrics}"
    );
    let status = gw.admin_get("/status", WAIT).unwrap_or_default();
    assert!(status.contains("\"refused\""), "{status}");
}

/// A second gateway with the same configuration must not start.
fn second_instance_is_refused(gateway: &str, shards: usize) {
    let gw = Gateway::start(&config_with(shards, gateway, FAST_TIMERS, "", ""));
    let (exit, stderr) = gw.run_again(Duration::from_secs(10));
    let exit = exit.unwrap_or_else(|| panic!("the second gateway kept running:\n{stderr}"));
    assert!(!exit.success(), "{exit:?}\n{stderr}");
    assert!(stderr.contains("address in use"), "{stderr}");
    // The first one serves every router.
    for _ in 0..4 {
        router_gets_a_verdict(&gw, WAIT).unwrap_or_else(|e| panic!("{e}\n{}", gw.log.all()));
    }
}

#[test]
fn a_second_gateway_on_the_same_ports_is_refused() {
    second_instance_is_refused("", 1);
}

#[test]
fn a_second_gateway_on_the_same_ports_is_refused_in_reuseport_mode() {
    second_instance_is_refused("accept = \"reuseport\"", 2);
}

#[test]
fn share_ports_lets_a_second_gateway_listen() {
    let gw = Gateway::start(&config_with(1, "share_ports = true", FAST_TIMERS, "", ""));
    let (exit, stderr) = gw.run_again(Duration::from_secs(2));
    assert!(exit.is_none(), "it exited: {exit:?}\n{stderr}");
    router_gets_a_verdict(&gw, WAIT).unwrap_or_else(|e| panic!("{e}\n{}", gw.log.all()));
}
