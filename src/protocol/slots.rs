//! The writer's side of the protocol on the slot table: choosing the slot to
//! fill (neither current nor pinned), reclaiming dead readers' pins, appending
//! slots, sealing and publishing, waking waiters, and recovering the table
//! after a dead writer.
//!
//! It is written against [`Tables`] (one object's shared structures and lock
//! bytes) so that it runs unchanged on shared memory (`Writer`) and, under
//! loom, on model objects whose OFD locks are model locks (`loom_tests.rs`):
//! the model checks this code, not a copy of it. Only the bytes of a snapshot
//! (rkyv, in `Writer`) and the OS calls behind `Tables` stay outside.

use rustix::io::Errno;

use crate::error::{OpenError, PublishError};
use crate::protocol;
use crate::protocol::layout::{
    self, slot_state, Header, ReaderEntry, ReaderTableHeader, SlotEntry, READER_LOCK_BASE, SLOT_ALIGN, SLOT_LOCK_BASE,
};
use crate::protocol::locks::{ByteLocks, LockProbe};
use crate::protocol::sync::AtomicU64;
use crate::protocol::sync::Ordering::{Acquire, Relaxed, Release, SeqCst};
use crate::protocol::waiters;

/// One object's shared structures, as the writer sees them.
pub(crate) trait Tables {
    /// The lock bytes of the data segment and of the reader table.
    type Locks: ByteLocks;
    /// The object's name (for errors).
    fn name(&self) -> &str;
    /// The data segment's header.
    fn header(&self) -> &Header;
    /// Slot entry `k`, if `k < max_slots`.
    fn slot(&self, k: u32) -> Option<&SlotEntry>;
    /// The data segment's lock bytes (slot locks, with lock pins).
    fn data_locks(&self) -> &Self::Locks;
    /// With table pins: the reader table's header, capacity and lock bytes.
    fn reader_table(&self) -> Option<(&ReaderTableHeader, u32, &Self::Locks)>;
    /// With table pins: reader entry `i`, if inside the table.
    fn reader(&self, i: u32) -> Option<&ReaderEntry>;
    /// With table pins: slot `k`'s pin count (`protocol/words.rs`), if the table has one.
    fn pin_count(&self, k: u32) -> Option<&AtomicU64>;
    /// Appends `capacity` bytes to the end of the data segment (growing the
    /// object) and returns their offset; `needed` is for the error message.
    fn allocate(&mut self, capacity: u64, needed: u64) -> Result<u64, PublishError>;
}

/// The writer's slot bookkeeping between publishes.
#[derive(Debug)]
pub(crate) struct Slots {
    pins: Pins,
    /// Scratch for `order_slots`: (slot, capacity), best first (kept: no
    /// allocation per publish).
    order: Vec<(u32, u64)>,
    /// Length of the last snapshot: slots with room for it are preferred.
    pub(crate) last_len: u64,
}

/// How the object's readers pin (its `pin_mode`), with the writer's state for it.
#[derive(Debug)]
enum Pins {
    /// Pin words in the reader table; `pinned` is what the last scan found.
    Table { pinned: Vec<bool> },
    /// OFD read locks on slot bytes; `held` is the slot we fill (found
    /// unlocked by a probe).
    Locks { held: Option<u32> },
}

impl Slots {
    /// For an object with `max_slots` slots whose readers pin with locks
    /// (`lock_pins`) or in the reader table.
    pub(crate) fn new(lock_pins: bool, max_slots: u32) -> Self {
        let pins = if lock_pins {
            Pins::Locks { held: None }
        } else {
            Pins::Table { pinned: vec![false; max_slots as usize] }
        };
        Slots { pins, order: Vec::new(), last_len: 0 }
    }

    fn entry<T: Tables>(t: &T, k: u32) -> &SlotEntry {
        t.slot(k).expect("slot index below max_slots")
    }

