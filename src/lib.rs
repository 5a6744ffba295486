//! Palisade: a sharded, thread-per-core compliance gateway for XMPP.
//!
//! See `ARCHITECTURE.md` at the repository root for the layers and their invariants.

pub mod admin;
pub mod build_info;
pub mod cli;
pub mod engine;
pub mod ops;
pub mod policy;
pub mod protocol;
pub mod routing;
// The runtime's modules are private; the items they mark `pub` are crate-internal either way.
#[allow(unreachable_pub)]
pub mod runtime;
pub mod spool;
pub mod tls;
pub mod tools;
pub mod tuning;
pub mod wire;
