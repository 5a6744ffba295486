//! The spool's bytes on disk: segment headers, record frames with a checksum, the record
//! payload, and the recovery scan that finds where a segment's valid records end.
//!
//! Pure functions over byte slices: no I/O, no clock.

use crate::policy::{EventId, Handling, PacketType};
use bytes::{BufMut, Bytes};

/// The first bytes of every segment file (format version 1).
pub const SEGMENT_MAGIC: &[u8; 8] = b"PALSPL1\n";
/// Frame header: payload length (u32 LE), then CRC-32 of the payload (u32 LE).
pub const FRAME_HEADER: usize = 8;
/// A payload longer than this is corruption, not a record (a stanza is at most a few MiB).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Payload format version.
const PAYLOAD_VERSION: u8 = 1;

/// What a spooled record says: enough to write the notify again, to any server of its
/// profile, with its original id and stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The step's record id (`record='ID'`).
    pub id: String,
    /// XEP-0082 stamp of the event's arrival.
    pub stamp: String,
    /// The conversation key's stable hash (rendezvous routing).
    pub stable_key: u64,
    /// The profile whose step became the record; any server of it may take the replay.
    pub profile: String,
    /// The event the notify is about.
    pub event: EventId,
    /// The inner stanza's packet type (JSM events only).
    pub packet: Option<PacketType>,
    /// The step's handling, written again in the replayed request.
    pub handling: Handling,
    /// The IM node the event came from.
    pub node: String,
    /// The conversation key.
    pub key: String,
    /// The inner stanza, exactly as the router sent it.
    pub stanza: Bytes,
}

/// The fields of a record as the engine has them (borrowed), to encode without copying first.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// The step's record id.
    pub id: &'a str,
    /// XEP-0082 stamp of the event's arrival.
    pub stamp: &'a str,
    /// The conversation key's stable hash.
    pub stable_key: u64,
    /// The profile of the step.
    pub profile: &'a str,
    /// The event.
    pub event: EventId,
    /// The inner stanza's packet type (JSM events only).
    pub packet: Option<PacketType>,
    /// The step's handling.
    pub handling: Handling,
    /// The IM node.
    pub node: &'a str,
    /// The conversation key.
    pub key: &'a str,
    /// The inner stanza.
    pub stanza: &'a [u8],
}

impl Record {
    /// The record's fields borrowed, for [`encode_payload`] without a copy.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            id: &self.id,
            stamp: &self.stamp,
            stable_key: self.stable_key,
            profile: &self.profile,
            event: self.event,
            packet: self.packet,
            handling: self.handling,
            node: &self.node,
            key: &self.key,
            stanza: &self.stanza,
        }
    }
}

fn put_str16(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len().min(usize::from(u16::MAX));
    out.put_u16_le(n as u16);
    out.put_slice(&s[..n]);
}

fn packet_code(p: Option<PacketType>) -> u8 {
    match p {
        None => 0,
        Some(PacketType::Message) => 1,
        Some(PacketType::Iq) => 2,
        Some(PacketType::Presence) => 3,
        Some(PacketType::Subscription) => 4,
    }
}

