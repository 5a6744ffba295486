//! The configuration model (docs/configuration.md's keys as Rust types), its defaults, and the entry points
//! that load, validate and report on a configuration file.
//!
//! This module owns what a valid configuration is. Syntax and shape are read in `load.rs`,
//! meaning is checked in `validate.rs`, and positions and messages live in `diagnostic.rs`. It
//! reads the file it is given and nothing else; it never opens sockets or starts anything.

mod diagnostic;
mod load;
mod profiles;
mod servers;
mod tls;
mod validate;

pub use diagnostic::{did_you_mean, nearest, Diagnostic, Severity};

use super::profile::{Profile, ProfileId};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The embedded configuration `palisade run` uses without `--config`: loopback only.
pub const DEFAULT_TOML: &str = include_str!("config/default.toml");

/// A fully validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[gateway]`: the gateway's identity, shard count, admin endpoint and accept mode.
    pub gateway: GatewayConfig,
    /// `[listen]`: the addresses routers and inbound compliance servers connect to.
    pub listen: ListenConfig,
    /// `[timers]`: event, outage, reconnect and stream timers.
    pub timers: Timers,
    /// `[limits]`: stanza limits, queue and buffer bounds, connection caps.
    pub limits: Limits,
    /// `[tls]`: the gateway's certificate for its TLS listeners.
    pub tls: Option<TlsConfig>,
    /// `[spool]`: where records no server could take are kept, and how much disk they may use.
    pub spool: SpoolConfig,
    /// `[log]`: the level and format of the gateway's log.
    pub log: LogConfig,
    /// Every `[[router]]`, in file order: the IM nodes' routers allowed to connect (or dialed).
    pub routers: Vec<RouterConfig>,
    /// Every `[[server]]`, in file order; a [`ServerId`] is an index into it.
    pub servers: Vec<ServerConfig>,
    /// The built-in `SystemDefaultComplianceProfile` first, then the file's in definition order.
    pub profiles: Vec<Profile>,
    /// Every profile exactly once, highest routing priority first.
    pub priority: Vec<ProfileId>,
}

/// `[gateway]`: who the gateway is toward its peers, and how its process is laid out.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct GatewayConfig {
    /// The gateway's own component name toward routers.
    pub name: String,
    /// Used in generated open-port component names; default: `name` without its first label.
    pub domain: String,
    /// Executors; 0 means one per core.
    pub shards: usize,
    /// The admin endpoint's address (status page, health, metrics, `POST /reload`); `None`: no
    /// endpoint.
    pub admin: Option<SocketAddr>,
    /// How incoming connections are spread over the shards.
    pub accept: AcceptMode,
    /// Let other processes listen on the same ports (SO_REUSEPORT across processes, for a
    /// rolling restart); otherwise a port another process holds is refused at start.
    pub share_ports: bool,
}

/// The most shards a gateway may run: each is an executor with its own thread and io_uring
/// rings in locked memory, and the shards talk over a full mesh of shards² bounded channels.
pub const MAX_SHARDS: usize = 256;

/// How incoming connections are spread over the shards (`[gateway] accept`).
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub enum AcceptMode {
    /// One acceptor hands each connection to the next shard in turn: even with the few
    /// connections routers open, every shard gets its share (the default).
    #[default]
    Handoff,
    /// Every shard listens with SO_REUSEPORT and the kernel picks: no hand-off, but a few
    /// connections can land on one shard.
    ReusePort,
}

/// `[log]`: which records the gateway writes, and how.
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub struct LogConfig {
    /// The least severe level written.
    pub level: LogLevel,
    /// Text lines or JSON objects.
    pub format: LogFormat,
}

/// The least severe level written (`[log] level`, `--log-level`).
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures, and what degrades service without failing it.
    Warn,
    /// Also the normal course of connections, streams and reloads (the default).
    #[default]
    Info,
    /// Also details for diagnosing one peer or stream.
    Debug,
    /// Everything: the most verbose.
    Trace,
}

impl LogLevel {
    /// Every level, least verbose first (the order of `--log-level`'s choices).
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The spelling in configuration and on the command line: `error`, `warn`, `info`, `debug`,
    /// `trace`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level spelled `text` (exactly as [`LogLevel::as_str`] writes it); `None` for anything
    /// else.
    pub fn parse(text: &str) -> Option<LogLevel> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }
}

