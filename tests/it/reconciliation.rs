//! Drills with the bundled tools against the real gateway: `palisade sim` (with rules, an
//! archive and a fault schedule) behind `palisade run`, fed by `palisade load`. Each run is
//! reconciled event by event: every event the simulator saw is accounted for at the router,
//! every event got exactly one verdict, and (without faults) the verdict is the one the
//! simulator's answer calls for. Timers are scaled down (400 ms event timer, 2 s window).

use crate::support;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const RULES: &str = include_str!("../../perf/rules/demo-walls.toml");
const PASSWORD: &str = "pw-cs1";

struct Drill {
    dir: PathBuf,
    sim: Child,
    gw: Gateway,
}

impl Drill {
    fn start(name: &str, fault: &str) -> Drill {
        let dir =
            std::env::temp_dir().join(format!("palisade-drill-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("rules.toml"), RULES).unwrap();
        let port = free_port();
        let mut args = vec![
            "sim".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--name".into(),
            component("cs1"),
            "--secret".into(),
            PASSWORD.into(),
            "--rules".into(),
            dir.join("rules.toml").display().to_string(),
            "--archive".into(),
            dir.join("archive.jsonl").display().to_string(),
            "--quiet".into(),
        ];
        if !fault.is_empty() {
            args.extend(["--fault".to_owned(), fault.to_owned()]);
        }
        let sim = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let gw = Gateway::start(&config(
            1,
            FAST_TIMERS,
            &server_block("cs1", port, "SystemDefaultComplianceProfile"),
        ));
        assert!(
            gw.log.wait_for("is ACTIVE", Duration::from_secs(10)),
            "{}",
            gw.log.all()
        );
        Drill { dir, sim, gw }
    }

    /// Runs the load generator (one connection, so inner stanza ids name events); returns its
    /// exit status, its JSON report and its verdicts by sequence number.
    fn load(&self, rate: u32, duration: &str) -> (bool, Value, HashMap<u64, String>) {
        let json = self.dir.join("load.json");
        let log = self.dir.join("verdicts.jsonl");
        let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args([
                "load",
                "--connect",
                &self.gw.router_addr.to_string(),
                "--name",
                ROUTER,
                "--secret",
                ROUTER_SECRET,
            ])
            .args([
                "--connections",
                "1",
                "--users",
                "120",
                "--domain",
                "trading.example.com,research.example.com,example.com",
            ])
            .args([
                "--rate",
                &rate.to_string(),
                "--duration",
                duration,
                "--drain",
                "4s",
                "--seed",
                "7",
                "--quiet",
            ])
            .arg("--json")
            .arg(&json)
            .arg("--verdict-log")
            .arg(&log)
            .output()
            .unwrap();
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
                .unwrap_or(Value::Null);
        let verdicts = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| {
                (
                    v["seq"].as_u64().unwrap(),
                    v["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (out.status.success(), report, verdicts)
    }

    /// The archive: for each event the simulator saw (by the load's sequence number), the
    /// answers it gave, in order.
    fn archive(&mut self) -> HashMap<u64, Vec<String>> {
        let _ = Command::new("kill").arg(self.sim.id().to_string()).status();
        let _ = self.sim.wait();
        read_archive(&self.dir.join("archive.jsonl"))
    }
}

impl Drop for Drill {
    fn drop(&mut self) {
        let _ = self.sim.kill();
        let _ = self.sim.wait();
    }
}

/// Inner stanza ids are a letter and the load's sequence number in hex (`m1f`).
fn seq_of(stanza: &str) -> Option<u64> {
    let at = stanza.find(" id='")? + 5;
    let rest = &stanza[at + 1..];
    u64::from_str_radix(&rest[..rest.find('\'')?], 16).ok()
}

fn read_archive(path: &Path) -> HashMap<u64, Vec<String>> {
    let mut seen: HashMap<u64, Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).expect("archive lines are JSON");
        if v["mode"] != "wait" {
            continue;
        }
        let seq = seq_of(v["stanza"].as_str().unwrap()).expect("a load-generated stanza");
        seen.entry(seq)
            .or_default()
            .push(v["answer"].as_str().unwrap_or("").to_owned());
    }
    seen
}

/// Every event got exactly one verdict, and every event the simulator saw is among them.
fn reconcile(
    ok: bool,
    report: &Value,
    verdicts: &HashMap<u64, String>,
    archive: &HashMap<u64, Vec<String>>,
) {
    assert!(ok, "the load generator found a problem: {report}");
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent > 0);
    assert_eq!(report["answered"], sent, "every event answered");
    assert_eq!(verdicts.len() as u64, sent, "one logged verdict per event");
    for (seq, answers) in archive {
        assert!(
            verdicts.contains_key(seq),
            "event {seq} reached the simulator ({answers:?}) but no verdict reached the router"
        );
    }
}

#[test]
fn without_faults_every_verdict_is_the_simulators_answer() {
    let mut d = Drill::start("clean", "");
    let (ok, report, verdicts) = d.load(400, "3s");
    let archive = d.archive();
    reconcile(ok, &report, &verdicts, &archive);
    let mut checked = 0;
    for (seq, answers) in &archive {
        assert_eq!(answers.len(), 1, "event {seq} judged once without faults");
        let expected = match answers[0].as_str() {
            "pass" => "pass",
            "pass-modified" => "pass_modified",
            "handle" => "handle",
            "error" | "bounce" => "bounce",
            other => panic!("unexpected simulator answer {other:?}"),
        };
        assert_eq!(verdicts[seq], expected, "event {seq}");
        checked += 1;
    }
    let walls = verdicts.values().filter(|a| *a == "bounce").count();
    assert!(
        walls > 0,
        "the wall between trading and research stopped something"
    );
    assert!(checked > 500, "{checked} events judged");
    // Events no profile step covers pass without reaching the simulator.
    for (seq, action) in &verdicts {
        if !archive.contains_key(seq) {
            assert_eq!(action, "pass", "event {seq} never judged yet {action}");
        }
    }
}

#[test]
fn graceful_shutdown_drill() {
    let mut d = Drill::start("graceful", "graceful@1500ms");
    let (ok, report, verdicts) = d.load(300, "3s");
    let archive = d.archive();
    reconcile(ok, &report, &verdicts, &archive);
    assert!(
        d.gw.log.all().contains("is GONE (gracefully"),
        "{}",
        d.gw.log.all()
    );
    // After the graceful close, messages bounce at once (service-unavailable): some bounced
    // events never reached the simulator.
    let unjudged_bounces = verdicts
        .iter()
        .filter(|(s, a)| *a == "bounce" && !archive.contains_key(s))
        .count();
    assert!(
        unjudged_bounces > 0,
        "IMs bounced while no server could take them"
    );
}

#[test]
fn hang_drill() {
    let mut d = Drill::start("hang", "hang@1s");
    let (ok, report, verdicts) = d.load(300, "3s");
    let archive = d.archive();
    reconcile(ok, &report, &verdicts, &archive);
    // Requests the hung server never answered ended by their timers.
    let gw_status: Value =
        serde_json::from_str(&palisade_tools::http_get::get(d.gw.admin_addr, "/status").unwrap())
            .unwrap();
    assert!(
        gw_status["servers"][0]["requests"]["timeouts"]
            .as_u64()
            .unwrap()
            > 0,
        "{gw_status}"
    );
    assert_eq!(gw_status["events"]["in_flight"], 0);
}

#[test]
fn crash_and_recover_drill() {
    let mut d = Drill::start("crash", "crash@1s,recover@1600ms");
    let (ok, report, verdicts) = d.load(300, "3s");
    let archive = d.archive();
    reconcile(ok, &report, &verdicts, &archive);
    let log = d.gw.log.all();
    assert!(log.contains("is GONE (ungracefully"), "{log}");
    assert!(
        log.contains("alarm ComplianceServerConnectionLost cleared"),
        "{log}"
    );
    // Judged after the recovery: the server took its share back within the outage window.
    let late = archive.keys().filter(|s| **s > 300 * 2).count();
    assert!(late > 0, "events after the recovery reached the simulator");
}
