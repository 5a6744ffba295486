//! The Palisade compliance protocol (`urn:palisade:compliance:0`, docs/protocol.md §§2-4), sans-IO:
//! reading a router's event, writing the request a compliance server judges, reading its
//! answer, and writing the router's verdict.
//!
//! Owns the XML shapes of those four messages and nothing else: which server, which step,
//! when and whether to send are the engine's. Never does I/O or reads a clock (the stamp's wall
//! time is a parameter).
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

pub mod answer;
pub mod event;
pub mod request;
pub mod service;
pub mod stamp;
pub mod verdict;

pub use answer::{parse_answer, Answer, AnswerError, ParsedAnswer};
pub use event::{
    is_host_jid, parse_event, parse_event_into, BadEvent, EventBytes, InboundEvent, Reply, ReplyTo,
};
pub use request::{write_request, Mode, RequestFields, RequestId};
pub use verdict::{write_bad_request, write_forbidden, write_verdict, BounceCause, Verdict};

/// The namespace of `<event/>` and `<verdict/>`.
pub const NS: &str = "urn:palisade:compliance:0";

/// What the writers' property tests feed them.
#[cfg(test)]
pub(crate) mod test_values {
    use proptest::prelude::*;

    /// Values that need escaping, or hold bytes next to ones that do, or are not ASCII.
    pub(crate) fn tricky() -> impl Strategy<Value = String> {
        proptest::string::string_regex("([a-z.@/| -]|'|\"|<|>|&|&amp;|é|😀){0,24}")
            .expect("a valid pattern")
    }
}
