//! The gateway's per-event work without the sockets: frame a router's event and hand it to the
//! shard's gateway core (which reads it, routes it and walks it through one wait-mode chain step
//! in the engine: a request offered to the server's stream), frame the compliance server's
//! answer, hand it to the core, and take the verdict it writes. This is the user-space CPU the
//! gateway spends per event, apart from the kernel's share and the runtime's task switches.
//! The driver is `palisade_core::gateway::pipeline`, shared with `examples/roofline_pipeline.rs`.
//!
//! `cargo bench --bench pipeline`; figures go to `perf/RESULTS.md`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_core::gateway::pipeline::{events, Pipeline};
use palisade_core::gateway::Now;
use std::time::{Instant, SystemTime};

fn now() -> Now {
    Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

fn bench(c: &mut Criterion) {
    let n = 10_000;
    let input = events(n);
    let mut p = Pipeline::new(Instant::now());
    assert!(
        p.run(&input, now()) > n * 100,
        "every event gets its verdict"
    );
    assert_eq!(p.core().in_flight(), 0);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("es_OUT-wait-one-step", |b| b.iter(|| p.run(&input, now())));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
