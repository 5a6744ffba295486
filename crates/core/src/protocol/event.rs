//! Reading a router's event (docs/protocol.md §2): `<iq type='set'><event name=...>STANZA</event></iq>`
//! into an [`InboundEvent`] that can cross to its owner shard without copying the stanza again.
//!
//! The event's bytes (its conversation key, inner stanza, the reply's `to` and `id`) are copied
//! once out of the connection's receive buffer into one buffer of their own ([`EventBytes`]):
//! an event may wait minutes for a server, and a view would keep the whole receive buffer it
//! came from alive for as long. The copy is bounded by the largest stanza a stream accepts. The
//! buffer is plain bytes with offsets (no shared header, no separate key string), and a caller
//! can hand in the buffer of an event that has left ([`parse_event_into`]).
//!
//! Decides nothing about routing; an event it cannot read is a [`BadEvent`] that says what is
//! wrong, for the `bad-request` answer.

use super::NS;
use crate::policy::{conversation_key_into, EventId, KeyError, NodeId, PacketType};
use crate::wire::{AttrSpan, Stanza};
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;

/// Where and how to answer a router's iq: its raw `from` (our `to`) and `id`, spliced back
/// unchanged with their original quotes.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The router's `from`, raw (still escaped): the `to` of our answer.
    pub to: Bytes,
    /// The quote character `to` was written with.
    pub to_quote: u8,
    /// The router's `id`, raw: the `id` of our answer.
    pub id: Bytes,
    /// The quote character `id` was written with.
    pub id_quote: u8,
}

impl Reply {
    /// The reply address and id of any stanza, if it has both.
    pub fn of(stanza: &Stanza) -> Option<Reply> {
        let take = |a: Option<AttrSpan>| a.map(|a| (stanza.slice(a.value), a.quote));
        let (to, to_quote) = take(stanza.attrs().from)?;
        let (id, id_quote) = take(stanza.attrs().id)?;
        Some(Reply {
            to,
            to_quote,
            id,
            id_quote,
        })
    }
}

/// Whether an event's `from` is a host JID (a domain: no localpart, no resource), the only
/// sender a router stream accepts events from. The stream already checked the domain; this
/// keeps a router's users (`alice@host/res`, `host/res`) from injecting or probing. A value
/// with an entity reference is refused too: a real host name never needs one.
pub fn is_host_jid(from: &[u8]) -> bool {
    !from.is_empty() && !from.iter().any(|b| matches!(b, b'@' | b'/' | b'&'))
}

/// The reply address and id of an event, borrowed from where they are kept.
#[derive(Copy, Clone, Debug)]
pub struct ReplyTo<'a> {
    /// The router's `from`, raw (still escaped): the `to` of our answer.
    pub to: &'a [u8],
    /// The quote character `to` was written with.
    pub to_quote: u8,
    /// The router's `id`, raw: the `id` of our answer.
    pub id: &'a [u8],
    /// The quote character `id` was written with.
    pub id_quote: u8,
}

impl Reply {
    /// The same reply, borrowed.
    pub fn to_ref(&self) -> ReplyTo<'_> {
        ReplyTo {
            to: &self.to,
            to_quote: self.to_quote,
            id: &self.id,
            id_quote: self.id_quote,
        }
    }
}

/// An event's own bytes in one buffer (see the module documentation): its conversation key,
/// its inner stanza, the reply's `to` and `id`, one after the other, and where each starts.
/// The buffer can be handed back ([`EventBytes::into_buffer`]) and reused for the next event.
#[derive(Clone, Debug, Default)]
pub struct EventBytes {
    buf: Vec<u8>,
    stanza_at: u32,
    to_at: u32,
    id_at: u32,
    to_quote: u8,
    id_quote: u8,
}

impl EventBytes {
    fn part(&self, from: u32, to: usize) -> &[u8] {
        self.buf.get(from as usize..to).unwrap_or_default()
    }

    /// The conversation key of docs/protocol.md §2.
    pub fn key(&self) -> &str {
        std::str::from_utf8(self.part(0, self.stanza_at as usize)).unwrap_or_default()
    }

    /// The inner stanza, exactly as the router sent it.
    pub fn stanza(&self) -> &[u8] {
        self.part(self.stanza_at, self.to_at as usize)
    }

    /// Where the verdict goes.
    pub fn reply(&self) -> ReplyTo<'_> {
        ReplyTo {
            to: self.part(self.to_at, self.id_at as usize),
            to_quote: self.to_quote,
            id: self.part(self.id_at, self.buf.len()),
            id_quote: self.id_quote,
        }
    }

    /// The buffer, for the next event.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

