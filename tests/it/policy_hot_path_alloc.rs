//! The engine's hot-path calls into the policy must not allocate (the conversation key allocates
//! exactly the `String` it returns, for ASCII addresses). Counted with a per-thread counting
//! allocator so the test harness's own threads do not interfere.

use palisade_core::policy::{
    conversation_key, load_str, CompiledPolicy, EventId, EventKind, PacketType, DEFAULT_TOML,
};
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

fn allocations_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (ALLOCATIONS.with(Cell::get) - before, result)
}

#[test]
fn hot_path_calls_do_not_allocate() {
    let loaded = load_str(DEFAULT_TOML, "default").unwrap_or_else(|d| panic!("{d:?}"));
    let policy = CompiledPolicy::compile(&loaded.config);

    let (n, event) = allocations_in(|| EventId::lookup(b"onBeforeBroadcast"));
    assert_eq!(n, 0, "EventId::lookup");
    let event = event.unwrap_or_else(|| panic!("lookup"));

    let (n, packet) = allocations_in(|| PacketType::classify(b"presence", Some(b"subscribed")));
    assert_eq!(
        (n, packet),
        (0, Some(PacketType::Subscription)),
        "PacketType::classify"
    );

    let (n, node) = allocations_in(|| policy.node_id(b"IMP1.example.com"));
    assert_eq!(n, 0, "node_id");

    let (n, len) = allocations_in(|| policy.chain(event, packet, node).len());
    assert_eq!((n, len), (0, 0), "chain");
    let es_out = EventId::lookup(b"es_OUT").unwrap_or_else(|| panic!("es_OUT"));
    let (n, len) = allocations_in(|| policy.chain(es_out, Some(PacketType::Message), node).len());
    assert_eq!((n, len), (0, 1), "chain");
}

#[test]
fn conversation_key_allocates_only_its_result_for_ascii() {
    let cases = [
        (
            EventKind::Jsm,
            Some("Bob@Example.com/laptop"),
            Some("alice@example.com"),
            None,
        ),
        (
            EventKind::Jsm,
            Some("alice@example.com/laptop"),
            Some("example.com"),
            None,
        ),
        (
            EventKind::Jsm,
            Some("example.com"),
            Some("EXAMPLE.org"),
            None,
        ),
        (
            EventKind::Tc,
            Some("alice@example.com"),
            Some("room@conf.example.com/nick"),
            None,
        ),
        (EventKind::Tc, None, None, Some("Room@Conf.example.com")),
    ];
    for (kind, from, to, room) in cases {
        let (n, key) = allocations_in(|| conversation_key(kind, from, to, room));
        assert!(key.is_ok(), "{key:?}");
        assert_eq!(n, 1, "{kind:?} {from:?} {to:?} {room:?} -> {key:?}");
    }
}
