//! The compiled policy: for every (event, packet type, node) the ordered chain of steps an event
//! must walk (docs/protocol.md §5), computed once at load time so the hot path is a table index.
//!
//! This file owns which profiles and servers apply to an event and in which order. It must not
//! pick a server within a step (that needs the conversation key and live server state), nor
//! send, time or judge anything.
//!
//! Server, profile and node ids stay valid across live reloads: a policy compiled after another
//! ([`CompiledPolicy::compile_after`]) keeps every id the earlier one gave (a removed server or
//! profile stays, retired, under its id), so events in flight, counters and server state never
//! need renumbering.

use super::catalog::{AnswerRule, EventId, EventKind, PacketType};
use super::config::{Config, ServerConfig, ServerId, ServerMode};
use super::profile::{Handling, ProfileId};

/// An IM node as the matcher knows it; every node the configuration never names shares one id.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct NodeId(u16);

impl NodeId {
    /// A dense index (known nodes first, then the shared unknown id), for per-node tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One profile's turn at an event.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub struct Step {
    /// The profile whose turn it is.
    pub profile: ProfileId,
    /// What an error or timeout from its server does to the event.
    pub handling: Handling,
    /// Always true (with handling `pass`) for a notify-only event such as onServiceReconfig.
    pub fire_and_forget: bool,
    servers_start: u32,
    servers_len: u32,
}

impl Step {
    /// The servers this step may pick from (the profile's servers that serve the node), in
    /// configuration order; never empty.
    pub fn servers<'p>(&self, policy: &'p CompiledPolicy) -> &'p [ServerId] {
        let start = self.servers_start as usize;
        policy
            .server_ids
            .get(start..start + self.servers_len as usize)
            .unwrap_or_default()
    }
}

/// What the engine and the runtime need to know about one compliance server.
#[derive(Clone, Eq, PartialEq)]
pub struct ServerInfo {
    /// The server's configured name (logs, metrics, status).
    pub name: String,
    /// The component name its streams authenticate as.
    pub component: String,
    /// The profile it serves.
    pub profile: ProfileId,
    /// Whether the gateway dials it or it dials the gateway.
    pub mode: ServerMode,
    /// Where an outbound server listens (informational for an inbound one).
    pub host: String,
    /// Its port (0 for an inbound server that gave none).
    pub port: u16,
    /// The shared secret of its streams.
    pub password: String,
    /// Streams to keep to it; `None`: one per shard.
    pub connections: Option<usize>,
    /// How its dials use TLS (`None`: plain); a change restarts its streams.
    pub tls: Option<crate::policy::DialTls>,
    /// Removed from the configuration by a reload: in no chain, never dialed or admitted.
    pub retired: bool,
}

impl std::fmt::Debug for ServerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerInfo")
            .field("name", &self.name)
            .field("component", &self.component)
            .field("profile", &self.profile)
            .field("mode", &self.mode)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"<redacted>")
            .field("connections", &self.connections)
            .field("tls", &self.tls)
            .field("retired", &self.retired)
            .finish()
    }
}

impl ServerInfo {
    /// Whether a stream opened with `self` must be reopened to follow `new` (where it goes,
    /// who it claims to be, how many there are).
    pub fn stream_differs(&self, new: &ServerInfo) -> bool {
        (
            &self.component,
            self.mode,
            &self.host,
            self.port,
            &self.password,
            self.connections,
        ) != (
            &new.component,
            new.mode,
            &new.host,
            new.port,
            &new.password,
            new.connections,
        ) || self.tls != new.tls
            || self.retired != new.retired
    }
}

/// One (event, packet type) pair a router must send (see [`CompiledPolicy::advertised`]).
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub struct Advertised {
    /// The event to send.
    pub event: EventId,
    /// `None` for TC events.
    pub packet: Option<PacketType>,
    /// Whether the verdict can be other than an immediate `pass`.
    pub wait: bool,
}

const JSM_PACKETS: [Option<PacketType>; 4] = [
    Some(PacketType::Iq),
    Some(PacketType::Message),
    Some(PacketType::Presence),
    Some(PacketType::Subscription),
];

/// Five packet slots per event: the four packet types, then "not a message, iq or presence".
const SLOTS: usize = 5;

