//! The last minute of one shard: terminal states, residence and per-server answer latency in a
//! ring of ten-second slots, so the status page can show rates and percentiles that move with
//! the traffic (the whole-run counts in `counters.rs` never reset).
//!
//! Bounded: [`SLOTS`] slots, each a fixed set of small histograms reused in place (a slot is
//! cleared when its ten seconds come round again), so recording allocates nothing once every
//! server has a histogram. Reads no clock: every call brings `now`.

use super::counters::{Terminal, TerminalCounts};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// Slots in the ring: the window is the current slot and the five before it.
pub(crate) const SLOTS: usize = 6;
/// How much time one slot covers.
pub(crate) const SLOT: Duration = Duration::from_secs(10);

/// A slot's histograms: 1 µs to 1 h at two significant digits (1 %), ample for a status page
/// and a tenth of the whole-run histograms' size.
fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("constant histogram bounds are valid")
}

#[derive(Clone, Debug)]
struct Slot {
    /// Which ten seconds since `base` it holds; `u64::MAX` for never used.
    epoch: u64,
    terminal: TerminalCounts,
    residence: Histogram<u32>,
    latency: Vec<Histogram<u32>>,
}

impl Slot {
    fn new(servers: usize) -> Slot {
        Slot {
            epoch: u64::MAX,
            terminal: [0; 5],
            residence: histogram(),
            latency: (0..servers).map(|_| histogram()).collect(),
        }
    }
}

/// The ring. See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Recent {
    base: Instant,
    slots: Vec<Slot>,
}

/// The window merged: what [`Recent::window`] returns and the shards' snapshots carry.
#[derive(Clone, Debug)]
pub struct Window {
    /// The time the window covers (shorter in the first minute after start).
    pub span: Duration,
    /// Verdicts released in the window, by terminal state.
    pub terminal: TerminalCounts,
    /// Residence of the verdicts released in the window, microseconds.
    pub residence: Histogram<u32>,
    /// Answer latency per server, microseconds.
    pub latency: Vec<Histogram<u32>>,
}

impl Window {
    /// An empty window (no shard reported).
    pub fn empty(servers: usize) -> Window {
        let s = Slot::new(servers);
        Window {
            span: Duration::ZERO,
            terminal: s.terminal,
            residence: s.residence,
            latency: s.latency,
        }
    }

    /// Adds another shard's window (the spans are nearly equal: the longest is kept).
    pub fn merge(&mut self, o: &Window) {
        self.span = self.span.max(o.span);
        for (a, b) in self.terminal.iter_mut().zip(&o.terminal) {
            *a += b;
        }
        let _ = self.residence.add(&o.residence);
        while self.latency.len() < o.latency.len() {
            self.latency.push(histogram());
        }
        for (a, b) in self.latency.iter_mut().zip(&o.latency) {
            let _ = a.add(b);
        }
    }

    /// Verdicts per second in the window, by terminal state.
    pub fn per_second(&self, t: Terminal) -> f64 {
        let secs = self.span.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.terminal[t.index()] as f64 / secs
        }
    }
}

impl Recent {
    pub(crate) fn new(servers: usize, now: Instant) -> Recent {
        Recent {
            base: now,
            slots: (0..SLOTS).map(|_| Slot::new(servers)).collect(),
        }
    }

