//! JID parsing and case folding, shaped as RFC 7622 (`localpart@domainpart/resourcepart`).
//!
//! This file owns what a well-formed address is and when two addresses are the same. ASCII parts
//! take a fast path (validated and lowercased in place, without allocating); a part with any
//! non-ASCII character goes through stringprep (nodeprep for the localpart, nameprep for the
//! domainpart, resourceprep for the resourcepart) so that equivalent JIDs fold to one string.
//! The resourcepart is validated but never folded: resources are case-sensitive.
//!
//! It must never panic, whatever the input: JIDs come straight off the wire.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::net::Ipv6Addr;

/// RFC 7622 §3: each part is at most 1023 octets once prepared.
pub const MAX_PART_BYTES: usize = 1023;

/// What is malformed about a JID. Always the sender's fault: the text says which part and why.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum JidError {
    /// The whole JID is empty.
    Empty,
    /// An `@` with nothing before it.
    EmptyLocalpart,
    /// Nothing where the domain belongs.
    EmptyDomainpart,
    /// A `/` with nothing after it.
    EmptyResourcepart,
    /// A domain with an empty label, such as `example..com` or `.example.com`.
    EmptyDomainLabel,
    /// The localpart is longer than 1023 bytes once prepared.
    LocalpartTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The domainpart is longer than 1023 bytes once prepared.
    DomainpartTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The resourcepart is longer than 1023 bytes once prepared.
    ResourcepartTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The localpart holds a character RFC 7622 forbids there (such as `<`, `"` or a space).
    ForbiddenInLocalpart {
        /// The first such character.
        ch: char,
    },
    /// The domainpart holds a character a domain cannot hold.
    ForbiddenInDomainpart {
        /// The first such character.
        ch: char,
    },
    /// The resourcepart holds a control or otherwise forbidden character.
    ForbiddenInResourcepart {
        /// The first such character.
        ch: char,
    },
    /// A domain in brackets that is not an IPv6 address.
    BadIpLiteral,
    /// stringprep refused a non-ASCII part; `reason` is its explanation.
    LocalpartPrep {
        /// stringprep's explanation.
        reason: String,
    },
    /// stringprep (nameprep) refused a non-ASCII domainpart.
    DomainpartPrep {
        /// stringprep's explanation.
        reason: String,
    },
    /// stringprep (resourceprep) refused a non-ASCII resourcepart.
    ResourcepartPrep {
        /// stringprep's explanation.
        reason: String,
    },
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JidError::Empty => f.write_str("the JID is empty"),
            JidError::EmptyLocalpart => {
                f.write_str("the JID has an '@' but no localpart before it")
            }
            JidError::EmptyDomainpart => f.write_str("the JID has no domainpart"),
            JidError::EmptyResourcepart => {
                f.write_str("the JID has a '/' but no resourcepart after it")
            }
            JidError::EmptyDomainLabel => f.write_str("the JID's domainpart has an empty label"),
            JidError::LocalpartTooLong { len } => {
                write!(
                    f,
                    "the JID's localpart is {len} bytes, over {MAX_PART_BYTES}"
                )
            }
            JidError::DomainpartTooLong { len } => {
                write!(
                    f,
                    "the JID's domainpart is {len} bytes, over {MAX_PART_BYTES}"
                )
            }
            JidError::ResourcepartTooLong { len } => {
                write!(
                    f,
                    "the JID's resourcepart is {len} bytes, over {MAX_PART_BYTES}"
                )
            }
            JidError::ForbiddenInLocalpart { ch } => {
                write!(
                    f,
                    "the JID's localpart contains the forbidden character {ch:?}"
                )
            }
            JidError::ForbiddenInDomainpart { ch } => {
                write!(
                    f,
                    "the JID's domainpart contains the forbidden character {ch:?}"
                )
            }
            JidError::ForbiddenInResourcepart { ch } => {
                write!(
                    f,
                    "the JID's resourcepart contains the forbidden character {ch:?}"
                )
            }
            JidError::BadIpLiteral => {
                f.write_str("the JID's domainpart is in brackets but is not an IPv6 address")
            }
            JidError::LocalpartPrep { reason } => {
                write!(f, "the JID's localpart fails nodeprep: {reason}")
            }
            JidError::DomainpartPrep { reason } => {
                write!(f, "the JID's domainpart fails nameprep: {reason}")
            }
            JidError::ResourcepartPrep { reason } => {
                write!(f, "the JID's resourcepart fails resourceprep: {reason}")
            }
        }
    }
}

