//! How many bytes a connection asks its transport for on each read: a quiet connection reads
//! into a small buffer, a busy one into a bigger one, within fixed bounds.
//!
//! The size doubles while reads fill it, halves after a run of reads that use a quarter of it
//! or less, and goes back to the minimum when the connection has been quiet (the driver says
//! so, on a timer tick with nothing read). It never leaves `[READ_MIN, READ_MAX]`.
//!
//! Owns the sizing decision only: it sees read sizes and the word "quiet", never a socket, a
//! buffer or a clock.

/// The smallest read, and the size a new or quiet connection reads with.
pub const READ_MIN: usize = 4 * 1024;
/// The largest read: one read of a busy router carries well over a hundred events.
pub const READ_MAX: usize = 64 * 1024;

/// See the module documentation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReadSize {
    len: usize,
    small_reads: u8,
}

impl Default for ReadSize {
    fn default() -> ReadSize {
        ReadSize {
            len: READ_MIN,
            small_reads: 0,
        }
    }
}

impl ReadSize {
    /// Reads of a quarter of the size or less, in a row, before it halves.
    pub const SHRINK_AFTER: u8 = 8;

    /// How many bytes the next read asks for.
    pub fn bytes(&self) -> usize {
        self.len
    }

    /// A read asked for [`ReadSize::bytes`] bytes and got `n` (0 < `n`; more than asked is
    /// counted as a full read).
    pub fn record(&mut self, n: usize) {
        if n >= self.len {
            self.len = (self.len * 2).min(READ_MAX);
            self.small_reads = 0;
        } else if n <= self.len / 4 {
            self.small_reads += 1;
            if self.small_reads >= Self::SHRINK_AFTER {
                self.len = (self.len / 2).max(READ_MIN);
                self.small_reads = 0;
            }
        } else {
            self.small_reads = 0;
        }
    }

    /// The connection read nothing for a while: back to the smallest size.
    pub fn quiet(&mut self) {
        *self = ReadSize::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_small_and_doubles_while_reads_fill_it() {
        let mut s = ReadSize::default();
        assert_eq!(s.bytes(), READ_MIN);
        let mut seen = vec![s.bytes()];
        while s.bytes() < READ_MAX {
            let full = s.bytes();
            s.record(full);
            seen.push(s.bytes());
        }
        assert_eq!(seen, [4096, 8192, 16384, 32768, 65536]);
        s.record(READ_MAX);
        assert_eq!(s.bytes(), READ_MAX, "capped");
    }

    #[test]
    fn halves_after_a_run_of_small_reads_only() {
        let mut s = ReadSize::default();
        for _ in 0..4 {
            let full = s.bytes();
            s.record(full);
        }
        assert_eq!(s.bytes(), READ_MAX);
        for _ in 0..ReadSize::SHRINK_AFTER - 1 {
            s.record(100);
        }
        // A read of more than a quarter breaks the run.
        s.record(READ_MAX / 2);
        for _ in 0..ReadSize::SHRINK_AFTER - 1 {
            s.record(100);
        }
        assert_eq!(
            s.bytes(),
            READ_MAX,
            "no run of {} small reads yet",
            ReadSize::SHRINK_AFTER
        );
        s.record(100);
        assert_eq!(s.bytes(), READ_MAX / 2);
        for _ in 0..100 {
            s.record(1);
        }
        assert_eq!(s.bytes(), READ_MIN, "never below the minimum");
    }

    #[test]
    fn quiet_goes_back_to_the_minimum() {
        let mut s = ReadSize::default();
        s.record(READ_MIN);
        s.record(2 * READ_MIN);
        assert_eq!(s.bytes(), 4 * READ_MIN);
        s.quiet();
        assert_eq!(s, ReadSize::default());
    }

    proptest! {
        /// Whatever the reads, the size stays within its bounds, grows only after a full read
        /// (by doubling), shrinks only by halving after a run of small reads, and a long run of
        /// small reads always brings it back to the minimum.
        #[test]
        fn bounded_and_follows_the_reads(
            reads in proptest::collection::vec((0usize..=2 * READ_MAX, any::<bool>()), 0..400),
        ) {
            let mut s = ReadSize::default();
            for (n, full) in reads {
                let before = s.bytes();
                // Half the reads fill what was asked (a busy peer), the rest are any size up to it.
                let n = if full { before } else { n.clamp(1, before) };
                s.record(n);
                let after = s.bytes();
                prop_assert!((READ_MIN..=READ_MAX).contains(&after));
                prop_assert!(after.is_power_of_two());
                if after > before {
                    prop_assert_eq!(after, 2 * before);
                    prop_assert!(n >= before);
                }
                if after < before {
                    prop_assert_eq!(after, before / 2);
                    prop_assert!(n <= before / 4);
                }
            }
            for _ in 0..(ReadSize::SHRINK_AFTER as usize) * 5 {
                s.record(1);
            }
            prop_assert_eq!(s.bytes(), READ_MIN);
        }
    }
}
