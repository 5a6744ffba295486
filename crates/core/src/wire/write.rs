//! Serialization helpers: write stanzas by splicing bytes we already hold (a peer's raw
//! attribute values, a whole inner stanza) and escaping only what we generate.
//!
//! Everything appends to a caller-owned `BytesMut`, so a connection can batch many stanzas into
//! one write. No re-encoding of inner stanzas ever happens here.

use super::error::Condition;
use super::xml;
use bytes::{BufMut, BytesMut};

/// Namespace of stream error conditions and their `<text/>`.
pub const STREAMS_ERROR_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Namespace of stanza error conditions and their `<text/>`.
pub const STANZAS_ERROR_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// An element being written: `open` writes `<name`, attributes follow, then one of `empty`,
/// `start_content` (after which the caller appends content and calls [`close`]).
pub struct Element<'a> {
    out: &'a mut BytesMut,
}

impl<'a> Element<'a> {
    /// Starts an element: writes `<name` into `out`.
    pub fn open(out: &'a mut BytesMut, name: &str) -> Element<'a> {
        out.put_u8(b'<');
        out.put_slice(name.as_bytes());
        Element { out }
    }

    /// An attribute whose value we generated: escaped here.
    pub fn attr(self, name: &str, value: &str) -> Self {
        self.attr_bytes(name, value.as_bytes())
    }

    /// An attribute whose value we generated, as bytes: escaped here.
    pub fn attr_bytes(self, name: &str, value: &[u8]) -> Self {
        self.out.put_u8(b' ');
        self.out.put_slice(name.as_bytes());
        self.out.put_slice(b"='");
        xml::escape_attr_into(self.out, value);
        self.out.put_u8(b'\'');
        self
    }

    /// An attribute whose value is known to need no escaping (a constant, a validated name, or
    /// a string escaped once in advance); written with single quotes.
    pub fn attr_trusted(self, name: &str, value: &str) -> Self {
        self.attr_raw(name, value.as_bytes(), b'\'')
    }

    /// An attribute whose value is already escaped as it stood between `quote`s in a peer's
    /// stanza: spliced unchanged, with the same quote so the escaping stays right.
    pub fn attr_raw(self, name: &str, raw: &[u8], quote: u8) -> Self {
        self.out.put_u8(b' ');
        self.out.put_slice(name.as_bytes());
        self.out.put_u8(b'=');
        self.out.put_u8(quote);
        self.out.put_slice(raw);
        self.out.put_u8(quote);
        self
    }

    /// [`Element::attr`] when `value` is present; nothing otherwise.
    pub fn attr_opt(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Ends the element as `/>`.
    pub fn empty(self) {
        self.out.put_slice(b"/>");
    }

    /// Ends the start tag; the caller appends content then calls [`close`].
    pub fn start_content(self) -> &'a mut BytesMut {
        self.out.put_u8(b'>');
        self.out
    }
}

/// Writes `</name>`.
pub fn close(out: &mut BytesMut, name: &str) {
    out.put_slice(b"</");
    out.put_slice(name.as_bytes());
    out.put_u8(b'>');
}

/// Writes escaped character data.
pub fn text(out: &mut BytesMut, value: &str) {
    xml::escape_text_into(out, value.as_bytes());
}

/// Writes a stream header. `to`/`from`/`id` are omitted when `None`.
pub fn stream_header(
    out: &mut BytesMut,
    namespace: &str,
    to: Option<&str>,
    from: Option<&str>,
    id: Option<&str>,
) {
    Element::open(out, "stream:stream")
        .attr("xmlns:stream", super::framer::STREAMS_NS)
        .attr("xmlns", namespace)
        .attr_opt("to", to)
        .attr_opt("from", from)
        .attr_opt("id", id)
        .start_content();
}

/// Writes `<stream:error>` with a condition and an optional human-readable text. The text is
/// always ours: offending peer bytes are never echoed.
pub fn stream_error(out: &mut BytesMut, condition: Condition, text_value: Option<&str>) {
    let body = Element::open(out, "stream:error").start_content();
    Element::open(body, condition.as_str())
        .attr("xmlns", STREAMS_ERROR_NS)
        .empty();
    if let Some(t) = text_value {
        let inner = Element::open(body, "text")
            .attr("xmlns", STREAMS_ERROR_NS)
            .start_content();
        text(inner, t);
        close(inner, "text");
    }
    close(body, "stream:error");
}

/// Writes the stream's closing tag.
pub fn stream_end(out: &mut BytesMut) {
    out.put_slice(b"</stream:stream>");
}

/// Writes an RFC 6120 stanza `<error/>` with a condition and an optional text.
pub fn stanza_error(
    out: &mut BytesMut,
    error_type: &str,
    condition: &str,
    text_value: Option<&str>,
) {
    let body = Element::open(out, "error")
        .attr("type", error_type)
        .start_content();
    Element::open(body, condition)
        .attr("xmlns", STANZAS_ERROR_NS)
        .empty();
    if let Some(t) = text_value {
        let inner = Element::open(body, "text")
            .attr("xmlns", STANZAS_ERROR_NS)
            .start_content();
        text(inner, t);
        close(inner, "text");
    }
    close(body, "error");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_builder_escapes_generated_values_and_splices_raw_ones() {
        let mut out = BytesMut::new();
        let body = Element::open(&mut out, "iq")
            .attr("type", "set")
            .attr("key", "o'b&c<d")
            .attr_raw("id", b"a&apos;b", b'"')
            .start_content();
        body.put_slice(b"<message/>");
        close(body, "iq");
        assert_eq!(
            &out[..],
            &b"<iq type='set' key='o&apos;b&amp;c&lt;d' id=\"a&apos;b\"><message/></iq>"[..]
        );
    }

    #[test]
    fn stream_error_has_condition_and_text() {
        let mut out = BytesMut::new();
        stream_error(&mut out, Condition::NotAuthorized, Some("bad <secret>"));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad &lt;secret&gt;</text></stream:error>"
        );
    }
}
