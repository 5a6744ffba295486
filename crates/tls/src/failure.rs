//! Why a TLS connection failed, named the way the log and `/metrics` name it.

use rustls::{AlertDescription, CertificateError, Error};

/// The reasons a TLS connection fails, as `/metrics` labels them, indexed by
/// [`TlsFailure::index`]; the gateway's `/metrics` labels its failure counter with them.
pub const TLS_FAILURE_REASONS: [&str; 9] = [
    "plaintext_peer",
    "tls_on_plain_port",
    "expired",
    "name_mismatch",
    "verification",
    "no_client_certificate",
    "refused_by_peer",
    "handshake",
    "timeout",
];

/// One TLS failure. [`TlsFailure::reason`] is its `/metrics` label
/// (`palisade_tls_failures_total{reason=...}`); [`TlsFailure::detail`] what the log adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// Bytes that are not a TLS record where TLS was expected: the peer speaks plain XML on a
    /// TLS port, or a dial with `tls = true` reached a plain port.
    PlaintextPeer,
    /// A TLS ClientHello (or alert) on a plain port: the peer wants TLS and this leg has none.
    TlsOnPlainPort,
    /// The peer's certificate has expired (or is not valid yet).
    Expired(String),
    /// The peer's certificate does not carry the name verified (`tls_name`, default `host`).
    NameMismatch(String),
    /// The peer's chain does not verify against the trust anchors (unknown issuer, bad
    /// signature, wrong usage...).
    Verification(String),
    /// A TLS listener with `client_ca` got a peer that presented no certificate.
    NoClientCertificate,
    /// The peer ended the handshake with an alert: it refused our certificate, or our offer.
    RefusedByPeer(String),
    /// Any other protocol failure (no common version or cipher, a malformed record...).
    Handshake(String),
    /// The handshake did not finish within `[timers] handshake_timeout`.
    Timeout,
}

impl TlsFailure {
    /// Every reason label, in a fixed order (`/metrics` shows them all, zeros included).
    /// One list for the whole crate: the admin core renders these labels without depending on
    /// this module.
    pub const REASONS: [&'static str; 9] = TLS_FAILURE_REASONS;

    pub fn reason(&self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// Index into [`TlsFailure::REASONS`].
    pub fn index(&self) -> usize {
        match self {
            TlsFailure::PlaintextPeer => 0,
            TlsFailure::TlsOnPlainPort => 1,
            TlsFailure::Expired(_) => 2,
            TlsFailure::NameMismatch(_) => 3,
            TlsFailure::Verification(_) => 4,
            TlsFailure::NoClientCertificate => 5,
            TlsFailure::RefusedByPeer(_) => 6,
            TlsFailure::Handshake(_) => 7,
            TlsFailure::Timeout => 8,
        }
    }

    /// What happened, for a person reading the log.
    pub fn detail(&self) -> String {
        match self {
            TlsFailure::PlaintextPeer => {
                "the peer sent bytes that are not TLS (a plain XMPP peer on a TLS leg?)".into()
            }
            TlsFailure::TlsOnPlainPort => {
                "the peer speaks TLS on a plain leg (set tls = true, or use the TLS port)".into()
            }
            TlsFailure::Expired(d)
            | TlsFailure::NameMismatch(d)
            | TlsFailure::Verification(d)
            | TlsFailure::RefusedByPeer(d)
            | TlsFailure::Handshake(d) => d.clone(),
            TlsFailure::NoClientCertificate => {
                "the peer presented no certificate, and [tls] client_ca requires one".into()
            }
            TlsFailure::Timeout => "the handshake did not finish within handshake_timeout".into(),
        }
    }

    /// Who is at fault, in a few words, and what to look at.
    pub fn hint(&self) -> &'static str {
        match self {
            TlsFailure::PlaintextPeer => {
                "the peer is not speaking TLS: check its port and tls setting"
            }
            TlsFailure::TlsOnPlainPort => {
                "the peer wants TLS: point it at the TLS port, or set tls = true"
            }
            TlsFailure::Expired(_) => "the peer's certificate is out of date: renew it",
            TlsFailure::NameMismatch(_) => {
                "the certificate names another host: set tls_name to a name it carries"
            }
            TlsFailure::Verification(_) => {
                "the chain is not signed by a trusted CA: set ca to the issuing CA"
            }
            TlsFailure::NoClientCertificate => {
                "the peer must present a certificate signed by client_ca"
            }
            TlsFailure::RefusedByPeer(_) => {
                "the peer refused us: does it trust our certificate (client_cert, [tls] cert)?"
            }
            TlsFailure::Handshake(_) => "the two sides share no TLS version or cipher suite",
            TlsFailure::Timeout => "the peer is slow or is not speaking TLS",
        }
    }
}

/// Names a rustls error.
pub fn classify(e: &Error) -> TlsFailure {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                TlsFailure::Expired(format!("the peer's certificate has expired ({c:?})"))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                TlsFailure::Expired(format!("the peer's certificate is not valid yet ({c:?})"))
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::NameMismatch(format!(
                    "the peer's certificate is not valid for the name verified ({c:?})"
                ))
            }
            other => TlsFailure::Verification(format!(
                "the peer's certificate does not verify: {other:?}"
            )),
        },
        Error::NoCertificatesPresented => TlsFailure::NoClientCertificate,
        Error::AlertReceived(AlertDescription::CertificateRequired) => TlsFailure::RefusedByPeer(
            "the peer requires a certificate (set client_cert and client_key)".into(),
        ),
        Error::AlertReceived(alert) => {
            TlsFailure::RefusedByPeer(format!("the peer ended the handshake with alert {alert:?}"))
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            TlsFailure::Handshake(format!("malformed TLS from the peer: {e}"))
        }
        other => TlsFailure::Handshake(other.to_string()),
    }
}

