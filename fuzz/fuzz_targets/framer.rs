//! Arbitrary bytes, cut into arbitrary chunks, through the framer: it must never panic, its
//! buffer must stay within the stanza limit plus one chunk, and the frames must not depend on
//! the chunking (the fast single-pass path and the resumable scan must agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade::wire::{Frame, Framer, Limits};

const LIMITS: Limits = Limits {
    max_stanza_bytes: 4096,
    max_depth: 16,
    max_attributes: 16,
};

fn summary(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Header(h) => format!("H{h:?}").into_bytes(),
        Frame::Stanza(s) => s.bytes().to_vec(),
        Frame::End => b"E".to_vec(),
    }
}

fn frames(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut framer = Framer::new(LIMITS);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => out.push(summary(&f)),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        assert!(framer.buffered() <= LIMITS.max_stanza_bytes + 1 + chunk.len() + 4096);
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks where to cut; the rest is the input, after a valid header so that
    // stanza framing is reached.
    let Some((&cut, body)) = data.split_first() else { return };
    let mut input = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>".to_vec();
    input.extend_from_slice(body);
    let whole = frames(&[&input]);
    let cut = usize::from(cut) * input.len() / 256;
    let (a, b) = input.split_at(cut);
    assert_eq!(frames(&[a, b]), whole, "frames depend on where the input was cut");
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    if input.len() < 600 {
        assert_eq!(frames(&bytewise), whole, "frames differ when fed byte by byte");
    }
    // Raw input with no header at all must be refused without panicking either.
    let _ = frames(&[body]);
});
