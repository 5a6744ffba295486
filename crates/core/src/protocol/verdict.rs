//! Writing the router's answer (docs/protocol.md §3): a `<verdict/>` in an iq result, or
//! `bad-request` for an event that could not be read.
//!
//! Splices the router's own `id` and `from`, a modified stanza and a server's `<error/>`
//! unchanged; generates only the verdict element and the gateway's own errors.

use super::event::{Reply, ReplyTo};
#[cfg(test)]
use super::NS;
use crate::wire::write::{close, stanza_error, text, Element, STANZAS_ERROR_NS};
use crate::wire::xml::escape_attr_into;
use bytes::{BufMut, Bytes, BytesMut};

/// Why an event bounced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BounceCause {
    /// The compliance server's own `<error/>`.
    ServerError(Bytes),
    /// No answer within the event timer.
    Timeout,
    /// No server could take the event (none routable, queue full, shutting down).
    Unavailable,
    /// The event's record could not be kept: the spool is full (fail closed).
    SpoolFull,
}

/// The verdict of a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; use the stanza instead of the original when there is one.
    Pass(Option<Bytes>),
    /// The server took the stanza over: the router must not deliver it.
    Handle,
    /// The originator gets an error back, for this cause, and the stanza goes nowhere.
    Bounce(BounceCause),
    /// The stanza is discarded without a word to its originator.
    Drop,
}

impl Verdict {
    /// The `action` attribute of the verdict: `pass`, `handle`, `bounce` or `drop`.
    pub fn action(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Handle => "handle",
            Verdict::Bounce(_) => "bounce",
            Verdict::Drop => "drop",
        }
    }
}

/// Which step a verdict came from, for the router's (and the auditor's) benefit.
#[derive(Copy, Clone, Debug)]
pub struct Origin<'a> {
    /// The profile of the deciding step.
    pub profile: &'a str,
    /// The server that answered, when one did.
    pub server: Option<&'a str>,
}

/// Appends `<iq type='result'>` with the verdict, from `from` (the gateway) to the router.
///
/// Written as runs of constant bytes between the values, each run one append; `from`, the
/// profile and the server are escaped only when they need it (no reservation ahead, as in
/// [`super::request::write_request`]).
pub fn write_verdict(
    out: &mut BytesMut,
    from: &str,
    reply: ReplyTo<'_>,
    verdict: &Verdict,
    origin: Option<Origin>,
) {
    let origin = origin.filter(|_| !matches!(verdict, Verdict::Pass(_)));
    out.put_slice(b"<iq type='result' id=");
    quoted(out, reply.id, reply.id_quote);
    out.put_slice(b" from='");
    escape_attr_into(out, from.as_bytes());
    out.put_slice(b"' to=");
    quoted(out, reply.to, reply.to_quote);
    out.put_slice(VERDICT_START);
    out.put_slice(verdict.action().as_bytes());
    out.put_u8(b'\'');
    if let Some(o) = origin {
        out.put_slice(b" profile='");
        escape_attr_into(out, o.profile.as_bytes());
        out.put_u8(b'\'');
        if let Some(server) = o.server {
            out.put_slice(b" server='");
            escape_attr_into(out, server.as_bytes());
            out.put_u8(b'\'');
        }
    }
    match verdict {
        Verdict::Pass(None) | Verdict::Handle | Verdict::Drop => out.put_slice(b"/></iq>"),
        Verdict::Pass(Some(stanza)) => {
            out.put_u8(b'>');
            out.put_slice(stanza);
            out.put_slice(b"</verdict></iq>");
        }
        Verdict::Bounce(cause) => {
            out.put_u8(b'>');
            bounce_error(out, cause, origin);
            out.put_slice(b"</verdict></iq>");
        }
    }
}

/// The `<error/>` of a bounce verdict: the compliance server's own (with the step named), or
/// the gateway's for a timeout, no server, or a full spool.
fn bounce_error(out: &mut BytesMut, cause: &BounceCause, origin: Option<Origin>) {
    let note = origin.map(|o| match o.server {
        Some(s) => format!("blocked by compliance profile {} on server {s}", o.profile),
        None => format!("blocked by compliance profile {}", o.profile),
    });
    match cause {
        BounceCause::ServerError(error) => splice_error_with_text(out, error, note.as_deref()),
        BounceCause::Timeout => {
            let note = note.map(|n| format!("{n}: no answer in time"));
            stanza_error(out, "wait", "remote-server-timeout", note.as_deref())
        }
        BounceCause::Unavailable => {
            let note = note.map(|n| format!("{n}: no compliance server available"));
            stanza_error(out, "cancel", "service-unavailable", note.as_deref())
        }
        BounceCause::SpoolFull => {
            let note = note.map(|n| format!("{n}: the spool is full, no record kept"));
            stanza_error(out, "wait", "resource-constraint", note.as_deref())
        }
    }
}

/// A raw value spliced between the quotes it was written with.
fn quoted(out: &mut BytesMut, raw: &[u8], quote: u8) {
    out.put_u8(quote);
    out.put_slice(raw);
    out.put_u8(quote);
}

