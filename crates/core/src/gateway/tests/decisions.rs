//! The decisions the runtime used to make, driven without sockets: read holds and room, the
//! shutdown's sequence, reload planning and the compliance listener, and a shard's status.

use super::*;
use crate::gateway::{ReadHold, Room, ShutdownStep, CLOSE_LIMIT, DRAIN_LIMIT, DRAIN_QUIET};
use proptest::prelude::*;

/// The tests' configuration with small limits: 4 events in flight, 1000 bytes of output, a
/// two-second event timeout.
fn limited() -> String {
    format!(
        "{}\n[limits]\nmax_in_flight = 4\nstream_buffer_bytes = 1000\n[timers]\nevent_timeout = \"2s\"\n",
        CONFIG
    )
}

/// A one-shard core with a router and cs1's stream up.
fn serving() -> (Shard, ConnId, ConnId) {
    let mut s = shard_with(&limited(), 0, 1);
    let link = s.link(CS1);
    let _ = s.outputs();
    let router = s.router();
    (s, router, link)
}

// ---- read holds ----

#[test]
fn a_router_reads_on_until_its_output_passes_the_limit_then_waits_for_half_of_it() {
    let (mut s, router, _) = serving();
    assert_eq!(s.core.poll_read_hold(router, 1000, || 0), ReadHold::Read);
    assert_eq!(
        s.core.poll_read_hold(router, 1001, || 0),
        ReadHold::UntilDrained(500)
    );
    assert_eq!(s.core.counters().router_output_pauses, 1);
    assert_eq!(s.core.counters().read_pauses, 0);
}

#[test]
fn a_router_waits_for_room_at_max_in_flight_and_looks_again_at_half_of_it() {
    let (mut s, router, _) = serving();
    let t0 = s.now;
    for (i, who) in ["a", "b"].iter().enumerate() {
        s.chat(router, &format!("R{i}"), who);
        let _ = s.outputs();
    }
    s.now = t0 + Duration::from_secs(1);
    for (i, who) in ["c", "d"].iter().enumerate() {
        s.chat(router, &format!("S{i}"), who);
        let _ = s.outputs();
    }
    assert_eq!(s.core.in_flight(), 4);
    assert_eq!(s.core.poll_read_hold(router, 0, || 0), ReadHold::UntilRoom);
    assert_eq!(s.core.counters().read_pauses, 1);
    assert!(s.core.holds_peer_events());
    assert_eq!(s.core.room(|| 0), Room::None);
    // The first two time out: back at the low watermark.
    s.core.handle_timeout(t0 + Duration::from_millis(2500));
    let _ = s.outputs();
    assert_eq!(s.core.in_flight(), 2);
    assert!(!s.core.holds_peer_events());
    assert_eq!(s.core.room(|| 2), Room::EventsAndReads);
    assert_eq!(s.core.room(|| 3), Room::Events, "the outbox is still long");
    assert_eq!(s.core.poll_read_hold(router, 0, || 0), ReadHold::Read);
}

#[test]
fn a_full_outbox_holds_router_reads_but_never_a_compliance_stream() {
    let (mut s, router, link) = serving();
    assert_eq!(s.core.poll_read_hold(router, 0, || 4), ReadHold::UntilRoom);
    assert_eq!(s.core.poll_read_hold(link, 0, || 4), ReadHold::Read);
    assert_eq!(
        s.core.poll_read_hold(link, 5000, || 4),
        ReadHold::UntilDrained(500)
    );
    assert_eq!(s.core.counters().server_output_pauses, 1);
    // A connection the core no longer knows is not held.
    assert_eq!(
        s.core.poll_read_hold(ConnId(9999), 5000, || 4),
        ReadHold::Read
    );
}

#[test]
fn events_from_other_shards_are_not_held_once_shutting_down() {
    let (mut s, router, _) = serving();
    for i in 0..4 {
        s.chat(router, &format!("R{i}"), &format!("u{i}"));
        let _ = s.outputs();
    }
    assert!(s.core.holds_peer_events());
    let now = s.now;
    s.core.handle_shutdown(now);
    let _ = s.outputs();
    assert!(!s.core.holds_peer_events());
}

/// One step of a router's life, for the property below.
#[derive(Clone, Debug)]
enum Step {
    Event,
    Later(u64),
    Hold { unwritten: usize, outbox: usize },
    Room { outbox: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Event),
        1 => (0u64..3000).prop_map(Step::Later),
        3 => (0usize..2000, 0usize..8).prop_map(|(unwritten, outbox)| Step::Hold { unwritten, outbox }),
        2 => (0usize..8).prop_map(|outbox| Step::Room { outbox }),
    ]
}

