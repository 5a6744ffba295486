//! Per-key arrival order: events with one conversation key leave in the order they arrived,
//! whatever order their walks finish in (docs/protocol.md §2).
//!
//! An intrusive FIFO per key: a map from key hash to (head, tail) slot, and a `next` link kept
//! by the caller in each event. No allocation per event. Two keys with the same 64-bit hash
//! share a FIFO, which only makes ordering stricter, never wrong.

use crate::policy::DetHashMap;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct KeyOrder {
    queues: DetHashMap<u64, (u32, u32)>,
}

impl KeyOrder {
    /// Appends `slot` to its key's FIFO. Returns the previous tail, whose `next` the caller must
    /// set to `slot`; `None` when `slot` is now the head.
    pub(crate) fn push(&mut self, key_hash: u64, slot: u32) -> Option<u32> {
        match self.queues.get_mut(&key_hash) {
            Some((_, tail)) => Some(std::mem::replace(tail, slot)),
            None => {
                self.queues.insert(key_hash, (slot, slot));
                None
            }
        }
    }

    /// The head of a key's FIFO.
    pub(crate) fn head(&self, key_hash: u64) -> Option<u32> {
        self.queues.get(&key_hash).map(|q| q.0)
    }

    /// Removes the head; `next` is the removed event's link. Returns the new head.
    pub(crate) fn pop(&mut self, key_hash: u64, next: Option<u32>) -> Option<u32> {
        match next {
            Some(n) => {
                if let Some(q) = self.queues.get_mut(&key_hash) {
                    q.0 = n;
                }
                Some(n)
            }
            None => {
                self.queues.remove(&key_hash);
                None
            }
        }
    }

    /// Keys with events in flight.
    pub(crate) fn keys(&self) -> usize {
        self.queues.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_per_key() {
        let mut o = KeyOrder::default();
        assert_eq!(o.push(1, 10), None);
        assert_eq!(o.push(1, 11), Some(10));
        assert_eq!(o.push(2, 20), None);
        assert_eq!(o.head(1), Some(10));
        assert_eq!(o.pop(1, Some(11)), Some(11));
        assert_eq!(o.pop(1, None), None);
        assert_eq!(o.head(1), None);
        assert_eq!(o.keys(), 1);
    }
}
