//! The routing math: which shard owns a conversation key, and which server of a profile takes
//! it (rendezvous hashing).
//!
//! Pure functions of their arguments: no state, no I/O, no clock. Shard ownership uses ahash
//! (fast, and only ever compared within one process); server choice uses a hash that is stable
//! across builds, machines and gateway nodes, so every node sends a conversation to the same
//! server.
// A core module: it reads peer bytes or decides on them, and needs no unsafe code.
#![forbid(unsafe_code)]
// No clock, file, randomness or randomly seeded map here (clippy.toml lists them).
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]
#![deny(missing_docs)]

use crate::policy::DetState;
use std::hash::BuildHasher;

/// Hashes a conversation key for shard ownership and per-key ordering within this process.
///
/// Fixed seeds (those of [`DetState`]): every shard of one process must agree, and a run must
/// be repeatable from its inputs. `KeyHasher::default()` is the same hasher as
/// `KeyHasher::new()`.
#[derive(Clone, Default)]
pub struct KeyHasher {
    state: DetState,
}

impl KeyHasher {
    /// The process-wide key hasher (every instance hashes alike).
    pub fn new() -> KeyHasher {
        KeyHasher { state: DetState }
    }

    /// The 64-bit hash of a conversation key, as [`owner_shard`] and the engine's per-key
    /// order take it.
    pub fn hash(&self, key: &str) -> u64 {
        self.state.hash_one(key)
    }
}

/// The shard that owns a key hash: a multiply-shift onto `0..shards`, uniform for any count.
pub fn owner_shard(key_hash: u64, shards: usize) -> usize {
    ((u128::from(key_hash) * shards as u128) >> 64) as usize
}

/// A hash of a key that is the same on every build and machine (FNV-1a, then a finalizer so
/// that nearby keys spread).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rendezvous (highest random weight) choice: among `candidates` (each with its stable seed,
/// the [`stable_hash`] of its name), the one scoring highest for `key`. Removing a candidate
/// moves only the keys it had; adding one takes a fair share from every other.
pub fn rendezvous<T: Copy>(
    stable_key: u64,
    candidates: impl Iterator<Item = (T, u64)>,
) -> Option<T> {
    candidates
        .map(|(c, seed)| (mix(stable_key ^ seed), c))
        .max_by_key(|(score, _)| *score)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("user{i}@example.com|user{}@example.com", i * 7 + 1))
            .collect()
    }

    #[test]
    fn stable_hash_is_fixed_forever() {
        // Changing these values breaks affinity across a rolling upgrade. The expected value was
        // computed independently (Python FNV-1a 64 + SplitMix64 finalizer).
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(
            stable_hash(b"alice@example.com|bob@example.com"),
            0x4d05_2fa7_6a0a_2c74
        );
    }

    #[test]
    fn owner_shard_is_in_range_and_balanced() {
        let h = KeyHasher::new();
        for shards in [1, 2, 3, 8] {
            let mut counts = vec![0usize; shards];
            for k in keys(30_000) {
                counts[owner_shard(h.hash(&k), shards)] += 1;
            }
            let fair = 30_000 / shards;
            assert!(
                counts
                    .iter()
                    .all(|&c| c > fair * 9 / 10 && c < fair * 11 / 10),
                "{counts:?}"
            );
        }
    }

    #[test]
    fn rendezvous_is_fair_and_moves_only_the_removed_share() {
        let servers: Vec<(usize, u64)> = ["cs1", "cs2", "cs3"]
            .iter()
            .enumerate()
            .map(|(i, n)| (i, stable_hash(n.as_bytes())))
            .collect();
        let ks = keys(30_000);
        let before: Vec<usize> = ks
            .iter()
            .map(|k| rendezvous(stable_hash(k.as_bytes()), servers.iter().copied()).unwrap())
            .collect();
        let mut counts = [0usize; 3];
        before.iter().for_each(|&s| counts[s] += 1);
        assert!(
            counts.iter().all(|&c| c > 9_000 && c < 11_000),
            "{counts:?}"
        );
        let without_cs2: Vec<(usize, u64)> =
            servers.iter().copied().filter(|(i, _)| *i != 1).collect();
        for (k, was) in ks.iter().zip(&before) {
            let now = rendezvous(stable_hash(k.as_bytes()), without_cs2.iter().copied()).unwrap();
            if *was != 1 {
                assert_eq!(now, *was, "a key not on the removed server moved");
            }
        }
        assert_eq!(rendezvous::<usize>(1, std::iter::empty()), None);
    }
}
