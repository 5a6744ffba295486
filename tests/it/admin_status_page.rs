//! The status page at `/` in a real headless Chromium (Debian's `chromium`): the gateway runs
//! with traffic and one reload, the browser loads the page (which fetches `/status` again by
//! itself), and what the page shows (servers and their states, the configuration generation,
//! verdict rates, the spool) is checked against `/status`. Screenshots are kept in
//! `target/artifacts/` (`status-page.png`, `status-page-spool.png`).
//!
//! A missing Chromium is reported as SKIPPED on stderr (a failure under
//! `PALISADE_INTEROP_REQUIRED=1`, which CI sets).

use crate::interop;
use crate::support;

use interop::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const DEFAULT: &str = "SystemDefaultComplianceProfile";
/// Fast outages, but keepalives slow enough that the test router (which reads only when
/// asked) stays connected while the browser runs.
const TIMERS: &str = r#"
event_timeout = "400ms"
outage_window = "2s"
reconnect_min = "20ms"
reconnect_max = "100ms"
keepalive = "30s"
dead_interval = "90s"
handshake_timeout = "2s"
"#;

fn chromium(test: &str) -> Option<&'static str> {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name).arg("--version").output().is_ok() {
            return Some(name);
        }
    }
    skip(
        test,
        "chromium not found (Debian: apt-get install --no-install-recommends chromium)",
    );
    None
}

