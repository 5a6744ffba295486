//! Which policy each event in flight walks under: events per policy epoch, and the earlier
//! policies a reload replaced that some event still needs (see `reload.rs`).
//!
//! Must not: read a clock or touch anything but its own counts.

use crate::policy::CompiledPolicy;
use std::sync::Arc;

/// Events in flight per policy epoch, and the earlier policies they still need.
#[derive(Debug, Default)]
pub(super) struct Epochs {
    entries: Vec<EpochEntry>,
}

#[derive(Debug)]
struct EpochEntry {
    epoch: u32,
    events: usize,
    /// `None` for the engine's current policy (the engine holds it).
    policy: Option<Arc<CompiledPolicy>>,
}

impl Epochs {
    pub(super) fn entered(&mut self, epoch: u32) {
        // Usually one entry: a linear scan is the cheapest lookup there is.
        match self.entries.iter_mut().find(|e| e.epoch == epoch) {
            Some(e) => e.events += 1,
            None => self.entries.push(EpochEntry {
                epoch,
                events: 1,
                policy: None,
            }),
        }
    }

    pub(super) fn left(&mut self, epoch: u32) {
        let Some(i) = self.entries.iter().position(|e| e.epoch == epoch) else {
            return;
        };
        let entry = &mut self.entries[i];
        entry.events = entry.events.saturating_sub(1);
        if entry.events == 0 && entry.policy.is_some() {
            // The last event of an earlier policy is gone: so is that policy.
            self.entries.swap_remove(i);
        }
    }

    /// `epoch` stops being current; its events keep `policy` until they leave.
    pub(super) fn retire(&mut self, epoch: u32, policy: Arc<CompiledPolicy>) {
        match self.entries.iter().position(|e| e.epoch == epoch) {
            Some(i) if self.entries[i].events > 0 => self.entries[i].policy = Some(policy),
            Some(i) => {
                self.entries.swap_remove(i);
            }
            None => {}
        }
    }

    pub(super) fn policy(&self, epoch: u32) -> Option<&CompiledPolicy> {
        let entry = self.entries.iter().find(|e| e.epoch == epoch)?;
        entry.policy.as_deref()
    }

    /// Earlier policies still held for events in flight.
    pub(super) fn held(&self) -> usize {
        self.entries.iter().filter(|e| e.policy.is_some()).count()
    }
}
