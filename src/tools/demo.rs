//! `palisade demo`: the gateway with its embedded default configuration, a simulator enforcing
//! an ethical wall between traders and research, and the load generator, on loopback, in one
//! command with no setup. The load generator's progress lines are the live view, with a line
//! from the gateway's own status each second; a summary closes it (events, verdicts by action,
//! walls enforced, latency percentiles, and a reconciliation against the simulator's archive).
//!
//! Runs the three as child processes of this same binary, so what the demo shows is exactly
//! what `palisade run`, `palisade sim` and `palisade load` do.

use clap::Args;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The walls the demo's simulator enforces (also `perf/rules/demo-walls.toml`).
const DEMO_RULES: &str = include_str!("../../perf/rules/demo-walls.toml");

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How long the load runs.
    #[arg(long, default_value = "15s", value_parser = crate::tools::units::parse_span)]
    pub duration: Duration,
    /// Events per second the load generator sends.
    #[arg(long, default_value_t = 2000)]
    pub rate: u32,
    /// Users in the population (spread over trading, research and the rest of the company).
    #[arg(long, default_value_t = 300)]
    pub users: u32,
    /// Gateway shards (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
}

/// Why the demo could not run.
#[derive(Debug)]
pub enum DemoError {
    Setup(String),
    Child(&'static str, std::io::Error),
    NotReady(&'static str, String),
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Setup(e) => write!(f, "demo setup failed: {e}"),
            DemoError::Child(what, e) => write!(f, "cannot start the {what}: {e}"),
            DemoError::NotReady(what, log) => write!(f, "the {what} did not come up:\n{log}"),
        }
    }
}

