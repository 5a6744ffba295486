//! The conversation key of docs/protocol.md §2: the string that keeps one conversation (or one room)
//! on one compliance server and in arrival order.
//!
//! This file owns only the derivation from an event's addresses. It must not hash, pick servers
//! or order events; for ASCII addresses it allocates nothing but the returned `String`
//! ([`conversation_key_into`]: nothing, when the caller's buffer has room).

use super::catalog::EventKind;
use super::jid::{JidError, ParsedJid};
use std::cmp::Ordering;
use std::fmt;

/// Which address of the event a [`KeyError`] is about.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub enum Address {
    /// The stanza's `from` address.
    From,
    /// The stanza's `to` address.
    To,
    /// A TC event's `room` attribute.
    Room,
}

impl Address {
    /// The attribute's name as the error text gives it: `from`, `to` or `room`.
    pub fn as_str(self) -> &'static str {
        match self {
            Address::From => "from",
            Address::To => "to",
            Address::Room => "room",
        }
    }
}

/// Why an event has no key; the event is unreadable and the router's fault (`bad-request`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum KeyError {
    /// A JSM event whose stanza has neither `from` nor `to`.
    NoAddress,
    /// A TC event with neither a `room` attribute nor a stanza `to`.
    NoRoom,
    /// An address that is not a valid JID.
    BadJid {
        /// Which address.
        address: Address,
        /// What is wrong with it.
        error: JidError,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoAddress => f.write_str("the stanza has neither 'from' nor 'to'"),
            KeyError::NoRoom => f.write_str("a TC event needs a 'room' attribute or a stanza 'to'"),
            KeyError::BadJid { address, error } => {
                write!(
                    f,
                    "the '{}' address is not a valid JID: {error}",
                    address.as_str()
                )
            }
        }
    }
}

impl std::error::Error for KeyError {}

fn parse(text: &str, address: Address) -> Result<ParsedJid<'_>, KeyError> {
    ParsedJid::parse(text).map_err(|error| KeyError::BadJid { address, error })
}

/// The conversation key of an event, from its kind, its stanza's `from` and `to`, and the
/// event's `room` attribute.
///
/// JSM: the folded bare JIDs of `from` and `to` that have a localpart; two different ones give
/// `a|b` with `a < b` (both directions share the key); one gives that JID; none gives the domain
/// of `to`, or of `from` when there is no `to`. TC: bare(room), else bare(to).
pub fn conversation_key(
    kind: EventKind,
    from: Option<&str>,
    to: Option<&str>,
    room: Option<&str>,
) -> Result<String, KeyError> {
    if kind == EventKind::Jsm {
        if let Some(key) = jsm_key_ascii(from, to) {
            return Ok(key);
        }
    }
    general_key(kind, from, to, room)
}

/// [`conversation_key`], appended to `out` (left as it was on an error): for ASCII addresses
/// without allocating when `out` has room.
pub fn conversation_key_into(
    kind: EventKind,
    from: Option<&str>,
    to: Option<&str>,
    room: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<(), KeyError> {
    let start = out.len();
    if kind == EventKind::Jsm && jsm_key_ascii_into(from, to, out).is_some() {
        return Ok(());
    }
    out.truncate(start);
    out.extend_from_slice(general_key(kind, from, to, room)?.as_bytes());
    Ok(())
}

/// The general path (any input, every error); [`conversation_key`] tries a fast path first.
fn general_key(
    kind: EventKind,
    from: Option<&str>,
    to: Option<&str>,
    room: Option<&str>,
) -> Result<String, KeyError> {
    match kind {
        EventKind::Jsm => jsm_key(from, to),
        EventKind::Tc => {
            let jid = match (room, to) {
                (Some(room), _) => parse(room, Address::Room)?,
                (None, Some(to)) => parse(to, Address::To)?,
                (None, None) => return Err(KeyError::NoRoom),
            };
            Ok(jid.bare())
        }
    }
}

/// A bare JID read by the ASCII fast path: the parts as written (folding happens on output).
struct AsciiBare<'a> {
    local: Option<&'a str>,
    domain: &'a str,
}

