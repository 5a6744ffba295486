//! Test support: the real `palisade` binary started on loopback with a generated configuration,
//! plus in-process test routers and compliance servers that speak the wire contract through the
//! crate's own sans-IO stream (over blocking std sockets, one thread each).
#![allow(dead_code)]
// Shared by many test crates, each using part of it: `pub` here is for them, not an API.
#![allow(unreachable_pub)]

use palisade_core::protocol::NS;
use palisade_core::wire::{ComponentStream, FromCheck, Stanza, StreamConfig, StreamEvent};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const ROUTER: &str = "imp1.example.com";
pub const ROUTER_SECRET: &str = "router-secret";
pub const GATEWAY: &str = "palisade.example.com";

/// Waits up to `limit` for `child` to exit; past it, kills it and returns `None`.
fn exit_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A free loopback port (bound, then released).
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`, 32768 and up by
/// default): a port the kernel handed out with `bind(0)` can be taken again as the source port
/// of another test's outgoing connection before the gateway binds it, which made a gateway exit
/// with "address in use" now and then. Each call takes the next port of a per-process sequence
/// (spread by process id) that binds right now.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 40) * 500;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (base + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

fn stream_config() -> StreamConfig {
    StreamConfig {
        keepalive: None,
        dead_interval: None,
        ..StreamConfig::default()
    }
}

/// Lines the gateway wrote on stderr, shared with the thread that reads them.
#[derive(Clone, Default)]
pub struct LogLines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl LogLines {
    fn push(&self, line: String) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().push(line);
        cv.notify_all();
    }

    /// Waits until a line contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_count(needle, 1, timeout)
    }

    /// Waits until `n` lines contain `needle`.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let (lock, cv) = &*self.0;
        let deadline = Instant::now() + timeout;
        let mut lines = lock.lock().unwrap();
        loop {
            if lines.iter().filter(|l| l.contains(needle)).count() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    pub fn count(&self, needle: &str) -> usize {
        self.0
             .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn all(&self) -> String {
        self.0 .0.lock().unwrap().join("\n")
    }
}

/// The gateway under test.
pub struct Gateway {
    child: Option<Child>,
    pub router_addr: SocketAddr,
    pub compliance_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub log: LogLines,
    pub config_path: std::path::PathBuf,
}

impl Gateway {
    /// Starts `palisade run` with `config` after replacing `{ROUTER_PORT}`, `{COMPLIANCE_PORT}`
    /// and `{ADMIN_PORT}`; waits until it accepts router connections.
    pub fn start(config: &str) -> Gateway {
        Self::start_with(config, |_| {})
    }

    /// As [`Gateway::start`], with the child's open-files limit set to `soft` and `hard`
    /// before it runs.
    #[allow(unsafe_code)] // `pre_exec`: see SAFETY below.
    pub fn start_with_nofile(config: &str, soft: u64, hard: u64) -> Gateway {
        Self::start_with(config, move |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec the closure only calls setrlimit, which is
            // async-signal-safe, on a struct it owns.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        })
    }

    /// As [`Gateway::start`], letting `configure` change the command first.
    ///
    /// A start that stalls (the gateway logs that start-up is slow and never listens: a stall
    /// of a shard's executor during start-up that the gateway's own watch did not end) is reported on stderr with
    /// every thread's kernel wait channel and syscall, killed, and started once more, so that
    /// one stall does not fail a test about something else. A second stall, or any other start
    /// that never listens, fails the test.
    pub fn start_with(config: &str, configure: impl Fn(&mut Command)) -> Gateway {
        match Gateway::try_start(config, &configure) {
            Ok(gw) => gw,
            Err(StartFailure::Stalled(mut gw)) => {
                eprintln!(
                    "support: the gateway's start-up stalled; threads:\n{}log:\n{}\nstarting it once more",
                    gw.thread_states(),
                    gw.log.all()
                );
                gw.kill_now();
                match Gateway::try_start(config, &configure) {
                    Ok(gw) => gw,
                    Err(StartFailure::Stalled(gw) | StartFailure::NeverListened(gw)) => {
                        (*gw).never_listened()
                    }
                }
            }
            Err(StartFailure::NeverListened(gw)) => (*gw).never_listened(),
        }
    }

    fn try_start(config: &str, configure: &impl Fn(&mut Command)) -> Result<Gateway, StartFailure> {
        let admin = config.contains("{ADMIN_PORT}");
        let mut gw = Gateway::spawn_with(config, configure);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The router listener, and the admin endpoint when the configuration has one: the
        // endpoint's task may open its port a moment after the listeners.
        let listening = |gw: &Gateway| {
            TcpStream::connect(gw.router_addr).is_ok()
                && (!admin || TcpStream::connect(gw.admin_addr).is_ok())
        };
        while !listening(&gw) {
            // A gateway that exited (a port taken meanwhile, a bad start) says so at once, with
            // what it wrote last: the log reader may lag behind the exit.
            let exited = gw.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                return Err(StartFailure::NeverListened(Box::new(gw)));
            }
            if Instant::now() > deadline {
                let stalled = gw.log.all().contains("Start-up is slow");
                let gw = Box::new(gw);
                return Err(if stalled {
                    StartFailure::Stalled(gw)
                } else {
                    StartFailure::NeverListened(gw)
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(gw)
    }

    /// Fails the test with the gateway's exit status and what it wrote.
    fn never_listened(mut self) -> ! {
        thread::sleep(Duration::from_millis(200));
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        panic!(
            "the gateway never listened (exit: {exited:?}); log:\n{}",
            self.log.all()
        );
    }

    /// Each thread's wait channel and syscall line, read from /proc before anything attaches.
    fn thread_states(&self) -> String {
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return String::new();
        };
        let mut out = String::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for task in tasks.flatten() {
            let path = task.path();
            let read = |name: &str| {
                std::fs::read_to_string(path.join(name))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            };
            out.push_str(&format!(
                "  {} {}: wchan {} syscall {}\n",
                task.file_name().to_string_lossy(),
                read("comm"),
                read("wchan"),
                read("syscall")
            ));
        }
        out
    }

    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts `palisade run` like [`Gateway::start`], without waiting for anything.
    pub fn spawn(config: &str) -> Gateway {
        Self::spawn_with(config, |_| {})
    }

    /// As [`Gateway::spawn`], letting `configure` change the command first.
    pub fn spawn_with(config: &str, configure: impl FnOnce(&mut Command)) -> Gateway {
        let (rp, cp, ap) = (free_port(), free_port(), free_port());
        let config = config
            .replace("{ROUTER_PORT}", &rp.to_string())
            .replace("{COMPLIANCE_PORT}", &cp.to_string())
            .replace("{ADMIN_PORT}", &ap.to_string());
        let dir = std::env::temp_dir().join(format!("palisade-test-{}-{rp}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config_path = dir.join("palisade.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        configure(&mut command);
        let mut child = command.spawn().expect("palisade starts");
        let log = LogLines::default();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("PALISADE_TEST_LOG").is_some() {
                    eprintln!("[gateway] {line}");
                }
                sink.push(line);
            }
        });
        Gateway {
            child: Some(child),
            router_addr: format!("127.0.0.1:{rp}").parse().unwrap(),
            compliance_addr: format!("127.0.0.1:{cp}").parse().unwrap(),
            admin_addr: format!("127.0.0.1:{ap}").parse().unwrap(),
            log,
            config_path,
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.stop_within(Duration::from_secs(15))
            .unwrap_or_else(|| {
                panic!(
                    "the gateway did not stop on SIGTERM; log:\n{}",
                    self.log.all()
                )
            })
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status; past it, kills the gateway
    /// and returns `None`.
    pub fn stop_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().expect("running");
        unsafe_kill(child.id(), "TERM");
        exit_within(&mut child, limit)
    }

    /// Starts a second `palisade run` with this gateway's configuration file; returns its exit
    /// status if it exits within `wait` (it is killed otherwise) and what it wrote on stderr.
    pub fn run_again(&self, wait: Duration) -> (Option<std::process::ExitStatus>, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("palisade starts");
        let status = exit_within(&mut child, wait);
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }

    /// `GET path` on the admin endpoint: the whole response, or `None` if none came within
    /// `timeout`.
    pub fn admin_get(&self, path: &str, timeout: Duration) -> Option<String> {
        let mut tcp = TcpStream::connect_timeout(&self.admin_addr, timeout).ok()?;
        tcp.set_read_timeout(Some(timeout)).ok()?;
        tcp.set_write_timeout(Some(timeout)).ok()?;
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        tcp.read_to_string(&mut out).ok()?;
        (!out.is_empty()).then_some(out)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Rewrites the configuration file with `config` (same port placeholders as `start`) and
    /// sends SIGHUP; waits for the gateway to log the reload's outcome and returns that line.
    pub fn reload(&self, config: &str) -> String {
        let config = config
            .replace("{ROUTER_PORT}", &self.router_addr.port().to_string())
            .replace(
                "{COMPLIANCE_PORT}",
                &self.compliance_addr.port().to_string(),
            )
            .replace("{ADMIN_PORT}", &self.admin_addr.port().to_string());
        std::fs::write(&self.config_path, config).unwrap();
        let outcome = |l: &String| {
            l.contains("Configuration reloaded from") || l.contains("configuration NOT reloaded")
        };
        let before = self
            .log
            .0
             .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| outcome(l))
            .count();
        unsafe_kill(self.pid(), "HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log.0 .0.lock().unwrap().clone();
            if let Some(l) = lines.iter().filter(|l| outcome(l)).nth(before) {
                return l.clone();
            }
            if Instant::now() > deadline {
                panic!("no reload outcome logged; log:\n{}", self.log.all());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Why a start did not end listening.
enum StartFailure {
    /// Its start-up stalled (it said so in its log).
    Stalled(Box<Gateway>),
    /// It exited, or did not listen in time for another reason.
    NeverListened(Box<Gateway>),
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a stream over a blocking socket: reads until `want` returns something or time runs out.
struct Wire {
    tcp: TcpStream,
    stream: ComponentStream,
    buf: Vec<u8>,
    /// A TLS session between the socket and the stream (handshake done).
    tls: Option<palisade_tls::Session>,
}

impl Wire {
    fn flush(&mut self) -> std::io::Result<()> {
        while let Some(out) = self.stream.take_output() {
            match self.tls.as_mut() {
                None => self.tcp.write_all(&out)?,
                Some(session) => session.send(&out),
            }
        }
        if let Some(session) = self.tls.as_mut() {
            let mut out = Vec::new();
            session.take_tls(&mut out);
            self.tcp.write_all(&out)?;
        }
        Ok(())
    }

    /// Feeds bytes read from the socket (through TLS if the wire has it).
    fn feed(&mut self, data: &[u8]) {
        let stream = &mut self.stream;
        match self.tls.as_mut() {
            None => stream.receive(data, Instant::now()),
            Some(session) => match session.receive(data, |p| stream.receive(p, Instant::now())) {
                Ok(palisade_tls::Fed::Open) => {}
                _ => stream.transport_closed(),
            },
        }
    }

    /// The next stream event, waiting up to `timeout`.
    fn next(&mut self, timeout: Duration) -> Option<StreamEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.stream.poll_event() {
                let _ = self.flush();
                return Some(e);
            }
            let _ = self.flush();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.tcp
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
                .ok();
            match self.tcp.read(&mut self.buf) {
                Ok(0) => {
                    self.stream.transport_closed();
                }
                Ok(n) => {
                    let data = self.buf[..n].to_vec();
                    self.feed(&data);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => self.stream.transport_closed(),
            }
        }
    }
}

/// A verdict as a router sees it.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub id: String,
    /// `pass`, `handle`, `bounce`, `drop`, or `error` for an iq error (bad-request).
    pub action: String,
    pub xml: String,
}

impl Verdict {
    pub fn is(&self, action: &str) -> bool {
        self.action == action
    }
}

/// A router connected to the gateway (the inbound router leg).
pub struct TestRouter {
    wire: Wire,
    next_id: usize,
    pending: VecDeque<Verdict>,
    pub name: String,
}

impl TestRouter {
    pub fn connect(gw: &Gateway) -> TestRouter {
        Self::connect_as(gw.router_addr, ROUTER, ROUTER_SECRET).expect("router handshake")
    }

    /// Connects and completes the handshake; `Err` carries the stream's close reason.
    pub fn connect_as(addr: SocketAddr, name: &str, secret: &str) -> Result<TestRouter, String> {
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).ok();
        let stream = ComponentStream::initiator(
            stream_config(),
            name,
            secret.as_bytes(),
            palisade_core::wire::stream::NS_ACCEPT,
            FromCheck::None,
            Instant::now(),
        );
        let mut wire = Wire {
            tcp,
            stream,
            buf: vec![0; 65536],
            tls: None,
        };
        wire.flush().map_err(|e| e.to_string())?;
        match wire.next(Duration::from_secs(5)) {
            Some(StreamEvent::Active) => Ok(TestRouter {
                wire,
                next_id: 0,
                pending: VecDeque::new(),
                name: name.to_owned(),
            }),
            other => Err(format!("{other:?}")),
        }
    }

    /// Whether the stream is still active (the gateway has not closed it).
    pub fn is_active(&mut self) -> bool {
        self.wire.stream.writer().is_some()
    }

    /// Sends raw stanza bytes.
    pub fn send_raw(&mut self, xml: &str) {
        self.wire
            .stream
            .writer()
            .expect("active")
            .extend_from_slice(xml.as_bytes());
        self.wire.flush().expect("write");
    }

    /// Sends an event; returns its iq id.
    pub fn event(&mut self, name: &str, attrs: &str, inner: &str) -> String {
        let id = format!("R{}", self.next_id);
        self.next_id += 1;
        let xml = format!(
            "<iq type='set' id='{id}' from='{}' to='{GATEWAY}'><event xmlns='{NS}' name='{name}'{attrs}>{inner}</event></iq>",
            self.name
        );
        self.send_raw(&xml);
        id
    }

    /// An es_OUT chat message from `from` to `to` (local parts at example.com).
    pub fn chat(&mut self, from: &str, to: &str, body: &str) -> String {
        self.event(
            "es_OUT",
            "",
            &format!(
                "<message xmlns='jabber:client' from='{from}@example.com/desk' to='{to}@example.com' type='chat'><body>{body}</body></message>"
            ),
        )
    }

    /// The next verdict (or iq error) from the gateway.
    pub fn verdict(&mut self, timeout: Duration) -> Option<Verdict> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        self.read_verdict(timeout)
    }

    /// The next verdict read from the wire (not from those already set aside).
    fn read_verdict(&mut self, timeout: Duration) -> Option<Verdict> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.wire.next(left)? {
                StreamEvent::Stanza(s) => {
                    if let Some(v) = to_verdict(&s) {
                        return Some(v);
                    }
                    self.answer_service(&s);
                }
                StreamEvent::Closed(_) => return None,
                _ => {}
            }
        }
    }

    /// Answers the gateway's liveness pings (and disco) as a real router does.
    fn answer_service(&mut self, s: &Stanza) {
        if s.type_().as_deref() != Some("get") {
            return;
        }
        let mut out = bytes::BytesMut::new();
        palisade_core::protocol::service::answer(&mut out, &self.name, s);
        if let Some(w) = self.wire.stream.writer() {
            w.extend_from_slice(&out);
        }
        let _ = self.wire.flush();
    }

    /// Waits for the verdict of `id` (keeping others for later).
    pub fn verdict_for(&mut self, id: &str, timeout: Duration) -> Verdict {
        if let Some(i) = self.pending.iter().position(|v| v.id == id) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .read_verdict(left)
                .unwrap_or_else(|| panic!("no verdict for {id}"));
            if v.id == id {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// Expects no stanza for `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        if let Some(v) = self.verdict(wait) {
            panic!("unexpected {v:?}");
        }
    }

    /// Reads until the stream closes; returns the close reason.
    pub fn closed(&mut self, timeout: Duration) -> Option<palisade_core::wire::Closed> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wire.next(left)? {
                StreamEvent::Closed(c) => return Some(c),
                StreamEvent::Stanza(s) => {
                    if let Some(v) = to_verdict(&s) {
                        self.pending.push_back(v);
                    }
                }
                _ => {}
            }
        }
    }
}

