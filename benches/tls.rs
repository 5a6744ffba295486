//! What TLS adds to the gateway's user-space work per event: the bytes of one event's round
//! trip on both legs (about 600 bytes in: the router's event and the server's answer; about
//! 700 bytes out: the request and the verdict) decrypted and encrypted by the gateway's side of
//! rustls sessions (ring, TLS 1.3), with `batch` events per read and per write as the gateway
//! batches them under load. Only the gateway side's calls are timed; the peer's are not.
//!
//! `cargo bench --bench tls`; figures go to `perf/RESULTS.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use palisade_tls::memory_pair as pair;
use std::time::{Duration, Instant};

const IN_PER_EVENT: usize = 600;
const OUT_PER_EVENT: usize = 700;

fn tls_per_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("tls_gateway_side");
    for batch in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        let inbound = vec![b'x'; IN_PER_EVENT * batch];
        let outbound = vec![b'y'; OUT_PER_EVENT * batch];
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, _| {
            let (mut peer, mut gateway) = pair();
            let mut sink = 0usize;
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let (mut wire, mut out) = (Vec::new(), Vec::new());
                for _ in 0..iters {
                    wire.clear();
                    peer.send(&inbound);
                    peer.take_tls(&mut wire);
                    let started = Instant::now();
                    gateway.receive(&wire, |p| sink += p.len()).unwrap();
                    gateway.send(&outbound);
                    out.clear();
                    gateway.take_tls(&mut out);
                    spent += started.elapsed();
                    peer.receive(&out, |p| sink += p.len()).unwrap();
                }
                spent
            });
            assert!(sink > 0);
        });
    }
    group.finish();
}

criterion_group!(benches, tls_per_event);
criterion_main!(benches);