    /// Makes room for servers a reload added.
    pub(crate) fn grow(&mut self, servers: usize) {
        for s in &mut self.slots {
            while s.latency.len() < servers {
                s.latency.push(histogram());
            }
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_secs() / SLOT.as_secs()
    }

    /// The slot for `now`, cleared first if it held an older ten seconds.
    fn slot(&mut self, now: Instant) -> &mut Slot {
        let epoch = self.epoch(now);
        let slot = &mut self.slots[(epoch % SLOTS as u64) as usize];
        if slot.epoch != epoch {
            slot.epoch = epoch;
            slot.terminal = [0; 5];
            slot.residence.reset();
            for h in &mut slot.latency {
                h.reset();
            }
        }
        slot
    }

    pub(crate) fn record_terminal(&mut self, t: Terminal, residence_us: u64, now: Instant) {
        let slot = self.slot(now);
        slot.terminal[t.index()] += 1;
        slot.residence.saturating_record(residence_us.max(1));
    }

    pub(crate) fn record_answer(&mut self, server: usize, micros: u64, now: Instant) {
        if let Some(h) = self.slot(now).latency.get_mut(server) {
            h.saturating_record(micros.max(1));
        }
    }

    /// The current slot and the [`SLOTS`]` - 1` before it, merged.
    pub(crate) fn window(&self, now: Instant) -> Window {
        let current = self.epoch(now);
        let servers = self.slots.first().map_or(0, |s| s.latency.len());
        let mut w = Window::empty(servers);
        for s in &self.slots {
            if s.epoch <= current && current - s.epoch < SLOTS as u64 {
                for (a, b) in w.terminal.iter_mut().zip(&s.terminal) {
                    *a += b;
                }
                let _ = w.residence.add(&s.residence);
                for (a, b) in w.latency.iter_mut().zip(&s.latency) {
                    let _ = a.add(b);
                }
            }
        }
        let elapsed = now.saturating_duration_since(self.base);
        let full = SLOT * (SLOTS as u32 - 1);
        let partial = Duration::from_nanos((elapsed.as_nanos() % SLOT.as_nanos()) as u64);
        w.span = elapsed.min(full + partial);
        w
    }
}

#[cfg(test)]
// The tests read the clock once for a base instant; the code under test takes time as a parameter.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let t0 = Instant::now();
        let mut r = Recent::new(1, t0);
        r.record_terminal(Terminal::Pass, 100, t0);
        r.record_answer(0, 50, t0);
        let w = r.window(t0 + Duration::from_secs(5));
        assert_eq!(w.terminal[Terminal::Pass.index()], 1);
        assert_eq!(w.span, Duration::from_secs(5));
        assert_eq!(w.latency[0].len(), 1);
        // 30 s later: still in; 61 s later: the first slot has left the window.
        r.record_terminal(Terminal::Bounce, 100, t0 + Duration::from_secs(30));
        let w = r.window(t0 + Duration::from_secs(35));
        assert_eq!(w.terminal[Terminal::Pass.index()], 1);
        assert_eq!(w.terminal[Terminal::Bounce.index()], 1);
        let w = r.window(t0 + Duration::from_secs(61));
        assert_eq!(w.terminal[Terminal::Pass.index()], 0);
        assert_eq!(w.terminal[Terminal::Bounce.index()], 1);
        assert_eq!(w.span, Duration::from_secs(51));
        assert!((w.per_second(Terminal::Bounce) - 1.0 / 51.0).abs() < 1e-9);
        // Ten minutes on, the slot the pass was in is reused and cleared first.
        let later = t0 + Duration::from_secs(600);
        r.record_terminal(Terminal::Drop, 10, later);
        let w = r.window(later);
        assert_eq!(w.terminal, [0, 0, 0, 1, 0]);
        assert_eq!(w.latency[0].len(), 0);
    }

    #[test]
    fn a_slot_histogram_is_small() {
        let h = histogram();
        assert!(h.distinct_values() * std::mem::size_of::<u32>() <= 16 * 1024);
    }

    #[test]
    fn windows_merge_across_shards_and_grow_with_servers() {
        let t0 = Instant::now();
        let mut a = Recent::new(1, t0);
        let mut b = Recent::new(1, t0);
        b.grow(2);
        a.record_answer(0, 1000, t0);
        b.record_answer(1, 2000, t0);
        b.record_answer(7, 2000, t0);
        let mut w = a.window(t0 + SLOT);
        w.merge(&b.window(t0 + SLOT));
        assert_eq!(w.latency.len(), 2);
        assert_eq!(w.latency[0].len() + w.latency[1].len(), 2);
    }
}
