//! Arbitrary stanzas through the protocol readers a peer can reach: a router's event, a
//! compliance server's answer, and the ping/disco service. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::protocol::{parse_answer, parse_event, service, Reply};
use palisade_core::wire::{Frame, Framer, Limits};
use std::sync::OnceLock;

fn policy() -> &'static palisade_core::policy::CompiledPolicy {
    static P: OnceLock<palisade_core::policy::CompiledPolicy> = OnceLock::new();
    P.get_or_init(|| palisade_core::policy::CompiledPolicy::compile(&palisade_core::policy::default_config()))
}

fuzz_target!(|data: &[u8]| {
    let mut framer = Framer::new(Limits::default());
    framer.feed(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
    framer.feed(data);
    while let Ok(Some(frame)) = framer.next_frame() {
        let Frame::Stanza(s) = frame else { continue };
        let _ = parse_answer(&s);
        let mut out = bytes::BytesMut::new();
        let _ = service::answer(&mut out, "gw", &s);
        if let Some(reply) = Reply::of(&s) {
            let _ = parse_event(&s, reply, |n| policy().node_id(n.unwrap_or("imp1").as_bytes()));
        }
    }
});