/// From the end of the iq's start tag to the verdict's action (the namespace is [`NS`]; a
/// test checks that they agree).
const VERDICT_START: &[u8] = b"><verdict xmlns='urn:palisade:compliance:0' action='";

/// Splices a server's `<error/>`; when it has no `<text/>`, ours goes in before its end tag.
fn splice_error_with_text(out: &mut BytesMut, error: &[u8], note: Option<&str>) {
    let has_text = memchr::memmem::find(error, b"<text").is_some();
    let Some(note) = note.filter(|_| !has_text) else {
        out.put_slice(error);
        return;
    };
    let (open, rest): (&[u8], &[u8]) = if error.ends_with(b"/>") {
        (&error[..error.len() - 2], b"</error>")
    } else {
        let close_at = memchr::memrchr(b'<', error).unwrap_or(error.len());
        (&error[..close_at], &error[close_at..])
    };
    out.put_slice(open);
    if error.ends_with(b"/>") {
        out.put_u8(b'>');
    }
    let t = Element::open(out, "text")
        .attr("xmlns", STANZAS_ERROR_NS)
        .start_content();
    text(t, note);
    close(t, "text");
    out.put_slice(rest);
}

/// Appends `<iq type='error'>` with `bad-request` and a text saying what is wrong.
pub fn write_bad_request(out: &mut BytesMut, from: &str, reply: &Reply, reason: &str) {
    write_iq_error(out, from, reply, ("modify", "bad-request"), reason);
}

/// Appends `<iq type='error'>` with `forbidden` (type `auth`): an event from a sender a router
/// stream does not trust (see [`super::event::is_host_jid`]).
pub fn write_forbidden(out: &mut BytesMut, from: &str, reply: &Reply, reason: &str) {
    write_iq_error(out, from, reply, ("auth", "forbidden"), reason);
}

