//! Answers to the plain XMPP iqs a peer may send a component besides events: XEP-0199 ping and
//! XEP-0030 disco#info; any other request gets `service-unavailable` so the sender is never left
//! waiting. Results and errors addressed to us are not requests and get nothing.
//!
//! A router may also ask which events it must send: disco#info on the node [`CHAINS_NODE`]
//! (or `CHAINS_NODE/NODENAME` for another IM node) lists one feature per (event, packet type)
//! with a non-empty chain, [`chain_feature`], and, in an XEP-0128 form ([`LIMITS_FORM`]), the
//! limits a stanza must fit on the router stream, so that the router can refuse a stanza the
//! gateway would close that stream for. After a reload the gateway tells the routers that asked
//! with [`write_chains_changed`], so they ask again.

use super::event::Reply;
use super::NS;
use crate::policy::config::Limits;
use crate::policy::matcher::{Advertised, CompiledPolicy, NodeId};
use crate::wire::write::{close, stanza_error, text, Element};
use crate::wire::Stanza;
use bytes::BytesMut;

const PING_NS: &str = "urn:xmpp:ping";
const DISCO_INFO_NS: &str = "http://jabber.org/protocol/disco#info";

/// What was done with a stanza that is not an event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ServiceOutcome {
    /// An XEP-0199 ping: answered with an empty result.
    Ping,
    /// A plain disco#info query: answered with the gateway's identity and features.
    DiscoInfo,
    /// disco#info on [`CHAINS_NODE`]: the router learnt which events to send.
    Chains,
    /// A request we do not serve, answered with `service-unavailable`.
    Refused,
    /// Not a request (a result, an error, a message, a presence): nothing to answer.
    Ignored,
}

/// The disco#info node on which a router learns which events it must send.
pub const CHAINS_NODE: &str = "urn:palisade:compliance:0#chains";

/// The `FORM_TYPE` of the chains answer's form: `max_stanza_bytes`, `max_depth` and
/// `max_attributes` of the router stream (`[limits]`), which every event must fit.
pub const LIMITS_FORM: &str = "urn:palisade:compliance:0#limits";

/// What a router stream's chains answer is made of.
#[derive(Copy, Clone)]
pub struct ChainsAnswer<'a> {
    /// The policy in force.
    pub policy: &'a CompiledPolicy,
    /// The router's own IM node, used when the query names none.
    pub own: NodeId,
    /// The limits every stanza on the router stream must fit.
    pub limits: &'a Limits,
}

/// The feature that says a router must send `a`:
/// `urn:palisade:compliance:0#chain/wait/es_OUT/message`, or `.../notify/onAfterJoin` (TC
/// events have no packet type). `notify`: the verdict is always an immediate `pass`, so the
/// router sends the event and goes on without waiting.
pub fn chain_feature(a: &Advertised) -> String {
    let mode = if a.wait { "wait" } else { "notify" };
    match a.packet {
        Some(p) => format!("{NS}#chain/{mode}/{}/{p}", a.event),
        None => format!("{NS}#chain/{mode}/{}", a.event),
    }
}

/// Answers `stanza` (not an event) into `out` as the component `our_name`.
pub fn answer(out: &mut BytesMut, our_name: &str, stanza: &Stanza) -> ServiceOutcome {
    answer_router(out, our_name, stanza, None)
}

/// As [`answer`], for a router stream: also answers disco#info on [`CHAINS_NODE`] from
/// `chains`.
pub fn answer_router(
    out: &mut BytesMut,
    our_name: &str,
    stanza: &Stanza,
    chains: Option<ChainsAnswer<'_>>,
) -> ServiceOutcome {
    let is_request =
        stanza.name() == b"iq" && matches!(stanza.raw(stanza.attrs().type_), Some(b"get" | b"set"));
    let Some(reply) = Reply::of(stanza).filter(|_| is_request) else {
        return ServiceOutcome::Ignored;
    };
    let get = stanza.raw(stanza.attrs().type_) == Some(b"get");
    let payload = stanza.children().next();
    let payload_ns = payload.and_then(|c| stanza.element_attr(c, "xmlns"));
    let disco_node = payload.and_then(|c| stanza.element_attr(c, "node"));
    if let (true, Some(DISCO_INFO_NS), Some(node), Some(chains)) =
        (get, payload_ns.as_deref(), disco_node.as_deref(), chains)
    {
        let policy = chains.policy;
        let named = match node.strip_prefix(CHAINS_NODE) {
            Some("") => Some(chains.own),
            Some(rest) => rest.strip_prefix('/').map(|n| policy.node_id(n.as_bytes())),
            None => None,
        };
        if let Some(im_node) = named {
            let body = result(out, our_name, &reply).start_content();
            let q = Element::open(body, "query")
                .attr("xmlns", DISCO_INFO_NS)
                .attr("node", node)
                .start_content();
            Element::open(q, "feature").attr("var", NS).empty();
            for a in policy.advertised(im_node) {
                Element::open(q, "feature")
                    .attr("var", &chain_feature(&a))
                    .empty();
            }
            write_limits(q, chains.limits);
            close(q, "query");
            close(body, "iq");
            return ServiceOutcome::Chains;
        }
    }
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

/// The [`LIMITS_FORM`] form (XEP-0004 `result`, XEP-0128 on a disco#info answer).
fn write_limits(out: &mut BytesMut, limits: &Limits) {
    let x = Element::open(out, "x")
        .attr("xmlns", "jabber:x:data")
        .attr("type", "result")
        .start_content();
    let fields = [
        ("max_stanza_bytes", limits.max_stanza_bytes),
        ("max_depth", limits.max_depth),
        ("max_attributes", limits.max_attributes),
    ];
    let field = |x: &mut BytesMut, var: &str, kind: Option<&str>, value: &str| {
        let f = Element::open(x, "field")
            .attr("var", var)
            .attr_opt("type", kind)
            .start_content();
        let v = Element::open(f, "value").start_content();
        text(v, value);
        close(v, "value");
        close(f, "field");
    };
    field(x, "FORM_TYPE", Some("hidden"), LIMITS_FORM);
    for (var, value) in fields {
        field(x, var, None, &value.to_string());
    }
    close(x, "x");
}

fn result<'o>(out: &'o mut BytesMut, our_name: &str, reply: &Reply) -> Element<'o> {
    Element::open(out, "iq")
        .attr("type", "result")
        .attr_raw("id", &reply.id, reply.id_quote)
        .attr("from", our_name)
        .attr_raw("to", &reply.to, reply.to_quote)
}

