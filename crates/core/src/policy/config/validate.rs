//! Turns the located raw configuration into a [`Config`], checking what every value means:
//! names, references, durations, addresses, and the relations between timers.
//!
//! This file owns the rules for the gateway, listeners, timers, limits and routers, and calls
//! profiles.rs and servers.rs for the rest. Every check reports its problem and carries on with
//! a harmless stand-in value, so one run lists them all; nothing here reads files or parses
//! TOML (load.rs does).

use super::diagnostic::Diags;
use super::load::{Raw, RawRouter, Sp};
use super::profiles::{priority, profiles};
use super::servers::{servers, Context};
use super::tls::Dialer;
use super::{AcceptMode, LogConfig, LogFormat, LogLevel, MAX_SHARDS};
use super::{Config, GatewayConfig, Limits, ListenConfig, RouterConfig, Timers};
use crate::policy::duration::{format_duration, parse_duration};
use crate::policy::jid::Jid;
use crate::policy::DetHashMap;
use std::net::SocketAddr;
use std::time::Duration;

const DEFAULT_ROUTER_LISTEN: &str = "127.0.0.1:5275";

pub(super) fn validate(raw: Raw, d: &mut Diags<'_>) -> Config {
    let gateway = gateway(&raw, d);
    let listen = listen(&raw, d);
    let timers = timers(&raw, d);
    let limits = limits(&raw, d);
    let tls = super::tls::listener_tls(raw.tls.as_ref(), &raw.listen, d);
    let spool = spool(&raw, d);
    let log = log(&raw, d);
    let routers = routers(&raw.routers, d);
    let profiles = profiles(&raw.profiles, d);
    let cx = Context {
        gateway: &gateway,
        listen: &listen,
        routers: &routers,
        profiles: &profiles,
    };
    let servers = servers(&raw.servers, &cx, d);
    let priority = priority(raw.priority.as_deref(), &profiles, d);
    if !raw.router_written {
        d.file_warning("no [[router]] is configured: no router can connect");
    }
    if !raw.server_written {
        d.file_warning("no [[server]] is configured: every event passes unchecked");
    }
    Config {
        gateway,
        listen,
        timers,
        limits,
        tls,
        spool,
        log,
        routers,
        servers,
        profiles,
        priority,
    }
}

/// The smallest spool worth having: a few segments of the smallest size.
const MIN_SPOOL_BYTES: i64 = 1 << 20;

fn spool(raw: &Raw, d: &mut Diags<'_>) -> super::SpoolConfig {
    let mut s = super::SpoolConfig::default();
    if let Some(dir) = &raw.spool_dir {
        if dir.v.is_empty() {
            d.error(dir.at, "`dir` must name a directory".to_owned());
        } else {
            s.dir = Some(std::path::PathBuf::from(&dir.v));
        }
    }
    if let Some(max) = &raw.spool_max_bytes {
        match u64::try_from(max.v) {
            Ok(n) if max.v >= MIN_SPOOL_BYTES => s.max_bytes = n,
            _ => d.error_hint(
                max.at,
                format!("`max_bytes` ({}) is below 1 MiB", max.v),
                "write e.g. 1073741824 (1 GiB, the default)",
            ),
        }
    }
    s
}

/// Checks a component or host name that must be a bare JID domain.
pub(super) fn check_domain(d: &mut Diags<'_>, key: &str, value: &Sp<String>) {
    match Jid::parse(&value.v) {
        Ok(jid) if jid.is_domain() => {}
        Ok(_) => d.error_hint(
            value.at,
            format!("`{key}` must be a bare domain, not a JID with '@' or '/'"),
            "write e.g. \"palisade.example.com\"",
        ),
        Err(e) => d.error(value.at, format!("`{key}` is not a valid domain: {e}")),
    }
}

pub(super) fn socket_addr(d: &mut Diags<'_>, key: &str, value: &Sp<String>) -> Option<SocketAddr> {
    match value.v.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            d.error_hint(
                value.at,
                format!("`{key}` is not an IP:port address: {:?}", value.v),
                "write e.g. \"127.0.0.1:5275\" or \"[::1]:5275\" (an IP address, not a host name)",
            );
            None
        }
    }
}

