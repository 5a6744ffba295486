//! The ids the load generator gives its events, `e{connection:x}.{sequence:x}`, and reading
//! them back from verdicts.
//!
//! The connection number is in the id so that a verdict arriving on the wrong connection is
//! told apart from one for an id that was never sent. Writing allocates nothing. Must not
//! track which ids are outstanding (see `track.rs`).

use bytes::{BufMut, BytesMut};

/// Which event a verdict is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EventRef {
    pub conn: u32,
    pub seq: u64,
}

/// Appends `n` in lowercase hex.
#[inline]
pub fn put_hex(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Appends `n` in decimal.
#[inline]
pub fn put_dec(out: &mut BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Appends the id of event `seq` on connection `conn`.
#[inline]
pub fn write_id(out: &mut BytesMut, conn: u32, seq: u64) {
    out.put_u8(b'e');
    put_hex(out, u64::from(conn));
    out.put_u8(b'.');
    put_hex(out, seq);
}

fn hex(digits: &[u8], max: usize) -> Option<u64> {
    if digits.is_empty() || digits.len() > max {
        return None;
    }
    let mut v = 0u64;
    for &d in digits {
        let x = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(x);
    }
    Some(v)
}

/// Reads an id written by [`write_id`] (raw attribute bytes: our ids need no escaping).
pub fn parse_id(raw: &[u8]) -> Option<EventRef> {
    let rest = raw.strip_prefix(b"e")?;
    let dot = memchr::memchr(b'.', rest)?;
    let conn = u32::try_from(hex(&rest[..dot], 8)?).ok()?;
    let seq = hex(&rest[dot + 1..], 16)?;
    Some(EventRef { conn, seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_junk_is_refused() {
        let mut out = BytesMut::new();
        write_id(&mut out, 3, 0x1a2b);
        assert_eq!(&out[..], b"e3.1a2b");
        assert_eq!(
            parse_id(&out),
            Some(EventRef {
                conn: 3,
                seq: 0x1a2b
            })
        );
        out.clear();
        write_id(&mut out, u32::MAX, u64::MAX);
        assert_eq!(
            parse_id(&out),
            Some(EventRef {
                conn: u32::MAX,
                seq: u64::MAX
            })
        );
        for junk in [
            &b""[..],
            b"e",
            b"e1",
            b"e1.",
            b"e.1",
            b"g1.2.3",
            b"e1.2.3",
            b"E1.2",
            b"e1.2G",
            b"e123456789.1",
        ] {
            assert_eq!(parse_id(junk), None, "{}", String::from_utf8_lossy(junk));
        }
        out.clear();
        put_dec(&mut out, 0);
        put_dec(&mut out, 1234567890);
        assert_eq!(&out[..], b"01234567890");
    }
}
