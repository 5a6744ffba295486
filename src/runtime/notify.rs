//! Wake-ups between tasks of one executor, so that no task sleeps on a timer to see whether
//! something changed.
//!
//! [`Notify`] is a single-waiter flag: `notify` sets it and wakes the task waiting in `wait`.
//! Setting it twice before the wait costs nothing extra, so a burst of work wakes a writer once.
//!
//! [`Waiters`] is a broadcast: `notify_all` wakes every task waiting at that moment. Each
//! waiting future holds one slot, which it fills with its own waker (replaced, not added, when
//! it is polled again) and frees when it ends, so the set never holds more wakers than there
//! are tasks waiting: never one per event or per notification (glommio panics past 32,767
//! wakers of one task). A waiter checks its condition, then waits; nothing can happen on the
//! executor between the two, so no notification is lost.
//!
//! [`ShardWakes`] are the broadcasts of one shard. Owns nothing else; knows nothing of glommio.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Whether a wake-up is pending: notified, and not waited for since.
    #[cfg(test)]
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Resolves once the flag is set (now or later), clearing it.
    pub fn wait(&self) -> Wait<'_> {
        Wait { notify: self }
    }
}

pub struct Wait<'a> {
    notify: &'a Notify,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.set.replace(false) {
            return Poll::Ready(());
        }
        *self.notify.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A broadcast to every task waiting on it (see the module doc).
#[derive(Default)]
pub struct Waiters {
    /// Bumped by every `notify_all`: a waiter that saw an older one is done.
    epoch: Cell<u64>,
    /// One slot per waiting future: its waker, `None` once woken (or not yet polled).
    slots: RefCell<Vec<Option<Waker>>>,
    /// Slots no future holds.
    free: RefCell<Vec<usize>>,
    /// How many futures hold a slot.
    held: Cell<usize>,
    /// `notify_all` calls that found someone waiting (for tests and the counters).
    wakes: Cell<u64>,
}

impl Waiters {
    /// Resolves at the next `notify_all` after this call.
    pub fn wait(&self) -> WaitAll<'_> {
        WaitAll {
            waiters: self,
            epoch: self.epoch.get(),
            slot: None,
        }
    }

    /// Some task waits (the check is one load: callers test it before working out whether
    /// to notify).
    pub fn is_waited(&self) -> bool {
        self.held.get() > 0
    }

    /// Wakes every task waiting now.
    pub fn notify_all(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        if !self.is_waited() {
            return;
        }
        self.wakes.set(self.wakes.get() + 1);
        // Taken out first: a waker may run code that waits again.
        let wakers: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// How many `notify_all` calls woke someone.
    pub fn wakes(&self) -> u64 {
        self.wakes.get()
    }

    /// The slots the set ever needed at once (its size never shrinks).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.slots.borrow().len()
    }

    fn release(&self, slot: usize) {
        if let Some(s) = self.slots.borrow_mut().get_mut(slot) {
            *s = None;
        }
        self.free.borrow_mut().push(slot);
        self.held.set(self.held.get() - 1);
    }
}

/// A wait on [`Waiters`]: ready once `notify_all` was called after it was made.
pub struct WaitAll<'a> {
    waiters: &'a Waiters,
    epoch: u64,
    slot: Option<usize>,
}

impl Future for WaitAll<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let waiters = self.waiters;
        if waiters.epoch.get() != self.epoch {
            if let Some(slot) = self.slot.take() {
                waiters.release(slot);
            }
            return Poll::Ready(());
        }
        let slot = match self.slot {
            Some(slot) => slot,
            None => {
                let mut slots = waiters.slots.borrow_mut();
                let slot = waiters.free.borrow_mut().pop().unwrap_or_else(|| {
                    slots.push(None);
                    slots.len() - 1
                });
                drop(slots);
                waiters.held.set(waiters.held.get() + 1);
                self.slot = Some(slot);
                slot
            }
        };
        let mut slots = waiters.slots.borrow_mut();
        if let Some(s) = slots.get_mut(slot) {
            match s {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *s = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}

impl Drop for WaitAll<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.waiters.release(slot);
        }
    }
}

/// One shard's broadcasts: what its tasks wait for instead of polling.
#[derive(Default)]
pub struct ShardWakes {
    /// Router reads held for the shard's limits: the engine's events in flight and the outbox
    /// are both back at their low watermark (see `runtime::release_room`).
    pub reads: Waiters,
    /// Mesh consumers holding an event: the engine's events in flight are back at the low
    /// watermark.
    pub events: Waiters,
    /// Something moved (an engine input was carried out, the outbox shrank, the spool wrote):
    /// what the shutdown's drain waits on.
    pub progress: Waiters,
    /// Shutdown started: accept loops and their pauses end.
    pub shutdown: Waiters,
    /// A shard's snapshot arrived (`status.rs`).
    pub snapshots: Waiters,
    /// A reload's turn ended (`reload.rs`).
    pub reload: Waiters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut Pin<&mut WaitAll<'_>>, waker: &Waker) -> Poll<()> {
        f.as_mut().poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn notify_all_wakes_every_waiter_once() {
        let w = Waiters::default();
        let counts: Vec<_> = (0..3)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let wakers: Vec<Waker> = counts.iter().map(|c| Waker::from(c.clone())).collect();
        let mut futs: Vec<_> = (0..3).map(|_| Box::pin(w.wait())).collect();
        for (f, k) in futs.iter_mut().zip(&wakers) {
            assert!(poll(&mut f.as_mut(), k).is_pending());
        }
        assert!(w.is_waited());
        w.notify_all();
        for c in &counts {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
        }
        for (f, k) in futs.iter_mut().zip(&wakers) {
            assert!(poll(&mut f.as_mut(), k).is_ready());
        }
        assert!(!w.is_waited());
        assert_eq!(w.wakes(), 1);
    }

    #[test]
    fn a_waiter_polled_many_times_holds_one_slot_and_one_waker() {
        let w = Waiters::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut f = Box::pin(w.wait());
        for _ in 0..100_000 {
            assert!(poll(&mut f.as_mut(), &waker).is_pending());
        }
        assert_eq!(w.capacity(), 1);
        // The set holds one clone of the waker, whatever the number of polls.
        assert_eq!(Arc::strong_count(&count), 3);
        drop(f);
        assert!(!w.is_waited());
        // A dropped waiter's slot is reused, not added to.
        let mut g = Box::pin(w.wait());
        assert!(poll(&mut g.as_mut(), &waker).is_pending());
        assert_eq!(w.capacity(), 1);
    }

    #[test]
    fn a_wait_made_before_a_notification_is_ready_even_if_never_polled_before() {
        let w = Waiters::default();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut f = Box::pin(w.wait());
        w.notify_all();
        assert!(poll(&mut f.as_mut(), &waker).is_ready());
        // A wait made after it is not.
        let mut g = Box::pin(w.wait());
        assert!(poll(&mut g.as_mut(), &waker).is_pending());
        assert_eq!(w.wakes(), 0, "nobody was waiting at the notification");
    }
}
