//! A per-thread counting allocator for the allocation tests (`policy_hot_path_alloc`,
//! `pipeline_hot_path_alloc`): the whole test binary allocates through it, and each thread
//! counts only its own allocations, so tests running beside each other do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// A counting allocator must implement the unsafe `GlobalAlloc`; every method forwards to the
// system allocator unchanged (see each SAFETY comment).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations this thread has made so far.
pub(crate) fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// How many allocations `f` made on this thread, and its result.
pub(crate) fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = allocations();
    let result = f();
    (allocations() - before, result)
}
