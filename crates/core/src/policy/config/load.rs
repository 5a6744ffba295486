//! Reads the TOML text into a raw, fully located form: every value keeps the byte offset it came
//! from, so that validation can point at it.
//!
//! This file owns syntax and shape: TOML errors, unknown keys, wrong types, missing required keys.
//! It must not judge values (names, durations, addresses, references): validate.rs does, so that
//! one run reports every problem. It parses with `toml_edit` (the parser under the `toml` crate)
//! rather than serde derive, because serde stops at the first error and loses key positions.

use super::diagnostic::{did_you_mean, Diags, Severity};
use toml_edit::{ImDocument, Item, TableLike, Value};

/// A value and the byte offset where it starts in the source.
#[derive(Clone, Debug)]
pub(super) struct Sp<T> {
    pub v: T,
    pub at: usize,
}

#[derive(Default, Debug)]
pub(super) struct RawGateway {
    /// Where `[gateway]` starts, when there is one.
    pub at: Option<usize>,
    pub name: Option<Sp<String>>,
    pub domain: Option<Sp<String>>,
    pub shards: Option<Sp<i64>>,
    pub admin: Option<Sp<String>>,
    pub accept: Option<Sp<String>>,
    pub share_ports: Option<Sp<bool>>,
}

#[derive(Default, Debug)]
pub(super) struct RawListen {
    pub routers: Option<Sp<String>>,
    pub compliance: Option<Sp<String>>,
    pub routers_tls: Option<Sp<String>>,
    pub compliance_tls: Option<Sp<String>>,
}

/// `[tls]`: the gateway's own certificate for its TLS listeners.
#[derive(Debug)]
pub(super) struct RawTls {
    pub at: usize,
    pub cert: Option<Sp<String>>,
    pub key: Option<Sp<String>>,
    pub client_ca: Option<Sp<String>>,
}

/// The TLS keys of a dial (`[[server]]`, or `[[router]]` with `connect`).
#[derive(Default, Debug)]
pub(super) struct RawDialTls {
    pub tls: Option<Sp<bool>>,
    pub ca: Option<Sp<String>>,
    pub tls_name: Option<Sp<String>>,
    pub client_cert: Option<Sp<String>>,
    pub client_key: Option<Sp<String>>,
}

#[derive(Default, Debug)]
pub(super) struct RawLog {
    pub level: Option<Sp<String>>,
    pub format: Option<Sp<String>>,
}

#[derive(Debug)]
pub(super) struct RawRouter {
    pub at: usize,
    pub name: Option<Sp<String>>,
    pub secret: Option<Sp<String>>,
    pub node: Option<Sp<String>>,
    pub connect: Option<Sp<String>>,
    pub tls: RawDialTls,
}

#[derive(Debug)]
pub(super) struct RawServer {
    pub at: usize,
    pub name: Option<Sp<String>>,
    pub host: Option<Sp<String>>,
    pub port: Option<Sp<i64>>,
    pub password: Option<Sp<String>>,
    pub mode: Option<Sp<String>>,
    pub profile: Option<Sp<String>>,
    pub nodes: Option<Vec<Sp<String>>>,
    pub component: Option<Sp<String>>,
    pub connections: Option<Sp<i64>>,
    pub tls: RawDialTls,
    /// Whether `host` / `port` are written at all (a mistyped one is reported as such, not as
    /// missing).
    pub host_written: bool,
    pub port_written: bool,
}

#[derive(Debug)]
pub(super) struct RawEntry {
    pub at: usize,
    pub event: Option<Sp<String>>,
    pub packet: Option<Sp<String>>,
    pub handling: Option<Sp<String>>,
    pub fire_and_forget: Option<Sp<bool>>,
}

#[derive(Debug)]
pub(super) struct RawProfile {
    /// How many entries `events` holds as written, readable or not.
    pub events_written: usize,
    pub name: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub events: Vec<RawEntry>,
}

