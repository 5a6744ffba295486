//! Turns the located raw configuration into a [`Config`], checking what every value means:
//! names, references, durations, addresses, and the relations between timers.
//!
//! This file owns every semantic rule of the configuration and its message. It reports each
//! problem it finds and carries on with a harmless stand-in value, so one run lists them all;
//! it must not read files or parse TOML (load.rs does).

use super::diagnostic::{did_you_mean, nearest, Diags};
use super::load::{Raw, RawEntry, RawProfile, RawRouter, RawServer, Sp};
use super::{
    generated_component_name, Config, GatewayConfig, Limits, ListenConfig, RouterConfig,
    ServerConfig, ServerMode, Timers,
};
use crate::policy::catalog::{AnswerRule, EventId, EventKind, PacketFilter, CATALOG};
use crate::policy::duration::{format_duration, parse_duration};
use crate::policy::jid::Jid;
use crate::policy::profile::{
    check_profile_name, Entry, Handling, Profile, ProfileId, SYSTEM_DEFAULT_PROFILE,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The seed's caution about bounce with fire-and-forget, verbatim.
pub(crate) const BOUNCE_FORGET_CAUTION: &str =
    "If a combination of Bounce, and Fire and Forget is \
selected, an event to which this applies will be passed to the compliance server and then \
discarded. This means it will not be processed further by IM and Presence Service. Use this \
combination with care.";

const DEFAULT_ROUTER_LISTEN: &str = "127.0.0.1:5275";

pub(super) fn validate(raw: Raw, d: &mut Diags<'_>) -> Option<Config> {
    let gateway = gateway(&raw, d);
    let listen = listen(&raw, d);
    let timers = timers(&raw, d);
    let limits = limits(&raw, d);
    let routers = routers(&raw.routers, d);
    let profiles = profiles(&raw.profiles, d);
    let servers = servers(&raw.servers, &gateway, &listen, &routers, &profiles, d);
    let priority = priority(raw.priority.as_deref(), &profiles, d);
    if raw.routers.is_empty() {
        d.warning(
            0,
            "no [[router]] is configured: no router can connect",
            None,
        );
    }
    if raw.servers.is_empty() {
        d.warning(
            0,
            "no [[server]] is configured: every event passes unchecked",
            None,
        );
    }
    Some(Config {
        gateway,
        listen,
        timers,
        limits,
        routers,
        servers,
        profiles,
        priority,
    })
}

/// Checks a component or host name that must be a bare JID domain.
fn check_domain(d: &mut Diags<'_>, key: &str, value: &Sp<String>) {
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

fn socket_addr(d: &mut Diags<'_>, key: &str, value: &Sp<String>) -> Option<SocketAddr> {
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
        Some(s) => usize::try_from(s.v).unwrap_or(0),
        None => 0,
    };
    let admin = g.admin.as_ref().and_then(|a| socket_addr(d, "admin", a));
    GatewayConfig {
        name,
        domain,
        shards,
        admin,
    }
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
    ListenConfig {
        routers,
        compliance,
    }
}

fn timers(raw: &Raw, d: &mut Diags<'_>) -> Timers {
    let mut t = Timers::default();
    let mut at: HashMap<&str, usize> = HashMap::new();
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
    let mut relation = |a: &str, av: Duration, b: &str, bv: Duration, what: &str, hint: &str| {
        if let Some(&pos) = at.get(a).or_else(|| at.get(b)) {
            let (a_text, b_text) = (format_duration(av), format_duration(bv));
            d.error_hint(
                pos,
                format!("`{a}` ({a_text}) {what} `{b}` ({b_text})"),
                hint,
            );
        }
    };
    if t.event_timeout > t.outage_window {
        relation(
            "event_timeout",
            t.event_timeout,
            "outage_window",
            t.outage_window,
            "is longer than",
            "queued events would outlive the outage window; keep event_timeout <= outage_window",
        );
    }
    if t.reconnect_min > t.reconnect_max {
        relation(
            "reconnect_min",
            t.reconnect_min,
            "reconnect_max",
            t.reconnect_max,
            "is longer than",
            "the backoff starts at reconnect_min and doubles up to reconnect_max",
        );
    }
    if t.keepalive >= t.dead_interval {
        relation(
            "keepalive",
            t.keepalive,
            "dead_interval",
            t.dead_interval,
            "is not shorter than",
            "a quiet but healthy stream would be declared dead; keep keepalive < dead_interval",
        );
    }
    t
}

fn limits(raw: &Raw, d: &mut Diags<'_>) -> Limits {
    let mut l = Limits::default();
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
            _ => &mut l.max_in_flight,
        };
        *slot = n;
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
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut nodes: HashMap<String, (usize, String)> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let name = r.name.as_ref().map_or_else(String::new, |n| n.v.clone());
        if let Some(n) = &r.name {
            check_domain(d, "name", n);
            if let Some(&first) = names.get(&n.v.to_ascii_lowercase()) {
                let line = d.position(first).0;
                d.error(
                    n.at,
                    format!("duplicate router `{}` (first defined on line {line})", n.v),
                );
            } else {
                names.insert(n.v.to_ascii_lowercase(), n.at);
            }
        }
        let secret = r.secret.as_ref().map_or_else(String::new, |s| s.v.clone());
        if let Some(s) = r.secret.as_ref().filter(|s| s.v.is_empty()) {
            d.error(s.at, format!("the secret of router `{name}` is empty"));
        }
        let node = match &r.node {
            Some(n) => {
                if !valid_node(&n.v) {
                    d.error(
                        n.at,
                        format!(
                            "invalid node {:?}: use letters, digits, '-', '_' and '.'",
                            n.v
                        ),
                    );
                }
                n.v.clone()
            }
            None => name.split('.').next().unwrap_or_default().to_string(),
        };
        let node_at = r.node.as_ref().or(r.name.as_ref()).map_or(r.at, |s| s.at);
        if !node.is_empty() {
            if let Some((first, other)) = nodes.get(&node.to_ascii_lowercase()) {
                let line = d.position(*first).0;
                d.error_hint(
                    node_at,
                    format!("node `{node}` is already used by router `{other}` (line {line})"),
                    "each [[router]] is one IM node; set a distinct `node`",
                );
            } else {
                nodes.insert(node.to_ascii_lowercase(), (node_at, name.clone()));
            }
        }
        let connect = r.connect.as_ref().map(|c| {
            check_connect(d, c);
            c.v.clone()
        });
        out.push(RouterConfig {
            name,
            secret,
            node,
            connect,
        });
    }
    out
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

