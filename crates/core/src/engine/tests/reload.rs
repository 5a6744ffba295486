//! Live reloads against the sans-IO engine alone (its epochs, the link changes it keeps for
//! servers it does not know yet, every alarm it emits): events in flight keep their policy,
//! removed servers leave the ring with their events moved, new servers and early link changes,
//! new timers.

use super::*;

fn policy_of(toml: &str) -> Arc<CompiledPolicy> {
    let config = load_str(toml, "reload.toml")
        .unwrap_or_else(|d| panic!("{d:?}"))
        .config;
    Arc::new(CompiledPolicy::compile(&config))
}

impl Harness {
    /// Applies `toml` as a reload would, with `timeout` as the new event timeout.
    fn reload(&mut self, toml: &str, timeout: Duration) {
        let config = load_str(toml, "reload.toml")
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config;
        let policy = Arc::new(CompiledPolicy::compile_after(&config, Some(&self.policy)));
        let cfg = EngineConfig {
            event_timeout: timeout,
            ..self.engine().config().clone()
        };
        let now = self.now;
        self.engine_mut().reconfigure(cfg, policy.clone(), now);
        self.policy = policy;
        self.collect();
    }

    /// A chat whose wait-mode request goes to `server`.
    fn chat_to(&mut self, server: ServerId) -> String {
        for n in 0..1000 {
            let before = self.sent.len();
            let id = self.chat(&format!("u{n}"), "bob");
            if self.sent.len() > before && self.sent[before].server == server {
                return id;
            }
            // Not that server's: finish it so it does not hold its key.
            let answered: Vec<usize> = (before..self.sent.len()).collect();
            for i in answered {
                self.pass(i);
            }
            while self.sent.len() > before && !self.verdicts.iter().any(|v| v.contains(&id)) {
                self.pass(self.sent.len() - 1);
            }
        }
        panic!("no conversation lands on {server:?}")
    }
}

#[test]
fn events_in_flight_keep_their_policy_and_new_ones_take_the_new_chain() {
    let mut h = all_up_engine();
    let old = h.chat("alice", "bob");
    assert_eq!(h.sent.len(), 1, "waits on the Wall profile");
    // The Wall profile stops looking at es_OUT.
    let new_toml = TWO_PROFILES.replace(
        "{ event = \"es_OUT\", packet = \"message\", handling = \"bounce\" },\n",
        "",
    );
    h.reload(&new_toml, TIMEOUT);
    assert_eq!(
        h.engine().policies_held(),
        1,
        "the old policy stays for its event"
    );
    let new = h.chat("carol", "dave");
    assert_eq!(h.sent.len(), 2);
    assert_eq!(h.sent[1].server, CS3, "new events skip the Wall step");
    assert!(h.sent[1].xml.contains("profile='Log'"));
    // The old event goes on through the old chain: Wall, then Log.
    h.pass(0);
    assert_eq!(h.sent.len(), 3);
    assert_eq!(h.sent[2].server, CS3);
    h.pass(2);
    assert!(h.verdict_for(&old).contains("action='pass'"));
    assert_eq!(
        h.engine().policies_held(),
        0,
        "its last event gone, so is the old policy"
    );
    h.pass(1);
    assert!(h.verdict_for(&new).contains("action='pass'"));
}

fn without_cs1() -> String {
    let toml = TWO_PROFILES.replace(
        "[[server]]\nname = \"cs1\"\nhost = \"127.0.0.1\"\nport = 1\npassword = \"p\"\nprofile = \"Wall\"\n",
        "",
    );
    assert_ne!(toml, TWO_PROFILES);
    toml
}

#[test]
fn a_removed_server_leaves_the_ring_but_answers_what_it_holds() {
    let mut h = all_up_engine();
    let id = h.chat_to(CS1);
    let held = h.sent.len() - 1;
    h.reload(&without_cs1(), TIMEOUT);
    assert!(h.policy.server(CS1).is_some_and(|s| s.retired));
    assert_eq!(h.engine().reach(CS1), Some(Reach::Down));
    assert_eq!(
        h.sent.len(),
        held + 1,
        "its request is not sent again elsewhere"
    );
    assert!(h.alarms.contains(&Alarm::LeftRing {
        server: CS1,
        state: crate::engine::AlarmState::Cleared
    }));
    // A late stream report for the retired server changes nothing.
    h.up(CS1);
    assert_eq!(h.engine().reach(CS1), Some(Reach::Down));
    // cs1 still answers the request it holds; the walk goes on to the Log profile.
    h.pass(held);
    assert_eq!(h.sent.last().map(|s| s.server), Some(CS3));
    h.pass(h.sent.len() - 1);
    assert!(h.verdict_for(&id).contains("action='pass'"));
    for n in 0..20 {
        let before = h.sent.len();
        h.chat(&format!("v{n}"), "bob");
        assert_eq!(h.sent[before].server, CS2, "cs1 takes nothing any more");
        h.pass(before);
        h.pass(h.sent.len() - 1);
    }
    assert_eq!(h.engine().in_flight(), 0);
}

#[test]
fn what_queued_for_a_removed_server_moves_at_once() {
    let mut h = all_up_engine();
    h.link(CS1, LinkChange::Down(Closing::Abrupt));
    let queued = (0..1000)
        .find_map(|n| {
            let before = h.sent.len();
            let id = h.chat(&format!("q{n}"), "bob");
            if h.sent.len() == before {
                return Some(id);
            }
            h.pass(before);
            h.pass(h.sent.len() - 1);
            None
        })
        .unwrap_or_else(|| panic!("no conversation of cs1's"));
    let before = h.sent.len();
    h.reload(&without_cs1(), TIMEOUT);
    assert_eq!(h.sent.len(), before + 1, "the queued request moved at once");
    assert_eq!(h.sent[before].server, CS2);
    assert_eq!(h.engine().counters().servers[CS1.index()].moved_away, 1);
    h.pass(before);
    h.pass(h.sent.len() - 1);
    assert!(h.verdict_for(&queued).contains("action='pass'"));
}