    /// Picks a slot that is neither current nor used by a reader, preferring
    /// one that fits the last snapshot's size. Table pins: first by the pin
    /// counts (O(slots)); if none looks free, by the pins themselves (O(readers),
    /// clearing the counts left by dead readers); then reclaims dead readers'
    /// pins and tries both again. Then appends a slot (a hostile lock-pin
    /// reader may have locked the byte of a new slot too, so that may repeat
    /// up to `max_slots`).
    pub(crate) fn free_slot<T: Tables>(&mut self, t: &mut T) -> Result<u32, PublishError> {
        // A lock held since a failed publish: let it go before choosing again.
        self.release_held();
        for attempt in 0..2 {
            for by_counts in [true, false] {
                let scanned = if by_counts { self.scan_counts(t) } else { self.scan_pins(t) };
                if !scanned {
                    continue;
                }
                // The first slot of `order_slots`' order that may be taken,
                // found in one pass; the sort only when a probe refused it.
                let Some(best) = self.best_slot(t) else { continue };
                if self.try_take(t, best, false) {
                    return Ok(best);
                }
                self.order_slots(t);
                for i in 0..self.order.len() {
                    let k = self.order[i].0;
                    if k != best && self.try_take(t, k, false) {
                        return Ok(k);
                    }
                }
            }
            if attempt == 1 || self.reclaim_dead_pins(t) == 0 {
                break;
            }
        }
        loop {
            let k = self.add_slot(t, self.last_len.max(SLOT_ALIGN))?;
            if self.try_take(t, k, true) {
                return Ok(k);
            }
        }
    }

    /// Table pins, fast path: marks the slots whose pin count is not zero
    /// (`protocol::scan_counts`). Returns false for a table without counts
    /// (format 2: only the pins say what is pinned), so that the slow path
    /// decides alone; true with lock pins (the slot's lock decides).
    fn scan_counts<T: Tables>(&mut self, t: &T) -> bool {
        if let Pins::Table { pinned } = &mut self.pins {
            if t.pin_count(0).is_none() {
                return false;
            }
            let count = (t.header().slot_count.load(Relaxed) as usize).min(pinned.len());
            protocol::scan_counts(|k| t.pin_count(k), &mut pinned[..count]);
        }
        true
    }

    /// Table pins, slow path: marks the slots some reader's pin names
    /// (`protocol::scan_pins`), and clears the counts of the other slots
    /// (but the current one): only dead readers' pins or readers about to
    /// retry are in them. Returns false with lock pins (nothing to scan).
    pub(crate) fn scan_pins<T: Tables>(&mut self, t: &T) -> bool {
        let (Pins::Table { pinned }, Some((rh, capacity, _))) = (&mut self.pins, t.reader_table()) else {
            return false;
        };
        // Only the slots in use: the work must not grow with `max_slots`
        // (`max_readers + 2`, 1026 by default). Pins naming other slots
        // are garbage and ignored.
        let count = (t.header().slot_count.load(Relaxed) as usize).min(pinned.len());
        let pinned = &mut pinned[..count];
        pinned.fill(false);
        // The counts, loaded before the pins (and so before F_W): whatever
        // the pin scan then finds free had no live pin when a count was seen.
        // Relaxed: only compared, and cleared by CAS against this value.
        let seen: Vec<u64> = (0..count as u32).map(|k| t.pin_count(k).map_or(0, |c| c.load(Relaxed))).collect();
        protocol::scan_pins(&rh.high_water, capacity, |i| t.reader(i).map(|r| &r.pin), pinned);
        // Relaxed: only this writer stores `current`.
        let c = t.header().current.load(Relaxed);
        let current = (c != 0).then(|| protocol::slot_of(c));
        for (k, (&v, &named)) in seen.iter().zip(pinned.iter()).enumerate() {
            let k = k as u32;
            if !named && Some(k) != current && protocol::count_of(v) != 0 {
                if let Some(c) = t.pin_count(k) {
                    protocol::clear_stale_count(c, v);
                }
            }
        }
        true
    }

    /// The first slot of the order `order_slots` makes that the last scan
    /// did not find pinned (table pins; with lock pins, the first of the
    /// order: its probe decides), without building and sorting the order:
    /// the common case of a publish costs one pass over the slots.
    fn best_slot<T: Tables>(&self, t: &T) -> Option<u32> {
        let h = t.header();
        // Relaxed: only this writer stores `current` and the slot entries.
        let c = h.current.load(Relaxed);
        let current = (c != 0).then(|| protocol::slot_of(c));
        let count = h.slot_count.load(Relaxed);
        let may_take = |k: u32| match &self.pins {
            Pins::Table { pinned } => !pinned.get(k as usize).copied().unwrap_or(true),
            Pins::Locks { .. } => true,
        };
        (0..count)
            .filter(|&k| Some(k) != current && may_take(k))
            .min_by_key(|&k| slot_rank(k, Self::entry(t, k).capacity.load(Relaxed), self.last_len))
    }