struct Children(Vec<(&'static str, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            // SIGTERM first (graceful), then make sure.
            let _ = Command::new("kill").arg(c.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.0 {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_addr() -> Result<SocketAddr, DemoError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| DemoError::Setup(format!("no free loopback port: {e}")))
}

/// The embedded default configuration with loopback ports that are free right now.
fn demo_config(
    router: SocketAddr,
    compliance: SocketAddr,
    sim: SocketAddr,
    admin: SocketAddr,
    shards: usize,
) -> String {
    crate::policy::DEFAULT_TOML
        .replace("127.0.0.1:5275", &router.to_string())
        .replace("127.0.0.1:5276", &compliance.to_string())
        .replace("port = 7999", &format!("port = {}", sim.port()))
        .replace(
            "# admin = \"127.0.0.1:9180\"",
            &format!("admin = \"{admin}\""),
        )
        .replace("shards = 0 ", &format!("shards = {shards} "))
}

fn spawn(
    exe: &Path,
    what: &'static str,
    args: &[String],
    log: Option<&Path>,
) -> Result<Child, DemoError> {
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null());
    match log {
        Some(path) => {
            let f = std::fs::File::create(path).map_err(|e| DemoError::Child(what, e))?;
            let f2 = f.try_clone().map_err(|e| DemoError::Child(what, e))?;
            cmd.stdout(f).stderr(f2);
        }
        None => {
            cmd.stdout(Stdio::null());
        }
    }
    cmd.spawn().map_err(|e| DemoError::Child(what, e))
}

fn status(admin: SocketAddr) -> Option<Value> {
    let body = crate::ops::http_get::get(admin, "/status").ok()?;
    serde_json::from_str(&body).ok()
}

/// Runs the demo; returns the exit code.
pub fn run(args: DemoArgs) -> Result<i32, DemoError> {
    let exe = std::env::current_exe().map_err(|e| DemoError::Setup(e.to_string()))?;
    let dir: PathBuf = std::env::temp_dir().join(format!("palisade-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| DemoError::Setup(e.to_string()))?;
    let (router, compliance, sim, admin) = (free_addr()?, free_addr()?, free_addr()?, free_addr()?);
    let config = dir.join("palisade.toml");
    let rules = dir.join("walls.toml");
    let archive = dir.join("archive.jsonl");
    let load_json = dir.join("load.json");
    let write =
        |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| DemoError::Setup(e.to_string()));
    write(
        &config,
        &demo_config(router, compliance, sim, admin, args.shards),
    )?;
    write(&rules, DEMO_RULES)?;

    println!("Palisade demo: an ethical wall between traders and research, on loopback.");
    println!("  gateway   palisade run (embedded default configuration), routers on {router}, status on http://{admin}/status");
    println!("  simulator palisade sim on {sim}: walls traders <-> research, content rules (disclaimer, insider)");
    println!("  load      palisade load: {} events/s for {:?}, {} users over trading., research. and example.com", args.rate, args.duration, args.users);
    println!("  logs and files in {}", dir.display());
    println!();

    let mut children = Children(Vec::new());
    let sim_args: Vec<String> = [
        "sim",
        "--listen",
        &sim.to_string(),
        "--name",
        "op-cs1.palisade-example-com",
        "--secret",
        "palisade-demo-password",
        "--rules",
        &rules.to_string_lossy(),
        "--archive",
        &archive.to_string_lossy(),
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    children.0.push((
        "simulator",
        spawn(&exe, "simulator", &sim_args, Some(&dir.join("sim.log")))?,
    ));
    let gw_args = vec![
        "run".to_owned(),
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
    ];
    children.0.push((
        "gateway",
        spawn(&exe, "gateway", &gw_args, Some(&dir.join("gateway.log")))?,
    ));

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let up = status(admin)
            .and_then(|s| s["servers"][0]["streams"].as_u64())
            .unwrap_or(0);
        if up > 0 {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
            return Err(DemoError::NotReady("gateway", log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let load_args: Vec<String> = [
        "load",
        "--connect",
        &router.to_string(),
        "--name",
        "imp1.example.com",
        "--secret",
        "palisade-demo-secret",
        "--domain",
        "trading.example.com,research.example.com,example.com",
        "--users",
        &args.users.to_string(),
        "--rate",
        &args.rate.to_string(),
        "--duration",
        &format!("{}ms", args.duration.as_millis()),
        "--json",
        &load_json.to_string_lossy(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut load = Command::new(&exe)
        .args(&load_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| DemoError::Child("load generator", e))?;
    // The live view: the load generator prints its line each second on stderr; the gateway's
    // own view follows it.
    let load_status = loop {
        if let Ok(Some(s)) = load.try_wait() {
            break s;
        }
        std::thread::sleep(Duration::from_secs(1));
        if let Some(s) = status(admin) {
            let t = &s["events"]["terminal"];
            eprintln!(
                "gateway  | received {} | in flight {} | pass {} handle {} bounce {} drop {} | cs1 {}",
                s["events"]["received"], s["events"]["in_flight"], t["pass"], t["handle"], t["bounce"], t["drop"],
                s["servers"][0]["state"].as_str().unwrap_or("?").to_uppercase()
            );
        }
    };
    let gateway = status(admin);
    drop(children);
    let report: Value = std::fs::read_to_string(&load_json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let archived = std::fs::read_to_string(&archive)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    print_summary(&report, gateway.as_ref(), archived);
    Ok(if load_status.success() { 0 } else { 1 })
}

fn print_summary(load: &Value, gateway: Option<&Value>, archived: usize) {
    let v = &load["verdicts"];
    let n = |x: &Value| x.as_u64().unwrap_or(0);
    let l = &load["latency_us"];
    let ms = |x: &Value| x.as_f64().unwrap_or(0.0) / 1000.0;
    println!();
    println!("Demo summary");
    println!(
        "  events sent {}, answered {} ({:.0}/s)",
        n(&load["sent"]),
        n(&load["answered"]),
        load["answered_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  verdicts: pass {}, pass with a disclaimer {}, handle {}, bounce {}, drop {}; bad-request {}",
        n(&v["pass"]), n(&v["pass_modified"]), n(&v["handle"]), n(&v["bounce"]), n(&v["drop"]), n(&load["bad_request"])
    );
    println!("  walls enforced: {} events stopped at the wall (bounced), {} taken over by the compliance server (insider)", n(&v["bounce"]), n(&v["handle"]));
    println!(
        "  latency (router's view, open loop): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(&l["p50"]), ms(&l["p90"]), ms(&l["p99"]), ms(&l["p999"]), ms(&l["max"])
    );
    if let Some(g) = gateway {
        let t = &g["events"]["terminal"];
        println!(
            "  gateway: {} received; pass {}, handle {}, bounce {}, drop {}, failed-open {}; {} shard(s)",
            g["events"]["received"], t["pass"], t["handle"], t["bounce"], t["drop"], t["failed_open"], g["shards"]
        );
    }
    println!("  simulator archive: {archived} events recorded (every event that reached the compliance server)");
    let ok = load["ok"].as_bool().unwrap_or(false);
    println!(
        "  {}",
        if ok {
            "OK: every event got exactly one verdict"
        } else {
            "FAILED: see the load generator's report above"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_the_default_with_free_ports() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let text = demo_config(a(1), a(2), a(3), a(4), 1);
        let loaded = crate::policy::load_str(&text, "demo.toml").expect("valid");
        let c = loaded.config;
        assert_eq!(c.listen.routers, a(1));
        assert_eq!(c.servers[0].port, 3);
        assert_eq!(c.gateway.admin, Some(a(4)));
        assert_eq!(c.gateway.shards, 1);
        assert_eq!(c.servers[0].component, "op-cs1.palisade-example-com");
        assert!(DEMO_RULES.contains("trading/research"));
    }
}