#[test]
fn a_new_server_takes_its_profile_and_early_link_reports_are_kept() {
    let mut h = all_up_engine();
    let cs4 = ServerId(3);
    // Another shard applied the reload first and its stream to cs4 came up.
    h.up(cs4);
    let with_cs4 = format!(
        "{}\n[[profile]]\nname = \"Audit\"\nevents = [ {{ event = \"onBeforeJoin\" }} ]\n\
         [[server]]\nname = \"cs4\"\nhost = \"127.0.0.1\"\nport = 4\npassword = \"p\"\nprofile = \"Audit\"\n",
        TWO_PROFILES.replace("priority = [\"Wall\", \"Log\"]", "priority = [\"Audit\", \"Wall\", \"Log\"]")
    );
    h.reload(&with_cs4, TIMEOUT);
    assert_eq!(
        h.engine().reach(cs4),
        Some(Reach::Up),
        "the early report was replayed"
    );
    let before = h.sent.len();
    let id = h.event(
        "onBeforeJoin",
        "",
        "<presence from='a@example.com/r' to='room@conference.example.com/a'/>",
    );
    assert_eq!(h.sent[before].server, cs4, "the new profile comes first");
    assert!(h.sent[before].xml.contains("profile='Audit'"));
    h.pass(before);
    h.pass(h.sent.len() - 1);
    assert!(h.verdict_for(&id).contains("action='pass'"));
    let c = h.engine().counters();
    assert_eq!(c.servers.len(), 4);
    assert_eq!(c.by_decider.len(), h.policy.profile_count() + 1);
}

#[test]
fn a_new_event_timeout_applies_to_new_events() {
    let mut h = all_up_engine();
    let old = h.chat("alice", "bob");
    h.reload(TWO_PROFILES, TIMEOUT * 5);
    let new = h.chat("carol", "dave");
    h.advance(TIMEOUT);
    assert!(h.verdict_for(&old).contains("remote-server-timeout"));
    assert!(!h
        .verdicts
        .iter()
        .any(|v| v.contains(&format!("id='{new}'"))));
    h.advance(TIMEOUT * 4);
    assert!(h.verdict_for(&new).contains("remote-server-timeout"));
}

#[test]
fn the_harness_policy_matches_a_plain_compile() {
    // compile_after without changes gives the same chains as a fresh compile.
    let fresh = policy_of(TWO_PROFILES);
    let again = CompiledPolicy::compile_after(
        &load_str(TWO_PROFILES, "t")
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config,
        Some(&fresh),
    );
    let node = fresh.node_id(b"imp1");
    for event in crate::policy::EventId::all() {
        assert_eq!(
            fresh.chain(event, Some(crate::policy::PacketType::Message), node),
            again.chain(event, Some(crate::policy::PacketType::Message), node)
        );
    }
}

/// The configurations a random schedule reloads between: the original, cs1 removed, a new
/// profile on a new server first in priority, and the Wall profile without es_OUT.
fn variants() -> Vec<String> {
    let with_cs4 = format!(
        "{}\n[[profile]]\nname = \"Audit\"\nevents = [ {{ event = \"es_OUT\", packet = \"message\" }} ]\n\
         [[server]]\nname = \"cs4\"\nhost = \"127.0.0.1\"\nport = 4\npassword = \"p\"\nprofile = \"Audit\"\n",
        TWO_PROFILES.replace(
            "priority = [\"Wall\", \"Log\"]",
            "priority = [\"Audit\", \"Wall\", \"Log\"]"
        )
    );
    let no_wall_on_chat = TWO_PROFILES.replace(
        "{ event = \"es_OUT\", packet = \"message\", handling = \"bounce\" },\n",
        "",
    );
    vec![
        TWO_PROFILES.to_owned(),
        without_cs1(),
        with_cs4,
        no_wall_on_chat,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 150, .. ProptestConfig::default() })]

    /// Reloads anywhere in a random schedule keep the engine's promise: every event ends
    /// exactly once, and once time runs out nothing is in flight and no earlier policy is held.
    #[test]
    fn reloads_anywhere_keep_every_event_ending_once(
        ops in proptest::collection::vec(
            prop_oneof![9 => op().prop_map(Some), 1 => Just(None)],
            1..120,
        ),
        picks in proptest::collection::vec(0usize..4, 16),
    ) {
        let variants = variants();
        let mut h = all_up_engine();
        let mut ids = Vec::new();
        let mut reloads = picks.iter().cycle();
        for op in ops {
            match op {
                Some(op) => apply(&mut h, &mut ids, op),
                None => {
                    let pick = reloads.next().copied().unwrap_or(0);
                    h.reload(&variants[pick], TIMEOUT);
                    // A new server's streams come up after its reload.
                    h.up(ServerId(3));
                }
            }
        }
        for _ in 0..30 {
            h.advance(TIMEOUT);
        }
        prop_assert_eq!(h.engine().in_flight(), 0);
        prop_assert_eq!(h.engine().policies_held(), 0);
        for id in &ids {
            let n = h.verdicts.iter().filter(|v| v.contains(&format!("id='{id}'"))).count();
            prop_assert_eq!(n, 1, "event {} got {} verdicts", id, n);
        }
    }
}
