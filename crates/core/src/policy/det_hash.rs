//! Hash maps and sets with a fixed seed, the only ones the core uses.
//!
//! `std::collections::HashMap::new` (and `ahash::AHashMap::new`) seed their hasher from the
//! operating system's randomness at run time, so the order a map iterates in, and with it
//! anything decided by walking one, changes from run to run. The core must be reproducible from
//! its inputs, so every map there is a [`DetHashMap`] (every set a [`DetHashSet`]): the same
//! ahash function, as fast on the hot path, under fixed seeds. `clippy.toml` refuses the
//! randomly seeded constructors and types in the core module roots.
//!
//! Fixed seeds are public, so an attacker who controls keys could aim them at one bucket. The
//! core's maps keyed by peer data are bounded (per-key order holds at most the events in
//! flight, `max_in_flight` per shard), which bounds what such a collision can cost.
//!
//! Owns no state and does no I/O.

// The randomly seeded types are named here once, to build the fixed-seed ones from.
#![allow(clippy::disallowed_types)]

use std::hash::BuildHasher;

/// The four seeds: ASCII text, picked once. Changing them moves every key to another shard
/// ([`crate::routing::KeyHasher`] hashes with them), which every shard of a process must agree
/// on anyway; nothing outside one process depends on them.
const SEEDS: ahash::RandomState = ahash::RandomState::with_seeds(
    0x5041_4c49_5341_4445,
    0x636f_6d70_6c69_616e,
    0x6365_2067_6174_6577,
    0x6179_2076_3020_2020,
);

/// The fixed-seed ahash builder behind [`DetHashMap`] and [`DetHashSet`]: every hasher it
/// builds hashes a value the same way, in every run and on every shard of one build.
#[derive(Clone, Copy, Debug, Default)]
pub struct DetState;

impl BuildHasher for DetState {
    type Hasher = ahash::AHasher;

    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        SEEDS.build_hasher()
    }
}

/// A `HashMap` whose iteration order depends only on what was inserted (and in what order),
/// never on the run. Build one with `DetHashMap::default()` or
/// `DetHashMap::with_capacity_and_hasher(n, DetState)`.
pub type DetHashMap<K, V> = std::collections::HashMap<K, V, DetState>;

/// A `HashSet` with the fixed seeds of [`DetHashMap`].
pub type DetHashSet<T> = std::collections::HashSet<T, DetState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_hash_in_every_builder() {
        let a = DetState.hash_one("conversation");
        let b = DetState.hash_one("conversation");
        assert_eq!(a, b);
        assert_ne!(a, DetState.hash_one("conversation2"));
    }

    #[test]
    fn iteration_order_depends_on_the_inserts_only() {
        let build = || {
            let mut m: DetHashMap<u64, u64> = DetHashMap::default();
            for i in 0..1000 {
                m.insert(i * 7919, i);
            }
            m.into_iter().collect::<Vec<_>>()
        };
        assert_eq!(build(), build());
    }

    /// The seeds are the ones conversation keys were always hashed with: a key's owner shard
    /// does not change with this module.
    #[test]
    fn key_hashes_keep_their_seeds() {
        let old = ahash::RandomState::with_seeds(
            0x5041_4c49_5341_4445,
            0x636f_6d70_6c69_616e,
            0x6365_2067_6174_6577,
            0x6179_2076_3020_2020,
        );
        assert_eq!(old.hash_one("a@b/c"), DetState.hash_one("a@b/c"));
    }
}
