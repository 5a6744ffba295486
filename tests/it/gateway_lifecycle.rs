//! Start-up and shutdown of the real binary, over and over: two shards, a router leg that
//! dials a port where nothing listens and a compliance server that is down. Every start must
//! open the router port within a few seconds, and every SIGTERM must end the process with
//! status 0 within a few seconds.
//!
//! Each run is short, so rare faults of the start-up and exit paths show up here. Before they
//! were fixed (see `src/runtime/startup.rs`), shards that slept through their channel-mesh
//! join (no router port, SIGTERM ignored) and exits that died of SIGSEGV after "Palisade
//! stopped" (a heap corrupted by the mesh builder) together failed 2 to 10 % of iterations of
//! a debug build on two busy cores, and this test in three runs out of three.

use crate::support;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use support::{free_port, Gateway, GATEWAY, ROUTER, ROUTER_SECRET};

/// Starts and stops per run: about 30 s in a debug build on two busy cores.
const ITERATIONS: usize = 120;
/// How long a start may take to log that it listens for routers.
const START_LIMIT: Duration = Duration::from_secs(5);
/// How long the process may take to exit after SIGTERM (the drain itself takes 150 ms when
/// nothing is in flight).
const STOP_LIMIT: Duration = Duration::from_secs(5);

fn config() -> String {
    let (router_port, server_port) = (free_port(), free_port());
    format!(
        r#"
[gateway]
name = "{GATEWAY}"
domain = "example.com"
shards = 2
admin = "127.0.0.1:{{ADMIN_PORT}}"

[listen]
routers = "127.0.0.1:{{ROUTER_PORT}}"

[timers]
reconnect_min = "20ms"
reconnect_max = "100ms"

[[router]]
name = "{ROUTER}"
secret = "{ROUTER_SECRET}"
connect = "127.0.0.1:{router_port}"

[[server]]
name = "cs1"
host = "127.0.0.1"
port = {server_port}
password = "pw-cs1"
profile = "SystemDefaultComplianceProfile"
"#
    )
}

#[test]
fn every_start_listens_and_every_sigterm_exits_zero() {
    let began = Instant::now();
    for i in 1..=ITERATIONS {
        let mut gw = Gateway::spawn(&config());
        let listening = gw.log.wait_for("Listening for routers", START_LIMIT);
        if !listening {
            let stopped = gw.stop_within(STOP_LIMIT);
            panic!(
                "start {i} of {ITERATIONS}: no \"Listening for routers\" within {START_LIMIT:?} \
                 (then SIGTERM: {stopped:?}); log:\n{}",
                gw.log.all()
            );
        }
        let Some(status) = gw.stop_within(STOP_LIMIT) else {
            panic!(
                "start {i} of {ITERATIONS}: SIGTERM did not end the gateway within \
                 {STOP_LIMIT:?}; log:\n{}",
                gw.log.all()
            );
        };
        assert!(
            status.code() == Some(0),
            "start {i} of {ITERATIONS}: the gateway exited with {status:?} (signal {:?}); \
             log:\n{}",
            status.signal(),
            gw.log.all()
        );
        if let Some(dir) = gw.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    eprintln!("{ITERATIONS} starts and stops in {:?}", began.elapsed());
}

/// Set to `1` in the gateway's environment, it blocks the first shard's thread for two
/// minutes right after it joins the channel mesh, as a shard that cannot make progress would;
/// set to `first-task`, it puts the first shard's first task to sleep until a signal
/// (`src/runtime/startup.rs`).
const STALL_VAR: &str = "PALISADE_TEST_STALL_START";
/// How long a gateway with a stalled shard may take to end after SIGTERM: the five seconds
/// the starting thread gives the shards, plus the margin of a debug build on busy cores.
const STALLED_STOP_LIMIT: Duration = Duration::from_secs(20);

fn config_with_shards(shards: usize) -> String {
    config().replace("shards = 2", &format!("shards = {shards}"))
}

#[test]
fn sigterm_ends_a_gateway_whose_shard_is_stalled_in_start_up() {
    for shards in [1, 2] {
        let mut gw = Gateway::spawn_with(&config_with_shards(shards), |c| {
            c.env(STALL_VAR, "1");
        });
        // Logged once the signal handlers are installed.
        assert!(
            gw.log.wait_for(" starting: ", START_LIMIT),
            "{shards} shard(s): no start-up line; log:\n{}",
            gw.log.all()
        );
        let began = Instant::now();
        let Some(status) = gw.stop_within(STALLED_STOP_LIMIT) else {
            panic!(
                "{shards} shard(s): SIGTERM did not end a gateway with a stalled shard within \
                 {STALLED_STOP_LIMIT:?}; log:\n{}",
                gw.log.all()
            );
        };
        assert_eq!(
            status.code(),
            Some(1),
            "{shards} shard(s): exited with {status:?} after {:?}; log:\n{}",
            began.elapsed(),
            gw.log.all()
        );
        assert!(
            gw.log
                .wait_for("exiting without a graceful stop", START_LIMIT),
            "{shards} shard(s): the exit does not say why; log:\n{}",
            gw.log.all()
        );
        if let Some(dir) = gw.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A shard whose executor parks before its first task has run has nothing of its own to wake
/// it: the hook puts that shard's first task in `pause`, which only a signal ends. The starting
/// thread must see an executor thread that never entered and nudge it, and the gateway must
/// then start and stop as any other.
#[test]
fn a_shard_asleep_before_its_first_task_is_nudged_and_the_gateway_starts() {
    for shards in [1, 2] {
        let mut gw = Gateway::spawn_with(&config_with_shards(shards), |c| {
            c.env(STALL_VAR, "first-task");
        });
        let deadline = Instant::now() + START_LIMIT;
        while std::net::TcpStream::connect(gw.router_addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{shards} shard(s): the gateway never listened with a shard asleep before its \
                 first task; log:\n{}",
                gw.log.all()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let Some(status) = gw.stop_within(STOP_LIMIT) else {
            panic!(
                "{shards} shard(s): SIGTERM did not end the gateway within {STOP_LIMIT:?}; log:\n{}",
                gw.log.all()
            );
        };
        assert_eq!(
            status.code(),
            Some(0),
            "{shards} shard(s): exited with {status:?}; log:\n{}",
            gw.log.all()
        );
        if let Some(dir) = gw.config_path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn sigterm_as_early_as_possible_still_stops_gracefully() {
    for shards in [1, 2] {
        for i in 1..=5 {
            let mut gw = Gateway::spawn(&config_with_shards(shards));
            assert!(
                gw.log.wait_for(" starting: ", START_LIMIT),
                "{shards} shard(s), start {i}: no start-up line; log:\n{}",
                gw.log.all()
            );
            let Some(status) = gw.stop_within(STOP_LIMIT) else {
                panic!(
                    "{shards} shard(s), start {i}: SIGTERM during start-up did not end the \
                     gateway within {STOP_LIMIT:?}; log:\n{}",
                    gw.log.all()
                );
            };
            assert!(
                status.code() == Some(0),
                "{shards} shard(s), start {i}: exited with {status:?} (signal {:?}); log:\n{}",
                status.signal(),
                gw.log.all()
            );
            if let Some(dir) = gw.config_path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
