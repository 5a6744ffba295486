//! Reading PEM files (through `rustls-pki-types`) with errors that say which file and why, and
//! the one thing we read inside a certificate ourselves: its validity period, for the expiry
//! warnings of `check-config`.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What a PEM file was read for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemKind {
    /// A certificate chain, or CA certificates to trust.
    Certificates,
    /// A private key (PKCS#8, PKCS#1 or SEC1).
    PrivateKey,
}

/// Why a PEM file named by the configuration (or a tool's command line) cannot be used.
#[derive(Debug)]
pub enum PemError {
    /// The local system's: the file is missing, is a directory, or this user may not read it.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the read returned.
        error: std::io::Error,
    },
    /// The file's (whoever made it, or named the wrong one): its PEM does not parse.
    Malformed {
        /// The file.
        path: PathBuf,
        /// What it was read for.
        kind: PemKind,
        /// What the PEM reader found wrong.
        error: rustls_pki_types::pem::Error,
    },
    /// The file's: it parses, but holds no block of the kind it was named for.
    Empty {
        /// The file.
        path: PathBuf,
        /// What it was read for.
        kind: PemKind,
    },
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::Unreadable { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            PemError::Malformed { path, kind, error } => {
                let what = match kind {
                    PemKind::Certificates => "certificate",
                    PemKind::PrivateKey => "private key",
                };
                write!(
                    f,
                    "{} is not a valid PEM {what} file: {error}",
                    path.display()
                )
            }
            PemError::Empty {
                path,
                kind: PemKind::Certificates,
            } => write!(
                f,
                "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
                path.display()
            ),
            PemError::Empty {
                path,
                kind: PemKind::PrivateKey,
            } => write!(
                f,
                "{} holds no private key (no -----BEGIN PRIVATE KEY----- block)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PemError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PemError::Unreadable { error, .. } => Some(error),
            PemError::Malformed { error, .. } => Some(error),
            PemError::Empty { .. } => None,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|error| PemError::Unreadable {
        path: path.to_owned(),
        error,
    })
}

/// Every certificate in a PEM file, in order; an error if it holds none.
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| PemError::Malformed {
            path: path.to_owned(),
            kind: PemKind::Certificates,
            error,
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty {
            path: path.to_owned(),
            kind: PemKind::Certificates,
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::Empty {
            path: path.to_owned(),
            kind: PemKind::PrivateKey,
        },
        error => PemError::Malformed {
            path: path.to_owned(),
            kind: PemKind::PrivateKey,
            error,
        },
    })
}

/// A certificate's `notBefore` and `notAfter`, read from its DER; `None` if it cannot be read
/// (rustls then reports the certificate itself).
pub(crate) fn validity(cert: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, certificate) = element(cert, 0x30)?;
    let (_, mut tbs) = element(certificate, 0x30)?;
    if tbs.first() == Some(&0xa0) {
        tbs = element(tbs, 0xa0)?.0; // [0] version
    }
    let rest = element(tbs, 0x02)?.0; // serial number
    let rest = element(rest, 0x30)?.0; // signature algorithm
    let rest = element(rest, 0x30)?.0; // issuer
    let (_, validity) = element(rest, 0x30)?;
    let (after_first, not_before) = time(validity)?;
    let (_, not_after) = time(after_first)?;
    Some((not_before, not_after))
}

/// One DER element of tag `tag` at the start of `data`: (what follows it, its contents).
fn element(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = data.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (&rest[len..], &rest[..len]))
}

/// A UTCTime or GeneralizedTime (`...Z`), as a system time.
fn time(data: &[u8]) -> Option<(&[u8], SystemTime)> {
    let (&tag, _) = data.split_first()?;
    let (rest, text) = element(data, tag)?;
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |a, &c| {
            c.is_ascii_digit().then(|| a * 10 + i64::from(c - b'0'))
        })
    };
    let (year, body) = match tag {
        0x17 if text.len() >= 13 => {
            let yy = digits(text.get(..2)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 if text.len() >= 15 => (digits(text.get(..4)?)?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| digits(body.get(i..i + 2)?);
    let (month, day) = (field(0)?, field(2)?);
    let (hour, minute, second) = (field(4)?, field(6)?, field(8)?);
    let days = days_from_civil(year, month, day)?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let at = if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    };
    Some((rest, at))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2026, 12, 1), Some(20_788));
    }

    #[test]
    fn validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 2);
        params.not_after = rcgen::date_time_ymd(2061, 7, 8);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (before, after) = validity(cert.der()).expect("readable");
        let day =
            |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 86_400;
        assert_eq!(day(before) as i64, days_from_civil(2020, 1, 2).unwrap());
        assert_eq!(day(after) as i64, days_from_civil(2061, 7, 8).unwrap());
        assert_eq!(validity(b"\x30\x03\x02\x01\x00"), None);
    }
}
