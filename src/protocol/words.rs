//! The publish word and the pin words (the protocol's overview is in
//! `protocol/mod.rs`): encoding a publish word, publishing, pinning and
//! unpinning, the per-slot pin counts, and claiming a reader-table entry.

use rustix::io::Errno;

use crate::protocol::layout::{slot_state, ReaderEntry, ReaderTableHeader, SlotEntry, READER_LOCK_BASE, SLOT_ALIGN};
use crate::protocol::locks::ByteLocks;
use crate::protocol::sync::{fence, AtomicU32, AtomicU64, Ordering};

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

/// Bits of a pin count word below its tag: `count = tag << COUNT_BITS | n`.
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The tag of a pin count for publish word `word`: its generation's low 32 bits.
#[inline]
fn count_tag(word: u64) -> u64 {
    generation_of(word) & COUNT_MASK
}

/// Pins counted in a pin count word.
#[inline]
pub(crate) fn count_of(count: u64) -> u32 {
    (count & COUNT_MASK) as u32
}

/// For tools: the pins counted in `count` if it carries the tag of
/// `generation` (a slot's count belongs to the generation it last held).
pub(crate) fn count_for(count: u64, generation: u64) -> Option<u32> {
    (count >> COUNT_BITS == generation & COUNT_MASK).then_some(count_of(count))
}

/// Writer: before slot `slot` is published with `generation`, its count
/// starts again at 0 with the new tag. The slot is free (no live pin), so
/// whatever the count held came from dead readers or from readers that will
/// fail their re-check; their late decrements carry the old tag and change
/// nothing, and their late increments fail too (the tag is not theirs).
#[inline]
pub(crate) fn reset_count(count: &AtomicU64, generation: u64) {
    // SYNC(count-reset): Relaxed; the Release `publish` of the slot's new word
    // that follows orders it before any reader's increment for that word (the
    // reader loads the word with Acquire before it counts). A swap, not a
    // store: it must come after every increment and decrement it erases in
    // the count's modification order (an RMW reads the latest value; loom
    // showed a plain store left unordered against them).
    count.swap((generation & COUNT_MASK) << COUNT_BITS, Ordering::Relaxed);
}

/// Writer: marks in `pinned` (indexed by slot) every slot whose pin count is
/// not zero. O(slots): the fast path of the slot choice.
///
/// Starts with the SeqCst fence F_W, which must follow the last publish; the
/// count loads come after it.
pub(crate) fn scan_counts<'a>(count_at: impl Fn(u32) -> Option<&'a AtomicU64>, pinned: &mut [bool]) {
    let early: Vec<bool> = if crate::protocol::sync::mutation("counts-loaded-before-fence") {
        (0..pinned.len() as u32).map(|k| count_at(k).is_none_or(|c| count_of(c.load(Ordering::Acquire)) != 0)).collect()
    } else {
        Vec::new()
    };
    // SYNC(pin-scan): F_W; pairs with F_R in `pin_current` (store-buffering):
    // a reader whose F_R precedes this fence has its increment seen below.
    fence(Ordering::SeqCst);
    for (k, flag) in pinned.iter_mut().enumerate() {
        *flag = match early.get(k) {
            Some(&e) => e,
            // SYNC(unpin): Acquire pairs with the Release decrement in
            // `uncount` (a release sequence over the other readers' RMWs):
            // a reader's reads of a slot it has left happen before the
            // writer's next writes to it. No count word: treat as pinned.
            None => count_at(k as u32).is_none_or(|c| count_of(c.load(Ordering::Acquire)) != 0),
        };
    }
}

/// Writer, slow path: slot `slot`, not current, is named by no pin (a
/// `scan_pins` after F_W said so, after dead readers were reclaimed), yet its
/// count `seen` is not zero: what it counts are pins of dead readers, or
/// increments of readers that will fail their re-check (their word is not
/// current). Clears it, keeping the tag; a concurrent change makes this a
/// no-op (the next slow path tries again). Returns whether it cleared.
pub(crate) fn clear_stale_count(count: &AtomicU64, seen: u64) -> bool {
    if crate::protocol::sync::mutation("stale-count-kept") {
        return false;
    }
    // SYNC(count-reset): Relaxed; a late decrement of the same tag finds 0 and
    // stays there (`uncount` never goes below 0); nobody can confirm a pin
    // of this tag any more (the slot is not current, generations only grow).
    count.compare_exchange(seen, seen & !COUNT_MASK, Ordering::Relaxed, Ordering::Relaxed).is_ok()
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
    /// The current word's slot has no pin count with its tag (a broken or
    /// tampered reader table): nothing is pinned.
    BadCount(u64),
}

