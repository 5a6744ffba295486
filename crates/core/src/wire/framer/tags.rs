//! The framer's own tag tokenizer, for the common case: tags whose names are ASCII.
//!
//! It reads one start or end tag from bytes (no `&str` needed, so the framer does not check a
//! whole window's UTF-8 before parsing) into the same tokens xmlparser gives, as spans. It
//! never decides that input is wrong: anything it does not read exactly as xmlparser would (a
//! non-ASCII name, a stray byte, a `<` in a value, a forbidden character) makes it stand aside
//! with [`Stop::Unsupported`], and the caller tokenizes the stanza with xmlparser instead, which
//! gives the verdict and the error. The property tests in `framer/tests.rs` hold it to that.
//!
//! Must not: report errors of its own, allocate, or accept anything xmlparser refuses.

use super::{check_chars, AMPERSAND};
use crate::wire::stanza::Span;
use crate::wire::xml::is_space;

/// One token of a tag, as offsets into the stanza's bytes (the shapes of xmlparser's tokens).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    /// `<name`: the span covers the `<` and the qualified name; `prefix` is a non-empty prefix.
    Start { span: Span, prefix: Option<Span> },
    /// `name='value'`: a non-empty prefix, the local name and the raw value between its quotes;
    /// `references` is false only when the value holds no `&` (so no reference to check).
    Attr {
        prefix: Option<Span>,
        local: Span,
        value: Span,
        references: bool,
    },
    /// The end of a tag: `>`, `/>` or a whole `</name>` (the span covers what ends it).
    End { kind: EndKind, span: Span },
}

/// How a tag ends.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum EndKind {
    /// `>` of a start tag: content follows.
    Open,
    /// `/>`: an empty element.
    Empty,
    /// `</name>`.
    Close,
}

/// Why the fast tokenizer stopped short of a tag's end.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The input ended inside the tag.
    Incomplete,
    /// Something it does not read (valid or not): xmlparser must tokenize this stanza.
    Unsupported,
}

/// Bytes xmlparser accepts inside an ASCII name after its first byte.
static NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric() || matches!(b as u8, b'_' | b'-' | b'.');
        b += 1;
    }
    t
};

/// The first byte of a name (or of each half of a qualified name) in the ASCII subset.
fn name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// An ASCII qualified name at `at`: `(prefix, local, end)`. Stands aside for anything xmlparser
/// could read otherwise (a non-ASCII character, an empty or odd prefix, a second `:`).
fn qname(bytes: &[u8], at: usize) -> Result<(Option<Span>, Span, usize), Stop> {
    let name = |from: usize| -> Result<usize, Stop> {
        match bytes.get(from) {
            None => return Err(Stop::Incomplete),
            Some(&b) if name_start(b) => {}
            Some(_) => return Err(Stop::Unsupported),
        }
        let mut i = from + 1;
        while bytes.get(i).is_some_and(|&b| NAME[usize::from(b)]) {
            i += 1;
        }
        Ok(i)
    };
    let first = name(at)?;
    let (prefix, local, end) = match bytes.get(first) {
        Some(b':') => {
            let end = name(first + 1)?;
            (Some(Span::new(at, first)), Span::new(first + 1, end), end)
        }
        _ => (None, Span::new(at, first), first),
    };
    match bytes.get(end) {
        None => Err(Stop::Incomplete),
        // A second `:` (refused by xmlparser) or a character that may continue the name.
        Some(&b) if b == b':' || b >= 0x80 => Err(Stop::Unsupported),
        Some(_) => Ok((prefix, local, end)),
    }
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_space(b)) {
        at += 1;
    }
    at
}

/// Reads the tag whose `<` is at `lt` (not `<!` or `<?`), handing each token to `emit`;
/// returns the offset just past the tag. `seen` collects the byte classes of attribute values
/// (see [`check_chars`]), so that the caller knows whether any byte was not ASCII.
pub(super) fn tag<E>(
    bytes: &[u8],
    lt: usize,
    seen: &mut u8,
    mut emit: impl FnMut(Tok) -> Result<(), E>,
) -> Result<Result<usize, Stop>, E> {
    if bytes.get(lt + 1) == Some(&b'/') {
        let (_, _, end) = match qname(bytes, lt + 2) {
            Ok(n) => n,
            Err(stop) => return Ok(Err(stop)),
        };
        let gt = skip_spaces(bytes, end);
        return match bytes.get(gt) {
            None => Ok(Err(Stop::Incomplete)),
            Some(b'>') => {
                emit(Tok::End {
                    kind: EndKind::Close,
                    span: Span::new(lt, gt + 1),
                })?;
                Ok(Ok(gt + 1))
            }
            Some(_) => Ok(Err(Stop::Unsupported)),
        };
    }
    let (prefix, _, mut at) = match qname(bytes, lt + 1) {
        Ok(n) => n,
        Err(stop) => return Ok(Err(stop)),
    };
    emit(Tok::Start {
        span: Span::new(lt, at),
        prefix,
    })?;
    loop {
        let spaced = skip_spaces(bytes, at);
        match bytes.get(spaced) {
            None => return Ok(Err(Stop::Incomplete)),
            Some(b'>') => {
                emit(Tok::End {
                    kind: EndKind::Open,
                    span: Span::new(spaced, spaced + 1),
                })?;
                return Ok(Ok(spaced + 1));
            }
            Some(b'/') => {
                return match bytes.get(spaced + 1) {
                    None => Ok(Err(Stop::Incomplete)),
                    Some(b'>') => {
                        emit(Tok::End {
                            kind: EndKind::Empty,
                            span: Span::new(spaced, spaced + 2),
                        })?;
                        Ok(Ok(spaced + 2))
                    }
                    Some(_) => Ok(Err(Stop::Unsupported)),
                };
            }
            Some(_) if spaced == at => return Ok(Err(Stop::Unsupported)),
            Some(_) => {}
        }
        let (prefix, local, name_end) = match qname(bytes, spaced) {
            Ok(n) => n,
            Err(stop) => return Ok(Err(stop)),
        };
        let eq = skip_spaces(bytes, name_end);
        match bytes.get(eq) {
            None => return Ok(Err(Stop::Incomplete)),
            Some(b'=') => {}
            Some(_) => return Ok(Err(Stop::Unsupported)),
        }
        let q = skip_spaces(bytes, eq + 1);
        let quote = match bytes.get(q) {
            None => return Ok(Err(Stop::Incomplete)),
            Some(&c @ (b'\'' | b'"')) => c,
            Some(_) => return Ok(Err(Stop::Unsupported)),
        };
        let start = q + 1;
        let rest = bytes.get(start..).unwrap_or_default();
        let Some(len) = memchr::memchr2(quote, b'<', rest) else {
            return Ok(Err(Stop::Incomplete));
        };
        if rest[len] == b'<' {
            return Ok(Err(Stop::Unsupported));
        }
        let classes = match check_chars(&rest[..len]) {
            Ok(classes) => classes,
            Err(_) => return Ok(Err(Stop::Unsupported)),
        };
        *seen |= classes;
        emit(Tok::Attr {
            prefix,
            local,
            value: Span::new(start, start + len),
            references: classes & AMPERSAND != 0,
        })?;
        at = start + len + 1;
    }
}
