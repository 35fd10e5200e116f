//! The publish / pin protocol and `layout::Region` on heap memory, with real
//! threads and real rkyv bytes: runnable under Miri (`scripts/miri.sh`), whose
//! data-race detector checks that the writer's plain (non-atomic) writes into a
//! slot never race with a pinned reader's plain reads (docs/DESIGN.md, invariants 1
//! and 2), and that nothing here is UB (alignment, provenance, bounds).
//!
//! The writer mirrors `Writer::publish` (scan pins after a SeqCst fence, pick a
//! slot that is neither current nor pinned, serialize with `SlotWriter` straight
//! into the slot, seal, publish one word); readers mirror `RawReader::pin_latest`
//! + `Reader::read_slow` (pin, check the slot entry, `rkyv::access`).
#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};

use rkyv::rancor::Error;

use crate::archive::SlotWriter;
use crate::protocol::layout::{self, slot_state, Region, FIXED_HEADER};
use crate::protocol::slots::Tables;
use crate::protocol::sync::Ordering::{Acquire, Relaxed, Release};
use crate::protocol::{self, Pinned};

/// A zeroed, 64-aligned heap buffer standing in for a mapping.
struct HeapBuf {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the buffer is only accessed through `Region`, i.e. through atomics or
// through slot bytes whose exclusive use the protocol under test arbitrates.
unsafe impl Sync for HeapBuf {}
// SAFETY: as above; the allocation is owned and freed once, in `Drop`.
unsafe impl Send for HeapBuf {}

impl HeapBuf {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 64).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        HeapBuf { ptr, layout }
    }

    fn region(&self) -> Region<'_> {
        // SAFETY:
        // - `ptr` is valid for reads and writes of `layout.size()` bytes while
        //   `self` lives, which the region's lifetime borrows;
        // - `ptr` is 64-aligned (`layout`).
        unsafe { Region::new(self.ptr, self.layout.size() as u64) }
    }
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
struct Val {
    gen: u64,
    words: Vec<u64>,
    name: String,
}

impl Val {
    fn new(g: u64) -> Self {
        Val { gen: g, words: vec![g; (g % 4 + 1) as usize], name: format!("gen {g}") }
    }
}

fn check(a: &ArchivedVal, g: u64) {
    assert_eq!(a.gen, g, "torn view");
    assert!(a.words.iter().all(|w| *w == g), "torn view: words of {g}");
    assert_eq!(a.name.as_str(), format!("gen {g}"), "torn view: name of {g}");
}

const SLOTS: u32 = READERS + 2; // one per reader + current + the one being written
const CAP: u64 = 512;
const DATA: u64 = 4096;
const READERS: u32 = 2;

/// A data segment (header + slot table + slots) and a reader table on the heap.
struct Heap {
    data: HeapBuf,
    readers: HeapBuf,
}

impl Heap {
    fn new() -> Self {
        let heap = Heap {
            data: HeapBuf::new((DATA + SLOTS as u64 * CAP) as usize),
            readers: HeapBuf::new(layout::reader_table_size(READERS, SLOTS) as usize),
        };
        let region = heap.data.region();
        let h = region.header().unwrap();
        h.max_slots.store(SLOTS, Relaxed);
        h.slot_count.store(SLOTS, Relaxed);
        h.data_start.store(DATA, Relaxed);
        for k in 0..SLOTS {
            let e = region.slot(k).unwrap();
            e.offset.store(DATA + k as u64 * CAP, Relaxed);
            e.capacity.store(CAP, Relaxed);
        }
        let rh = heap.readers.region().readers_header().unwrap();
        rh.capacity.store(READERS, Relaxed);
        rh.high_water.store(READERS, Relaxed);
        rh.count_slots.store(SLOTS, Relaxed);
        heap
    }

