//! The publish / pin protocol, on plain atomics so that it runs unchanged on
//! shared memory, on a heap region under Miri, and under loom.
//!
//! # The publish word
//! One `AtomicU64`, `current = generation << SLOT_BITS | slot`, names the
//! published snapshot; 0 means "nothing published yet". The writer fills and
//! seals a free slot, then publishes it with a single Release store. Because
//! the whole record is one word there is no torn or half-written state: a writer
//! killed at any instruction leaves `current` naming a sealed slot. (The original
//! proposal was a seqlock over a multi-word record; one word makes crash recovery
//! trivial and makes the reader's fast path a single load. See docs/PROTOCOL.md.)
//!
//! # Pins (docs/DESIGN.md, invariants 1 and 2)
//! Each reader handle owns one `pin` word holding the publish word it uses.
//! The writer never writes a slot that is current or named by a pin. The race
//! between "a reader pins slot k" and "the writer picks k" is a store-buffering
//! (Dekker) pattern closed by SeqCst fences on both sides:
//!
//! ```text
//! reader                                writer
//! pin.store(c1)           (P)           current.store(new)            (W)
//! fence(SeqCst)           (F_R)         fence(SeqCst)                 (F_W)
//! c2 = current.load()     (C)           pins: pin.load() for all      (S)
//! ```
//! Either S sees P (k is skipped), or C sees W (so `c2 != c1` and the reader
//! retries). A slot k that is not current was replaced by a publish W that
//! precedes F_W, so a reader holding `c1` naming k sees a change.

use rustix::io::Errno;

use crate::layout::{slot_state, ReaderEntry, ReaderTableHeader, SlotEntry, READER_LOCK_BASE, SLOT_ALIGN};
use crate::locks::ByteLocks;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// Bits of the publish word that hold the slot index.
pub(crate) const SLOT_BITS: u32 = 12;
/// Upper bound on the number of slots (fits in `SLOT_BITS`).
pub(crate) const MAX_SLOTS: u32 = 1 << SLOT_BITS;
const SLOT_MASK: u64 = (MAX_SLOTS as u64) - 1;
/// Largest generation a publish word can carry (2^52 - 1: 14 years at 10 M/s).
pub(crate) const MAX_GENERATION: u64 = u64::MAX >> SLOT_BITS;

/// Encodes a publish word. `generation >= 1`, so a valid word is never 0.
#[inline]
pub(crate) fn word(generation: u64, slot: u32) -> u64 {
    debug_assert!((1..=MAX_GENERATION).contains(&generation) && slot < MAX_SLOTS);
    generation << SLOT_BITS | slot as u64
}

/// The generation in a publish word.
#[inline]
pub(crate) fn generation_of(word: u64) -> u64 {
    word >> SLOT_BITS
}

/// The slot index in a publish word.
#[inline]
pub(crate) fn slot_of(word: u64) -> u32 {
    (word & SLOT_MASK) as u32
}

/// Writer: makes the sealed slot named by `word` current.
#[inline]
pub(crate) fn publish(current: &AtomicU64, word: u64) {
    // SYNC(publish): Release pairs with the Acquire loads in `pin_current` and
    // `Reader::read`: the slot's bytes and entry, written before, are visible to a
    // reader that sees `word`.
    current.store(word, Ordering::Release);
}

/// Writer: marks in `pinned` (indexed by slot) every slot some pin names.
///
/// Starts with the SeqCst fence F_W, which must follow the last publish. Every
/// load the scan depends on comes after F_W: the number of entries to scan
/// (`high_water`, at most `capacity`) as well as the pins (`pin_at(i)`).
pub(crate) fn scan_pins<'a>(
    high_water: &AtomicU32,
    capacity: u32,
    pin_at: impl Fn(u32) -> Option<&'a AtomicU64>,
    pinned: &mut [bool],
) {
    let early = crate::sync::mutation("scan-high-water-before-fence").then(|| high_water.load(Ordering::Relaxed));
    // SYNC(pin-scan): F_W; pairs with F_R in `pin_current` (store-buffering).
    fence(Ordering::SeqCst);
    // SYNC(claim): after F_W. A reader raises `high_water` in `claim_entry`
    // (fetch_max) before its pin store P and its fence F_R; if F_R precedes
    // F_W in the SeqCst order, this load sees that raise (fence-fence rule,
    // as for P itself), so a new entry is never outside the scan. Relaxed:
    // the fences order it.
    let entries = early.unwrap_or_else(|| high_water.load(Ordering::Relaxed)).min(capacity);
    for pin in (0..entries).map_while(pin_at) {
        // SYNC(unpin): Acquire pairs with the Release pin store in `pin_current`
        // (and `unpin`): a reader's reads of a slot it has since left happen
        // before the writer's next writes to that slot.
        let p = pin.load(Ordering::Acquire);
        if p != 0 {
            if let Some(flag) = pinned.get_mut(slot_of(p) as usize) {
                *flag = true;
            }
        }
    }
}

/// Outcome of pinning the current snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pinned {
    /// `pin` now holds this publish word, and the writer will not write its slot
    /// until the pin changes.
    Word(u64),
    /// Nothing has been published yet.
    Empty,
}

