//! The framer's own tag tokenizer, for the common case: tags whose names are ASCII.
//!
//! It reads one start or end tag from bytes (no `&str` needed, so the framer does not check a
//! whole window's UTF-8 before parsing) into the same tokens xmlparser gives, as spans, and
//! hands each straight to the pass's bookkeeping (`ElementPass::start`, `attr`, `end`, inlined
//! where each is read). An attribute value's characters are checked in the same scan that
//! finds its closing quote, eight bytes at a time while they are plain. It
//! never decides that input is wrong: anything it does not read exactly as xmlparser would (a
//! non-ASCII name, a stray byte, a `<` in a value, a forbidden character) makes it stand aside
//! with [`Stop::Unsupported`], and the caller tokenizes the stanza with xmlparser instead, which
//! gives the verdict and the error. The property tests in `framer/tests.rs` hold it to that.
//!
//! Must not: report errors of its own, allocate, or accept anything xmlparser refuses.

use super::{check_chars, ElementPass, AMPERSAND, TEXT_CLASS};
use crate::wire::error::FrameError;
use crate::wire::stanza::Span;
use crate::wire::xml::{has_byte, is_space, splat};

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

/// An attribute value from the byte after its opening `quote` (`rest`): its length (up to the
/// closing quote) and the byte classes of [`TEXT_CLASS`] it holds, of which the caller reads
/// [`AMPERSAND`] and `NON_ASCII` (a `>` in a run of plain bytes is not recorded; nothing reads
/// it for values). It checks the characters in the same pass that looks for the closing quote:
/// eight bytes at a time while none of them is the quote, `<`, `&`, a control character or a
/// byte that is not ASCII, then byte by byte. Stands aside on a `<` before the quote (xmlparser
/// refuses it) and on a character XML forbids, as [`check_chars`] would.
#[inline]
fn value(rest: &[u8], quote: u8) -> Result<(usize, u8), Stop> {
    let mut i = 0;
    while let Some(chunk) = rest.get(i..i + 8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        // A byte below 0x20 borrows in the subtraction or one at or above 0x80 has its high
        // bit: either sets a high bit here, and with no such byte no borrow happens at all.
        let outside = (x.wrapping_sub(splat(0x20)) | x) & splat(0x80);
        let flagged = outside | has_byte(x, quote) | has_byte(x, b'<') | has_byte(x, b'&');
        if flagged != 0 {
            // The lowest flag is exact (a false one can only follow a true one, through a
            // borrow): the first byte to look at. Most often it is the closing quote.
            i += (flagged.trailing_zeros() / 8) as usize;
            if rest.get(i) == Some(&quote) {
                return Ok((i, 0));
            }
            break;
        }
        i += 8;
    }
    let mut classes = 0u8;
    loop {
        match rest.get(i) {
            None => return Err(Stop::Incomplete),
            Some(&b) if b == quote => break,
            Some(b'<') => return Err(Stop::Unsupported),
            Some(&b) => classes |= TEXT_CLASS[usize::from(b)],
        }
        i += 1;
    }
    // A control character, or maybe U+FFFE or U+FFFF: the full check, as xmlparser's reading
    // of the value would refuse them.
    if classes & 9 != 0 && check_chars(&rest[..i]).is_err() {
        return Err(Stop::Unsupported);
    }
    Ok((i, classes))
}

/// Reads the tag whose `<` is at `lt` (not `<!` or `<?`), handing each token to `emit`;
/// returns the offset just past the tag. `seen` collects the byte classes of attribute values
/// (see [`value`]), so that the caller knows whether any byte was not ASCII.
pub(super) fn tag(
    bytes: &[u8],
    lt: usize,
    seen: &mut u8,
    p: &mut ElementPass<'_>,
) -> Result<Result<usize, Stop>, FrameError> {
    if bytes.get(lt + 1) == Some(&b'/') {
        let (_, _, end) = match qname(bytes, lt + 2) {
            Ok(n) => n,
            Err(stop) => return Ok(Err(stop)),
        };
        let gt = skip_spaces(bytes, end);
        return match bytes.get(gt) {
            None => Ok(Err(Stop::Incomplete)),
            Some(b'>') => {
                p.end(EndKind::Close, Span::new(lt, gt + 1))?;
                Ok(Ok(gt + 1))
            }
            Some(_) => Ok(Err(Stop::Unsupported)),
        };
    }
    let (prefix, _, mut at) = match qname(bytes, lt + 1) {
        Ok(n) => n,
        Err(stop) => return Ok(Err(stop)),
    };
    p.start(Span::new(lt, at), prefix)?;
    loop {
        let spaced = skip_spaces(bytes, at);
        match bytes.get(spaced) {
            None => return Ok(Err(Stop::Incomplete)),
            Some(b'>') => {
                p.end(EndKind::Open, Span::new(spaced, spaced + 1))?;
                return Ok(Ok(spaced + 1));
            }
            Some(b'/') => {
                return match bytes.get(spaced + 1) {
                    None => Ok(Err(Stop::Incomplete)),
                    Some(b'>') => {
                        p.end(EndKind::Empty, Span::new(spaced, spaced + 2))?;
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
        let (len, classes) = match value(bytes.get(start..).unwrap_or_default(), quote) {
            Ok(v) => v,
            Err(stop) => return Ok(Err(stop)),
        };
        *seen |= classes;
        p.attr(
            prefix,
            local,
            Span::new(start, start + len),
            classes & AMPERSAND != 0,
        )?;
        at = start + len + 1;
    }
}
