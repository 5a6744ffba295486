//! The restricted-XML rules of docs/protocol.md §1.5 that are about character data: entity
//! references (only the five predefined ones and character references) and escaping.
//!
//! Pure functions over byte slices; nothing here allocates unless a value actually needs
//! unescaping, and nothing here knows about streams or stanzas.

use super::error::FrameError;
use bytes::{BufMut, BytesMut};
use std::borrow::Cow;

/// Checks every `&` in raw character data or an attribute value: it must start one of the five
/// predefined entity references or a character reference to a legal XML character.
pub fn check_references(raw: &[u8]) -> Result<(), FrameError> {
    // Most values are short and hold no reference: a plain scan beats memchr's setup there.
    if raw.len() < 64 && !raw.contains(&b'&') {
        return Ok(());
    }
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'&', rest) {
        let after = &rest[at + 1..];
        let len = reference_len(after)?;
        rest = &after[len..];
    }
    Ok(())
}

/// Length of a reference body after its `&`, including the `;`.
fn reference_len(after: &[u8]) -> Result<usize, FrameError> {
    let semi = match memchr::memchr(b';', &after[..after.len().min(12)]) {
        Some(i) => i,
        None => return Err(FrameError::Malformed("unterminated entity reference")),
    };
    let body = &after[..semi];
    match body {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => Ok(semi + 1),
        [b'#', digits @ ..] => {
            decode_char_ref(digits).ok_or(FrameError::Malformed("invalid character reference"))?;
            Ok(semi + 1)
        }
        [] => Err(FrameError::Malformed("empty entity reference")),
        name if name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') => {
            Err(FrameError::UndeclaredEntity)
        }
        _ => Err(FrameError::Malformed("invalid entity reference")),
    }
}

/// Decodes the part of a character reference after `&#` (decimal, or `x` then hex).
fn decode_char_ref(digits: &[u8]) -> Option<char> {
    let (radix, digits) = match digits {
        [b'x', hex @ ..] => (16, hex),
        dec => (10, dec),
    };
    if digits.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(digits).ok()?;
    let code = u32::from_str_radix(text, radix).ok()?;
    let c = char::from_u32(code)?;
    is_xml_char(c).then_some(c)
}

/// XML 1.0 `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Expands references in raw text that already passed [`check_references`]. Borrows when there
/// is nothing to expand, which is the common case.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if memchr::memchr(b'&', raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(semi) = after.find(';') else {
            // Unchecked input: keep what cannot be expanded rather than losing it.
            out.push_str(&rest[at..]);
            return Cow::Owned(out);
        };
        let body = &after[..semi];
        let expanded = match body {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => body
                .strip_prefix('#')
                .and_then(|d| decode_char_ref(d.as_bytes())),
        };
        match expanded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[at..at + 1 + semi + 1]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends `value` escaped for use inside a single- or double-quoted attribute.
pub fn escape_attr_into(out: &mut BytesMut, value: &[u8]) {
    escape_into(out, value, true);
}

/// Appends `value` escaped for use as character data.
pub fn escape_text_into(out: &mut BytesMut, value: &[u8]) {
    escape_into(out, value, false);
}

/// Bytes that need escaping in an attribute value (`&`, `<`, `>`, `'`, `"`).
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'\'' as usize] = true;
    t[b'"' as usize] = true;
    t
};

/// Eight copies of `b` in a word, for the eight-bytes-at-a-time scans.
pub(crate) const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// Nonzero when some byte of the word `x` equals `b`: the exact "has a zero byte" test on
/// `x ^ splat(b)`. Its lowest set bit is the high bit of the first such byte (bits above it
/// may be set by a borrow; none below it is), so `trailing_zeros() / 8` is that byte's index
/// when the word was read with `u64::from_le_bytes`.
#[inline(always)]
pub(crate) fn has_byte(x: u64, b: u8) -> u64 {
    let y = x ^ splat(b);
    y.wrapping_sub(splat(1)) & !y & splat(0x80)
}

