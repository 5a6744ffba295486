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
pub use pem::{PemError, PemKind};
#[cfg(feature = "test-support")]
pub use session::memory_pair;
pub use session::{Fed, Session};

/// Why a bundled tool's TLS set-up (`--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-name`) failed.
/// Every case is the command line's: a file it names, or the name it gives.
#[derive(Debug)]
pub enum ToolTlsError {
    /// A PEM file cannot be read or holds nothing usable.
    Pem(PemError),
    /// rustls refused the material: typically a key that is not the certificate's.
    Rustls(rustls::Error),
    /// The name to verify is neither a DNS name nor an IP address.
    BadName {
        /// The name as given.
        name: String,
        /// Why it is not a server name.
        error: rustls_pki_types::InvalidDnsNameError,
    },
}

impl std::fmt::Display for ToolTlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolTlsError::Pem(e) => e.fmt(f),
            ToolTlsError::Rustls(e) => e.fmt(f),
            ToolTlsError::BadName { name, error } => write!(f, "{name:?}: {error}"),
        }
    }
}

impl std::error::Error for ToolTlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ToolTlsError::Pem(e) => Some(e),
            ToolTlsError::Rustls(e) => Some(e),
            ToolTlsError::BadName { error, .. } => Some(error),
        }
    }
}

impl From<PemError> for ToolTlsError {
    fn from(e: PemError) -> ToolTlsError {
        ToolTlsError::Pem(e)
    }
}

impl From<rustls::Error> for ToolTlsError {
    fn from(e: rustls::Error) -> ToolTlsError {
        ToolTlsError::Rustls(e)
    }
}

/// A dial for the bundled tools: trust the CA certificates in `ca`, verify `name`.
pub fn tool_dial(ca: &std::path::Path, name: &str) -> Result<Dial, ToolTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(pem::certificates(ca)?);
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|error| {
        ToolTlsError::BadName {
            name: name.to_owned(),
            error,
        }
    })?;
    Ok(Dial {
        config: Arc::new(config),
        name,
    })
}

/// An acceptor for the bundled tools: present the chain in `cert` with `key`.
pub fn tool_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, ToolTlsError> {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(pem::certificates(cert)?, pem::private_key(key)?)?;
    Ok(Arc::new(config))
}

use std::sync::Arc;

/// The crypto provider every configuration here is built on.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
