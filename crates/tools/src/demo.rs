//! `palisade demo`: the gateway with its embedded default configuration, a simulator enforcing
//! an ethical wall between traders and research, and the load generator, on loopback, in one
//! command with no setup. The load generator's progress lines are the live view, with a line
//! from the gateway's own status each second; a summary closes it (events, verdicts by action,
//! walls enforced, latency percentiles, and a reconciliation against the simulator's archive).
//!
//! Runs the three as child processes of this same binary, so what the demo shows is exactly
//! what `palisade run`, `palisade sim` and `palisade load` do.
//!
//! `palisade demo --prosody` runs the same wall in a real Prosody instead: it hands over to the
//! script beside the Prosody module (`integrations/prosody/demo.sh` of the source tree), which
//! starts a throwaway Prosody with the module, this binary's gateway and simulator, and
//! scripted clients, and says what is missing when Prosody is not installed.

use super::local::{LocalError, LocalGateway};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// The walls the demo's simulator enforces (also `perf/rules/demo-walls.toml`).
const DEMO_RULES: &str = include_str!("../../../perf/rules/demo-walls.toml");

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// How long the load runs.
    #[arg(long, default_value = "15s", value_parser = crate::units::parse_span)]
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
    /// Real users in a real Prosody instead of the load generator (needs Prosody installed and
    /// the source tree's integrations/prosody/demo.sh).
    #[arg(long)]
    pub prosody: bool,
}

/// Where the Prosody demo script is: beside the module in the source tree, found from the
/// current directory, from this binary's place (target/*/palisade), or where it was built.
fn prosody_demo_script() -> Option<std::path::PathBuf> {
    let tail = std::path::Path::new("integrations/prosody/demo.sh");
    let mut roots: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(dir) = std::env::current_dir() {
        roots.extend(dir.ancestors().map(|p| p.to_path_buf()));
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(|p| p.to_path_buf()));
    }
    // The source tree this binary was built from (the workspace root, above this crate).
    roots.push(std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.."
    )));
    roots
        .into_iter()
        .map(|r| r.join(tail))
        .find(|p| p.is_file())
}

/// `palisade demo --prosody`: runs the script with this binary; its exit code is the demo's
/// (0 the wall held, 1 it did not, 77 something is missing).
fn run_prosody() -> Result<i32, LocalError> {
    let Some(script) = prosody_demo_script() else {
        println!("palisade demo --prosody: cannot run the Prosody demo; missing:");
        println!("  - integrations/prosody/demo.sh (run from the Palisade source tree)");
        println!("Without it, 'palisade demo' shows the same wall with a simulated router.");
        return Ok(77);
    };
    let exe = std::env::current_exe().map_err(|e| LocalError::Setup(e.to_string()))?;
    let status = std::process::Command::new("bash")
        .arg(&script)
        .env("PALISADE", exe)
        .status()
        .map_err(|e| LocalError::Child("Prosody demo script", e))?;
    Ok(status.code().unwrap_or(1))
}

/// Runs the demo; returns the exit code.
pub fn run(args: DemoArgs) -> Result<i32, LocalError> {
    if args.prosody {
        return run_prosody();
    }
    let scratch = std::env::temp_dir().join(format!("palisade-demo-rules-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| LocalError::Setup(e.to_string()))?;
    let rules = scratch.join("walls.toml");
    let archive = scratch.join("archive.jsonl");
    std::fs::write(&rules, DEMO_RULES).map_err(|e| LocalError::Setup(e.to_string()))?;
    let sim_flags = vec![
        "--rules".to_owned(),
        rules.to_string_lossy().into_owned(),
        "--archive".to_owned(),
        archive.to_string_lossy().into_owned(),
    ];
    let local = LocalGateway::start("demo", args.shards, &sim_flags)?;
    println!("Palisade demo: an ethical wall between traders and research, on loopback.");
    println!(
        "  gateway   palisade run (embedded default configuration), routers on {}, status on http://{}/status",
        local.router, local.admin
    );
    println!("  simulator palisade sim on {}: walls traders <-> research, content rules (disclaimer, insider)", local.sim);
    println!(
        "  load      palisade load: {} events/s for {:?}, {} users over trading., research. and example.com",
        args.rate, args.duration, args.users
    );
    println!(
        "  logs and files in {} and {}",
        local.dir().display(),
        scratch.display()
    );
    println!();

    let load_json = local.path("load.json");
    let load_args: Vec<String> = [
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
    // The live view: the load generator prints its line each second on stderr; the gateway's
    // own view follows it, from a second thread reading /status.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = local.admin;
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
                let status = crate::http_get::get(admin, "/status")
                    .ok()
                    .and_then(|b| serde_json::from_str::<Value>(&b).ok());
                if let Some(s) = status {
                    let t = &s["events"]["terminal"];
                    eprintln!(
                        "gateway  | received {} | in flight {} | pass {} handle {} bounce {} drop {} | cs1 {}",
                        s["events"]["received"],
                        s["events"]["in_flight"],
                        t["pass"],
                        t["handle"],
                        t["bounce"],
                        t["drop"],
                        s["servers"][0]["state"].as_str().unwrap_or("?").to_uppercase()
                    );
                }
            }
        })
    };
    let load_status = local.load(&load_args);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.join();
    let load_status = load_status?;
    let gateway = local.status();
    drop(local);
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
    #[test]
    fn the_demo_rules_wall_trading_off_from_research() {
        assert!(super::DEMO_RULES.contains("trading/research"));
    }
}
