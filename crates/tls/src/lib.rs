//! TLS for every leg: the certificates and trust anchors the configuration names, loaded into
//! rustls configurations (`material.rs`), the sans-IO layer that sits between a socket and an
//! XEP-0114 stream (`session.rs`) and what went wrong when a handshake fails (`failure.rs`).
//! The gateway's `config` module runs `check-config`'s file checks through [`Material`].
//!
//! Owns every read of a PEM file and every rustls object. It does no socket I/O and knows
//! nothing of glommio: the runtime (`runtime/tls.rs`) and the tools move the bytes. The wire
//! core never sees TLS: it gets the plaintext, exactly as it would from a plain socket.
//!
//! The crypto provider is ring (see ARCHITECTURE.md for why), fixed here, not process-wide.

mod failure;
mod material;
mod pem;
mod session;

pub use failure::{classify, looks_like_tls, TlsFailure, TLS_FAILURE_REASONS};
pub use material::{Dial, Material};
pub use session::{Fed, Session};

/// A dial for the bundled tools: trust the CA certificates in `ca`, verify `name`.
pub fn tool_dial(ca: &std::path::Path, name: &str) -> Result<Dial, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(pem::certificates(ca)?);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| format!("{name:?}: {e}"))?;
    Ok(Dial {
        config: Arc::new(config),
        name,
    })
}

/// An acceptor for the bundled tools: present the chain in `cert` with `key`.
pub fn tool_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(pem::certificates(cert)?, pem::private_key(key)?)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

use std::sync::Arc;

/// The crypto provider every configuration here is built on.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
