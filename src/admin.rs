//! Status and metrics, rendered from the shards' snapshots: Prometheus text for `/metrics`,
//! JSON for `/status`, and the tiny HTTP/1.1 request parsing the admin endpoint needs.
//!
//! Pure: no sockets, no clock (uptime comes in as a parameter). The runtime gathers the
//! snapshots and serves the bytes.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]

pub mod health;
pub mod http;
pub mod metrics;
pub mod page;
pub mod snapshot;
pub mod status;

pub use metrics::render_metrics;
pub use snapshot::{
    Listening, RuntimeCounters, ServerState, ShardSnapshot, SpoolProfile, SpoolState,
    TLS_FAILURE_REASONS,
};
pub use status::{render_status, ServerSummary, Summary};