/// Classes of [`ASCII_JID`]: forbidden in a localpart (or not ASCII).
const LOCAL_BAD: u8 = 1;
/// Not allowed in a domainpart by the fast path (or not ASCII).
const DOMAIN_BAD: u8 = 2;
/// A control character, DEL, or not ASCII: a resourcepart holding one is the general path's.
const RESOURCE_BAD: u8 = 4;
/// `.`, to see a doubled one (an empty label) in the same pass.
const DOT: u8 = 8;
/// `@`, which ends a localpart.
const AT: u8 = 16;
/// `/`, which ends the address and starts the resourcepart.
const SLASH: u8 = 32;

/// Byte classes for [`ascii_bare`]'s single pass, from the rules of `super::jid`.
static ASCII_JID: [u8; 256] = {
    use super::jid::{allowed_in_domain, forbidden_in_local};
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if b >= 0x80 || forbidden_in_local(b) {
            c |= LOCAL_BAD;
        }
        if b >= 0x80 || !allowed_in_domain(b) {
            c |= DOMAIN_BAD;
        }
        if b >= 0x80 || b < b' ' || b == 0x7f {
            c |= RESOURCE_BAD;
        }
        match b {
            b'.' => c |= DOT,
            b'@' => c |= AT,
            b'/' => c |= SLASH,
            _ => {}
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Reads a plain ASCII JID that the general path would accept unchanged apart from case;
/// `None` for anything else (non-ASCII, IP literals, anything invalid), which then takes the
/// general path and gets its exact result or error. One pass over the bytes with a class
/// table: the localpart up to the first `@`, the domainpart up to the first `/`, the rest.
fn ascii_bare(text: &str) -> Option<AsciiBare<'_>> {
    use super::jid::MAX_PART_BYTES;
    let b = text.as_bytes();
    let mut i = 0;
    let (mut seen, mut doubled, mut prev) = (0u8, 0u8, 0u8);
    while let Some(&c) = b.get(i) {
        let t = ASCII_JID[usize::from(c)];
        if t & (AT | SLASH) != 0 {
            break;
        }
        seen |= t;
        doubled |= prev & t;
        prev = t;
        i += 1;
    }
    let (local, domain_start) = if b.get(i) == Some(&b'@') {
        if i == 0 || i > MAX_PART_BYTES || seen & LOCAL_BAD != 0 {
            return None;
        }
        let local = text.get(..i)?;
        // The domainpart, up to the `/` (a second `@` in it is not allowed in a domain).
        (seen, doubled, prev) = (0, 0, 0);
        i += 1;
        while let Some(&c) = b.get(i) {
            let t = ASCII_JID[usize::from(c)];
            if t & SLASH != 0 {
                break;
            }
            seen |= t;
            doubled |= prev & t;
            prev = t;
            i += 1;
        }
        (Some(local), local.len() + 1)
    } else {
        (None, 0)
    };
    if i < b.len() {
        // `b[i]` is the `/`.
        let resource = &b[i + 1..];
        if resource.is_empty()
            || resource.len() > MAX_PART_BYTES
            || resource
                .iter()
                .any(|&c| ASCII_JID[usize::from(c)] & RESOURCE_BAD != 0)
        {
            return None;
        }
    }
    let written = text.get(domain_start..i)?;
    // One trailing dot is dropped; labels are not empty: no leading dot and no doubled one
    // (which also rules out a dot left at the end after the one dropped).
    let domain = written.strip_suffix('.').unwrap_or(written);
    let labels_ok = !domain.is_empty()
        && domain.len() <= MAX_PART_BYTES
        && seen & DOMAIN_BAD == 0
        && doubled & DOT == 0
        && !domain.starts_with('.');
    labels_ok.then_some(AsciiBare { local, domain })
}

impl AsciiBare<'_> {
    fn len(&self) -> usize {
        self.local.map_or(0, |l| l.len() + 1) + self.domain.len()
    }

    /// Appends the bare JID as written (the caller folds the whole key once).
    fn push_to(&self, out: &mut Vec<u8>) {
        if let Some(local) = self.local {
            out.extend_from_slice(local.as_bytes());
            out.push(b'@');
        }
        out.extend_from_slice(self.domain.as_bytes());
    }

    /// The folded bare JID's bytes, without building it.
    fn folded(&self) -> impl Iterator<Item = u8> + '_ {
        self.local
            .into_iter()
            .flat_map(|l| l.bytes().chain(std::iter::once(b'@')))
            .chain(self.domain.bytes())
            .map(|c| c.to_ascii_lowercase())
    }
}

