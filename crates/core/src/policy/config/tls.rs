//! Validation of the TLS keys: `[tls]` (the listeners' certificate), `[listen] routers_tls` /
//! `compliance_tls`, and the dial keys of `[[server]]` and `[[router]]` (`tls`, `ca`,
//! `tls_name`, `client_cert`, `client_key`).
//!
//! This file owns which keys go together and the name a dial verifies. It must not open the
//! files named (the runtime's `tls` module reads and checks them, and reports at the positions
//! kept here in each [`FileRef`]).

use super::diagnostic::Diags;
use super::load::{RawDialTls, RawListen, RawTls, Sp};
use super::{ClientIdentity, DialTls, FileRef, TlsConfig};
use rustls_pki_types::ServerName;
use std::path::PathBuf;

/// Which kind of table the dial keys sit in, for the messages.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub(super) enum Dialer {
    Server,
    Router,
}

fn file(d: &Diags<'_>, key: &'static str, value: &Sp<String>) -> Option<FileRef> {
    let (line, col) = d.position(value.at);
    Some(FileRef {
        path: PathBuf::from(&value.v),
        key,
        line,
        col,
    })
}

fn non_empty(d: &mut Diags<'_>, key: &'static str, value: Option<&Sp<String>>) -> Option<FileRef> {
    let value = value?;
    if value.v.is_empty() {
        d.error(value.at, format!("`{key}` is empty: name a PEM file"));
        return None;
    }
    file(d, key, value)
}

/// `[tls]`, checked against the TLS listeners that need it.
pub(super) fn listener_tls(
    raw: Option<&RawTls>,
    listen: &RawListen,
    d: &mut Diags<'_>,
) -> Option<TlsConfig> {
    let listeners = [
        ("routers_tls", listen.routers_tls.as_ref()),
        ("compliance_tls", listen.compliance_tls.as_ref()),
    ];
    let Some(raw) = raw else {
        for (key, value) in listeners {
            if let Some(v) = value {
                d.error_hint(
                    v.at,
                    format!("`{key}` needs the gateway's certificate, and there is no [tls]"),
                    "add [tls] with cert = \"...pem\" and key = \"...pem\"",
                );
            }
        }
        return None;
    };
    for (key, present) in [("cert", raw.cert.is_some()), ("key", raw.key.is_some())] {
        if !present {
            d.error(raw.at, format!("missing `{key}` in [tls]"));
        }
    }
    if listeners.iter().all(|(_, v)| v.is_none()) {
        d.warning(
            raw.at,
            "[tls] is set but no TLS listener uses it",
            Some("add routers_tls or compliance_tls under [listen]".to_owned()),
        );
    }
    let cert = non_empty(d, "cert", raw.cert.as_ref());
    let key = non_empty(d, "key", raw.key.as_ref());
    let client_ca = non_empty(d, "client_ca", raw.client_ca.as_ref());
    Some(TlsConfig {
        cert: cert?,
        key: key?,
        client_ca,
    })
}