#[derive(Default, Debug)]
pub(super) struct Raw {
    pub gateway: RawGateway,
    pub listen: RawListen,
    pub tls: Option<RawTls>,
    /// The `[timers]` keys present, as written.
    pub timers: Vec<(&'static str, Sp<String>)>,
    /// The `[limits]` keys present, as written.
    pub limits: Vec<(&'static str, Sp<i64>)>,
    /// `[spool]` as written.
    pub spool_dir: Option<Sp<String>>,
    pub spool_max_bytes: Option<Sp<i64>>,
    pub log: RawLog,
    pub routers: Vec<RawRouter>,
    pub servers: Vec<RawServer>,
    pub profiles: Vec<RawProfile>,
    pub priority: Option<Vec<Sp<String>>>,
    /// Whether `router` / `server` appear at all (a mistyped section is not "no section").
    pub router_written: bool,
    pub server_written: bool,
}

pub(super) const TIMER_KEYS: [&str; 8] = [
    "event_timeout",
    "outage_window",
    "reconnect_min",
    "reconnect_max",
    "keepalive",
    "dead_interval",
    "handshake_timeout",
    "stanza_timeout",
];

pub(super) const LIMIT_KEYS: [&str; 8] = [
    "max_stanza_bytes",
    "max_depth",
    "max_attributes",
    "queue_per_server",
    "max_in_flight",
    "stream_buffer_bytes",
    "max_connections",
    "max_unauthenticated",
];

const TOP_KEYS: [&str; 11] = [
    "gateway", "listen", "timers", "limits", "log", "router", "server", "profile", "routing",
    "tls", "spool",
];
const SPOOL_KEYS: [&str; 2] = ["dir", "max_bytes"];
const GATEWAY_KEYS: [&str; 6] = ["name", "domain", "shards", "admin", "accept", "share_ports"];
const LISTEN_KEYS: [&str; 4] = ["routers", "compliance", "routers_tls", "compliance_tls"];
const TLS_KEYS: [&str; 3] = ["cert", "key", "client_ca"];
const ROUTER_KEYS: [&str; 9] = [
    "name",
    "secret",
    "node",
    "connect",
    "tls",
    "ca",
    "tls_name",
    "client_cert",
    "client_key",
];
const SERVER_KEYS: [&str; 14] = [
    "name",
    "host",
    "port",
    "password",
    "mode",
    "profile",
    "nodes",
    "component",
    "connections",
    "tls",
    "ca",
    "tls_name",
    "client_cert",
    "client_key",
];
const PROFILE_KEYS: [&str; 3] = ["name", "description", "events"];
const ENTRY_KEYS: [&str; 4] = ["event", "packet", "handling", "fire_and_forget"];
const LOG_KEYS: [&str; 2] = ["level", "format"];
const ROUTING_KEYS: [&str; 1] = ["priority"];

/// Parses `text`; `None` only when the TOML itself is malformed (reported), since nothing
/// useful can be said about the rest then.
pub(super) fn parse(text: &str, d: &mut Diags<'_>) -> Option<Raw> {
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            // toml_edit puts the problem on the first line and what it expected after it.
            let mut lines = e.message().lines().map(str::trim).filter(|l| !l.is_empty());
            let message = lines.next().unwrap_or("malformed TOML");
            let rest: Vec<&str> = lines.collect();
            let hint = (!rest.is_empty()).then(|| rest.join("; "));
            d.push(Severity::Error, at, format!("TOML syntax: {message}"), hint);
            return None;
        }
    };
    let top = Fields {
        table: doc.as_table(),
        at: 0,
        what: "at the top level",
    };
    top.check_keys(d, &TOP_KEYS);
    let mut raw = Raw::default();
    if let Some(t) = top.table(d, "gateway") {
        t.check_keys(d, &GATEWAY_KEYS);
        raw.gateway = RawGateway {
            at: Some(t.at),
            name: t.string(d, "name"),
            domain: t.string(d, "domain"),
            shards: t.integer(d, "shards"),
            admin: t.string(d, "admin"),
            accept: t.string(d, "accept"),
            share_ports: t.boolean(d, "share_ports"),
        };
    }
    if let Some(t) = top.table(d, "listen") {
        t.check_keys(d, &LISTEN_KEYS);
        raw.listen = RawListen {
            routers: t.string(d, "routers"),
            compliance: t.string(d, "compliance"),
            routers_tls: t.string(d, "routers_tls"),
            compliance_tls: t.string(d, "compliance_tls"),
        };
    }
    if let Some(t) = top.table(d, "tls") {
        t.check_keys(d, &TLS_KEYS);
        raw.tls = Some(RawTls {
            at: t.at,
            cert: t.string(d, "cert"),
            key: t.string(d, "key"),
            client_ca: t.string(d, "client_ca"),
        });
    }
    if let Some(t) = top.table(d, "timers") {
        t.check_keys(d, &TIMER_KEYS);
        raw.timers = TIMER_KEYS
            .iter()
            .filter_map(|&k| Some((k, t.duration(d, k)?)))
            .collect();
    }
    if let Some(t) = top.table(d, "limits") {
        t.check_keys(d, &LIMIT_KEYS);
        raw.limits = LIMIT_KEYS
            .iter()
            .filter_map(|&k| Some((k, t.integer(d, k)?)))
            .collect();
    }
    if let Some(t) = top.table(d, "spool") {
        t.check_keys(d, &SPOOL_KEYS);
        raw.spool_dir = t.string(d, "dir");
        raw.spool_max_bytes = t.integer(d, "max_bytes");
    }
    if let Some(t) = top.table(d, "log") {
        t.check_keys(d, &LOG_KEYS);
        raw.log = RawLog {
            level: t.string(d, "level"),
            format: t.string(d, "format"),
        };
    }
    raw.router_written = top.table.contains_key("router");
    raw.server_written = top.table.contains_key("server");
    raw.routers = top
        .tables(d, "router")
        .into_iter()
        .map(|t| read_router(&t, d))
        .collect();
    raw.servers = top
        .tables(d, "server")
        .into_iter()
        .map(|t| read_server(&t, d))
        .collect();
    raw.profiles = top
        .tables(d, "profile")
        .into_iter()
        .map(|t| read_profile(&t, d))
        .collect();
    if let Some(t) = top.table(d, "routing") {
        t.check_keys(d, &ROUTING_KEYS);
        raw.priority = t.strings(d, "priority");
    }
    Some(raw)
}

