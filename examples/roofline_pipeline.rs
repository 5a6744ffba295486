//! Counts what the gateway's user-space pipeline costs per event, for the roofline in
//! `perf/RESULTS.md`: allocations and allocated bytes per event (a counting global allocator
//! around the system one), split by stage, and a driver for `valgrind --tool=callgrind` whose
//! stages are separate, never-inlined functions so that their inclusive instruction counts can
//! be read off `callgrind_annotate --inclusive=yes`.
//!
//! The work is the one `benches/pipeline.rs` times: frame a router's ~400-byte wait-mode
//! `es_OUT` event, read it, submit it to one shard's engine, write the request, frame the
//! compliance server's answer, apply it, write the verdict. `--batch B` feeds B events per
//! "read" (B = 1 is what a gateway sees at a moderate open-loop rate, one event per read;
//! B = 150 is about one 64 KiB read at full load).
//!
//!   cargo build --release --example roofline_pipeline
//!   target/release/examples/roofline_pipeline [--batch B] [--events N] [--rounds R]
//!   valgrind --tool=callgrind target/release/examples/roofline_pipeline --batch 1 --rounds 1
//!
//! It does no I/O besides printing; it is not part of the gateway.
// A measurement driver, not the gateway: a counting allocator (GlobalAlloc is an unsafe trait).
#![allow(unsafe_code)]

use bytes::BytesMut;
use palisade_core::engine::{Action, EngineConfig, Outgoing, RouterRef, ShardEngine};
use palisade_core::policy::{load_str, CompiledPolicy, ServerId};
use palisade_core::protocol::{parse_answer, parse_event, Reply, RequestId};
use palisade_core::routing::KeyHasher;
use palisade_core::wire::{Frame, Framer, Limits};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The system allocator, counting calls and bytes.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"
[gateway]
name = "palisade.example.com"
[[router]]
name = "imp1.example.com"
secret = "s"
[[profile]]
name = "Wall"
events = [ { event = "es_OUT", packet = "message", handling = "bounce" } ]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 1
password = "p"
profile = "Wall"
"#;

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";

fn event(i: usize) -> Vec<u8> {
    format!(
        "<iq type='set' id='R{i}' from='imp1.example.com' to='palisade.example.com'>\
         <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
         <message xmlns='jabber:client' from='user{a}@example.com/desk' to='user{b}@example.com' type='chat' id='m{i}'>\
         <body>Quarterly numbers look fine; let us talk about the desk move on Tuesday.</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message></event></iq>",
        a = i % 997,
        b = (i * 7 + 1) % 997
    )
    .into_bytes()
}

/// Allocation counts by stage.
#[derive(Default, Clone, Copy)]
struct Counts {
    allocs: u64,
    bytes: u64,
}

fn snapshot() -> Counts {
    Counts {
        allocs: ALLOCS.load(Ordering::Relaxed),
        bytes: BYTES.load(Ordering::Relaxed),
    }
}

fn since(c: Counts) -> Counts {
    let n = snapshot();
    Counts {
        allocs: n.allocs - c.allocs,
        bytes: n.bytes - c.bytes,
    }
}

#[derive(Default)]
struct Stages {
    router: Counts,
    request: Counts,
    answer: Counts,
    verdict: Counts,
    router_bytes: u64,
    request_bytes: u64,
    answer_bytes: u64,
    verdict_bytes: u64,
}

fn add(a: &mut Counts, b: Counts) {
    a.allocs += b.allocs;
    a.bytes += b.bytes;
}

struct Pipeline {
    engine: ShardEngine,
    policy: Arc<CompiledPolicy>,
    hasher: KeyHasher,
    router_in: Framer,
    server_in: Framer,
    answers: BytesMut,
    now: Instant,
    wall: SystemTime,
}

/// Stage 1 (router -> gateway, user space): frame the read, read each event, submit it.
#[inline(never)]
fn stage_router(p: &mut Pipeline, chunk: &[u8]) -> usize {
    let router = RouterRef { shard: 0, conn: 0 };
    let mut n = 0;
    p.router_in.feed(chunk);
    while let Ok(Some(frame)) = p.router_in.next_frame() {
        let Frame::Stanza(iq) = frame else { continue };
        let Some(reply) = Reply::of(&iq) else {
            continue;
        };
        let policy = &p.policy;
        let Ok(ev) = parse_event(&iq, reply, |_| policy.node_id(b"imp1")) else {
            continue;
        };
        let hash = p.hasher.hash(&ev.key);
        p.engine.handle_event(ev, hash, router, p.now, p.wall);
        n += 1;
    }
    n
}

/// Stage 2 (gateway -> server, user space): the engine's requests, written. Returns the
/// request bytes; the simulated server's answers are appended to `p.answers` (not counted
/// as the gateway's work: it is the server's).
#[inline(never)]
fn stage_request(p: &mut Pipeline, answers: &mut Vec<u8>) -> usize {
    let mut request_bytes = 0;
    while let Some(action) = p.engine.poll_action() {
        if let Action::Send {
            request: Outgoing::Wait { id, .. },
            bytes,
            ..
        } = action
        {
            request_bytes += bytes.len();
            let mut id_buf = [0u8; RequestId::MAX_LEN];
            answers.extend_from_slice(b"<iq type='result' id='");
            answers.extend_from_slice(id.encode(&mut id_buf));
            answers.extend_from_slice(
                b"' from='op-cs1.palisade-example-com' to='palisade.example.com'/>",
            );
        }
    }
    request_bytes
}