/// Encodes a record's payload (without its frame).
pub fn encode_payload(r: &RecordRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.stanza.len() + r.key.len() + 128);
    out.put_u8(PAYLOAD_VERSION);
    put_str16(&mut out, r.id.as_bytes());
    put_str16(&mut out, r.stamp.as_bytes());
    out.put_u64_le(r.stable_key);
    put_str16(&mut out, r.profile.as_bytes());
    put_str16(&mut out, r.event.name().as_bytes());
    out.put_u8(packet_code(r.packet));
    out.put_u8(match r.handling {
        Handling::Bounce => 0,
        Handling::Pass => 1,
    });
    put_str16(&mut out, r.node.as_bytes());
    put_str16(&mut out, r.key.as_bytes());
    out.put_u32_le(r.stanza.len() as u32);
    out.put_slice(r.stanza);
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn str16(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes a payload written by [`encode_payload`]; `None` if it is not one (a checksum that
/// matched over bytes of another version, or a bug).
pub fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut r = Reader { buf: payload };
    if r.u8()? != PAYLOAD_VERSION {
        return None;
    }
    let id = r.str16()?;
    let stamp = r.str16()?;
    let stable_key = r.u64()?;
    let profile = r.str16()?;
    let event = EventId::lookup(r.str16()?.as_bytes())?;
    let packet = match r.u8()? {
        0 => None,
        1 => Some(PacketType::Message),
        2 => Some(PacketType::Iq),
        3 => Some(PacketType::Presence),
        4 => Some(PacketType::Subscription),
        _ => return None,
    };
    let handling = match r.u8()? {
        0 => Handling::Bounce,
        1 => Handling::Pass,
        _ => return None,
    };
    let node = r.str16()?;
    let key = r.str16()?;
    let n = r.u32()? as usize;
    let stanza = Bytes::copy_from_slice(r.take(n)?);
    if !r.buf.is_empty() {
        return None;
    }
    Some(Record {
        id,
        stamp,
        stable_key,
        profile,
        event,
        packet,
        handling,
        node,
        key,
        stanza,
    })
}

/// Appends one frame around `payload` to `out`.
pub fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.put_u32_le(payload.len() as u32);
    out.put_u32_le(crc32fast::hash(payload));
    out.put_slice(payload);
}

/// The payload of the frame `data` starts with, if it is whole and passes its checksum.
pub fn read_frame(data: &[u8]) -> Option<&[u8]> {
    let header = data.get(..FRAME_HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = data.get(FRAME_HEADER..FRAME_HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// The size of the frame around a payload of `len` bytes.
pub fn frame_len(len: usize) -> u64 {
    (FRAME_HEADER + len) as u64
}

/// How a segment's scan ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid frame.
    Clean,
    /// The bytes from `at` on are not a whole valid frame (a write torn by a crash, or
    /// corruption): they are dropped; `bytes` of them.
    Torn {
        /// Offset of the first dropped byte.
        at: u64,
        /// How many bytes were dropped.
        bytes: u64,
    },
    /// The file does not start with the segment header: not a spool segment (or torn before
    /// its header was whole).
    NoHeader,
}

/// One segment read back: the payloads of its valid frames, in order, and how it ended.
#[derive(Debug)]
pub struct Scan {
    /// (offset of the frame, payload) for each valid frame.
    pub frames: Vec<(u64, Bytes)>,
    /// Where the valid part ends.
    pub valid_len: u64,
    /// How the scan ended.
    pub tail: Tail,
}

/// Reads a segment: every frame up to the first that is incomplete or fails its checksum.
pub fn scan(data: &Bytes) -> Scan {
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return Scan {
            frames: Vec::new(),
            valid_len: 0,
            tail: Tail::NoHeader,
        };
    }
    let mut at = SEGMENT_MAGIC.len();
    let mut frames = Vec::new();
    loop {
        if at == data.len() {
            return Scan {
                frames,
                valid_len: at as u64,
                tail: Tail::Clean,
            };
        }
        let torn = |at: usize| Scan {
            frames: Vec::new(),
            valid_len: at as u64,
            tail: Tail::Torn {
                at: at as u64,
                bytes: (data.len() - at) as u64,
            },
        };
        let rest = &data[at..];
        if rest.len() < FRAME_HEADER {
            return Scan { frames, ..torn(at) };
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_PAYLOAD || rest.len() < FRAME_HEADER + len {
            return Scan { frames, ..torn(at) };
        }
        let payload = &rest[FRAME_HEADER..FRAME_HEADER + len];
        if crc32fast::hash(payload) != crc {
            return Scan { frames, ..torn(at) };
        }
        let start = at + FRAME_HEADER;
        frames.push((at as u64, data.slice(start..start + len)));
        at = start + len;
    }
}