    /// Fills `order` with the slots other than the current one and their
    /// capacities, best first (`slot_rank`).
    fn order_slots<T: Tables>(&mut self, t: &T) {
        let h = t.header();
        // Relaxed: only this writer stores `current`.
        let c = h.current.load(Relaxed);
        let current = (c != 0).then(|| protocol::slot_of(c));
        let capacity = |k: u32| Self::entry(t, k).capacity.load(Relaxed);
        self.order.clear();
        let count = h.slot_count.load(Relaxed);
        self.order.extend((0..count).filter(|&k| Some(k) != current).map(|k| (k, capacity(k))));
        let last_len = self.last_len;
        self.order.sort_unstable_by_key(|&(k, cap)| slot_rank(k, cap, last_len));
    }

    /// Makes slot `k` ours to fill if no reader uses it. Table pins: the last
    /// scan saw no pin on it (`fresh`: it did not exist at the scan, so no
    /// reader can have pinned it). Lock pins: a probe of its byte finds no
    /// reader's read lock there (one `F_OFD_GETLK`, which takes nothing: a
    /// reader that locks the byte after the probe finds its word replaced on
    /// its re-check, docs/PROTOCOL.md "Why lock pins are correct").
    fn try_take<T: Tables>(&mut self, t: &T, k: u32, fresh: bool) -> bool {
        match &mut self.pins {
            Pins::Table { pinned } => fresh || !pinned[k as usize],
            Pins::Locks { held } => {
                let ok = crate::protocol::sync::mutation("writer-ignores-slot-locks")
                    || matches!(t.data_locks().probe(SLOT_LOCK_BASE + k as u64), Ok(LockProbe::Unlocked));
                if ok {
                    *held = Some(k);
                }
                ok
            }
        }
    }

    /// Table pins: the oldest generation a reader may still hold, evaluated
    /// after the last publish (a map's reclaim rule, docs/MAP.md
    /// "Reclamation"): the minimum of the current generation and the
    /// generations of the slots readers hold. Fast (`thorough == false`): by
    /// the pin counts (`scan_counts`, whose SeqCst fence F_W pairs with each
    /// reader's F_R); a dead reader's count then still holds its slot.
    /// Thorough: reclaims dead readers' entries first, then asks the pins
    /// themselves (`scan_pins`, which also clears the counts no pin names).
    /// `None` with lock pins (no generation per pin is visible).
    pub(crate) fn oldest_held<T: Tables>(&mut self, t: &T, thorough: bool) -> Option<u64> {
        if !matches!(self.pins, Pins::Table { .. }) {
            return None;
        }
        if thorough {
            self.reclaim_dead_pins(t);
            self.scan_pins(t);
        } else {
            self.scan_counts(t);
        }
        let Pins::Table { pinned } = &self.pins else { return None };
        // Relaxed: only this writer stores `current` and the slot entries.
        let mut oldest = protocol::generation_of(t.header().current.load(Relaxed));
        if crate::protocol::sync::mutation("map-reuse-ignores-pins") {
            return Some(oldest);
        }
        let count = (t.header().slot_count.load(Relaxed) as usize).min(pinned.len());
        for k in (0..count).filter(|&k| pinned[k]) {
            // A held slot is never refilled, so its sealed generation is the
            // one its readers hold (0: never published, nothing to hold).
            let g = Self::entry(t, k as u32).gen.load(Relaxed);
            if g != 0 {
                oldest = oldest.min(g);
            }
        }
        Some(oldest)
    }

    /// Table pins: reclaims the reader entries whose owner died: clears their
    /// pins (lock pins need none: the kernel drops a dead reader's locks) and
    /// takes their waits back from `waiters` (`waiters::settle_dead_waits`).
    /// Returns the pins reclaimed.
    ///
    /// The writer takes the entry's OFD lock itself before clearing: a probe
    /// followed by a CAS could erase the pin of a reader that claimed the entry
    /// and pinned the same word in between (loom_tests shows it), or take back
    /// the waits of a reader that claimed it and waits. Holding the lock keeps
    /// new readers out of the entry until it is cleared.
    pub(crate) fn reclaim_dead_pins<T: Tables>(&mut self, t: &T) -> u32 {
        reclaim_dead(t, true).0
    }

