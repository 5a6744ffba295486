//! Validation of `[[server]]` tables: the compliance servers and their assignment to a profile
//! and to IM nodes.
//!
//! This file owns the server rules: names, the seed's host characters, ports, passwords, modes,
//! profile references, served nodes and component names. It must not judge profiles themselves
//! (profiles.rs does).

use super::diagnostic::{did_you_mean, Diags};
use super::load::{RawServer, Sp};
use super::tls::Dialer;
use super::validate::{check_domain, FirstSeen};
use super::{
    generated_component_name, GatewayConfig, ListenConfig, RouterConfig, ServerConfig, ServerMode,
};
use crate::policy::profile::{Profile, ProfileId, SYSTEM_DEFAULT_PROFILE};

/// What the other sections decided, which server checks refer to.
pub(super) struct Context<'c> {
    pub gateway: &'c GatewayConfig,
    pub listen: &'c ListenConfig,
    pub routers: &'c [RouterConfig],
    pub profiles: &'c [Profile],
}

pub(super) fn servers(raw: &[RawServer], cx: &Context<'_>, d: &mut Diags<'_>) -> Vec<ServerConfig> {
    let mut names = FirstSeen::default();
    let mut components = FirstSeen::default();
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        let (name, duplicate) = server_name(s, &mut names, d);
        if out.len() >= usize::from(u16::MAX) {
            d.error(s.at, format!("too many servers: at most {}", u16::MAX));
            continue;
        }
        let mode = mode(s, &name, cx.listen, d);
        let (host, port) = address(s, &name, mode, d);
        let password = s
            .password
            .as_ref()
            .map_or_else(String::new, |p| p.v.clone());
        if let Some(p) = s.password.as_ref().filter(|p| p.v.is_empty()) {
            d.error(p.at, format!("the password of server `{name}` is empty"));
        }
        let (profile, profile_id) = assigned_profile(s, &name, cx.profiles, d);
        let nodes = served_nodes(s, &name, cx.routers, d);
        let component = match &s.component {
            Some(c) => {
                check_domain(d, "component", c);
                c.v.clone()
            }
            None => generated_component_name(&name, &cx.gateway.name, &cx.gateway.domain),
        };
        let component_at = s
            .component
            .as_ref()
            .or(s.name.as_ref())
            .map_or(s.at, |c| c.at);
        // A duplicate server name already explains a duplicate generated component name.
        let explained = duplicate && s.component.is_none();
        let key = component.to_ascii_lowercase();
        if let Some(line) = components.earlier_line(d, &key, component_at) {
            if !explained {
                let message = format!(
                    "component name `{component}` is already used by the server on line {line}"
                );
                d.error(component_at, message);
            }
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
        let dialed = (mode == ServerMode::Outbound).then(|| Sp {
            v: host.clone(),
            at: s.host.as_ref().map_or(s.at, |h| h.at),
        });
        let tls = super::tls::dial_tls(&s.tls, dialed.as_ref(), Dialer::Server, &name, d);
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
            tls,
        });
    }
    out
}

/// The server's name, checked, and whether it repeats an earlier one.
fn server_name(s: &RawServer, names: &mut FirstSeen, d: &mut Diags<'_>) -> (String, bool) {
    let Some(n) = &s.name else {
        return (String::new(), false);
    };
    if n.v.is_empty() {
        d.error(n.at, "a server name cannot be empty");
    } else if let Some(ch) = n.v.chars().find(|c| !c.is_ascii_alphanumeric()) {
        let message = format!(
            "invalid server name {:?}: use letters and digits only, not {ch:?}",
            n.v
        );
        d.error(n.at, message);
    }
    match names.earlier_line(d, &n.v.to_ascii_lowercase(), n.at) {
        Some(line) => {
            d.error(
                n.at,
                format!("duplicate server `{}` (first defined on line {line})", n.v),
            );
            (n.v.clone(), true)
        }
        None => (n.v.clone(), false),
    }
}

fn mode(s: &RawServer, name: &str, listen: &ListenConfig, d: &mut Diags<'_>) -> ServerMode {
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
    if mode == ServerMode::Inbound && listen.compliance.is_none() && listen.compliance_tls.is_none()
    {
        d.error_hint(
            s.mode.as_ref().map_or(s.at, |m| m.at),
            format!("server `{name}` is inbound but [listen] has no `compliance` address"),
            "add compliance = \"127.0.0.1:5276\" under [listen] for compliance servers to dial",
        );
    }
    mode
}

/// The seed's Hostname/IP Address rule: a-z A-Z 0-9 . \ - _ only.
fn host_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '\\' | '-' | '_')
}

/// Host and port; both are required to dial an outbound server, optional for an inbound one.
fn address(s: &RawServer, name: &str, mode: ServerMode, d: &mut Diags<'_>) -> (String, u16) {
    let dialled = mode == ServerMode::Outbound;
    match &s.host {
        Some(h) => {
            if h.v.is_empty() && dialled {
                d.error(h.at, format!("the host of server `{name}` is empty"));
            } else if let Some(ch) = h.v.chars().find(|&c| !host_char_ok(c)) {
                let hint = if ch == ':' {
                    "put the port in `port`"
                } else {
                    "allowed: a-z A-Z 0-9 . \\ - _"
                };
                let message = format!("invalid host {:?}: character {ch:?} is not allowed", h.v);
                d.error_hint(h.at, message, hint);
            }
        }
        None if dialled && !s.host_written => d.error(
            s.at,
            format!("missing `host` in [[server]] `{name}`: an outbound server is dialled"),
        ),
        None => {}
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
            if dialled && !s.port_written {
                let message =
                    format!("missing `port` in [[server]] `{name}`: an outbound server is dialled");
                d.error(s.at, message);
            }
            0
        }
    };
    (
        s.host.as_ref().map_or_else(String::new, |h| h.v.clone()),
        port,
    )
}

fn assigned_profile(
    s: &RawServer,
    name: &str,
    profiles: &[Profile],
    d: &mut Diags<'_>,
) -> (String, ProfileId) {
    let profile = s
        .profile
        .as_ref()
        .map_or(SYSTEM_DEFAULT_PROFILE, |p| p.v.as_str())
        .to_string();
    let id = match profiles.iter().position(|p| p.name == profile) {
        Some(i) => ProfileId(u16::try_from(i).unwrap_or(0)),
        None => {
            let hint = match did_you_mean(&profile, profiles.iter().map(|p| p.name.as_str())) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("define it with [[profile]] or use {SYSTEM_DEFAULT_PROFILE}"),
            };
            let message = format!("server `{name}` is assigned unknown profile `{profile}`");
            d.error_hint(s.profile.as_ref().map_or(s.at, |p| p.at), message, hint);
            ProfileId::SYSTEM_DEFAULT
        }
    };
    (profile, id)
}

/// The server's `nodes`, warning about any that no router produces events for.
fn served_nodes(
    s: &RawServer,
    name: &str,
    routers: &[RouterConfig],
    d: &mut Diags<'_>,
) -> Vec<String> {
    let known: Vec<&str> = routers.iter().map(|r| r.node.as_str()).collect();
    for n in s.nodes.iter().flatten() {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(&n.v)) {
            let hint = if known.is_empty() {
                "no [[router]] is configured".to_string()
            } else {
                format!("router nodes: {}", known.join(", "))
            };
            let message = format!(
                "server `{name}` serves node `{}`, which no [[router]] has",
                n.v
            );
            d.warning(n.at, message, Some(hint));
        }
    }
    s.nodes.iter().flatten().map(|n| n.v.clone()).collect()
}
