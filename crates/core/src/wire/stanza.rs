//! A framed stanza: a cheap view over the exact bytes a peer sent.
//!
//! A [`Stanza`] owns a `Bytes` slice of the receive buffer (no copy) plus spans the framer
//! recorded while validating it: the root's qualified name, its `id`/`type`/`from`/`to`/`xmlns`
//! attributes, and the elements at depth 1 and 2 below the root. Values stay escaped until
//! asked for. This module does no validation of its own: only the framer builds stanzas.

use super::xml;
use bytes::Bytes;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A byte range inside a stanza's bytes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset just past the last byte.
    pub end: u32,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The span as a range for slicing the stanza's bytes.
    #[inline]
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    /// True when the span covers no bytes.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// A raw (still escaped) attribute value and the quote character it was written with, so that
/// it can be spliced into output unchanged.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AttrSpan {
    /// Where the value sits, between its quotes.
    pub value: Span,
    /// The quote character: `'` or `"`.
    pub quote: u8,
}

/// One element below the root, as recorded by the framer. Kept to 16 bytes: stanzas carry a
/// few of them inline and move through every layer by value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ElementRef {
    /// The whole element, from `<` to the end of its end tag (or `/>`).
    pub span: Span,
    /// End of the start tag (just after its `>`).
    pub tag_end: u32,
    /// Length of the qualified name, which starts just after the `<`.
    pub name_len: u16,
    /// 1 for children of the root, 2 for grandchildren.
    pub depth: u8,
}

impl ElementRef {
    /// The qualified name's span.
    pub fn name(&self) -> Span {
        let start = self.span.start + 1;
        Span {
            start,
            end: start + u32::from(self.name_len),
        }
    }

    /// The element's content, between its start and end tags (empty for `<x/>`).
    pub fn content(&self, bytes: &[u8]) -> Span {
        let start = self.tag_end as usize;
        let end = self.span.end as usize;
        if bytes[start - 2] == b'/' {
            return Span::new(start, start);
        }
        // The end tag is `</name>`, possibly with whitespace before `>`.
        let close = memchr::memrchr(b'<', &bytes[start..end]).map_or(end, |i| start + i);
        Span::new(start, close)
    }
}

/// Root attributes the framer records for every stanza.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RootAttrs {
    /// The root's `id`.
    pub id: Option<AttrSpan>,
    /// The root's `type`.
    pub type_: Option<AttrSpan>,
    /// The root's `from`.
    pub from: Option<AttrSpan>,
    /// The root's `to`.
    pub to: Option<AttrSpan>,
    /// The root's `xmlns`.
    pub xmlns: Option<AttrSpan>,
}

/// A complete, validated top-level element.
#[derive(Clone, Debug)]
pub struct Stanza {
    pub(crate) bytes: Bytes,
    pub(crate) name: Span,
    pub(crate) attrs: RootAttrs,
    pub(crate) elements: SmallVec<[ElementRef; 4]>,
}

impl Stanza {
    /// The exact bytes received, from `<` to the end of the element.
    #[inline]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Qualified name of the root (`iq`, `message`, `stream:error`...).
    #[inline]
    pub fn name(&self) -> &[u8] {
        &self.bytes[self.name.range()]
    }

    /// Local name of the root (after any prefix).
    pub fn local_name(&self) -> &[u8] {
        local(self.name())
    }

    /// The root attributes the framer recorded (raw spans).
    pub fn attrs(&self) -> &RootAttrs {
        &self.attrs
    }

    /// The raw (escaped) bytes of a recorded root attribute.
    #[inline]
    pub fn raw(&self, attr: Option<AttrSpan>) -> Option<&[u8]> {
        attr.map(|a| &self.bytes[a.value.range()])
    }

    /// A recorded root attribute's value, unescaped.
    pub fn value(&self, attr: Option<AttrSpan>) -> Option<Cow<'_, str>> {
        self.raw(attr).map(as_str).map(xml::unescape)
    }

    /// The root's `id`, unescaped.
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.value(self.attrs.id)
    }
    /// The root's `type`, unescaped.
    pub fn type_(&self) -> Option<Cow<'_, str>> {
        self.value(self.attrs.type_)
    }
    /// The root's `from`, unescaped.
    pub fn from(&self) -> Option<Cow<'_, str>> {
        self.value(self.attrs.from)
    }
    /// The root's `to`, unescaped.
    pub fn to(&self) -> Option<Cow<'_, str>> {
        self.value(self.attrs.to)
    }

    /// Elements at depth 1 and 2 below the root, in document order.
    pub fn elements(&self) -> &[ElementRef] {
        &self.elements
    }

    /// Children of the root (depth 1).
    pub fn children(&self) -> impl Iterator<Item = &ElementRef> + '_ {
        self.elements.iter().filter(|e| e.depth == 1)
    }

    /// Children of a depth-1 element (its depth-2 elements).
    pub fn children_of<'s>(
        &'s self,
        parent: &ElementRef,
    ) -> impl Iterator<Item = &'s ElementRef> + 's {
        let span = parent.span;
        self.elements
            .iter()
            .filter(move |e| e.depth == 2 && e.span.start >= span.start && e.span.end <= span.end)
    }

    /// The bytes of an element (or any span) of this stanza, as a zero-copy slice.
    pub fn slice(&self, span: Span) -> Bytes {
        self.bytes.slice(span.range())
    }

    /// An element's qualified name (with any prefix), as written.
    pub fn element_name(&self, e: &ElementRef) -> &[u8] {
        &self.bytes[e.name().range()]
    }

    /// An element's local name (after any prefix).
    pub fn element_local_name(&self, e: &ElementRef) -> &[u8] {
        local(self.element_name(e))
    }

    /// The attributes of an element's start tag, raw (escaped), tokenized on demand, as bytes:
    /// readers compare names as bytes and convert only the values they keep.
    pub fn element_attrs(&self, e: &ElementRef) -> Attrs<'_> {
        Attrs::of_start_tag(&self.bytes[e.span.start as usize..e.tag_end as usize])
    }

    /// One attribute of an element's start tag, unescaped.
    pub fn element_attr(&self, e: &ElementRef, name: &str) -> Option<Cow<'_, str>> {
        self.element_attrs(e)
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| xml::unescape(as_str(v)))
    }

    /// The root's content between its start and end tags.
    pub fn content(&self) -> Span {
        let tag_end = start_tag_end(&self.bytes);
        let root = ElementRef {
            span: Span::new(0, self.bytes.len()),
            tag_end: tag_end as u32,
            name_len: 0,
            depth: 0,
        };
        root.content(&self.bytes)
    }

    /// The root's text when it has no child elements (e.g. `<handshake>HEX</handshake>`),
    /// unescaped.
    pub fn text(&self) -> Cow<'_, str> {
        xml::unescape(as_str(&self.bytes[self.content().range()]))
    }
}

