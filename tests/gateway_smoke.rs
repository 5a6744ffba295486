mod support;
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
