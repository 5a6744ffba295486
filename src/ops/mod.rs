//! Operator commands that talk to a gateway or its compliance servers from outside: `palisade
//! status` (reads the admin endpoint) and `palisade troubleshoot` (checks every compliance
//! server as the seed's checklist does).
//!
//! Blocking std sockets, one check at a time: these are interactive tools, not the data path.

pub mod http_get;
pub mod status;
pub mod troubleshoot;
