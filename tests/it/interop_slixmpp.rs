//! Interop with an independent XEP-0114 implementation we did not write: slixmpp's
//! `ComponentXMPP` (from PyPI) dials the real gateway's router port as a router, sends an event
//! and gets its verdict; with a wrong secret the gateway refuses it with `not-authorized`.
//!
//! A missing slixmpp is reported as SKIPPED on stderr (a failure under
//! `PALISADE_INTEROP_REQUIRED=1`, which CI sets).

use crate::interop;
use crate::support;

use interop::*;
use std::process::Command;
use std::time::Duration;
use support::*;

fn gateway() -> (TestServer, Gateway) {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(
        1,
        FAST_TIMERS,
        &server_block("cs1", port, "SystemDefaultComplianceProfile"),
    ));
    assert!(server.wait_streams(1, Duration::from_secs(10)));
    (server, gw)
}

#[test]
fn interop_slixmpp_router_gets_a_verdict() {
    let Some(python) = slixmpp_python("slixmpp-verdict") else {
        return;
    };
    let (server, gw) = gateway();
    let event = format!(
        "<iq type='set' id='sx1' from='{ROUTER}' to='{GATEWAY}'><event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
         <message xmlns='jabber:client' from='alice@example.com/desk' to='bob@example.com' type='chat'><body>from slixmpp</body></message>\
         </event></iq>"
    );
    let file = write_temp("slix-event.xml", &event);
    let out = Command::new(&python)
        .arg(root().join("tests/interop/slixmpp/component.py"))
        .args([
            "--port",
            &gw.router_addr.port().to_string(),
            "--name",
            ROUTER,
            "--secret",
            ROUTER_SECRET,
        ])
        .arg("--send-file")
        .arg(&file)
        .args(["--expect", "verdict[^>]*action=.pass", "--timeout", "15"])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}\ngateway log:\n{}",
        show(&out),
        gw.log.all()
    );
    assert!(server.requests()[0].stanza.contains("from slixmpp"));
}

/// slixmpp's component connects as `name` with `secret` and must see the handshake refused
/// with the stream error `error`.
fn expect_refusal(python: &std::path::Path, name: &str, secret: &str, error: &str) {
    let (_server, gw) = gateway();
    let out = Command::new(python)
        .arg(root().join("tests/interop/slixmpp/component.py"))
        .args(["--port", &gw.router_addr.port().to_string()])
        .args(["--name", name, "--secret", secret])
        .args(["--expect-handshake-failure", "--expect-error", error])
        .args(["--timeout", "15"])
        .output()
        .expect("python");
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn interop_slixmpp_with_a_wrong_secret_is_not_authorized() {
    let Some(python) = slixmpp_python("slixmpp-wrong-secret") else {
        return;
    };
    expect_refusal(&python, ROUTER, "wrong", "not-authorized");
}

#[test]
fn interop_slixmpp_with_an_unknown_name_is_host_unknown() {
    let Some(python) = slixmpp_python("slixmpp-unknown-name") else {
        return;
    };
    expect_refusal(&python, "nobody.example.com", ROUTER_SECRET, "host-unknown");
}