fn gateway(raw: &Raw, d: &mut Diags<'_>) -> GatewayConfig {
    let g = &raw.gateway;
    let name = match &g.name {
        Some(name) => {
            check_domain(d, "name", name);
            name.v.clone()
        }
        None => {
            d.error_hint(
                g.at.unwrap_or(0),
                "missing `name` in [gateway]",
                "add [gateway] name = \"palisade.example.com\": the gateway's component name",
            );
            String::new()
        }
    };
    let domain = match (&g.domain, &g.name) {
        (Some(domain), _) => {
            check_domain(d, "domain", domain);
            domain.v.clone()
        }
        (None, Some(name_sp)) => match name.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => rest.to_string(),
            _ => {
                d.error_hint(
                    name_sp.at,
                    format!("cannot derive `domain` from `name` {name:?}: it has a single label"),
                    "set `domain` in [gateway]",
                );
                String::new()
            }
        },
        (None, None) => String::new(),
    };
    let shards = match &g.shards {
        Some(s) if s.v < 0 => {
            d.error_hint(
                s.at,
                "`shards` cannot be negative",
                "0 means one shard per core",
            );
            0
        }
        Some(s) if s.v > MAX_SHARDS as i64 => {
            d.error_hint(
                s.at,
                format!(
                    "`shards` is {}, more than the maximum of {MAX_SHARDS}: each shard is an \
                     executor with its own thread and io_uring rings in locked memory, and the \
                     shards talk over a mesh of shards² channels",
                    s.v
                ),
                "one shard per core is the most that helps; 0 means exactly that",
            );
            0
        }
        Some(s) => usize::try_from(s.v).unwrap_or(0),
        None => 0,
    };
    let admin = g.admin.as_ref().and_then(|a| socket_addr(d, "admin", a));
    let accept = match g.accept.as_ref().map(|a| (a, a.v.as_str())) {
        None | Some((_, "handoff")) => AcceptMode::Handoff,
        Some((_, "reuseport")) => AcceptMode::ReusePort,
        Some((a, other)) => {
            d.error_hint(
                a.at,
                format!("unknown accept mode {other:?}"),
                "use \"handoff\" (one acceptor, connections spread in turn) or \"reuseport\"",
            );
            AcceptMode::Handoff
        }
    };
    GatewayConfig {
        name,
        domain,
        shards,
        admin,
        accept,
        share_ports: g.share_ports.as_ref().is_some_and(|s| s.v),
    }
}

fn log(raw: &Raw, d: &mut Diags<'_>) -> LogConfig {
    let level = match &raw.log.level {
        None => LogLevel::default(),
        Some(l) => LogLevel::parse(&l.v).unwrap_or_else(|| {
            d.error_hint(
                l.at,
                format!("unknown log level {:?}", l.v),
                "use \"error\", \"warn\", \"info\", \"debug\" or \"trace\"",
            );
            LogLevel::default()
        }),
    };
    let format = match &raw.log.format {
        None => LogFormat::default(),
        Some(f) => LogFormat::parse(&f.v).unwrap_or_else(|| {
            d.error_hint(
                f.at,
                format!("unknown log format {:?}", f.v),
                "use \"text\" (one line per record) or \"json\" (one object per line)",
            );
            LogFormat::default()
        }),
    };
    LogConfig { level, format }
}

fn listen(raw: &Raw, d: &mut Diags<'_>) -> ListenConfig {
    let fallback = SocketAddr::from(([127, 0, 0, 1], 5275));
    let routers = match &raw.listen.routers {
        Some(r) => socket_addr(d, "routers", r).unwrap_or(fallback),
        None => DEFAULT_ROUTER_LISTEN.parse().unwrap_or(fallback),
    };
    let compliance = raw
        .listen
        .compliance
        .as_ref()
        .and_then(|c| socket_addr(d, "compliance", c));
    let tls_addr = |key: &str, value: &Option<Sp<String>>, d: &mut Diags<'_>| {
        value.as_ref().and_then(|v| socket_addr(d, key, v))
    };
    ListenConfig {
        routers,
        compliance,
        routers_tls: tls_addr("routers_tls", &raw.listen.routers_tls, d),
        compliance_tls: tls_addr("compliance_tls", &raw.listen.compliance_tls, d),
    }
}