/// The attributes of one start tag, as `(qualified name, raw value)` byte pairs.
///
/// Only ever built over start tags the framer already validated (well-formed, UTF-8), so a
/// plain delimiter scan is exact: names end at `=` or whitespace, values at their own quote.
/// That is several times cheaper than tokenizing the tag again.
pub struct Attrs<'a> {
    tag: &'a [u8],
    pos: usize,
}

impl<'a> Attrs<'a> {
    /// `tag` is one complete, validated start tag, `<name attr='v' ...>` or `.../>`.
    pub(crate) fn of_start_tag(tag: &'a [u8]) -> Attrs<'a> {
        let mut pos = 1;
        while pos < tag.len() && !matches!(tag[pos], b' ' | b'\t' | b'\r' | b'\n' | b'>' | b'/') {
            pos += 1;
        }
        Attrs { tag, pos }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.tag;
        while self.pos < b.len() && super::xml::is_space(b[self.pos]) {
            self.pos += 1;
        }
        let name_start = self.pos;
        if name_start >= b.len() || matches!(b[name_start], b'>' | b'/') {
            return None;
        }
        // Names are short: a plain scan beats memchr's setup. The name ends at `=` or at the
        // (ASCII) whitespace before it.
        let eq = name_start + b[name_start..].iter().position(|&c| c == b'=')?;
        let mut name_end = eq;
        while name_end > name_start && super::xml::is_space(b[name_end - 1]) {
            name_end -= 1;
        }
        let mut q = eq + 1;
        while q < b.len() && super::xml::is_space(b[q]) {
            q += 1;
        }
        let quote = *b.get(q)?;
        let value_start = q + 1;
        let value_end = value_start + super::xml::find_byte(b.get(value_start..)?, quote)?;
        self.pos = value_end + 1;
        Some((&b[name_start..name_end], &b[value_start..value_end]))
    }
}

/// The part of a qualified name after its prefix.
pub fn local(qname: &[u8]) -> &[u8] {
    match memchr::memchr(b':', qname) {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

/// Index just past the `>` that ends the start tag at the beginning of `bytes`, skipping `>`
/// inside quoted attribute values.
pub(crate) fn start_tag_end(bytes: &[u8]) -> usize {
    let mut quote = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (0, b'"' | b'\'') => quote = b,
            (0, b'>') => return i + 1,
            (q, b) if q == b => quote = 0,
            _ => {}
        }
    }
    bytes.len()
}

/// Stanza bytes were validated as UTF-8 by the framer; sub-slices on token boundaries stay valid.
pub(crate) fn as_str(bytes: &[u8]) -> &str {
    // Unreachable for framer-built stanzas; an empty string is a safe answer otherwise.
    std::str::from_utf8(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Attrs;

    #[test]
    fn attribute_scan_matches_the_tokenizer() {
        for tag in [
            "<message from='a@b/c' to=\"d\" xml:lang='en' type = 'chat' id='x>y'>",
            "<event xmlns='urn:x' name='es_OUT'/>",
            "<presence\n\tfrom='a'\r\n/>",
            "<x>",
            "<x/>",
            "<q a=\"it's\" b='say \"hi\"'>",
        ] {
            let fast: Vec<(&str, &str)> = Attrs::of_start_tag(tag.as_bytes())
                .map(|(n, v)| (super::as_str(n), super::as_str(v)))
                .collect();
            let slow: Vec<(&str, &str)> = xmlparser::Tokenizer::from_fragment(tag, 0..tag.len())
                .filter_map(|t| match t {
                    Ok(xmlparser::Token::Attribute { span, value, .. }) => {
                        let s = span.as_str();
                        Some((s[..s.find('=').unwrap()].trim_end(), value.as_str()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(fast, slow, "{tag}");
        }
    }
}