proptest! {
    /// Whatever a router sends and however time passes: the hold is the output's while it is
    /// past the limit, the shard's while its engine or outbox is full, and read otherwise; a
    /// reader woken by room reads on (no wake-up into another hold); every pause is counted.
    #[test]
    fn holds_follow_the_limits_and_room_always_lets_a_reader_read(
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let (mut s, router, _) = serving();
        let (mut pauses, mut output_pauses) = (0, 0);
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Event => {
                    s.chat(router, &format!("R{i}"), &format!("u{i}"));
                    let _ = s.outputs();
                }
                Step::Later(ms) => {
                    s.now += Duration::from_millis(ms);
                    let now = s.now;
                    s.core.handle_timeout(now);
                    let _ = s.outputs();
                }
                Step::Hold { unwritten, outbox } => {
                    let full = s.core.in_flight() >= 4 || outbox >= 4;
                    let want = if unwritten > 1000 {
                        output_pauses += 1;
                        ReadHold::UntilDrained(500)
                    } else if full {
                        pauses += 1;
                        ReadHold::UntilRoom
                    } else {
                        ReadHold::Read
                    };
                    prop_assert_eq!(s.core.poll_read_hold(router, unwritten, || outbox), want);
                }
                Step::Room { outbox } => {
                    if s.core.room(|| outbox) == Room::EventsAndReads {
                        prop_assert_eq!(s.core.poll_read_hold(router, 0, || outbox), ReadHold::Read);
                    }
                }
            }
            prop_assert!(s.core.in_flight() <= 64);
        }
        prop_assert_eq!(s.core.counters().read_pauses, pauses);
        prop_assert_eq!(s.core.counters().router_output_pauses, output_pauses);
    }
}

// ---- shutdown ----

#[test]
fn an_idle_shard_closes_its_streams_once_it_stayed_quiet_then_is_done() {
    let (mut s, router, link) = serving();
    let t0 = s.now;
    s.core.handle_shutdown(t0);
    let out = s.outputs();
    assert!(logs(&out).contains(&(
        Level::Info,
        "Shutting down: answering events in flight".to_owned()
    )));
    let quiet = t0 + DRAIN_QUIET;
    assert_eq!(
        s.core.poll_shutdown(t0, true),
        ShutdownStep::Drain { until: quiet }
    );
    assert_eq!(
        s.core.poll_shutdown(t0 + Duration::from_millis(100), true),
        ShutdownStep::Drain { until: quiet },
        "progress that leaves the shard idle keeps the quiet period"
    );
    let ShutdownStep::Close {
        mut conns,
        flush_until,
    } = s.core.poll_shutdown(quiet, true)
    else {
        panic!("closes once quiet");
    };
    conns.sort_by_key(|c| c.0);
    let mut want = vec![router, link];
    want.sort_by_key(|c| c.0);
    assert_eq!(conns, want);
    assert_eq!(flush_until, quiet + CLOSE_LIMIT);
    assert_eq!(s.core.poll_shutdown(quiet, true), ShutdownStep::Done);
}

#[test]
fn a_busy_shard_drains_until_the_limit_and_busy_progress_starts_the_quiet_again() {
    let (mut s, _, _) = serving();
    let t0 = s.now;
    s.core.handle_shutdown(t0);
    let _ = s.outputs();
    let deadline = t0 + DRAIN_LIMIT;
    let at = |ms| t0 + Duration::from_millis(ms);
    // Messages still queued for another shard: busy.
    assert_eq!(
        s.core.poll_shutdown(t0, false),
        ShutdownStep::Drain { until: deadline }
    );
    assert_eq!(
        s.core.poll_shutdown(at(50), true),
        ShutdownStep::Drain {
            until: at(50) + DRAIN_QUIET
        }
    );
    assert_eq!(
        s.core.poll_shutdown(at(100), false),
        ShutdownStep::Drain { until: deadline }
    );
    assert_eq!(
        s.core.poll_shutdown(at(120), true),
        ShutdownStep::Drain {
            until: at(120) + DRAIN_QUIET
        },
        "the quiet period started again"
    );
    assert!(matches!(
        s.core.poll_shutdown(deadline, false),
        ShutdownStep::Close { .. }
    ));
}

#[test]
fn the_quiet_period_never_outlasts_the_drain_limit_and_only_shard_0_says_it_stops() {
    let mut s = shard_with(&limited(), 1, 2);
    let t0 = s.now;
    assert_eq!(
        s.core.poll_shutdown(t0, true),
        ShutdownStep::Done,
        "not started"
    );
    s.core.handle_shutdown(t0);
    let out = s.outputs();
    assert!(logs(&out).is_empty(), "{out:?}");
    let late = t0 + DRAIN_LIMIT - Duration::from_millis(10);
    assert_eq!(
        s.core.poll_shutdown(late, true),
        ShutdownStep::Drain {
            until: t0 + DRAIN_LIMIT
        }
    );
}

