//! The seed's own deployment examples, written as configuration files under `tests/configs/`,
//! must load cleanly and produce exactly the chains the seed describes.

use palisade::config::load_file;
use palisade_core::policy::{
    CompiledPolicy, Config, EventId, Handling, PacketType, SYSTEM_DEFAULT_PROFILE,
};
use std::path::PathBuf;

fn load(name: &str) -> (Config, CompiledPolicy) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name);
    match load_file(&path) {
        Ok(loaded) => {
            assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
            let policy = CompiledPolicy::compile(&loaded.config);
            (loaded.config, policy)
        }
        Err(diags) => {
            let text: Vec<_> = diags.iter().map(|d| d.to_string()).collect();
            panic!("{name} does not load:\n{}", text.join("\n"))
        }
    }
}

/// The chain for an event as `Profile@server` (servers joined by `+`), with handling and
/// fire-and-forget where they matter.
fn chain(p: &CompiledPolicy, event: &str, packet: Option<PacketType>) -> Vec<String> {
    let id = EventId::lookup(event.as_bytes()).unwrap_or_else(|| panic!("{event}"));
    p.chain(id, packet, p.node_id(b"imp1"))
        .iter()
        .map(|step| {
            let servers: Vec<_> = step
                .servers(p)
                .iter()
                .filter_map(|&s| p.server(s).map(|s| s.name.clone()))
                .collect();
            let mut text = format!("{}@{}", p.profile_name(step.profile), servers.join("+"));
            if step.handling == Handling::Pass {
                text.push_str(" pass");
            }
            if step.fire_and_forget {
                text.push_str(" notify");
            }
            text
        })
        .collect()
}

const MESSAGE: Option<PacketType> = Some(PacketType::Message);
const PRESENCE: Option<PacketType> = Some(PacketType::Presence);

#[test]
fn outage_example_routes_profile1_then_profile2() {
    let (config, p) = load("seed_outage_two_profiles.toml");
    let names: Vec<_> = config
        .priority
        .iter()
        .map(|&id| p.profile_name(id))
        .collect();
    assert_eq!(names, ["Profile1", "Profile2", SYSTEM_DEFAULT_PROFILE]);

    assert_eq!(
        chain(&p, "es_OUT", MESSAGE),
        ["Profile1@cs1", "Profile2@cs2"]
    );
    assert_eq!(
        chain(&p, "es_IN", MESSAGE),
        ["Profile1@cs1", "Profile2@cs2"]
    );
    assert_eq!(
        chain(&p, "e_SESSION", Some(PacketType::Iq)),
        ["Profile1@cs1"]
    );
    assert_eq!(chain(&p, "e_SESSION", PRESENCE), ["Profile1@cs1"]);
    assert_eq!(chain(&p, "es_END", PRESENCE), ["Profile1@cs1"]);
    assert!(chain(&p, "es_OUT", PRESENCE).is_empty());
    assert!(chain(&p, "es_OUT", Some(PacketType::Subscription)).is_empty());
    assert!(chain(&p, "es_OUT", None).is_empty());
    assert!(
        chain(&p, "onBeforeSend", None).is_empty(),
        "the default profile is not assigned"
    );
}

#[test]
fn outage_example_first_step_bounces_so_profile2_never_sees_a_failed_event() {
    let (_, p) = load("seed_outage_two_profiles.toml");
    let es_out = EventId::lookup(b"es_OUT").unwrap_or_else(|| panic!("es_OUT"));
    let steps = p.chain(es_out, MESSAGE, p.node_id(b"imp1"));
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0].handling, steps[0].fire_and_forget),
        (Handling::Bounce, false)
    );
}

#[test]
fn ethical_wall_is_consulted_before_im_logging() {
    let (config, p) = load("seed_ethical_wall_priority.toml");
    let defined: Vec<_> = config.profiles.iter().map(|pr| pr.name.as_str()).collect();
    assert_eq!(
        defined,
        [SYSTEM_DEFAULT_PROFILE, "IMLogging", "EthicalWall"]
    );

    assert_eq!(
        chain(&p, "es_OUT", MESSAGE),
        ["EthicalWall@wall", "IMLogging@logger pass"]
    );
    assert_eq!(
        chain(&p, "es_IN", MESSAGE),
        ["EthicalWall@wall", "IMLogging@logger pass"]
    );
    assert_eq!(
        chain(&p, "onBeforeSend", None),
        ["EthicalWall@wall", "IMLogging@logger pass"]
    );
    assert_eq!(chain(&p, "onBeforeJoin", PRESENCE), ["EthicalWall@wall"]);
    assert_eq!(
        chain(&p, "e_SESSION", Some(PacketType::Iq)),
        ["IMLogging@logger pass notify"]
    );
    assert!(chain(&p, "es_OUT", PRESENCE).is_empty());
    assert!(chain(&p, "onAfterJoin", PRESENCE).is_empty());
}

#[test]
fn without_routing_priority_definition_order_decides() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs/seed_ethical_wall_priority.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let without = text.replace("priority = [\"EthicalWall\", \"IMLogging\"]", "");
    assert_ne!(text, without);
    let loaded = palisade_core::policy::load_str(&without, "no-priority")
        .unwrap_or_else(|d| panic!("{d:?}"));
    let p = CompiledPolicy::compile(&loaded.config);
    assert_eq!(
        chain(&p, "es_OUT", MESSAGE),
        ["IMLogging@logger pass", "EthicalWall@wall"]
    );
}

#[test]
fn config_md_example_is_valid() {
    let (config, p) = load("config_md_example.toml");
    assert_eq!(config.servers[0].component, "op-cs1.palisade-example-com");
    assert_eq!(chain(&p, "es_OUT", MESSAGE), ["EthicalWall@cs1"]);
    assert_eq!(chain(&p, "onBeforeJoin", PRESENCE), ["EthicalWall@cs1"]);
}
