//! Reading what the gateway sends a compliance server (docs/protocol.md §4): a wait-mode
//! `<iq type='set'><event mode='wait' ...>STANZA</event></iq>` or a fire-and-forget
//! `<message><event mode='notify' ...>STANZA</event></message>`.
//!
//! A zero-copy view over the framed stanza; attributes are read only when asked, so a plain
//! PASS costs one scan of the root's children. The gateway side writes these with
//! [`crate::protocol::write_request`]; this is the other end. Must not decide or answer.

use crate::policy::EventId;
use crate::protocol::NS;
use crate::wire::{ElementRef, Stanza};
use bytes::Bytes;
use std::borrow::Cow;

/// Wait (an answer is expected) or notify (never answered), from the outer element.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Wait,
    Notify,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Wait => "wait",
            Kind::Notify => "notify",
        }
    }
}

/// One request. See the module documentation.
pub struct Request<'s> {
    pub stanza: &'s Stanza,
    pub kind: Kind,
    event: &'s ElementRef,
    inner: Option<&'s ElementRef>,
}

impl<'s> Request<'s> {
    /// The request in `stanza`, or `None` when it is something else (a ping, a result...).
    pub fn read(stanza: &'s Stanza) -> Option<Request<'s>> {
        let kind = match stanza.name() {
            b"iq" if stanza.raw(stanza.attrs().type_) == Some(b"set") => Kind::Wait,
            b"message" => Kind::Notify,
            _ => return None,
        };
        let event = stanza.children().find(|c| {
            stanza.element_local_name(c) == b"event"
                && stanza.element_attr(c, "xmlns").as_deref() == Some(NS)
        })?;
        let inner = stanza.children_of(event).next();
        Some(Request {
            stanza,
            kind,
            event,
            inner,
        })
    }

    /// An attribute of `<event/>` (name, packet, profile, handling, mode, node, key, stamp).
    pub fn attr(&self, name: &str) -> Option<Cow<'s, str>> {
        self.stanza.element_attr(self.event, name)
    }

    /// The catalog event, when the name is one.
    pub fn event(&self) -> Option<EventId> {
        self.attr("name")
            .and_then(|n| EventId::lookup(n.as_bytes()))
    }

    /// The request's raw `id` and its quote, to splice into the answer.
    pub fn id_raw(&self) -> Option<(&'s [u8], u8)> {
        let a = self.stanza.attrs().id?;
        Some((&self.stanza.bytes()[a.value.range()], a.quote))
    }

    /// The request's raw `from` (the gateway) and its quote: the answer's `to`.
    pub fn from_raw(&self) -> Option<(&'s [u8], u8)> {
        let a = self.stanza.attrs().from?;
        Some((&self.stanza.bytes()[a.value.range()], a.quote))
    }

    /// The embedded stanza's bytes, exactly as the gateway forwarded them.
    pub fn inner(&self) -> Option<Bytes> {
        self.inner.map(|e| self.stanza.slice(e.span))
    }

    /// The embedded stanza's local name (`message`, `presence`, `iq`).
    pub fn inner_name(&self) -> Option<&'s [u8]> {
        self.inner.map(|e| self.stanza.element_local_name(e))
    }

    /// An attribute of the embedded stanza (its `from`, `to`, `type`).
    pub fn inner_attr(&self, name: &str) -> Option<Cow<'s, str>> {
        self.inner.and_then(|e| self.stanza.element_attr(e, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Handling, PacketType};
    use crate::protocol::{write_request, Mode, RequestFields, RequestId};
    use bytes::BytesMut;

    fn frame(bytes: &[u8]) -> Stanza {
        crate::wire::test_stanza(bytes)
    }

    fn request(mode: Mode) -> Stanza {
        let mut out = BytesMut::new();
        let fields = RequestFields {
            id: RequestId {
                shard: 1,
                slot: 2,
                generation: 3,
            },
            event: EventId::lookup(b"es_OUT").unwrap(),
            packet: Some(PacketType::Message),
            profile: "EthicalWall",
            handling: Handling::Bounce,
            mode,
            node: "imp1",
            key: "a@x|b@x",
            stamp: "2026-11-21T10:00:00.123Z",
            record: "",
            replay: false,
        };
        write_request(
            &mut out,
            "palisade.example.com",
            "op-cs1.palisade-example-com",
            &fields,
            b"<message xmlns='jabber:client' from='a@x/r' to='b@x'><body>hi &amp; bye</body></message>",
        );
        frame(&out)
    }

    #[test]
    fn reads_what_the_gateway_writes() {
        let s = request(Mode::Wait);
        let r = Request::read(&s).expect("request");
        assert_eq!(r.kind, Kind::Wait);
        assert_eq!(r.event().map(|e| e.name()), Some("es_OUT"));
        assert_eq!(r.attr("profile").as_deref(), Some("EthicalWall"));
        assert_eq!(r.attr("key").as_deref(), Some("a@x|b@x"));
        assert_eq!(r.attr("mode").as_deref(), Some("wait"));
        assert_eq!(r.id_raw(), Some((&b"g1.2.3"[..], b'\'')));
        assert_eq!(
            r.from_raw().map(|f| f.0),
            Some(&b"palisade.example.com"[..])
        );
        assert_eq!(r.inner_name(), Some(&b"message"[..]));
        assert_eq!(r.inner_attr("to").as_deref(), Some("b@x"));
        assert!(r.inner().unwrap().ends_with(b"</body></message>"));
        let s = request(Mode::Notify);
        let r = Request::read(&s).expect("notification");
        assert_eq!(r.kind, Kind::Notify);
        assert_eq!(r.attr("mode").as_deref(), Some("notify"));
    }

    #[test]
    fn other_stanzas_are_not_requests() {
        for xml in [
            &b"<iq type='get' id='p' from='g' to='c'><ping xmlns='urn:xmpp:ping'/></iq>"[..],
            b"<iq type='set' id='p' from='g' to='c'><event name='es_OUT'/></iq>",
            b"<presence from='g' to='c'/>",
            b"<iq type='result' id='x' from='g' to='c'/>",
        ] {
            assert!(
                Request::read(&frame(xml)).is_none(),
                "{}",
                String::from_utf8_lossy(xml)
            );
        }
    }
}
