//! Palisade: a sharded, thread-per-core compliance gateway for XMPP.
//!
//! This crate is the gateway itself: the glommio runtime (sockets, tasks, timers, the channel
//! mesh), the admin endpoint, configuration files, the operator commands and the `palisade`
//! binary's command line. It decides nothing about the protocol or the policy: that is
//! `palisade-core` (sans-IO, no clock, no file system). `palisade-tls` holds the TLS layer,
//! `palisade-tools` the simulator, load generator and demo, `palisade-tuning` the sizing model.
//! See `ARCHITECTURE.md` at the repository root for the layers and their invariants.

pub mod admin;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod ops;
// The runtime's modules are private; the items they mark `pub` are crate-internal either way.
#[allow(unreachable_pub)]
pub mod runtime;

// The layers this crate is built on, under the names its modules use (`crate::engine`, ...):
// private imports, so that users of the layers name the crates themselves.
use palisade_core::{engine, gateway, policy, protocol, spool, wire};
use palisade_tls as tls;
use palisade_tools as tools;
use palisade_tuning as tuning;
