//! Writing what a compliance server judges (docs/protocol.md §4): `<iq type='set'>` for wait mode,
//! `<message>` for fire-and-forget, both carrying `<event/>` around the stanza's original bytes.
//!
//! Also owns the request id, which tells an answer's arrival back to the shard, slot and
//! generation of the event it answers.

use super::NS;
use crate::policy::{EventId, Handling, PacketType};
use crate::wire::write::{close, Element};
use bytes::{BufMut, BytesMut};
use std::fmt;

/// Identifies one request: the owner shard, the event's slot there, and the slot's generation
/// (so a late answer to a reused slot is recognised and ignored).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId {
    /// The shard that owns the event.
    pub shard: u16,
    /// The event's slot on that shard.
    pub slot: u32,
    /// The slot's generation when the request was sent; a reused slot has a newer one.
    pub generation: u32,
}

/// Writes `v` in lowercase hex, without leading zeros, into `out` at `*at` and moves `*at`
/// past it (the request and record ids are built on the stack, one for every request).
pub(crate) fn write_hex(mut v: u64, out: &mut [u8], at: &mut usize) {
    let mut digits = [0u8; 16];
    let mut n = 0;
    loop {
        digits[n] = b"0123456789abcdef"[(v & 15) as usize];
        n += 1;
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    for d in digits[..n].iter().rev() {
        out[*at] = *d;
        *at += 1;
    }
}

impl RequestId {
    /// The longest encoded form: `g` + 4 + `.` + 8 + `.` + 8 hex digits.
    pub const MAX_LEN: usize = 23;

    /// Writes the `Display` form into `buf` without allocating.
    pub fn encode(self, buf: &mut [u8; Self::MAX_LEN]) -> &[u8] {
        let mut at = 1;
        buf[0] = b'g';
        write_hex(u64::from(self.shard), buf, &mut at);
        buf[at] = b'.';
        at += 1;
        write_hex(u64::from(self.slot), buf, &mut at);
        buf[at] = b'.';
        at += 1;
        write_hex(u64::from(self.generation), buf, &mut at);
        &buf[..at]
    }

    /// Parses the form written by `Display`: `g{shard}.{slot}.{generation}` in hex.
    pub fn parse(raw: &[u8]) -> Option<RequestId> {
        let rest = raw.strip_prefix(b"g")?;
        let mut parts = rest.split(|&b| b == b'.');
        let mut next = |max_digits: usize| -> Option<u32> {
            let p = parts.next()?;
            if p.is_empty() || p.len() > max_digits {
                return None;
            }
            u32::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()
        };
        let shard = u16::try_from(next(4)?).ok()?;
        let slot = next(8)?;
        let generation = next(8)?;
        if parts.next().is_some() {
            return None;
        }
        Some(RequestId {
            shard,
            slot,
            generation,
        })
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{:x}.{:x}.{:x}", self.shard, self.slot, self.generation)
    }
}

/// Wait for an answer, or notify and go on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The server answers, and the walk waits for it (or for the step's timer).
    Wait,
    /// The server is told; no answer is expected and the walk goes on at once.
    Notify,
}

/// The attributes of one request's `<event/>`.
#[derive(Clone, Debug)]
pub struct RequestFields<'a> {
    /// The request's id (`g{shard}.{slot}.{generation}`), echoed in the answer.
    pub id: RequestId,
    /// The event the server judges.
    pub event: EventId,
    /// Written for JSM events only.
    pub packet: Option<PacketType>,
    /// The profile whose step this is.
    pub profile: &'a str,
    /// What the gateway does if the server answers with an error or not at all.
    pub handling: Handling,
    /// Whether an answer is expected.
    pub mode: Mode,
    /// The IM node the event came from.
    pub node: &'a str,
    /// The event's conversation key.
    pub key: &'a str,
    /// When the event arrived, as an XEP-0082 date-time (wall time is a parameter of the caller).
    pub stamp: &'a str,
    /// The step's record id (`record='ID'`): the same on every resend and replay.
    pub record: &'a str,
    /// A spooled record sent again (`replay='1'`).
    pub replay: bool,
}

