//! The `<body/>` of a message stanza: finding its text for content rules, and writing a copy
//! of the stanza with text appended to it (PASS with a modified stanza, docs/protocol.md §4).
//!
//! The wire core records elements two levels below a stanza's root, which for an embedded
//! message stops above its body, so this file tokenizes just the embedded stanza. Everything
//! outside the body's content is copied byte for byte. Must not decide anything.

use crate::wire::xml;
use bytes::BytesMut;
use std::ops::Range;
use xmlparser::{ElementEnd, Token, Tokenizer};

/// A body found in a stanza.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// The content's byte range in the stanza (still escaped there).
    pub content: Range<usize>,
    /// The content, unescaped.
    pub text: String,
}

/// The first `<body/>` child of the stanza's root, if it has one and only text in it.
pub fn find_body(stanza: &[u8]) -> Option<Body> {
    let text = std::str::from_utf8(stanza).ok()?;
    let mut depth = 0usize;
    let mut in_body = false;
    let mut start = 0;
    let mut collected = String::new();
    for token in Tokenizer::from(text) {
        match token.ok()? {
            Token::ElementStart { local, .. } => {
                if in_body {
                    // Markup inside a body is not something a content rule should guess at.
                    return None;
                }
                depth += 1;
                if depth == 2 && local.as_str() == "body" {
                    in_body = true;
                }
            }
            Token::ElementEnd { end, span } => match end {
                ElementEnd::Open => {
                    if in_body && depth == 2 {
                        start = span.end();
                    }
                }
                ElementEnd::Empty => {
                    if in_body && depth == 2 {
                        // Recorded just after `/>`, which `append_to_body` recognises.
                        return Some(Body {
                            content: span.end()..span.end(),
                            text: String::new(),
                        });
                    }
                    depth -= 1;
                }
                ElementEnd::Close(..) => {
                    if in_body && depth == 2 {
                        return Some(Body {
                            content: start..span.start(),
                            text: collected,
                        });
                    }
                    depth = depth.saturating_sub(1);
                }
            },
            Token::Text { text } if in_body => collected.push_str(&xml::unescape(text.as_str())),
            Token::Cdata { text, .. } if in_body => collected.push_str(text.as_str()),
            _ => {}
        }
    }
    None
}

/// A copy of `stanza` whose body has `extra` appended (escaped).
pub fn append_to_body(stanza: &[u8], body: &Body, extra: &str) -> Vec<u8> {
    let mut out = BytesMut::with_capacity(stanza.len() + extra.len() + 16);
    if body.content.is_empty() && stanza[..body.content.start].ends_with(b"/>") {
        // `<body/>`: reopen it as `<body>extra</body>`.
        let tag_end = body.content.start;
        out.extend_from_slice(&stanza[..tag_end - 2]);
        out.extend_from_slice(b">");
        xml::escape_text_into(&mut out, extra.as_bytes());
        out.extend_from_slice(b"</body>");
        out.extend_from_slice(&stanza[tag_end..]);
    } else {
        out.extend_from_slice(&stanza[..body.content.end]);
        xml::escape_text_into(&mut out, extra.as_bytes());
        out.extend_from_slice(&stanza[body.content.end..]);
    }
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"<message xmlns='jabber:client' from='a@x/r' to='b@x'>\
        <thread>t1</thread><body>fish &amp; chips</body>\
        <active xmlns='http://jabber.org/protocol/chatstates'/></message>";

    #[test]
    fn finds_and_unescapes_the_body() {
        let b = find_body(MSG).unwrap();
        assert_eq!(b.text, "fish & chips");
        assert_eq!(&MSG[b.content.clone()], b"fish &amp; chips");
        assert_eq!(find_body(b"<presence from='a@x'/>"), None);
        assert_eq!(
            find_body(b"<message><x><body>deep</body></x></message>"),
            None
        );
        assert_eq!(find_body(b"<message><body>a<b/>c</body></message>"), None);
        assert_eq!(
            find_body(b"<message><body><![CDATA[<raw>]]></body></message>").map(|b| b.text),
            Some("<raw>".into())
        );
    }

    #[test]
    fn appends_escaped_text_and_keeps_the_rest() {
        let b = find_body(MSG).unwrap();
        let out = append_to_body(MSG, &b, " [archived <1>]");
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("<body>fish &amp; chips [archived &lt;1&gt;]</body>"),
            "{text}"
        );
        assert!(text.starts_with(
            "<message xmlns='jabber:client' from='a@x/r' to='b@x'><thread>t1</thread>"
        ));
        assert!(text.ends_with("<active xmlns='http://jabber.org/protocol/chatstates'/></message>"));
        let empty = b"<message to='b@x'><body/></message>";
        let b = find_body(empty).unwrap();
        assert_eq!(b.text, "");
        assert_eq!(
            append_to_body(empty, &b, "x"),
            b"<message to='b@x'><body>x</body></message>".to_vec()
        );
    }
}