fn profiles(raw: &[RawProfile], d: &mut Diags<'_>) -> Vec<Profile> {
    let mut out = vec![Profile::system_default()];
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for p in raw {
        let Some(name) = &p.name else { continue };
        if name.v.eq_ignore_ascii_case(SYSTEM_DEFAULT_PROFILE) {
            d.error_hint(
                name.at,
                format!("`{SYSTEM_DEFAULT_PROFILE}` is built in and cannot be redefined"),
                format!("choose another name; assign the built-in one with profile = \"{SYSTEM_DEFAULT_PROFILE}\""),
            );
            continue;
        }
        if let Err(e) = check_profile_name(&name.v) {
            d.error(name.at, format!("invalid profile name {:?}: {e}", name.v));
        }
        if let Some(&first) = seen.get(name.v.as_str()) {
            let line = d.position(first).0;
            d.error(
                name.at,
                format!(
                    "duplicate profile `{}` (first defined on line {line})",
                    name.v
                ),
            );
        } else {
            seen.insert(&name.v, name.at);
        }
        if out.len() > usize::from(u16::MAX) {
            d.error(name.at, format!("too many profiles: at most {}", u16::MAX));
            continue;
        }
        let entries = entries(&name.v, &p.events, d);
        if p.events.is_empty() {
            d.warning(
                name.at,
                format!("profile `{}` has no events: it matches nothing", name.v),
                None,
            );
        }
        let description = p
            .description
            .as_ref()
            .map_or_else(String::new, |s| s.v.clone());
        out.push(Profile {
            name: name.v.clone(),
            description,
            entries,
        });
    }
    out
}