    /// Appends a new slot of `capacity` bytes.
    fn add_slot<T: Tables>(&mut self, t: &mut T, capacity: u64) -> Result<u32, PublishError> {
        let h = t.header();
        let count = h.slot_count.load(Relaxed);
        let max = h.max_slots.load(Relaxed);
        if count >= max {
            return Err(PublishError::AllSlotsPinned { name: t.name().into(), slots: count });
        }
        let capacity = layout::align_up(capacity, SLOT_ALIGN).unwrap_or(capacity);
        let offset = t.allocate(capacity, capacity)?;
        let e = Self::entry(t, count);
        e.state.store(slot_state::EMPTY, Relaxed);
        e.gen.store(0, Relaxed);
        e.offset.store(offset, Relaxed);
        e.capacity.store(capacity, Relaxed);
        // Readers never look at slot_count; `recover` and tools do.
        t.header().slot_count.store(count + 1, Release);
        Ok(count)
    }

    /// Marks `slot` (ours, from `free_slot`) as being written; returns its
    /// region's offset and capacity.
    pub(crate) fn begin_fill<T: Tables>(&self, t: &T, slot: u32) -> (u64, u64) {
        let e = Self::entry(t, slot);
        e.state.store(slot_state::WRITING, Relaxed);
        (e.offset.load(Relaxed), e.capacity.load(Relaxed))
    }

    /// A free slot with at least `needed` bytes: another free one that fits, or
    /// `slot` moved to a new, larger region at the end of the segment.
    pub(crate) fn slot_with_room<T: Tables>(&mut self, t: &mut T, slot: u32, needed: u64) -> Result<u32, PublishError> {
        self.last_len = needed;
        // Table pins: another unpinned slot may already have room. (With lock
        // pins only the slot we hold is ours: it is moved instead.)
        if matches!(self.pins, Pins::Table { .. }) {
            self.order_slots(t);
            if let Pins::Table { pinned } = &self.pins {
                let roomy = self.order.iter().find(|&&(k, cap)| !pinned[k as usize] && cap >= needed);
                if let Some(&(k, _)) = roomy {
                    return Ok(k);
                }
            }
        }
        let capacity = needed.max(SLOT_ALIGN).checked_next_power_of_two().unwrap_or(needed);
        let offset = t.allocate(capacity, needed)?;
        let e = Self::entry(t, slot);
        e.state.store(slot_state::EMPTY, Relaxed);
        e.offset.store(offset, Relaxed);
        e.capacity.store(capacity, Relaxed);
        Ok(slot)
    }

    /// Seals `slot` (filled with `len` bytes of generation `gen`), lets readers
    /// lock it, and publishes it.
    pub(crate) fn commit<T: Tables>(&mut self, t: &T, slot: u32, gen: u64, len: u64, now_ns: u64) {
        let e = Self::entry(t, slot);
        e.len.store(len, Relaxed);
        e.gen.store(gen, Relaxed);
        e.published_ns.store(now_ns, Relaxed);
        // Table pins: the slot's count starts again for this generation.
        if let Pins::Table { .. } = self.pins {
            if let Some(c) = t.pin_count(slot) {
                protocol::reset_count(c, gen);
            }
        }
        // SYNC(seal): Release pairs with the Acquire load in `recover` (a later
        // writer trusts only sealed slots).
        e.state.store(slot_state::SEALED, Release);
        #[cfg(all(feature = "fault-injection", not(loom)))]
        crate::os::fault::point("after-seal");
        // Lock pins: the writer never locks a slot (it probes), so no slot is
        // ever write-locked and a reader never waits for a writer that stalls
        // here (docs/PROTOCOL.md, "Why lock pins are correct"). A reader that
        // locks the slot before the publish sees the old word on its re-check
        // and moves on.
        self.release_held();
        protocol::publish(&t.header().current, protocol::word(gen, slot));
        #[cfg(all(feature = "fault-injection", not(loom)))]
        crate::os::fault::point("after-publish");
        self.last_len = len;
    }

