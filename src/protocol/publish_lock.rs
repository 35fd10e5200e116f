//! The shared writers' publish lock on one 32-bit word (docs/PROTOCOL.md
//! "Shared writers"; `write/shared.rs` keeps the word in the `.lock` file's
//! writer table). The algorithm is here, apart from the system calls it
//! makes, so that loom checks this code (`loom_tests.rs`): how a writer
//! learns that a holder died (a probe of its seat lock) and how it sleeps
//! (`FUTEX_WAIT`) and wakes another (`FUTEX_WAKE`) are the caller's.
//!
//! The word is 0 when free, else the holder's id (seat + 1, never 0 and
//! below `CONTENDED`), with `CONTENDED` set while writers may be asleep on it.

use crate::protocol::sync::AtomicU32;
use crate::protocol::sync::Ordering::{Acquire, Relaxed, Release};

/// Set in the word while other writers may sleep on it: the holder wakes one
/// as it lets go.
pub(crate) const CONTENDED: u32 = 1 << 31;

/// Takes the lock for `mine` (non-zero, below `CONTENDED`): at once when it
/// is free; when its holder is `dead` (the caller's probe), by taking it over;
/// else, with `block`, after `sleep(seen)` until one of the two (`sleep` may
/// return early: the word is looked at again), or `Ok(false)` without.
pub(crate) fn lock<E>(
    word: &AtomicU32,
    mine: u32,
    block: bool,
    mut dead: impl FnMut(u32) -> Result<bool, E>,
    mut sleep: impl FnMut(u32),
) -> Result<bool, E> {
    debug_assert!(mine != 0 && mine < CONTENDED);
    // SYNC(publish-lock): Acquire on every successful CAS here pairs with the
    // Release swap in `unlock` of the previous holder: what it wrote under
    // the lock (the slot table, the turn count) is visible to the next.
    // Taking over from a dead holder needs nothing more: its writes, made
    // before it died, are ordered before the probe that saw it dead.
    let mut seen = match word.compare_exchange(0, mine, acquire(), Relaxed) {
        Ok(_) => return Ok(true),
        Err(w) => w,
    };
    loop {
        let holder = seen & !CONTENDED;
        // Free, or its holder is dead: take it, contended, since other writers
        // may be asleep on it and our `unlock` must wake one.
        if holder == 0 || dead(holder)? {
            match word.compare_exchange(seen, mine | CONTENDED, acquire(), Relaxed) {
                Ok(_) => return Ok(true),
                Err(w) => {
                    seen = w;
                    continue;
                }
            }
        }
        if !block {
            return Ok(false);
        }
        if seen & CONTENDED == 0 {
            // SYNC(publish-lock): Relaxed; it only tells the holder to wake one.
            if let Err(w) = word.compare_exchange(seen, seen | CONTENDED, Relaxed, Relaxed) {
                seen = w;
                continue;
            }
            seen |= CONTENDED;
        }
        sleep(seen);
        seen = word.load(Relaxed);
    }
}

/// Releases the lock; calls `wake` when writers may be asleep on it.
pub(crate) fn unlock(word: &AtomicU32, wake: impl FnOnce()) {
    // SYNC(publish-lock): Release pairs with the Acquire CAS in `lock` of the
    // next holder.
    if word.swap(0, release()) & CONTENDED != 0 {
        wake();
    }
}

/// The holder's id in a word as tools read it (`None` when free).
pub(crate) fn holder(word: u32) -> Option<u32> {
    Some(word & !CONTENDED).filter(|&h| h != 0)
}

/// `Acquire`, or `Relaxed` in the loom model that checks it is needed.
#[inline(always)]
fn acquire() -> crate::protocol::sync::Ordering {
    if crate::protocol::sync::mutation("publish-lock-relaxed") {
        Relaxed
    } else {
        Acquire
    }
}

/// `Release`, or `Relaxed` in the loom model that checks it is needed.
#[inline(always)]
fn release() -> crate::protocol::sync::Ordering {
    if crate::protocol::sync::mutation("publish-lock-relaxed") {
        Relaxed
    } else {
        Release
    }
}
