//! Palisade's sans-IO core: everything the gateway decides, as state machines fed bytes and
//! `now` and drained of their outputs.
//!
//! - [`wire`]: XEP-0114 component streams (framing, handshake, limits, writers);
//! - [`protocol`]: the compliance protocol's events, requests, answers and verdicts;
//! - [`policy`]: the configuration model (parsed from text), profiles and the compiled matcher;
//! - [`routing`]: conversation keys to shards and to servers (rendezvous hashing);
//! - [`engine`]: one shard's events, servers, outages, deadlines and reloads;
//! - [`spool`]: the durable-record format and the spool's bookkeeping.
//!
//! Must not: do I/O, read a clock, draw randomness, or know anything of glommio. The gateway
//! crate's runtime owns sockets, files, tasks and timers, and feeds this crate.

// No unsafe anywhere in the library (each module root says so too); `Cargo.toml` only denies
// it, so that a test's counting allocator (`tests/allocations.rs`) may allow it where it stands.
#![forbid(unsafe_code)]

pub mod engine;
pub mod gateway;
pub mod policy;
pub mod protocol;
pub mod routing;
pub mod spool;
pub mod wire;
