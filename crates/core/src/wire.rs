//! The wire core: XEP-0114 component streams over restricted XML, sans-IO.
//!
//! Owns framing ([`framer`]), the XML rules of docs/protocol.md §1.5 ([`xml`]), the limits of §6
//! ([`limits`]), read sizes ([`read_size`]), stanza views ([`stanza`]), the handshake
//! ([`handshake`]), the stream state machine for both roles ([`stream`]) and serialization by
//! splicing ([`write`]).
//!
//! Must not: perform I/O, read a clock, draw random numbers, or know about glommio, events,
//! profiles or verdicts. Time and randomness come in as parameters.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

pub mod error;
pub mod framer;
pub mod handshake;
pub mod limits;
pub mod read_size;
pub mod stanza;
pub mod stream;
pub mod write;
pub mod xml;

pub use error::{Condition, FrameError};
pub use framer::{Frame, Framer, Header};
pub use limits::Limits;
pub use read_size::ReadSize;
pub use stanza::{AttrSpan, ElementRef, Span, Stanza};
pub use stream::{Closed, ComponentStream, FromCheck, Role, StreamConfig, StreamEvent};

/// For tests (this crate's, and the tools' through the `test-support` feature): the first
/// stanza of `xml` framed inside a component stream. Panics on anything else.
#[cfg(any(test, feature = "test-support"))]
pub fn test_stanza(xml: &[u8]) -> Stanza {
    let mut f = Framer::new(Limits::default());
    f.feed(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
    f.feed(xml);
    let _header = f.next_frame();
    match f.next_frame() {
        Ok(Some(Frame::Stanza(s))) => s,
        other => panic!("{other:?} for {}", String::from_utf8_lossy(xml)),
    }
}