/// The ASCII fast path of [`jsm_key`]; `None` sends the event to the general path.
fn jsm_key_ascii(from: Option<&str>, to: Option<&str>) -> Option<String> {
    let mut key = Vec::new();
    jsm_key_ascii_into(from, to, &mut key)?;
    String::from_utf8(key).ok()
}

/// [`jsm_key_ascii`], appended to `key`.
fn jsm_key_ascii_into(from: Option<&str>, to: Option<&str>, key: &mut Vec<u8>) -> Option<()> {
    let from = match from {
        Some(f) => Some(ascii_bare(f)?),
        None => None,
    };
    let to = match to {
        Some(t) => Some(ascii_bare(t)?),
        None => None,
    };
    let users = (
        from.as_ref().filter(|j| j.local.is_some()),
        to.as_ref().filter(|j| j.local.is_some()),
    );
    // The parts in their order, appended as ASCII bytes after what `key` holds, then folded
    // in place: every part was checked ASCII, so folding is ASCII lowercasing.
    let start = key.len();
    match users {
        (Some(a), Some(b)) => {
            let (low, high) = match a.folded().cmp(b.folded()) {
                Ordering::Less => (a, Some(b)),
                Ordering::Equal => (a, None),
                Ordering::Greater => (b, Some(a)),
            };
            key.reserve_exact(low.len() + high.map_or(0, |h| 1 + h.len()));
            low.push_to(key);
            if let Some(high) = high {
                key.push(b'|');
                high.push_to(key);
            }
        }
        (Some(one), None) | (None, Some(one)) => {
            key.reserve_exact(one.len());
            one.push_to(key);
        }
        (None, None) => {
            let server = to.as_ref().or(from.as_ref())?;
            key.extend_from_slice(server.domain.as_bytes());
        }
    }
    key[start..].make_ascii_lowercase();
    Some(())
}

