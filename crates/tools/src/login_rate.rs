//! `palisade tuning relogin --measured`: the e_SESSION (login) throughput of a gateway and its
//! compliance servers, measured with the login-storm workload (every user of a node logging in
//! again at once after a failover: `e_SESSION` only, closed loop), either on a gateway and a
//! simulator started here on loopback or against a running gateway.
//!
//! Runs the load generator as a child process of this binary; owns no arithmetic (the tuning
//! model turns the rate into limits).

use crate::local::LocalGateway;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What to measure.
#[derive(Clone, Debug)]
pub enum Target {
    /// A gateway (embedded default configuration) and a simulator started here.
    Local { shards: usize },
    /// A running gateway, reached as a router.
    Running {
        connect: String,
        name: String,
        secret: String,
    },
}

/// A measured login rate and how it was obtained.
#[derive(Clone, Debug)]
pub struct Measured {
    pub logins_per_s: f64,
    pub logins: u64,
    pub p99_ms: f64,
    /// Where the figure comes from, for the output.
    pub origin: String,
}

/// The login-storm flags (the workload of `perf/profiles/login-storm-unthrottled.toml`, as a
/// closed loop: as fast as the gateway and its servers answer).
fn storm_args(duration: Duration, json: &Path) -> Vec<String> {
    [
        "--mix",
        "e_SESSION=1",
        "--users",
        "15000",
        "--rooms",
        "0",
        "--rate",
        "max",
        "--in-flight",
        "2000",
        "--connections",
        "2",
        "--duration",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("{}ms", duration.as_millis()),
        "--quiet".into(),
        "--json".into(),
        json.display().to_string(),
    ])
    .collect()
}

fn read_report(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("no load report: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("unreadable load report: {e}"))
}

/// Runs the storm for `duration` against `target`.
pub fn measure(target: &Target, duration: Duration) -> Result<Measured, String> {
    match target {
        Target::Local { shards } => {
            let local = LocalGateway::start("measure", *shards, &[]).map_err(|e| e.to_string())?;
            let json = local.path("storm.json");
            let status = local
                .load(&storm_args(duration, &json))
                .map_err(|e| e.to_string())?;
            let gateway = local.status().unwrap_or(Value::Null);
            let report = read_report(&json)?;
            if !status.success() {
                return Err(format!(
                    "the login storm did not complete cleanly: {report}"
                ));
            }
            // Logins pass when no server can take them (handling pass): such a run measures
            // nothing about the compliance server, so it is refused.
            let failed_open = gateway["events"]["terminal"]["failed_open"]
                .as_u64()
                .unwrap_or(0);
            if failed_open > 0 {
                return Err(format!("{failed_open} logins were passed without their compliance server: not a measurement"));
            }
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            let shards = gateway["shards"].as_u64().unwrap_or(0);
            Ok(summarize(&report, format!(
                "measured here: a login storm (e_SESSION, 15000 users, closed loop) through this build of the gateway \
                 ({shards} shard(s)) and `palisade sim`, all on this {cpus}-CPU machine"
            )))
        }
        Target::Running {
            connect,
            name,
            secret,
        } => {
            let dir = std::env::temp_dir().join(format!("palisade-measure-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let json = dir.join("storm.json");
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let status = Command::new(exe)
                .args([
                    "load",
                    "--connect",
                    connect,
                    "--name",
                    name,
                    "--secret",
                    secret,
                ])
                .args(storm_args(duration, &json))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .map_err(|e| e.to_string())?;
            let report = read_report(&json)?;
            if !status.success() {
                return Err(format!(
                    "the login storm did not complete cleanly: {report}"
                ));
            }
            Ok(summarize(&report, format!(
                "measured against the gateway at {connect} as router {name}: a login storm (e_SESSION, 15000 users, closed loop) \
                 through its compliance servers"
            )))
        }
    }
}

fn summarize(report: &Value, origin: String) -> Measured {
    let logins = report["answered"].as_u64().unwrap_or(0);
    let logins_per_s = report["answered_per_s"].as_f64().unwrap_or(0.0);
    let p99_ms = report["latency_us"]["p99"].as_f64().unwrap_or(0.0) / 1000.0;
    Measured {
        logins_per_s,
        logins,
        p99_ms,
        origin: format!("{origin}: {logins} logins, {logins_per_s:.0} logins/s"),
    }
}