impl std::error::Error for JidError {}

/// A localpart or domainpart: either validated ASCII that is lowercased as it is read, or the
/// stringprep output (already folded).
#[derive(Clone, Debug)]
enum Part<'a> {
    Ascii(&'a str),
    Prepped(String),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Ascii(s) => s.len(),
            Part::Prepped(s) => s.len(),
        }
    }

    fn folded_bytes(&self) -> FoldedBytes<'_> {
        match self {
            Part::Ascii(s) => FoldedBytes {
                bytes: s.as_bytes().iter(),
                lower: true,
            },
            Part::Prepped(s) => FoldedBytes {
                bytes: s.as_bytes().iter(),
                lower: false,
            },
        }
    }

    fn write_folded(&self, out: &mut String) {
        match self {
            Part::Ascii(s) => out.extend(s.chars().map(|c| c.to_ascii_lowercase())),
            Part::Prepped(s) => out.push_str(s),
        }
    }
}

struct FoldedBytes<'a> {
    bytes: std::slice::Iter<'a, u8>,
    lower: bool,
}

impl Iterator for FoldedBytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.next()?;
        Some(if self.lower {
            b.to_ascii_lowercase()
        } else {
            b
        })
    }
}

/// A parsed JID that borrows from its input where it can; the hot-path form.
#[derive(Clone, Debug)]
pub struct ParsedJid<'a> {
    local: Option<Part<'a>>,
    domain: Part<'a>,
    resource: Option<Cow<'a, str>>,
}

impl<'a> ParsedJid<'a> {
    /// Splits and validates `text` as RFC 7622 §3.2 does: the resourcepart starts at the first
    /// '/', the localpart ends at the first '@' before it.
    pub fn parse(text: &'a str) -> Result<ParsedJid<'a>, JidError> {
        if text.is_empty() {
            return Err(JidError::Empty);
        }
        let (address, resource) = match text.find('/') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let (local, domain) = match address.find('@') {
            Some(i) => (Some(&address[..i]), &address[i + 1..]),
            None => (None, address),
        };
        let local = local.map(prepare_local).transpose()?;
        let domain = prepare_domain(domain)?;
        let resource = resource.map(prepare_resource).transpose()?;
        Ok(ParsedJid {
            local,
            domain,
            resource,
        })
    }

    /// True when the JID has a localpart (`user@domain`), false for a bare domain.
    pub fn has_localpart(&self) -> bool {
        self.local.is_some()
    }

    /// Length in bytes of the folded bare JID.
    pub fn bare_len(&self) -> usize {
        self.local.as_ref().map_or(0, |l| l.len() + 1) + self.domain.len()
    }

    /// Length in bytes of the folded domainpart.
    pub fn domain_len(&self) -> usize {
        self.domain.len()
    }

    fn bare_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let local = self
            .local
            .iter()
            .flat_map(|l| l.folded_bytes().chain(std::iter::once(b'@')));
        local.chain(self.domain.folded_bytes())
    }

    /// Orders two JIDs by their folded bare forms, without building them.
    pub fn bare_cmp(&self, other: &ParsedJid<'_>) -> Ordering {
        self.bare_bytes().cmp(other.bare_bytes())
    }

    /// Appends the folded bare JID (`local@domain` or `domain`) to `out`, without allocating when
    /// `out` has room.
    pub fn write_bare(&self, out: &mut String) {
        if let Some(local) = &self.local {
            local.write_folded(out);
            out.push('@');
        }
        self.domain.write_folded(out);
    }

    /// Appends the folded domainpart to `out`.
    pub fn write_domain(&self, out: &mut String) {
        self.domain.write_folded(out);
    }

    /// The folded bare JID (`local@domain` or `domain`).
    pub fn bare(&self) -> String {
        let mut out = String::with_capacity(self.bare_len());
        self.write_bare(&mut out);
        out
    }