/// The dial keys of one `[[server]]` or `[[router]]`. `host`: what the table dials (`None`
/// when it dials nothing: an inbound server, a router without `connect`).
pub(super) fn dial_tls(
    raw: &RawDialTls,
    host: Option<&Sp<String>>,
    dialer: Dialer,
    name: &str,
    d: &mut Diags<'_>,
) -> Option<DialTls> {
    let others = [
        ("ca", raw.ca.as_ref()),
        ("tls_name", raw.tls_name.as_ref()),
        ("client_cert", raw.client_cert.as_ref()),
        ("client_key", raw.client_key.as_ref()),
    ];
    let on = raw.tls.as_ref().is_some_and(|t| t.v);
    let Some(host) = host else {
        let (what, hint) = match dialer {
            Dialer::Server => (
                format!("server `{name}` is inbound: the gateway does not dial it"),
                "an inbound server dials [listen] compliance_tls for TLS",
            ),
            Dialer::Router => (
                format!("router `{name}` has no `connect`: the gateway does not dial it"),
                "a router that dials in uses [listen] routers_tls for TLS",
            ),
        };
        let first = raw
            .tls
            .as_ref()
            .map(|t| ("tls", t.at))
            .or_else(|| others.iter().find_map(|(k, v)| v.map(|v| (*k, v.at))));
        if let Some((key, at)) = first {
            d.error_hint(at, format!("`{key}` applies to dials, and {what}"), hint);
        }
        return None;
    };
    if !on {
        for (key, value) in others {
            if let Some(v) = value {
                d.error_hint(
                    v.at,
                    format!("`{key}` has no effect without `tls = true`"),
                    "add tls = true to dial with TLS, or remove the key",
                );
            }
        }
        return None;
    }
    match (&raw.client_cert, &raw.client_key) {
        (Some(c), None) => d.error(c.at, "`client_cert` needs `client_key` (its private key)"),
        (None, Some(k)) => d.error(k.at, "`client_key` needs `client_cert` (its certificate)"),
        _ => {}
    }
    let verified = raw.tls_name.as_ref().unwrap_or(host);
    if ServerName::try_from(verified.v.as_str()).is_err() {
        d.error_hint(
            verified.at,
            format!(
                "{:?} cannot be verified in a certificate: not a DNS name or an IP address",
                verified.v
            ),
            "set tls_name to the name the peer's certificate carries",
        );
    }
    let ca = non_empty(d, "ca", raw.ca.as_ref());
    let cert = non_empty(d, "client_cert", raw.client_cert.as_ref());
    let key = non_empty(d, "client_key", raw.client_key.as_ref());
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientIdentity { cert, key }),
        _ => None,
    };
    Some(DialTls {
        ca,
        name: verified.v.clone(),
        client,
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::config::{load_str, Diagnostic};

    const BASE: &str = r#"
[gateway]
name = "palisade.example.com"
[[router]]
name = "imp1.example.com"
secret = "s"
[[server]]
name = "cs1"
host = "cs1.example.com"
port = 7999
password = "p"
profile = "SystemDefaultComplianceProfile"
"#;

    fn errors(text: &str) -> Vec<String> {
        match load_str(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(d) => d
                .iter()
                .filter(|d| d.is_error())
                .map(Diagnostic::to_string)
                .collect(),
        }
    }

    #[test]
    fn a_dial_verifies_its_host_unless_tls_name_says_otherwise() {
        let text = format!("{BASE}tls = true\nca = \"/ca.pem\"\n");
        let config = load_str(&text, "t.toml").expect("valid").config;
        let tls = config.servers[0].tls.clone().expect("tls");
        assert_eq!(tls.name, "cs1.example.com");
        let ca = tls.ca.expect("ca");
        assert_eq!(
            (ca.path.to_str(), ca.line, ca.col),
            (Some("/ca.pem"), 14, 6)
        );
        let text = format!("{BASE}tls = true\ntls_name = \"other.example.com\"\n");
        let config = load_str(&text, "t.toml").expect("valid").config;
        assert_eq!(
            config.servers[0].tls.as_ref().unwrap().name,
            "other.example.com"
        );
        assert!(config.servers[0].tls.as_ref().unwrap().ca.is_none());
    }

    #[test]
    fn a_router_dial_verifies_the_host_of_connect() {
        let text = BASE.replace(
            "secret = \"s\"",
            "secret = \"s\"\nconnect = \"xmpp.example.com:5347\"\ntls = true",
        );
        let config = load_str(&text, "t.toml").expect("valid").config;
        assert_eq!(
            config.routers[0].tls.as_ref().unwrap().name,
            "xmpp.example.com"
        );
    }

    #[test]
    fn keys_that_need_others_are_errors_where_they_are_written() {
        let e = errors(&format!("{BASE}ca = \"/ca.pem\"\n"));
        assert!(
            e[0].starts_with("t.toml:13:6: error: `ca` has no effect without `tls = true`"),
            "{e:?}"
        );
        let e = errors(&format!("{BASE}tls = true\nclient_cert = \"/c.pem\"\n"));
        assert!(e[0].contains("`client_cert` needs `client_key`"), "{e:?}");
        let e = errors(&BASE.replace("secret = \"s\"", "secret = \"s\"\ntls = true"));
        assert!(
            e[0].contains("router `imp1.example.com` has no `connect`"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{BASE}[listen]\nrouters_tls = \"127.0.0.1:5285\"\n"
        ));
        assert!(
            e[0].contains("`routers_tls` needs the gateway's certificate"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{BASE}[tls]\ncert = \"/c.pem\"\n[listen]\nrouters_tls = \"127.0.0.1:5285\"\n"
        ));
        assert!(e[0].contains("missing `key` in [tls]"), "{e:?}");
        let e = errors(&format!("{BASE}tls = true\ntls_name = \"not a name\"\n"));
        assert!(
            e[0].contains("cannot be verified in a certificate"),
            "{e:?}"
        );
    }

    #[test]
    fn tls_listeners_with_mutual_tls() {
        let text = format!(
            "{BASE}[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nclient_ca = \"/ca.pem\"\n\
             [listen]\nrouters_tls = \"127.0.0.1:5285\"\ncompliance_tls = \"127.0.0.1:5286\"\n"
        );
        let loaded = load_str(&text, "t.toml").expect("valid");
        let tls = loaded.config.tls.expect("tls");
        assert_eq!(tls.client_ca.expect("ca").key, "client_ca");
        assert_eq!(
            loaded.config.listen.routers_tls,
            "127.0.0.1:5285".parse().ok()
        );
        let unused = load_str(
            &format!("{BASE}[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n"),
            "t",
        );
        let warnings = unused.expect("valid").warnings;
        assert!(
            warnings
                .iter()
                .any(|w| w.message.contains("no TLS listener")),
            "{warnings:?}"
        );
    }
}