fn to_verdict(s: &Stanza) -> Option<Verdict> {
    if s.name() != b"iq" {
        return None;
    }
    let id = s.id()?.into_owned();
    let xml = String::from_utf8_lossy(s.bytes()).into_owned();
    let action = if s.type_().as_deref() == Some("error") {
        "error".to_owned()
    } else {
        let v = s
            .children()
            .find(|c| s.element_local_name(c) == b"verdict")?;
        s.element_attr(v, "action")?.into_owned()
    };
    Some(Verdict { id, action, xml })
}

/// A request as a test compliance server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: String,
    pub mode: String,
    pub event: String,
    pub profile: String,
    pub handling: String,
    pub key: String,
    pub packet: Option<String>,
    pub stanza: String,
    pub xml: String,
    pub at: Instant,
}

/// How a test compliance server answers a request.
#[derive(Clone, Debug)]
pub enum Answer {
    Pass,
    Modify(String),
    Handle,
    Error(String),
    /// Never answer.
    Silent,
    /// Answer after a delay (the connection keeps serving others meanwhile).
    Later(Duration, Box<Answer>),
}

type Policy = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

/// A compliance server listening on an open port (the gateway dials it).
pub struct TestServer {
    pub addr: SocketAddr,
    pub component: String,
    pub password: String,
    requests: Arc<Mutex<Vec<Request>>>,
    policy: Arc<Mutex<Policy>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accepting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    pub streams: Arc<AtomicUsize>,
    graceful: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    /// Why TLS handshakes with the gateway failed, as this server saw them.
    pub tls_failures: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// Listens on `port` for component `component` with `password`; answers PASS by default.
    pub fn start(port: u16, component: &str, password: &str) -> TestServer {
        Self::start_with_tls(port, component, password, None)
    }