/// Appends one request from `from` (the gateway) to `to` (the server's component name) around
/// `stanza`, which is spliced unchanged.
pub fn write_request(out: &mut BytesMut, from: &str, to: &str, f: &RequestFields, stanza: &[u8]) {
    let outer = match f.mode {
        Mode::Wait => "iq",
        Mode::Notify => "message",
    };
    let mut id_buf = [0u8; RequestId::MAX_LEN];
    let id = f.id.encode(&mut id_buf);
    // Constants, generated ids and stamps, catalog names and validated profile names need no
    // escaping; addresses, node names and keys come from configuration or peers and do.
    let mut el = Element::open(out, outer);
    if f.mode == Mode::Wait {
        el = el.attr_trusted("type", "set");
    }
    let body = el
        .attr_raw("id", id, b'\'')
        .attr("from", from)
        .attr("to", to)
        .start_content();
    let mut event = Element::open(body, "event")
        .attr_trusted("xmlns", NS)
        .attr_trusted("name", f.event.name());
    if let Some(p) = f.packet {
        event = event.attr_trusted("packet", p.as_str());
    }
    let handling = match f.handling {
        Handling::Bounce => "bounce",
        Handling::Pass => "pass",
    };
    let mode = match f.mode {
        Mode::Wait => "wait",
        Mode::Notify => "notify",
    };
    let mut event = event
        .attr("profile", f.profile)
        .attr_trusted("handling", handling)
        .attr_trusted("mode", mode)
        .attr("node", f.node)
        .attr("key", f.key)
        .attr_trusted("stamp", f.stamp);
    if !f.record.is_empty() {
        event = event.attr("record", f.record);
    }
    if f.replay {
        event = event.attr_trusted("replay", "1");
    }
    let inner = event.start_content();
    inner.put_slice(stanza);
    close(inner, "event");
    close(inner, outer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_round_trip_and_reject_junk() {
        let id = RequestId {
            shard: 3,
            slot: 0xdead_beef,
            generation: 7,
        };
        assert_eq!(id.to_string(), "g3.deadbeef.7");
        let mut buf = [0; RequestId::MAX_LEN];
        assert_eq!(id.encode(&mut buf), b"g3.deadbeef.7");
        let max = RequestId {
            shard: u16::MAX,
            slot: u32::MAX,
            generation: u32::MAX,
        };
        assert_eq!(max.encode(&mut buf).len(), RequestId::MAX_LEN);
        assert_eq!(RequestId::parse(max.encode(&mut buf)), Some(max));
        assert_eq!(RequestId::parse(b"g3.deadbeef.7"), Some(id));
        for junk in [
            &b""[..],
            b"g",
            b"3.1.1",
            b"g1.2",
            b"g1.2.3.4",
            b"gx.1.1",
            b"g10000.1.1",
            b"g1.123456789.1",
        ] {
            assert_eq!(
                RequestId::parse(junk),
                None,
                "{}",
                String::from_utf8_lossy(junk)
            );
        }
    }

    #[test]
    fn writes_the_protocol_shape_around_the_original_bytes() {
        let mut out = BytesMut::new();
        let stanza = b"<message xmlns='jabber:client' from='alice@example.com/laptop' to='bob@example.com'><body>a &amp; b</body></message>";
        let fields = RequestFields {
            id: RequestId {
                shard: 0,
                slot: 7,
                generation: 1,
            },
            event: EventId::lookup(b"es_OUT").unwrap(),
            packet: Some(PacketType::Message),
            profile: "EthicalWall",
            handling: Handling::Bounce,
            mode: Mode::Wait,
            node: "imp1",
            key: "alice@example.com|bob@example.com",
            stamp: "2026-11-21T10:00:00.123Z",
            record: "",
            replay: false,
        };
        write_request(
            &mut out,
            "palisade.example.com",
            "op-cs1.palisade-example-com",
            &fields,
            stanza,
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            format!(
                "<iq type='set' id='g0.7.1' from='palisade.example.com' to='op-cs1.palisade-example-com'>\
                 <event xmlns='urn:palisade:compliance:0' name='es_OUT' packet='message' profile='EthicalWall' \
                 handling='bounce' mode='wait' node='imp1' key='alice@example.com|bob@example.com' \
                 stamp='2026-11-21T10:00:00.123Z'>{}</event></iq>",
                std::str::from_utf8(stanza).unwrap()
            )
        );
        let mut out = BytesMut::new();
        let notify = RequestFields {
            mode: Mode::Notify,
            packet: None,
            record: "1f.0.7.2",
            replay: true,
            ..fields
        };
        write_request(&mut out, "gw", "cs", &notify, b"<presence/>");
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.contains("stamp='2026-11-21T10:00:00.123Z' record='1f.0.7.2' replay='1'>"),
            "{text}"
        );
        assert!(
            text.starts_with("<message id='g0.7.1' from='gw' to='cs'><event "),
            "{text}"
        );
        assert!(text.contains("mode='notify'") && !text.contains("packet="));
        assert!(text.ends_with("<presence/></event></message>"));
    }
}
