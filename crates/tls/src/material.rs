//! The rustls configurations a configuration file calls for, built from the PEM files it
//! names: one server configuration for the TLS listeners (with a client verifier when
//! `client_ca` is set), one client configuration per TLS dial. Built whole at start and at
//! each reload, then shared read-only (`Arc`) by every shard; a reload that cannot build them
//! changes nothing.

use super::pem;
use palisade_core::policy::{Config, Diagnostic, FileRef, Severity};
use rustls::client::ClientConfig;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Certificates that expire sooner than this are warned about.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// Everything TLS the gateway needs, ready to use.
#[derive(Default)]
pub struct Material {
    /// For `[listen] routers_tls` and `compliance_tls`.
    pub listener: Option<Arc<ServerConfig>>,
    /// By `server:NAME` / `router:NAME` (lower case).
    dials: HashMap<String, Dial>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("listener", &self.listener.is_some())
            .field("dials", &self.dials.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How to dial one peer with TLS.
#[derive(Clone, Debug)]
pub struct Dial {
    pub config: Arc<ClientConfig>,
    /// The name its certificate must carry.
    pub name: ServerName<'static>,
}

impl Material {
    /// The dial of compliance server `name`, if it dials with TLS.
    pub fn server_dial(&self, name: &str) -> Option<&Dial> {
        self.dials
            .get(&format!("server:{}", name.to_ascii_lowercase()))
    }

    /// The dial of router `name` (its outbound leg), if it dials with TLS.
    pub fn router_dial(&self, name: &str) -> Option<&Dial> {
        self.dials
            .get(&format!("router:{}", name.to_ascii_lowercase()))
    }

    /// Reads every file `config` names and builds the rustls configurations. Returns the
    /// material when nothing is wrong, and every problem found (errors, and warnings such as
    /// certificates close to expiry), located at the key naming the file in `origin`.
    pub fn build(
        config: &Config,
        origin: &str,
        now: SystemTime,
    ) -> (Option<Material>, Vec<Diagnostic>) {
        let mut b = Builder {
            origin,
            now,
            problems: Vec::new(),
            native: None,
        };
        let mut material = Material::default();
        if let Some(tls) = &config.tls {
            material.listener = b.listener(&tls.cert, &tls.key, tls.client_ca.as_ref());
        }
        let dials = config
            .servers
            .iter()
            .filter_map(|s| {
                Some((
                    format!("server:{}", s.name),
                    s.tls.as_ref()?,
                    s.name.as_str(),
                ))
            })
            .chain(config.routers.iter().filter_map(|r| {
                Some((
                    format!("router:{}", r.name),
                    r.tls.as_ref()?,
                    r.name.as_str(),
                ))
            }));
        for (key, tls, who) in dials {
            if let Some(dial) = b.dial(tls, who) {
                material.dials.insert(key.to_ascii_lowercase(), dial);
            }
        }
        let failed = b.problems.iter().any(Diagnostic::is_error);
        (if failed { None } else { Some(material) }, b.problems)
    }
}

struct Builder<'a> {
    origin: &'a str,
    now: SystemTime,
    problems: Vec<Diagnostic>,
    /// The system's roots, read once per build when a dial needs them.
    native: Option<Arc<RootCertStore>>,
}

impl Builder<'_> {
    fn problem(
        &mut self,
        severity: Severity,
        at: Option<&FileRef>,
        message: String,
        hint: Option<&str>,
    ) {
        self.problems.push(Diagnostic {
            severity,
            file: self.origin.to_owned(),
            line: at.map_or(0, |f| f.line),
            col: at.map_or(0, |f| f.col),
            message,
            hint: hint.map(str::to_owned),
        });
    }

    fn error(&mut self, at: &FileRef, message: String) {
        self.problem(
            Severity::Error,
            Some(at),
            format!("`{}`: {message}", at.key),
            None,
        );
    }

