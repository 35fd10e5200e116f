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
    // SYNC(pin-scan): F_W; pairs with F_R in `pin_current` (store-buffering).
    fence(Ordering::SeqCst);
    // SYNC(claim): after F_W. A reader raises `high_water` in `claim_entry`
    // (fetch_max) before its pin store P and its fence F_R; if F_R precedes
    // F_W in the SeqCst order, this load sees that raise (fence-fence rule,
    // as for P itself), so a new entry is never outside the scan. Relaxed:
    // the fences order it.
    let entries = high_water.load(Ordering::Relaxed).min(capacity);
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
        fence(Ordering::SeqCst);
        // SYNC(publish): Acquire pairs with the Release in `publish`.
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 {
            return Pinned::Word(c1);
        }
        c1 = c2;
        crate::sync::spin_hint();
    }
}

/// Reader: drops the pin.
#[inline]
pub(crate) fn unpin(pin: &AtomicU64) {
    // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`.
    pin.store(0, Ordering::Release);
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