fn read_router(t: &Fields<'_>, d: &mut Diags<'_>) -> RawRouter {
    t.check_keys(d, &ROUTER_KEYS);
    let router = RawRouter {
        at: t.at,
        name: t.string(d, "name"),
        secret: t.string(d, "secret"),
        node: t.string(d, "node"),
        connect: t.string(d, "connect"),
        tls: read_dial_tls(t, d),
    };
    t.require(d, "name", router.name.is_some());
    t.require(d, "secret", router.secret.is_some());
    router
}

fn read_server(t: &Fields<'_>, d: &mut Diags<'_>) -> RawServer {
    t.check_keys(d, &SERVER_KEYS);
    let server = RawServer {
        at: t.at,
        name: t.string(d, "name"),
        host: t.string(d, "host"),
        port: t.integer(d, "port"),
        password: t.string(d, "password"),
        mode: t.string(d, "mode"),
        profile: t.string(d, "profile"),
        nodes: t.strings(d, "nodes"),
        component: t.string(d, "component"),
        connections: t.integer(d, "connections"),
        tls: read_dial_tls(t, d),
        host_written: t.table.contains_key("host"),
        port_written: t.table.contains_key("port"),
    };
    t.require(d, "name", server.name.is_some());
    t.require(d, "password", server.password.is_some());
    server
}

fn read_dial_tls(t: &Fields<'_>, d: &mut Diags<'_>) -> RawDialTls {
    RawDialTls {
        tls: t.boolean(d, "tls"),
        ca: t.string(d, "ca"),
        tls_name: t.string(d, "tls_name"),
        client_cert: t.string(d, "client_cert"),
        client_key: t.string(d, "client_key"),
    }
}