    fn certificates(&mut self, at: &FileRef) -> Option<Vec<CertificateDer<'static>>> {
        match pem::certificates(&at.path) {
            Ok(certs) => {
                self.check_expiry(at, &certs);
                Some(certs)
            }
            Err(e) => {
                self.error(at, e.to_string());
                None
            }
        }
    }

    fn key(&mut self, at: &FileRef) -> Option<PrivateKeyDer<'static>> {
        pem::private_key(&at.path)
            .map_err(|e| self.error(at, e.to_string()))
            .ok()
    }

    fn check_expiry(&mut self, at: &FileRef, certs: &[CertificateDer<'_>]) {
        for (i, cert) in certs.iter().enumerate() {
            let Some((_, not_after)) = pem::validity(cert) else {
                continue;
            };
            let which = if certs.len() == 1 {
                String::from("the certificate")
            } else {
                format!("certificate {} of {}", i + 1, certs.len())
            };
            let file = at.path.display();
            match not_after.duration_since(self.now) {
                Err(past) => {
                    let days = past.duration().as_secs() / 86_400;
                    let message =
                        format!("`{}`: {which} in {file} expired {days} day(s) ago", at.key);
                    self.problem(
                        Severity::Warning,
                        Some(at),
                        message,
                        Some("renew it: peers refuse an expired certificate"),
                    );
                }
                Ok(left) if left < EXPIRY_WARNING => {
                    let days = left.as_secs() / 86_400;
                    let message =
                        format!("`{}`: {which} in {file} expires in {days} day(s)", at.key);
                    self.problem(
                        Severity::Warning,
                        Some(at),
                        message,
                        Some("renew it before it expires"),
                    );
                }
                Ok(_) => {}
            }
        }
    }

    fn roots(&mut self, at: &FileRef) -> Option<RootCertStore> {
        let certs = self.certificates(at)?;
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(certs);
        if added == 0 || ignored > 0 {
            self.error(
                at,
                format!(
                    "{} holds {ignored} certificate(s) that cannot be trust anchors",
                    at.path.display()
                ),
            );
            return None;
        }
        Some(roots)
    }

    fn native_roots(&mut self, who: &str) -> Option<Arc<RootCertStore>> {
        if let Some(roots) = &self.native {
            return Some(roots.clone());
        }
        let found = rustls_native_certs::load_native_certs();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            let message = format!(
                "{who} dials with TLS and no `ca`, and the system has no root certificates \
                 ({} error(s) reading them)",
                found.errors.len()
            );
            let hint = "install the system's CA bundle (ca-certificates), or set ca";
            self.problem(Severity::Error, None, message, Some(hint));
            return None;
        }
        let roots = Arc::new(roots);
        self.native = Some(roots.clone());
        Some(roots)
    }

    fn listener(
        &mut self,
        cert: &FileRef,
        key: &FileRef,
        client_ca: Option<&FileRef>,
    ) -> Option<Arc<ServerConfig>> {
        let chain = self.certificates(cert);
        let private = self.key(key);
        let verifier = match client_ca {
            Some(ca) => {
                let roots = self.roots(ca)?;
                match WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    super::provider(),
                )
                .build()
                {
                    Ok(v) => Some(v),
                    Err(e) => {
                        self.error(ca, format!("cannot verify clients with it: {e}"));
                        return None;
                    }
                }
            }
            None => None,
        };
        let (chain, private) = (chain?, private?);
        let builder = ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .ok()?;
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        match builder.with_single_cert(chain, private) {
            Ok(config) => Some(Arc::new(config)),
            Err(e) => {
                self.key_mismatch(cert, key, e);
                None
            }
        }
    }

    fn key_mismatch(&mut self, cert: &FileRef, key: &FileRef, e: rustls::Error) {
        let message = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the key in {} does not match the certificate in {}",
                key.path.display(),
                cert.path.display()
            ),
            e => format!("the key in {} cannot be used: {e}", key.path.display()),
        };
        self.error(key, message);
    }

    fn dial(&mut self, tls: &palisade_core::policy::DialTls, who: &str) -> Option<Dial> {
        let name = ServerName::try_from(tls.name.clone()).ok()?;
        let roots = match &tls.ca {
            Some(ca) => Arc::new(self.roots(ca)?),
            None => self.native_roots(who)?,
        };
        let builder = ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots);
        let config = match &tls.client {
            None => builder.with_no_client_auth(),
            Some(id) => {
                let (chain, private) = (self.certificates(&id.cert), self.key(&id.key));
                match builder.with_client_auth_cert(chain?, private?) {
                    Ok(config) => config,
                    Err(e) => {
                        self.key_mismatch(&id.cert, &id.key, e);
                        return None;
                    }
                }
            }
        };
        Some(Dial {
            config: Arc::new(config),
            name,
        })
    }
}
