//! `/metrics` read by real Prometheus tooling: the gateway runs with traffic (passes, bounces,
//! a timeout, a bad request), its exposition is parsed by `prometheus_client`'s parser
//! (tests/interop/prometheus/check.py, from a venv set up by setup.sh there) and linted by
//! `promtool check metrics` (Debian's `prometheus`), and the histograms agree with the events.
//!
//! A missing parser or promtool is reported as SKIPPED on stderr (a failure under
//! `PALISADE_INTEROP_REQUIRED=1`, which CI sets).

use crate::interop;
use crate::support;

use interop::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// The venv's python with prometheus_client, or `None` after reporting the skip.
fn parser_python(test: &str) -> Option<std::path::PathBuf> {
    let venv = root().join("target/metrics-venv");
    let script = root().join("tests/interop/prometheus/setup.sh");
    match run(Command::new(script).arg(&venv)) {
        Err(why) => {
            skip(test, &why);
            None
        }
        Ok(out) => {
            assert!(
                out.status.success(),
                "setup.sh failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Some(venv.join("bin/python"))
        }
    }
}

fn feed(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_pass_the_prometheus_parser_and_promtool() {
    let python = parser_python("metrics-parser");
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    server.set_policy(|q| {
        if q.stanza.contains("block") {
            Answer::Error("forbidden".into())
        } else if q.stanza.contains("silent") {
            Answer::Silent
        } else {
            Answer::Pass
        }
    });
    let gw = Gateway::start(&config(
        2,
        FAST_TIMERS,
        &server_block("cs1", port, "SystemDefaultComplianceProfile"),
    ));
    assert!(server.wait_streams(2, WAIT), "{}", gw.log.all());
    let mut r = TestRouter::connect(&gw);
    let mut ids = Vec::new();
    for i in 0..30 {
        let body = match i % 10 {
            0 => "block",
            9 if i == 29 => "silent",
            _ => "ok",
        };
        ids.push(r.chat(&format!("u{i}"), "v", body));
    }
    ids.push(r.event("es_NOPE", "", "<message to='a@example.com'/>"));
    for id in &ids {
        r.verdict_for(id, WAIT);
    }
    let m = gw.admin_get("/metrics", WAIT).expect("metrics");
    let (head, m) = m.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );

    // What the histograms and counters say agrees with what happened.
    assert_eq!(value(m, "palisade_residence_seconds_count"), 30.0);
    assert_eq!(
        value(m, "palisade_residence_seconds_bucket{le=\"+Inf\"}"),
        30.0
    );
    assert_eq!(
        value(m, "palisade_server_answer_seconds_count{server=\"cs1\"}"),
        29.0,
        "one request timed out"
    );
    assert!(value(m, "palisade_server_answer_seconds_sum{server=\"cs1\"}") > 0.0);
    assert_eq!(
        value(
            m,
            "palisade_server_step_failures_total{server=\"cs1\",reason=\"timeout\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            m,
            "palisade_server_answers_total{server=\"cs1\",answer=\"error\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            m,
            "palisade_server_requests_total{server=\"cs1\",mode=\"wait\"}"
        ),
        30.0
    );
    assert_eq!(value(m, "palisade_bad_requests_total"), 1.0);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        m.lines().any(|l| l.starts_with(&format!(
            "palisade_build_info{{version=\"{version}\",commit=\""
        )) && l.ends_with("\"} 1")),
        "{m}"
    );
    let start = value(m, "process_start_time_seconds");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(start <= now && start > now - 600.0, "{start} vs {now}");
    assert!(!m.contains("outcome="), "no outcome label mixing kinds");
    assert!(
        !m.contains("quantile="),
        "histograms, not whole-run summaries"
    );

    // Every family is documented for operators.
    let docs = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for line in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            docs.contains(&format!("| `{name}` |")),
            "{name} is not in docs/operations.md"
        );
    }

    // The parser, and the checks it leaves to us.
    if let Some(python) = python {
        let out = feed(
            Command::new(python).arg(root().join("tests/interop/prometheus/check.py")),
            m,
        );
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{report}{}\n{m}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            report.contains("palisade_server_answer_seconds histogram")
                && report.contains("palisade_events_received counter")
                && report.contains("palisade_build_info gauge"),
            "{report}"
        );
    }
    match Command::new("promtool").arg("--version").output() {
        Err(e) => skip(
            "metrics-promtool",
            &format!("promtool not found ({e}); Debian: apt-get install prometheus"),
        ),
        Ok(_) => {
            let out = feed(Command::new("promtool").args(["check", "metrics"]), m);
            assert!(
                out.status.success(),
                "promtool: {}{}\n{m}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
