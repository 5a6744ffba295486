//! An idle gateway sleeps: no task of it looks at a flag, a queue or a socket on a timer.
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
use support::{config, Gateway};

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
