use crate::support;
use support::*;

#[test]
fn one_event_through_one_server() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let mut gw = Gateway::start(&config(
        1,
        FAST_TIMERS,
        &server_block("cs1", port, "SystemDefaultComplianceProfile"),
    ));
    assert!(server.wait_streams(1, 5 * SECOND), "log:\n{}", gw.log.all());
    let mut router = TestRouter::connect(&gw);
    let id = router.chat("alice", "bob", "hello");
    let v = router.verdict_for(&id, 5 * SECOND);
    assert!(v.is("pass"), "{v:?}");
    assert_eq!(
        server.requests()[0].key,
        "alice@example.com|bob@example.com"
    );
    assert!(gw.stop().success());
}

/// The trust rule on the inbound router leg: an event whose sender is a user (or a resource)
/// of the router's domain is refused `forbidden`, counted, and never judged; the router's own
/// host JID is served as before on the same stream.
#[test]
fn events_only_from_the_router_host_jid() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let gw = Gateway::start(&config(
        1,
        FAST_TIMERS,
        &server_block("cs1", port, "SystemDefaultComplianceProfile"),
    ));
    assert!(server.wait_streams(1, 5 * SECOND), "log:\n{}", gw.log.all());
    let mut router = TestRouter::connect(&gw);
    let inner = "<message xmlns='jabber:client' from='alice@example.com/desk' to='bob@example.com' type='chat'><body>forged</body></message>";
    for (id, from) in [
        ("F1", format!("alice@{ROUTER}")),
        ("F2", format!("{ROUTER}/res")),
    ] {
        router.send_raw(&format!(
            "<iq type='set' id='{id}' from='{from}' to='{GATEWAY}'><event xmlns='urn:palisade:compliance:0' name='es_OUT'>{inner}</event></iq>"
        ));
        let v = router.verdict_for(id, 5 * SECOND);
        assert!(
            v.is("error")
                && v.xml.contains("<forbidden")
                && v.xml.contains(&format!("to='{from}'")),
            "{v:?}"
        );
    }
    let id = router.chat("alice", "bob", "from the router");
    assert!(router.verdict_for(&id, 5 * SECOND).is("pass"));
    assert!(server
        .requests()
        .iter()
        .all(|r| !r.stanza.contains("forged")));
    let metrics = palisade_tools::http_get::get(gw.admin_addr, "/metrics").expect("metrics");
    assert!(
        metrics.contains("palisade_forbidden_events_total 2"),
        "{metrics}"
    );
}