    /// One publish, as `Writer::publish` does it.
    fn publish(&self, g: u64, pinned: &mut [bool]) {
        let region = self.data.region();
        let rt = self.readers.region();
        let h = region.header().unwrap();
        let current = protocol::slot_of(h.current.load(Relaxed));
        // The writer's two ways of finding a free slot, alternately: by the
        // pin counts (fast path) and by the pins (slow path).
        let by_pins = |pinned: &mut [bool]| {
            pinned.iter_mut().for_each(|p| *p = false);
            let high_water = &rt.readers_header().unwrap().high_water;
            protocol::scan_pins(high_water, READERS, |i| rt.reader(i).map(|r| &r.pin), pinned);
        };
        if g % 2 == 0 {
            protocol::scan_counts(|k| rt.pin_count(READERS, SLOTS, k), pinned);
        } else {
            by_pins(pinned);
        }
        let free = |pinned: &[bool]| (0..SLOTS).find(|&k| k != current && !pinned[k as usize]);
        // The counts may also hold readers about to retry, which can leave no
        // slot free by counts; the pins then decide, as in `Slots::free_slot`
        // (each reader's pin names one slot: one is always free).
        let k = match free(pinned) {
            Some(k) => k,
            None => {
                by_pins(pinned);
                free(pinned).expect("a free slot")
            }
        };
        let e = region.slot(k).unwrap();
        let (offset, capacity) = (e.offset.load(Relaxed), e.capacity.load(Relaxed));
        e.state.store(slot_state::WRITING, Relaxed);
        let ptr = region.range_ptr(offset, capacity).unwrap();
        // SAFETY: slot `k` is neither current nor pinned (its count, or every
        // pin, loaded after the SeqCst fence in `scan_counts` / `scan_pins`),
        // and this thread is the only writer.
        let out = unsafe { SlotWriter::new(ptr, capacity as usize) };
        let out = rkyv::api::high::to_bytes_in::<_, Error>(&Val::new(g), out).unwrap();
        assert!(out.fitted());
        e.len.store(out.len() as u64, Relaxed);
        e.gen.store(g, Relaxed);
        // SYNC(seal): as in `Writer::publish`.
        e.state.store(slot_state::SEALED, Release);
        protocol::reset_count(rt.pin_count(READERS, SLOTS, k).unwrap(), g);
        protocol::publish(&h.current, protocol::word(g, k));
    }

    /// One read, as `RawReader::pin_latest` + `Reader::read_slow` do it; the
    /// view is checked twice with a yield in between (it must not change).
    fn read(&self, entry: u32) -> Option<u64> {
        let region = self.data.region();
        let h = region.header().unwrap();
        let rt = self.readers.region();
        let pin = &rt.reader(entry).unwrap().pin;
        let Pinned::Word(w) = protocol::pin_current(&h.current, pin, |k| rt.pin_count(READERS, SLOTS, k)) else {
            return None;
        };
        let (g, k) = (protocol::generation_of(w), protocol::slot_of(w));
        let e = region.slot(k).unwrap();
        assert_eq!(e.state.load(Relaxed), slot_state::SEALED);
        assert_eq!(e.gen.load(Relaxed), g);
        // SAFETY: the slot is pinned and re-checked (protocol/words.rs): the writer
        // does not write it until this thread changes its pin.
        let bytes = unsafe { region.bytes(e.offset.load(Relaxed), e.len.load(Relaxed)) }.unwrap();
        let a = rkyv::access::<ArchivedVal, Error>(bytes).unwrap();
        check(a, g);
        std::thread::yield_now();
        check(a, g);
        Some(g)
    }
}

#[cfg(miri)]
const GENS: u64 = 12;
#[cfg(not(miri))]
const GENS: u64 = 3000;

/// A writer thread publishing into `READERS + 2` slots while two readers pin, validate
/// and re-read: no torn view, no data race (Miri), generations never go back.
#[test]
fn heap_publish_and_pinned_reads_race_free() {
    let heap = Heap::new();
    let mut pinned = vec![false; SLOTS as usize];
    heap.publish(1, &mut pinned);
    std::thread::scope(|s| {
        for entry in 0..READERS {
            let heap = &heap;
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..GENS {
                    if let Some(g) = heap.read(entry) {
                        assert!(g >= last, "generation went back");
                        last = g;
                    }
                }
                let rt = heap.readers.region();
                protocol::unpin(&rt.reader(entry).unwrap().pin, |k| rt.pin_count(READERS, SLOTS, k));
            });
        }
        let heap = &heap;
        s.spawn(move || {
            let mut pinned = vec![false; SLOTS as usize];
            for g in 2..=GENS {
                heap.publish(g, &mut pinned);
            }
        });
    });
    let h = heap.data.region();
    assert_eq!(protocol::generation_of(h.header().unwrap().current.load(Acquire)), GENS);
}