/// Whether the first bytes of a connection are a TLS record (handshake or alert), which no
/// XML stream can start with.
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03, ..] | [0x15 | 0x16])
}

/// Whether the first byte of what a TLS peer sends can start a TLS record.
pub(crate) fn can_start_record(first: u8) -> bool {
    (0x14..=0x17).contains(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_indexes_agree() {
        let all = [
            TlsFailure::PlaintextPeer,
            TlsFailure::TlsOnPlainPort,
            TlsFailure::Expired(String::new()),
            TlsFailure::NameMismatch(String::new()),
            TlsFailure::Verification(String::new()),
            TlsFailure::NoClientCertificate,
            TlsFailure::RefusedByPeer(String::new()),
            TlsFailure::Handshake(String::new()),
            TlsFailure::Timeout,
        ];
        for (i, f) in all.iter().enumerate() {
            assert_eq!(f.index(), i);
            assert_eq!(f.reason(), TlsFailure::REASONS[i]);
        }
    }

    #[test]
    fn certificate_errors_are_named() {
        let e = Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(classify(&e).reason(), "expired");
        let e = Error::InvalidCertificate(CertificateError::NotValidForName);
        assert_eq!(classify(&e).reason(), "name_mismatch");
        let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(classify(&e).reason(), "verification");
        assert_eq!(
            classify(&Error::NoCertificatesPresented).reason(),
            "no_client_certificate"
        );
        let e = Error::AlertReceived(AlertDescription::BadCertificate);
        assert_eq!(classify(&e).reason(), "refused_by_peer");
    }

    #[test]
    fn tls_records_are_told_from_xml() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02]));
        assert!(looks_like_tls(&[0x15, 0x03, 0x03]));
        assert!(!looks_like_tls(b"<stream:stream"));
        assert!(!looks_like_tls(b"<?xml"));
        assert!(!looks_like_tls(b" "));
        assert!(!can_start_record(b'<'));
    }
}
