//! Answers to the plain XMPP iqs a peer may send a component besides events: XEP-0199 ping and
//! XEP-0030 disco#info; any other request gets `service-unavailable` so the sender is never left
//! waiting. Results and errors addressed to us are not requests and get nothing.

use super::event::Reply;
use super::NS;
use crate::wire::write::{close, stanza_error, Element};
use crate::wire::Stanza;
use bytes::BytesMut;

const PING_NS: &str = "urn:xmpp:ping";
const DISCO_INFO_NS: &str = "http://jabber.org/protocol/disco#info";

/// What was done with a stanza that is not an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServiceOutcome {
    Ping,
    DiscoInfo,
    /// A request we do not serve, answered with `service-unavailable`.
    Refused,
    /// Not a request (a result, an error, a message, a presence): nothing to answer.
    Ignored,
}

/// Answers `stanza` (not an event) into `out` as the component `our_name`.
pub fn answer(out: &mut BytesMut, our_name: &str, stanza: &Stanza) -> ServiceOutcome {
    let is_request =
        stanza.name() == b"iq" && matches!(stanza.raw(stanza.attrs().type_), Some(b"get" | b"set"));
    let Some(reply) = Reply::of(stanza).filter(|_| is_request) else {
        return ServiceOutcome::Ignored;
    };
    let get = stanza.raw(stanza.attrs().type_) == Some(b"get");
    let payload_ns = stanza
        .children()
        .next()
        .and_then(|c| stanza.element_attr(c, "xmlns"));
    match (get, payload_ns.as_deref()) {
        (true, Some(PING_NS)) => {
            result(out, our_name, &reply).empty();
            ServiceOutcome::Ping
        }
        (true, Some(DISCO_INFO_NS)) => {
            let body = result(out, our_name, &reply).start_content();
            let q = Element::open(body, "query")
                .attr("xmlns", DISCO_INFO_NS)
                .start_content();
            Element::open(q, "identity")
                .attr("category", "component")
                .attr("type", "generic")
                .attr("name", "Palisade compliance gateway")
                .empty();
            for feature in [DISCO_INFO_NS, PING_NS, NS] {
                Element::open(q, "feature").attr("var", feature).empty();
            }
            close(q, "query");
            close(body, "iq");
            ServiceOutcome::DiscoInfo
        }
        _ => {
            let body = Element::open(out, "iq")
                .attr("type", "error")
                .attr_raw("id", &reply.id, reply.id_quote)
                .attr("from", our_name)
                .attr_raw("to", &reply.to, reply.to_quote)
                .start_content();
            stanza_error(body, "cancel", "service-unavailable", None);
            close(body, "iq");
            ServiceOutcome::Refused
        }
    }
}

fn result<'o>(out: &'o mut BytesMut, our_name: &str, reply: &Reply) -> Element<'o> {
    Element::open(out, "iq")
        .attr("type", "result")
        .attr_raw("id", &reply.id, reply.id_quote)
        .attr("from", our_name)
        .attr_raw("to", &reply.to, reply.to_quote)
}