// ---- reloads ----

#[test]
fn a_reload_plan_keeps_restart_only_settings_and_says_so() {
    let mut s = shard(0, 1);
    let toml = CONFIG.replace(
        "compliance = \"127.0.0.1:5276\"",
        "compliance = \"127.0.0.1:5276\"\nrouters = \"127.0.0.1:6000\"",
    );
    let config = load_str(&toml, "reload.toml").unwrap().config;
    let running = s.core.config().listen.routers;
    let plan = s.core.plan_reload(config, false).expect("accepted");
    assert_eq!(plan.config.listen.routers, running, "kept until a restart");
    let out = s.outputs();
    assert_eq!(
        logs(&out),
        [(
            Level::Warn,
            "[listen] routers changed: it takes effect at the next restart".to_owned()
        )]
    );
    // Ids are kept: the new policy names the same servers the same way.
    assert_eq!(plan.policy.servers().len(), s.core.policy().servers().len());
    assert_eq!(plan.policy.servers()[0].name, "cs1");
    // Nothing is in force before handle_reconfigure.
    assert_ne!(Arc::as_ptr(&plan.config), Arc::as_ptr(s.core.config()));
}

#[test]
fn a_reload_that_renames_the_gateway_is_refused() {
    let mut s = shard(0, 1);
    let toml = CONFIG.replace("name = \"gw.example.com\"", "name = \"other.example.com\"");
    let config = load_str(&toml, "reload.toml").unwrap().config;
    assert!(s.core.plan_reload(config, false).is_err());
    assert!(s.outputs().is_empty());
}

#[test]
fn the_compliance_port_opens_where_the_shard_listens_and_some_server_dials_in() {
    assert!(shard(0, 2).core.listens_for_compliance());
    assert!(
        !shard(1, 2).core.listens_for_compliance(),
        "shard 0 accepts"
    );
    let reuse = CONFIG.replace(
        "name = \"gw.example.com\"",
        "name = \"gw.example.com\"\naccept = \"reuseport\"",
    );
    assert!(shard_with(&reuse, 1, 2).core.listens_for_compliance());
    assert!(shard_with(&reuse, 1, 2).core.listens_for_routers());
    assert!(!shard(1, 2).core.listens_for_routers());
    let outbound_only = CONFIG.replace(
        "mode = \"inbound\"",
        "mode = \"outbound\"\nhost = \"h\"\nport = 2",
    );
    assert!(!shard_with(&outbound_only, 0, 1)
        .core
        .listens_for_compliance());
}

// ---- status ----

#[test]
fn the_status_names_each_servers_profile_its_link_the_routers_and_the_alarms() {
    let (mut s, router, link) = serving();
    let _ = s.core.poll_read_hold(router, 0, || 4);
    let st = s.core.status(s.now, SystemTime::now());
    assert_eq!(st.routers, ["imp1.example.com"]);
    assert_eq!(st.servers[0].name, "cs1");
    assert_eq!(st.servers[0].profile, "Wall");
    assert!(st.servers[0].local_link);
    assert_eq!(st.servers[1].profile, "Rooms");
    assert!(!st.servers[1].local_link);
    assert_eq!(st.gateway.read_pauses, 1);
    assert!(st.spool.is_none());
    let now = s.now;
    s.core.handle_connection_event(
        link,
        ConnectionEvent::Ended(crate::wire::Closed::TransportEnded),
        now,
    );
    let _ = s.outputs();
    let st = s.core.status(now, SystemTime::now());
    assert!(!st.servers[0].local_link);
    assert_eq!(
        st.alarms,
        [(
            "ComplianceServerConnectionLost".to_owned(),
            "cs1".to_owned()
        )]
    );
}

// ---- the runtime's timer and a link's room ----

#[test]
fn the_timer_task_sleeps_until_the_next_deadline_but_at_most_one_tick() {
    let (mut s, router, _) = serving();
    let now = s.now;
    // Idle: one tick, a twentieth of the 2 s event timeout (the outage window is longer).
    assert_eq!(s.core.poll_timer_wait(now), Duration::from_millis(100));
    s.chat(router, "R0", "alice");
    let _ = s.outputs();
    let deadline = s.core.poll_timeout().expect("the event's timer");
    let near = deadline - Duration::from_millis(30);
    assert_eq!(s.core.poll_timer_wait(near), Duration::from_millis(30));
    assert_eq!(
        s.core.poll_timer_wait(deadline + Duration::from_secs(1)),
        Duration::from_micros(100),
        "never a busy loop"
    );
    assert_eq!(s.core.link_low_water(), 500);
}
