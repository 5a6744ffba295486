//! TLS for every leg: the certificates and trust anchors the configuration names, loaded into
//! rustls configurations (`material.rs`), the sans-IO layer that sits between a socket and an
//! XEP-0114 stream (`session.rs`), what went wrong when a handshake fails (`failure.rs`), and
//! the file checks of `palisade check-config` (`check.rs`).
//!
//! Owns every read of a PEM file and every rustls object. It does no socket I/O and knows
//! nothing of glommio: the runtime (`runtime/tls.rs`) and the tools move the bytes. The wire
//! core never sees TLS: it gets the plaintext, exactly as it would from a plain socket.
//!
//! The crypto provider is ring (see ARCHITECTURE.md for why), fixed here, not process-wide.

mod check;
mod failure;
mod material;
mod pem;
mod session;

pub use check::{check_config_report, check_files};
pub use failure::{classify, looks_like_tls, TlsFailure};
pub use material::{Dial, Material};
pub use session::{Fed, Session};

use std::sync::Arc;

/// The crypto provider every configuration here is built on.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
