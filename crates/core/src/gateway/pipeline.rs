//! A driver of one shard's gateway core without sockets, for the measuring tools
//! (`benches/pipeline.rs`, `examples/roofline_pipeline.rs`; the `test-support` feature): a
//! router's ~400-byte wait-mode `es_OUT` events framed and handed to the core, which reads
//! them, routes them and walks them through one wait step (a request offered to the server's
//! stream, which always takes it); the compliance server's answers framed and handed back; the
//! verdicts the core writes. This is the gateway's user-space work per event, apart from the
//! kernel's share and the runtime's task switches.
//!
//! Owns the configuration, the setup and the simulated server's answers, so that every tool
//! measures the same work. Must not: read a clock (time is a parameter), or be used by the
//! gateway itself.

use super::{engine_config, ConnId, ConnectionEvent, Gateway, Now, Offered, Output, Peer};
use crate::engine::{EngineConfig, Outgoing, ShardEngine};
use crate::policy::{load_str, CompiledPolicy, ServerId};
use crate::protocol::RequestId;
use crate::wire::{Frame, Framer, Limits};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway the pipeline runs: one router, one wait-mode profile, one server.
pub const CONFIG: &str = r#"
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

/// The stream header each side's framer starts with.
pub const HEADER: &[u8] = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Router event `i` (about 400 bytes; 997 users, so keys repeat).
pub fn event(i: usize) -> Vec<u8> {
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

/// `n` router events after the stream header, as one byte stream.
pub fn events(n: usize) -> Vec<u8> {
    let mut s = Vec::from(HEADER);
    for i in 0..n {
        s.extend_from_slice(&event(i));
    }
    s
}

/// Events `0..events` cut into reads of `batch` events each (the last one may be shorter), as
/// a router that writes `batch` events at a time would send them.
pub fn reads(batch: usize, events: usize) -> Vec<Vec<u8>> {
    let batch = batch.max(1);
    (0..events.div_ceil(batch))
        .map(|c| {
            (c * batch..((c + 1) * batch).min(events))
                .flat_map(event)
                .collect()
        })
        .collect()
}

/// One shard's core with a router connection and the server's stream up, and the two framers
/// that read what they send.
pub struct Pipeline {
    core: Gateway,
    router: ConnId,
    server: ConnId,
    router_in: Framer,
    server_in: Framer,
    /// The simulated server's answers to the requests written so far.
    answers: BytesMut,
}

impl Pipeline {
    /// The core set up at `now`: the server's stream active, the router's stream named and
    /// active, the engine's limits out of the way (every request fits).
    pub fn new(now: Instant) -> Pipeline {
        let config = Arc::new(load_str(CONFIG, "pipeline.toml").expect("valid").config);
        let policy = Arc::new(CompiledPolicy::compile(&config));
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
        let mut router_in = Framer::new(Limits::default());
        router_in.feed(HEADER);
        Pipeline {
            core,
            router,
            server,
            router_in,
            server_in,
            answers: BytesMut::new(),
        }
    }

    /// The core (read-only).
    pub fn core(&self) -> &Gateway {
        &self.core
    }

    /// Runs every event of `input` (a stream from its header, [`events`]) through, in reads of
    /// 64 KiB, draining the core after every stanza; returns the verdict bytes written.
    pub fn run(&mut self, input: &[u8], now: Now) -> usize {
        let mut verdict_bytes = 0;
        self.router_in = Framer::new(Limits::default());
        for chunk in input.chunks(64 * 1024) {
            self.router_in.feed(chunk);
            while let Ok(Some(frame)) = self.router_in.next_frame() {
                let Frame::Stanza(iq) = frame else { continue };
                self.core.handle_stanza(self.router, &iq, now);
                // The stream takes every request (it has room): the server answers everything
                // written so far, in one read.
                self.requests(now.at);
            }
            self.server_in.feed(&self.answers);
            self.answers.clear();
            while let Ok(Some(Frame::Stanza(s))) = self.server_in.next_frame() {
                self.core.handle_stanza(self.server, &s, now);
                verdict_bytes += self.verdicts();
            }
        }
        verdict_bytes
    }

    /// The router's read of `chunk` (events after the header): each event framed and handed
    /// to the core; returns how many. Drain with [`Pipeline::requests`] before anything else.
    pub fn router_read(&mut self, chunk: &[u8], now: Now) -> usize {
        let mut n = 0;
        self.router_in.feed(chunk);
        while let Ok(Some(frame)) = self.router_in.next_frame() {
            let Frame::Stanza(iq) = frame else { continue };
            self.core.handle_stanza(self.router, &iq, now);
            n += 1;
        }
        n
    }

    /// Drains the core after the router's events: every offer is taken at `at`, and the
    /// server's answer to each request is queued ([`Pipeline::answers_len`]). Returns the
    /// request bytes written.
    pub fn requests(&mut self, at: Instant) -> usize {
        let mut request_bytes = 0;
        while let Some(out) = self.core.poll_output() {
            let Output::Offer(offer) = out else { continue };
            if let Outgoing::Wait { id, .. } = offer.request() {
                request_bytes += offer.bytes().len();
                let mut id_buf = [0u8; RequestId::MAX_LEN];
                self.answers.extend_from_slice(b"<iq type='result' id='");
                self.answers.extend_from_slice(id.encode(&mut id_buf));
                self.answers.extend_from_slice(
                    b"' from='op-cs1.palisade-example-com' to='palisade.example.com'/>",
                );
            }
            self.core.handle_offer(offer, Offered::Taken, at);
        }
        request_bytes
    }

    /// Bytes of answers the server has queued.
    pub fn answers_len(&self) -> usize {
        self.answers.len()
    }

    /// The server's read: its queued answers framed and handed to the core. Drain with
    /// [`Pipeline::verdicts`] before anything else.
    pub fn server_read(&mut self, now: Now) {
        self.server_in.feed(&self.answers);
        self.answers.clear();
        while let Ok(Some(Frame::Stanza(s))) = self.server_in.next_frame() {
            self.core.handle_stanza(self.server, &s, now);
        }
    }

    /// Drains the core after the server's answers; returns the verdict bytes written.
    pub fn verdicts(&mut self) -> usize {
        let mut verdict_bytes = 0;
        while let Some(out) = self.core.poll_output() {
            if let Output::Verdict { bytes, .. } = out {
                verdict_bytes += bytes.len();
            }
        }
        verdict_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_gets_its_verdict_whole_or_in_stages() {
        #[allow(clippy::disallowed_methods)] // a base instant for the test
        let now = Now {
            at: Instant::now(),
            wall: std::time::SystemTime::UNIX_EPOCH,
        };
        let mut p = Pipeline::new(now.at);
        assert!(p.run(&events(300), now) > 300 * 100);
        assert_eq!(p.core().in_flight(), 0);
        let chunk: Vec<u8> = (0..50).flat_map(event).collect();
        assert_eq!(p.router_read(&chunk, now), 50);
        assert!(p.requests(now.at) > 0);
        assert!(p.answers_len() > 0);
        p.server_read(now);
        assert!(p.verdicts() > 50 * 100);
        assert_eq!(p.core().in_flight(), 0);
    }
}