/// How records are written (`[log] format`, `--log-format`).
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub enum LogFormat {
    /// One line per record: `STAMP LEVEL [shard N] message`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `text` or `json`; `None` for anything else.
    pub fn parse(text: &str) -> Option<LogFormat> {
        match text {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// `[listen]`: the sockets the gateway accepts peers on.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ListenConfig {
    /// Where routers connect (plain TCP).
    pub routers: SocketAddr,
    /// Required (this or `compliance_tls`) when any server has mode `inbound`.
    pub compliance: Option<SocketAddr>,
    /// Routers dial here with direct TLS (needs `[tls]`).
    pub routers_tls: Option<SocketAddr>,
    /// Inbound compliance servers dial here with direct TLS (needs `[tls]`).
    pub compliance_tls: Option<SocketAddr>,
}

/// A file the configuration names, and where it names it: problems with the file's contents
/// (found outside this module, which reads no such file) point at that key. Two are equal
/// when they name the same file, wherever the file is named (a reload compares them).
#[derive(Clone, Debug)]
pub struct FileRef {
    /// The file, as the configuration names it (relative paths are relative to the working
    /// directory).
    pub path: PathBuf,
    /// The key that names the file, as `check-config` shows it: `client_ca`.
    pub key: &'static str,
    /// 1-based line of the value that names the file.
    pub line: usize,
    /// 1-based column of that value.
    pub col: usize,
}

impl PartialEq for FileRef {
    fn eq(&self, other: &FileRef) -> bool {
        self.path == other.path
    }
}

impl Eq for FileRef {}

/// `[tls]`: the certificate chain and key the TLS listeners present, and optionally the CA
/// whose certificates they require of their peers (mutual TLS).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TlsConfig {
    /// The certificate chain the listeners present (`cert`).
    pub cert: FileRef,
    /// The private key of that chain's first certificate (`key`).
    pub key: FileRef,
    /// CA certificates a peer's certificate must chain to (`client_ca`); `None`: no client
    /// certificate is asked for.
    pub client_ca: Option<FileRef>,
}

/// A dial over direct TLS (`tls = true` on a `[[server]]`, or a `[[router]]` with `connect`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct DialTls {
    /// Trust anchors; `None`: the system's roots.
    pub ca: Option<FileRef>,
    /// The name the peer's certificate must carry (`tls_name`, default the host dialed).
    pub name: String,
    /// A certificate to present (mutual TLS).
    pub client: Option<ClientIdentity>,
}

/// The certificate chain and key a dial presents.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ClientIdentity {
    /// The certificate chain presented (`tls_cert`).
    pub cert: FileRef,
    /// The private key of that chain's first certificate (`tls_key`).
    pub key: FileRef,
}

/// `[timers]`: every timer the engine and the streams run, as durations.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Timers {
    /// How long one step waits for a server's answer; also how long a queued notification is kept.
    pub event_timeout: Duration,
    /// How long a server in an ungraceful outage stays routable while events queue for it.
    pub outage_window: Duration,
    /// First reconnect delay; the delay doubles (with jitter) up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Quiet time on an active stream after which a whitespace keepalive is sent.
    pub keepalive: Duration,
    /// Silence after which a stream's peer is taken as dead (a ping goes out at half of it).
    pub dead_interval: Duration,
    /// How long a stream may take from its start to active; also bounds the TCP connect to a
    /// compliance server.
    pub handshake_timeout: Duration,
    /// A stanza that has started must be complete within this (docs/protocol.md §6).
    pub stanza_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            event_timeout: Duration::from_secs(30),
            outage_window: Duration::from_secs(300),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            dead_interval: Duration::from_secs(90),
            handshake_timeout: Duration::from_secs(10),
            stanza_timeout: Duration::from_secs(30),
        }
    }
}

/// `[limits]`: every bound on what a peer can make the gateway hold.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Largest stanza (or stream header) accepted, in bytes.
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside one stanza, the stanza itself being 1.
    pub max_depth: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Events waiting for one server; past it a step fails at once.
    pub queue_per_server: usize,
    /// Events in flight per shard before reading from routers pauses.
    pub max_in_flight: usize,
    /// Unwritten bytes one compliance stream may hold before further requests to it fail at
    /// once (a server that stops reading must not make the gateway buffer without bound).
    pub stream_buffer_bytes: usize,
    /// Connections open at once on one listener (routers, compliance), across shards; past it
    /// new connections are accepted and closed at once.
    pub max_connections: usize,
    /// Of those, connections that have not completed the handshake yet.
    pub max_unauthenticated: usize,
}