/// The iq error answering `reply` with `(error type, condition)` and a text.
fn write_iq_error(
    out: &mut BytesMut,
    from: &str,
    reply: &Reply,
    (kind, condition): (&str, &str),
    reason: &str,
) {
    let body = Element::open(out, "iq")
        .attr("type", "error")
        .attr_raw("id", &reply.id, reply.id_quote)
        .attr("from", from)
        .attr_raw("to", &reply.to, reply.to_quote)
        .start_content();
    stanza_error(body, kind, condition, Some(reason));
    close(body, "iq");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::test_values::tricky;
    use proptest::prelude::*;

    /// The writer as it was before it appended constant runs whole: the reference its output
    /// must match byte for byte.
    /// Appends `<iq type='result'>` with the verdict, from `from` (the gateway) to the router.
    fn old_write_verdict(
        out: &mut BytesMut,
        from: &str,
        reply: &Reply,
        verdict: &Verdict,
        origin: Option<Origin>,
    ) {
        let body = Element::open(out, "iq")
            .attr("type", "result")
            .attr_raw("id", &reply.id, reply.id_quote)
            .attr("from", from)
            .attr_raw("to", &reply.to, reply.to_quote)
            .start_content();
        let mut v = Element::open(body, "verdict")
            .attr("xmlns", NS)
            .attr("action", verdict.action());
        if let (Some(o), false) = (origin, matches!(verdict, Verdict::Pass(_))) {
            v = v.attr("profile", o.profile).attr_opt("server", o.server);
        }
        match verdict {
            Verdict::Pass(None) | Verdict::Handle | Verdict::Drop => v.empty(),
            Verdict::Pass(Some(stanza)) => {
                let inner = v.start_content();
                inner.put_slice(stanza);
                close(inner, "verdict");
            }
            Verdict::Bounce(cause) => {
                let inner = v.start_content();
                bounce_error(inner, cause, origin);
                close(inner, "verdict");
            }
        }
        close(body, "iq");
    }

    #[test]
    fn the_verdict_start_names_the_protocol_namespace() {
        assert_eq!(
            VERDICT_START,
            format!("><verdict xmlns='{NS}' action='").as_bytes()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Every verdict, with and without an origin, is byte for byte what the element
        /// builder wrote before, for values with quotes, `<`, `&` and non-ASCII characters.
        #[test]
        fn verdicts_are_byte_identical_to_the_element_builders(
            from in tricky(),
            profile in tricky(),
            server in proptest::option::of(tricky()),
            with_origin in any::<bool>(),
            id in tricky(),
            to in tricky(),
            double in any::<bool>(),
            kind in 0usize..9,
            inner in tricky(),
        ) {
            let quote = if double { b'"' } else { b'\'' };
            let reply = Reply {
                to: Bytes::from(to.into_bytes()),
                to_quote: quote,
                id: Bytes::from(id.into_bytes()),
                id_quote: b'\'',
            };
            let verdict = match kind {
                0 => Verdict::Pass(None),
                1 => Verdict::Pass(Some(Bytes::from(inner.into_bytes()))),
                2 => Verdict::Handle,
                3 => Verdict::Drop,
                4 => Verdict::Bounce(BounceCause::Timeout),
                5 => Verdict::Bounce(BounceCause::Unavailable),
                6 => Verdict::Bounce(BounceCause::SpoolFull),
                7 => Verdict::Bounce(BounceCause::ServerError(Bytes::from_static(b"<error type='auth'/>"))),
                _ => Verdict::Bounce(BounceCause::ServerError(Bytes::from(format!("<error type='cancel'><x/>{inner}</error>").into_bytes()))),
            };
            let origin = with_origin.then(|| Origin { profile: &profile, server: server.as_deref() });
            let mut new = BytesMut::from(&b"before"[..]);
            write_verdict(&mut new, &from, reply.to_ref(), &verdict, origin);
            let mut old = BytesMut::from(&b"before"[..]);
            old_write_verdict(&mut old, &from, &reply, &verdict, origin);
            prop_assert_eq!(&new[..], &old[..]);
        }
    }

    fn reply() -> Reply {
        Reply {
            to: Bytes::from_static(b"imp1.example.com"),
            to_quote: b'\'',
            id: Bytes::from_static(b"R\"1"),
            id_quote: b'\'',
        }
    }

    #[test]
    fn forbidden_names_the_condition() {
        let mut out = BytesMut::new();
        write_forbidden(
            &mut out,
            "palisade.example.com",
            &reply(),
            "only the router",
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(
            text.starts_with(
                "<iq type='error' id='R\"1' from='palisade.example.com' to='imp1.example.com'>"
            ) && text.contains("type='auth'")
                && text.contains("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
                && text.contains("only the router"),
            "{text}"
        );
    }

    fn verdict(v: &Verdict, origin: Option<Origin>) -> String {
        let mut out = BytesMut::new();
        write_verdict(
            &mut out,
            "palisade.example.com",
            reply().to_ref(),
            v,
            origin,
        );
        String::from_utf8(out.to_vec()).unwrap()
    }

    const ORIGIN: Origin = Origin {
        profile: "EthicalWall",
        server: Some("cs1"),
    };

    #[test]
    fn pass_matches_the_protocol_example() {
        assert_eq!(
            verdict(&Verdict::Pass(None), None),
            "<iq type='result' id='R\"1' from='palisade.example.com' to='imp1.example.com'>\
             <verdict xmlns='urn:palisade:compliance:0' action='pass'/></iq>"
        );
        let modified = verdict(
            &Verdict::Pass(Some(Bytes::from_static(
                b"<message><body>x</body></message>",
            ))),
            None,
        );
        assert!(modified.contains("action='pass'><message><body>x</body></message></verdict></iq>"));
    }

    #[test]
    fn bounces_carry_an_error_with_origin_text() {
        let t = verdict(&Verdict::Bounce(BounceCause::Timeout), Some(ORIGIN));
        assert!(t.contains("action='bounce' profile='EthicalWall' server='cs1'><error type='wait'><remote-server-timeout "), "{t}");
        assert!(t.contains(
            "blocked by compliance profile EthicalWall on server cs1: no answer in time</text>"
        ));
        let t = verdict(
            &Verdict::Bounce(BounceCause::Unavailable),
            Some(Origin {
                profile: "P",
                server: None,
            }),
        );
        assert!(
            t.contains("<error type='cancel'><service-unavailable "),
            "{t}"
        );
        let server_error = Bytes::from_static(b"<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>");
        let t = verdict(
            &Verdict::Bounce(BounceCause::ServerError(server_error)),
            Some(ORIGIN),
        );
        assert!(t.contains("<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "), "{t}");
        assert!(t.ends_with("</text></error></verdict></iq>"), "{t}");
        let empty = Bytes::from_static(b"<error type='auth'/>");
        let t = verdict(
            &Verdict::Bounce(BounceCause::ServerError(empty)),
            Some(ORIGIN),
        );
        assert!(t.contains("<error type='auth'><text "), "{t}");
        let with_text = Bytes::from_static(b"<error type='cancel'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>wall</text></error>");
        let t = verdict(
            &Verdict::Bounce(BounceCause::ServerError(with_text.clone())),
            Some(ORIGIN),
        );
        assert!(t.contains(std::str::from_utf8(&with_text).unwrap()));
    }

    #[test]
    fn handle_drop_and_bad_request() {
        assert!(verdict(&Verdict::Handle, Some(ORIGIN))
            .contains("action='handle' profile='EthicalWall' server='cs1'/>"));
        assert!(verdict(&Verdict::Drop, Some(ORIGIN))
            .contains("action='drop' profile='EthicalWall' server='cs1'/>"));
        let mut out = BytesMut::new();
        write_bad_request(&mut out, "gw", &reply(), "unknown event name 'x'");
        let t = std::str::from_utf8(&out).unwrap();
        assert!(t.starts_with("<iq type='error' id='R\"1' from='gw' to='imp1.example.com'><error type='modify'><bad-request "), "{t}");
        assert!(t.contains(">unknown event name 'x'</text>"));
    }
}
