//! Waiter counts (table pins): the reader table's `waiters`, which the
//! writer's publish loads to decide whether to make the wake-up syscall, and
//! each entry's `waiting` mark, which says how much of that count is the
//! entry owner's, so that the count of a waiter killed while it waits can be
//! taken back (docs/PROTOCOL.md, "Wake-ups").
//!
//! Per entry, the owner's share of `waiters` is never below its mark: it
//! raises `waiters` before its mark and lowers its mark before `waiters`. So
//! whoever takes a dead owner's mark back (under the entry's lock: the
//! writer's reclaim, or the next reader that claims the entry) never removes
//! a count that a live waiter holds. What that order cannot cover is a waiter
//! killed between its two steps (adjacent instructions): its +1 stays in
//! `waiters` with no mark, as every count did before marks existed. That
//! over-counts (the writer makes a wake-up syscall that wakes nobody), it
//! never loses a wake-up.

use core::time::Duration;

use crate::protocol::sync::AtomicU32;
use crate::protocol::sync::Ordering::{Relaxed, SeqCst};

/// How long one futex wait lasts at most (blocking waits and the async
/// helper): a writer that dies without publishing is noticed within this
/// slice, and so is a publish whose wake-up did not reach a waiter (the
/// waiter the writer woke died before passing it on).
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Where one wait counts itself: the table's `waiters` and, if the waiting
/// handle owns an entry, that entry's `waiting` mark (`None`: a handle that
/// could not claim an entry, or a reader of an older build: its count cannot
/// be taken back if it dies).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WaitCount<'a> {
    pub waiters: &'a AtomicU32,
    pub mark: Option<&'a AtomicU32>,
}

impl WaitCount<'_> {
    /// Counts one wait, before the waiter loads the `notify` value it will
    /// sleep on.
    pub(crate) fn count(&self) {
        if crate::protocol::sync::mutation("mark-before-count") {
            // Wrong: a waiter killed between the two leaves a mark for a
            // count it never added; taking it back takes a live waiter's.
            self.mark_one();
            crate::protocol::sync::crash_point("wait-between-count-and-mark");
            self.waiters.fetch_add(1, SeqCst);
            crate::protocol::sync::sc_order();
            return;
        }
        // SYNC(wake): SeqCst, then the waiter's SeqCst load of `notify`; pairs
        // with the SeqCst bump of `notify` and load of `waiters` in
        // `slots::announce` (store-buffering: the writer sees the count, or the
        // waiter sees the bump and does not sleep).
        self.waiters.fetch_add(1, SeqCst);
        crate::protocol::sync::crash_point("wait-between-count-and-mark");
        self.mark_one();
        // Loom only: the SeqCst order between our count and the caller's
        // load of `notify` (`sync::sc_order`).
        crate::protocol::sync::sc_order();
    }

    fn mark_one(&self) {
        if let Some(m) = self.mark {
            // SYNC(waiting): Relaxed: only the owner's threads change a live
            // entry's mark (RMWs, so they add up); whoever takes a dead
            // owner's mark back reads it under the entry's lock, which orders
            // it after everything the owner did (the kernel dropped the lock
            // when the owner died).
            m.fetch_add(1, Relaxed);
        }
    }

    /// Takes one wait's count back, after the waiter woke.
    pub(crate) fn uncount(&self) {
        if let Some(m) = self.mark {
            // SYNC(waiting): Relaxed, as in `mark_one`; before `waiters`, so
            // the owner's share never falls below its mark.
            m.fetch_sub(1, Relaxed);
        }
        crate::protocol::sync::crash_point("wait-between-unmark-and-uncount");
        // SYNC(wake): SeqCst, as every access to `waiters`: a later load (the
        // writer's, or a waiter's in `pass_on_wake`) that sees it no longer
        // counts us.
        self.waiters.fetch_sub(1, SeqCst);
    }
}

/// The caller holds the lock of an entry whose owner is dead (it took it: the
/// writer's reclaim, or a reader claiming the entry): takes the dead owner's
/// waits back from `waiters` and clears its mark. Returns how many.
///
/// The owner's share of `waiters` is at least its mark (see the module
/// docs), so this removes only counts of the dead owner. It saturates at 0 so
/// that a mark garbled by a hostile reader cannot wrap the count around.
pub(crate) fn settle_dead_waits(waiters: &AtomicU32, mark: &AtomicU32) -> u32 {
    // SYNC(waiting): Relaxed: the entry's lock (taken with Acquire semantics
    // after the kernel dropped the dead owner's) orders this after the owner's
    // last mark and count; nobody else writes the mark while we hold the lock.
    let m = mark.swap(0, Relaxed);
    if m != 0 {
        // SYNC(wake): SeqCst, as every access to `waiters` (an RMW: it never
        // loses a live waiter's concurrent increment).
        let _ = waiters.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(m)));
    }
    m
}