/// `Region` only hands out in-bounds, aligned views.
#[test]
fn heap_region_bounds() {
    let buf = HeapBuf::new(4096);
    let r = buf.region();
    assert!(r.header().is_some());
    assert!(r.slot((4096 - FIXED_HEADER as u32) / 64 - 1).is_some());
    assert!(r.slot((4096 - FIXED_HEADER as u32) / 64).is_none());
    assert!(r.slot(u32::MAX).is_none());
    assert!(r.range_ptr(4096, 0).is_some());
    assert!(r.range_ptr(4096, 1).is_none());
    assert!(r.range_ptr(u64::MAX, 2).is_none());
    // SAFETY: nothing writes the buffer during this test.
    unsafe {
        assert_eq!(r.bytes(10, 6).unwrap(), &[0; 6]);
        assert!(r.bytes(4000, 97).is_none());
    }
    assert!(r.reader(62).is_some());
    assert!(r.reader(63).is_none());
    let small = HeapBuf::new(64);
    assert!(small.region().header().is_none());
}

/// `Region::pin_counts` (what `RawReader` locates once at open) is the
/// counts `pin_count` gives, one by one, and refuses a table too short for
/// them. Under Miri (scripts/miri.sh) this also checks that a count reached
/// through `add(k)` from it is inside the pointer's provenance.
#[test]
fn heap_pin_counts_pointer_reaches_every_count() {
    let (capacity, slots) = (4u32, 6u32);
    let buf = HeapBuf::new(4096);
    let r = buf.region();
    let first = r.pin_counts(capacity, slots).unwrap();
    for k in 0..slots {
        // SAFETY: `k < slots`, and `pin_counts` checked that all `slots` counts
        // lie inside the region, which `buf` keeps alive for this test.
        let by_pointer = unsafe { &*first.add(k as usize) };
        let by_index = r.pin_count(capacity, slots, k).unwrap();
        assert!(core::ptr::eq(by_pointer, by_index), "count {k}");
        by_pointer.store(100 + k as u64, Relaxed);
        assert_eq!(by_index.load(Relaxed), 100 + k as u64);
    }
    assert!(r.pin_counts(capacity, 0).is_none());
    // The counts start after the table header and `capacity` entries.
    let fits = (4096 - 64 * (capacity as u64 + 1)) as u32 / 8;
    assert!(r.pin_count(capacity, u32::MAX, fits - 1).is_some() && r.pin_count(capacity, u32::MAX, fits).is_none());
    assert!(r.pin_counts(capacity, fits).is_some());
    assert!(r.pin_counts(capacity, fits + 1).is_none());
}

/// The stored schema description decodes, and every truncation or bit flip of
/// it is an error or a valid document, never a panic.
#[test]
fn heap_schema_decode_of_bad_bytes() {
    use crate::schema::{schema_of, SchemaDoc};
    let doc = schema_of::<std::collections::HashMap<String, Vec<(u32, Option<String>)>>>();
    let bytes = doc.encode();
    let back = SchemaDoc::decode(&bytes).expect("round trip");
    assert_eq!(back.root().name, doc.root().name);
    let step = if cfg!(miri) { 37 } else { 1 };
    for cut in (0..bytes.len()).step_by(step) {
        let _ = SchemaDoc::decode(&bytes[..cut]);
    }
    for i in (0..bytes.len() * 8).step_by(step * 3) {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        if let Ok(d) = SchemaDoc::decode(&b) {
            let _ = format!("{d}");
        }
    }
}

/// A data segment and reader table on the heap as `slots::Tables`, for the
/// writer's real slot choice (`slots::Slots`). Counts the reader entries the
/// writer looks at; every entry's owner counts as dead (its lock is free).
struct HeapTables {
    data: HeapBuf,
    readers: HeapBuf,
    capacity: u32,
    max_slots: u32,
    entries_read: std::cell::Cell<u32>,
    locks: NoLocks,
}

/// OFD locks nobody holds: every reader entry looks dead to the writer.
/// Counts the calls that would be syscalls: those that take or drop a lock,
/// and probes.
#[derive(Default)]
struct NoLocks {
    changes: std::cell::Cell<u32>,
    probes: std::cell::Cell<u32>,
}

