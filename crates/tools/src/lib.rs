//! The bundled tools: `palisade sim` (a compliance server, or a stand-in for the gateway),
//! `palisade load` (a router-side load generator), `palisade demo` (both with the gateway), and
//! the plumbing they share.
//!
//! The tools speak the wire contract through the gateway's own core layers
//! ([`palisade_core::wire`] for streams, [`palisade_core::protocol`] for events, requests and
//! verdicts, [`palisade_core::policy`] for the catalog and JIDs); they never re-implement XML framing or the protocol's message shapes.
//! They run on plain std threads with nonblocking sockets driven by `poll(2)`: one thread per
//! connection, no executor, so they stay out of the gateway's way (and its locked-memory
//! budget) when both run on one machine.
//!
//! Must not: be used by the gateway runtime, or depend on it.

pub mod demo;
pub mod http_get;
pub mod load;
pub mod local;
pub mod login_rate;
pub mod net;
pub mod rng;
pub mod signal;
pub mod sim;
pub mod units;

// The core layers under the names the modules use (`crate::wire`, ...).
use palisade_core::{policy, protocol, wire};
use palisade_tls as tls;
