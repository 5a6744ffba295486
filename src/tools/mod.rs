//! The bundled tools: `palisade sim` (a compliance server, or a stand-in for the gateway),
//! `palisade load` (a router-side load generator), `palisade demo` (both with the gateway), and
//! the plumbing they share.
//!
//! The tools speak the wire contract through the crate's own layers ([`crate::wire`] for
//! streams, [`crate::protocol`] for events, requests and verdicts, [`crate::policy`] for the
//! catalog and JIDs); they never re-implement XML framing or the protocol's message shapes.
//! They run on plain std threads with nonblocking sockets driven by `poll(2)`: one thread per
//! connection, no executor, so they stay out of the gateway's way (and its locked-memory
//! budget) when both run on one machine.
//!
//! Must not: be used by the gateway runtime, or depend on it.

pub mod demo;
pub mod load;
pub mod local;
pub mod net;
pub mod rng;
pub mod signal;
pub mod sim;
pub mod units;
