//! `palisade tuning relogin --measured`: the e_SESSION (login) throughput of a gateway and its
//! compliance servers, measured with the login-storm workload (every user of a node logging in
//! again at once after a failover: `e_SESSION` only, closed loop), either on a gateway and a
//! simulator started here on loopback or against a running gateway.
//!
//! Runs the load generator as a child process of this binary; owns no arithmetic (the tuning
//! model turns the rate into limits).

use crate::local::{LocalError, LocalGateway};
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

/// Why a login-rate measurement gave no figure.
#[derive(Debug)]
pub enum MeasureError {
    /// This machine's: the local gateway and simulator could not be started or driven.
    Local(LocalError),
    /// This machine's: a directory, this binary's path or the load generator's process.
    System(std::io::Error),
    /// This machine's: the load generator wrote no report.
    NoReport(std::io::Error),
    /// The load generator's report is not JSON (a mismatched binary).
    BadReport(serde_json::Error),
    /// The measured side's: the storm did not end cleanly (verdicts missing or wrong); the
    /// report says what it saw.
    Incomplete(Value),
    /// The measured side's: logins passed without their compliance server, so the figure
    /// would not measure the server.
    FailedOpen(u64),
}

impl std::fmt::Display for MeasureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeasureError::Local(e) => e.fmt(f),
            MeasureError::System(e) => e.fmt(f),
            MeasureError::NoReport(e) => write!(f, "no load report: {e}"),
            MeasureError::BadReport(e) => write!(f, "unreadable load report: {e}"),
            MeasureError::Incomplete(report) => {
                write!(f, "the login storm did not complete cleanly: {report}")
            }
            MeasureError::FailedOpen(n) => write!(
                f,
                "{n} logins were passed without their compliance server: not a measurement"
            ),
        }
    }
}

impl std::error::Error for MeasureError {}

fn read_report(path: &Path) -> Result<Value, MeasureError> {
    let text = std::fs::read_to_string(path).map_err(MeasureError::NoReport)?;
    serde_json::from_str(&text).map_err(MeasureError::BadReport)
}

/// Runs the storm for `duration` against `target`.
pub fn measure(target: &Target, duration: Duration) -> Result<Measured, MeasureError> {
    match target {
        Target::Local { shards } => {
            let local =
                LocalGateway::start("measure", *shards, &[]).map_err(MeasureError::Local)?;
            let json = local.path("storm.json");
            let status = local
                .load(&storm_args(duration, &json))
                .map_err(MeasureError::Local)?;
            let gateway = local.status().unwrap_or(Value::Null);
            let report = read_report(&json)?;
            if !status.success() {
                return Err(MeasureError::Incomplete(report));
            }
            // Logins pass when no server can take them (handling pass): such a run measures
            // nothing about the compliance server, so it is refused.
            let failed_open = gateway["events"]["terminal"]["failed_open"]
                .as_u64()
                .unwrap_or(0);
            if failed_open > 0 {
                return Err(MeasureError::FailedOpen(failed_open));
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
            std::fs::create_dir_all(&dir).map_err(MeasureError::System)?;
            let json = dir.join("storm.json");
            let exe = std::env::current_exe().map_err(MeasureError::System)?;
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
                .map_err(MeasureError::System)?;
            let report = read_report(&json)?;
            if !status.success() {
                return Err(MeasureError::Incomplete(report));
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
