//! The XEP-0114 state machine in both roles fed arbitrary bytes and timer ticks: it must never
//! panic, and once closed it must stay closed and quiet.
//!
//! Input layout: byte 0 picks the role (bit 0) and the chunk size (the other bits), byte 1 the
//! stanza limit (small, so that input straddling it is common); the rest is what the peer
//! sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::wire::{ComponentStream, FromCheck, Limits, StreamConfig, StreamEvent};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let [mode, size, body @ ..] = data else { return };
    let mode = *mode;
    let config = StreamConfig {
        limits: Limits {
            max_stanza_bytes: 64 + usize::from(*size) * 4,
            ..Limits::default()
        },
        ..StreamConfig::default()
    };
    let t0 = Instant::now();
    let mut stream = if mode & 1 == 0 {
        ComponentStream::receiver(config, [1; 16], FromCheck::PeerDomain, t0)
    } else {
        ComponentStream::initiator(config, "imp1.example.com", b"secret", "jabber:component:accept", FromCheck::PeerDomain, t0)
    };
    let mut now = t0;
    let mut closed = false;
    for chunk in body.chunks(usize::from(mode >> 1).max(1)) {
        now += Duration::from_millis(u64::from(chunk[0]) * 100);
        stream.receive(chunk, now);
        while let Some(e) = stream.poll_event() {
            match e {
                StreamEvent::NameAnnounced { name } => {
                    if name.len() % 2 == 0 {
                        stream.accept_name(b"secret");
                    } else {
                        stream.refuse(palisade_core::wire::Condition::HostUnknown, "no");
                    }
                }
                StreamEvent::Closed(_) => {
                    assert!(!closed, "closed twice");
                    closed = true;
                }
                StreamEvent::Active | StreamEvent::Stanza(_) => assert!(!closed, "event after close"),
            }
        }
        stream.handle_timeout(now);
        let _ = stream.take_output();
        if let Some(w) = stream.writer() {
            w.extend_from_slice(b"<message from='a' to='b'/>");
        }
    }
});