fn timers(raw: &Raw, d: &mut Diags<'_>) -> Timers {
    let mut t = Timers::default();
    let mut at: DetHashMap<&str, usize> = DetHashMap::default();
    for (key, value) in &raw.timers {
        let parsed = match parse_duration(&value.v) {
            Ok(v) if v.is_zero() => {
                d.error(value.at, format!("`{key}` must be greater than zero"));
                continue;
            }
            Ok(v) => v,
            Err(e) => {
                d.push(
                    super::Severity::Error,
                    value.at,
                    format!("`{key}`: {e}"),
                    e.hint(),
                );
                continue;
            }
        };
        at.insert(key, value.at);
        let slot = match *key {
            "event_timeout" => &mut t.event_timeout,
            "outage_window" => &mut t.outage_window,
            "reconnect_min" => &mut t.reconnect_min,
            "reconnect_max" => &mut t.reconnect_max,
            "keepalive" => &mut t.keepalive,
            "dead_interval" => &mut t.dead_interval,
            "handshake_timeout" => &mut t.handshake_timeout,
            _ => &mut t.stanza_timeout,
        };
        *slot = parsed;
    }
    // Each relation is reported at the first of its two keys that the file sets.
    let mut relation = |severity: super::Severity,
                        (a, av): (&str, Duration),
                        (b, bv): (&str, Duration),
                        what: &str,
                        hint: &str| {
        if let Some(&pos) = at.get(a).or_else(|| at.get(b)) {
            let (a_text, b_text) = (format_duration(av), format_duration(bv));
            let message = format!("`{a}` ({a_text}) {what} `{b}` ({b_text})");
            match severity {
                super::Severity::Error => d.error_hint(pos, message, hint),
                super::Severity::Warning => d.warning(pos, message, Some(hint.to_owned())),
            }
        }
    };
    // Valid, if unusual: an event queued for a server in an outage then fails when the window
    // closes (as its handling says), before its own timer would have ended it.
    if t.event_timeout > t.outage_window {
        relation(
            super::Severity::Warning,
            ("event_timeout", t.event_timeout),
            ("outage_window", t.outage_window),
            "is longer than",
            "events queued for a server in an outage end when the window closes, before their \
             event_timeout",
        );
    }
    if t.reconnect_min > t.reconnect_max {
        relation(
            super::Severity::Error,
            ("reconnect_min", t.reconnect_min),
            ("reconnect_max", t.reconnect_max),
            "is longer than",
            "the backoff starts at reconnect_min and doubles up to reconnect_max",
        );
    }
    if t.keepalive >= t.dead_interval {
        relation(
            super::Severity::Error,
            ("keepalive", t.keepalive),
            ("dead_interval", t.dead_interval),
            "is not shorter than",
            "a quiet but healthy stream would be declared dead; keep keepalive < dead_interval",
        );
    }
    t
}

fn limits(raw: &Raw, d: &mut Diags<'_>) -> Limits {
    let mut l = Limits::default();
    let mut unauthenticated_at = None;
    for (key, value) in &raw.limits {
        let Some(n) = usize::try_from(value.v).ok().filter(|&n| n > 0) else {
            d.error(value.at, format!("`{key}` must be greater than zero"));
            continue;
        };
        let slot = match *key {
            "max_stanza_bytes" => &mut l.max_stanza_bytes,
            "max_depth" => &mut l.max_depth,
            "max_attributes" => &mut l.max_attributes,
            "queue_per_server" => &mut l.queue_per_server,
            "stream_buffer_bytes" => &mut l.stream_buffer_bytes,
            "max_connections" => &mut l.max_connections,
            "max_unauthenticated" => {
                unauthenticated_at = Some(value.at);
                &mut l.max_unauthenticated
            }
            _ => &mut l.max_in_flight,
        };
        *slot = n;
    }
    match unauthenticated_at {
        // Unset, it follows max_connections: a quarter of it.
        None => l.max_unauthenticated = (l.max_connections / 4).max(1),
        Some(at) if l.max_unauthenticated > l.max_connections => d.error_hint(
            at,
            format!(
                "`max_unauthenticated` ({}) is larger than `max_connections` ({})",
                l.max_unauthenticated, l.max_connections
            ),
            "connections still in their handshake count toward max_connections too; keep \
             max_unauthenticated <= max_connections",
        ),
        Some(_) => {}
    }
    l
}

fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn routers(raw: &[RawRouter], d: &mut Diags<'_>) -> Vec<RouterConfig> {
    let mut names = FirstSeen::default();
    let mut nodes = FirstSeen::default();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let name = r.name.as_ref().map_or_else(String::new, |n| n.v.clone());
        let mut duplicate = false;
        if let Some(n) = &r.name {
            check_domain(d, "name", n);
            if let Some(line) = names.earlier_line(d, &n.v.to_ascii_lowercase(), n.at) {
                duplicate = true;
                d.error(
                    n.at,
                    format!("duplicate router `{}` (first defined on line {line})", n.v),
                );
            }
        }
        let secret = r.secret.as_ref().map_or_else(String::new, |s| s.v.clone());
        if let Some(s) = r.secret.as_ref().filter(|s| s.v.is_empty()) {
            d.error(s.at, format!("the secret of router `{name}` is empty"));
        }
        let node = match &r.node {
            Some(n) => {
                if !valid_node(&n.v) {
                    let message = format!(
                        "invalid node {:?}: use letters, digits, '-', '_' and '.'",
                        n.v
                    );
                    d.error(n.at, message);
                }
                n.v.clone()
            }
            None => name.split('.').next().unwrap_or_default().to_string(),
        };
        let node_at = r.node.as_ref().or(r.name.as_ref()).map_or(r.at, |s| s.at);
        // A duplicate name already explains a duplicate default node.
        let explained = duplicate && r.node.is_none();
        if !node.is_empty() && !explained {
            if let Some(line) = nodes.earlier_line(d, &node.to_ascii_lowercase(), node_at) {
                d.error_hint(
                    node_at,
                    format!("node `{node}` is already used by the router on line {line}"),
                    "each [[router]] is one IM node; set a distinct `node`",
                );
            }
        }
        let connect = r.connect.as_ref().map(|c| {
            check_connect(d, c);
            c.v.clone()
        });
        let host = r.connect.as_ref().map(|c| Sp {
            v: connect_host(&c.v).to_string(),
            at: c.at,
        });
        let tls = super::tls::dial_tls(&r.tls, host.as_ref(), Dialer::Router, &name, d);
        out.push(RouterConfig {
            name,
            secret,
            node,
            connect,
            tls,
        });
    }
    out
}

/// The host part of a `connect` address (brackets of an IPv6 address removed).
fn connect_host(connect: &str) -> &str {
    let host = connect.rsplit_once(':').map_or(connect, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn check_connect(d: &mut Diags<'_>, c: &Sp<String>) {
    let ok = c.v.rsplit_once(':').is_some_and(|(host, port)| {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let host_ok =
            !host.is_empty() && (host.parse::<std::net::IpAddr>().is_ok() || valid_node(host));
        host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    if !ok {
        d.error_hint(
            c.at,
            format!("`connect` must be host:port, found {:?}", c.v),
            "write e.g. connect = \"127.0.0.1:5347\" (the XMPP server's component port)",
        );
    }
}

/// Remembers where each name was first defined, so a later duplicate can say which line.
#[derive(Default)]
pub(super) struct FirstSeen {
    at: DetHashMap<String, usize>,
}

impl FirstSeen {
    /// The line of the earlier definition when `key` was seen before; otherwise records `at`.
    pub(super) fn earlier_line(&mut self, d: &Diags<'_>, key: &str, at: usize) -> Option<usize> {
        match self.at.get(key) {
            Some(&first) => Some(d.position(first).0),
            None => {
                self.at.insert(key.to_string(), at);
                None
            }
        }
    }
}
