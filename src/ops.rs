//! Operator commands that talk to a gateway or its compliance servers from outside: `palisade
//! status` (reads the admin endpoint), `palisade reload` (asks it to reload), `palisade troubleshoot` (checks every compliance server
//! as the seed's checklist does) (the login-rate measurement behind `palisade tuning relogin --measured` is
//! the tools crate's, beside the load generator it drives).
//!
//! Blocking std sockets, one check at a time: these are interactive tools, not the data path.

pub mod reload;
pub mod status;
pub mod troubleshoot;
