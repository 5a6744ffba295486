//! The per-event path through the library (frame a router's event, read it, submit it to the
//! engine, write the request, frame the server's answer, apply it, write the verdict), driven
//! the way `benches/pipeline.rs` drives it, allocates nothing per event once warmed up but the
//! event's conversation key. Counted with a per-thread counting allocator, so the test
//! harness's other threads do not interfere.

use crate::alloc_count::*;
use bytes::BytesMut;
use palisade_core::engine::{Action, EngineConfig, Outgoing, RouterRef, ShardEngine};
use palisade_core::policy::{load_str, CompiledPolicy, ServerId};
use palisade_core::protocol::{parse_answer, parse_event, Reply, RequestId};
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

/// Router events `from..to` of about 400 bytes, as one byte stream.
fn events(from: usize, to: usize) -> Vec<u8> {
    let mut s = Vec::new();
    for i in from..to {
        s.extend_from_slice(format!(
            "<iq type='set' id='R{i}' from='imp1.example.com' to='palisade.example.com'>\
             <event xmlns='urn:palisade:compliance:0' name='es_OUT'>\
             <message xmlns='jabber:client' from='user{a}@example.com/desk' to='user{b}@example.com' type='chat' id='m{i}'>\
             <body>Quarterly numbers look fine; let us talk about the desk move on Tuesday.</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/></message></event></iq>",
            a = i % 97,
            b = (i * 7 + 1) % 97
        ).as_bytes());
    }
    s
}

/// One shard's engine, a router's framer and a server's framer, as in the pipeline bench.
struct Pipeline {
    engine: ShardEngine,
    policy: Arc<CompiledPolicy>,
    hasher: KeyHasher,
    router_in: Framer,
    server_in: Framer,
    answers: BytesMut,
    verdicts: usize,
}

impl Pipeline {
    fn new() -> Pipeline {
        let config = load_str(CONFIG, "alloc.toml")
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config;
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
            verdicts: 0,
        }
    }

    /// Runs one read's worth of events through, answering each, and drops the verdicts.
    fn run(&mut self, input: &[u8], now: Instant, wall: SystemTime) {
        let router = RouterRef { shard: 0, conn: 0 };
        self.router_in.feed(input);
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
            self.engine.handle_event(ev, hash, router, now, wall);
        }
        while let Some(action) = self.engine.poll_action() {
            if let Action::Send {
                request: Outgoing::Wait { id, .. },
                ..
            } = action
            {
                let mut id_buf = [0u8; RequestId::MAX_LEN];
                self.answers.extend_from_slice(b"<iq type='result' id='");
                self.answers.extend_from_slice(id.encode(&mut id_buf));
                self.answers.extend_from_slice(
                    b"' from='op-cs1.palisade-example-com' to='palisade.example.com'/>",
                );
            }
        }
        self.server_in.feed(&self.answers);
        self.answers.clear();
        while let Ok(Some(Frame::Stanza(s))) = self.server_in.next_frame() {
            if let Ok(answer) = parse_answer(&s) {
                self.engine.handle_answer(ServerId(0), answer, now);
            }
        }
        while let Some(action) = self.engine.poll_action() {
            if let Action::Verdict { .. } = action {
                self.verdicts += 1;
            }
        }
    }
}

#[test]
fn the_event_pipeline_does_not_allocate_per_event_once_warm() {
    const BATCH: usize = 200;
    const ROUNDS: usize = 20;
    let mut p = Pipeline::new();
    let now = Instant::now();
    let wall = SystemTime::now();
    let batches: Vec<Vec<u8>> = (0..ROUNDS + 5)
        .map(|r| events(r * BATCH, (r + 1) * BATCH))
        .collect();
    // Warm-up: buffers, queues and tables reach their working size.
    for b in &batches[..5] {
        p.run(b, now, wall);
    }
    assert_eq!(p.verdicts, 5 * BATCH, "every event gets its verdict");
    let before = allocations();
    for b in &batches[5..] {
        p.run(b, now, wall);
    }
    let n = allocations() - before;
    assert_eq!(p.verdicts, (ROUNDS + 5) * BATCH);
    assert_eq!(p.engine.in_flight(), 0);
    let events = ROUNDS * BATCH;
    // One per event: its conversation key, a `String` the event owns for as long as it is in
    // flight. Requests and verdicts share one output arena; the framers' buffers are refilled
    // a few times per read, never once per event.
    assert!(
        n <= events + ROUNDS * 8,
        "{n} allocations for {events} events ({:.2} per event)",
        n as f64 / events as f64
    );
}