/// A configuration compiled for the hot path: every (event, packet type, node) chain precomputed,
/// servers, profiles and nodes numbered. Shards share it read-only (`Arc`); a reload builds a new
/// one with [`CompiledPolicy::compile_after`], keeping every id.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    /// Known node names; index = NodeId. `nodes.len()` is the shared id of unknown nodes.
    nodes: Vec<String>,
    /// Router component names, accepted as aliases of their node (an event without a `node`
    /// attribute comes from its router's NAME).
    aliases: Vec<(String, NodeId)>,
    /// `[event][slot][node]` -> range into `steps`.
    table: Vec<(u32, u32)>,
    steps: Vec<Step>,
    server_ids: Vec<ServerId>,
    servers: Vec<ServerInfo>,
    profile_names: Vec<String>,
    /// Per profile, the range of `server_ids` holding all its servers.
    profile_servers: Vec<(u32, u32)>,
}

/// The node names an earlier policy knew (their ids must not move), then those from the
/// routers, then any other name a server's `nodes` lists, without case-insensitive repeats;
/// capped so that every id fits in a u16 below the unknown node's.
fn known_nodes(config: &Config, previous: &[String]) -> Vec<String> {
    let from_routers = config.routers.iter().map(|r| r.node.as_str());
    let from_servers = config
        .servers
        .iter()
        .flat_map(|s| s.nodes.iter().map(String::as_str));
    let mut nodes: Vec<String> = previous.to_vec();
    for node in from_routers.chain(from_servers) {
        let known = nodes.iter().any(|n| n.eq_ignore_ascii_case(node));
        if !known && nodes.len() < usize::from(UNKNOWN_NODE) {
            nodes.push(node.to_string());
        }
    }
    nodes
}

/// The id every node the configuration never names shares; fixed, so that it means the same
/// in every policy a reload produces.
const UNKNOWN_NODE: u16 = u16::MAX;

