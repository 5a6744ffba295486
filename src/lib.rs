//! Palisade: a sharded, thread-per-core compliance gateway for XMPP.
//!
//! See `ARCHITECTURE.md` at the repository root for the layers and their invariants.

pub mod admin;
pub mod build_info;
pub mod cli;
pub mod engine;
pub mod gateway;
pub mod ops;
pub mod policy;
pub mod protocol;
pub mod routing;
pub mod runtime;
pub mod spool;
pub mod tls;
pub mod tools;
pub mod tuning;
pub mod wire;
