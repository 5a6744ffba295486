//! The compiled policy: for every (event, packet type, node) the ordered chain of steps an event
//! must walk (PROTOCOL.md §5), computed once at load time so the hot path is a table index.
//!
//! This file owns which profiles and servers apply to an event and in which order. It must not
//! pick a server within a step (that needs the conversation key and live server state), nor
//! send, time or judge anything.

use super::catalog::{AnswerRule, EventId, PacketType};
use super::config::{Config, ServerConfig, ServerId, ServerMode};
use super::profile::{Handling, ProfileId};

/// An IM node as the matcher knows it; every node the configuration never names shares one id.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub struct NodeId(u16);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One profile's turn at an event.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub struct Step {
    pub profile: ProfileId,
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

/// What the engine needs to know about one compliance server.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ServerInfo {
    pub name: String,
    pub component: String,
    pub profile: ProfileId,
    pub mode: ServerMode,
    pub host: String,
    pub port: u16,
    pub connections: Option<usize>,
}

/// Five packet slots per event: the four packet types, then "not a message, iq or presence".
const SLOTS: usize = 5;

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

/// Node names from the routers, then any other name a server's `nodes` lists, without
/// case-insensitive repeats; capped so that every id (and the unknown one) fits in a u16.
fn known_nodes(config: &Config) -> Vec<String> {
    let from_routers = config.routers.iter().map(|r| r.node.as_str());
    let from_servers = config
        .servers
        .iter()
        .flat_map(|s| s.nodes.iter().map(String::as_str));
    let mut nodes: Vec<String> = Vec::new();
    for node in from_routers.chain(from_servers) {
        let known = nodes.iter().any(|n| n.eq_ignore_ascii_case(node));
        if !known && nodes.len() < usize::from(u16::MAX) {
            nodes.push(node.to_string());
        }
    }
    nodes
}

impl From<&ServerConfig> for ServerInfo {
    fn from(s: &ServerConfig) -> ServerInfo {
        ServerInfo {
            name: s.name.clone(),
            component: s.component.clone(),
            profile: s.profile_id,
            mode: s.mode,
            host: s.host.clone(),
            port: s.port,
            connections: s.connections,
        }
    }
}

fn as_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CompiledPolicy {
    pub fn compile(config: &Config) -> CompiledPolicy {
        let nodes = known_nodes(config);
        let node_ids = nodes.len() + 1;
        let mut policy = CompiledPolicy {
            aliases: Vec::new(),
            nodes,
            table: Vec::with_capacity(EventId::COUNT * SLOTS * node_ids),
            steps: Vec::new(),
            server_ids: Vec::new(),
            servers: config.servers.iter().map(ServerInfo::from).collect(),
            profile_names: config.profiles.iter().map(|p| p.name.clone()).collect(),
            profile_servers: Vec::new(),
        };
        policy.aliases = config
            .routers
            .iter()
            .map(|r| (r.name.clone(), policy.node_id(r.node.as_bytes())))
            .collect();
        let by_profile_node = policy.index_servers(config);
        for event in EventId::all() {
            for slot in 0..SLOTS {
                let packet = PacketType::ALL.get(slot).copied();
                for node in 0..node_ids {
                    let start = policy.steps.len();
                    for &profile in &config.priority {
                        let servers = by_profile_node
                            .get(profile.index() * node_ids + node)
                            .copied()
                            .unwrap_or_default();
                        policy.push_step(config, event, packet, profile, servers);
                    }
                    let len = policy.steps.len() - start;
                    policy.table.push((as_u32(start), as_u32(len)));
                }
            }
        }
        policy
    }

    /// Fills `server_ids` with each profile's servers, then with its servers per node (the last
    /// node id standing for unknown nodes, served only by servers without a `nodes` list).
    /// Returns the `[profile][node]` ranges, shared by every step that uses them.
    fn index_servers(&mut self, config: &Config) -> Vec<(u32, u32)> {
        let node_ids = self.nodes.len() + 1;
        let ids = |keep: &dyn Fn(&ServerConfig) -> bool| -> Vec<ServerId> {
            let servers = config.servers.iter().enumerate();
            let kept = servers.filter(|(_, s)| keep(s));
            kept.filter_map(|(i, _)| u16::try_from(i).ok().map(ServerId))
                .collect()
        };
        let mut ranges = vec![(0u32, 0u32); config.profiles.len() * node_ids];
        for profile in 0..config.profiles.len() {
            let of_profile = |s: &ServerConfig| s.profile_id.index() == profile;
            let all = ids(&of_profile);
            let range = self.push_servers(all);
            self.profile_servers.push(range);
            for node in 0..node_ids {
                let name = self.nodes.get(node).cloned();
                let serves = |s: &ServerConfig| match &name {
                    Some(name) => s.serves_node(name),
                    None => s.nodes.is_empty(),
                };
                let on_node = ids(&|s: &ServerConfig| of_profile(s) && serves(s));
                ranges[profile * node_ids + node] = self.push_servers(on_node);
            }
        }
        ranges
    }

    fn push_servers(&mut self, ids: Vec<ServerId>) -> (u32, u32) {
        let start = self.server_ids.len();
        self.server_ids.extend(ids);
        (as_u32(start), as_u32(self.server_ids.len() - start))
    }

    /// Adds `profile`'s step for this event if it has an entry for it and a server for the node.
    fn push_step(
        &mut self,
        config: &Config,
        event: EventId,
        packet: Option<PacketType>,
        profile: ProfileId,
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
            profile,
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

    pub fn unknown_node(&self) -> NodeId {
        NodeId(u16::try_from(self.nodes.len()).unwrap_or(u16::MAX))
    }

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

    pub fn server(&self, id: ServerId) -> Option<&ServerInfo> {
        self.servers.get(id.index())
    }

    pub fn servers(&self) -> &[ServerInfo] {
        &self.servers
    }

    /// How many profiles exist (the built-in default included); ids are `0..profile_count()`.
    pub fn profile_count(&self) -> usize {
        self.profile_names.len()
    }

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
}
