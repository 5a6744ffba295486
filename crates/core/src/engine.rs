//! The sharded engine's per-shard core, sans-IO: events owned by this shard, their chain walks,
//! their timers, per-key ordering, each server's reachability and queue, and the counters.
//!
//! Must not: perform I/O, read a clock, spawn tasks, or share state with another shard. The
//! runtime feeds it inputs (with `now`) and carries its [`Action`]s out.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

mod counters;
mod deadlines;
mod epochs;
mod order;
mod outage;
mod recent;
mod reload;
mod servers;
mod shard;
mod slots;
mod spooling;
mod walk;

pub use counters::{Counters, ServerCounters, Terminal, TerminalCounts};
pub use recent::Window;
pub use servers::LinkState;
pub use servers::Reach;
pub use shard::{
    Action, Alarm, AlarmState, Closing, EngineConfig, LinkChange, Outgoing, RouterRef, ShardEngine,
};

#[cfg(test)]
mod tests;

// Calls the core may not make, compiled only to check that clippy refuses them.
#[cfg(palisade_lint_probe)]
mod lint_probe;