/// Reader: pins the current snapshot (releasing whatever `pin` held before).
///
/// Lock-free: it retries only when a publish happened in between.
pub(crate) fn pin_current(current: &AtomicU64, pin: &AtomicU64) -> Pinned {
    // SYNC(publish): Acquire pairs with the Release in `publish`.
    let mut c1 = current.load(Ordering::Acquire);
    loop {
        if c1 == 0 {
            return Pinned::Empty;
        }
        // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`; this
        // store also drops the previous pin.
        pin.store(c1, Ordering::Release);
        // SYNC(pin-scan): F_R; pairs with F_W in `scan_pins`.
        if !crate::sync::mutation("pin-no-fence") {
            fence(Ordering::SeqCst);
        }
        if crate::sync::mutation("pin-no-recheck") {
            return Pinned::Word(c1);
        }
        // SYNC(publish): Acquire pairs with the Release in `publish`.
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 {
            return Pinned::Word(c1);
        }
        c1 = c2;
        crate::sync::spin_hint();
    }
}

/// Reader: where the slot named by the pinned word `word` keeps its bytes,
/// `(offset, len)`, checked against its entry (sealed at that generation, a
/// 64-aligned offset past `data_start`). The caller still checks the range
/// against the object's size before touching it.
pub(crate) fn pinned_region(e: &SlotEntry, word: u64, data_start: u64) -> Result<(u64, u64), String> {
    let slot = slot_of(word);
    // Relaxed suffices: these were written before the Release publish of
    // `word`, which the reader's Acquire load of `current` saw, and the pin
    // keeps the writer off them.
    let (offset, len, gen) =
        (e.offset.load(Ordering::Relaxed), e.len.load(Ordering::Relaxed), e.gen.load(Ordering::Relaxed));
    let state = e.state.load(Ordering::Relaxed);
    if state != slot_state::SEALED || gen != generation_of(word) {
        return Err(format!(
            "published slot {slot} holds generation {gen} (state {state}), expected {}",
            generation_of(word)
        ));
    }
    if offset % SLOT_ALIGN != 0 || offset < data_start || offset.checked_add(len).is_none() {
        return Err(format!("slot {slot} has offset {offset} and length {len}"));
    }
    Ok((offset, len))
}

/// Reader: drops the pin.
#[inline]
pub(crate) fn unpin(pin: &AtomicU64) {
    // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`.
    pin.store(0, Ordering::Release);
}

/// Reader: claims a free entry of the reader table (`Ok(None)`: all taken).
///
/// An entry belongs to whoever holds the write lock on its byte
/// (`READER_LOCK_BASE + i`); the kernel drops it when the owner dies. A dead
/// owner may have left a pin: the new owner clears it. The entry is counted in
/// `high_water` before this handle ever pins (see `scan_pins`).
pub(crate) fn claim_entry<'a>(
    locks: &impl ByteLocks,
    table: &ReaderTableHeader,
    capacity: u32,
    entry_at: impl Fn(u32) -> Option<&'a ReaderEntry>,
) -> Result<Option<u32>, Errno> {
    for i in 0..capacity {
        if !locks.try_write_lock(READER_LOCK_BASE + i as u64)? {
            continue;
        }
        let Some(e) = entry_at(i) else {
            locks.unlock(READER_LOCK_BASE + i as u64)?;
            return Ok(None);
        };
        unpin(&e.pin);
        // SYNC(claim): before any pin store of this handle and so before its
        // SeqCst fence F_R; pairs with the load after F_W in `scan_pins` (the
        // fences order it: Relaxed suffices).
        if !crate::sync::mutation("claim-without-high-water") {
            table.high_water.fetch_max(i + 1, Ordering::Relaxed);
        }
        table.opens.fetch_add(1, Ordering::Relaxed);
        return Ok(Some(i));
    }
    Ok(None)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips() {
        for (g, s) in [(1, 0), (7, 4095), (MAX_GENERATION, 3)] {
            let w = word(g, s);
            assert_ne!(w, 0);
            assert_eq!((generation_of(w), slot_of(w)), (g, s));
        }
    }

    #[test]
    fn scan_marks_pinned_slots_and_ignores_garbage() {
        let pins = [AtomicU64::new(0), AtomicU64::new(word(3, 2)), AtomicU64::new(word(9, 4000))];
        let mut pinned = vec![false; 4];
        scan_pins(&AtomicU32::new(3), 3, |i| pins.get(i as usize), &mut pinned);
        assert_eq!(pinned, [false, false, true, false]);
        // Only entries below the high-water mark (and the capacity) count.
        let far = [AtomicU64::new(word(3, 1)), AtomicU64::new(word(4, 3))];
        let mut pinned = vec![false; 4];
        scan_pins(&AtomicU32::new(u32::MAX), 1, |i| far.get(i as usize), &mut pinned);
        assert_eq!(pinned, [false, true, false, false]);
    }

    #[test]
    fn pin_follows_current() {
        let current = AtomicU64::new(0);
        let pin = AtomicU64::new(0);
        assert_eq!(pin_current(&current, &pin), Pinned::Empty);
        publish(&current, word(1, 1));
        assert_eq!(pin_current(&current, &pin), Pinned::Word(word(1, 1)));
        assert_eq!(pin.load(Ordering::Relaxed), word(1, 1));
        unpin(&pin);
        assert_eq!(pin.load(Ordering::Relaxed), 0);
    }
}