/// A readable event. Everything in it is owned, so it is `Send`.
#[derive(Clone, Debug)]
pub struct InboundEvent {
    /// Which catalog event it is.
    pub event: EventId,
    /// Derived from the inner stanza, never declared.
    pub packet: PacketType,
    /// The IM node it came from (its `node` attribute, or its router's name).
    pub node: NodeId,
    /// Its key, stanza and reply address.
    pub bytes: EventBytes,
}

impl InboundEvent {
    /// The conversation key of docs/protocol.md §2.
    pub fn key(&self) -> &str {
        self.bytes.key()
    }

    /// The inner stanza, exactly as the router sent it.
    pub fn stanza(&self) -> &[u8] {
        self.bytes.stanza()
    }

    /// Where the verdict goes.
    pub fn reply(&self) -> ReplyTo<'_> {
        self.bytes.reply()
    }
}

/// Why an event cannot be read: always the router's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadEvent {
    /// The iq is not of type `set`.
    NotSet,
    /// The iq holds no `<event/>` in our namespace.
    NoEventElement,
    /// The iq holds more than the `<event/>` element.
    ExtraElements,
    /// The `<event/>` has no `name` attribute.
    NoName,
    /// The name is not in the catalog (the name as given).
    UnknownEvent(String),
    /// The `<event/>` holds no stanza.
    NoStanza,
    /// The `<event/>` holds more than one stanza.
    TwoStanzas,
    /// The `<event/>` holds an element that is not a message, iq or presence (its name).
    NotAStanza(String),
    /// The stanza's addresses give no conversation key.
    Key(KeyError),
}

impl fmt::Display for BadEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEvent::NotSet => f.write_str("an event must be an iq of type 'set'"),
            BadEvent::NoEventElement => write!(f, "the iq holds no <event xmlns='{NS}'/>"),
            BadEvent::ExtraElements => f.write_str("the iq holds more than the <event/> element"),
            BadEvent::NoName => f.write_str("the event has no 'name' attribute"),
            BadEvent::UnknownEvent(n) => write!(f, "unknown event name '{n}'"),
            BadEvent::NoStanza => f.write_str("the event holds no stanza"),
            BadEvent::TwoStanzas => f.write_str("the event holds more than one stanza"),
            BadEvent::NotAStanza(n) => {
                write!(
                    f,
                    "the event holds <{n}/>, which is not a message, iq or presence"
                )
            }
            BadEvent::Key(e) => write!(f, "no conversation key: {e}"),
        }
    }
}

impl std::error::Error for BadEvent {}

/// True when `stanza` is meant as an event (an iq carrying our `<event/>`), whether or not it
/// can be read; other iqs are not ours to refuse with `bad-request`.
pub fn is_event(stanza: &Stanza) -> bool {
    stanza.name() == b"iq"
        && stanza.children().any(|c| {
            stanza.element_local_name(c) == b"event"
                && stanza
                    .element_attrs(c)
                    .any(|(n, v)| n == b"xmlns" && v == NS.as_bytes())
        })
}

/// Reads an event iq. `node_of` maps the event's `node` attribute (or, without one, `None`)
/// to the node the matcher knows.
pub fn parse_event(
    iq: &Stanza,
    reply: Reply,
    node_of: impl FnOnce(Option<&str>) -> NodeId,
) -> Result<InboundEvent, BadEvent> {
    parse_event_into(iq, &reply, node_of, Vec::new())
}