/// Appends the notice that tells a router the chains changed (a reload): a `<message>` holding
/// `<chains xmlns='urn:palisade:compliance:0' node='...'/>`, after which it asks again.
pub fn write_chains_changed(out: &mut BytesMut, our_name: &str, to: &str, node: &str) {
    let body = Element::open(out, "message")
        .attr("from", our_name)
        .attr("to", to)
        .start_content();
    Element::open(body, "chains")
        .attr("xmlns", NS)
        .attr("node", node)
        .empty();
    close(body, "message");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::config::load_str;

    fn policy() -> CompiledPolicy {
        let toml = r#"
[gateway]
name = "palisade.localhost"
[[router]]
name = "localhost"
secret = "s"
node = "imp1"
[[profile]]
name = "Wall"
events = [{ event = "es_OUT", packet = "message" }, { event = "onAfterJoin", fire_and_forget = true, handling = "pass" }]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = 1
password = "p"
profile = "Wall"
nodes = ["imp1"]
[routing]
priority = ["Wall"]
"#;
        match load_str(toml, "t.toml") {
            Ok(l) => CompiledPolicy::compile(&l.config),
            Err(d) => panic!(
                "{}",
                d.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    fn ask(node: &str) -> (ServiceOutcome, String) {
        let p = policy();
        let own = p.node_id(b"localhost");
        let q = format!(
            "<iq type='get' id='d1' from='localhost' to='palisade.localhost'><query xmlns='{DISCO_INFO_NS}' node='{node}'/></iq>"
        );
        let stanza = crate::wire::test_stanza(q.as_bytes());
        let mut out = BytesMut::new();
        let limits = Limits {
            max_stanza_bytes: 100_000,
            max_depth: 12,
            ..Limits::default()
        };
        let chains = ChainsAnswer {
            policy: &p,
            own,
            limits: &limits,
        };
        let outcome = answer_router(&mut out, "palisade.localhost", &stanza, Some(chains));
        (outcome, String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn chains_node_lists_what_the_router_must_send() {
        let (outcome, text) = ask(CHAINS_NODE);
        assert_eq!(outcome, ServiceOutcome::Chains);
        assert!(text.contains(&format!("node='{CHAINS_NODE}'")), "{text}");
        assert!(
            text.contains("var='urn:palisade:compliance:0#chain/wait/es_OUT/message'"),
            "{text}"
        );
        assert!(
            text.contains("var='urn:palisade:compliance:0#chain/notify/onAfterJoin'"),
            "{text}"
        );
        assert!(!text.contains("es_OUT/presence"), "{text}");
        // Another node, named in the query, has its own chains: none here.
        let (_, other) = ask(&format!("{CHAINS_NODE}/imp9"));
        assert!(!other.contains("#chain/"), "{other}");
        let (_, same) = ask(&format!("{CHAINS_NODE}/imp1"));
        assert!(same.contains("es_OUT/message"), "{same}");
    }

    #[test]
    fn chains_answer_carries_the_stream_limits_in_a_form() {
        let (_, text) = ask(CHAINS_NODE);
        let form = format!(
            "<x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>{LIMITS_FORM}</value></field>\
             <field var='max_stanza_bytes'><value>100000</value></field>\
             <field var='max_depth'><value>12</value></field>\
             <field var='max_attributes'><value>64</value></field></x></query>"
        );
        assert!(text.contains(&form), "{text}");
        // The answer is itself a stanza the framer reads back.
        let stanza = crate::wire::test_stanza(text.as_bytes());
        assert_eq!(stanza.name(), b"iq");
        // A plain disco#info has no form.
        let (_, plain) = ask("http://example.com/other");
        assert!(!plain.contains("jabber:x:data"), "{plain}");
    }

    #[test]
    fn plain_disco_and_other_nodes_are_unchanged() {
        let (outcome, text) = ask("http://example.com/other");
        assert_eq!(outcome, ServiceOutcome::DiscoInfo);
        assert!(!text.contains("#chain/"), "{text}");
    }

    #[test]
    fn the_changed_notice_names_the_node() {
        let mut out = BytesMut::new();
        write_chains_changed(&mut out, "palisade.localhost", "localhost", CHAINS_NODE);
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            format!("<message from='palisade.localhost' to='localhost'><chains xmlns='urn:palisade:compliance:0' node='{CHAINS_NODE}'/></message>")
        );
    }
}
