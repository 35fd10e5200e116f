//! The reader's side of lock pins (`pin_mode::LOCKS`): a pin is an OFD read
//! lock on the lock byte of the slot in use (`SLOT_LOCK_BASE + k` of the data
//! segment). The writer's side is in `slots.rs`; why the two are correct is in
//! docs/PROTOCOL.md ("Why lock pins are correct"). Written against
//! [`ByteLocks`] so that loom checks this very code on model locks.

use rustix::io::Errno;

use crate::protocol::layout::SLOT_LOCK_BASE;
use crate::protocol::locks::ByteLocks;
use crate::protocol::sync::{AtomicU64, Ordering};
use crate::protocol::{self, Pinned};

/// Read-locks the current slot's lock byte and confirms it is still current;
/// `held` is the slot this reader holds (replaced by the pinned one).
///
/// The writer takes a slot only if a probe of its byte, made after the slot
/// stopped being current, finds no read lock there, and it never locks a slot
/// itself; the kernel orders our lock against its probe. So a lock taken
/// after the probe comes with a changed word on the re-check (retry), and a
/// lock taken before it keeps the writer off the slot. A failed lock (a
/// writer of an older build write-locked the slot to fill it) also means a
/// publish happened. The loop never waits for the writer (lock-free, like
/// `protocol::pin_current`); docs/PROTOCOL.md, "Why lock pins are correct".
pub(crate) fn pin_with_locks(
    locks: &impl ByteLocks,
    current: &AtomicU64,
    held: &mut Option<u32>,
) -> Result<Pinned, Errno> {
    // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
    let mut c1 = current.load(Ordering::Acquire);
    loop {
        if c1 == 0 {
            return Ok(Pinned::Empty);
        }
        let k = protocol::slot_of(c1);
        if *held != Some(k) {
            // Let go of the old slot first (no snapshot of it lives: the caller
            // has `&mut`), so a reader never holds two slots and
            // `max_readers + 2` slots always leave the writer one.
            release(locks, held)?;
            if !locks.try_read_lock(SLOT_LOCK_BASE + k as u64)? {
                // Only a writer of an older build write-locks a slot, while it
                // fills one that is not current: our word is stale.
                // SYNC(publish): as above.
                c1 = current.load(Ordering::Acquire);
                crate::protocol::sync::spin_hint();
                continue;
            }
            *held = Some(k);
        }
        if crate::protocol::sync::mutation("lock-pin-no-recheck") {
            return Ok(Pinned::Word(c1));
        }
        // SYNC(publish): Acquire pairs with the Release in `protocol::publish`;
        // the lock syscall (the kernel's lock-list spinlock, which the
        // writer's probe also takes) orders this load after our lock.
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 {
            return Ok(Pinned::Word(c1));
        }
        c1 = c2;
    }
}

/// Drops the slot lock this reader holds, if any.
pub(crate) fn release(locks: &impl ByteLocks, held: &mut Option<u32>) -> Result<(), Errno> {
    match held.take() {
        Some(k) => locks.unlock(SLOT_LOCK_BASE + k as u64),
        None => Ok(()),
    }
}
