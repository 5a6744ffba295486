//! The gateway's per-event work without the sockets: frame a router's event and hand it to the
//! shard's gateway core (which reads it, routes it and walks it through one wait-mode chain step
//! in the engine: a request offered to the server's stream), frame the compliance server's
//! answer, hand it to the core, and take the verdict it writes. This is the user-space CPU the
//! gateway spends per event, apart from the kernel's share and the runtime's task switches.
//!
//! `cargo bench --bench pipeline`; figures go to `perf/RESULTS.md`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use palisade_core::engine::{EngineConfig, Outgoing, ShardEngine};
use palisade_core::gateway::{
    engine_config, ConnId, ConnectionEvent, Gateway, Now, Offered, Output, Peer,
};
use palisade_core::policy::{load_str, CompiledPolicy, ServerId};
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
    core: Gateway,
    router: ConnId,
    server: ConnId,
    router_in: Framer,
    server_in: Framer,
    answers: BytesMut,
}

impl Pipeline {
    fn new() -> Pipeline {
        let config = Arc::new(load_str(CONFIG, "bench.toml").expect("valid").config);
        let policy = Arc::new(CompiledPolicy::compile(&config));
        let now = Instant::now();
        let cfg = EngineConfig {
            event_timeout: Duration::from_secs(30),
            outage_window: Duration::from_secs(300),
            queue_bound: 1 << 20,
            link_batch_bytes: 16 << 20,
            ..engine_config(0, 1, &config)
        };
        let engine = ShardEngine::new(cfg, policy.clone(), now);
        let mut core = Gateway::new(engine, config, policy);
        let server = core.handle_connection_opened(
            Peer::ServerOutbound {
                server: ServerId(0),
                generation: 0,
            },
            "127.0.0.1:1".into(),
        );
        core.handle_connection_event(server, ConnectionEvent::Active, now);
        let router = core.handle_connection_opened(Peer::RouterInbound, "127.0.0.1:2".into());
        let name = "imp1.example.com".to_owned();
        core.handle_connection_event(router, ConnectionEvent::NameAnnounced { name }, now);
        core.handle_connection_event(router, ConnectionEvent::Active, now);
        while let Some(out) = core.poll_output() {
            if let Output::Offer(offer) = out {
                core.handle_offer(offer, Offered::Taken, now);
            }
        }
        let mut server_in = Framer::new(Limits::default());
        server_in.feed(HEADER);
        Pipeline {
            core,
            router,
            server,
            router_in: Framer::new(Limits::default()),
            server_in,
            answers: BytesMut::new(),
        }
    }

    /// Runs every event of `input` through; returns the verdict bytes written.
    fn run(&mut self, input: &[u8]) -> usize {
        let at = Instant::now();
        let now = Now {
            at,
            wall: SystemTime::now(),
        };
        let mut verdict_bytes = 0;
        self.router_in = Framer::new(Limits::default());
        for chunk in input.chunks(64 * 1024) {
            self.router_in.feed(chunk);
            while let Ok(Some(frame)) = self.router_in.next_frame() {
                let Frame::Stanza(iq) = frame else { continue };
                self.core.handle_stanza(self.router, &iq, now);
                // The stream takes every request (it has room): the server answers everything
                // written so far, in one read.
                while let Some(out) = self.core.poll_output() {
                    let Output::Offer(offer) = out else { continue };
                    if let Outgoing::Wait { id, .. } = offer.request() {
                        let mut id_buf = [0u8; palisade_core::protocol::RequestId::MAX_LEN];
                        let id = std::str::from_utf8(id.encode(&mut id_buf)).unwrap_or("");
                        self.answers.extend_from_slice(b"<iq type='result' id='");
                        self.answers.extend_from_slice(id.as_bytes());
                        self.answers.extend_from_slice(
                            b"' from='op-cs1.palisade-example-com' to='palisade.example.com'/>",
                        );
                    }
                    self.core.handle_offer(offer, Offered::Taken, at);
                }
            }
            self.server_in.feed(&self.answers);
            self.answers.clear();
            while let Ok(Some(Frame::Stanza(s))) = self.server_in.next_frame() {
                self.core.handle_stanza(self.server, &s, now);
                while let Some(out) = self.core.poll_output() {
                    if let Output::Verdict { bytes, .. } = out {
                        verdict_bytes += bytes.len();
                    }
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
    assert_eq!(p.core.in_flight(), 0);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("es_OUT-wait-one-step", |b| b.iter(|| p.run(&input)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
