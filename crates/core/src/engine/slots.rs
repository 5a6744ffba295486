//! A generational slab: events live in reusable slots, and a (slot, generation) pair names one
//! outstanding request so that late answers and stale timers are recognised and ignored.
//!
//! Owns storage and generations only; knows nothing about what it stores.

/// A slot and the generation it had when the reference was made.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SlotRef {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

/// Entries per chunk. The slab grows one chunk at a time and never moves what it holds: a
/// single growing `Vec` would, at each doubling, copy every entry into an allocation twice the
/// size and free the old one, and the allocator may keep the freed pages for a while, so a
/// slab of many waiting events could cost half as much again as its entries.
const CHUNK: usize = 512;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    /// Every chunk but the last is full; each was allocated with room for [`CHUNK`] entries.
    chunks: Vec<Vec<Entry<T>>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            chunks: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn entry(&self, slot: u32) -> Option<&Entry<T>> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)
    }

    fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry<T>> {
        let slot = slot as usize;
        self.chunks.get_mut(slot / CHUNK)?.get_mut(slot % CHUNK)
    }

    /// Slots ever used (occupied or free).
    fn slots(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    /// Stores `value`; returns its reference.
    pub(crate) fn insert(&mut self, value: T) -> SlotRef {
        self.len += 1;
        if let Some(slot) = self.free.pop() {
            let e = self
                .entry_mut(slot)
                .expect("a free slot number names a slot");
            e.generation = e.generation.wrapping_add(1);
            e.value = Some(value);
            return SlotRef {
                slot,
                generation: e.generation,
            };
        }
        let slot = self.slots() as u32;
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(Entry {
                generation: 0,
                value: Some(value),
            });
        }
        SlotRef {
            slot,
            generation: 0,
        }
    }

    /// Gives the slot a new generation, so references made before now go stale. Returns the new
    /// reference, or `None` if the slot is empty.
    pub(crate) fn bump(&mut self, slot: u32) -> Option<SlotRef> {
        let e = self.entry_mut(slot)?;
        e.value.as_ref()?;
        e.generation = e.generation.wrapping_add(1);
        Some(SlotRef {
            slot,
            generation: e.generation,
        })
    }

    /// The value if `r` is still current.
    pub(crate) fn get(&self, r: SlotRef) -> Option<&T> {
        let e = self.entry(r.slot)?;
        if e.generation == r.generation {
            e.value.as_ref()
        } else {
            None
        }
    }

    /// The value in a slot, whatever its generation.
    pub(crate) fn by_slot(&self, slot: u32) -> Option<&T> {
        self.entry(slot)?.value.as_ref()
    }

    pub(crate) fn by_slot_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.entry_mut(slot)?.value.as_mut()
    }

    /// The current reference of an occupied slot.
    pub(crate) fn current(&self, slot: u32) -> Option<SlotRef> {
        let e = self.entry(slot)?;
        e.value.as_ref().map(|_| SlotRef {
            slot,
            generation: e.generation,
        })
    }

    /// Empties a slot (any generation) and returns its value.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<T> {
        let e = self.entry_mut(slot)?;
        let v = e.value.take()?;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(slot);
        self.len -= 1;
        Some(v)
    }

    /// Occupied slot numbers, in slot order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_references_miss() {
        let mut s = Slots::default();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        let a2 = s.bump(a.slot).unwrap();
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(a2), Some(&"a"));
        assert_eq!(s.remove(a.slot), Some("a"));
        let b = s.insert("b");
        assert_eq!(b.slot, a.slot, "slots are reused");
        assert_eq!(
            s.get(a2),
            None,
            "a reused slot does not answer an old reference"
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.occupied().collect::<Vec<_>>(), vec![b.slot]);
    }

    #[test]
    fn grows_by_chunks_without_moving_entries() {
        let mut s = Slots::default();
        let refs: Vec<SlotRef> = (0..3 * CHUNK + 7).map(|i| s.insert(i)).collect();
        assert_eq!(s.chunks.len(), 4);
        assert!(
            s.chunks.iter().all(|c| c.capacity() == CHUNK),
            "every chunk keeps the room it was made with"
        );
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(r.slot as usize, i);
            assert_eq!(s.get(*r), Some(&i));
        }
        assert_eq!(s.remove(refs[CHUNK].slot), Some(CHUNK));
        assert_eq!(s.remove(3), Some(3));
        assert_eq!(s.occupied().count(), 3 * CHUNK + 5);
        assert!(!s.occupied().any(|slot| slot == 3 || slot as usize == CHUNK));
        let again = s.insert(1000);
        assert_eq!(again.slot, 3, "the last freed slot first");
        assert_eq!(s.by_slot(3), Some(&1000));
        assert_eq!(s.chunks.len(), 4, "a free slot costs no new chunk");
        assert_eq!(s.len(), 3 * CHUNK + 6);
    }

    /// What each waiting event costs in the slab, printed for perf/RESULTS.md (`cargo test -p
    /// palisade-core slot_size -- --nocapture`), and held to it.
    #[test]
    fn slot_size() {
        use crate::engine::events::{EventState, Phase};
        let entry = std::mem::size_of::<Entry<EventState>>();
        eprintln!(
            "slab entry {entry} B (event state {} B, phase {} B, the event's bytes {} B)",
            std::mem::size_of::<EventState>(),
            std::mem::size_of::<Phase>(),
            std::mem::size_of::<crate::protocol::EventBytes>(),
        );
        assert!(entry <= 152, "a slab entry grew to {entry} bytes");
    }
}
