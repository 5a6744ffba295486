//! The sharded engine's per-shard core, sans-IO: events owned by this shard, their chain walks,
//! their timers, per-key ordering, each server's reachability and queue, and the counters.
//!
//! Must not: perform I/O, read a clock, spawn tasks, or share state with another shard. The
//! runtime feeds it inputs (with `now`) and carries its [`Action`]s out.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

mod counters;
mod deadlines;
mod epochs;
mod events;
mod order;
mod outbuf;
mod recent;
mod servers;
mod shard;
mod slots;

pub use counters::{Counters, ServerCounters, Terminal, TerminalCounts};
pub use events::RouterRef;
pub use recent::Window;
pub use servers::{Closing, LinkChange, LinkState, Reach, ServerView};
pub use shard::{Action, Alarm, AlarmState, EngineConfig, Outgoing, ShardEngine};

#[cfg(test)]
mod tests;

// Calls the core may not make, compiled only to check that clippy refuses them.
#[cfg(palisade_lint_probe)]
mod lint_probe;