/// Reader: counts a pin of `word` in its slot's count, if the count carries
/// `word`'s tag (else the slot was published again since: `word` is stale, or
/// the table is broken). Returns whether it counted.
fn count<'a>(word: u64, count_at: &impl Fn(u32) -> Option<&'a AtomicU64>) -> bool {
    let Some(c) = count_at(slot_of(word)) else { return false };
    let tag = count_tag(word);
    // SYNC(count): Relaxed (SeqCst on x86-64, `sync::COUNT_RMW`, where this
    // `lock cmpxchg` is F_R's barrier); sequenced before F_R in `pin_current`,
    // which pairs with F_W in `scan_counts` (the fences order it).
    c.fetch_update(crate::protocol::sync::COUNT_RMW, Ordering::Relaxed, |v| {
        (v >> COUNT_BITS == tag && count_of(v) != u32::MAX).then_some(v + 1)
    })
    .is_ok()
}

/// Reader: takes back the pin of `word` counted by `count`. Only while the
/// count still carries `word`'s tag (a reset for a newer generation already
/// dropped it), and never below 0.
fn uncount<'a>(word: u64, count_at: &impl Fn(u32) -> Option<&'a AtomicU64>) {
    let Some(c) = count_at(slot_of(word)) else { return };
    let tag = count_tag(word);
    // SYNC(unpin): Release pairs with the Acquire loads in `scan_counts`.
    let _ = c.fetch_update(Ordering::Release, Ordering::Relaxed, |v| {
        (v >> COUNT_BITS == tag && count_of(v) != 0).then_some(v - 1)
    });
}

/// Reader: pins the current snapshot (releasing whatever `pin` held before).
/// `pin` is this reader's own entry: while it is not 0, this reader holds one
/// count of it (`count_at(k)`: slot k's pin count).
///
/// Lock-free: it retries only when a publish happened in between.
pub(crate) fn pin_current<'a>(
    current: &AtomicU64,
    pin: &AtomicU64,
    count_at: impl Fn(u32) -> Option<&'a AtomicU64>,
) -> Pinned {
    // Relaxed: our own entry; only we store non-zero words in it.
    let held = pin.load(Ordering::Relaxed);
    // SYNC(publish): Acquire pairs with the Release in `publish`.
    let mut c1 = current.load(Ordering::Acquire);
    if held != 0 {
        // The old pin stays in the entry until the store below replaces it.
        uncount(held, &count_at);
        crate::protocol::sync::crash_point("pin-after-uncount-old");
    }
    loop {
        if c1 == 0 {
            // SYNC(unpin): Release, as every pin store; pairs with the writer's
            // Acquire pin loads in `scan_pins`.
            pin.store(0, Ordering::Release);
            return Pinned::Empty;
        }
        // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`; this
        // store also drops the previous pin. P: sequenced before the count and F_R.
        pin.store(c1, Ordering::Release);
        crate::protocol::sync::crash_point("pin-after-entry");
        let late = crate::protocol::sync::mutation("count-after-fence");
        let mut counted = !late && count(c1, &count_at);
        crate::protocol::sync::crash_point("pin-after-count");
        // SYNC(pin-scan): F_R; pairs with F_W in `scan_pins` and `scan_counts`.
        // After a count that succeeded, the RMW's own barrier on x86-64
        // (`sync::fence_after_count`); else (nothing will be confirmed) a fence.
        if !crate::protocol::sync::mutation("pin-no-fence") {
            if counted {
                crate::protocol::sync::fence_after_count();
            } else {
                fence(Ordering::SeqCst);
            }
        }
        if late {
            counted = count(c1, &count_at);
        }
        if crate::protocol::sync::mutation("pin-no-recheck") && counted {
            return Pinned::Word(c1);
        }
        // SYNC(publish): Acquire pairs with the Release in `publish`.
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 && counted {
            crate::protocol::sync::crash_point("pin-confirmed");
            return Pinned::Word(c1);
        }
        if counted {
            uncount(c1, &count_at);
        } else if c2 == c1 {
            // The current word's count does not carry its tag: the writer
            // resets it before publishing, so the table is broken.
            // SYNC(unpin): Release, pairs with the Acquire pin loads in `scan_pins`.
            pin.store(0, Ordering::Release);
            return Pinned::BadCount(c1);
        }
        c1 = c2;
        crate::protocol::sync::spin_hint();
    }
}

