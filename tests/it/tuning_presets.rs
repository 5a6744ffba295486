//! The gateway presets under tuning/presets/ stay valid: each, merged into a minimal
//! configuration, loads without errors or warnings and sets what it says.

use palisade_core::policy::load_str;

const BASE: &str = r#"
[[router]]
name = "imp1.example.com"
secret = "s"
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 7999
password = "p"
"#;

fn load(preset: &str) -> palisade_core::policy::Config {
    let path = format!(
        "{}/tuning/presets/{preset}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("preset exists");
    // The preset's [gateway] table gets the name every configuration needs.
    let text = text.replacen(
        "[gateway]\n",
        "[gateway]\nname = \"palisade.example.com\"\n",
        1,
    );
    let loaded =
        load_str(&format!("{text}\n{BASE}"), &path).unwrap_or_else(|d| panic!("{preset}: {d:?}"));
    assert!(
        loaded.warnings.is_empty(),
        "{preset}: {:?}",
        loaded.warnings
    );
    loaded.config
}

#[test]
fn presets_load_and_scale_up() {
    let small = load("small");
    let medium = load("medium");
    let large = load("large");
    assert_eq!(
        (
            small.gateway.shards,
            medium.gateway.shards,
            large.gateway.shards
        ),
        (2, 8, 0)
    );
    assert!(small.limits.queue_per_server < medium.limits.queue_per_server);
    assert!(medium.limits.queue_per_server < large.limits.queue_per_server);
    for c in [&small, &medium, &large] {
        assert_eq!(
            c.timers.event_timeout,
            std::time::Duration::from_secs(30),
            "the seed's event timer"
        );
        assert_eq!(
            c.timers.outage_window,
            std::time::Duration::from_secs(300),
            "the seed's outage window"
        );
    }
}