fn artifacts() -> PathBuf {
    let dir = root().join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with `args`; returns stdout. The virtual time budget lets
/// the page's own fetch of `/status` and a refresh or two happen before the DOM is dumped.
fn browse(browser: &str, url: &str, args: &[&str]) -> String {
    // A profile directory of its own: Chromium refuses to share one between instances.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let profile =
        std::env::temp_dir().join(format!("palisade-chromium-{}-{run}", std::process::id()));
    let out = Command::new(browser)
        .args([
            "--headless",
            // CI runs as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1400,1000",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screenshot(browser: &str, url: &str, file: &Path) {
    let _ = std::fs::remove_file(file);
    browse(browser, url, &[&format!("--screenshot={}", file.display())]);
    let png = std::fs::read(file).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}

/// The text of the first element with `attr` (e.g. `id="generation"`), tags inside removed.
fn text_of(dom: &str, attr: &str) -> String {
    let at = dom
        .find(attr)
        .unwrap_or_else(|| panic!("no {attr} in\n{dom}"));
    let open = at + dom[at..].find('>').unwrap() + 1;
    let tag_start = dom[..at].rfind('<').unwrap() + 1;
    let tag: String = dom[tag_start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let close = open + dom[open..].find(&format!("</{tag}>")).unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[open..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_status_page_in_chromium_shows_what_status_says() {
    let Some(browser) = chromium("status-page") else {
        return;
    };
    let (p1, p2) = (free_port(), free_port());
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let rest = |second: &str| {
        format!(
            "{}{}[[profile]]\nname = \"Wall\"\nevents = [{{ event = \"es_OUT\", packet = \"message\" }}]\n",
            server_block("cs1", p1, DEFAULT),
            second
        )
    };
    let gw = Gateway::start(&config(2, TIMERS, &rest("")));
    assert!(cs1.wait_streams(2, WAIT), "{}", gw.log.all());
    // A reload adds cs2 (profile Wall), which nobody serves: DOWN/OUTAGE, and not ready.
    let line = gw.reload(&config(2, TIMERS, &rest(&server_block("cs2", p2, "Wall"))));
    assert!(line.contains("generation 1"), "{line}");
    cs1.set_policy(|q| {
        if q.stanza.contains("block") {
            Answer::Handle
        } else {
            Answer::Pass
        }
    });
    let mut r = TestRouter::connect(&gw);
    let ids: Vec<String> = (0..40)
        .map(|i| {
            r.chat(
                &format!("u{i}"),
                "v",
                if i % 4 == 0 { "block" } else { "ok" },
            )
        })
        .collect();
    for id in &ids {
        r.verdict_for(id, WAIT);
    }

    // cs2 leaves its outage window (2 s here) for DOWN: states stay put while the page loads.
    let cs2_state = || -> serde_json::Value {
        let s: serde_json::Value =
            serde_json::from_str(&palisade_tools::http_get::get(gw.admin_addr, "/status").unwrap())
                .unwrap();
        s["servers"][1]["state"].clone()
    };
    let deadline = std::time::Instant::now() + WAIT;
    while cs2_state() != "down" && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cs2_state(), "down");
    let url = format!("http://{}/", gw.admin_addr);
    let dom = browse(browser, &url, &["--dump-dom"]);
    std::fs::write(artifacts().join("status-page.html"), &dom).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&palisade_tools::http_get::get(gw.admin_addr, "/status").unwrap())
            .unwrap();

    assert_eq!(text_of(&dom, "id=\"gateway\""), GATEWAY);
    assert_eq!(
        text_of(&dom, "id=\"generation\""),
        status["config"]["generation"].to_string()
    );
    assert_eq!(status["config"]["generation"], 1);
    assert_eq!(text_of(&dom, "id=\"shards\""), "2");
    let servers = status["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    for s in servers {
        let name = s["name"].as_str().unwrap();
        let row = text_of(&dom, &format!("data-server=\"{name}\""));
        let state = s["state"].as_str().unwrap();
        assert!(
            row.starts_with(&format!(
                "{name} {state} {}",
                s["profile"].as_str().unwrap()
            )),
            "{name}: page row {row:?} vs /status state {state}"
        );
    }
    assert!(text_of(&dom, "data-server=\"cs1\"").starts_with("cs1 up"));
    // Verdicts by state: the rate over the last minute, and the count since start.
    let terminal = &status["events"]["terminal"];
    assert_eq!(terminal["handle"], 10, "{status}");
    for verdict in ["pass", "handle", "bounce", "drop", "failed_open"] {
        let row = text_of(&dom, &format!("data-verdict=\"{verdict}\""));
        let fields: Vec<&str> = row.rsplitn(3, ' ').collect();
        let (count, rate) = (fields[0], fields[1].parse::<f64>().unwrap());
        assert_eq!(count, terminal[verdict].to_string(), "{verdict}: {row}");
        assert_eq!(rate > 0.0, terminal[verdict] != 0, "{verdict}: {row}");
    }
    // Not ready: the profile Wall has no ACTIVE server; the badge says so.
    assert_eq!(status["ready"]["ready"], false);
    let badge = text_of(&dom, "id=\"ready\"");
    assert!(
        badge.starts_with("NOT READY") && badge.contains("profile Wall"),
        "{badge}"
    );
    assert_eq!(text_of(&dom, "id=\"spool\""), "spool: not configured");
    assert_eq!(status["routers"][0], ROUTER, "{status}");
    assert_eq!(text_of(&dom, "id=\"routers\""), ROUTER);
    let alarms = text_of(&dom, "id=\"alarms\"");
    let raised = status["alarms"].as_array().unwrap();
    if raised.is_empty() {
        assert_eq!(alarms, "none raised");
    }
    for a in raised {
        let name = a["name"].as_str().unwrap();
        assert!(alarms.contains(name), "{alarms} vs {name}");
    }
    // The page fetched /status by itself (it refreshes), and nothing came from elsewhere.
    let refreshes: u32 = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(refreshes >= 1, "the page refreshed itself");
    assert!(!dom.contains("src=\"http"), "no external scripts");

    screenshot(browser, &url, &artifacts().join("status-page.png"));
}

#[test]
fn the_status_page_renders_the_spool_when_there_is_one() {
    let Some(browser) = chromium("status-page-spool") else {
        return;
    };
    // The page as the gateway serves it, with a document that has a spool.
    let doc = serde_json::json!({
        "gateway": GATEWAY, "version": "0", "commit": "unknown", "shards": 1,
        "uptime_seconds": 3725.0,
        "ready": { "ready": true, "reasons": [] },
        "config": { "generation": 3, "file": "/etc/palisade/palisade.toml", "last_reload": null },
        "events": { "received": 5, "in_flight": 0, "terminal": { "pass": 5 } },
        "last_minute": { "window_seconds": 60.0, "verdicts_per_second": { "pass": 0.5 },
                         "residence_us": { "p50": 900, "p90": 1500, "p99": 2000, "p999": 2100, "verdicts": 30 } },
        "routers": [ROUTER],
        "servers": [{ "name": "cs1", "state": "up", "profile": "Wall", "streams": 1, "queued": 0,
                      "requests": {}, "last_minute_us": { "p50": 700, "p90": 800, "p99": 900, "p999": 950, "answers": 30 } }],
        "alarms": [{ "name": "SpoolFull", "server": "" }],
        "spool": { "enabled": true, "records": 1234, "bytes": 5_242_880, "oldest_age_seconds": 95.5, "full": true,
                   "profiles": [{ "profile": "Wall", "records": 1234, "bytes": 5_242_880, "oldest_age_seconds": 95.5, "replayed": 17 }] }
    });
    let html = palisade::admin::page::render(&doc.to_string());
    let file = artifacts().join("status-page-spool.html");
    std::fs::write(&file, html).unwrap();
    let url = format!("file://{}", file.display());
    let dom = browse(browser, &url, &["--dump-dom"]);
    let summary = text_of(&dom, "id=\"spool-summary\"");
    assert_eq!(summary, "1234 records, 5.0 MiB, oldest 1m35s — FULL");
    let row = text_of(&dom, "data-profile=\"Wall\"");
    assert_eq!(row, "Wall 1234 5.0 MiB 1m35s 17");
    assert_eq!(text_of(&dom, "id=\"generation\""), "3");
    assert!(text_of(&dom, "id=\"alarms\"").contains("SpoolFull"));
    // Served from a file, the refresh fails: the page says it shows older state.
    assert!(text_of(&dom, "id=\"refreshed\"").starts_with("Could not refresh"));
    screenshot(browser, &url, &artifacts().join("status-page-spool.png"));
}
