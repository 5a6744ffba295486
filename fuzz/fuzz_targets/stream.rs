//! The XEP-0114 state machine in both roles fed arbitrary bytes and timer ticks: it must never
//! panic, and once closed it must stay closed and quiet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::wire::{ComponentStream, FromCheck, StreamConfig, StreamEvent};
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let t0 = Instant::now();
    let mut stream = if mode & 1 == 0 {
        ComponentStream::receiver(StreamConfig::default(), [1; 16], FromCheck::PeerDomain, t0)
    } else {
        ComponentStream::initiator(StreamConfig::default(), "imp1.example.com", b"secret", "jabber:component:accept", FromCheck::PeerDomain, t0)
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
                        stream.refuse(palisade::wire::Condition::HostUnknown, "no");
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