fn entries(profile: &str, raw: &[RawEntry], d: &mut Diags<'_>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::with_capacity(raw.len());
    let mut seen: HashMap<(EventId, PacketFilter), usize> = HashMap::new();
    for e in raw {
        let Some(event_sp) = &e.event else { continue };
        let Some(event) = EventId::lookup(event_sp.v.as_bytes()) else {
            let close = nearest(&event_sp.v, CATALOG.iter().map(|s| s.name)).unwrap_or("es_OUT");
            d.error_hint(
                event_sp.at,
                format!("unknown event `{}`", event_sp.v),
                format!("did you mean `{close}`? (`palisade events` lists every event)"),
            );
            continue;
        };
        let packet = match (&e.packet, event.kind()) {
            (None, _) => PacketFilter::All,
            (Some(p), EventKind::Tc) => {
                d.error_hint(
                    p.at,
                    format!("`packet` applies to JSM events only; `{event}` is a TC event"),
                    "remove `packet` from this entry",
                );
                PacketFilter::All
            }
            (Some(p), EventKind::Jsm) => PacketFilter::parse(&p.v).unwrap_or_else(|| {
                let mut hint = format!("expected one of {}", PacketFilter::NAMES.join(", "));
                if let Some(close) = did_you_mean(&p.v, PacketFilter::NAMES) {
                    hint.push_str(&format!("; did you mean `{close}`?"));
                }
                d.error_hint(p.at, format!("unknown packet type {:?}", p.v), hint);
                PacketFilter::All
            }),
        };
        let handling = match &e.handling {
            None => Handling::Bounce,
            Some(h) => Handling::parse(&h.v).unwrap_or_else(|| {
                d.error_hint(
                    h.at,
                    format!("unknown handling {:?}", h.v),
                    "expected bounce or pass",
                );
                Handling::Bounce
            }),
        };
        let fire_and_forget = e.fire_and_forget.as_ref().is_some_and(|f| f.v);
        let entry = Entry::new(event, packet, handling, fire_and_forget);
        if let Some(&first) = seen.get(&(event, packet)) {
            let line = d.position(first).0;
            d.error(
                event_sp.at,
                format!("`{event}` for packet `{packet}` is already in profile `{profile}` (line {line})"),
            );
            continue;
        }
        seen.insert((event, packet), event_sp.at);
        let explicit_handling = e.handling.is_some();
        if event.answer() == AnswerRule::NotifyOnly {
            let contradicts = (explicit_handling && handling == Handling::Bounce)
                || e.fire_and_forget.as_ref().is_some_and(|f| !f.v);
            if contradicts {
                d.warning(
                    event_sp.at,
                    format!("`{event}` is a notification only: it is always sent fire-and-forget and always passes"),
                    Some("its handling and fire_and_forget settings are ignored".to_string()),
                );
            }
        } else if entry.drops_event() {
            let at = e.fire_and_forget.as_ref().map_or(e.at, |f| f.at);
            d.warning(
                at,
                format!("`{event}` in profile `{profile}` combines bounce with fire-and-forget: {BOUNCE_FORGET_CAUTION}"),
                Some("every such event is dropped after the notification; use handling = \"pass\" to let it through".to_string()),
            );
        }
        out.push(entry);
    }
    out
}

fn host_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '\\' | '-' | '_')
}

