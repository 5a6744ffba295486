//! Reading what the gateway answers a router (docs/protocol.md §3): a verdict, `bad-request`, or
//! some other error, and which event it is for.
//!
//! A zero-copy look at the framed stanza: its `type`, its `id`, the `<verdict/>` child's
//! `action`, and whether a pass holds a replacement stanza. Must not decide whether the id is
//! expected (see `track.rs`).

use super::id::{parse_id, EventRef};
use crate::protocol::NS;
use crate::wire::Stanza;

/// A verdict's action.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    /// A pass holding a modified stanza.
    PassModified,
    Handle,
    Bounce,
    Drop,
}

/// What one stanza from the gateway is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Reading {
    Verdict {
        id: EventRef,
        action: Action,
    },
    /// `<iq type='error'>` with `bad-request`: the gateway could not read the event.
    BadRequest {
        id: EventRef,
    },
    /// Any other error iq for one of our ids.
    Error {
        id: EventRef,
    },
    /// A result or error that is not a well-formed answer; `id` when it names one of ours.
    Malformed {
        id: Option<EventRef>,
        what: &'static str,
    },
    /// A request to us (a ping): answer it like any component.
    Request,
    /// Anything else (a message, a presence, a result for an id that is not ours).
    Other,
}

/// Reads one stanza.
pub fn read(stanza: &Stanza) -> Reading {
    if stanza.name() != b"iq" {
        return Reading::Other;
    }
    let type_ = stanza.raw(stanza.attrs().type_);
    if matches!(type_, Some(b"get" | b"set")) {
        return Reading::Request;
    }
    let id = stanza.raw(stanza.attrs().id).and_then(parse_id);
    let Some(id) = id else {
        return match type_ {
            Some(b"result" | b"error") => Reading::Malformed {
                id: None,
                what: "an answer whose id is not one of ours",
            },
            _ => Reading::Other,
        };
    };
    match type_ {
        Some(b"result") => {
            let verdict = stanza.children().find(|c| {
                stanza.element_local_name(c) == b"verdict"
                    && stanza.element_attr(c, "xmlns").as_deref() == Some(NS)
            });
            let Some(v) = verdict else {
                return Reading::Malformed {
                    id: Some(id),
                    what: "a result without a <verdict/>",
                };
            };
            let action = match stanza.element_attr(v, "action").as_deref() {
                Some("pass") if stanza.children_of(v).next().is_some() => Action::PassModified,
                Some("pass") => Action::Pass,
                Some("handle") => Action::Handle,
                Some("bounce") => Action::Bounce,
                Some("drop") => Action::Drop,
                _ => {
                    return Reading::Malformed {
                        id: Some(id),
                        what: "a verdict without a known action",
                    }
                }
            };
            Reading::Verdict { id, action }
        }
        Some(b"error") => {
            let bad_request = stanza
                .children()
                .filter(|c| stanza.element_local_name(c) == b"error")
                .flat_map(|e| stanza.children_of(e))
                .any(|c| stanza.element_local_name(c) == b"bad-request");
            if bad_request {
                Reading::BadRequest { id }
            } else {
                Reading::Error { id }
            }
        }
        _ => Reading::Malformed {
            id: Some(id),
            what: "an iq without a type",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::verdict::Origin;
    use crate::protocol::{write_bad_request, write_verdict, BounceCause, Reply, Verdict};
    use bytes::{Bytes, BytesMut};

    fn frame(bytes: &[u8]) -> Stanza {
        crate::wire::test_stanza(bytes)
    }

    const ID: EventRef = EventRef { conn: 2, seq: 0x2a };

    fn reply() -> Reply {
        Reply {
            to: Bytes::from_static(b"imp1.example.com"),
            to_quote: b'\'',
            id: Bytes::from_static(b"e2.2a"),
            id_quote: b'\'',
        }
    }

    fn gateway_says(v: Verdict) -> Reading {
        let mut out = BytesMut::new();
        let origin = Origin {
            profile: "EthicalWall",
            server: Some("cs1"),
        };
        write_verdict(
            &mut out,
            "palisade.example.com",
            reply().to_ref(),
            &v,
            Some(origin),
        );
        read(&frame(&out))
    }

    #[test]
    fn reads_every_verdict_the_gateway_writes() {
        let v = |action| Reading::Verdict { id: ID, action };
        assert_eq!(gateway_says(Verdict::Pass(None)), v(Action::Pass));
        assert_eq!(
            gateway_says(Verdict::Pass(Some(Bytes::from_static(
                b"<message to='b@x'/>"
            )))),
            v(Action::PassModified)
        );
        assert_eq!(gateway_says(Verdict::Handle), v(Action::Handle));
        assert_eq!(gateway_says(Verdict::Drop), v(Action::Drop));
        assert_eq!(
            gateway_says(Verdict::Bounce(BounceCause::Timeout)),
            v(Action::Bounce)
        );
        let mut out = BytesMut::new();
        write_bad_request(&mut out, "palisade.example.com", &reply(), "unknown event");
        assert_eq!(read(&frame(&out)), Reading::BadRequest { id: ID });
    }

    #[test]
    fn everything_else() {
        let r = |x: &str| read(&frame(x.as_bytes()));
        assert_eq!(
            r("<iq type='error' id='e2.2a' from='g' to='r'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"),
            Reading::Error { id: ID }
        );
        assert_eq!(
            r("<iq type='result' id='e2.2a' from='g' to='r'/>"),
            Reading::Malformed {
                id: Some(ID),
                what: "a result without a <verdict/>"
            }
        );
        assert!(matches!(
            r("<iq type='result' id='e2.2a' from='g' to='r'><verdict xmlns='urn:palisade:compliance:0' action='maybe'/></iq>"),
            Reading::Malformed { id: Some(ID), .. }
        ));
        assert!(matches!(
            r("<iq type='result' id='R1' from='g' to='r'/>"),
            Reading::Malformed { id: None, .. }
        ));
        assert_eq!(
            r("<iq type='get' id='p1' from='g' to='r'><ping xmlns='urn:xmpp:ping'/></iq>"),
            Reading::Request
        );
        assert_eq!(r("<message from='g' to='r'/>"), Reading::Other);
    }
}
