//! The XEP-0114 handshake: `HEX = lowercase hex(SHA-1(stream id ‖ secret))`, its constant-time,
//! case-insensitive check, and stream ids built from caller-supplied random bytes.
//!
//! No randomness is drawn here (the runtime supplies it), so tests are deterministic.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The handshake value an initiator sends for `stream_id` and `secret`.
pub fn digest_hex(stream_id: &str, secret: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(stream_id.as_bytes());
    sha.update(secret);
    hex(&sha.finalize())
}

/// Checks a received handshake value in constant time, ignoring ASCII case and surrounding
/// whitespace (some implementations send uppercase hex or pretty-print).
pub fn verify(stream_id: &str, secret: &[u8], received: &str) -> bool {
    let expected = digest_hex(stream_id, secret);
    let received = received.trim();
    if received.len() != expected.len() {
        return false;
    }
    let folded: Vec<u8> = received.bytes().map(|b| b.to_ascii_lowercase()).collect();
    folded.ct_eq(expected.as_bytes()).into()
}

/// A stream id: the hex form of 128 random bits the caller drew.
pub fn stream_id(random: [u8; 16]) -> String {
    hex(&random)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_an_independent_sha1() {
        // `echo -n 3BF96D32secret | sha1sum` (the id of XEP-0114's example, secret "secret").
        assert_eq!(
            digest_hex("3BF96D32", b"secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }

    #[test]
    fn verify_is_case_insensitive_and_exact() {
        let good = digest_hex("abc", b"s3cret");
        assert!(verify("abc", b"s3cret", &good));
        assert!(verify("abc", b"s3cret", &good.to_uppercase()));
        assert!(verify("abc", b"s3cret", &format!(" {good}\n")));
        assert!(!verify("abc", b"wrong", &good));
        assert!(!verify("abd", b"s3cret", &good));
        assert!(!verify("abc", b"s3cret", &good[..39]));
        assert!(!verify("abc", b"s3cret", ""));
    }

    #[test]
    fn stream_ids_carry_all_128_bits() {
        let id = stream_id([0xAB; 16]);
        assert_eq!(id.len(), 32);
        assert_eq!(id, "ab".repeat(16));
    }
}