    /// The same, over direct TLS with `tls` (the gateway dials with `tls = true`).
    pub fn start_with_tls(
        port: u16,
        component: &str,
        password: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TestServer {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let listener = TcpListener::bind(addr).expect("test server binds");
        listener.set_nonblocking(true).unwrap();
        let server = TestServer {
            addr,
            component: component.to_owned(),
            password: password.to_owned(),
            requests: Arc::default(),
            policy: Arc::new(Mutex::new(Arc::new(|_: &Request| Answer::Pass))),
            conns: Arc::default(),
            accepting: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            streams: Arc::default(),
            graceful: Arc::new(AtomicBool::new(false)),
            hung: Arc::new(AtomicBool::new(false)),
            tls_failures: Arc::default(),
        };
        let tls_failures = server.tls_failures.clone();
        let (requests, policy, conns, accepting, stop, streams, graceful, hung) = (
            server.requests.clone(),
            server.policy.clone(),
            server.conns.clone(),
            server.accepting.clone(),
            server.stop.clone(),
            server.streams.clone(),
            server.graceful.clone(),
            server.hung.clone(),
        );
        let (component, password) = (component.to_owned(), password.to_owned());
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        if !accepting.load(Ordering::SeqCst) {
                            drop(tcp);
                            continue;
                        }
                        conns.lock().unwrap().push(tcp.try_clone().unwrap());
                        let ctx = ServeCtx {
                            requests: requests.clone(),
                            policy: policy.clone(),
                            component: component.clone(),
                            password: password.clone(),
                            stop: stop.clone(),
                            streams: streams.clone(),
                            graceful: graceful.clone(),
                            hung: hung.clone(),
                            tls: tls.clone(),
                            tls_failures: tls_failures.clone(),
                        };
                        thread::spawn(move || serve(tcp, ctx));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        server
    }

    pub fn set_policy(&self, f: impl Fn(&Request) -> Answer + Send + Sync + 'static) {
        *self.policy.lock().unwrap() = Arc::new(f);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Waits until `n` requests arrived.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.request_count() < n {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Waits until `n` streams are active.
    pub fn wait_streams(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.streams.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Graceful outage: every stream ends with `</stream:stream>`; new connections are refused.
    pub fn shutdown_gracefully(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        self.graceful.store(true, Ordering::SeqCst);
    }

    /// Ungraceful outage: every connection is reset; new connections are refused.
    pub fn crash(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        // EOF without a stream close: what a crash or a cut cable looks like to the gateway.
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Hang: streams stay open but nothing is read or answered any more.
    pub fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    /// Accepts (and answers) again.
    pub fn recover(&self) {
        self.graceful.store(false, Ordering::SeqCst);
        self.hung.store(false, Ordering::SeqCst);
        self.accepting.store(true, Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// What one served connection shares with its server.
struct ServeCtx {
    requests: Arc<Mutex<Vec<Request>>>,
    policy: Arc<Mutex<Policy>>,
    component: String,
    password: String,
    stop: Arc<AtomicBool>,
    streams: Arc<AtomicUsize>,
    graceful: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_failures: Arc<Mutex<Vec<String>>>,
}

fn serve(tcp: TcpStream, ctx: ServeCtx) {
    let ServeCtx {
        requests,
        policy,
        component,
        password,
        stop,
        streams,
        graceful,
        hung,
        tls,
        tls_failures,
    } = ctx;
    tcp.set_nodelay(true).ok();
    let mut random = [0u8; 16];
    random[..8]
        .copy_from_slice(&(Instant::now().elapsed().as_nanos() as u64 ^ 0x5eed).to_le_bytes());
    let stream =
        ComponentStream::receiver(stream_config(), random, FromCheck::None, Instant::now());
    let wire = Arc::new(Mutex::new(Wire {
        tcp: tcp.try_clone().unwrap(),
        stream,
        buf: vec![0; 65536],
        tls: None,
    }));
    if let Some(config) = tls.clone() {
        let session = palisade_tls::Session::server(config).expect("server session");
        match tls_handshake(&tcp, session) {
            Ok((session, early)) => {
                let mut w = wire.lock().unwrap();
                w.tls = Some(session);
                w.stream.receive(&early, Instant::now());
            }
            Err(e) => {
                tls_failures.lock().unwrap().push(e);
                let _ = tcp.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    // Answers made on other threads (delayed ones) wait here for the serving loop to write
    // them: were they to take the wire's lock themselves, the loop, which holds it while it
    // reads, could starve them for hundreds of milliseconds.
    let outgoing: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut active = false;
    let mut closed_gracefully = false;
    while !stop.load(Ordering::SeqCst) {
        let ready = std::mem::take(&mut *outgoing.lock().unwrap());
        if !ready.is_empty() {
            let mut w = wire.lock().unwrap();
            if let Some(out) = w.stream.writer() {
                for xml in &ready {
                    out.extend_from_slice(xml.as_bytes());
                }
            }
            let _ = w.flush();
        }
        if hung.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        if graceful.load(Ordering::SeqCst) && !closed_gracefully {
            closed_gracefully = true;
            let mut w = wire.lock().unwrap();
            w.stream.close();
            let _ = w.flush();
        }
        let event = wire.lock().unwrap().next(Duration::from_millis(5));
        match event {
            Some(StreamEvent::NameAnnounced { name }) => {
                let mut w = wire.lock().unwrap();
                if name == component {
                    w.stream.accept_name(password.as_bytes());
                } else {
                    w.stream.refuse(
                        palisade_core::wire::Condition::HostUnknown,
                        "unknown component",
                    );
                }
                let _ = w.flush();
            }
            Some(StreamEvent::Active) => {
                active = true;
                streams.fetch_add(1, Ordering::SeqCst);
            }
            Some(StreamEvent::Stanza(s)) => {
                let Some(req) = to_request(&s) else {
                    // Pings and other requests get their standard answers.
                    let mut out = bytes::BytesMut::new();
                    palisade_core::protocol::service::answer(&mut out, &component, &s);
                    let mut w = wire.lock().unwrap();
                    if let Some(o) = w.stream.writer() {
                        o.extend_from_slice(&out);
                    }
                    let _ = w.flush();
                    continue;
                };
                requests.lock().unwrap().push(req.clone());
                if req.mode != "wait" {
                    continue;
                }
                let answer = (policy.lock().unwrap())(&req);
                let (outgoing, component) = (outgoing.clone(), component.clone());
                let reply_to = s.from().map(|f| f.into_owned()).unwrap_or_default();
                let respond = move |answer: &Answer| {
                    if let Some(xml) = answer_xml(answer, &req.id, &component, &reply_to) {
                        outgoing.lock().unwrap().push(xml);
                    }
                };
                match answer {
                    Answer::Later(delay, inner) => {
                        thread::spawn(move || {
                            thread::sleep(delay);
                            respond(&inner);
                        });
                    }
                    other => respond(&other),
                }
            }
            Some(StreamEvent::Closed(_)) => break,
            None => {}
        }
    }
    if active {
        streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn to_request(s: &Stanza) -> Option<Request> {
    let event = s.children().find(|c| s.element_local_name(c) == b"event")?;
    let attr = |n: &str| s.element_attr(event, n).map(|v| v.into_owned());
    let inner = s.children_of(event).next()?;
    Some(Request {
        id: s.id()?.into_owned(),
        mode: attr("mode")?,
        event: attr("name")?,
        profile: attr("profile").unwrap_or_default(),
        handling: attr("handling").unwrap_or_default(),
        key: attr("key").unwrap_or_default(),
        packet: attr("packet"),
        stanza: String::from_utf8_lossy(&s.slice(inner.span)).into_owned(),
        xml: String::from_utf8_lossy(s.bytes()).into_owned(),
        at: Instant::now(),
    })
}

fn answer_xml(answer: &Answer, id: &str, from: &str, to: &str) -> Option<String> {
    let head = |t: &str| format!("<iq type='{t}' id='{id}' from='{from}' to='{to}'>");
    Some(match answer {
        Answer::Pass => format!("{}</iq>", head("result")),
        Answer::Modify(stanza) => format!(
            "{}<verdict xmlns='{NS}' action='pass'>{stanza}</verdict></iq>",
            head("result")
        ),
        Answer::Handle => format!("{}<verdict xmlns='{NS}' action='handle'/></iq>", head("result")),
        Answer::Error(condition) => format!(
            "{}<error type='cancel'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            head("error")
        ),
        Answer::Silent => return None,
        Answer::Later(_, inner) => return answer_xml(inner, id, from, to),
    })
}

/// A configuration with one router and the given servers and profiles; `timers` overrides
/// `[timers]` (milliseconds-scale for tests).
pub fn config(shards: usize, timers: &str, rest: &str) -> String {
    config_with(shards, "", timers, "", rest)
}

/// As [`config`], with extra `[gateway]` keys and a `[limits]` table.
pub fn config_with(shards: usize, gateway: &str, timers: &str, limits: &str, rest: &str) -> String {
    // Written only when asked for: `rest` may hold a [limits] table of its own.
    let limits = match limits {
        "" => String::new(),
        l => format!("[limits]\n{l}\n"),
    };
    format!(
        r#"
[gateway]
name = "{GATEWAY}"
domain = "example.com"
shards = {shards}
admin = "127.0.0.1:{{ADMIN_PORT}}"
{gateway}
{limits}

[listen]
routers = "127.0.0.1:{{ROUTER_PORT}}"
compliance = "127.0.0.1:{{COMPLIANCE_PORT}}"

[timers]
{timers}

[[router]]
name = "{ROUTER}"
secret = "{ROUTER_SECRET}"

{rest}
"#
    )
}

/// A `[[server]]` block for an outbound test server on `port`.
pub fn server_block(name: &str, port: u16, profile: &str) -> String {
    format!(
        "[[server]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\npassword = \"pw-{name}\"\nprofile = \"{profile}\"\n"
    )
}

/// `n` es_OUT chat events with ids `F0`..`F{n-1}`, as one string: what a router that floods
/// writes again and again.
pub fn flood_batch(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "<iq type='set' id='F{i}' from='{ROUTER}' to='{GATEWAY}'><event \
                 xmlns='{NS}' name='es_OUT'><message xmlns='jabber:client' \
                 from='f{i}@example.com/x' to='g@example.com' type='chat'><body>flood</body>\
                 </message></event></iq>"
            )
        })
        .collect()
}

/// The component name the gateway announces to server `name`.
pub fn component(name: &str) -> String {
    format!("op-{name}.palisade-example-com")
}

pub const FAST_TIMERS: &str = r#"
event_timeout = "400ms"
outage_window = "2s"
reconnect_min = "20ms"
reconnect_max = "100ms"
keepalive = "1s"
dead_interval = "3s"
handshake_timeout = "2s"
"#;

pub const SECOND: Duration = Duration::from_secs(1);

/// An iq reply as a router or server sees it: any `<iq>` the gateway wrote, with its id and
/// type (verdicts, iq errors, service answers alike).
#[derive(Clone, Debug)]
pub struct IqReply {
    pub id: String,
    pub type_: String,
}

impl TestRouter {
    /// Another handle on the router's socket, for writing stanzas from another thread (bytes
    /// written there bypass this router's stream, which then only reads).
    pub fn raw_writer(&self) -> TcpStream {
        self.wire.tcp.try_clone().expect("socket clone")
    }

    /// The next `<iq>` the gateway wrote, whatever it carries.
    pub fn next_iq(&mut self, timeout: Duration) -> Option<IqReply> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.wire.next(left)? {
                StreamEvent::Stanza(s) if s.name() == b"iq" => {
                    let id = s.id()?.into_owned();
                    let type_ = s.type_().map(|t| t.into_owned()).unwrap_or_default();
                    return Some(IqReply { id, type_ });
                }
                StreamEvent::Closed(_) => return None,
                _ => {}
            }
        }
    }
}

/// Writes `stanza(n)` for n = 0, 1, 2... on `tcp` as fast as the peer takes them until `stop`
/// is set, then finishes the stanza it was writing. Returns how many it wrote whole.
pub fn flood(mut tcp: TcpStream, stop: Arc<AtomicBool>, stanza: impl Fn(usize) -> String) -> usize {
    tcp.set_write_timeout(Some(Duration::from_millis(50))).ok();
    let mut n = 0;
    let mut batch = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        batch.clear();
        for i in n..n + 256 {
            batch.extend_from_slice(stanza(i).as_bytes());
        }
        let mut at = 0;
        // A batch is always finished: the count stays exact.
        while at < batch.len() {
            match tcp.write(&batch[at..]) {
                Ok(0) => return n,
                Ok(k) => at += k,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return n,
            }
        }
        n += 256;
    }
    n
}

/// The resident set size of process `pid`, in bytes (from `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

/// Runs a TLS handshake over a blocking socket; returns the session and any plaintext that
/// came with its last flight, or why it failed.
pub fn tls_handshake(
    mut tcp: &TcpStream,
    mut session: palisade_tls::Session,
) -> Result<(palisade_tls::Session, Vec<u8>), String> {
    let mut early = Vec::new();
    let mut buf = vec![0u8; 16384];
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    loop {
        let mut out = Vec::new();
        session.take_tls(&mut out);
        if !out.is_empty() {
            tcp.write_all(&out).map_err(|e| e.to_string())?;
        }
        if !session.is_handshaking() {
            return Ok((session, early));
        }
        let n = tcp.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        if let Err(f) = session.receive(&buf[..n], |p| early.extend_from_slice(p)) {
            // Tell the peer why (the alert rustls queued), as any TLS stack does.
            let mut out = Vec::new();
            session.take_tls(&mut out);
            let _ = tcp.write_all(&out);
            return Err(f.reason().to_owned());
        }
    }
}

impl TestRouter {
    /// Connects over direct TLS with `dial` and completes the stream handshake.
    pub fn connect_tls(
        addr: SocketAddr,
        name: &str,
        secret: &str,
        dial: &palisade_tls::Dial,
    ) -> Result<TestRouter, String> {
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).ok();
        let session = palisade_tls::Session::client(dial).map_err(|f| f.reason().to_owned())?;
        let (session, early) = tls_handshake(&tcp, session)?;
        let stream = ComponentStream::initiator(
            stream_config(),
            name,
            secret.as_bytes(),
            palisade_core::wire::stream::NS_ACCEPT,
            FromCheck::None,
            Instant::now(),
        );
        let mut wire = Wire {
            tcp,
            stream,
            buf: vec![0; 65536],
            tls: Some(session),
        };
        wire.stream.receive(&early, Instant::now());
        wire.flush().map_err(|e| e.to_string())?;
        match wire.next(Duration::from_secs(5)) {
            Some(StreamEvent::Active) => Ok(TestRouter {
                wire,
                next_id: 0,
                pending: VecDeque::new(),
                name: name.to_owned(),
            }),
            other => Err(format!("{other:?}")),
        }
    }
}