/// `[spool]`: the durable spool of records no compliance server could take (off without `dir`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SpoolConfig {
    /// Where each shard keeps its segments (`shard-N/` below it).
    pub dir: Option<std::path::PathBuf>,
    /// Bytes on disk the spool may use, across shards.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> SpoolConfig {
        SpoolConfig {
            dir: None,
            max_bytes: 1 << 30,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 32,
            max_attributes: 64,
            queue_per_server: 100_000,
            max_in_flight: 65_536,
            stream_buffer_bytes: 32 << 20,
            max_connections: 512,
            max_unauthenticated: 128,
        }
    }
}

/// One IM node's router.
#[derive(Clone, Eq, PartialEq)]
pub struct RouterConfig {
    /// The component name the router announces (or, with `connect`, the name the gateway
    /// announces to it).
    pub name: String,
    /// The XEP-0114 shared secret of the router's component stream (redacted in `Debug`).
    pub secret: String,
    /// Default: the first label of `name`.
    pub node: String,
    /// `host:port` of an XMPP server's component port the gateway dials (router outbound leg).
    pub connect: Option<String>,
    /// With `connect`: dial with direct TLS.
    pub tls: Option<DialTls>,
}

impl fmt::Debug for RouterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterConfig")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("node", &self.node)
            .field("connect", &self.connect)
            .field("tls", &self.tls)
            .finish()
    }
}

/// Who opens the stream to a compliance server (`mode`).
#[derive(Copy, Clone, Debug, Eq, PartialEq, Hash, Default)]
pub enum ServerMode {
    /// The gateway dials the server's open port.
    #[default]
    Outbound,
    /// The server dials the gateway's `[listen] compliance` address.
    Inbound,
}

impl ServerMode {
    /// The spellings accepted in configuration.
    pub const NAMES: [&'static str; 2] = ["outbound", "inbound"];

    /// `outbound` or `inbound`; `None` for anything else.
    pub fn parse(text: &str) -> Option<ServerMode> {
        match text {
            "outbound" => Some(ServerMode::Outbound),
            "inbound" => Some(ServerMode::Inbound),
            _ => None,
        }
    }

    /// The spelling in configuration: `outbound` or `inbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Outbound => "outbound",
            ServerMode::Inbound => "inbound",
        }
    }
}

/// An index into `Config::servers`.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub struct ServerId(pub u16);

impl ServerId {
    /// The position in `Config::servers`, for indexing per-server tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One third-party compliance server.
#[derive(Clone, Eq, PartialEq)]
pub struct ServerConfig {
    /// The server's name in the configuration, logs and metrics (unique, compared
    /// case-insensitively).
    pub name: String,
    /// Where an outbound server listens; informational (possibly empty) for an inbound one.
    pub host: String,
    /// 0 only for an inbound server that gave none.
    pub port: u16,
    /// The XEP-0114 shared secret of its streams (redacted in `Debug`).
    pub password: String,
    /// Whether the gateway dials it or it dials the gateway.
    pub mode: ServerMode,
    /// The assigned profile's name, and its index into `Config::profiles`.
    pub profile: String,
    /// The index of `profile` into `Config::profiles`.
    pub profile_id: ProfileId,
    /// Nodes whose events it takes; empty means every node.
    pub nodes: Vec<String>,
    /// The override, or `op-{server}.{first label of gateway name}-{domain, dots as dashes}`.
    pub component: String,
    /// Streams to keep to it (`connections`); `None`: one per shard.
    pub connections: Option<usize>,
    /// Outbound only: dial with direct TLS.
    pub tls: Option<DialTls>,
}

impl ServerConfig {
    /// Whether this server takes events produced by `node` (compared ASCII case-insensitively).
    pub fn serves_node(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n.eq_ignore_ascii_case(node))
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"<redacted>")
            .field("mode", &self.mode)
            .field("profile", &self.profile)
            .field("nodes", &self.nodes)
            .field("component", &self.component)
            .field("connections", &self.connections)
            .field("tls", &self.tls)
            .finish()
    }
}

