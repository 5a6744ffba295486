//! The buffers the engine writes its requests and verdicts into, so that writing one allocates
//! nothing in steady state.
//!
//! A few chunks of 64 KiB; each stanza is written at the end of one and split off as a view of
//! it (`Bytes`, one shared header per chunk). The runtime copies a stanza into its connection's
//! output and drops the view soon after, and a chunk whose views are all gone is reused from
//! its start. When every chunk still has a view alive and none has room, a new chunk takes the
//! place of the current one (the old one goes with its last view), so what the engine keeps is
//! bounded by [`CHUNKS`] chunks of [`CHUNK`] bytes. A stanza larger than a quarter chunk gets a
//! buffer of its own.
//!
//! Must not: hold a view itself, or write anything but what its caller gives it.

use bytes::{Bytes, BytesMut};

/// A chunk's size.
const CHUNK: usize = 64 * 1024;
/// Chunks kept.
const CHUNKS: usize = 4;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct OutBuffers {
    chunks: Vec<BytesMut>,
    current: usize,
}

impl OutBuffers {
    /// What `write` writes, about `hint` bytes (more is fine), as a stanza of its own.
    pub(crate) fn write(&mut self, hint: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        if hint > CHUNK / 4 {
            let mut own = BytesMut::with_capacity(hint);
            write(&mut own);
            return own.freeze();
        }
        let chunk = self.room(hint);
        write(chunk);
        chunk.split().freeze()
    }

    /// A chunk with room for `hint` more bytes: the current one, else one whose views are all
    /// gone (the tails of the others are left alone: a view written there would keep them in
    /// use), else a new one.
    fn room(&mut self, hint: usize) -> &mut BytesMut {
        let n = self.chunks.len();
        let fits = self
            .chunks
            .get(self.current)
            .is_some_and(|c| c.capacity() >= hint);
        if !fits {
            // Reclaimed whole: asked for less, a chunk would only get that much.
            let free = (0..n)
                .map(|k| (self.current + k) % n)
                .find(|&i| self.chunks[i].try_reclaim(CHUNK));
            self.current = match free {
                Some(i) => i,
                None if n < CHUNKS => {
                    self.chunks.push(BytesMut::with_capacity(CHUNK));
                    n
                }
                None => {
                    self.chunks[self.current] = BytesMut::with_capacity(CHUNK);
                    self.current
                }
            };
        }
        &mut self.chunks[self.current]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_reused_once_its_views_are_gone_and_kept_ones_stay_whole() {
        let mut o = OutBuffers::default();
        let first = o.write(100, |b| b.extend_from_slice(b"hello"));
        assert_eq!(&first[..], b"hello");
        let second = o.write(100, |b| b.extend_from_slice(b"world"));
        assert_eq!(&second[..], b"world");
        drop((first, second));
        // Fill the chunk to its end: it is reclaimed from its start.
        let mut kept = Vec::new();
        for i in 0..CHUNK / 1000 + 1 {
            let b = o.write(1000, |b| b.extend_from_slice(&[i as u8; 1000]));
            kept.push(b);
        }
        assert_eq!(
            o.chunks.len(),
            2,
            "a second chunk while the first is in use"
        );
        drop(kept);
        let again = o.write(100, |b| b.extend_from_slice(b"again"));
        assert_eq!(o.chunks.len(), 2, "a chunk whose views are gone is reused");
        assert_eq!(&again[..], b"again");
        // Views kept while many chunks fill: never more than CHUNKS chunks, every view intact.
        let views: Vec<Bytes> = (0..CHUNKS * 80)
            .map(|i| o.write(1000, |b| b.extend_from_slice(&[i as u8; 1000])))
            .collect();
        assert!(o.chunks.len() <= CHUNKS);
        for (i, v) in views.iter().enumerate() {
            assert!(v.iter().all(|&x| x == i as u8) && v.len() == 1000);
        }
        let big = o.write(CHUNK, |b| b.extend_from_slice(&vec![7; CHUNK]));
        assert_eq!(big.len(), CHUNK);
    }
}
