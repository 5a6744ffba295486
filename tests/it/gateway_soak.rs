//! A bounded soak test against the real binary: steady load from well-behaved routers while,
//! at the same time, hostile peers send random and crafted bytes at every stage of the stream,
//! trickle, go idle or vanish; an authenticated router floods events and never reads; and the
//! compliance servers crash, hang and come back. Throughout, the gateway's resident memory and
//! open file descriptors are sampled and must stay bounded; at the end every event of the
//! well-behaved routers has exactly one verdict, a new router is served, `/status` answers and
//! SIGTERM stops the process cleanly.
//!
//! It runs for `PALISADE_SOAK_SECS` seconds (default 40) so that it fits in CI; set it higher
//! to soak for longer.

use crate::support;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use support::*;

/// How far resident memory may grow past its level after warm-up. Generous for a debug build,
/// but far below what one unbounded queue reaches in a few seconds (tens of MB per second).
const RSS_GROWTH_LIMIT_KB: u64 = 160 * 1024;
/// Open descriptors: the soak itself never holds more than about 40 connections at once.
const FD_LIMIT: usize = 200;

/// A small deterministic generator (xorshift64*), so a failing run can be repeated by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn soak_duration() -> Duration {
    let secs = std::env::var("PALISADE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40u64);
    Duration::from_secs(secs)
}