/// The index of the first `b` in `bytes`, eight bytes at a time: for the short runs of
/// attribute values, where memchr's setup costs more than the scan.
#[inline]
pub fn find_byte(bytes: &[u8], b: u8) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let hit = has_byte(u64::from_le_bytes(word), b);
        if hit != 0 {
            return Some(at + (hit.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder();
    tail.iter().position(|&c| c == b).map(|i| at + i)
}

/// True when `value` holds a byte that [`escape_attr_into`] replaces (`&`, `<`, `>`, `'`,
/// `"`): eight bytes at a time, the tail byte by byte.
#[inline]
pub fn needs_escape(value: &[u8]) -> bool {
    let mut words = value.chunks_exact(8);
    for chunk in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            return true;
        };
        let x = u64::from_le_bytes(word);
        let hit = has_byte(x, b'&')
            | has_byte(x, b'<')
            | has_byte(x, b'>')
            | has_byte(x, b'\'')
            | has_byte(x, b'"');
        if hit != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| ESCAPED[usize::from(b)])
}

fn escape_into(out: &mut BytesMut, value: &[u8], attr: bool) {
    // Almost every value needs nothing: one scan, then one copy.
    if !needs_escape(value) {
        out.put_slice(value);
        return;
    }
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\'' if attr => b"&apos;",
            b'"' if attr => b"&quot;",
            _ => continue,
        };
        out.put_slice(&value[start..i]);
        out.put_slice(rep);
        start = i + 1;
    }
    out.put_slice(&value[start..]);
}

/// True for the XML whitespace characters allowed between stanzas.
#[inline]
pub fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_and_char_refs_pass() {
        assert!(check_references(b"a &amp; b &lt; &gt; &quot; &apos; &#65; &#x1F600;").is_ok());
        assert!(check_references(b"no refs at all").is_ok());
    }

    #[test]
    fn undeclared_entities_are_restricted() {
        assert_eq!(
            check_references(b"&lol9;"),
            Err(FrameError::UndeclaredEntity)
        );
        assert_eq!(
            check_references(b"x &xxe; y"),
            Err(FrameError::UndeclaredEntity)
        );
    }

    #[test]
    fn broken_references_are_malformed() {
        for bad in [
            &b"&"[..],
            b"& x",
            b"&;",
            b"&#;",
            b"&#x;",
            b"&#0;",
            b"&#xD800;",
            b"&#1114112;",
            b"&a-b;",
        ] {
            assert!(
                matches!(check_references(bad), Err(FrameError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unescape_expands_only_when_needed() {
        assert!(matches!(unescape("plain"), Cow::Borrowed("plain")));
        assert_eq!(unescape("a&amp;b&lt;&#65;&#x42;&apos;"), "a&b<AB'");
    }

    #[test]
    fn find_byte_finds_the_first_at_every_offset() {
        for len in 0..20 {
            let plain = vec![b'a'; len];
            assert_eq!(
                find_byte(&plain, b'\''),
                plain.iter().position(|&c| c == b'\'')
            );
            for at in 0..len {
                for second in at..len {
                    let mut v = plain.clone();
                    v[second] = b'\'';
                    v[at] = b'\'';
                    assert_eq!(find_byte(&v, b'\''), Some(at), "{len} {at} {second}");
                    // A byte next to the one sought (a borrow) is no false match.
                    let mut w = plain.clone();
                    w[at] = b'\'' - 1;
                    w[second] = b'\'' + 1;
                    assert_eq!(find_byte(&w, b'\''), None);
                }
            }
        }
    }

    #[test]
    fn needs_escape_finds_each_escaped_byte_at_every_offset() {
        for len in 0..20 {
            let plain = vec![b'a'; len];
            assert!(!needs_escape(&plain));
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = plain.clone();
                    v[at] = b;
                    assert_eq!(needs_escape(&v), ESCAPED[usize::from(b)], "{len} {at} {b}");
                }
            }
        }
    }

    #[test]
    fn escape_round_trips_through_unescape() {
        let mut out = BytesMut::new();
        escape_attr_into(&mut out, b"o'brien & <co> \"q\"");
        let s = std::str::from_utf8(&out).unwrap();
        assert!(!s.contains('\'') && !s.contains('"') && !s.contains('<'));
        assert_eq!(unescape(s), "o'brien & <co> \"q\"");
        let mut text = BytesMut::new();
        escape_text_into(&mut text, b"it's <b>");
        assert_eq!(&text[..], b"it's &lt;b&gt;");
    }
}
