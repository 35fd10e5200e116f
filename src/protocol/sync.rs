//! Atomics shim: std atomics normally, loom's under `--cfg loom`, so that the
//! protocol code (`words.rs`, `slots.rs`, `lock_pins.rs`) is model-checked
//! unchanged (`loom_tests.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// F_R of a pin (`words::pin_current`) placed right after the reader's
/// count, a read-modify-write that succeeded (`count`, ordered [`COUNT_RMW`]).
///
/// On x86-64 that RMW is a `lock cmpxchg`, which the hardware already orders
/// as a full barrier: the pin store before it is globally visible before it,
/// and no later load is performed before it (Intel SDM vol. 3A §9.2.2,
/// "Locked instructions have a total order", "Reads or writes cannot be
/// reordered with ... locked instructions"; AMD APM vol. 2 §7.4.2). An
/// `mfence` after it orders nothing more (without it the pin's atomics take
/// 0.61–0.84× the time: BENCHMARKS.md, "New-generation read"), so there F_R
/// is a compiler fence only, which keeps the compiler from moving the
/// re-load of `current` above the RMW (and `COUNT_RMW` = SeqCst keeps the
/// pin store above it). The writer's F_W stays an `mfence`. The same choice
/// as crossbeam-epoch's `pin` on x86. Everywhere else, and under loom and
/// Miri (which check the protocol with the fence, as C11 states it), the
/// SeqCst fence itself (docs/PROTOCOL.md, "F_R on x86-64").
#[inline(always)]
pub(crate) fn fence_after_count() {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    fence(Ordering::SeqCst);
}

/// The success ordering of the reader's count RMW: SeqCst on x86-64 (free
/// there: every ordering of a `lock cmpxchg` is the same instruction), which
/// keeps the compiler from moving the pin store below it or the re-load of
/// `current` above it when F_R is only a compiler fence
/// ([`fence_after_count`]), exactly as crossbeam-epoch's `pin` orders its
/// `compare_exchange`; Relaxed elsewhere, where the SeqCst fence orders it.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
pub(crate) const COUNT_RMW: Ordering = Ordering::SeqCst;
#[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
pub(crate) const COUNT_RMW: Ordering = Ordering::Relaxed;

/// Spin-loop hint (a yield under loom, so the model makes progress).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// Under loom, in the models that set `SC_ORDER`, a `fence(SeqCst)`
/// standing for the single total order that C11 gives SeqCst accesses: loom
/// models SeqCst loads, stores and RMWs as AcqRel (loom's README,
/// "Unsupported features"), so the store-buffering argument of the wake-up
/// handshake (a SeqCst RMW then a SeqCst load on each side:
/// `waiters::WaitCount::count` then the waiter's re-check of `notify`, and
/// `slots::announce`) would show false lost wake-ups; a fence between the two
/// accesses of each side gives loom that order. Only those models: a fence
/// also orders the accesses around it, more than the real code's SeqCst
/// accesses do, and would hide the bugs other models look for. Nothing
/// outside loom: the SeqCst accesses themselves give the order.
#[inline(always)]
pub(crate) fn sc_order() {
    #[cfg(loom)]
    if *SC_ORDER.lock().unwrap_or_else(|e| e.into_inner()) {
        fence(Ordering::SeqCst);
    }
}

/// Whether `sc_order` fences (set by the models of the wake-up handshake).
#[cfg(loom)]
pub(crate) static SC_ORDER: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

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

/// Under loom, a reader process "dies" here when `CRASH_AT` names this point:
/// the model runs the real reader code up to that instruction and unwinds
/// (`loom_tests::crashed`), then drops the process's locks as the kernel
/// would. Compiled away outside loom.
#[cfg(loom)]
pub(crate) fn crash_point(name: &str) {
    let armed = {
        let mut at = CRASH_AT.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *at {
            (point, 0) if *point == name => true,
            (point, skip) if *point == name => {
                *skip -= 1;
                false
            }
            _ => false,
        }
    };
    if armed {
        std::panic::panic_any(Crashed);
    }
}

#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// The point where the model's crashing reader dies ("" = nowhere), and how
/// many times it passes that point first.
#[cfg(loom)]
pub(crate) static CRASH_AT: std::sync::Mutex<(&'static str, u32)> = std::sync::Mutex::new(("", 0));

/// The unwind payload of a `crash_point`.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Crashed;
