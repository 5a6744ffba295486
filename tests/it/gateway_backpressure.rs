//! Flow control towards routers, against the real binary: a router that sends at full speed and
//! never reads gets its reads paused once its unwritten output passes `stream_buffer_bytes`,
//! so the gateway's memory stays bounded; when it starts reading again, every event and every
//! service request gets exactly one answer.

use crate::support;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::*;

/// How long the router floods without reading.
const FLOOD: Duration = Duration::from_secs(8);
/// Stream timers long enough that the flood does not trip them.
const TIMERS: &str = "keepalive = \"60s\"\ndead_interval = \"120s\"\nstanza_timeout = \"60s\"\n";
const LIMITS: &str = "[limits]\nstream_buffer_bytes = 1048576\nmax_in_flight = 200\n";

/// A router whose socket buffers little, so that what the gateway writes and the router does
/// not read stays in the gateway rather than in the kernel.
fn router(gw: &Gateway) -> TestRouter {
    let r = TestRouter::connect(gw);
    let tcp = r.raw_writer();
    socket2::SockRef::from(&tcp)
        .set_recv_buffer_size(32 << 10)
        .expect("SO_RCVBUF");
    r
}

fn metrics(gw: &Gateway) -> String {
    palisade_tools::http_get::get(gw.admin_addr, "/metrics").unwrap_or_default()
}

/// Floods with `stanza(n)` for `FLOOD` without reading, sampling the gateway's RSS; then
/// reads until every stanza written got its one reply. The resident set may grow by `bound`:
/// the router's output limit (1 MiB, and as much again being written), what the events in
/// flight may add (events: at most 200 verdicts of about 4 KiB; service requests: the
/// answers to one read), and room for the allocator. Returns (stanzas written, RSS growth).
fn flood_then_read(
    gw: &Gateway,
    mut r: TestRouter,
    bound: u64,
    stanza: impl Fn(usize) -> String + Send + 'static,
) -> (usize, u64) {
    let baseline = rss_bytes(gw.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let (tcp, stop2) = (r.raw_writer(), stop.clone());
    let writer = thread::spawn(move || flood(tcp, stop2, stanza));
    let start = Instant::now();
    let mut peak = baseline;
    while start.elapsed() < FLOOD {
        thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss_bytes(gw.pid()));
    }
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < bound,
        "the gateway grew by {} MiB while the router did not read",
        growth >> 20
    );
    stop.store(true, Ordering::SeqCst);
    let mut seen = HashSet::new();
    let mut total = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut writer = Some(writer);
    loop {
        if total.is_none() && writer.as_ref().is_some_and(|w| w.is_finished()) {
            total = Some(writer.take().unwrap().join().unwrap());
        }
        if total.is_some_and(|t| seen.len() >= t) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} replies of {total:?}",
            seen.len()
        );
        if let Some(reply) = r.next_iq(Duration::from_millis(200)) {
            assert!(
                seen.insert(reply.id.clone()),
                "a second reply to {}",
                reply.id
            );
        }
    }
    let total = total.unwrap();
    // Nothing more: each stanza got exactly one reply.
    assert!(r.next_iq(Duration::from_millis(300)).is_none());
    assert_eq!(seen.len(), total);
    (total, growth)
}

#[test]
fn a_router_that_never_reads_pauses_and_every_event_gets_one_verdict() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    // Every verdict carries a modified stanza of about 4 KiB: verdicts outweigh events.
    let body = "y".repeat(4096);
    server.set_policy(move |_| {
        Answer::Modify(format!(
            "<message xmlns='jabber:client' to='v@example.com'><body>{body}</body></message>"
        ))
    });
    let rest = format!(
        "{LIMITS}{}",
        server_block("cs1", port, "SystemDefaultComplianceProfile")
    );
    let gw = Gateway::start(&config(1, TIMERS, &rest));
    assert!(server.wait_streams(1, Duration::from_secs(5)));
    let r = router(&gw);
    let (events, growth) = flood_then_read(&gw, r, 24 << 20, |n| {
        format!(
            "<iq type='set' id='E{n}' from='{ROUTER}' to='{GATEWAY}'><event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
             <message xmlns='jabber:client' from='u{}@example.com/d' to='v@example.com' type='chat'><body>x</body></message></event></iq>",
            n % 1000
        )
    });
    eprintln!("{events} events, RSS grew by {} KiB", growth >> 10);
    let m = metrics(&gw);
    assert!(
        m.lines()
            .any(|l| l.starts_with("palisade_router_output_pauses_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    assert!(
        m.contains(&format!("palisade_events_received_total {events}")),
        "{m}"
    );
    assert_eq!(server.request_count(), events);
}

#[test]
fn a_router_that_floods_pings_without_reading_pauses_and_gets_every_answer() {
    // No compliance server is needed: service requests are answered by the router's shard.
    let gw = Gateway::start(&config(1, TIMERS, LIMITS));
    let r = router(&gw);
    // Pings, and disco#info requests, whose answers are four times their size.
    let (pings, growth) = flood_then_read(&gw, r, 16 << 20, |n| {
        match n % 4 {
        0 => format!("<iq type='get' id='P{n}' from='{ROUTER}' to='{GATEWAY}'><ping xmlns='urn:xmpp:ping'/></iq>"),
        _ => format!("<iq type='get' id='P{n}' from='{ROUTER}' to='{GATEWAY}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"),
    }
    });
    eprintln!("{pings} pings, RSS grew by {} KiB", growth >> 10);
    let m = metrics(&gw);
    assert!(
        m.lines()
            .any(|l| l.starts_with("palisade_router_output_pauses_total ") && !l.ends_with(" 0")),
        "{m}"
    );
}

/// A router whose reads the gateway holds for its own reasons (events in flight at their
/// limit while the only compliance server hangs) is not silent: its keepalives are waiting in
/// the socket. It must not be dropped as a dead peer, and every event it sent gets a verdict
/// once the events' timers free room.
#[test]
fn a_router_held_by_the_gateways_own_flow_control_is_not_taken_for_dead() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let timers = "event_timeout = \"3s\"\noutage_window = \"5s\"\nreconnect_min = \"20ms\"\n\
                  reconnect_max = \"100ms\"\nkeepalive = \"300ms\"\ndead_interval = \"1s\"\n";
    let rest = format!(
        "[limits]\nmax_in_flight = 4\n\n{}[[profile]]\nname = \"Wall\"\nevents = [{{ event = \
         \"es_OUT\", packet = \"message\", handling = \"bounce\" }}]\n",
        server_block("cs1", port, "Wall")
    );
    let gw = Gateway::start(&config(1, timers, &rest));
    assert!(server.wait_streams(1, 5 * SECOND));
    let mut r = TestRouter::connect(&gw);
    server.hang();
    // Three rounds of four: each round waits out its events' timers (3 s) with reads held.
    let ids: Vec<String> = (0..12)
        .map(|i| r.chat(&format!("a{i}"), "b", "x"))
        .collect();
    // The router stays alive: a whitespace keepalive every 200 ms, verdicts read as they come.
    let mut verdicts = HashSet::new();
    let deadline = Instant::now() + 20 * SECOND;
    let mut keepalive = r.raw_writer();
    while verdicts.len() < ids.len() && Instant::now() < deadline {
        use std::io::Write;
        keepalive
            .write_all(b" ")
            .expect("the gateway keeps the router's stream");
        while let Some(v) = r.verdict(Duration::from_millis(200)) {
            assert!(verdicts.insert(v.id.clone()), "two verdicts for {}", v.id);
        }
    }
    assert_eq!(verdicts.len(), ids.len(), "log:\n{}", gw.log.all());
    assert!(
        !gw.log.all().contains("disconnected: PeerSilent"),
        "the held router was dropped as silent; log:\n{}",
        gw.log.all()
    );
}