/// Stage 3 (server -> gateway, user space): frame the server's read, apply each answer.
#[inline(never)]
fn stage_answer(p: &mut Pipeline) {
    p.server_in.feed(&p.answers);
    p.answers.clear();
    while let Ok(Some(Frame::Stanza(s))) = p.server_in.next_frame() {
        if let Ok(answer) = parse_answer(&s) {
            p.engine.handle_answer(ServerId(0), answer, p.now);
        }
    }
}

/// Stage 4 (gateway -> router, user space): the verdicts, written.
#[inline(never)]
fn stage_verdict(p: &mut Pipeline) -> usize {
    let mut verdict_bytes = 0;
    while let Some(action) = p.engine.poll_action() {
        if let Action::Verdict { bytes, .. } = action {
            verdict_bytes += bytes.len();
        }
    }
    verdict_bytes
}

impl Pipeline {
    fn new() -> Pipeline {
        let config = load_str(CONFIG, "roofline.toml").expect("valid").config;
        let policy = Arc::new(CompiledPolicy::compile(&config));
        let now = Instant::now();
        let cfg = EngineConfig {
            shard: 0,
            shards: 1,
            gateway_name: "palisade.example.com".into(),
            event_timeout: Duration::from_secs(30),
            outage_window: Duration::from_secs(300),
            queue_bound: 1 << 20,
            link_batch_bytes: 16 << 20,
        };
        let mut engine = ShardEngine::new(cfg, policy.clone(), now);
        engine.handle_link(ServerId(0), 0, palisade_core::engine::LinkChange::Up, now);
        let mut server_in = Framer::new(Limits::default());
        server_in.feed(HEADER);
        let mut router_in = Framer::new(Limits::default());
        router_in.feed(HEADER);
        Pipeline {
            engine,
            policy,
            hasher: KeyHasher::new(),
            router_in,
            server_in,
            answers: BytesMut::new(),
            now,
            wall: SystemTime::now(),
        }
    }

    /// One "read" of `chunk` (B events) through every stage, counting each.
    fn turn(&mut self, chunk: &[u8], st: &mut Stages, scratch: &mut Vec<u8>) -> usize {
        st.router_bytes += chunk.len() as u64;
        let c = snapshot();
        let n = black_box(stage_router(self, chunk));
        add(&mut st.router, since(c));
        scratch.clear();
        let c = snapshot();
        st.request_bytes += black_box(stage_request(self, scratch)) as u64;
        add(&mut st.request, since(c));
        st.answer_bytes += scratch.len() as u64;
        self.answers.extend_from_slice(scratch);
        let c = snapshot();
        stage_answer(self);
        add(&mut st.answer, since(c));
        let c = snapshot();
        st.verdict_bytes += black_box(stage_verdict(self)) as u64;
        add(&mut st.verdict, since(c));
        n
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch = arg(&args, "--batch", 150).max(1);
    let events = arg(&args, "--events", 10_000);
    let rounds = arg(&args, "--rounds", 5).max(1);
    let chunks: Vec<Vec<u8>> = (0..events.div_ceil(batch))
        .map(|c| {
            (c * batch..((c + 1) * batch).min(events))
                .flat_map(event)
                .collect()
        })
        .collect();
    let mut p = Pipeline::new();
    let mut scratch = Vec::with_capacity(1 << 20);
    // Warm-up round: buffers and tables reach their steady-state size.
    let mut warm = Stages::default();
    for c in &chunks {
        p.turn(c, &mut warm, &mut scratch);
    }
    let mut st = Stages::default();
    let mut n = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        for c in &chunks {
            n += p.turn(c, &mut st, &mut scratch);
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(p.engine.in_flight(), 0, "every event got its verdict");
    let per = |c: Counts| (c.allocs as f64 / n as f64, c.bytes as f64 / n as f64);
    println!("batch {batch} events per read, {n} events measured (after one warm-up round)");
    for (name, c, wire) in [
        (
            "router->gateway (frame, read, submit)",
            st.router,
            st.router_bytes,
        ),
        (
            "gateway->server (request written)",
            st.request,
            st.request_bytes,
        ),
        (
            "server->gateway (frame, apply answer)",
            st.answer,
            st.answer_bytes,
        ),
        (
            "gateway->router (verdict written)",
            st.verdict,
            st.verdict_bytes,
        ),
    ] {
        let (a, b) = per(c);
        println!(
            "  {name:<40} {a:6.2} allocs/event {b:8.1} B allocated/event {:7.1} wire B/event",
            wire as f64 / n as f64
        );
    }
    let total = Counts {
        allocs: st.router.allocs + st.request.allocs + st.answer.allocs + st.verdict.allocs,
        bytes: st.router.bytes + st.request.bytes + st.answer.bytes + st.verdict.bytes,
    };
    let (a, b) = per(total);
    println!(
        "  {:<40} {a:6.2} allocs/event {b:8.1} B allocated/event",
        "total"
    );
    println!(
        "  wall time {:.3} us/event (counting allocator on; contended machine: indicative only)",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
