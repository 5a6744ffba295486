//! Listening sockets and the process's open-files limit.
//!
//! glommio's own `TcpListener::bind` always sets SO_REUSEPORT, which lets a second gateway
//! started with the same configuration bind the same ports silently and split the routers with
//! the first. Palisade binds with socket2 instead and hands the socket to glommio:
//! SO_REUSEPORT only where it is wanted (every shard of this process listening in
//! `accept = "reuseport"` mode, or `[gateway] share_ports`), and a probe without it first, so
//! that a port another process holds is "address in use" at start.
//!
//! Owns no task and no connection; the accept loops are `accept.rs`'s.

use super::log::{self, Level};
use crate::policy::{AcceptMode, Config, ServerMode};
use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

/// Connections the kernel holds for a listener before we accept them (what glommio uses).
const BACKLOG: i32 = 1024;
/// File descriptors the gateway needs beside its connections: stdio, listeners, and each
/// shard's io_uring rings, eventfds and timers.
const FDS_BESIDE_CONNECTIONS: u64 = 64;
const FDS_PER_SHARD: u64 = 8;

/// Binds a listener for `what` on `addr`. `share`: set SO_REUSEPORT (other sockets with it, of
/// this process or another, may bind the same address).
pub fn bind(addr: SocketAddr, what: &str, share: bool) -> Result<TcpListener, String> {
    let socket = listening_socket(addr, share)
        .map_err(|e| format!("cannot listen for {what} on {addr}: {}", describe(&e)))?;
    // SAFETY: `into_raw_fd` hands over a bound, listening socket that nothing else owns; the
    // listener owns (and closes) it from here on.
    #[allow(unsafe_code)]
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok(listener)
}

/// Checks that no other socket listens on `addr` by binding it without SO_REUSEPORT (and
/// letting it go). Done before the shards of this process bind with SO_REUSEPORT, which would
/// otherwise join another process's listeners without a word.
pub fn probe(addr: SocketAddr, what: &str) -> Result<(), String> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP));
    socket
        .and_then(|s| {
            s.set_reuse_address(true)?;
            s.bind(&addr.into())
        })
        .map_err(|e| format!("cannot listen for {what} on {addr}: {}", describe(&e)))
}

/// Probes, before any shard binds, every address the shards will bind with SO_REUSEPORT of
/// their own (`accept = "reuseport"`) while ports are not to be shared.
pub fn probe_reuseport_addresses(config: &Config) -> Result<(), String> {
    if config.gateway.accept != AcceptMode::ReusePort || config.gateway.share_ports {
        return Ok(());
    }
    probe(config.listen.routers, "routers")?;
    if let Some(addr) = config.listen.routers_tls {
        probe(addr, "routers (TLS)")?;
    }
    if let Some(addr) = compliance_at_start(config) {
        probe(addr, "compliance servers")?;
    }
    let inbound = config.servers.iter().any(|s| s.mode == ServerMode::Inbound);
    if let Some(addr) = config.listen.compliance_tls.filter(|_| inbound) {
        probe(addr, "compliance servers (TLS)")?;
    }
    Ok(())
}

/// Whether every shard's listener gets SO_REUSEPORT.
pub fn shared(config: &Config) -> bool {
    config.gateway.accept == AcceptMode::ReusePort || config.gateway.share_ports
}

/// The compliance address, when some server dials in from the start.
fn compliance_at_start(config: &Config) -> Option<SocketAddr> {
    let inbound = config.servers.iter().any(|s| s.mode == ServerMode::Inbound);
    config.listen.compliance.filter(|_| inbound)
}

fn listening_socket(addr: SocketAddr, share: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR lets a restart bind despite the last run's connections in TIME_WAIT; on
    // Linux it never lets two sockets listen on one address (SO_REUSEPORT does).
    socket.set_reuse_address(true)?;
    if share {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}

fn describe(e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::EADDRINUSE) {
        "address in use: another process (another gateway?) listens there; stop it, pick another \
         address, or set [gateway] share_ports = true to share the port on purpose"
            .to_owned()
    } else {
        e.to_string()
    }
}

/// Raises the soft open-files limit to the hard one (connections, listeners and io_uring all
/// take descriptors), logs what it did, and warns when the limit cannot hold the connection
/// caps of `config` with `shards` shards.
pub fn raise_fd_limit(config: &Config, shards: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    #[allow(unsafe_code)]
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        return;
    }
    let before = limit.rlim_cur;
    // The kernel refuses RLIM_INFINITY for open files; its own ceiling (fs.nr_open) is at
    // least 1,048,576 by default.
    let target = limit.rlim_max.min(1 << 20);
    let mut now = before;
    if before < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit struct we own.
        #[allow(unsafe_code)]
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if set == 0 {
            now = target;
            log::record(
                Level::Info,
                None,
                &format!("raised the open-files limit from {before} to {now}"),
            );
        } else {
            let e = std::io::Error::last_os_error();
            log::record(
                Level::Warn,
                None,
                &format!("cannot raise the open-files limit from {before} to {target}: {e}"),
            );
        }
    }
    let need = fds_needed(config, shards);
    if now < need {
        log::record(
            Level::Warn,
            None,
            &format!(
                "the open-files limit is {now}, lower than the {need} the connection caps may \
                 need ([limits] max_connections = {} per listener): past it accepts fail and \
                 back off; raise it (ulimit -n, LimitNOFILE= in a systemd unit) or lower \
                 max_connections",
                config.limits.max_connections
            ),
        );
    }
}

/// Descriptors the gateway may hold with every listener at its cap.
fn fds_needed(config: &Config, shards: usize) -> u64 {
    let shards = shards as u64;
    let listeners = 1 + u64::from(compliance_at_start(config).is_some());
    let caps = listeners * config.limits.max_connections as u64;
    let admin = if config.gateway.admin.is_some() {
        super::accept::ADMIN_MAX_CONNECTIONS as u64
    } else {
        0
    };
    let outbound: u64 = config
        .servers
        .iter()
        .filter(|s| s.mode == ServerMode::Outbound)
        .map(|s| {
            s.connections
                .map_or(shards, |c| (c as u64).clamp(1, shards))
        })
        .sum::<u64>()
        + config
            .routers
            .iter()
            .filter(|r| r.connect.is_some())
            .count() as u64;
    caps + admin + outbound + FDS_BESIDE_CONNECTIONS + FDS_PER_SHARD * shards
}
