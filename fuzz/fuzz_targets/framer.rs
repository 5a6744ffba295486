//! Arbitrary bytes, cut into arbitrary chunks, through the framer under limits the input
//! chooses: it must never panic, its buffer must stay within the stanza limit plus one chunk,
//! no stanza may be longer than the limit, and the frames must not depend on the chunking (the
//! fast single-pass path and the resumable scan must agree).
//!
//! Input layout: byte 0 picks where to cut, byte 1 the stanza limit (small, so that characters
//! and tags straddling it are common), byte 2 the depth and attribute limits; the rest is the
//! stream's content after a valid header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::wire::{Frame, Framer, Limits};

const HEADER: &[u8] =
    b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";

fn limits(size: u8, shape: u8) -> Limits {
    Limits {
        // From just above the header's length, so that stanza framing is reached.
        max_stanza_bytes: HEADER.len() + 1 + usize::from(size) * 2,
        max_depth: 1 + usize::from(shape & 0x0f),
        max_attributes: 1 + usize::from(shape >> 4),
    }
}

fn summary(f: &Frame) -> Vec<u8> {
    match f {
        Frame::Header(h) => format!("H{h:?}").into_bytes(),
        Frame::Stanza(s) => s.bytes().to_vec(),
        Frame::End => b"E".to_vec(),
    }
}

fn frames(chunks: &[&[u8]], limits: Limits) -> (Vec<Vec<u8>>, Option<String>) {
    let mut framer = Framer::new(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(f)) => {
                    if let Frame::Stanza(s) = &f {
                        assert!(s.bytes().len() <= limits.max_stanza_bytes, "stanza over the limit");
                    }
                    out.push(summary(&f))
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        assert!(framer.buffered() <= limits.max_stanza_bytes + 1 + chunk.len() + HEADER.len());
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let [cut, size, shape, body @ ..] = data else { return };
    let limits = limits(*size, *shape);
    let input = [HEADER, body].concat();
    let whole = frames(&[&input], limits);
    let cut = usize::from(*cut) * input.len() / 256;
    let (a, b) = input.split_at(cut);
    assert_eq!(frames(&[a, b], limits), whole, "frames depend on where the input was cut");
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    if input.len() < 600 {
        assert_eq!(frames(&bytewise, limits), whole, "frames differ when fed byte by byte");
    }
    // Raw input with no header at all must be refused without panicking either.
    let _ = frames(&[body], limits);
});
