//! Writing a compliance server's answers (docs/protocol.md §4): `<iq type='result'/>` (PASS), a
//! `<verdict action='pass'>` holding a modified stanza, `<verdict action='handle'/>`, or
//! `<iq type='error'>` with an RFC 6120 `<error/>`.
//!
//! Answers go from the stream's component NAME to the request's `from`, with the request's `id`
//! spliced back unchanged. The gateway reads these with [`crate::protocol::parse_answer`]. Must
//! not decide which answer to give.

use crate::protocol::NS;
use crate::wire::write::{close, stanza_error, Element};
use bytes::{BufMut, BytesMut};

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    Pass,
    PassModified(&'a [u8]),
    Handle,
    Error {
        error_type: &'a str,
        condition: &'a str,
        text: Option<&'a str>,
    },
}

impl Answer<'_> {
    /// The name the archive and the counters use.
    pub fn label(&self) -> &'static str {
        match self {
            Answer::Pass => "pass",
            Answer::PassModified(_) => "pass-modified",
            Answer::Handle => "handle",
            Answer::Error { .. } => "error",
        }
    }
}

/// Where an answer goes: the request's raw `id` and `from` with their quotes.
#[derive(Copy, Clone, Debug)]
pub struct ReplyTo<'a> {
    pub id: &'a [u8],
    pub id_quote: u8,
    pub to: &'a [u8],
    pub to_quote: u8,
}

/// Appends the answer stanza to `out`, from the component `from`.
pub fn write_answer(out: &mut BytesMut, from: &str, reply: ReplyTo, answer: &Answer) {
    let el = Element::open(out, "iq")
        .attr(
            "type",
            if matches!(answer, Answer::Error { .. }) {
                "error"
            } else {
                "result"
            },
        )
        .attr_raw("id", reply.id, reply.id_quote)
        .attr("from", from)
        .attr_raw("to", reply.to, reply.to_quote);
    match answer {
        Answer::Pass => el.empty(),
        Answer::Handle => {
            let body = el.start_content();
            Element::open(body, "verdict")
                .attr("xmlns", NS)
                .attr("action", "handle")
                .empty();
            close(body, "iq");
        }
        Answer::PassModified(stanza) => {
            let body = el.start_content();
            let v = Element::open(body, "verdict")
                .attr("xmlns", NS)
                .attr("action", "pass")
                .start_content();
            v.put_slice(stanza);
            close(v, "verdict");
            close(v, "iq");
        }
        Answer::Error {
            error_type,
            condition,
            text,
        } => {
            let body = el.start_content();
            stanza_error(body, error_type, condition, *text);
            close(body, "iq");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_answer, Answer as GatewayView};
    use crate::wire::{Frame, Framer, Limits};
    use bytes::Bytes;

    const REPLY: ReplyTo = ReplyTo {
        id: b"g1.2.3",
        id_quote: b'\'',
        to: b"palisade.example.com",
        to_quote: b'"',
    };

    /// What the gateway makes of an answer.
    fn gateway_reads(answer: &Answer) -> (String, GatewayView) {
        let mut out = BytesMut::new();
        write_answer(&mut out, "op-cs1.palisade-example-com", REPLY, answer);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let mut f = Framer::new(Limits::default());
        f.feed(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
        f.feed(&out);
        let _ = f.next_frame();
        let Ok(Some(Frame::Stanza(s))) = f.next_frame() else {
            panic!("{text}")
        };
        (text, parse_answer(&s).unwrap().answer)
    }

    #[test]
    fn the_gateway_reads_every_answer_as_meant() {
        let (text, view) = gateway_reads(&Answer::Pass);
        assert_eq!(
            text,
            "<iq type='result' id='g1.2.3' from='op-cs1.palisade-example-com' to=\"palisade.example.com\"/>"
        );
        assert_eq!(view, GatewayView::Pass);
        assert_eq!(gateway_reads(&Answer::Handle).1, GatewayView::Handle);
        let modified = b"<message to='b@x'><body>hi [archived]</body></message>";
        assert_eq!(
            gateway_reads(&Answer::PassModified(modified)).1,
            GatewayView::PassModified(Bytes::from_static(modified))
        );
        let (text, view) = gateway_reads(&Answer::Error {
            error_type: "cancel",
            condition: "forbidden",
            text: Some("ethical wall: trading/research"),
        });
        assert!(text.starts_with("<iq type='error'"), "{text}");
        let GatewayView::Error(e) = view else {
            panic!("{view:?}")
        };
        assert_eq!(
            &e[..],
            b"<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>ethical wall: trading/research</text></error>"
        );
    }
}