/// The open-port component name of docs/configuration.md: `op-cs1.palisade-example-com` for server `cs1`,
/// gateway `palisade.example.com`, domain `example.com`.
pub fn generated_component_name(server: &str, gateway_name: &str, domain: &str) -> String {
    let gateway_label = gateway_name.split('.').next().unwrap_or(gateway_name);
    format!("op-{server}.{gateway_label}-{}", domain.replace('.', "-"))
}

impl Config {
    /// The profile with id `id`, if it exists.
    pub fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.get(id.index())
    }

    /// The id of the profile named `name` (exact spelling), if one is defined.
    pub fn profile_id(&self, name: &str) -> Option<ProfileId> {
        let index = self.profiles.iter().position(|p| p.name == name)?;
        u16::try_from(index).ok().map(ProfileId)
    }

    /// The server with id `id`, if it exists.
    pub fn server(&self, id: ServerId) -> Option<&ServerConfig> {
        self.servers.get(id.index())
    }

    /// The router whose component name is `name` (JID domains compare case-insensitively).
    pub fn router(&self, name: &str) -> Option<&RouterConfig> {
        self.routers
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }
}

/// A configuration that loaded, with the warnings it raised.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration, valid and ready to compile.
    pub config: Config,
    /// The warnings it raised, sorted by position; a start or reload logs them.
    pub warnings: Vec<Diagnostic>,
}

/// Loads and validates a configuration text; `origin` names it in diagnostics. On failure every
/// problem found is returned (errors and warnings, in file order).
pub fn load_str(text: &str, origin: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let mut diags = diagnostic::Diags::new(origin, text);
    let Some(raw) = load::parse(text, &mut diags) else {
        return Err(diags.into_sorted());
    };
    let config = validate::validate(raw, &mut diags);
    if diags.has_errors() {
        return Err(diags.into_sorted());
    }
    Ok(Loaded {
        config,
        warnings: diags.into_sorted(),
    })
}

/// Loads a configuration from the bytes of a file (`origin` names it in diagnostics): the
/// text must be UTF-8; an invalid byte is reported at its line and column.
pub fn load_bytes(bytes: Vec<u8>, origin: &str) -> Result<Loaded, Vec<Diagnostic>> {
    match String::from_utf8(bytes) {
        Ok(text) => load_str(&text, origin),
        Err(e) => {
            let valid = e
                .as_bytes()
                .get(..e.utf8_error().valid_up_to())
                .unwrap_or_default();
            let prefix = String::from_utf8_lossy(valid);
            let diags = diagnostic::Diags::new(origin, &prefix);
            let (line, col) = diags.position(prefix.len());
            Err(vec![Diagnostic {
                line,
                col,
                ..whole_file(
                    origin,
                    "the configuration file is not valid UTF-8".to_string(),
                )
            }])
        }
    }
}

/// The diagnostic for a configuration file that could not be read at all (`error`: what the
/// operating system said).
pub fn unreadable_file(origin: &str, error: &std::io::Error) -> Vec<Diagnostic> {
    vec![whole_file(
        origin,
        format!("cannot read the configuration file: {error}"),
    )]
}

fn whole_file(origin: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: origin.to_string(),
        line: 0,
        col: 0,
        message,
        hint: None,
    }
}

/// The embedded default configuration (see [`DEFAULT_TOML`]).
pub fn default_config() -> Config {
    match load_str(DEFAULT_TOML, "<embedded default>") {
        Ok(loaded) => loaded.config,
        // The embedded text is a constant checked by a unit test; reaching this is a build bug.
        Err(diags) => panic!("the embedded default configuration is invalid: {diags:?}"),
    }
}

/// What `check-config` prints for a loaded (or refused) configuration, and its exit code.
pub fn check_report(result: Result<Loaded, Vec<Diagnostic>>) -> (String, i32) {
    let mut out = String::new();
    match result {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                out.push_str(&format!("{warning}\n"));
            }
            out.push_str("ok\n");
            (out, 0)
        }
        Err(diags) => {
            for diag in &diags {
                out.push_str(&format!("{diag}\n"));
            }
            let errors = diags.iter().filter(|d| d.is_error()).count();
            let warnings = diags.len() - errors;
            let plural =
                |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            out.push_str(&format!(
                "invalid: {}, {}\n",
                plural(errors, "error"),
                plural(warnings, "warning")
            ));
            (out, 1)
        }
    }
}

#[cfg(test)]
mod tests;
