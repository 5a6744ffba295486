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

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value`; returns its reference.
    pub(crate) fn insert(&mut self, value: T) -> SlotRef {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                let e = &mut self.entries[slot as usize];
                e.generation = e.generation.wrapping_add(1);
                e.value = Some(value);
                SlotRef {
                    slot,
                    generation: e.generation,
                }
            }
            None => {
                self.entries.push(Entry {
                    generation: 0,
                    value: Some(value),
                });
                SlotRef {
                    slot: (self.entries.len() - 1) as u32,
                    generation: 0,
                }
            }
        }
    }

    /// Gives the slot a new generation, so references made before now go stale. Returns the new
    /// reference, or `None` if the slot is empty.
    pub(crate) fn bump(&mut self, slot: u32) -> Option<SlotRef> {
        let e = self.entries.get_mut(slot as usize)?;
        e.value.as_ref()?;
        e.generation = e.generation.wrapping_add(1);
        Some(SlotRef {
            slot,
            generation: e.generation,
        })
    }

    /// The value if `r` is still current.
    pub(crate) fn get(&self, r: SlotRef) -> Option<&T> {
        let e = self.entries.get(r.slot as usize)?;
        if e.generation == r.generation {
            e.value.as_ref()
        } else {
            None
        }
    }

    /// The value in a slot, whatever its generation.
    pub(crate) fn by_slot(&self, slot: u32) -> Option<&T> {
        self.entries.get(slot as usize)?.value.as_ref()
    }

    pub(crate) fn by_slot_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.entries.get_mut(slot as usize)?.value.as_mut()
    }

    /// The current reference of an occupied slot.
    pub(crate) fn current(&self, slot: u32) -> Option<SlotRef> {
        let e = self.entries.get(slot as usize)?;
        e.value.as_ref().map(|_| SlotRef {
            slot,
            generation: e.generation,
        })
    }

    /// Empties a slot (any generation) and returns its value.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<T> {
        let e = self.entries.get_mut(slot as usize)?;
        let v = e.value.take()?;
        e.generation = e.generation.wrapping_add(1);
        self.free.push(slot);
        self.len -= 1;
        Some(v)
    }

    /// Occupied slot numbers, in slot order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
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
}