    /// The resourcepart as given (resources are not folded), if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// An owned copy, folded, for use off the hot path.
    pub fn to_jid(&self) -> Jid {
        let fold = |part: &Part<'_>| {
            let mut s = String::with_capacity(part.len());
            part.write_folded(&mut s);
            s
        };
        Jid {
            local: self.local.as_ref().map(fold),
            domain: fold(&self.domain),
            resource: self.resource.as_ref().map(|r| r.to_string()),
        }
    }
}

/// An owned, folded JID, for code off the hot path (configuration, logs).
#[derive(Clone, Debug, Eq, PartialEq, Hash)]
pub struct Jid {
    local: Option<String>,
    domain: String,
    resource: Option<String>,
}

impl Jid {
    /// Parses and prepares `text` (RFC 7622), as the hot path does, and keeps the folded parts.
    pub fn parse(text: &str) -> Result<Jid, JidError> {
        ParsedJid::parse(text).map(|j| j.to_jid())
    }

    /// The folded localpart, if any.
    pub fn localpart(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The folded domainpart.
    pub fn domainpart(&self) -> &str {
        &self.domain
    }

    /// The resourcepart, if any.
    pub fn resourcepart(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// True for a bare domain such as a component or server address.
    pub fn is_domain(&self) -> bool {
        self.local.is_none() && self.resource.is_none()
    }

    /// The bare JID (`local@domain` or `domain`), folded.
    pub fn bare(&self) -> String {
        match &self.local {
            Some(local) => format!("{local}@{}", self.domain),
            None => self.domain.clone(),
        }
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(local) = &self.local {
            write!(f, "{local}@")?;
        }
        f.write_str(&self.domain)?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

pub(crate) const fn forbidden_in_local(b: u8) -> bool {
    b <= b' ' || b == 0x7f || matches!(b, b'"' | b'&' | b'\'' | b'/' | b':' | b'<' | b'>' | b'@')
}

pub(crate) const fn allowed_in_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn first_char_at(text: &str, pred: impl Fn(u8) -> bool) -> Option<char> {
    let i = text.bytes().position(pred)?;
    text.get(i..).and_then(|rest| rest.chars().next())
}

fn prepare_local(text: &str) -> Result<Part<'_>, JidError> {
    if text.is_empty() {
        return Err(JidError::EmptyLocalpart);
    }
    let part = if text.is_ascii() {
        if let Some(ch) = first_char_at(text, forbidden_in_local) {
            return Err(JidError::ForbiddenInLocalpart { ch });
        }
        Part::Ascii(text)
    } else {
        let prepped = stringprep::nodeprep(text).map_err(|e| JidError::LocalpartPrep {
            reason: e.to_string(),
        })?;
        if prepped.is_empty() {
            return Err(JidError::EmptyLocalpart);
        }
        Part::Prepped(prepped.into_owned())
    };
    if part.len() > MAX_PART_BYTES {
        return Err(JidError::LocalpartTooLong { len: part.len() });
    }
    Ok(part)
}

fn prepare_domain(text: &str) -> Result<Part<'_>, JidError> {
    // RFC 7622 §3.2: a trailing dot is not part of the domain.
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Err(JidError::EmptyDomainpart);
    }
    let part = if text.is_ascii() {
        if let Some(inner) = text.strip_prefix('[') {
            let ok = inner
                .strip_suffix(']')
                .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
            if !ok {
                return Err(JidError::BadIpLiteral);
            }
        } else {
            check_domain_ascii(text)?;
        }
        Part::Ascii(text)
    } else {
        let prepped = stringprep::nameprep(text).map_err(|e| JidError::DomainpartPrep {
            reason: e.to_string(),
        })?;
        let prepped = prepped.into_owned();
        let prepped = match prepped.strip_suffix('.') {
            Some(stripped) => stripped.to_string(),
            None => prepped,
        };
        if prepped.is_empty() {
            return Err(JidError::EmptyDomainpart);
        }
        check_domain_ascii(&prepped)?;
        Part::Prepped(prepped)
    };
    if part.len() > MAX_PART_BYTES {
        return Err(JidError::DomainpartTooLong { len: part.len() });
    }
    Ok(part)
}

/// Checks the ASCII characters of a domain (non-ASCII ones were already judged by nameprep)
/// and its labels.
fn check_domain_ascii(text: &str) -> Result<(), JidError> {
    if let Some(ch) = first_char_at(text, |b| b.is_ascii() && !allowed_in_domain(b)) {
        return Err(JidError::ForbiddenInDomainpart { ch });
    }
    if text.split('.').any(str::is_empty) {
        return Err(JidError::EmptyDomainLabel);
    }
    Ok(())
}

fn prepare_resource(text: &str) -> Result<Cow<'_, str>, JidError> {
    if text.is_empty() {
        return Err(JidError::EmptyResourcepart);
    }
    let prepped = if text.is_ascii() {
        if let Some(ch) = first_char_at(text, |b| b < b' ' || b == 0x7f) {
            return Err(JidError::ForbiddenInResourcepart { ch });
        }
        Cow::Borrowed(text)
    } else {
        let prepped = stringprep::resourceprep(text).map_err(|e| JidError::ResourcepartPrep {
            reason: e.to_string(),
        })?;
        if prepped.is_empty() {
            return Err(JidError::EmptyResourcepart);
        }
        Cow::Owned(prepped.into_owned())
    };
    if prepped.len() > MAX_PART_BYTES {
        return Err(JidError::ResourcepartTooLong { len: prepped.len() });
    }
    Ok(prepped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bare(text: &str) -> Result<String, JidError> {
        ParsedJid::parse(text).map(|j| j.bare())
    }

    #[test]
    fn splits_the_three_parts() {
        let jid = Jid::parse("Alice@Example.COM/Laptop").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(jid.localpart(), Some("alice"));
        assert_eq!(jid.domainpart(), "example.com");
        assert_eq!(jid.resourcepart(), Some("Laptop"));
        assert_eq!(jid.to_string(), "alice@example.com/Laptop");
        assert_eq!(jid.bare(), "alice@example.com");
        assert!(!jid.is_domain());
        let domain = Jid::parse("conference.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(domain.is_domain());
    }

    #[test]
    fn resource_may_hold_at_and_slash() {
        let jid = ParsedJid::parse("example.com/a@b/c").unwrap_or_else(|e| panic!("{e}"));
        assert!(!jid.has_localpart());
        assert_eq!(jid.resource(), Some("a@b/c"));
        assert_eq!(jid.bare(), "example.com");
    }

    #[test]
    fn folds_ascii_case_and_trailing_dot() {
        assert_eq!(bare("ALICE@EXAMPLE.COM."), Ok("alice@example.com".into()));
        assert_eq!(bare("[::1]"), Ok("[::1]".into()));
        assert_eq!(bare("u@[FE80::1]"), Ok("u@[fe80::1]".into()));
        assert_eq!(bare("u@127.0.0.1"), Ok("u@127.0.0.1".into()));
    }

    #[test]
    fn folds_non_ascii_with_stringprep() {
        assert_eq!(bare("ÄLICE@Example.com"), bare("älice@example.com"));
        assert_eq!(bare("älice@example.com"), Ok("älice@example.com".into()));
        assert_eq!(
            bare("ａｌｉｃｅ@example.com"),
            Ok("alice@example.com".into())
        );
        assert_eq!(bare("bob@MÜNCHEN.de"), Ok("bob@münchen.de".into()));
        assert_eq!(bare("bob@ＥＸＡＭＰＬＥ.com"), Ok("bob@example.com".into()));
    }

    #[test]
    fn rejects_malformed_jids_saying_why() {
        assert_eq!(bare(""), Err(JidError::Empty));
        assert_eq!(bare("@example.com"), Err(JidError::EmptyLocalpart));
        assert_eq!(bare("alice@"), Err(JidError::EmptyDomainpart));
        assert_eq!(bare("alice@."), Err(JidError::EmptyDomainpart));
        assert_eq!(bare("/res"), Err(JidError::EmptyDomainpart));
        assert_eq!(bare("example.com/"), Err(JidError::EmptyResourcepart));
        assert_eq!(
            bare("a b@example.com"),
            Err(JidError::ForbiddenInLocalpart { ch: ' ' })
        );
        for ch in ['"', '&', '\'', ':', '<', '>', '\u{1}', '\u{7f}'] {
            let text = format!("a{ch}b@example.com");
            assert_eq!(
                bare(&text),
                Err(JidError::ForbiddenInLocalpart { ch }),
                "{text:?}"
            );
        }
        assert_eq!(
            bare("a@b@c"),
            Err(JidError::ForbiddenInDomainpart { ch: '@' })
        );
        assert_eq!(
            bare("a@exa mple.com"),
            Err(JidError::ForbiddenInDomainpart { ch: ' ' })
        );
        assert_eq!(bare("a@example..com"), Err(JidError::EmptyDomainLabel));
        assert_eq!(bare("a@.example.com"), Err(JidError::EmptyDomainLabel));
        assert_eq!(bare("a@[not-ip]"), Err(JidError::BadIpLiteral));
        assert_eq!(bare("a@[::1"), Err(JidError::BadIpLiteral));
        assert_eq!(
            bare("a@e.com/x\u{0}y"),
            Err(JidError::ForbiddenInResourcepart { ch: '\0' })
        );
        assert!(matches!(
            bare("a\u{3000}b@example.com"),
            Err(JidError::LocalpartPrep { .. })
        ));
        assert!(matches!(
            bare("a@ex\u{e000}.com"),
            Err(JidError::DomainpartPrep { .. })
        ));
        assert!(matches!(
            bare("a@e.com/\u{e000}"),
            Err(JidError::ResourcepartPrep { .. })
        ));
    }

    #[test]
    fn enforces_part_lengths() {
        let long = "a".repeat(MAX_PART_BYTES + 1);
        let ok = "a".repeat(MAX_PART_BYTES);
        assert!(bare(&format!("{ok}@example.com")).is_ok());
        assert_eq!(
            bare(&format!("{long}@example.com")),
            Err(JidError::LocalpartTooLong { len: 1024 })
        );
        assert_eq!(
            bare(&format!("a@{long}")),
            Err(JidError::DomainpartTooLong { len: 1024 })
        );
        assert_eq!(
            bare(&format!("a@e.com/{long}")),
            Err(JidError::ResourcepartTooLong { len: 1024 })
        );
    }

    #[test]
    fn messages_name_the_part() {
        assert_eq!(
            JidError::ForbiddenInLocalpart { ch: '<' }.to_string(),
            "the JID's localpart contains the forbidden character '<'"
        );
        assert_eq!(
            JidError::EmptyLocalpart.to_string(),
            "the JID has an '@' but no localpart before it"
        );
    }

    #[test]
    fn bare_cmp_agrees_with_built_strings() {
        let pairs = [
            ("B@x", "a@x"),
            ("a@x", "a@x"),
            ("x", "a@x"),
            ("Älice@x", "zed@x"),
        ];
        for (a, b) in pairs {
            let (pa, pb) = match (ParsedJid::parse(a), ParsedJid::parse(b)) {
                (Ok(pa), Ok(pb)) => (pa, pb),
                other => panic!("{other:?}"),
            };
            assert_eq!(pa.bare_cmp(&pb), pa.bare().cmp(&pb.bare()), "{a} vs {b}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(text in any::<String>()) {
            let _ = ParsedJid::parse(&text).map(|j| j.bare());
        }

        #[test]
        fn never_panics_on_jid_shaped_strings(text in "[a-zA-Z0-9Ää\\.@/\\[\\]: ]{0,24}") {
            let _ = Jid::parse(&text);
        }

        #[test]
        fn folding_is_idempotent(text in "([a-zA-ZÄÖÜäöüßÅ0-9]{1,8}@)?[a-zA-ZÄÖÜäöü0-9]{1,8}(\\.[a-zA-Z]{1,4})?") {
            if let Ok(once) = bare(&text) {
                prop_assert_eq!(bare(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn folding_is_idempotent_on_any_string(text in any::<String>()) {
            if let Ok(once) = bare(&text) {
                prop_assert_eq!(bare(&once), Ok(once.clone()));
            }
        }

        #[test]
        fn ascii_case_variants_fold_equal(text in "[a-zA-Z0-9_\\-]{1,10}@[a-zA-Z0-9]{1,10}\\.[a-zA-Z]{2,5}") {
            let upper = bare(&text.to_ascii_uppercase());
            let lower = bare(&text.to_ascii_lowercase());
            prop_assert!(lower.is_ok());
            prop_assert_eq!(upper, lower);
        }
    }
}