    /// Lock pins: forgets the slot we chose (after a failed publish, or
    /// before publishing it). Nothing to unlock: the writer only probes.
    pub(crate) fn release_held(&mut self) {
        if let Pins::Locks { held } = &mut self.pins {
            *held = None;
        }
    }
}

/// The order in which the writer tries slots (smallest first): those with
/// room for the last snapshot (`last_len`), smallest first; then the others,
/// largest first. The index makes every rank distinct.
fn slot_rank(k: u32, capacity: u64, last_len: u64) -> (bool, u64, u32) {
    if capacity >= last_len {
        (false, capacity, k)
    } else {
        (true, u64::MAX - capacity, k)
    }
}

/// After a publish: bumps the futex word and says whether a reader may be
/// waiting on it (then the caller wakes them).
pub(crate) fn announce<T: Tables>(t: &T) -> bool {
    // SYNC(wake): SeqCst RMW, then SeqCst load of `waiters`; pairs with the
    // SeqCst increment of `waiters` (`waiters::WaitCount::count`) and load of
    // `notify` in `watch::wait_for_newer` and the async `Changed` poll
    // (store-buffering: one side sees the other, so no wake-up is lost).
    // Taking back dead waiters' counts never removes a live waiter's
    // (`protocol/waiters.rs`), so the load sees it while it sleeps.
    t.header().notify.fetch_add(1, SeqCst);
    // Loom only: the SeqCst order between the bump and the load (`sync::sc_order`).
    crate::protocol::sync::sc_order();
    match t.reader_table() {
        Some((rh, _, _)) => rh.waiters.load(SeqCst) > 0,
        // Lock-pin readers have no write access to count themselves.
        None => true,
    }
}

/// Table pins: takes back the waits of entries whose owner died while it
/// waited (their `waiting` marks), and their pins on the way; returns the
/// waits taken back. Only entries with a mark are looked at (one lock
/// syscall each, failing for live waiters). The writer calls it when a
/// publish's wake-up woke nobody although `waiters` was not 0
/// (`RawWriter::publish_with`, at most once per wait slice).
pub(crate) fn reclaim_dead_waits<T: Tables>(t: &T) -> u32 {
    reclaim_dead(t, false).1
}

/// Reclaims the entries [0, high_water) whose owner died and that hold a
/// waiting mark, or (`with_pins`) a pin: under the entry's lock, takes the
/// waits back and clears the pin. Returns (pins, waits) reclaimed.
fn reclaim_dead<T: Tables>(t: &T, with_pins: bool) -> (u32, u32) {
    let Some((rh, capacity, locks)) = t.reader_table() else { return (0, 0) };
    let (mut pins, mut waits) = (0, 0);
    // Outside the store-buffering argument on purpose: an entry claimed
    // after this load is alive, and alive entries are not touched.
    for i in 0..rh.high_water.load(Relaxed).min(capacity) {
        let Some(r) = t.reader(i) else { break };
        // Relaxed: only says whether to look; the lock decides, and what is
        // cleared is read again under it (a mark or pin seen 0 here, of an
        // owner that just died, waits for the next scan).
        let pinned = with_pins && r.pin.load(Relaxed) != 0;
        // SYNC(waiting): Relaxed, as above.
        if !pinned && r.waiting.load(Relaxed) == 0 {
            continue;
        }
        let byte = READER_LOCK_BASE + i as u64;
        if crate::protocol::sync::mutation("reclaim-probe-then-clear") {
            // The old scheme: probe the owner's lock, then clear.
            if locks.probe(byte) == Ok(crate::protocol::locks::LockProbe::Unlocked) {
                waits += waiters::settle_dead_waits(&rh.waiters, &r.waiting);
                if r.pin.load(Relaxed) != 0 {
                    r.pin.store(0, Release);
                    pins += 1;
                }
            }
            continue;
        }
        if let Ok(true) = locks.try_write_lock(byte) {
            waits += waiters::settle_dead_waits(&rh.waiters, &r.waiting);
            // Relaxed: the owner is dead and we hold its entry's lock.
            if r.pin.load(Relaxed) != 0 {
                if crate::protocol::sync::mutation("reclaim-uncounts") {
                    // Wrong: the dead reader may have died before counting.
                    protocol::unpin(&r.pin, |k| t.pin_count(k));
                }
                // Its count is left alone: whether it counted cannot be
                // known; `scan_pins` clears counts no pin names.
                // SYNC(unpin): Release, like a reader's own unpin.
                r.pin.store(0, Release);
                pins += 1;
            }
            let _ = locks.unlock(byte);
        }
    }
    t.header().reclaimed_pins.fetch_add(pins as u64, Relaxed);
    (pins, waits)
}

