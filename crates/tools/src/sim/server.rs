//! Where the simulator's streams come from: a listening socket (open-port mode, and the
//! router-echo) or dialers (inbound mode, the simulator dials the gateway's compliance port),
//! plus the fault controller that applies the schedule and the periodic status line.
//!
//! Owns accepting, dialing, reconnecting, the listening socket's life through `crash` and
//! `recover`, and one thread per stream. Must not answer stanzas (see `comply.rs`, `echo.rs`).

use super::comply::Comply;
use super::conn::{serve, End, TICK};
use super::echo::Echo;
use super::faults::{Mode, Schedule};
use super::stats::status_line;
use super::{Shared, SimError};
use crate::net::{self, wait_fd, NetError};
use crate::policy::NodeId;
use crate::wire::{Condition, FromCheck};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A silent gateway is declared gone after this long (its keepalives come every 30 s).
const DEAD_INTERVAL: Duration = Duration::from_secs(90);
const STATUS_EVERY: Duration = Duration::from_secs(5);
const SHUTDOWN_REFUSAL: &str = "simulated graceful shutdown (--fault graceful)";

/// Which streams a listening simulator accepts and what it does with them.
pub struct Accept {
    /// Only this NAME, or any.
    pub name: Option<String>,
    pub secret: Vec<u8>,
    /// Router-echo role (with the node id events are read with), else compliance.
    pub echo: Option<NodeId>,
}

impl Accept {
    fn secret_for(&self, name: &str) -> Option<Vec<u8>> {
        match &self.name {
            Some(only) if !only.eq_ignore_ascii_case(name) => None,
            _ => Some(self.secret.clone()),
        }
    }
}

/// Prints a line on stderr, prefixed with the time since the start.
pub fn log(shared: &Shared, message: &str) {
    if !shared.quiet {
        eprintln!(
            "sim {:>6.1}s: {message}",
            shared.start.elapsed().as_secs_f64()
        );
    }
}

/// The controller's share of the main loop: applies the schedule, prints the status line.
struct Controller<'a> {
    shared: &'a Shared,
    schedule: &'a Schedule,
    duration: Option<Duration>,
    last_status: Instant,
    last_counts: super::stats::Local,
}

impl<'a> Controller<'a> {
    fn new(shared: &'a Shared, schedule: &'a Schedule, duration: Option<Duration>) -> Self {
        Controller {
            shared,
            schedule,
            duration,
            last_status: Instant::now(),
            last_counts: super::stats::Local::default(),
        }
    }

    /// The mode now, or `None` when the simulator should stop.
    fn step(&mut self) -> Option<Mode> {
        let elapsed = self.shared.start.elapsed();
        if self.shared.stopping() || self.duration.is_some_and(|d| elapsed >= d) {
            return None;
        }
        let mode = self.schedule.mode_at(elapsed);
        if self.shared.faults.set(mode) {
            log(self.shared, &format!("fault schedule: now {}", mode.name()));
        }
        if self.last_status.elapsed() >= STATUS_EVERY {
            let now = self.shared.counters.snapshot();
            log(
                self.shared,
                &status_line(&now, &self.last_counts, self.last_status.elapsed()),
            );
            self.last_counts = now;
            self.last_status = Instant::now();
        }
        Some(mode)
    }