/// A router that keeps its socket full (and reads what it gets back) must not keep its shard
/// to itself: a quiet router on the same shard is still read, answered, and never dropped as
/// silent. glommio completes reads at once when data is waiting and never preempts a task
/// between ready awaits, so every loop that can stay ready yields when its time is up.
#[test]
fn a_flooding_router_does_not_starve_a_quiet_one() {
    let port = free_port();
    let server = TestServer::start(port, &component("cs1"), "pw-cs1");
    let timers = "event_timeout = \"2s\"\noutage_window = \"5s\"\nkeepalive = \"500ms\"\n\
                  dead_interval = \"3s\"\n";
    let rest = format!(
        "{}[[profile]]\nname = \"Wall\"\nevents = [{{ event = \"es_OUT\", packet = \"message\", \
         handling = \"bounce\" }}]\n",
        server_block("cs1", port, "Wall")
    );
    let gw = Gateway::start(&config(2, timers, &rest));
    assert!(server.wait_streams(2, 5 * SECOND));
    let stop = Arc::new(AtomicBool::new(false));
    // Two flooders, so that both shards have one (connections are handed out in turn).
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let mut flood = TestRouter::connect(&gw);
            let mut tcp = flood.raw_writer();
            let stop_w = stop.clone();
            let writer = thread::spawn(move || {
                use std::io::Write;
                let batch = flood_batch(200);
                while !stop_w.load(Ordering::SeqCst) && tcp.write_all(batch.as_bytes()).is_ok() {}
            });
            let stop_r = stop.clone();
            let reader = thread::spawn(move || {
                while !stop_r.load(Ordering::SeqCst) {
                    let _ = flood.verdict(Duration::from_millis(50));
                }
            });
            (writer, reader)
        })
        .collect();
    let quiet: Vec<_> = (0..2)
        .map(|q| {
            let mut r = TestRouter::connect(&gw);
            thread::spawn(move || {
                let start = Instant::now();
                let mut answered = 0;
                let mut slowest = Duration::ZERO;
                while start.elapsed() < Duration::from_secs(6) {
                    let sent = Instant::now();
                    let id = r.chat(&format!("quiet{q}"), "peer", "hello");
                    // Its events wait for admission behind the flood (the shard's events in
                    // flight are at their limit), but they are read and answered.
                    let v = r.verdict_for(&id, 60 * SECOND);
                    assert!(!v.id.is_empty());
                    slowest = slowest.max(sent.elapsed());
                    answered += 1;
                    thread::sleep(Duration::from_millis(200));
                }
                (answered, slowest)
            })
        })
        .collect();
    let results: Vec<(usize, Duration)> = quiet.into_iter().map(|q| q.join().unwrap()).collect();
    eprintln!("quiet routers (verdicts, slowest): {results:?}");
    let answered: Vec<usize> = results.iter().map(|r| r.0).collect();
    stop.store(true, Ordering::SeqCst);
    for (w, r) in floods {
        let _ = (w.join(), r.join());
    }
    assert!(
        answered.iter().all(|&n| n >= 1),
        "quiet routers answered {answered:?}; log:\n{}",
        gw.log.all()
    );
    let log = gw.log.all();
    assert!(!log.contains("disconnected: PeerSilent"), "log:\n{log}");
}
