//! Running under systemd (`Type=notify`, dist/palisade.service): the gateway sends READY=1
//! once its listeners are open, WATCHDOG=1 at half the interval systemd asks for, and
//! STOPPING=1 at shutdown, to the datagram socket NOTIFY_SOCKET names. Here a test socket
//! stands in for systemd.

use crate::support;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use support::*;

fn notify_socket(tag: &str) -> (UnixDatagram, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("palisade-notify-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).expect("a test notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    (socket, path)
}

/// The datagrams received until `done` says enough, or `limit` passes.
fn receive_until(
    socket: &UnixDatagram,
    limit: Duration,
    mut done: impl FnMut(&[(Instant, String)]) -> bool,
) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline && !done(&got) {
        if let Ok(n) = socket.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    got
}

#[test]
fn ready_after_the_listeners_then_the_watchdog_then_stopping() {
    let (socket, path) = notify_socket("ready");
    let mut gw = Gateway::spawn_with(&config(2, FAST_TIMERS, ""), |c| {
        c.env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID");
    });
    let got = receive_until(&socket, Duration::from_secs(10), |g| {
        g.iter().any(|(_, m)| m.starts_with("READY=1"))
    });
    let ready = got.iter().find(|(_, m)| m.starts_with("READY=1"));
    assert!(ready.is_some(), "{got:?}\nlog:\n{}", gw.log.all());
    assert!(
        ready.unwrap().1.contains(&format!("MAINPID={}", gw.pid())),
        "{got:?}"
    );
    // READY means serving: the router and admin listeners are open already.
    assert!(std::net::TcpStream::connect(gw.router_addr).is_ok());
    assert!(std::net::TcpStream::connect(gw.admin_addr).is_ok());

    // Fed at half the 400 ms interval: several within two seconds.
    let fed = receive_until(&socket, Duration::from_secs(2), |_| false);
    let feeds: Vec<_> = fed.iter().filter(|(_, m)| m == "WATCHDOG=1").collect();
    assert!(feeds.len() >= 4, "{fed:?}");
    let widest = feeds
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
        .unwrap();
    // (A bound systemd would enforce: the interval itself, with room for a loaded machine.)
    assert!(widest < Duration::from_millis(400 * 3), "{widest:?}");

    assert!(gw.stop().success());
    let rest = receive_until(&socket, Duration::from_secs(2), |g| {
        g.iter().any(|(_, m)| m == "STOPPING=1")
    });
    assert!(rest.iter().any(|(_, m)| m == "STOPPING=1"), "{rest:?}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn no_watchdog_for_another_pid_and_nothing_without_a_socket() {
    let (socket, path) = notify_socket("pid");
    let mut gw = Gateway::spawn_with(&config(1, FAST_TIMERS, ""), |c| {
        c.env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "200000")
            .env("WATCHDOG_PID", "1");
    });
    let got = receive_until(&socket, Duration::from_secs(10), |g| {
        g.iter().any(|(_, m)| m.starts_with("READY=1"))
    });
    assert!(got.iter().any(|(_, m)| m.starts_with("READY=1")), "{got:?}");
    let later = receive_until(&socket, Duration::from_secs(1), |_| false);
    assert!(!later.iter().any(|(_, m)| m == "WATCHDOG=1"), "{later:?}");
    assert!(gw.stop().success());
    let _ = std::fs::remove_file(path);
}
