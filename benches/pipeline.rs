//! The gateway's per-event work without the sockets: frame a router's event, read it, walk it
//! through one wait-mode chain step in the engine (request written), frame the compliance
//! server's answer, apply it, and write the verdict. This is the user-space CPU the gateway
//! spends per event, apart from the kernel's share and the runtime's task switches.
//!
//! `cargo bench --bench pipeline`; figures go to `perf/RESULTS.md`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_core::engine::{Action, EngineConfig, RouterRef, ShardEngine};
use palisade_core::policy::{load_str, CompiledPolicy, ServerId};
use palisade_core::protocol::{parse_answer, parse_event, Reply};
use palisade_core::routing::KeyHasher;
use palisade_core::wire::{Frame, Framer, Limits};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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

/// `n` router events of about 400 bytes, as one byte stream.
fn events(n: usize) -> Vec<u8> {
    let mut s = Vec::from(HEADER);
    for i in 0..n {
        s.extend_from_slice(format!(
            "<iq type='set' id='R{i}' from='imp1.example.com' to='palisade.example.com'>\
             <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
             <message xmlns='jabber:client' from='user{a}@example.com/desk' to='user{b}@example.com' type='chat' id='m{i}'>\
             <body>Quarterly numbers look fine; let us talk about the desk move on Tuesday.</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message></event></iq>",
            a = i % 997,
            b = (i * 7 + 1) % 997
        ).as_bytes());
    }
    s
}

struct Pipeline {
    engine: ShardEngine,
    policy: Arc<CompiledPolicy>,
    hasher: KeyHasher,
    router_in: Framer,
    server_in: Framer,
    answers: BytesMut,
}

impl Pipeline {
    fn new() -> Pipeline {
        let config = load_str(CONFIG, "bench.toml").expect("valid").config;
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
        engine.on_link_up(ServerId(0), 0, now);
        let mut server_in = Framer::new(Limits::default());
        server_in.feed(HEADER);
        Pipeline {
            engine,
            policy,
            hasher: KeyHasher::new(),
            router_in: Framer::new(Limits::default()),
            server_in,
            answers: BytesMut::new(),
        }
    }

    /// Runs every event of `input` through; returns the verdict bytes written.
    fn run(&mut self, input: &[u8]) -> usize {
        let now = Instant::now();
        let wall = SystemTime::now();
        let router = RouterRef { shard: 0, conn: 0 };
        let mut verdict_bytes = 0;
        self.router_in = Framer::new(Limits::default());
        for chunk in input.chunks(64 * 1024) {
            self.router_in.feed(chunk);
            while let Ok(Some(frame)) = self.router_in.next_frame() {
                let Frame::Stanza(iq) = frame else { continue };
                let Some(reply) = Reply::of(&iq) else {
                    continue;
                };
                let policy = &self.policy;
                let Ok(ev) = parse_event(&iq, reply, |_| policy.node_id(b"imp1")) else {
                    continue;
                };
                let hash = self.hasher.hash(&ev.key);
                self.engine.submit(ev, hash, router, now, wall);
            }
            // The server answers everything written so far, in one read.
            while let Some(action) = self.engine.poll_action() {
                if let Action::Send {
                    request: palisade_core::engine::Outgoing::Wait { id, .. },
                    ..
                } = action
                {
                    let mut id_buf = [0u8; palisade_core::protocol::RequestId::MAX_LEN];
                    let id = std::str::from_utf8(id.encode(&mut id_buf)).unwrap_or("");
                    self.answers.extend_from_slice(b"<iq type='result' id='");
                    self.answers.extend_from_slice(id.as_bytes());
                    self.answers.extend_from_slice(
                        b"' from='op-cs1.palisade-example-com' to='palisade.example.com'/>",
                    );
                }
            }
            self.server_in.feed(&self.answers);
            self.answers.clear();
            while let Ok(Some(Frame::Stanza(s))) = self.server_in.next_frame() {
                if let Ok(answer) = parse_answer(&s) {
                    self.engine.on_answer(ServerId(0), answer, now);
                }
            }
            while let Some(action) = self.engine.poll_action() {
                if let Action::Verdict { bytes, .. } = action {
                    verdict_bytes += bytes.len();
                }
            }
        }
        verdict_bytes
    }
}

fn bench(c: &mut Criterion) {
    let n = 10_000;
    let input = events(n);
    let mut p = Pipeline::new();
    assert!(p.run(&input) > n * 100, "every event gets its verdict");
    assert_eq!(p.engine.in_flight(), 0);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("es_OUT-wait-one-step", |b| b.iter(|| p.run(&input)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