impl From<&ServerConfig> for ServerInfo {
    fn from(s: &ServerConfig) -> ServerInfo {
        ServerInfo {
            name: s.name.clone(),
            component: s.component.clone(),
            profile: s.profile_id,
            mode: s.mode,
            host: s.host.clone(),
            port: s.port,
            password: s.password.clone(),
            connections: s.connections,
            tls: s.tls.clone(),
            retired: false,
        }
    }
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CompiledPolicy {
    /// Compiles a configuration that is not replacing another (ids start from the configuration's
    /// order).
    pub fn compile(config: &Config) -> CompiledPolicy {
        CompiledPolicy::compile_after(config, None)
    }

    /// Compiles `config` for a gateway that ran `previous`: every server, profile and node
    /// keeps its id (matched by name; nodes case-insensitively), new ones get new ids, and
    /// those the configuration no longer has stay behind, retired.
    pub fn compile_after(config: &Config, previous: Option<&CompiledPolicy>) -> CompiledPolicy {
        let nodes = known_nodes(config, previous.map_or(&[], |p| &p.nodes[..]));
        let node_ids = nodes.len() + 1;
        let mut policy = CompiledPolicy {
            aliases: Vec::new(),
            nodes,
            table: Vec::with_capacity(EventId::COUNT * SLOTS * node_ids),
            steps: Vec::new(),
            server_ids: Vec::new(),
            servers: Vec::new(),
            profile_names: previous.map_or_else(Vec::new, |p| p.profile_names.clone()),
            profile_servers: Vec::new(),
        };
        // Stable profile ids: `profile_ids[config id]`.
        let profile_ids: Vec<ProfileId> = config
            .profiles
            .iter()
            .map(|p| policy.stable_profile(&p.name))
            .collect();
        let stable = |id: ProfileId| profile_ids.get(id.index()).copied().unwrap_or(id);
        policy.servers = previous.map_or_else(Vec::new, |p| p.servers.clone());
        for s in &mut policy.servers {
            s.retired = true;
        }
        // Stable server ids: `server_ids[config index]`.
        let mut server_ids = Vec::with_capacity(config.servers.len());
        for s in &config.servers {
            let info = ServerInfo {
                profile: stable(s.profile_id),
                ..ServerInfo::from(s)
            };
            let index = match policy.servers.iter().position(|old| old.name == s.name) {
                Some(i) => {
                    policy.servers[i] = info;
                    i
                }
                None => {
                    policy.servers.push(info);
                    policy.servers.len() - 1
                }
            };
            server_ids.push(ServerId(u16::try_from(index).unwrap_or(u16::MAX)));
        }
        policy.aliases = config
            .routers
            .iter()
            .map(|r| (r.name.clone(), policy.node_id(r.node.as_bytes())))
            .collect();
        let by_profile_node = policy.index_servers(config, &server_ids, &profile_ids);
        for event in EventId::all() {
            for slot in 0..SLOTS {
                let packet = PacketType::ALL.get(slot).copied();
                for node in 0..node_ids {
                    let start = policy.steps.len();
                    for &profile in &config.priority {
                        let servers = by_profile_node
                            .get(stable(profile).index() * node_ids + node)
                            .copied()
                            .unwrap_or_default();
                        policy.push_step(config, event, packet, profile, stable(profile), servers);
                    }
                    let len = policy.steps.len() - start;
                    policy.table.push((as_u32(start), as_u32(len)));
                }
            }
        }
        policy
    }

    /// The id of the profile named `name`, added if this policy has none of that name.
    fn stable_profile(&mut self, name: &str) -> ProfileId {
        let index = match self.profile_names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.profile_names.push(name.to_owned());
                self.profile_names.len() - 1
            }
        };
        ProfileId(u16::try_from(index).unwrap_or(u16::MAX))
    }

    /// Fills `server_ids` with each profile's servers, then with its servers per node (the last
    /// node id standing for unknown nodes, served only by servers without a `nodes` list).
    /// Returns the `[stable profile][node]` ranges, shared by every step that uses them.
    fn index_servers(
        &mut self,
        config: &Config,
        stable_servers: &[ServerId],
        stable_profiles: &[ProfileId],
    ) -> Vec<(u32, u32)> {
        let node_ids = self.nodes.len() + 1;
        let ids = |keep: &dyn Fn(&ServerConfig) -> bool| -> Vec<ServerId> {
            let servers = config.servers.iter().zip(stable_servers);
            servers
                .filter(|(s, _)| keep(s))
                .map(|(_, &id)| id)
                .collect()
        };
        let profiles = self.profile_names.len();
        let mut ranges = vec![(0u32, 0u32); profiles * node_ids];
        self.profile_servers = vec![(0, 0); profiles];
        for (config_id, &profile) in stable_profiles.iter().enumerate() {
            let of_profile = |s: &ServerConfig| s.profile_id.index() == config_id;
            let all = ids(&of_profile);
            let range = self.push_servers(all);
            self.profile_servers[profile.index()] = range;
            for node in 0..node_ids {
                let name = self.nodes.get(node).cloned();
                let serves = |s: &ServerConfig| match &name {
                    Some(name) => s.serves_node(name),
                    None => s.nodes.is_empty(),
                };
                let on_node = ids(&|s: &ServerConfig| of_profile(s) && serves(s));
                ranges[profile.index() * node_ids + node] = self.push_servers(on_node);
            }
        }
        ranges
    }

    fn push_servers(&mut self, ids: Vec<ServerId>) -> (u32, u32) {
        let start = self.server_ids.len();
        self.server_ids.extend(ids);
        (as_u32(start), as_u32(self.server_ids.len() - start))
    }

    /// Adds `profile`'s step (`stable` in this policy's ids) for this event if it has an entry
    /// for it and a server for the node.
    fn push_step(
        &mut self,
        config: &Config,
        event: EventId,
        packet: Option<PacketType>,
        profile: ProfileId,
        stable: ProfileId,
        (servers_start, servers_len): (u32, u32),
    ) {
        let entry = config
            .profile(profile)
            .and_then(|p| p.entry_for(event, packet));
        let Some(entry) = entry.filter(|_| servers_len > 0) else {
            return;
        };
        let notify_only = event.answer() == AnswerRule::NotifyOnly;
        self.steps.push(Step {
            profile: stable,
            handling: if notify_only {
                Handling::Pass
            } else {
                entry.handling
            },
            fire_and_forget: notify_only || entry.fire_and_forget,
            servers_start,
            servers_len,
        });
    }

    /// The id of an IM node by name or by its router's component name (ASCII case-insensitive);
    /// every unknown name gets the same id.
    pub fn node_id(&self, node: &[u8]) -> NodeId {
        let found = self
            .nodes
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(node));
        if let Some(index) = found.and_then(|i| u16::try_from(i).ok()) {
            return NodeId(index);
        }
        let alias = self
            .aliases
            .iter()
            .find(|(name, _)| name.as_bytes().eq_ignore_ascii_case(node));
        alias.map_or_else(|| self.unknown_node(), |&(_, id)| id)
    }

    /// The id every node the configuration never names shares.
    pub fn unknown_node(&self) -> NodeId {
        NodeId(UNKNOWN_NODE)
    }

    /// A known node's name; `None` for the shared unknown id.
    pub fn node_name(&self, node: NodeId) -> Option<&str> {
        self.nodes.get(node.index()).map(String::as_str)
    }

    /// The steps an event must walk, highest routing priority first; empty means `pass`.
    /// `packet` is the stanza's type (`None`: not a message, iq or presence); TC events ignore it.
    pub fn chain(&self, event: EventId, packet: Option<PacketType>, node: NodeId) -> &[Step] {
        let slot = packet.map_or(SLOTS - 1, PacketType::index);
        let node_ids = self.nodes.len() + 1;
        let index = (event.index() * SLOTS + slot) * node_ids + node.index().min(node_ids - 1);
        let (start, len) = self.table.get(index).copied().unwrap_or_default();
        let start = start as usize;
        self.steps
            .get(start..start + len as usize)
            .unwrap_or_default()
    }

    /// Every (event, packet type) with a non-empty chain on `node`, in catalog order, with
    /// whether a router must wait for its verdict. JSM events are listed per packet type; TC
    /// events (which ignore it) once, with `None`. A chain whose steps are all fire-and-forget
    /// with handling `pass` always ends in `pass` at once: the router need not wait for it.
    pub fn advertised(&self, node: NodeId) -> Vec<Advertised> {
        let mut out = Vec::new();
        for event in EventId::all() {
            let packets: &[Option<PacketType>] = match event.kind() {
                EventKind::Tc => &[None],
                EventKind::Jsm => &JSM_PACKETS,
            };
            for &packet in packets {
                let chain = self.chain(event, packet, node);
                if chain.is_empty() {
                    continue;
                }
                let wait = chain
                    .iter()
                    .any(|s| !(s.fire_and_forget && s.handling == Handling::Pass));
                out.push(Advertised {
                    event,
                    packet,
                    wait,
                });
            }
        }
        out
    }

    /// The server with id `id` (retired ones included), if it exists.
    pub fn server(&self, id: ServerId) -> Option<&ServerInfo> {
        self.servers.get(id.index())
    }

    /// Every server, indexed by [`ServerId`], retired ones included.
    pub fn servers(&self) -> &[ServerInfo] {
        &self.servers
    }

    /// How many profile ids exist (the built-in default and retired profiles included); ids
    /// are `0..profile_count()`.
    pub fn profile_count(&self) -> usize {
        self.profile_names.len()
    }

    /// A profile's name; empty for an id that does not exist.
    pub fn profile_name(&self, id: ProfileId) -> &str {
        self.profile_names
            .get(id.index())
            .map_or("", String::as_str)
    }

    /// Every server assigned `profile`, whatever nodes they serve.
    pub fn profile_servers(&self, profile: ProfileId) -> &[ServerId] {
        let (start, len) = self
            .profile_servers
            .get(profile.index())
            .copied()
            .unwrap_or_default();
        let start = start as usize;
        self.server_ids
            .get(start..start + len as usize)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::load_str;

    const HEAD: &str = r#"
[gateway]
name = "palisade.example.com"
[listen]
compliance = "127.0.0.1:5276"
[[router]]
name = "imp1.example.com"
secret = "s"
[[router]]
name = "imp2.example.com"
secret = "s"
"#;

    fn compile(body: &str) -> CompiledPolicy {
        match load_str(&format!("{HEAD}{body}"), "t.toml") {
            Ok(loaded) => CompiledPolicy::compile(&loaded.config),
            Err(d) => panic!(
                "{}",
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    fn event(name: &str) -> EventId {
        EventId::lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name}"))
    }

    /// A chain as "Profile@server+server" strings, for readable assertions.
    fn chain(
        p: &CompiledPolicy,
        name: &str,
        packet: Option<PacketType>,
        node: &str,
    ) -> Vec<String> {
        p.chain(event(name), packet, p.node_id(node.as_bytes()))
            .iter()
            .map(|step| {
                let servers: Vec<_> = step
                    .servers(p)
                    .iter()
                    .filter_map(|&id| p.server(id).map(|s| s.name.as_str()))
                    .collect();
                format!("{}@{}", p.profile_name(step.profile), servers.join("+"))
            })
            .collect()
    }

    fn server(name: &str, profile: &str, extra: &str) -> String {
        format!(
            "[[server]]\nname = \"{name}\"\nhost = \"h\"\nport = 1\npassword = \"p\"\nprofile = \"{profile}\"\n{extra}"
        )
    }

    const MSG: Option<PacketType> = Some(PacketType::Message);

    #[test]
    fn advertised_lists_non_empty_chains_and_whether_they_wait() {
        let p = compile(&format!(
            "[[profile]]\nname = \"P\"\nevents = [\n{{ event = \"es_OUT\", packet = \"message\" }},\n{{ event = \"es_IN\", packet = \"presence\", fire_and_forget = true, handling = \"pass\" }},\n{{ event = \"es_END\", fire_and_forget = true, handling = \"bounce\" }},\n{{ event = \"onAfterJoin\" }},\n]\n{}{}",
            server("cs1", "P", "nodes = [\"imp1\"]\n"),
            server("cs2", "SystemDefaultComplianceProfile", "nodes = [\"imp2\"]\n"),
        ));
        let shown = |node: &str| -> Vec<String> {
            p.advertised(p.node_id(node.as_bytes()))
                .iter()
                .map(|a| {
                    let packet = a.packet.map_or(String::new(), |t| format!("/{t}"));
                    let mode = if a.wait { "wait" } else { "notify" };
                    format!("{}{packet}:{mode}", a.event)
                })
                .collect()
        };
        assert_eq!(
            shown("imp1"),
            [
                "es_IN/presence:notify",
                "es_OUT/message:wait",
                "es_END/iq:wait",
                "es_END/message:wait",
                "es_END/presence:wait",
                "es_END/subscription:wait",
                "onAfterJoin:wait",
            ],
            "fire-and-forget with handling bounce ends in drop: it must wait"
        );
        assert!(shown("imp9").is_empty(), "no server serves an unknown node");
        assert!(shown("imp2").contains(&"es_OUT/message:wait".to_string()));
    }

    #[test]
    fn node_ids_by_name_alias_and_case() {
        let p = compile("");
        let imp1 = p.node_id(b"imp1");
        assert_eq!(p.node_name(imp1), Some("imp1"));
        assert_eq!(p.node_id(b"IMP1"), imp1);
        assert_eq!(p.node_id(b"imp1.example.com"), imp1);
        assert_ne!(p.node_id(b"imp2"), imp1);
        assert_eq!(p.node_id(b"imp9"), p.unknown_node());
        assert_eq!(p.node_id(b""), p.unknown_node());
        assert_eq!(p.node_name(p.unknown_node()), None);
    }

    #[test]
    fn default_profile_on_one_server() {
        let p = compile(&server("cs1", "SystemDefaultComplianceProfile", ""));
        let default = ["SystemDefaultComplianceProfile@cs1"];
        assert_eq!(chain(&p, "es_OUT", MSG, "imp1"), default);
        assert_eq!(chain(&p, "es_IN", MSG, "imp2"), default);
        assert_eq!(
            chain(&p, "es_OUT", MSG, "elsewhere"),
            default,
            "no nodes = every node"
        );
        assert!(chain(&p, "es_OUT", Some(PacketType::Presence), "imp1").is_empty());
        assert!(chain(&p, "es_OUT", None, "imp1").is_empty());
        assert_eq!(
            chain(&p, "e_SESSION", Some(PacketType::Iq), "imp1"),
            default
        );
        assert_eq!(chain(&p, "e_SESSION", None, "imp1"), default);
        assert_eq!(
            chain(&p, "onBeforeJoin", Some(PacketType::Presence), "imp1"),
            default
        );
        assert!(chain(&p, "onPacket", MSG, "imp1").is_empty());
        let step = p.chain(event("e_SESSION"), None, p.node_id(b"imp1"))[0];
        assert_eq!(
            (step.handling, step.fire_and_forget),
            (Handling::Pass, false)
        );
    }

    #[test]
    fn unassigned_profiles_contribute_nothing() {
        let p = compile(&format!(
            "[[profile]]\nname = \"Unused\"\nevents = [{{ event = \"es_OUT\" }}]\n{}",
            server("cs1", "SystemDefaultComplianceProfile", "")
        ));
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp1"),
            ["SystemDefaultComplianceProfile@cs1"]
        );
        let none = compile("[[profile]]\nname = \"Unused\"\nevents = [{ event = \"es_OUT\" }]\n");
        assert!(chain(&none, "es_OUT", MSG, "imp1").is_empty());
    }

    #[test]
    fn one_profile_on_several_servers_is_one_balanced_step() {
        let p = compile(&format!(
            "{}{}",
            server("cs1", "SystemDefaultComplianceProfile", ""),
            server("cs2", "SystemDefaultComplianceProfile", "")
        ));
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp1"),
            ["SystemDefaultComplianceProfile@cs1+cs2"]
        );
        assert_eq!(p.profile_servers(ProfileId::SYSTEM_DEFAULT).len(), 2);
    }

    #[test]
    fn servers_restricted_to_nodes() {
        let p = compile(&format!(
            "{}{}{}",
            server(
                "cs1",
                "SystemDefaultComplianceProfile",
                "nodes = [\"imp1\"]\n"
            ),
            server(
                "cs2",
                "SystemDefaultComplianceProfile",
                "nodes = [\"IMP2\"]\n"
            ),
            server("cs3", "SystemDefaultComplianceProfile", "")
        ));
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp1"),
            ["SystemDefaultComplianceProfile@cs1+cs3"]
        );
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp2.example.com"),
            ["SystemDefaultComplianceProfile@cs2+cs3"]
        );
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp7"),
            ["SystemDefaultComplianceProfile@cs3"]
        );
    }

    #[test]
    fn a_profile_whose_servers_skip_the_node_is_left_out() {
        let p = compile(&format!(
            "[[profile]]\nname = \"Wall\"\nevents = [{{ event = \"es_OUT\" }}]\n{}{}",
            server("cs1", "Wall", "nodes = [\"imp1\"]\n"),
            server("cs2", "SystemDefaultComplianceProfile", "")
        ));
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp1"),
            ["SystemDefaultComplianceProfile@cs2", "Wall@cs1"],
            "default priority: the built-in profile was added first"
        );
        assert_eq!(
            chain(&p, "es_OUT", MSG, "imp2"),
            ["SystemDefaultComplianceProfile@cs2"]
        );
    }

    #[test]
    fn specific_packet_entry_wins_within_a_profile() {
        let p = compile(&format!(
            "[[profile]]\nname = \"P\"\nevents = [\n{{ event = \"es_OUT\", handling = \"pass\" }},\n{{ event = \"es_OUT\", packet = \"message\", fire_and_forget = true, handling = \"pass\" }},\n]\n{}",
            server("cs1", "P", "")
        ));
        let node = p.node_id(b"imp1");
        let msg = p.chain(event("es_OUT"), MSG, node);
        let iq = p.chain(event("es_OUT"), Some(PacketType::Iq), node);
        assert_eq!((msg.len(), msg[0].fire_and_forget), (1, true));
        assert_eq!((iq.len(), iq[0].fire_and_forget), (1, false));
        let subscription = p.chain(event("es_OUT"), Some(PacketType::Subscription), node);
        assert_eq!(subscription.len(), 1);
    }

    #[test]
    fn notify_only_event_is_always_fire_and_forget_pass() {
        let p = compile(&format!(
            "[[profile]]\nname = \"P\"\nevents = [{{ event = \"onServiceReconfig\" }}]\n{}",
            server("cs1", "P", "")
        ));
        let steps = p.chain(
            event("onServiceReconfig"),
            Some(PacketType::Iq),
            p.node_id(b"imp1"),
        );
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].handling, steps[0].fire_and_forget),
            (Handling::Pass, true)
        );
    }

    #[test]
    fn tc_events_ignore_the_packet_type() {
        let p = compile(&server("cs1", "SystemDefaultComplianceProfile", ""));
        for packet in [
            None,
            MSG,
            Some(PacketType::Iq),
            Some(PacketType::Subscription),
        ] {
            assert_eq!(
                chain(&p, "onBeforeSend", packet, "imp1").len(),
                1,
                "{packet:?}"
            );
        }
    }

    #[test]
    fn server_info_for_the_engine() {
        let p = compile(&server(
            "cs1",
            "SystemDefaultComplianceProfile",
            "mode = \"inbound\"\n",
        ));
        let info = p.server(ServerId(0)).unwrap_or_else(|| panic!("cs1"));
        assert_eq!(info.component, "op-cs1.palisade-example-com");
        assert_eq!(
            (info.mode, info.profile),
            (ServerMode::Inbound, ProfileId::SYSTEM_DEFAULT)
        );
        assert_eq!(p.servers().len(), 1);
        assert!(p.server(ServerId(1)).is_none());
    }

    fn compile_after(body: &str, previous: &CompiledPolicy) -> CompiledPolicy {
        match load_str(&format!("{HEAD}{body}"), "t.toml") {
            Ok(loaded) => CompiledPolicy::compile_after(&loaded.config, Some(previous)),
            Err(d) => panic!("{d:?}"),
        }
    }

    fn id_of(p: &CompiledPolicy, name: &str) -> usize {
        p.servers()
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn a_reload_keeps_every_id_and_retires_what_left() {
        let walls = "[[profile]]\nname = \"Walls\"\nevents = [{ event = \"es_OUT\", handling = \"bounce\" }]\n";
        let before = compile(&format!(
            "{walls}{}{}{}",
            server("cs1", "SystemDefaultComplianceProfile", ""),
            server("cs2", "Walls", "nodes = [\"imp2\"]\n"),
            server("cs3", "SystemDefaultComplianceProfile", ""),
        ));
        let walls_id = before
            .chain(event("es_OUT"), MSG, before.node_id(b"imp2"))
            .iter()
            .find(|s| before.profile_name(s.profile) == "Walls")
            .map(|s| s.profile)
            .unwrap_or_else(|| panic!("a Walls step"));
        // cs1 goes, cs4 and profile Archive come, cs2 moves to the front of the file, and the
        // Walls profile changes its handling.
        let after = compile_after(
            &format!(
                "[[profile]]\nname = \"Archive\"\nevents = [{{ event = \"es_IN\" }}]\n\
                 [[profile]]\nname = \"Walls\"\nevents = [{{ event = \"es_OUT\", handling = \"pass\" }}]\n{}{}{}",
                server("cs2", "Walls", "nodes = [\"imp2\"]\n"),
                server("cs3", "SystemDefaultComplianceProfile", "connections = 1\n"),
                server("cs4", "Archive", ""),
            ),
            &before,
        );
        for name in ["cs2", "cs3"] {
            assert_eq!(
                id_of(&after, name),
                id_of(&before, name),
                "{name} keeps its id"
            );
        }
        assert_eq!(id_of(&after, "cs4"), 3, "a new server gets a new id");
        let cs1 = &after.servers()[id_of(&after, "cs1")];
        assert!(cs1.retired, "a removed server stays, retired");
        assert!(!after.servers()[id_of(&after, "cs3")].retired);
        assert!(before.servers()[id_of(&before, "cs3")]
            .stream_differs(&after.servers()[id_of(&after, "cs3")]));
        assert!(!before.servers()[id_of(&before, "cs2")]
            .stream_differs(&after.servers()[id_of(&after, "cs2")]));
        assert_eq!(
            after.profile_name(walls_id),
            "Walls",
            "profile ids are kept"
        );
        assert_eq!(after.node_id(b"imp2"), before.node_id(b"imp2"));
        assert_eq!(after.unknown_node(), before.unknown_node());
        assert_eq!(
            chain(&after, "es_OUT", MSG, "imp2"),
            ["SystemDefaultComplianceProfile@cs3", "Walls@cs2"]
        );
        assert_eq!(
            chain(&after, "es_IN", MSG, "imp1"),
            ["SystemDefaultComplianceProfile@cs3", "Archive@cs4"]
        );
        let step = after.chain(event("es_OUT"), MSG, after.node_id(b"imp2"))[1];
        assert_eq!(step.handling, Handling::Pass, "the new handling applies");
        // Back again under its old name: its old id.
        let again = compile_after(&server("cs1", "SystemDefaultComplianceProfile", ""), &after);
        assert_eq!(id_of(&again, "cs1"), id_of(&before, "cs1"));
        assert!(!again.servers()[id_of(&again, "cs1")].retired);
        assert!(again.servers()[id_of(&again, "cs4")].retired);
        assert_eq!(again.profile_count(), 3, "retired profiles keep their ids");
        assert_eq!(
            chain(&again, "es_OUT", MSG, "imp2"),
            ["SystemDefaultComplianceProfile@cs1"]
        );
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let p = compile(&server("cs1", "SystemDefaultComplianceProfile", ""));
        let shown = format!("{:?}", p.servers());
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"p\""),
            "{shown}"
        );
    }
}