fn read_profile(t: &Fields<'_>, d: &mut Diags<'_>) -> RawProfile {
    t.check_keys(d, &PROFILE_KEYS);
    let events = t
        .tables(d, "events")
        .into_iter()
        .map(|e| {
            e.check_keys(d, &ENTRY_KEYS);
            let entry = RawEntry {
                at: e.at,
                event: e.string(d, "event"),
                packet: e.string(d, "packet"),
                handling: e.string(d, "handling"),
                fire_and_forget: e.boolean(d, "fire_and_forget"),
            };
            e.require(d, "event", entry.event.is_some());
            entry
        })
        .collect();
    let events_written = match t.table.get("events") {
        Some(Item::ArrayOfTables(a)) => a.len(),
        Some(Item::Value(Value::Array(a))) => a.len(),
        Some(_) => 1,
        None => 0,
    };
    let profile = RawProfile {
        events_written,
        name: t.string(d, "name"),
        description: t.string(d, "description"),
        events,
    };
    t.require(d, "name", profile.name.is_some());
    profile
}

/// A table (header table or inline table) being read, with where it starts and how to name it
/// in messages.
struct Fields<'t> {
    table: &'t dyn TableLike,
    at: usize,
    what: &'static str,
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => describe_value(v),
    }
}

fn describe_value(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

/// Where a key sits, as messages say it: "in [[server]]".
fn section_name(key: &str) -> &'static str {
    match key {
        "gateway" => "in [gateway]",
        "listen" => "in [listen]",
        "tls" => "in [tls]",
        "timers" => "in [timers]",
        "limits" => "in [limits]",
        "log" => "in [log]",
        "routing" => "in [routing]",
        "spool" => "in [spool]",
        "router" => "in [[router]]",
        "server" => "in [[server]]",
        "profile" => "in [[profile]]",
        "events" => "in an entry of `events`",
        _ => "in this table",
    }
}

impl<'t> Fields<'t> {
    fn key_at(&self, key: &str) -> usize {
        self.table
            .key(key)
            .and_then(|k| k.span())
            .map_or(self.at, |s| s.start)
    }

    /// The item under `key` and where its value starts (falling back to the key's position).
    fn get(&self, key: &str) -> Option<(&'t Item, usize)> {
        let item = self.table.get(key)?;
        let at = item.span().map_or_else(|| self.key_at(key), |s| s.start);
        Some((item, at))
    }

    fn wrong_type(
        &self,
        d: &mut Diags<'_>,
        key: &str,
        want: &str,
        item: &Item,
        hint: Option<String>,
    ) {
        let at = self.get(key).map_or(self.at, |(_, at)| at);
        let message = format!("`{key}` must be {want}, found {}", describe(item));
        d.push(Severity::Error, at, message, hint);
    }

    fn string(&self, d: &mut Diags<'_>, key: &str) -> Option<Sp<String>> {
        let (item, at) = self.get(key)?;
        match item.as_str() {
            Some(s) => Some(Sp {
                v: s.to_string(),
                at,
            }),
            None => {
                let hint = item
                    .as_value()
                    .map(|v| format!("write {key} = \"{}\"", v.to_string().trim()));
                self.wrong_type(d, key, "a string", item, hint);
                None
            }
        }
    }

    /// A duration string; a bare number gets a hint about units.
    fn duration(&self, d: &mut Diags<'_>, key: &str) -> Option<Sp<String>> {
        let (item, at) = self.get(key)?;
        match item.as_str() {
            Some(s) => Some(Sp {
                v: s.to_string(),
                at,
            }),
            None => {
                let hint = match item.as_integer() {
                    Some(n) => {
                        format!("write {key} = \"{n}s\" (a duration is a string with a unit)")
                    }
                    None => "write e.g. \"250ms\", \"30s\", \"5m\"".to_string(),
                };
                self.wrong_type(d, key, "a duration string", item, Some(hint));
                None
            }
        }
    }

