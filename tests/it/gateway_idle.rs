//! An idle gateway sleeps: no task of it looks at a flag, a queue or a socket on a timer; and a
//! wake-up submits only the io_uring requests it needs.
//!
//! What it counts is the process's voluntary context switches (every thread's, from
//! `/proc/PID/task/*/status`): each time a thread blocks, once per wake-up of an executor. A
//! gateway that nobody talks to keeps one timer per shard, the engine's tick (100 ms with the
//! default timers), so two shards block about 20 times a second. When it still polled (a
//! 20 ms stop-flag check per shard, a 100 ms accept tick per listener) the same gateway blocked
//! about 100 times a second. A count, not a timing: a busy machine delays wake-ups but does
//! not add them.

use crate::support;

use std::time::Duration;
use support::{
    component, config, free_port, server_block, Gateway, TestRouter, TestServer, SECOND,
};

/// Voluntary context switches of every thread of `pid`.
fn voluntary_switches(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("status")).ok())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

#[test]
fn an_idle_gateway_wakes_only_for_its_engine_ticks() {
    const SHARDS: u64 = 2;
    const IDLE: Duration = Duration::from_secs(3);
    let mut gw = Gateway::start(&config(SHARDS as usize, "", ""));
    // Past the start (the start-up watch, the test's own probe of the router port).
    std::thread::sleep(Duration::from_secs(1));
    let before = voluntary_switches(gw.pid());
    std::thread::sleep(IDLE);
    let grown = voluntary_switches(gw.pid()) - before;
    // Ten ticks a second per shard, with room for twice as many: polling made it about fifty.
    let bound = IDLE.as_secs() * SHARDS * 20;
    assert!(
        grown <= bound,
        "{grown} voluntary context switches in {IDLE:?} of idling (at most {bound} expected)"
    );
    assert!(gw.stop().success());
}

/// Submissions the io_uring rings of `pid` have taken so far (`SqHead` in their fdinfo: glommio
/// keeps three rings per executor).
fn uring_submissions(pid: u32) -> u64 {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the gateway's descriptors");
    fds.filter_map(|fd| {
        let fd = fd.ok()?;
        let target = std::fs::read_link(fd.path()).ok()?;
        if target.to_str()? != "anon_inode:[io_uring]" {
            return None;
        }
        let info =
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_str()?))
                .ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("SqHead:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    })
    .sum()
}

/// A gateway that sleeps between events submits about three io_uring requests per wake-up here:
/// the re-armed reads of the two sockets that woke it and the ring link it sleeps on. No timer:
/// the engine's tick stays armed across sleeps, and preemption is a deadline against the clock.
/// glommio 0.9.0 as published cancelled and armed its timers again on every executor turn,
/// about eighteen submissions per wake-up in this test, and a preemption timer armed at each
/// wake-up and cancelled before each sleep made about five (vendor/glommio/PALISADE.md). A
/// count, not a timing.
#[test]
fn a_wake_up_submits_no_timer() {
    const EVENTS: u64 = 100;
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let mut gw = Gateway::start(&config(
        1,
        "",
        &server_block("cs1", port, "SystemDefaultComplianceProfile"),
    ));
    assert!(server.wait_streams(1, 5 * SECOND), "log:\n{}", gw.log.all());
    let mut router = TestRouter::connect(&gw);
    let mut one_event = |i: u64| {
        let id = router.chat("alice", "bob", &format!("message {i}"));
        assert!(router.verdict_for(&id, 5 * SECOND).is("pass"));
        // Long enough for the gateway to go to sleep before the next one.
        std::thread::sleep(Duration::from_millis(2));
    };
    for i in 0..20 {
        one_event(i);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (submitted, slept) = (uring_submissions(gw.pid()), voluntary_switches(gw.pid()));
    for i in 0..EVENTS {
        one_event(i);
    }
    let submitted = uring_submissions(gw.pid()) - submitted;
    let slept = voluntary_switches(gw.pid()) - slept;
    // Each event wakes the gateway at least once (its arrival); each wake-up ends in a sleep.
    assert!(slept >= EVENTS, "{slept} sleeps for {EVENTS} events");
    let per_sleep = submitted as f64 / slept as f64;
    eprintln!("{submitted} io_uring submissions over {slept} sleeps: {per_sleep:.2} per sleep");
    assert!(
        per_sleep <= 4.0,
        "{submitted} io_uring submissions over {slept} sleeps ({per_sleep:.2} per sleep; at most 4 expected)"
    );
    assert!(gw.stop().success());
}
