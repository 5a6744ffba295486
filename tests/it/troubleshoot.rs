//! `palisade troubleshoot` against test compliance servers: the green case and each red case
//! of the seed's checklist (refused, wrong password, wrong component name, no answer).

use crate::support;
use std::process::Command;
use support::*;

fn troubleshoot(servers: &str) -> (bool, String) {
    let cfg = format!(
        "[gateway]\nname = \"{GATEWAY}\"\ndomain = \"example.com\"\n[timers]\nevent_timeout = \"300ms\"\nhandshake_timeout = \"1s\"\n[[router]]\nname = \"{ROUTER}\"\nsecret = \"s\"\n{servers}"
    );
    let path = std::env::temp_dir().join(format!(
        "palisade-ts-{}-{}.toml",
        std::process::id(),
        free_port()
    ));
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["troubleshoot", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn green_when_the_server_answers() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let (ok, out) = troubleshoot(&server_block("cs1", port, "SystemDefaultComplianceProfile"));
    assert!(ok, "{out}");
    assert!(out.starts_with("GREEN cs1"), "{out}");
    assert!(
        out.contains("CONNECTED, ACTIVE, test event answered PASS in"),
        "{out}"
    );
    let req = &server.requests()[0];
    assert_eq!(
        (req.event.as_str(), req.key.as_str()),
        ("e_STATS", "palisade-troubleshooter")
    );
}

#[test]
fn red_when_refused() {
    let port = free_port();
    let (ok, out) = troubleshoot(&server_block("cs1", port, "SystemDefaultComplianceProfile"));
    assert!(!ok);
    assert!(out.contains("RED   cs1"), "{out}");
    assert!(
        out.contains(&format!(
            "Unable to connect to host '127.0.0.1', port {port}: (111) Connection refused"
        )),
        "{out}"
    );
    assert!(
        out.contains("hint: check that the compliance server is running and listening"),
        "{out}"
    );
}

#[test]
fn red_for_a_wrong_password() {
    let port = free_port();
    let _server = TestServer::start(port, &component("cs1"), "something-else");
    let (ok, out) = troubleshoot(&server_block("cs1", port, "SystemDefaultComplianceProfile"));
    assert!(!ok);
    assert!(
        out.contains("CONNECTED but not ACTIVE: the server refused the password"),
        "{out}"
    );
    assert!(out.contains("hint: configure the same password"), "{out}");
}

#[test]
fn red_for_a_wrong_component_name() {
    let port = free_port();
    let _server = TestServer::start(port, "op-cs1.other-name", "pw-cs1");
    let (ok, out) = troubleshoot(&server_block("cs1", port, "SystemDefaultComplianceProfile"));
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "does not know the component name {}",
            component("cs1")
        )),
        "{out}"
    );
}

#[test]
fn red_when_events_get_no_answer() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    server.set_policy(|_| Answer::Silent);
    let (ok, out) = troubleshoot(&server_block("cs1", port, "SystemDefaultComplianceProfile"));
    assert!(!ok);
    assert!(
        out.contains("CONNECTED and ACTIVE, but the test event got no answer"),
        "{out}"
    );
    assert!(out.contains("check the compliance server's logs"), "{out}");
}

#[test]
fn one_red_server_makes_the_whole_check_fail() {
    let (good, bad) = (free_port(), free_port());
    let _server = TestServer::start(good, &component("cs1"), "pw-cs1");
    let (ok, out) = troubleshoot(&format!(
        "{}{}",
        server_block("cs1", good, "SystemDefaultComplianceProfile"),
        server_block("cs2", bad, "SystemDefaultComplianceProfile")
    ));
    assert!(!ok, "{out}");
    assert!(
        out.contains("GREEN cs1") && out.contains("RED   cs2"),
        "{out}"
    );
}
