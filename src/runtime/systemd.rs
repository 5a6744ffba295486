//! systemd's service notifications (`Type=notify`): `READY=1` once every shard has finished
//! starting (listeners open), `WATCHDOG=1` while every shard keeps running, `STOPPING=1` when
//! shutdown begins. Sent as datagrams to `NOTIFY_SOCKET` directly (a path, or `@name` for an
//! abstract socket), without libsystemd; with no `NOTIFY_SOCKET` every call does nothing.
//!
//! The watchdog is fed from the shards, not from a thread of its own: each shard's timer marks
//! it alive every quarter of `WATCHDOG_USEC`, and shard 0 sends `WATCHDOG=1` every half
//! interval only if every shard has done so since the last one. A wedged shard (a task that
//! never yields, a blocked executor thread) stops the feeding, and systemd restarts the
//! service. Owns no state beyond these flags; it never reads the configuration.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Where notifications go, parsed from `NOTIFY_SOCKET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyAddr {
    Path(std::path::PathBuf),
    /// `@name`: a Linux abstract socket.
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    pub fn parse(value: &std::ffi::OsStr) -> Option<NotifyAddr> {
        use std::os::unix::ffi::OsStrExt;
        match value.as_bytes() {
            [] => None,
            [b'@', name @ ..] => Some(NotifyAddr::Abstract(name.to_vec())),
            [b'/', ..] => Some(NotifyAddr::Path(value.into())),
            // Anything else (a relative path, a vsock address) is not for us.
            _ => None,
        }
    }
}

/// The watchdog interval systemd asks for: `WATCHDOG_USEC`, if `WATCHDOG_PID` is unset or is
/// this process.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the shards share to tell systemd how the service is doing.
#[derive(Debug)]
pub struct Supervisor {
    socket: Option<(UnixDatagram, NotifyAddr)>,
    watchdog: Option<Duration>,
    shards_ready: AtomicUsize,
    /// Per shard: alive since shard 0 last fed the watchdog.
    alive: Vec<AtomicBool>,
}

impl Supervisor {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, for `shards` shards.
    pub fn from_env(shards: usize) -> Supervisor {
        let addr = std::env::var_os("NOTIFY_SOCKET").and_then(|v| NotifyAddr::parse(&v));
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Supervisor::new(addr, watchdog, shards)
    }

    pub fn new(addr: Option<NotifyAddr>, watchdog: Option<Duration>, shards: usize) -> Supervisor {
        let socket = addr.and_then(|a| Some((UnixDatagram::unbound().ok()?, a)));
        Supervisor {
            watchdog: watchdog.filter(|_| socket.is_some()),
            socket,
            shards_ready: AtomicUsize::new(0),
            alive: (0..shards).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// A gateway not started by systemd (or not as `Type=notify`).
    pub fn none() -> Supervisor {
        Supervisor::new(None, None, 0)
    }

    /// Sends one notification; a service manager that went away is not the gateway's problem.
    fn notify(&self, state: &str) {
        let Some((socket, addr)) = &self.socket else {
            return;
        };
        let _ = match addr {
            NotifyAddr::Path(path) => socket.send_to(state.as_bytes(), path),
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| socket.send_to_addr(state.as_bytes(), &a))
            }
        };
    }

    /// Shard `id` has finished starting. Call it once per shard when everything the gateway
    /// must have before it serves is done there: its listeners are open, and (when the
    /// gateway keeps durable records) its spool is read. The last shard to call it sends
    /// `READY=1`.
    pub fn shard_ready(&self, _id: u16) {
        let ready = self.shards_ready.fetch_add(1, Ordering::SeqCst) + 1;
        if ready == self.alive.len() {
            self.startup_complete();
        }
    }

    /// Startup is complete on every shard: systemd may start what depends on the gateway.
    fn startup_complete(&self) {
        self.notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// How often shard `id`'s watchdog task wakes, if systemd wants a watchdog: a quarter of
    /// the interval to mark the shard alive, and shard 0 feeds every second wake.
    pub fn watchdog_tick(&self) -> Option<Duration> {
        self.watchdog.map(|w| (w / 4).max(Duration::from_millis(1)))
    }

    /// Shard `id` is alive; on shard 0, every `feed`-th call feeds the watchdog if every shard
    /// has been alive since the last feed. Returns whether it fed.
    pub fn beat(&self, id: u16, feed: bool) -> bool {
        if let Some(flag) = self.alive.get(usize::from(id)) {
            flag.store(true, Ordering::SeqCst);
        }
        if id != 0 || !feed || !self.alive.iter().all(|a| a.load(Ordering::SeqCst)) {
            return false;
        }
        for a in &self.alive {
            a.store(false, Ordering::SeqCst);
        }
        self.notify("WATCHDOG=1");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn notify_socket_addresses() {
        assert_eq!(
            NotifyAddr::parse(OsStr::new("/run/systemd/notify")),
            Some(NotifyAddr::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifyAddr::parse(OsStr::new("@/org/x")),
            Some(NotifyAddr::Abstract(b"/org/x".to_vec()))
        );
        assert_eq!(NotifyAddr::parse(OsStr::new("")), None);
        assert_eq!(NotifyAddr::parse(OsStr::new("vsock:2:1")), None);
    }

    #[test]
    fn the_watchdog_is_for_the_pid_it_names() {
        let d = Duration::from_micros(500_000);
        assert_eq!(watchdog_interval(Some("500000"), None, 7), Some(d));
        assert_eq!(watchdog_interval(Some("500000"), Some("7"), 7), Some(d));
        assert_eq!(watchdog_interval(Some("500000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    fn listening() -> (UnixDatagram, Supervisor, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "palisade-notify-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let sup = Supervisor::new(
            Some(NotifyAddr::Path(path.clone())),
            Some(Duration::from_secs(1)),
            2,
        );
        (rx, sup, path)
    }

    fn recv(rx: &UnixDatagram) -> Option<String> {
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn ready_is_sent_once_every_shard_is_ready() {
        let (rx, sup, path) = listening();
        sup.shard_ready(1);
        assert_eq!(recv(&rx), None);
        sup.shard_ready(0);
        assert!(recv(&rx).unwrap().starts_with("READY=1\n"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_shard_that_stops_beating_stops_the_feeding() {
        let (rx, sup, path) = listening();
        assert_eq!(sup.watchdog_tick(), Some(Duration::from_millis(250)));
        sup.beat(1, false);
        assert!(sup.beat(0, true));
        assert_eq!(recv(&rx).as_deref(), Some("WATCHDOG=1"));
        // Shard 1 is wedged: shard 0 alone does not feed.
        assert!(!sup.beat(0, true));
        assert!(!sup.beat(0, true));
        assert_eq!(recv(&rx), None);
        sup.beat(1, false);
        assert!(sup.beat(0, true));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_there_is_no_watchdog() {
        let sup = Supervisor::new(None, Some(Duration::from_secs(1)), 1);
        assert_eq!(sup.watchdog_tick(), None);
        sup.shard_ready(0);
        sup.stopping();
    }
}