fn soak_seed() -> u64 {
    std::env::var("PALISADE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' to='imp1.example.com'>";

/// One hostile connection: which of a dozen kinds is up to `rng`.
fn hostile_connection(addr: std::net::SocketAddr, rng: &mut Rng, limit: usize) {
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return;
    };
    tcp.set_write_timeout(Some(Duration::from_millis(500))).ok();
    tcp.set_read_timeout(Some(Duration::from_millis(50))).ok();
    let chat = "<iq type='set' id='h1' from='imp1.example.com' to='palisade.example.com'>\
        <event xmlns='urn:palisade:compliance:0' name='es_OUT'><message xmlns='jabber:client' \
        from='a@example.com/x' to='b@example.com' type='chat'><body>hi</body></message></event></iq>";
    let bytes: Vec<u8> = match rng.below(12) {
        // Random bytes, before any header.
        0 => (0..rng.below(8192) + 1).map(|_| rng.next() as u8).collect(),
        // A header, then random bytes.
        1 => {
            let mut b = HEADER.as_bytes().to_vec();
            b.extend((0..rng.below(4096) + 1).map(|_| rng.next() as u8));
            b
        }
        // A multi-byte character straddling the stanza limit, before the handshake.
        2 => {
            let mut b = HEADER.as_bytes().to_vec();
            let start = b.len();
            b.extend_from_slice(b"<handshake x='");
            let before = limit.saturating_sub(b.len() - start + 1 + rng.below(3) as usize);
            b.extend(std::iter::repeat_n(b'A', before));
            b.extend_from_slice(["é", "€", "𝄞"][rng.below(3) as usize].as_bytes());
            b.extend(std::iter::repeat_n(b'B', 100));
            b.extend_from_slice(b"'/>");
            b
        }
        // A valid stanza cut at a random offset, then the connection ends.
        3 => {
            let full = format!("{HEADER}{chat}");
            let cut = HEADER.len() + rng.below(chat.len() as u64) as usize;
            full.as_bytes()[..cut].to_vec()
        }
        // A valid stanza with one byte replaced at a random offset.
        4 => {
            let mut b = format!("{HEADER}{chat}").into_bytes();
            let at = rng.below(b.len() as u64) as usize;
            b[at] = rng.next() as u8;
            b
        }
        // Well-formedness the framer must refuse at once.
        5 => format!(
            "{HEADER}{}",
            [
                "<message><body>x</message>",
                "<message></stream:stream>",
                "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                "<z:body>x</z:body>",
                "<!-- a comment -->",
                "<!DOCTYPE x>",
                "<?pi x?>",
                "<a b='1' b='2'/>",
            ][rng.below(8) as usize]
        )
        .into_bytes(),
        // Deep nesting and many attributes.
        6 => {
            let mut s = HEADER.to_owned();
            for _ in 0..rng.below(200) + 40 {
                s.push_str("<a>");
            }
            s.into_bytes()
        }
        7 => {
            let mut s = format!("{HEADER}<a");
            for i in 0..rng.below(400) + 70 {
                s.push_str(&format!(" a{i}='1'"));
            }
            s.push_str("/>");
            s.into_bytes()
        }
        // An oversized stanza.
        8 => {
            let mut s = format!("{HEADER}<message><body>");
            s.extend(std::iter::repeat_n('x', limit * 2));
            s.into_bytes()
        }
        // Trickle a header one byte at a time, then vanish.
        9 => {
            for b in HEADER.as_bytes().iter().take(rng.below(40) as usize + 5) {
                if tcp.write_all(&[*b]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        // Connect and stay idle a moment.
        10 => {
            thread::sleep(Duration::from_millis(rng.below(300)));
            Vec::new()
        }
        // A wrong handshake after a valid header.
        _ => format!("{HEADER}<handshake>{}</handshake>", "0".repeat(40)).into_bytes(),
    };
    let _ = tcp.write_all(&bytes);
    // Read a little of what comes back (a stream error), then go: sometimes with a reset.
    let mut sink = [0u8; 4096];
    let _ = tcp.read(&mut sink);
    if rng.below(2) == 0 {
        let _ = tcp.shutdown(Shutdown::Both);
    }
}

/// Drives one well-behaved router: keeps up to `window` events in flight, checks that every
/// verdict answers an event it sent and that none comes twice.
fn load_router(
    gw_addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    index: usize,
    sent: Arc<AtomicU64>,
) -> Result<(u64, u64), String> {
    let mut router = TestRouter::connect_as(gw_addr, ROUTER, ROUTER_SECRET)?;
    let mut outstanding: HashSet<String> = HashSet::new();
    let mut answered = 0u64;
    let mut n = 0u64;
    let window = 200;
    let mut last_send = Instant::now();
    let mut last_verdict = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if !router.is_active() {
            return Err(format!(
                "router {index}: the gateway closed its stream ({} outstanding; last send {:?} \
                 ago, last verdict {:?} ago)",
                outstanding.len(),
                last_send.elapsed(),
                last_verdict.elapsed()
            ));
        }
        while outstanding.len() < window {
            last_send = Instant::now();
            let from = format!("u{index}x{}", n % 97);
            let to = format!("v{}", n % 89);
            let id = router.chat(&from, &to, &format!("m{n}"));
            outstanding.insert(id);
            n += 1;
            sent.fetch_add(1, Ordering::Relaxed);
            if n.is_multiple_of(50) {
                break;
            }
        }
        // Paced: a few thousand events per second at most, so the soak tests robustness
        // rather than saturating two cores.
        while let Some(v) = router.verdict(Duration::from_millis(2)) {
            last_verdict = Instant::now();
            if !outstanding.remove(&v.id) {
                return Err(format!(
                    "router {index}: verdict for {} twice or unsent",
                    v.id
                ));
            }
            answered += 1;
        }
        thread::sleep(Duration::from_millis(5));
    }
    // Every event still in flight must be answered, within timers plus an outage window.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !outstanding.is_empty() && Instant::now() < deadline {
        if let Some(v) = router.verdict(Duration::from_millis(100)) {
            if !outstanding.remove(&v.id) {
                return Err(format!(
                    "router {index}: verdict for {} twice or unsent",
                    v.id
                ));
            }
            answered += 1;
        }
    }
    if !outstanding.is_empty() {
        return Err(format!(
            "router {index}: {} of {n} events never answered",
            outstanding.len()
        ));
    }
    // Nothing more may come.
    if let Some(v) = router.verdict(Duration::from_millis(300)) {
        return Err(format!("router {index}: extra verdict {}", v.id));
    }
    Ok((n, answered))
}

#[test]
fn soak_hostile_input_slow_peers_and_server_crashes_under_load() {
    let duration = soak_duration();
    let seed = soak_seed();
    eprintln!("soak: {duration:?}, seed {seed} (PALISADE_SOAK_SEED repeats a run)");
    let limit = 4096;
    let (p1, p2) = (free_port(), free_port());
    let cs1 = TestServer::start(p1, &component("cs1"), "pw-cs1");
    let cs2 = TestServer::start(p2, &component("cs2"), "pw-cs2");
    let timers = r#"
event_timeout = "1s"
outage_window = "2s"
reconnect_min = "20ms"
reconnect_max = "200ms"
keepalive = "1s"
dead_interval = "3s"
handshake_timeout = "1s"
stanza_timeout = "2s"
"#;
    let rest = format!(
        "[limits]\nmax_stanza_bytes = {limit}\nstream_buffer_bytes = 262144\n\
         queue_per_server = 20000\n\n{}{}\
         [[profile]]\nname = \"Wall\"\nevents = [{{ event = \"es_OUT\", packet = \"message\", \
         handling = \"bounce\" }}]\n",
        server_block("cs1", p1, "Wall"),
        server_block("cs2", p2, "Wall"),
    );
    let mut gw = Gateway::start(&config(2, timers, &rest));
    assert!(cs1.wait_streams(1, 10 * SECOND) && cs2.wait_streams(1, 10 * SECOND));
    let pid = gw.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));

    // Well-behaved load.
    let loads: Vec<_> = (0..2)
        .map(|i| {
            let (stop, sent, addr) = (stop.clone(), sent.clone(), gw.router_addr);
            thread::spawn(move || load_router(addr, stop, i, sent))
        })
        .collect();

    // Warm-up, then the memory baseline.
    thread::sleep(Duration::from_secs(3));
    let baseline_kb = proc_status_kb(pid, "VmRSS:");
    let samples = Arc::new(Mutex::new((baseline_kb, open_fds(pid))));

    // Hostile peers: three threads of short-lived connections.
    let hostile: Vec<_> = (0..3)
        .map(|t| {
            let (stop, addr) = (stop.clone(), gw.router_addr);
            thread::spawn(move || {
                let mut rng = Rng(seed ^ (0x9e37_79b9 * (t + 1)));
                let mut count = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    hostile_connection(addr, &mut rng, limit);
                    count += 1;
                }
                count
            })
        })
        .collect();

    // An authenticated router that floods events and never reads; it reconnects now and then.
    let flooder = {
        let (stop, addr) = (stop.clone(), gw.router_addr);
        thread::spawn(move || {
            let mut floods = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let Ok(r) = TestRouter::connect_as(addr, ROUTER, ROUTER_SECRET) else {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                };
                let batch = flood_batch(200);
                let until = Instant::now() + Duration::from_secs(4);
                let mut tcp = r.raw_writer();
                tcp.set_write_timeout(Some(Duration::from_millis(200))).ok();
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    // A write that times out means the gateway stopped reading us: it should.
                    if tcp.write_all(batch.as_bytes()).is_err() {
                        thread::sleep(Duration::from_millis(50));
                    }
                    floods += 1;
                }
                drop(r);
            }
            floods
        })
    };

    // Compliance servers crash, hang and come back.
    let chaos = {
        let stop = stop.clone();
        let (cs1, cs2) = (Arc::new(cs1), Arc::new(cs2));
        let (c1, c2) = (cs1.clone(), cs2.clone());
        let handle = thread::spawn(move || {
            let mut rng = Rng(seed.rotate_left(17) | 1);
            let mut faults = 0u32;
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(1500 + rng.below(1500)));
                let victim = if rng.below(2) == 0 { &c1 } else { &c2 };
                match rng.below(3) {
                    0 => victim.crash(),
                    1 => victim.hang(),
                    _ => victim.shutdown_gracefully(),
                }
                faults += 1;
                thread::sleep(Duration::from_millis(300 + rng.below(1500)));
                victim.recover();
            }
            faults
        });
        (handle, cs1, cs2)
    };

    // Sample memory and descriptors until the end.
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        let (rss, fds) = (proc_status_kb(pid, "VmRSS:"), open_fds(pid));
        assert!(rss > 0, "the gateway died; log:\n{}", tail(&gw));
        let mut s = samples.lock().unwrap();
        s.0 = s.0.max(rss);
        s.1 = s.1.max(fds);
    }
    stop.store(true, Ordering::SeqCst);
    let hostile_count: u64 = hostile.into_iter().map(|h| h.join().unwrap()).sum();
    let floods = flooder.join().unwrap();
    let (chaos, cs1, cs2) = chaos;
    let faults = chaos.join().unwrap();
    cs1.recover();
    cs2.recover();
    let mut events = 0;
    for l in loads {
        let (n, answered) = l
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}; log:\n{}", tail(&gw)));
        assert_eq!(n, answered);
        events += n;
    }
    let (max_rss, max_fds) = *samples.lock().unwrap();
    eprintln!(
        "soak: {events} events answered exactly once, {hostile_count} hostile connections, \
         {floods} flood batches, {faults} server faults; RSS {baseline_kb} -> max {max_rss} kB, \
         max {max_fds} fds"
    );
    assert!(events > 1000, "too little load got through: {events}");
    assert!(
        max_rss <= baseline_kb + RSS_GROWTH_LIMIT_KB,
        "RSS grew from {baseline_kb} kB to {max_rss} kB"
    );
    assert!(max_fds <= FD_LIMIT, "{max_fds} descriptors open at once");

    // Still serving: a new router, the status endpoint, and a clean stop.
    assert!(cs1.wait_streams(1, 10 * SECOND) && cs2.wait_streams(1, 10 * SECOND));
    let mut fresh = TestRouter::connect(&gw);
    let id = fresh.chat("late", "comer", "hello");
    let v = fresh.verdict_for(&id, 5 * SECOND);
    assert!(v.is("pass"), "{v:?}");
    let status = palisade_tools::http_get::get(gw.admin_addr, "/status").expect("status answers");
    assert!(status.contains("\"servers\""), "{status}");
    let exit = gw.stop();
    assert!(exit.success(), "exit {exit:?}; log:\n{}", tail(&gw));
    let _ = sent;
}

fn tail(gw: &Gateway) -> String {
    let all = gw.log.all();
    let lines: Vec<&str> = all.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