/// Reader of a format 2 object (no pin counts in its reader table): pins
/// the current snapshot with format 2's handshake, the pin store P, F_R and
/// the re-check. Its writer finds pinned slots only by `scan_pins` (the slow
/// path: with no count word, `scan_counts` marks every slot pinned), so the
/// store-buffering argument of `scan_pins` alone keeps the slot from it.
///
/// Lock-free: it retries only when a publish happened in between.
pub(crate) fn pin_uncounted(current: &AtomicU64, pin: &AtomicU64) -> Pinned {
    // SYNC(publish): Acquire pairs with the Release in `publish`.
    let mut c1 = current.load(Ordering::Acquire);
    loop {
        if c1 == 0 {
            // SYNC(unpin): Release, as every pin store; pairs with the
            // writer's Acquire pin loads in `scan_pins`.
            pin.store(0, Ordering::Release);
            return Pinned::Empty;
        }
        // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`;
        // this store also drops the previous pin. P: sequenced before F_R.
        pin.store(c1, Ordering::Release);
        // SYNC(pin-scan): F_R; pairs with F_W in `scan_pins`.
        if !crate::protocol::sync::mutation("pin-no-fence") {
            fence(Ordering::SeqCst);
        }
        // SYNC(publish): Acquire pairs with the Release in `publish`.
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 || crate::protocol::sync::mutation("pin-no-recheck") {
            return Pinned::Word(c1);
        }
        c1 = c2;
        crate::protocol::sync::spin_hint();
    }
}

/// Reader: where the slot named by the pinned word `word` keeps its bytes,
/// `(offset, len)`, checked against its entry (sealed at that generation, a
/// 64-aligned offset past `data_start`). The caller still checks the range
/// against the object's size before touching it.
///
/// The error carries the numbers, not a message: this runs on every
/// new-generation read, and a `String` built here (even only on the error
/// path) cost the read about 20 instructions of set-up.
#[inline]
pub(crate) fn pinned_region(e: &SlotEntry, word: u64, data_start: u64) -> Result<(u64, u64), BadRegion> {
    // Relaxed suffices: these were written before the Release publish of
    // `word`, which the reader's Acquire load of `current` saw, and the pin
    // keeps the writer off them.
    let (offset, len, gen) =
        (e.offset.load(Ordering::Relaxed), e.len.load(Ordering::Relaxed), e.gen.load(Ordering::Relaxed));
    let state = e.state.load(Ordering::Relaxed);
    if state != slot_state::SEALED || gen != generation_of(word) {
        return Err(BadRegion::NotSealed { word, gen, state });
    }
    if offset % SLOT_ALIGN != 0 || offset < data_start || offset.checked_add(len).is_none() {
        return Err(BadRegion::OutOfPlace { word, offset, len });
    }
    Ok((offset, len))
}

/// Why [`pinned_region`] refused a slot entry (the object is corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadRegion {
    /// The entry is not sealed at the word's generation.
    NotSealed { word: u64, gen: u64, state: u32 },
    /// Its region is misaligned, inside the header or wraps around.
    OutOfPlace { word: u64, offset: u64, len: u64 },
}

impl core::fmt::Display for BadRegion {
    #[cold]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            BadRegion::NotSealed { word, gen, state } => write!(
                f,
                "published slot {} holds generation {gen} (state {state}), expected {}",
                slot_of(word),
                generation_of(word)
            ),
            BadRegion::OutOfPlace { word, offset, len } => {
                write!(f, "slot {} has offset {offset} and length {len}", slot_of(word))
            }
        }
    }
}

/// Reader: drops its pin (and the count it holds for it).
#[inline]
pub(crate) fn unpin<'a>(pin: &AtomicU64, count_at: impl Fn(u32) -> Option<&'a AtomicU64>) {
    // Relaxed: our own entry.
    let held = pin.load(Ordering::Relaxed);
    if held != 0 {
        uncount(held, &count_at);
        crate::protocol::sync::crash_point("unpin-after-uncount");
        // SYNC(unpin): Release pairs with the Acquire loads in `scan_pins`.
        pin.store(0, Ordering::Release);
    }
}