impl crate::protocol::locks::ByteLocks for NoLocks {
    fn try_write_lock(&self, _byte: u64) -> Result<bool, rustix::io::Errno> {
        self.changes.set(self.changes.get() + 1);
        Ok(true)
    }
    fn try_read_lock(&self, _byte: u64) -> Result<bool, rustix::io::Errno> {
        self.changes.set(self.changes.get() + 1);
        Ok(true)
    }
    fn unlock(&self, _byte: u64) -> Result<(), rustix::io::Errno> {
        self.changes.set(self.changes.get() + 1);
        Ok(())
    }
    fn probe(&self, _byte: u64) -> Result<crate::protocol::locks::LockProbe, rustix::io::Errno> {
        self.probes.set(self.probes.get() + 1);
        Ok(crate::protocol::locks::LockProbe::Unlocked)
    }
}

impl HeapTables {
    /// `slots` slots in use (of `max_slots`), `capacity` reader entries, all
    /// claimed (`high_water`); nothing published.
    fn new(capacity: u32, slots: u32, max_slots: u32) -> Self {
        let data = HeapBuf::new((DATA + max_slots as u64 * CAP) as usize);
        let region = data.region();
        let h = region.header().unwrap();
        h.max_slots.store(max_slots, Relaxed);
        h.slot_count.store(slots, Relaxed);
        h.data_start.store(DATA, Relaxed);
        for k in 0..max_slots {
            let e = region.slot(k).unwrap();
            e.offset.store(DATA + k as u64 * CAP, Relaxed);
            e.capacity.store(CAP, Relaxed);
        }
        let readers = HeapBuf::new(layout::reader_table_size(capacity, max_slots) as usize);
        let rh = readers.region().readers_header().unwrap();
        rh.capacity.store(capacity, Relaxed);
        rh.high_water.store(capacity, Relaxed);
        rh.count_slots.store(max_slots, Relaxed);
        HeapTables {
            data,
            readers,
            capacity,
            max_slots,
            entries_read: std::cell::Cell::new(0),
            locks: NoLocks::default(),
        }
    }

    /// Reader `i` pins the current snapshot (`protocol::pin_current`).
    fn pin(&self, i: u32) -> u64 {
        let rt = self.readers.region();
        let pinned = protocol::pin_current(&self.header().current, &rt.reader(i).unwrap().pin, |k| {
            rt.pin_count(self.capacity, self.max_slots, k)
        });
        let Pinned::Word(w) = pinned else { panic!("{pinned:?}") };
        w
    }

    /// One publish of generation `g` by `slots` (no bytes: only the protocol).
    fn publish(&mut self, slots: &mut crate::protocol::slots::Slots, g: u64) -> u32 {
        let k = slots.free_slot(self).unwrap();
        slots.begin_fill(self, k);
        slots.commit(self, k, g, 0, 0);
        k
    }

    fn count(&self, k: u32) -> u32 {
        let rt = self.readers.region();
        protocol::count_of(rt.pin_count(self.capacity, self.max_slots, k).unwrap().load(Relaxed))
    }
}

impl crate::protocol::slots::Tables for HeapTables {
    type Locks = NoLocks;

    fn name(&self) -> &str {
        "heap"
    }
    fn header(&self) -> &layout::Header {
        self.data.region().header().unwrap()
    }
    fn slot(&self, k: u32) -> Option<&layout::SlotEntry> {
        self.data.region().slot(k)
    }
    fn data_locks(&self) -> &NoLocks {
        &self.locks
    }
    fn reader_table(&self) -> Option<(&layout::ReaderTableHeader, u32, &NoLocks)> {
        Some((self.readers.region().readers_header()?, self.capacity, &self.locks))
    }
    fn reader(&self, i: u32) -> Option<&layout::ReaderEntry> {
        self.entries_read.set(self.entries_read.get() + 1);
        self.readers.region().reader(i)
    }
    fn pin_count(&self, k: u32) -> Option<&crate::protocol::sync::AtomicU64> {
        self.readers.region().pin_count(self.capacity, self.max_slots, k)
    }
    fn allocate(&mut self, _capacity: u64, _needed: u64) -> Result<u64, crate::error::PublishError> {
        panic!("the writer grew the segment although a slot was free")
    }
}