/// Takes over a segment whose writer died: returns the next generation.
///
/// The publish word is a single atomic, so it always names a sealed slot;
/// slots left `WRITING` are simply free. Generations continue above both the
/// published one and any sealed-but-unpublished one.
pub(crate) fn recover<T: Tables>(t: &T) -> Result<u64, OpenError> {
    let h = t.header();
    // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
    let current = h.current.load(Acquire);
    let count = h.slot_count.load(Relaxed);
    let segment_len = h.segment_len.load(Relaxed);
    let corrupt = |what: String| Err(OpenError::Corrupt { name: t.name().into(), what });
    if current != 0 && protocol::slot_of(current) >= count {
        return corrupt(format!("published slot {} of {count}", protocol::slot_of(current)));
    }
    let mut highest = protocol::generation_of(current);
    let data_start = h.data_start.load(Relaxed);
    let current_slot = (current != 0).then(|| protocol::slot_of(current));
    // Regions of slots kept so far; the current slot first, so that a free slot
    // aliasing it (or the header) is what gets dropped.
    let mut kept: Vec<(u64, u64)> = Vec::new();
    let order = current_slot.into_iter().chain((0..count).filter(|&k| Some(k) != current_slot));
    for k in order {
        let Some(e) = t.slot(k) else {
            return corrupt(format!("slot {k} outside the slot table"));
        };
        let offset = e.offset.load(Relaxed);
        let sound_end = offset.checked_add(e.capacity.load(Relaxed)).filter(|&end| {
            offset % SLOT_ALIGN == 0
                && offset >= data_start
                && end <= segment_len
                && kept.iter().all(|&(o, e)| end <= o || offset >= e)
        });
        let is_current = current_slot == Some(k);
        if let Some(end) = sound_end {
            kept.push((offset, end));
        } else if is_current {
            // Readers report it as Corrupt; we never write the current slot, and
            // with no room it gets a fresh region once it is free again.
            e.capacity.store(0, Relaxed);
        } else {
            // A growth the dead writer did not finish, or garbage: give it no
            // room; the next publish that needs it allocates a fresh region.
            e.capacity.store(0, Relaxed);
            e.offset.store(data_start, Relaxed);
        }
        // SYNC(seal): Acquire pairs with the Release store of SEALED in `Slots::commit`.
        match e.state.load(Acquire) {
            slot_state::SEALED => highest = highest.max(e.gen.load(Relaxed)),
            _ if is_current => return corrupt(format!("published slot {k} is not sealed")),
            _ => e.state.store(slot_state::EMPTY, Relaxed),
        }
    }
    Ok(highest.saturating_add(1))
}

/// The liveness lock a writer takes on the data segment's first byte before it
/// writes anything: `Ok(true)` taken; `WriterBusy` if another writer holds it
/// (a write lock there can only be a live writer's: readers cannot take one);
/// `Ok(false)` if a reader holds a read lock there (hostile: it only blurs
/// liveness reports; `publish` tries again).
pub(crate) fn take_liveness_lock(name: &str, locks: &impl ByteLocks) -> Result<bool, OpenError> {
    let os_err = |errno: Errno| OpenError::Os { name: name.into(), op: "locking the writer's liveness byte", errno };
    if locks.try_write_lock(layout::WRITER_LOCK_BYTE).map_err(os_err)? {
        return Ok(true);
    }
    match locks.probe(layout::WRITER_LOCK_BYTE).map_err(os_err)? {
        crate::protocol::locks::LockProbe::WriteLocked
            if !crate::protocol::sync::mutation("takeover-ignores-live-writer") =>
        {
            Err(OpenError::WriterBusy { name: name.into() })
        }
        _ => Ok(false),
    }
}
