//! Reconnect backoff jitter: spreads redials over ±50% of the nominal delay so that shards (and
//! gateways) that lost a server together do not hammer it in lockstep.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    // Jitter needs no cryptographic quality: fall back to the clock if randomness fails.
    if getrandom::getrandom(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 | 1;
    }
    u64::from_le_bytes(b) | 1
}

fn next() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// `nominal` scaled by a random factor in [0.5, 1.5).
pub fn jittered(nominal: Duration) -> Duration {
    let factor = 0.5 + (next() % 1_000_000) as f64 / 1_000_000.0;
    nominal.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stays_within_half_either_side() {
        let d = std::time::Duration::from_millis(100);
        for _ in 0..1000 {
            let j = super::jittered(d);
            assert!(j >= d / 2 && j < d * 3 / 2, "{j:?}");
        }
    }
}