    /// How long the main loop may sleep before the next step is due.
    fn nap(&self) -> Duration {
        let elapsed = self.shared.start.elapsed();
        let mut nap = TICK;
        if let Some(next) = self.schedule.next_after(elapsed) {
            nap = nap.min(next.saturating_sub(elapsed));
        }
        nap
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Open-port mode: accepts streams until stopped. Prints `listening on ADDR` on stdout first.
pub fn listen(
    shared: Arc<Shared>,
    addr: &str,
    accept: Accept,
    schedule: &Schedule,
    duration: Option<Duration>,
) -> Result<(), SimError> {
    let bind_err = |source| SimError::Bind {
        addr: addr.to_string(),
        source,
    };
    let first = addr
        .to_socket_addrs()
        .map_err(bind_err)?
        .next()
        .ok_or_else(|| bind_err(io::ErrorKind::NotFound.into()))?;
    let listener = bind(first).map_err(bind_err)?;
    // Rebinding after a crash uses the port actually bound, even when `addr` said port 0.
    let local = listener.local_addr().map_err(bind_err)?;
    println!("listening on {local}");
    let _ = io::stdout().flush();
    let mut listener = Some(listener);
    let accept = Arc::new(accept);
    let conn_numbers = AtomicU32::new(0);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut control = Controller::new(&shared, schedule, duration);
    let mut rebind_failed = false;
    while let Some(mode) = control.step() {
        if mode == Mode::Crash {
            if listener.take().is_some() {
                log(
                    &shared,
                    "crash: listening socket closed, connections refused",
                );
            }
        } else if listener.is_none() {
            match bind(local) {
                Ok(l) => {
                    log(&shared, &format!("listening again on {local}"));
                    listener = Some(l);
                    rebind_failed = false;
                }
                Err(e) if !rebind_failed => {
                    log(&shared, &format!("cannot listen on {local} again yet: {e}"));
                    rebind_failed = true;
                }
                Err(_) => {}
            }
        }
        let accepting = listener.as_ref().filter(|_| mode != Mode::Hang);
        if let Some(l) = accepting {
            loop {
                match l.accept() {
                    Ok((sock, peer)) => {
                        let n = conn_numbers.fetch_add(1, Ordering::Relaxed);
                        let (s2, a2) = (shared.clone(), accept.clone());
                        let spawned = std::thread::Builder::new()
                            .name(format!("sim-conn-{n}"))
                            .spawn(move || serve_accepted(&s2, sock, peer, n, &a2));
                        match spawned {
                            Ok(t) => threads.push(t),
                            Err(e) => log(&shared, &format!("cannot start a thread: {e}")),
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log(&shared, &format!("accept failed: {e}"));
                        break;
                    }
                }
            }
            let _ = wait_fd(l.as_raw_fd(), libc::POLLIN, control.nap());
        } else {
            std::thread::sleep(control.nap());
        }
        threads.retain(|t| !t.is_finished());
    }
    shared.stop();
    join_all(threads);
    Ok(())
}

fn serve_accepted(shared: &Shared, sock: TcpStream, peer: SocketAddr, n: u32, accept: &Accept) {
    let epoch = shared.faults.epoch();
    let from_check = if accept.echo.is_some() {
        // A router sends its users' stanzas from its own name or below it.
        FromCheck::PeerDomainOrSubdomain
    } else {
        // The gateway's requests come from the gateway's name, not the stream's NAME.
        FromCheck::None
    };
    let mut link = match net::receiver(sock, net::tool_config(Some(DEAD_INTERVAL)), from_check) {
        Ok(l) => l,
        Err(e) => return log(shared, &format!("stream {n} from {peer}: {e}")),
    };
    let refuse = (shared.faults.mode() == Mode::Graceful)
        .then_some((Condition::SystemShutdown, SHUTDOWN_REFUSAL));
    let mut name = String::new();
    let handshake = link.handshake(
        |announced| {
            name = announced.to_string();
            accept.secret_for(announced)
        },
        refuse,
    );
    if let Err(e) = handshake {
        return log(shared, &format!("stream {n} from {peer} ({name}): {e}"));
    }
    shared
        .counters
        .streams_opened
        .fetch_add(1, Ordering::Relaxed);
    log(shared, &format!("stream {n} from {peer}: {name} active"));
    let end = match accept.echo {
        Some(node) => serve(link, shared, epoch, &mut Echo::new(shared, n, node)),
        None => serve(
            link,
            shared,
            epoch,
            &mut Comply::new(shared, n, name.clone()),
        ),
    };
    shared
        .counters
        .streams_closed
        .fetch_add(1, Ordering::Relaxed);
    log(shared, &format!("stream {n} ({name}): {end}"));
}

/// Inbound mode: `connections` dialers, each keeping one stream to `addr` up while the mode is
/// normal, redialing with backoff when it drops.
pub fn connect(
    shared: Arc<Shared>,
    addr: &str,
    name: &str,
    secret: &[u8],
    connections: u32,
    schedule: &Schedule,
    duration: Option<Duration>,
) -> Result<(), SimError> {
    let conn_numbers = Arc::new(AtomicU32::new(0));
    let mut threads = Vec::new();
    for i in 0..connections {
        let (shared, numbers) = (shared.clone(), conn_numbers.clone());
        let (addr, name, secret) = (addr.to_string(), name.to_string(), secret.to_vec());
        let t = std::thread::Builder::new()
            .name(format!("sim-dial-{i}"))
            .spawn(move || dial_loop(&shared, &addr, &name, &secret, &numbers))
            .map_err(SimError::Thread)?;
        threads.push(t);
    }
    let mut control = Controller::new(&shared, schedule, duration);
    while control.step().is_some() {
        std::thread::sleep(control.nap());
    }
    shared.stop();
    join_all(threads);
    Ok(())
}

fn dial_loop(shared: &Shared, addr: &str, name: &str, secret: &[u8], numbers: &AtomicU32) {
    const MIN_BACKOFF: Duration = Duration::from_millis(250);
    let mut backoff = MIN_BACKOFF;
    let mut last_error = String::new();
    while !shared.stopping() {
        if shared.faults.mode() != Mode::Normal {
            std::thread::sleep(TICK);
            continue;
        }
        let epoch = shared.faults.epoch();
        let config = net::tool_config(Some(DEAD_INTERVAL));
        match net::dial(addr, name, secret, config, Duration::from_secs(2)) {
            Ok(link) => {
                backoff = MIN_BACKOFF;
                last_error.clear();
                let n = numbers.fetch_add(1, Ordering::Relaxed);
                shared
                    .counters
                    .streams_opened
                    .fetch_add(1, Ordering::Relaxed);
                log(shared, &format!("stream {n} to {addr}: {name} active"));
                let end = serve(
                    link,
                    shared,
                    epoch,
                    &mut Comply::new(shared, n, name.to_string()),
                );
                shared
                    .counters
                    .streams_closed
                    .fetch_add(1, Ordering::Relaxed);
                log(shared, &format!("stream {n} to {addr}: {end}"));
                if matches!(end, End::Stopped) {
                    return;
                }
            }
            Err(e) => {
                let text = e.to_string();
                if text != last_error {
                    log(shared, &format!("dialing {addr}: {text}; retrying"));
                    last_error = text;
                }
                if let NetError::Handshake(_) = e {
                    // A refused handshake will not fix itself quickly; do not hammer the peer.
                    backoff = backoff.max(Duration::from_secs(1));
                }
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shared.stopping() {
            std::thread::sleep(TICK);
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Waits for stream threads to wind down (they look at the stop flag every tick); a thread
/// still in a handshake is left behind after a second rather than holding up the exit.
fn join_all(threads: Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + Duration::from_secs(1);
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        }
    }
}
