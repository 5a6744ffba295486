//! SIGINT and SIGTERM for the tools: the first one asks the tool to stop cleanly (the
//! simulator flushes its archive, the load generator drains and reports); a second one kills
//! the process as the default action would.
//!
//! Owns the process's handlers for those two signals; must only be installed by a tool's entry
//! point, never by the gateway (which has its own shutdown path).

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

#[allow(unsafe_code)] // signal(2) from the handler: see SAFETY below.
extern "C" fn on_signal(signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    // SAFETY: `signal` is async-signal-safe (glibc implements it with sigaction); restoring
    // the default action makes a second signal terminate the process.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Installs the handlers. Idempotent.
#[allow(unsafe_code)] // signal(2): see SAFETY below.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic and re-installs the default action, both
    // async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// True once SIGINT or SIGTERM arrived (or [`request_stop`] was called).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks the running tool to stop, as a signal would.
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}