fn servers(
    raw: &[RawServer],
    gateway: &GatewayConfig,
    listen: &ListenConfig,
    routers: &[RouterConfig],
    profiles: &[Profile],
    d: &mut Diags<'_>,
) -> Vec<ServerConfig> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut components: HashMap<String, (usize, String)> = HashMap::new();
    let router_nodes: Vec<&str> = routers.iter().map(|r| r.node.as_str()).collect();
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let name = s.name.as_ref().map_or_else(String::new, |n| n.v.clone());
        let name_at = s.name.as_ref().map_or(s.at, |n| n.at);
        if let Some(n) = &s.name {
            if let Some(ch) =
                n.v.chars()
                    .find(|c| !c.is_ascii_alphanumeric())
                    .or(n.v.is_empty().then_some(' '))
            {
                d.error(
                    n.at,
                    format!(
                        "invalid server name {:?}: use letters and digits only, not {ch:?}",
                        n.v
                    ),
                );
            }
            if let Some(&first) = names.get(&n.v.to_ascii_lowercase()) {
                let line = d.position(first).0;
                d.error(
                    n.at,
                    format!("duplicate server `{}` (first defined on line {line})", n.v),
                );
            } else {
                names.insert(n.v.to_ascii_lowercase(), n.at);
            }
        }
        if out.len() >= usize::from(u16::MAX) {
            d.error(name_at, format!("too many servers: at most {}", u16::MAX));
            continue;
        }
        let mode = match &s.mode {
            None => ServerMode::Outbound,
            Some(m) => ServerMode::parse(&m.v).unwrap_or_else(|| {
                d.error_hint(
                    m.at,
                    format!("unknown mode {:?}", m.v),
                    "expected outbound or inbound",
                );
                ServerMode::Outbound
            }),
        };
        if mode == ServerMode::Inbound && listen.compliance.is_none() {
            let at = s.mode.as_ref().map_or(s.at, |m| m.at);
            d.error_hint(
                at,
                format!("server `{name}` is inbound but [listen] has no `compliance` address"),
                "add compliance = \"127.0.0.1:5276\" under [listen] for compliance servers to dial",
            );
        }
        let host = s.host.as_ref().map_or_else(String::new, |h| h.v.clone());
        if let Some(h) = &s.host {
            if let Some(ch) =
                h.v.chars()
                    .find(|&c| !host_char_ok(c))
                    .or(h.v.is_empty().then_some(' '))
            {
                let hint = if ch == ':' {
                    "put the port in `port`"
                } else {
                    "allowed: a-z A-Z 0-9 . \\ - _"
                };
                d.error_hint(
                    h.at,
                    format!("invalid host {:?}: character {ch:?} is not allowed", h.v),
                    hint,
                );
            }
        } else if mode == ServerMode::Outbound {
            d.error(
                s.at,
                format!("missing `host` in [[server]] `{name}`: an outbound server is dialled"),
            );
        }
        let port = match &s.port {
            Some(p) => u16::try_from(p.v)
                .ok()
                .filter(|&p| p > 0)
                .unwrap_or_else(|| {
                    d.error(p.at, "`port` must be between 1 and 65535");
                    0
                }),
            None => {
                if mode == ServerMode::Outbound {
                    d.error(
                        s.at,
                        format!(
                            "missing `port` in [[server]] `{name}`: an outbound server is dialled"
                        ),
                    );
                }
                0
            }
        };
        let password = s
            .password
            .as_ref()
            .map_or_else(String::new, |p| p.v.clone());
        if let Some(p) = s.password.as_ref().filter(|p| p.v.is_empty()) {
            d.error(p.at, format!("the password of server `{name}` is empty"));
        }
        let profile = s
            .profile
            .as_ref()
            .map_or(SYSTEM_DEFAULT_PROFILE, |p| p.v.as_str())
            .to_string();
        let profile_id = match profiles.iter().position(|p| p.name == profile) {
            Some(i) => ProfileId(u16::try_from(i).unwrap_or(0)),
            None => {
                let at = s.profile.as_ref().map_or(s.at, |p| p.at);
                let hint = match did_you_mean(&profile, profiles.iter().map(|p| p.name.as_str())) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => "define it with [[profile]] or use SystemDefaultComplianceProfile"
                        .to_string(),
                };
                d.error_hint(
                    at,
                    format!("server `{name}` is assigned unknown profile `{profile}`"),
                    hint,
                );
                ProfileId::SYSTEM_DEFAULT
            }
        };
        let nodes: Vec<String> = s.nodes.iter().flatten().map(|n| n.v.clone()).collect();
        for n in s.nodes.iter().flatten() {
            if !router_nodes.iter().any(|r| r.eq_ignore_ascii_case(&n.v)) {
                let hint = if router_nodes.is_empty() {
                    "no [[router]] is configured".to_string()
                } else {
                    format!("router nodes: {}", router_nodes.join(", "))
                };
                d.warning(
                    n.at,
                    format!(
                        "server `{name}` serves node `{}`, which no [[router]] has",
                        n.v
                    ),
                    Some(hint),
                );
            }
        }
        let component = match &s.component {
            Some(c) => {
                check_domain(d, "component", c);
                c.v.clone()
            }
            None => generated_component_name(&name, &gateway.name, &gateway.domain),
        };
        let component_at = s.component.as_ref().map_or(name_at, |c| c.at);
        if let Some((first, other)) = components.get(&component.to_ascii_lowercase()) {
            let line = d.position(*first).0;
            d.error(component_at, format!("component name `{component}` is already used by server `{other}` (line {line})"));
        } else {
            components.insert(component.to_ascii_lowercase(), (component_at, name.clone()));
        }
        let connections = s.connections.as_ref().map(|c| {
            usize::try_from(c.v)
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| {
                    d.error(c.at, "`connections` must be greater than zero");
                    1
                })
        });
        out.push(ServerConfig {
            name,
            host,
            port,
            password,
            mode,
            profile,
            profile_id,
            nodes,
            component,
            connections,
        });
    }
    out
}

fn priority(raw: Option<&[Sp<String>]>, profiles: &[Profile], d: &mut Diags<'_>) -> Vec<ProfileId> {
    let id = |i: usize| ProfileId(u16::try_from(i).unwrap_or(0));
    let mut order: Vec<ProfileId> = Vec::with_capacity(profiles.len());
    let mut listed_at: HashMap<usize, usize> = HashMap::new();
    for item in raw.unwrap_or_default() {
        let Some(index) = profiles.iter().position(|p| p.name == item.v) else {
            let hint = match did_you_mean(&item.v, profiles.iter().map(|p| p.name.as_str())) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "list profiles defined with [[profile]], or SystemDefaultComplianceProfile"
                    .to_string(),
            };
            d.error_hint(
                item.at,
                format!("routing priority names unknown profile `{}`", item.v),
                hint,
            );
            continue;
        };
        if let Some(&first) = listed_at.get(&index) {
            let line = d.position(first).0;
            d.error(
                item.at,
                format!(
                    "profile `{}` is listed twice in the routing priority (first on line {line})",
                    item.v
                ),
            );
            continue;
        }
        listed_at.insert(index, item.at);
        order.push(id(index));
    }
    // Profiles the list leaves out keep their definition order after the listed ones.
    for index in 0..profiles.len() {
        if !listed_at.contains_key(&index) {
            order.push(id(index));
        }
    }
    order
}