    fn integer(&self, d: &mut Diags<'_>, key: &str) -> Option<Sp<i64>> {
        let (item, at) = self.get(key)?;
        match item.as_integer() {
            Some(n) => Some(Sp { v: n, at }),
            None => {
                let hint = item
                    .as_str()
                    .filter(|s| s.trim().parse::<i64>().is_ok())
                    .map(|s| format!("remove the quotes: {key} = {}", s.trim()));
                self.wrong_type(d, key, "an integer", item, hint);
                None
            }
        }
    }

    fn boolean(&self, d: &mut Diags<'_>, key: &str) -> Option<Sp<bool>> {
        let (item, at) = self.get(key)?;
        match item.as_bool() {
            Some(b) => Some(Sp { v: b, at }),
            None => {
                let hint = item
                    .as_str()
                    .filter(|s| *s == "true" || *s == "false")
                    .map(|s| format!("remove the quotes: {key} = {s}"));
                self.wrong_type(d, key, "true or false", item, hint);
                None
            }
        }
    }

    fn strings(&self, d: &mut Diags<'_>, key: &str) -> Option<Vec<Sp<String>>> {
        let (item, _) = self.get(key)?;
        let Some(array) = item.as_array() else {
            let hint = item.as_str().map(|s| format!("write {key} = [\"{s}\"]"));
            self.wrong_type(d, key, "an array of strings", item, hint);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        for value in array.iter() {
            let at = value.span().map_or(self.key_at(key), |s| s.start);
            match value.as_str() {
                Some(s) => out.push(Sp {
                    v: s.to_string(),
                    at,
                }),
                None => d.error(
                    at,
                    format!(
                        "`{key}` must hold only strings, found {}",
                        describe_value(value)
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A sub-table such as `[gateway]` (or `gateway = { ... }`).
    fn table(&self, d: &mut Diags<'_>, key: &'static str) -> Option<Fields<'t>> {
        let (item, at) = self.get(key)?;
        match item.as_table_like() {
            Some(table) => Some(Fields {
                table,
                at,
                what: section_name(key),
            }),
            None => {
                let hint = Some(format!("write a [{key}] table"));
                self.wrong_type(d, key, "a table", item, hint);
                None
            }
        }
    }

    /// An array of tables such as `[[server]]` (or `events = [{ ... }, { ... }]`).
    fn tables(&self, d: &mut Diags<'_>, key: &'static str) -> Vec<Fields<'t>> {
        let Some((item, at)) = self.get(key) else {
            return Vec::new();
        };
        let what = section_name(key);
        match item {
            Item::ArrayOfTables(array) => array
                .iter()
                .map(|t| Fields {
                    table: t,
                    at: t.span().map_or(at, |s| s.start),
                    what,
                })
                .collect(),
            Item::Value(Value::Array(array)) => array
                .iter()
                .filter_map(|value| {
                    let at = value.span().map_or(at, |s| s.start);
                    match value.as_inline_table() {
                        Some(table) => Some(Fields { table, at, what }),
                        None => {
                            d.error_hint(
                                at,
                                format!(
                                    "each entry of `{key}` must be a table, found {}",
                                    describe_value(value)
                                ),
                                "write e.g. { event = \"es_OUT\", packet = \"message\" }",
                            );
                            None
                        }
                    }
                })
                .collect(),
            other => {
                let hint = if other.is_table() {
                    format!("write [[{key}]] (double brackets): there can be several")
                } else {
                    format!("write [[{key}]] tables")
                };
                self.wrong_type(d, key, "an array of tables", other, Some(hint));
                Vec::new()
            }
        }
    }

    fn check_keys(&self, d: &mut Diags<'_>, known: &[&str]) {
        for (key, _) in self.table.iter() {
            if known.contains(&key) {
                continue;
            }
            let hint = match did_you_mean(key, known.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            d.error_hint(
                self.key_at(key),
                format!("unknown key `{key}` {}", self.what),
                hint,
            );
        }
    }

    fn require(&self, d: &mut Diags<'_>, key: &str, present: bool) {
        if !present && self.table.get(key).is_none() {
            d.error(self.at, format!("missing `{key}` {}", self.what));
        }
    }
}
