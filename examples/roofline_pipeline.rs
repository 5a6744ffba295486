//! Counts what the gateway's user-space pipeline costs per event, for the roofline in
//! `perf/RESULTS.md`: allocations and allocated bytes per event (a counting global allocator
//! around the system one), split by stage, and a driver for `valgrind --tool=callgrind` whose
//! stages are separate, never-inlined functions so that their inclusive instruction counts can
//! be read off `callgrind_annotate --inclusive=yes`.
//!
//! The work is the one `benches/pipeline.rs` times, through the same driver of one shard's
//! gateway core (`palisade_core::gateway::pipeline`): frame a router's ~400-byte wait-mode
//! `es_OUT` event, hand it to the core (which reads, routes and submits it to the engine),
//! write the request, frame the compliance server's answer, hand it to the core, write the
//! verdict. `--batch B` feeds B events per
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

use palisade_core::gateway::pipeline::{reads, Pipeline};
use palisade_core::gateway::Now;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

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

/// Stage 1 (router -> gateway, user space): frame the read, hand each event to the core.
#[inline(never)]
fn stage_router(p: &mut Pipeline, chunk: &[u8], now: Now) -> usize {
    p.router_read(chunk, now)
}

/// Stage 2 (gateway -> server, user space): the core's requests, written. Returns the request
/// bytes; the simulated server's answers are queued in the driver (not counted as the
/// gateway's work: it is the server's, but the bytes are the same either way).
#[inline(never)]
fn stage_request(p: &mut Pipeline, now: Now) -> usize {
    p.requests(now.at)
}

/// Stage 3 (server -> gateway, user space): frame the server's read, hand each answer to the
/// core.
#[inline(never)]
fn stage_answer(p: &mut Pipeline, now: Now) {
    p.server_read(now);
}

/// Stage 4 (gateway -> router, user space): the verdicts, written.
#[inline(never)]
fn stage_verdict(p: &mut Pipeline) -> usize {
    p.verdicts()
}

/// One "read" of `chunk` (B events) through every stage, counting each.
fn turn(p: &mut Pipeline, chunk: &[u8], st: &mut Stages, now: Now) -> usize {
    st.router_bytes += chunk.len() as u64;
    let c = snapshot();
    let n = black_box(stage_router(p, chunk, now));
    add(&mut st.router, since(c));
    let c = snapshot();
    st.request_bytes += black_box(stage_request(p, now)) as u64;
    add(&mut st.request, since(c));
    st.answer_bytes += p.answers_len() as u64;
    let c = snapshot();
    stage_answer(p, now);
    add(&mut st.answer, since(c));
    let c = snapshot();
    st.verdict_bytes += black_box(stage_verdict(p)) as u64;
    add(&mut st.verdict, since(c));
    n
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
    let chunks = reads(batch, events);
    let now = Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    };
    let mut p = Pipeline::new(now.at);
    // Warm-up round: buffers and tables reach their steady-state size.
    let mut warm = Stages::default();
    for c in &chunks {
        turn(&mut p, c, &mut warm, now);
    }
    let mut st = Stages::default();
    let mut n = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        for c in &chunks {
            n += turn(&mut p, c, &mut st, now);
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(p.core().in_flight(), 0, "every event got its verdict");
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
