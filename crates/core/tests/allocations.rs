//! The gateway core's hot path allocates nothing per event once warmed up: wait-mode events
//! read from a router, routed, walked through one wait step, their requests written, the
//! server's answers (PASS, no replacement) read and the verdicts written, through the
//! measuring tools' driver (`gateway::pipeline`, feature `test-support`).
//!
//! A counting global allocator around the system one counts the allocations made on the test's
//! own thread (a thread-local counter, so other tests of this binary running beside it do not
//! count), with 150 events per read (a 64 KiB read at full load) and one event per read (a
//! moderate rate: anything allocated per read is then allocated per event).
// A counting allocator: `GlobalAlloc` is an unsafe trait. The library itself forbids unsafe.
#![allow(unsafe_code)]
// Tests take a base instant from the clock; the core under test never reads it.
#![allow(clippy::disallowed_methods)]

use palisade_core::gateway::pipeline::{reads, Pipeline};
use palisade_core::gateway::Now;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Instant, SystemTime};

/// The system allocator, counting the calls that obtain memory on each thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the counter may be gone while a thread is being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a plain
// thread-local cell that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

/// One read of `chunk` through every stage; returns the events it held.
fn turn(p: &mut Pipeline, chunk: &[u8], now: Now) -> usize {
    let n = p.router_read(chunk, now);
    p.requests(now.at);
    p.server_read(now);
    p.verdicts();
    n
}

/// Allocations made while `rounds` rounds of `events` events go through in reads of `batch`,
/// after as many warm-up rounds.
fn allocations_per_round(batch: usize, events: usize, rounds: usize) -> (u64, usize) {
    let chunks = reads(batch, events);
    let now = Now {
        at: Instant::now(),
        wall: SystemTime::UNIX_EPOCH,
    };
    let mut p = Pipeline::new(now.at);
    // Warm-up: buffers, tables and free lists reach their steady-state size.
    for _ in 0..2 {
        for c in &chunks {
            turn(&mut p, c, now);
        }
    }
    assert_eq!(
        p.core().in_flight(),
        0,
        "every warm-up event got its verdict"
    );
    let before = allocations();
    let mut n = 0;
    for _ in 0..rounds {
        for c in &chunks {
            n += turn(&mut p, c, now);
        }
    }
    let made = allocations() - before;
    assert_eq!(p.core().in_flight(), 0, "every event got its verdict");
    (made, n)
}

#[test]
fn no_allocation_per_event_at_150_events_per_read() {
    let (made, n) = allocations_per_round(150, 3000, 3);
    assert_eq!(n, 9000);
    assert_eq!(made, 0, "{made} allocations for {n} events in steady state");
}

#[test]
fn no_allocation_per_event_at_one_event_per_read() {
    let (made, n) = allocations_per_round(1, 1000, 3);
    assert_eq!(n, 3000);
    assert_eq!(made, 0, "{made} allocations for {n} events in steady state");
}
