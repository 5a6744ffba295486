//! The seed of each dialer's redial jitter. The schedule itself (`gateway::Backoff`) is the
//! core's, which draws no randomness: the runtime hands it these random bytes.

/// A seed for one dialer's `gateway::Backoff`: random bytes from the system, or the clock if
/// it has none to give (jitter needs no cryptographic quality).
pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 | 1;
    }
    u64::from_le_bytes(b) | 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_dialers_get_different_seeds() {
        assert_ne!(super::seed(), super::seed());
    }
}
