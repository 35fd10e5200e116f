//! Atomics shim: std atomics normally, loom's under `--cfg loom`, so that the
//! protocol code (`protocol.rs`, `slots.rs`, `lock_pins.rs`) is model-checked
//! unchanged (`loom_tests.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Spin-loop hint (a yield under loom, so the model makes progress).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Whether the loom model currently checks the protocol code with mutation
/// `name` applied: each `#[should_panic]` model in `loom_tests.rs` breaks one
/// step of the real code (skip a re-check, load before a fence, ignore a lock)
/// and must find the torn view, which shows the model can fail. Always `false`
/// outside loom (and compiled away).
#[cfg(loom)]
pub(crate) fn mutation(name: &str) -> bool {
    *MUTATION.lock().unwrap_or_else(|e| e.into_inner()) == name
}

#[cfg(not(loom))]
#[inline(always)]
pub(crate) const fn mutation(_name: &str) -> bool {
    false
}

/// The mutation in effect; set by `loom_tests::model`, which runs one model at
/// a time.
#[cfg(loom)]
pub(crate) static MUTATION: std::sync::Mutex<&'static str> = std::sync::Mutex::new("");