/// Reader: claims a free entry of the reader table (`Ok(None)`: all taken).
///
/// An entry belongs to whoever holds the write lock on its byte
/// (`READER_LOCK_BASE + i`); the kernel drops it when the owner dies. A dead
/// owner may have left a pin: the new owner clears it, and takes the owner's
/// waits back from `waiters` (`waiters::settle_dead_waits`). The entry is counted in
/// `high_water` before this handle ever pins (see `scan_pins`).
///
/// Each try is a lock syscall, so it starts at the table's `claim_hint` (one
/// past the last entry claimed, or an entry released since) and wraps
/// around: opening N handles one after the other costs N tries, not N²/2.
pub(crate) fn claim_entry<'a>(
    locks: &impl ByteLocks,
    table: &ReaderTableHeader,
    capacity: u32,
    entry_at: impl Fn(u32) -> Option<&'a ReaderEntry>,
) -> Result<Option<u32>, Errno> {
    // SYNC(hint): Relaxed: only where to start; the entry's lock decides.
    let start = table.claim_hint.load(Ordering::Relaxed).checked_rem(capacity).unwrap_or(0);
    for i in (start..capacity).chain(0..start) {
        if !locks.try_write_lock(READER_LOCK_BASE + i as u64)? {
            continue;
        }
        let Some(e) = entry_at(i) else {
            locks.unlock(READER_LOCK_BASE + i as u64)?;
            return Ok(None);
        };
        // A dead owner's pin: cleared, its count left alone (whether it was
        // counted cannot be known; the writer clears stale counts).
        // SYNC(unpin): Release, like a reader's own unpin.
        e.pin.store(0, Ordering::Release);
        // A dead owner's waits (it was killed while it waited): taken back
        // from `waiters`, as the writer's reclaim does, under the lock we hold.
        crate::protocol::waiters::settle_dead_waits(&table.waiters, &e.waiting);
        // SYNC(claim): before any pin store of this handle and so before its
        // SeqCst fence F_R; pairs with the load after F_W in `scan_pins` (the
        // fences order it: Relaxed suffices).
        if !crate::protocol::sync::mutation("claim-without-high-water") {
            table.high_water.fetch_max(i + 1, Ordering::Relaxed);
        }
        table.opens.fetch_add(1, Ordering::Relaxed);
        // SYNC(hint): Relaxed, a hint (see above).
        table.claim_hint.store(i + 1, Ordering::Relaxed);
        return Ok(Some(i));
    }
    Ok(None)
}