/// [`parse_event`], keeping the event's bytes in `buffer` (emptied first): a buffer an earlier
/// event handed back, so that reading an event need not allocate.
pub fn parse_event_into(
    iq: &Stanza,
    reply: &Reply,
    node_of: impl FnOnce(Option<&str>) -> NodeId,
    mut buffer: Vec<u8>,
) -> Result<InboundEvent, BadEvent> {
    if iq.raw(iq.attrs().type_) != Some(b"set") {
        return Err(BadEvent::NotSet);
    }
    let mut children = iq.children();
    let event = children.next().ok_or(BadEvent::NoEventElement)?;
    if children.next().is_some() {
        return Err(BadEvent::ExtraElements);
    }
    if iq.element_local_name(event) != b"event" {
        return Err(BadEvent::NoEventElement);
    }
    let mut name = None;
    let mut room = None;
    let mut node = None;
    let mut ns_ok = false;
    // Names are compared as bytes; only the values kept become text.
    let text = crate::wire::stanza::as_str;
    for (attr, raw) in iq.element_attrs(event) {
        match attr {
            b"name" => name = Some(raw),
            b"room" => room = Some(crate::wire::xml::unescape(text(raw))),
            b"node" => node = Some(crate::wire::xml::unescape(text(raw))),
            b"xmlns" => ns_ok = raw == NS.as_bytes(),
            _ => {}
        }
    }
    if !ns_ok {
        return Err(BadEvent::NoEventElement);
    }
    let name = name.ok_or(BadEvent::NoName)?;
    let id = EventId::lookup(name).ok_or_else(|| {
        BadEvent::UnknownEvent(crate::wire::xml::unescape(text(name)).into_owned())
    })?;
    let mut inner_elements = iq.children_of(event);
    let inner = inner_elements.next().ok_or(BadEvent::NoStanza)?;
    if inner_elements.next().is_some() {
        return Err(BadEvent::TwoStanzas);
    }
    let (mut from, mut to, mut type_) = (None, None, None);
    for (attr, raw) in iq.element_attrs(inner) {
        match attr {
            b"from" => from = Some(raw),
            b"to" => to = Some(raw),
            b"type" => type_ = Some(raw),
            _ => {}
        }
    }
    let local = iq.element_local_name(inner);
    let packet = PacketType::classify(local, type_)
        .ok_or_else(|| BadEvent::NotAStanza(String::from_utf8_lossy(local).into_owned()))?;
    let from: Option<Cow<str>> = from.map(|f| crate::wire::xml::unescape(text(f)));
    let to: Option<Cow<str>> = to.map(|t| crate::wire::xml::unescape(text(t)));
    let stanza = &iq.bytes()[inner.span.range()];
    // The key first (it may still fail), then the rest; room for all of it at once, the key's
    // share bounded by the addresses it is made of.
    buffer.clear();
    let key_bound = from.as_ref().map_or(0, |f| f.len()) + 1 + to.as_ref().map_or(0, |t| t.len());
    buffer.reserve_exact(key_bound + stanza.len() + reply.to.len() + reply.id.len());
    conversation_key_into(
        id.kind(),
        from.as_deref(),
        to.as_deref(),
        room.as_deref(),
        &mut buffer,
    )
    .map_err(BadEvent::Key)?;
    let at = |b: &Vec<u8>| u32::try_from(b.len()).unwrap_or(u32::MAX);
    let stanza_at = at(&buffer);
    buffer.extend_from_slice(stanza);
    let to_at = at(&buffer);
    buffer.extend_from_slice(&reply.to);
    let id_at = at(&buffer);
    buffer.extend_from_slice(&reply.id);
    Ok(InboundEvent {
        event: id,
        packet,
        node: node_of(node.as_deref()),
        bytes: EventBytes {
            buf: buffer,
            stanza_at,
            to_at,
            id_at,
            to_quote: reply.to_quote,
            id_quote: reply.id_quote,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml: &str) -> Stanza {
        crate::wire::test_stanza(xml.as_bytes())
    }

    fn parse(xml: &str) -> Result<InboundEvent, BadEvent> {
        let iq = stanza(xml);
        let reply = Reply::of(&iq).expect("reply");
        parse_event(&iq, reply, |_| {
            crate::policy::CompiledPolicy::compile(&crate::policy::default_config()).unknown_node()
        })
    }

    fn event(name: &str, attrs: &str, inner: &str) -> String {
        format!(
            "<iq type='set' id='R1' from='imp1.example.com' to='palisade.example.com'>\
             <event xmlns='urn:palisade:compliance:0' name='{name}'{attrs}>{inner}</event></iq>"
        )
    }

    #[test]
    fn only_host_jids_may_send_events() {
        assert!(is_host_jid(b"localhost"));
        assert!(is_host_jid(b"conference.example.com"));
        for forged in [
            &b"alice@localhost"[..],
            b"alice@localhost/res",
            b"localhost/res",
            b"alice&#64;localhost",
            b"",
        ] {
            assert!(!is_host_jid(forged), "{}", String::from_utf8_lossy(forged));
        }
    }

    #[test]
    fn reads_the_protocol_example() {
        let ev = parse(&event(
            "es_OUT",
            "",
            "<message xmlns='jabber:client' from='alice@example.com/laptop' to='bob@example.com' \
             type='chat' id='m1'><body>hello</body></message>",
        ))
        .unwrap();
        assert_eq!(ev.event.name(), "es_OUT");
        assert_eq!(ev.packet, PacketType::Message);
        assert_eq!(ev.key(), "alice@example.com|bob@example.com");
        assert!(ev.stanza().starts_with(b"<message xmlns='jabber:client'"));
        assert!(ev.stanza().ends_with(b"</message>"));
        assert_eq!(ev.reply().id, b"R1");
        assert_eq!(ev.reply().to, b"imp1.example.com");
    }

    #[test]
    fn an_event_keeps_its_own_bytes_not_the_receive_buffer() {
        let iq = stanza(&event(
            "es_OUT",
            "",
            "<message xmlns='jabber:client' from='alice@example.com' to='bob@example.com' \
             type='chat' id='m1'><body>hello</body></message>",
        ));
        let reply = Reply::of(&iq).expect("reply");
        let ev = parse_event(&iq, reply, |_| {
            crate::policy::CompiledPolicy::compile(&crate::policy::default_config()).unknown_node()
        })
        .unwrap();
        let frame = iq.bytes().as_ptr_range();
        for (what, bytes) in [
            ("stanza", ev.stanza()),
            ("reply to", ev.reply().to),
            ("reply id", ev.reply().id),
        ] {
            assert!(
                !frame.contains(&bytes.as_ptr()),
                "the event's {what} is a view of the frame, which would keep the receive buffer"
            );
        }
        assert!(ev.stanza().starts_with(b"<message xmlns='jabber:client'"));
        assert!(ev.stanza().ends_with(b"</message>"));
        assert_eq!(ev.reply().to, b"imp1.example.com");
        assert_eq!(ev.reply().id, b"R1");
    }

    #[test]
    fn a_reused_buffer_holds_only_the_new_event_and_keeps_its_allocation() {
        let iq = stanza(&event(
            "es_OUT",
            "",
            "<message from='Alice@Example.com/x' to='bob@example.com' type='chat'><body>hi</body></message>",
        ));
        let reply = Reply::of(&iq).expect("reply");
        let node = |_: Option<&str>| {
            crate::policy::CompiledPolicy::compile(&crate::policy::default_config()).unknown_node()
        };
        let mut old = b"left over from an earlier, longer event".repeat(20);
        old.truncate(100);
        let at = old.as_ptr();
        let ev = parse_event_into(&iq, &reply, node, old).unwrap();
        assert_eq!(ev.key(), "alice@example.com|bob@example.com");
        assert!(ev
            .stanza()
            .starts_with(b"<message from='Alice@Example.com/x'"));
        assert!(ev.stanza().ends_with(b"</message>"));
        assert_eq!(ev.reply().to, b"imp1.example.com");
        assert_eq!(ev.reply().id, b"R1");
        let buffer = ev.bytes.into_buffer();
        assert_eq!(
            buffer.as_ptr(),
            at,
            "the buffer had room: it was not replaced"
        );
        // An unreadable event leaves nothing behind in what it was given.
        let bad = stanza(&event("es_OUT", "", "<message from='@bad' to='a@b'/>"));
        let reply = Reply::of(&bad).expect("reply");
        assert!(matches!(
            parse_event_into(&bad, &reply, node, buffer),
            Err(BadEvent::Key(_))
        ));
    }

    #[test]
    fn subscription_presence_and_room_key() {
        let ev = parse(&event(
            "es_IN",
            "",
            "<presence from='Bob@Example.com' to='alice@example.com' type='subscribe'/>",
        ))
        .unwrap();
        assert_eq!(ev.packet, PacketType::Subscription);
        assert_eq!(ev.key(), "alice@example.com|bob@example.com");
        let ev = parse(&event(
            "onBeforeSend",
            " room='Trading@conference.example.com'",
            "<message from='alice@example.com/x' to='trading@conference.example.com/alice' type='groupchat'/>",
        ))
        .unwrap();
        assert_eq!(ev.key(), "trading@conference.example.com");
    }

    #[test]
    fn unreadable_events_say_why() {
        let cases = [
            (event("es_BOGUS", "", "<message to='a@b'/>"), BadEvent::UnknownEvent("es_BOGUS".into())),
            (event("es_OUT", "", ""), BadEvent::NoStanza),
            (event("es_OUT", "", "<message to='a@b'/><message to='a@b'/>"), BadEvent::TwoStanzas),
            (event("es_OUT", "", "<foo to='a@b'/>"), BadEvent::NotAStanza("foo".into())),
            (
                "<iq type='get' id='1' from='r' to='g'><event xmlns='urn:palisade:compliance:0' name='es_OUT'/></iq>".into(),
                BadEvent::NotSet,
            ),
            (
                "<iq type='set' id='1' from='r' to='g'><event name='es_OUT'><message to='a@b'/></event></iq>".into(),
                BadEvent::NoEventElement,
            ),
            (
                "<iq type='set' id='1' from='r' to='g'><event xmlns='urn:palisade:compliance:0'><message to='a@b'/></event></iq>".into(),
                BadEvent::NoName,
            ),
        ];
        for (xml, expected) in cases {
            assert_eq!(parse(&xml).unwrap_err(), expected, "{xml}");
        }
        assert!(matches!(
            parse(&event("es_OUT", "", "<message from='@bad' to='a@b'/>")),
            Err(BadEvent::Key(_))
        ));
    }
}