/// Issue 12: with 256 readers pinning old generations, a publish that finds a
/// free slot by the pin counts looks at no reader entry (format 2 loaded all
/// 256 pins every publish).
#[test]
fn publish_reads_no_reader_entry_while_a_slot_is_free_by_its_count() {
    const N: u32 = 256;
    let mut t = HeapTables::new(N, 4, 4);
    let mut slots = crate::protocol::slots::Slots::new(false, 4);
    t.publish(&mut slots, 1);
    for g in 2..=40 {
        // Half the readers follow every publish, the others every fourth:
        // two slots are pinned, two are free (current + one to write).
        for i in 0..N {
            if i % 2 == 0 || g % 4 == 0 {
                t.pin(i);
            }
        }
        t.entries_read.set(0);
        t.publish(&mut slots, g);
        assert_eq!(t.entries_read.get(), 0, "publish {g} looked at reader entries");
    }
}

/// A reader that died holding a counted pin: its count keeps the slot from
/// the fast path; when no slot is free by the counts, the slow path reclaims
/// its pin and clears the count, and the writer reuses the slot instead of
/// growing (`allocate` panics).
#[test]
fn a_dead_readers_count_is_cleared_when_its_slot_is_needed() {
    let mut t = HeapTables::new(2, 2, 4);
    let mut slots = crate::protocol::slots::Slots::new(false, 4);
    assert_eq!(t.publish(&mut slots, 1), 0);
    // Reader 0 pins generation 1 in slot 0, counts it, and dies.
    assert_eq!(t.pin(0), protocol::word(1, 0));
    assert_eq!(t.count(0), 1);
    assert_eq!(t.publish(&mut slots, 2), 1, "slot 0 is counted: the fast path takes slot 1");
    assert_eq!(t.publish(&mut slots, 3), 0, "no slot free by the counts: the slow path reclaims slot 0");
    assert_eq!(t.count(0), 0);
    assert_eq!(t.readers.region().reader(0).unwrap().pin.load(Relaxed), 0, "the dead reader's pin is reclaimed");
    assert_eq!(t.header().slot_count.load(Relaxed), 2);
}

/// Issue 26: with lock pins the writer chooses a slot with one probe of its
/// byte and takes no lock (it locked the slot and unlocked it before the
/// publish: two syscalls more per publish, for no reader's safety: a reader
/// that locks the slot meanwhile finds its word replaced on its re-check).
#[test]
fn a_lock_pin_publish_probes_one_slot_byte_and_locks_nothing() {
    let mut t = HeapTables::new(0, 4, 4);
    let mut slots = crate::protocol::slots::Slots::new(true, 4);
    for g in 1..=10 {
        let (changes, probes) = (t.locks.changes.get(), t.locks.probes.get());
        t.publish(&mut slots, g);
        assert_eq!(t.locks.changes.get() - changes, 0, "publish {g} took or dropped a lock");
        assert_eq!(t.locks.probes.get() - probes, 1, "publish {g}: probes");
    }
}

/// A reader table header of zeroed atomics (for unit tests of `protocol`).
pub(crate) fn zeroed_reader_table_header() -> layout::ReaderTableHeader {
    use crate::protocol::sync::{AtomicU32, AtomicU64};
    layout::ReaderTableHeader {
        magic: AtomicU64::new(0),
        capacity: AtomicU32::new(0),
        high_water: AtomicU32::new(0),
        waiters: AtomicU32::new(0),
        count_slots: AtomicU32::new(0),
        validation_failures: AtomicU64::new(0),
        opens: AtomicU64::new(0),
        incarnation: AtomicU64::new(0),
        claim_hint: AtomicU32::new(0),
        _pad: [0; 12],
    }
}

/// A reader entry of zeroed atomics.
pub(crate) fn zeroed_reader_entry() -> layout::ReaderEntry {
    use crate::protocol::sync::{AtomicU32, AtomicU64};
    layout::ReaderEntry {
        pin: AtomicU64::new(0),
        pid: AtomicU32::new(0),
        waiting: AtomicU32::new(0),
        opened_ns: AtomicU64::new(0),
        _pad: [0; 40],
    }
}