/// Reader: its handle is giving up entry `i` (its lock goes when the
/// descriptor closes): the next `claim_entry` starts there.
pub(crate) fn release_entry(table: &ReaderTableHeader, i: u32) {
    // SYNC(hint): Relaxed, a hint (see `claim_entry`).
    table.claim_hint.fetch_min(i, Ordering::Relaxed);
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

    /// Lock bytes held by this process's claims, counting every try.
    #[derive(Default)]
    struct CountedLocks {
        held: std::cell::RefCell<std::collections::HashSet<u64>>,
        tries: std::cell::Cell<u32>,
    }

    impl ByteLocks for CountedLocks {
        fn try_write_lock(&self, byte: u64) -> Result<bool, Errno> {
            self.tries.set(self.tries.get() + 1);
            Ok(self.held.borrow_mut().insert(byte))
        }
        fn try_read_lock(&self, _byte: u64) -> Result<bool, Errno> {
            unreachable!()
        }
        fn unlock(&self, byte: u64) -> Result<(), Errno> {
            self.held.borrow_mut().remove(&byte);
            Ok(())
        }
        fn probe(&self, _byte: u64) -> Result<crate::protocol::locks::LockProbe, Errno> {
            unreachable!()
        }
    }

    /// Opening N handles one after the other takes N lock tries, not N²/2
    /// (each try is an `fcntl`); a released entry is the next one claimed.
    #[test]
    fn claims_start_at_the_hint() {
        const N: u32 = 100;
        let table = crate::protocol::heap_tests::zeroed_reader_table_header();
        let entries: Vec<ReaderEntry> = (0..N).map(|_| crate::protocol::heap_tests::zeroed_reader_entry()).collect();
        let locks = CountedLocks::default();
        let claim = || claim_entry(&locks, &table, N, |i| entries.get(i as usize)).unwrap();
        for i in 0..N {
            assert_eq!(claim(), Some(i));
        }
        assert_eq!(locks.tries.get(), N);
        assert_eq!(claim(), None, "full");
        // Entry 40's handle goes (its lock with it).
        release_entry(&table, 40);
        locks.unlock(READER_LOCK_BASE + 40).unwrap();
        locks.tries.set(0);
        assert_eq!(claim(), Some(40));
        assert_eq!(locks.tries.get(), 1);
        // Past the end the search wraps around to entries freed below.
        locks.unlock(READER_LOCK_BASE + 3).unwrap();
        assert_eq!(claim(), Some(3));
    }

    #[test]
    fn pin_follows_current() {
        let current = AtomicU64::new(0);
        let pin = AtomicU64::new(0);
        let counts = [AtomicU64::new(0), AtomicU64::new(0)];
        let count_at = |k: u32| counts.get(k as usize);
        assert_eq!(pin_current(&current, &pin, count_at), Pinned::Empty);
        reset_count(&counts[1], 1);
        publish(&current, word(1, 1));
        assert_eq!(pin_current(&current, &pin, count_at), Pinned::Word(word(1, 1)));
        assert_eq!(pin.load(Ordering::Relaxed), word(1, 1));
        assert_eq!(count_of(counts[1].load(Ordering::Relaxed)), 1);
        // Pinning again (same word) keeps exactly one count.
        assert_eq!(pin_current(&current, &pin, count_at), Pinned::Word(word(1, 1)));
        assert_eq!(count_of(counts[1].load(Ordering::Relaxed)), 1);
        // Moving to a new word moves the count.
        reset_count(&counts[0], 2);
        publish(&current, word(2, 0));
        assert_eq!(pin_current(&current, &pin, count_at), Pinned::Word(word(2, 0)));
        assert_eq!(count_of(counts[1].load(Ordering::Relaxed)), 0);
        assert_eq!(count_of(counts[0].load(Ordering::Relaxed)), 1);
        unpin(&pin, count_at);
        assert_eq!(pin.load(Ordering::Relaxed), 0);
        assert_eq!(count_of(counts[0].load(Ordering::Relaxed)), 0);
        // Unpinning twice does not take a count twice.
        counts[0].fetch_add(1, Ordering::Relaxed);
        unpin(&pin, count_at);
        assert_eq!(count_of(counts[0].load(Ordering::Relaxed)), 1);
    }

    #[test]
    fn a_count_of_another_generation_is_left_alone() {
        let current = AtomicU64::new(0);
        let pin = AtomicU64::new(0);
        let counts = [AtomicU64::new(0)];
        let count_at = |k: u32| counts.get(k as usize);
        reset_count(&counts[0], 5);
        publish(&current, word(5, 0));
        assert_eq!(pin_current(&current, &pin, count_at), Pinned::Word(word(5, 0)));
        // The slot is published again (after a slow path found it free): our
        // late decrement for generation 5 must not touch generation 6's count.
        reset_count(&counts[0], 6);
        counts[0].fetch_add(1, Ordering::Relaxed); // another reader's pin of 6
        unpin(&pin, count_at);
        assert_eq!(count_of(counts[0].load(Ordering::Relaxed)), 1);
    }

    #[test]
    fn a_count_without_the_current_tag_is_reported() {
        let current = AtomicU64::new(word(3, 0));
        let pin = AtomicU64::new(0);
        let counts = [AtomicU64::new(0)];
        // Never reset for generation 3: the table is broken; nothing stays pinned.
        assert_eq!(pin_current(&current, &pin, |k| counts.get(k as usize)), Pinned::BadCount(word(3, 0)));
        assert_eq!(pin.load(Ordering::Relaxed), 0);
        assert_eq!(pin_current(&current, &pin, |_| None), Pinned::BadCount(word(3, 0)));
    }

    #[test]
    fn scan_counts_marks_counted_slots_and_stale_counts_clear() {
        let counts = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
        reset_count(&counts[0], 7);
        reset_count(&counts[1], 8);
        counts[1].fetch_add(2, Ordering::Relaxed);
        let mut pinned = vec![true, false, true, false];
        // Slot 3 has no count word: pinned (the slow path decides).
        scan_counts(|k| counts.get(k as usize), &mut pinned);
        assert_eq!(pinned, [false, true, false, true]);
        let seen = counts[1].load(Ordering::Relaxed);
        assert!(!clear_stale_count(&counts[1], seen - 1), "a count that changed is kept");
        assert!(clear_stale_count(&counts[1], seen));
        assert_eq!(counts[1].load(Ordering::Relaxed), 8 << COUNT_BITS, "cleared, tag kept");
    }
}