fn jsm_key(from: Option<&str>, to: Option<&str>) -> Result<String, KeyError> {
    let from = from.map(|f| parse(f, Address::From)).transpose()?;
    let to = to.map(|t| parse(t, Address::To)).transpose()?;
    let from_user = from.as_ref().filter(|j| j.has_localpart());
    let to_user = to.as_ref().filter(|j| j.has_localpart());
    match (from_user, to_user) {
        (Some(a), Some(b)) => {
            let (low, high) = match a.bare_cmp(b) {
                Ordering::Equal => return Ok(a.bare()),
                Ordering::Less => (a, b),
                Ordering::Greater => (b, a),
            };
            let mut key = String::with_capacity(low.bare_len() + 1 + high.bare_len());
            low.write_bare(&mut key);
            key.push('|');
            high.write_bare(&mut key);
            Ok(key)
        }
        (Some(one), None) | (None, Some(one)) => Ok(one.bare()),
        (None, None) => {
            let server = to.as_ref().or(from.as_ref()).ok_or(KeyError::NoAddress)?;
            let mut key = String::with_capacity(server.domain_len());
            server.write_domain(&mut key);
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use EventKind::{Jsm, Tc};

    proptest! {
        /// The ASCII fast path gives exactly what the general path gives, or stands aside.
        #[test]
        fn ascii_fast_path_agrees_with_the_general_path(
            a in "[a-zA-Z0-9@./&'_ -]{0,12}",
            b in "[a-zA-Z0-9@./&'_ -]{0,12}",
            has_from in any::<bool>(),
            has_to in any::<bool>(),
        ) {
            let (from, to) = (has_from.then_some(a.as_str()), has_to.then_some(b.as_str()));
            if let Some(fast) = jsm_key_ascii(from, to) {
                prop_assert_eq!(Ok(fast), jsm_key(from, to));
            }
        }

        /// The same over every kind of byte the single pass classifies: controls, DEL,
        /// characters forbidden in one part and not another, doubled and trailing dots,
        /// second `@`s and `/`s, non-ASCII.
        #[test]
        fn ascii_fast_path_agrees_over_every_byte_class(
            a in "([a-cA-C0-9@./:<>\"&'_\u{1}\u{7f} -]|é|\\[|\\]){0,14}",
            b in "[a-cA-C]{0,3}@?[a-c.]{0,5}(/[a-c\u{1} ]{0,3})?",
            has_from in any::<bool>(),
            has_to in any::<bool>(),
        ) {
            for (from, to) in [(has_from.then_some(a.as_str()), has_to.then_some(b.as_str())), (Some(b.as_str()), Some(a.as_str()))] {
                if let Some(fast) = jsm_key_ascii(from, to) {
                    prop_assert_eq!(Ok(fast), jsm_key(from, to));
                }
            }
        }

        #[test]
        fn ascii_fast_path_takes_ordinary_addresses(
            a in "[a-zA-Z0-9]{1,8}@[a-z]{1,6}\\.(com|org)(/[a-zA-Z0-9 ]{1,6})?",
            b in "[a-zA-Z0-9]{1,8}@[a-z]{1,6}\\.(com|org)",
        ) {
            let fast = jsm_key_ascii(Some(&a), Some(&b));
            prop_assert!(fast.is_some());
            prop_assert_eq!(Ok(fast.unwrap()), jsm_key(Some(&a), Some(&b)));
        }
    }

    fn key(kind: EventKind, from: Option<&str>, to: Option<&str>, room: Option<&str>) -> String {
        conversation_key(kind, from, to, room).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn jsm_pair_is_ordered_and_direction_free() {
        let ab = key(
            Jsm,
            Some("alice@example.com/laptop"),
            Some("bob@example.com"),
            None,
        );
        let ba = key(
            Jsm,
            Some("bob@example.com/phone"),
            Some("alice@example.com/x"),
            None,
        );
        assert_eq!(ab, "alice@example.com|bob@example.com");
        assert_eq!(ba, ab);
    }

    #[test]
    fn jsm_pair_is_case_insensitive() {
        let k = key(
            Jsm,
            Some("Bob@Example.COM/R"),
            Some("ALICE@example.com"),
            None,
        );
        assert_eq!(k, "alice@example.com|bob@example.com");
    }

    #[test]
    fn jsm_pair_folds_non_ascii() {
        let a = key(
            Jsm,
            Some("ÄLICE@Example.com"),
            Some("bob@example.com"),
            None,
        );
        let b = key(
            Jsm,
            Some("bob@example.com"),
            Some("älice@example.com/r"),
            None,
        );
        assert_eq!(a, "bob@example.com|älice@example.com");
        assert_eq!(a, b);
    }

    #[test]
    fn jsm_one_user_gives_that_user() {
        assert_eq!(
            key(Jsm, Some("Alice@Example.com/r"), None, None),
            "alice@example.com"
        );
        assert_eq!(
            key(Jsm, None, Some("alice@example.com"), None),
            "alice@example.com"
        );
        assert_eq!(
            key(Jsm, Some("alice@example.com/r"), Some("example.com"), None),
            "alice@example.com"
        );
        assert_eq!(
            key(Jsm, Some("example.com"), Some("Alice@example.com"), None),
            "alice@example.com"
        );
    }

    #[test]
    fn jsm_same_user_both_sides_gives_that_user() {
        let k = key(
            Jsm,
            Some("alice@example.com/a"),
            Some("ALICE@example.com/b"),
            None,
        );
        assert_eq!(k, "alice@example.com");
    }

    #[test]
    fn jsm_no_user_gives_the_domain_of_to_then_from() {
        assert_eq!(
            key(Jsm, Some("other.org"), Some("Example.COM/x"), None),
            "example.com"
        );
        assert_eq!(key(Jsm, Some("Example.com/x"), None, None), "example.com");
        assert_eq!(
            conversation_key(Jsm, None, None, None),
            Err(KeyError::NoAddress)
        );
    }

    #[test]
    fn jsm_ignores_room() {
        let k = key(Jsm, Some("a@x"), None, Some("room@conference.x"));
        assert_eq!(k, "a@x");
    }

    #[test]
    fn tc_uses_room_then_to() {
        let k = key(
            Tc,
            Some("alice@x/r"),
            Some("Room@Conference.X/nick"),
            Some("Lobby@Conference.x"),
        );
        assert_eq!(k, "lobby@conference.x");
        assert_eq!(
            key(Tc, Some("alice@x/r"), Some("Room@Conference.X/nick"), None),
            "room@conference.x"
        );
        assert_eq!(
            key(Tc, Some("alice@x/r"), Some("Conference.X"), None),
            "conference.x"
        );
        assert_eq!(
            conversation_key(Tc, Some("a@x"), None, None),
            Err(KeyError::NoRoom)
        );
    }

    #[test]
    fn tc_does_not_parse_the_unused_from() {
        assert_eq!(key(Tc, Some("bad@@"), Some("room@c.x"), None), "room@c.x");
    }

    #[test]
    fn unparsable_jids_are_errors_naming_the_address() {
        assert_eq!(
            conversation_key(Jsm, Some("a b@x"), Some("bob@x"), None),
            Err(KeyError::BadJid {
                address: Address::From,
                error: JidError::ForbiddenInLocalpart { ch: ' ' }
            })
        );
        assert_eq!(
            conversation_key(Jsm, Some("bob@x"), Some(""), None),
            Err(KeyError::BadJid {
                address: Address::To,
                error: JidError::Empty
            })
        );
        assert_eq!(
            conversation_key(Tc, None, Some("room@x"), Some("@x")),
            Err(KeyError::BadJid {
                address: Address::Room,
                error: JidError::EmptyLocalpart
            })
        );
        let text = conversation_key(Jsm, Some("a<b@x"), None, None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            text.as_deref(),
            Some("the 'from' address is not a valid JID: the JID's localpart contains the forbidden character '<'")
        );
    }

    #[test]
    fn ascii_key_fits_its_exact_capacity() {
        let k =
            conversation_key(Jsm, Some("Zed@X.org/r"), Some("amy@x.org"), None).unwrap_or_default();
        assert_eq!(k, "amy@x.org|zed@x.org");
        assert_eq!(k.capacity(), k.len());
    }

    proptest! {
        #[test]
        fn never_panics(
            from in proptest::option::of(any::<String>()),
            to in proptest::option::of(any::<String>()),
            room in proptest::option::of(any::<String>()),
        ) {
            for kind in [Jsm, Tc] {
                let _ = conversation_key(kind, from.as_deref(), to.as_deref(), room.as_deref());
            }
        }

        #[test]
        fn jsm_key_ignores_direction(
            a in "[a-zA-Z0-9äÖ]{1,6}@[a-zA-Z]{1,5}\\.(com|org)(/[a-z]{1,4})?",
            b in "[a-zA-Z0-9äÖ]{1,6}@[a-zA-Z]{1,5}\\.(com|org)(/[a-z]{1,4})?",
        ) {
            let ab = conversation_key(Jsm, Some(&a), Some(&b), None);
            let ba = conversation_key(Jsm, Some(&b), Some(&a), None);
            prop_assert!(ab.is_ok());
            prop_assert_eq!(&ab, &ba);
            let key = ab.unwrap_or_default();
            if let Some((low, high)) = key.split_once('|') {
                prop_assert!(low < high);
            }
        }
    }
}
