//! loom models that run the real protocol code of the writer and the readers.
//!
//! Run with `scripts/loom.sh` (`RUSTFLAGS="--cfg loom" cargo test --release --lib loom`).
//! Under `--cfg loom`, `crate::protocol::sync` is loom's atomics, and what the models call
//! is the code that ships:
//!
//! - writer: `slots::Slots` (`free_slot`: pin-count scan, pin scan with
//!   `high_water` and stale-count clearing, slot order, dead-pin reclaim,
//!   growth by `add_slot`; `begin_fill`, `commit`: seal, count reset, unlock,
//!   publish), `slots::announce`, `slots::recover` and
//!   `slots::take_liveness_lock` (takeover), `slots::reclaim_dead_waits`,
//!   `Slots::oldest_held` (a map's block reuse rule);
//! - readers: `protocol::claim_entry`, `protocol::pin_current`,
//!   `protocol::pinned_region`, `protocol::unpin` (table pins),
//!   `lock_pins::pin_with_locks` / `release` (lock pins), and
//!   `waiters::WaitCount` (a waiter's count and mark).
//!
//! The OS boundary is a model object: [`ModelFile`] gives OFD byte-lock
//! semantics (per open file description, read locks shared, write lock
//! exclusive, never blocking, every operation a read-modify-write as the
//! kernel's locked lock list is), and [`ModelObject`] is the data segment and
//! reader table built of loom atomics, with `allocate` appending regions.
//! Only the snapshot bytes are a stand-in: `WORDS` atomic words per region,
//! all holding the generation, which a reader checks while pinned, yields,
//! and checks again (invariant 1: a pinned slot is never written). Plain
//! (non-atomic) slot bytes are checked by Miri in `heap_tests.rs`.
//!
//! Every model has broken variants: `crate::protocol::sync::mutation` switches off one
//! step of the real code (a re-check, a fence, the order of a count and a
//! fence, a lock, the `high_water` raise, the liveness check, stale-count
//! clearing), and the model must then find a torn view
//! (`#[should_panic(expected = "torn view")]`), a refused pin ("bad pin") or
//! a leaked count.
//!
//! Reader crashes: `crate::protocol::sync::crash_point` makes the real reader code
//! unwind at a named point (`CRASH_AT`); the model catches the unwind and
//! drops the process's locks, as the kernel does for a killed process.

use loom::sync::Arc;
use loom::thread;

use crate::error::OpenError;
use crate::protocol::layout::{
    Header, ReaderEntry, ReaderTableHeader, SlotEntry, READER_LOCK_BASE, SLOT_ALIGN, SLOT_LOCK_BASE, WRITER_LOCK_BYTE,
};
use crate::protocol::lock_pins;
use crate::protocol::locks::{ByteLocks, LockProbe};
use crate::protocol::slots::{self, Slots, Tables};
use crate::protocol::sync::{AtomicU32, AtomicU64, Ordering};
use crate::protocol::waiters::WaitCount;
use crate::protocol::{self, generation_of, slot_of, Pinned};

/// Words standing for a snapshot's bytes.
const WORDS: usize = 2;
/// Slot table size of the models.
const MAX_SLOTS: u32 = 4;
/// Capacity of every region (the model's snapshots all fit).
const CAP: u64 = SLOT_ALIGN;
/// Where regions start.
const DATA_START: u64 = 4096;
/// Regions the model object can hold (initial slots + growth).
const REGIONS: usize = 6;

// ------------------------------------------------------------------ OS model

/// One shm object's OFD byte locks. Each lock byte is a word: bit `o` (o < 32)
/// set = open file description `o` holds a read lock; `WRITE | o << 32` = `o`
/// holds the write lock.
struct ModelFile {
    bytes: Vec<(u64, AtomicU64)>,
}

const WRITE: u64 = 1 << 63;

impl ModelFile {
    fn new(bytes: impl IntoIterator<Item = u64>) -> Arc<Self> {
        Arc::new(ModelFile { bytes: bytes.into_iter().map(|b| (b, AtomicU64::new(0))).collect() })
    }

    fn word(&self, byte: u64) -> &AtomicU64 {
        &self.bytes.iter().find(|(b, _)| *b == byte).unwrap_or_else(|| panic!("byte {byte:#x} not modelled")).1
    }

    /// What the kernel does when description `owner` is closed (its process died).
    fn drop_all(&self, owner: u32) {
        for (_, w) in &self.bytes {
            let _ = w.fetch_update(Ordering::Release, Ordering::Relaxed, |v| Some(without(v, owner)));
        }
    }
}

/// `v` without any lock of `owner`.
fn without(v: u64, owner: u32) -> u64 {
    if v & WRITE != 0 && (v >> 32) & 0xff == owner as u64 {
        0
    } else {
        v & !(1 << owner)
    }
}

/// An open file description of a [`ModelFile`].
#[derive(Clone)]
struct Fd {
    file: Arc<ModelFile>,
    owner: u32,
}

impl ByteLocks for Fd {
    fn try_write_lock(&self, byte: u64) -> Result<bool, rustix::io::Errno> {
        let w = self.file.word(byte);
        // Acquire: a lock taken after another's unlock sees what it did.
        let taken = w.fetch_update(Ordering::Acquire, Ordering::Relaxed, |v| {
            (without(v, self.owner) == 0).then_some(WRITE | (self.owner as u64) << 32)
        });
        Ok(taken.is_ok())
    }

    fn try_read_lock(&self, byte: u64) -> Result<bool, rustix::io::Errno> {
        let w = self.file.word(byte);
        let taken = w.fetch_update(Ordering::Acquire, Ordering::Relaxed, |v| {
            let v = without(v, self.owner);
            (v & WRITE == 0).then_some(v | 1 << self.owner)
        });
        Ok(taken.is_ok())
    }

    fn unlock(&self, byte: u64) -> Result<(), rustix::io::Errno> {
        let w = self.file.word(byte);
        // Release: whoever locks next sees what we did while holding it.
        let _ = w.fetch_update(Ordering::Release, Ordering::Relaxed, |v| Some(without(v, self.owner)));
        Ok(())
    }

    fn probe(&self, byte: u64) -> Result<LockProbe, rustix::io::Errno> {
        // A read-modify-write that changes nothing: the newest state, as the
        // kernel's lock-list lock gives `F_OFD_GETLK`.
        let v = without(self.file.word(byte).fetch_add(0, Ordering::AcqRel), self.owner);
        Ok(if v & WRITE != 0 {
            LockProbe::WriteLocked
        } else if v != 0 {
            LockProbe::ReadLocked
        } else {
            LockProbe::Unlocked
        })
    }
}

/// One object: the data segment (header, slot table, regions, lock bytes) and
/// the reader table, made of loom atomics.
struct ModelObject {
    header: Header,
    slots: Vec<SlotEntry>,
    regions: Vec<[AtomicU64; WORDS]>,
    readers: ReaderTableHeader,
    entries: Vec<ReaderEntry>,
    /// The reader table's pin counts, one per slot.
    counts: Vec<AtomicU64>,
    data_file: Arc<ModelFile>,
    reader_file: Arc<ModelFile>,
}

fn a64() -> AtomicU64 {
    AtomicU64::new(0)
}

fn a32() -> AtomicU32 {
    AtomicU32::new(0)
}

impl ModelObject {
    /// `slots` slots of `CAP` bytes, `readers` reader entries; slot 0 holds
    /// generation 1 and is published before any thread starts.
    fn new(slots: u32, readers: u32, lock_pins: bool) -> Arc<Self> {
        let header = Header {
            magic: a64(),
            format_version: a32(),
            header_size: a32(),
            fingerprint: a64(),
            rkyv_format: a64(),
            max_slots: AtomicU32::new(MAX_SLOTS),
            slot_count: AtomicU32::new(slots),
            schema_len: a64(),
            data_start: AtomicU64::new(DATA_START),
            segment_len: AtomicU64::new(DATA_START + slots as u64 * CAP),
            max_segment_len: a64(),
            created_ns: a64(),
            writer_pid: a32(),
            pin_mode: AtomicU32::new(lock_pins as u32),
            max_readers: AtomicU32::new(readers),
            _pad_inc: 0,
            incarnation: AtomicU64::new(1),
            _pad0: [0; 24],
            current: a64(),
            notify: a32(),
            moved: a32(),
            _pad1: [0; 48],
            publishes: a64(),
            growths: a64(),
            reclaimed_pins: a64(),
            last_publish_ns: a64(),
            origin_generation: a64(),
            origin_host: [a64(), a64(), a64()],
        };
        let slot_entries = (0..MAX_SLOTS)
            .map(|k| SlotEntry {
                gen: a64(),
                offset: AtomicU64::new(if k < slots { DATA_START + k as u64 * CAP } else { 0 }),
                capacity: AtomicU64::new(if k < slots { CAP } else { 0 }),
                len: a64(),
                published_ns: a64(),
                state: a32(),
                _pad: [0; 20],
            })
            .collect();
        let readers_header = ReaderTableHeader {
            magic: a64(),
            capacity: AtomicU32::new(readers),
            high_water: a32(),
            waiters: a32(),
            count_slots: AtomicU32::new(MAX_SLOTS),
            validation_failures: a64(),
            opens: a64(),
            incarnation: AtomicU64::new(1),
            claim_hint: a32(),
            _pad: [0; 12],
        };
        let entries = (0..readers)
            .map(|_| ReaderEntry { pin: a64(), pid: a32(), waiting: a32(), opened_ns: a64(), _pad: [0; 40] })
            .collect();
        let data_bytes = [WRITER_LOCK_BYTE].into_iter().chain((0..MAX_SLOTS as u64).map(|k| SLOT_LOCK_BASE + k));
        let o = Arc::new(ModelObject {
            header,
            slots: slot_entries,
            regions: (0..REGIONS).map(|_| [a64(), a64()]).collect(),
            readers: readers_header,
            entries,
            counts: (0..MAX_SLOTS).map(|_| a64()).collect(),
            data_file: ModelFile::new(data_bytes),
            reader_file: ModelFile::new((0..readers as u64).map(|i| READER_LOCK_BASE + i)),
        });
        // Generation 1 in slot 0, sealed and published, as a writer leaves it.
        let mut first = ModelWriter::new(&o, 31);
        first.fill(0, 1);
        first.slots.commit(&first.t, 0, 1, CAP, 0);
        o
    }

    /// `new` with table pins and a reader table without pin counts (format 2).
    fn new_uncounted(slots: u32, readers: u32) -> Arc<Self> {
        let Ok(mut o) = Arc::try_unwrap(Self::new(slots, readers, false)) else { panic!("shared model object") };
        o.counts.clear();
        Arc::new(o)
    }

    fn region(&self, offset: u64) -> &[AtomicU64; WORDS] {
        let i = offset.checked_sub(DATA_START).map(|d| (d / CAP) as usize);
        i.and_then(|i| self.regions.get(i)).unwrap_or_else(|| panic!("offset {offset} outside the model"))
    }

    /// Slot `k`'s pin count.
    fn count(&self, k: u32) -> Option<&AtomicU64> {
        self.counts.get(k as usize)
    }

    fn check(&self, offset: u64, g: u64) {
        for (i, w) in self.region(offset).iter().enumerate() {
            let v = w.load(Ordering::Relaxed);
            assert_eq!(v, g, "torn view: region at {offset} word {i} holds {v} while pinned at generation {g}");
        }
    }
}

/// A writer process's view of the object: its descriptors are `owner` on both files.
struct ModelTables {
    object: Arc<ModelObject>,
    data_fd: Fd,
    reader_fd: Fd,
}

impl Tables for ModelTables {
    type Locks = Fd;

    fn name(&self) -> &str {
        "model"
    }

    fn header(&self) -> &Header {
        &self.object.header
    }

    fn slot(&self, k: u32) -> Option<&SlotEntry> {
        self.object.slots.get(k as usize)
    }

    fn data_locks(&self) -> &Fd {
        &self.data_fd
    }

    fn reader_table(&self) -> Option<(&ReaderTableHeader, u32, &Fd)> {
        let o = &self.object;
        (o.header.pin_mode.load(Ordering::Relaxed) == 0).then(|| (&o.readers, o.entries.len() as u32, &self.reader_fd))
    }

    fn reader(&self, i: u32) -> Option<&ReaderEntry> {
        self.object.entries.get(i as usize)
    }

    fn pin_count(&self, k: u32) -> Option<&AtomicU64> {
        self.object.count(k)
    }

    fn allocate(&mut self, capacity: u64, _needed: u64) -> Result<u64, crate::error::PublishError> {
        let h = &self.object.header;
        let offset = h.segment_len.load(Ordering::Relaxed);
        h.segment_len.store(offset + capacity, Ordering::Relaxed);
        Ok(offset)
    }
}

/// A writer process: `Writer` without the OS and rkyv.
struct ModelWriter {
    t: ModelTables,
    slots: Slots,
}

impl ModelWriter {
    fn new(object: &Arc<ModelObject>, owner: u32) -> Self {
        let lock_pins = object.header.pin_mode.load(Ordering::Relaxed) == 1;
        let t = ModelTables {
            object: object.clone(),
            data_fd: Fd { file: object.data_file.clone(), owner },
            reader_fd: Fd { file: object.reader_file.clone(), owner },
        };
        ModelWriter { t, slots: Slots::new(lock_pins, MAX_SLOTS) }
    }

    /// Writes generation `g` into the region of `slot` (the rkyv bytes).
    fn fill(&self, slot: u32, g: u64) {
        let offset = self.t.object.slots[slot as usize].offset.load(Ordering::Relaxed);
        for w in self.t.object.region(offset) {
            w.store(g, Ordering::Relaxed);
        }
    }

    /// Picks and starts filling a slot, as `Writer::publish` does before rkyv.
    fn begin(&mut self) -> u32 {
        let slot = self.slots.free_slot(&mut self.t).expect("a free slot");
        let (_, capacity) = self.slots.begin_fill(&self.t, slot);
        // A slot reset by `recover` has no room: the real writer's first pass
        // only counts, then `slot_with_room` moves it.
        if capacity < CAP {
            let slot = self.slots.slot_with_room(&mut self.t, slot, CAP).expect("room");
            self.slots.begin_fill(&self.t, slot);
            return slot;
        }
        slot
    }

    /// `Writer::publish`, with the model's bytes for rkyv's.
    fn publish(&mut self, g: u64) {
        let slot = self.begin();
        self.fill(slot, g);
        self.slots.commit(&self.t, slot, g, CAP, 0);
        let _ = slots::announce(&self.t);
    }

    fn liveness(&self) -> Result<bool, OpenError> {
        slots::take_liveness_lock("model", &self.t.data_fd)
    }

    /// The process dies: the kernel drops its locks.
    fn die(self) {
        self.t.object.data_file.drop_all(self.t.data_fd.owner);
        self.t.object.reader_file.drop_all(self.t.reader_fd.owner);
    }
}

/// A table-pin reader process: claims an entry (the real `claim_entry`), pins
/// and checks `reads` times, and unpins.
fn table_reader(o: &ModelObject, owner: u32, reads: usize) {
    let i = claim(o, owner);
    table_reads(o, owner, i, reads);
}

/// A table-pin reader process (descriptor `owner`) claims an entry.
fn claim(o: &ModelObject, owner: u32) -> u32 {
    let fd = Fd { file: o.reader_file.clone(), owner };
    let entries = o.entries.len() as u32;
    protocol::claim_entry(&fd, &o.readers, entries, |i| o.entries.get(i as usize)).unwrap().expect("an entry")
}

/// The reader of `table_reader` after its claim of entry `i`: pins and checks
/// `reads` times, unpins, exits.
fn table_reads(o: &ModelObject, owner: u32, i: u32, reads: usize) {
    let fd = Fd { file: o.reader_file.clone(), owner };
    let pin = &o.entries[i as usize].pin;
    let mut last = 0;
    for _ in 0..reads {
        let pinned = protocol::pin_current(&o.header.current, pin, |k| o.count(k));
        let Pinned::Word(w) = pinned else {
            let counts: Vec<u64> = o.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            panic!("bad pin: {pinned:?} counts {counts:x?} current {:x}", o.header.current.load(Ordering::Relaxed))
        };
        last = check_pinned(o, w, last);
    }
    protocol::unpin(pin, |k| o.count(k));
    fd.file.drop_all(owner);
}

/// A reader of a format 2 object (no pin counts): claims an entry, pins with
/// `pin_uncounted` and checks `reads` times, unpins, exits.
fn uncounted_reader(o: &ModelObject, owner: u32, reads: usize) {
    let i = claim(o, owner);
    let fd = Fd { file: o.reader_file.clone(), owner };
    let pin = &o.entries[i as usize].pin;
    let mut last = 0;
    for _ in 0..reads {
        let Pinned::Word(w) = protocol::pin_uncounted(&o.header.current, pin) else { panic!("published before start") };
        last = check_pinned(o, w, last);
    }
    protocol::unpin(pin, |k| o.count(k));
    fd.file.drop_all(owner);
}

/// A lock-pin reader process (the real `pin_with_locks`).
fn lock_reader(o: &ModelObject, owner: u32, reads: usize) {
    let fd = Fd { file: o.data_file.clone(), owner };
    let mut held = None;
    let mut last = 0;
    for _ in 0..reads {
        let Pinned::Word(w) = lock_pins::pin_with_locks(&fd, &o.header.current, &mut held).unwrap() else {
            panic!("published before start")
        };
        last = check_pinned(o, w, last);
    }
    lock_pins::release(&fd, &mut held).unwrap();
}

/// Checks the pinned snapshot of word `w`, yields, checks it again.
fn check_pinned(o: &ModelObject, w: u64, last: u64) -> u64 {
    let (g, k) = (generation_of(w), slot_of(w));
    assert!(g >= last, "generation went back from {last} to {g}");
    // A pinned word whose slot is not sealed at that generation is a torn view too.
    let entry = &o.slots[k as usize];
    let (offset, _) = protocol::pinned_region(entry, w, DATA_START).unwrap_or_else(|e| panic!("torn view: {e}"));
    o.check(offset, g);
    thread::yield_now();
    o.check(offset, g);
    g
}

/// Runs `f` under loom with the real code changed by `mutation` ("" = none),
/// preemption bound 3. One model at a time: the mutation is global.
fn model(mutation: &'static str, f: impl Fn() + Sync + Send + 'static) {
    model_bounded(mutation, 3, f)
}

/// `model` with another preemption bound (`LOOM_MAX_PREEMPTIONS` overrides).
fn model_bounded(mutation: &'static str, preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // A reader killed at a `crash_point` unwinds: not worth a message.
    static QUIET_CRASHES: std::sync::Once = std::sync::Once::new();
    QUIET_CRASHES.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<crate::protocol::sync::Crashed>() {
                report(info)
            }
        }));
    });
    *crate::protocol::sync::MUTATION.lock().unwrap() = mutation;
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            *crate::protocol::sync::MUTATION.lock().unwrap_or_else(|e| e.into_inner()) = "";
            *crate::protocol::sync::SC_ORDER.lock().unwrap_or_else(|e| e.into_inner()) = false;
        }
    }
    let _reset = Reset;
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

/// Generations 2 and 3 published by a writer (descriptor 0) while `readers`
/// (descriptors 1, 2, …) run, each as its own thread; joins them.
fn publish_while_reading(o: &Arc<ModelObject>, readers: u32, read: impl Fn(&ModelObject, u32) + Copy + Send + 'static) {
    let mut w = ModelWriter::new(o, 0);
    let rs: Vec<_> = (0..readers)
        .map(|i| {
            let o = o.clone();
            thread::spawn(move || read(&o, 1 + i))
        })
        .collect();
    for g in 2..=3 {
        w.publish(g);
    }
    for r in rs {
        r.join().unwrap();
    }
}

// ---------------------------------------------------------------- table pins

/// One writer (two slots, so a pinned one forces growth), one reader pinning
/// twice.
fn table_pins(mutation: &'static str) {
    model(mutation, || {
        let o = ModelObject::new(2, 1, false);
        publish_while_reading(&o, 1, |o, owner| table_reader(o, owner, 2));
    });
}

#[test]
fn loom_table_pins() {
    table_pins("");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_table_pins_catch_missing_recheck() {
    table_pins("pin-no-recheck");
}

/// Without F_R the reader may count in a slot the writer already reset for a
/// newer generation and still re-load the old word: it refuses the pin
/// (`Pinned::BadCount`, which `RawReader` reports as `Corrupt`). With the
/// fence that cannot happen (docs/PROTOCOL.md).
#[test]
#[should_panic(expected = "bad pin")]
fn loom_table_pins_catch_missing_fence() {
    table_pins("pin-no-fence");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_table_pins_catch_count_after_the_fence() {
    table_pins("count-after-fence");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_table_pins_catch_counts_loaded_before_the_fence() {
    table_pins("counts-loaded-before-fence");
}

/// A format 2 object (`WriterOptions::format_version(2)`): no pin counts, so
/// the writer finds pinned slots by the pins alone and readers pin with
/// format 2's handshake. The writer with two slots, a reader pinning twice.
fn format2_pins(mutation: &'static str) {
    model(mutation, || {
        let o = ModelObject::new_uncounted(2, 1);
        publish_while_reading(&o, 1, |o, owner| uncounted_reader(o, owner, 2));
    });
}

#[test]
fn loom_format2_table_pins() {
    format2_pins("");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_format2_table_pins_catch_missing_fence() {
    format2_pins("pin-no-fence");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_format2_table_pins_catch_missing_recheck() {
    format2_pins("pin-no-recheck");
}

/// A reader that claims a NEW entry (entry 0 is held by an idle live reader,
/// so `high_water` goes from 1 to 2) while the writer publishes: the writer's
/// slow path must scan the new entry. Both slots carry a count left by dead
/// readers (slot 0 of generation 1, slot 1 of none), so the counts show no
/// free slot and the publishes take the slow path (which then clears them).
fn new_entry(mutation: &'static str) {
    model(mutation, || {
        let o = ModelObject::new(2, 2, false);
        o.counts[0].fetch_add(1, Ordering::Relaxed);
        o.counts[1].store(1, Ordering::Relaxed);
        // An idle live reader owns entry 0.
        let idle = Fd { file: o.reader_file.clone(), owner: 5 };
        assert_eq!(protocol::claim_entry(&idle, &o.readers, 2, |i| o.entries.get(i as usize)).unwrap(), Some(0));
        publish_while_reading(&o, 1, |o, owner| table_reader(o, owner, 1));
    });
}

#[test]
fn loom_new_entry_is_scanned() {
    new_entry("");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_new_entry_catches_claim_without_high_water() {
    new_entry("claim-without-high-water");
}

/// Entry 0 was left by a dead reader pinning the current word (gen 1, slot 0,
/// the only slot). The writer publishes twice (the first finds no free slot,
/// so it reclaims, then grows), while a new reader claims an entry (entry 0,
/// or entry 1 while the writer holds entry 0's lock) and pins: its pin must
/// survive the reclaim.
fn reclaim(mutation: &'static str) {
    model(mutation, || {
        let o = ModelObject::new(1, 2, false);
        // The dead reader had claimed entry 0 and pinned the current word.
        o.readers.high_water.store(1, Ordering::Relaxed);
        o.entries[0].pin.store(protocol::word(1, 0), Ordering::Relaxed);
        publish_while_reading(&o, 1, |o, owner| table_reader(o, owner, 1));
    });
}

#[test]
fn loom_reclaim_under_entry_lock() {
    reclaim("");
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_reclaim_catches_probe_then_clear() {
    reclaim("reclaim-probe-then-clear");
}

// ---------------------------------------------------------- map block reuse

/// A map's blocks (docs/MAP.md, "Reclamation"): generation `g`'s root reaches
/// block `roots[g]`, which holds `g`. Generation 1 (published by
/// `ModelObject::new`) reaches block 0. The writer publishes generation 2 in
/// a fresh block 1 (block 0 is then freed at 2), asks `Slots::oldest_held`
/// (the real code) and reuses block 0 for generation 3 only if every held
/// generation is at or past 2; else it takes a fresh block 2. A reader pins
/// (the real `pin_current`), reads its generation's block, yields and reads
/// it again: a reused block under a held generation is a torn view.
fn map_reuse(mutation: &'static str, thorough: bool) {
    model(mutation, move || {
        let o = ModelObject::new(2, 1, false);
        let roots = Arc::new([a64(), a64(), a64(), a64()]);
        let blocks = Arc::new([AtomicU64::new(1), a64(), a64()]);
        let reader = {
            let (o, roots, blocks) = (o.clone(), roots.clone(), blocks.clone());
            thread::spawn(move || {
                let owner = 1;
                let i = claim(&o, owner);
                let pin = &o.entries[i as usize].pin;
                for _ in 0..2 {
                    let Pinned::Word(w) = protocol::pin_current(&o.header.current, pin, |k| o.count(k)) else {
                        panic!("bad pin")
                    };
                    let g = generation_of(w);
                    let b = roots[g as usize].load(Ordering::Relaxed) as usize;
                    for _ in 0..2 {
                        let v = blocks[b].load(Ordering::Relaxed);
                        assert_eq!(v, g, "torn view: block {b} holds {v} under generation {g}");
                        thread::yield_now();
                    }
                }
                protocol::unpin(pin, |k| o.count(k));
                o.reader_file.drop_all(owner);
            })
        };
        let mut w = ModelWriter::new(&o, 0);
        blocks[1].store(2, Ordering::Relaxed);
        roots[2].store(1, Ordering::Relaxed);
        w.publish(2);
        let oldest = w.slots.oldest_held(&w.t, thorough).expect("table pins");
        let b = if oldest >= 2 { 0 } else { 2 };
        blocks[b].store(3, Ordering::Relaxed);
        roots[3].store(b as u64, Ordering::Relaxed);
        w.publish(3);
        reader.join().unwrap();
    });
}

#[test]
fn loom_map_reuse_waits_for_the_oldest_held_generation() {
    map_reuse("", false);
}

#[test]
fn loom_map_reuse_thorough_waits_for_the_oldest_held_generation() {
    map_reuse("", true);
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_map_reuse_catches_ignoring_the_pins() {
    map_reuse("map-reuse-ignores-pins", false);
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_map_reuse_catches_a_scan_before_the_fence() {
    map_reuse("counts-loaded-before-fence", false);
}

// ------------------------------------------------------------ reader crashes

/// A table-pin reader (descriptor 5) that dies at `point` (a
/// `sync::crash_point` of the real reader code), after passing it `skip`
/// times, while the writer publishes generations 2 and 3: it pins 2, pins 3,
/// unpins. Then, concurrently, a live reader (descriptor 1, whose entry was
/// claimed first) reads once while the writer publishes 4 and 5, reclaiming
/// the dead reader's pin and clearing its count on the way if it needs the
/// slot. The live reader must never see a torn view (no under-count), and
/// after the writer's slow path (`reclaim_dead_pins`, `scan_pins`) no count
/// is left that no live pin holds (no count leaks forever).
fn reader_crash(mutation: &'static str, point: &'static str, skip: u32) {
    model(mutation, move || {
        let o = ModelObject::new(2, 2, false);
        let mut w = ModelWriter::new(&o, 0);
        let live = claim(&o, 1);
        *crate::protocol::sync::CRASH_AT.lock().unwrap() = (point, skip);
        let dead = claim(&o, 5);
        let pin = &o.entries[dead as usize].pin;
        let mut alive = true;
        let mut step = |f: &mut dyn FnMut()| {
            if alive {
                alive = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            }
        };
        w.publish(2);
        step(&mut || assert!(matches!(protocol::pin_current(&o.header.current, pin, |k| o.count(k)), Pinned::Word(_))));
        w.publish(3);
        step(&mut || assert!(matches!(protocol::pin_current(&o.header.current, pin, |k| o.count(k)), Pinned::Word(_))));
        step(&mut || protocol::unpin(pin, |k| o.count(k)));
        *crate::protocol::sync::CRASH_AT.lock().unwrap() = ("", 0);
        assert!(!alive || point.is_empty(), "the reader passed {point} without dying");
        // The kernel drops the dead process's entry lock.
        o.reader_file.drop_all(5);
        let r = {
            let o = o.clone();
            thread::spawn(move || table_reads(&o, 1, live, 1))
        };
        w.publish(4);
        w.publish(5);
        r.join().unwrap();
        // What the writer does when no slot looks free by the counts.
        w.slots.reclaim_dead_pins(&w.t);
        w.slots.scan_pins(&w.t);
        let current = slot_of(o.header.current.load(Ordering::Relaxed));
        for k in 0..o.header.slot_count.load(Ordering::Relaxed) {
            let n = protocol::count_of(o.counts[k as usize].load(Ordering::Relaxed));
            assert!(k == current || n == 0, "leaked count: slot {k} counts {n} pins, none alive ({point})");
        }
    });
}

#[test]
fn loom_reader_crash_after_its_entry() {
    reader_crash("", "pin-after-entry", 1);
}

#[test]
fn loom_reader_crash_after_its_count() {
    reader_crash("", "pin-after-count", 1);
}

#[test]
fn loom_reader_crash_holding_a_pin() {
    reader_crash("", "pin-confirmed", 1);
}

#[test]
fn loom_reader_crash_after_releasing_its_old_count() {
    reader_crash("", "pin-after-uncount-old", 0);
}

#[test]
fn loom_reader_crash_while_unpinning() {
    reader_crash("", "unpin-after-uncount", 0);
}

/// Decrementing a dead reader's count at reclaim (it may never have counted)
/// takes the live reader's count: the writer then reuses its slot.
#[test]
#[should_panic(expected = "torn view")]
fn loom_reader_crash_catches_reclaim_that_uncounts() {
    reader_crash("reclaim-uncounts", "pin-after-entry", 1);
}

/// A slow path that does not clear stale counts leaves a dead reader's count
/// for good.
#[test]
#[should_panic(expected = "leaked count")]
fn loom_reader_crash_catches_a_stale_count_kept() {
    reader_crash("stale-count-kept", "pin-confirmed", 1);
}

// ------------------------------------------------------------ dead waiters

/// Where the waits of the table-pin reader that owns entry `i` count.
fn wait_count(o: &ModelObject, i: u32) -> WaitCount<'_> {
    WaitCount { waiters: &o.readers.waiters, mark: Some(&o.entries[i as usize].waiting) }
}

/// A waiter (descriptor 5, entry 0) is killed while it waits: asleep
/// (`point` ""), between its count and its mark, or, woken, between its
/// unmark and its uncount (the real `WaitCount` code, `crash_point`s). Then,
/// concurrently: a live waiter (descriptor 1) claims an entry (entry 0 is
/// free again and first in line, so it may take the dead waiter's entry,
/// whose claim then takes the dead waits back; or entry 1 while the writer
/// holds entry 0's lock), counts itself, and "sleeps" if `notify` did not
/// move (its futex wait: it stays asleep until the writer has announced),
/// then takes its count back; the writer takes dead waits back
/// (`slots::reclaim_dead_waits`, as after a wake-up that woke nobody),
/// announces a publish (`slots::announce`), lets the sleeper go, and takes
/// dead waits back again while the sleeper leaves.
///
/// Checks: a waiter asleep on the old `notify` was seen counted by the
/// announce (no lost wake-up; loom needs `sync::sc_order` for the SeqCst
/// handshake), and in the end `waiters` holds exactly `leak` (the dead
/// waiter's count that no mark records), never less (a live waiter's count
/// taken makes its own uncount wrap around).
fn dead_waiter(mutation: &'static str, point: &'static str, leak: u32) {
    model(mutation, move || {
        // The SeqCst order of the handshake (`sync::sc_order`); reset by
        // `model_bounded` when the model ends.
        *crate::protocol::sync::SC_ORDER.lock().unwrap() = true;
        let o = ModelObject::new(2, 2, false);
        *crate::protocol::sync::CRASH_AT.lock().unwrap() = (point, 0);
        let dead = claim(&o, 5);
        let c = wait_count(&o, dead);
        let waking = point == "wait-between-unmark-and-uncount";
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.count();
            if waking {
                c.uncount();
            }
        }))
        .is_err();
        *crate::protocol::sync::CRASH_AT.lock().unwrap() = ("", 0);
        assert_eq!(died, !point.is_empty(), "the waiter did not die at {point:?}");
        // The kernel drops the dead process's entry lock; entry 0 is where
        // the next claim starts (as after a release).
        o.reader_file.drop_all(5);
        o.readers.claim_hint.store(0, Ordering::Relaxed);
        let announced = Arc::new(AtomicU32::new(0));
        let live = {
            let (o, announced) = (o.clone(), announced.clone());
            thread::spawn(move || {
                let i = claim(&o, 1);
                let c = wait_count(&o, i);
                // `wait_for_newer`: load `notify`, count, re-check, sleep.
                let seen = o.header.notify.load(Ordering::SeqCst);
                c.count();
                let asleep = o.header.notify.load(Ordering::SeqCst) == seen;
                if asleep {
                    // Until the writer has announced (a futex wait whose
                    // wake-up, if any, comes after the announce).
                    while announced.load(Ordering::SeqCst) == 0 {
                        thread::yield_now();
                    }
                }
                c.uncount();
                o.reader_file.drop_all(1);
                // Asleep on the value from before the writer's bump (a
                // sleep on the bumped value waits for the next publish).
                asleep && seen == 0
            })
        };
        let w = ModelWriter::new(&o, 0);
        slots::reclaim_dead_waits(&w.t);
        // The publish's step 5 (the bump and the `waiters` load).
        let wakes = slots::announce(&w.t);
        announced.store(1, Ordering::SeqCst);
        slots::reclaim_dead_waits(&w.t);
        let asleep = live.join().unwrap();
        assert!(!asleep || wakes, "count taken: lost wake-up (a waiter asleep on the old notify, no waiter seen)");
        slots::reclaim_dead_waits(&w.t);
        let left = o.readers.waiters.load(Ordering::Relaxed);
        // Below `leak` (or wrapped around): a live waiter's count was taken.
        assert!(left >= leak && left < u32::MAX / 2, "count taken: waiters {left} at the end, {leak} expected");
        assert_eq!(left, leak, "leaked count: waiters {left} with no waiter alive, {leak} expected ({point:?})");
    });
}

#[test]
fn loom_dead_waiter_asleep_is_taken_back() {
    dead_waiter("", "", 0);
}

/// Killed between its two steps: its count stays (no mark says it is there),
/// which over-counts; nothing is taken from the live waiter.
#[test]
fn loom_dead_waiter_between_count_and_mark_leaks_one() {
    dead_waiter("", "wait-between-count-and-mark", 1);
}

#[test]
fn loom_dead_waiter_between_unmark_and_uncount_leaks_one() {
    dead_waiter("", "wait-between-unmark-and-uncount", 1);
}

/// Marking before counting: a waiter killed in between leaves a mark for a
/// count it never added, and taking it back takes the live waiter's.
#[test]
#[should_panic(expected = "count taken")]
fn loom_dead_waiter_catches_mark_before_count() {
    dead_waiter("mark-before-count", "wait-between-count-and-mark", 0);
}

/// Probing the dead owner's lock and then taking its waits back (without
/// holding the lock) can take those of a live waiter that claimed the entry
/// in between.
#[test]
#[should_panic(expected = "count taken")]
fn loom_dead_waiter_catches_probe_then_take_back() {
    dead_waiter("reclaim-probe-then-clear", "", 0);
}

// ----------------------------------------------------------------- lock pins

/// Lock pins: `readers` readers pinning `reads` times; the writer publishes
/// twice over two slots, growing when a reader holds the other. Two readers
/// that spin on lock retries make the state space large: bound 2 there
/// (about 35 s on 2 cores; bound 3 took 260 s).
fn lock_pins(mutation: &'static str, readers: u32, reads: usize) {
    let preemptions = if readers > 1 { 2 } else { 3 };
    model_bounded(mutation, preemptions, move || {
        let o = ModelObject::new(2, 0, true);
        publish_while_reading(&o, readers, move |o, owner| lock_reader(o, owner, reads));
    });
}

#[test]
fn loom_lock_pins() {
    lock_pins("", 1, 2);
}

#[test]
fn loom_lock_pins_two_readers() {
    lock_pins("", 2, 1);
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_lock_pins_catch_missing_recheck() {
    lock_pins("lock-pin-no-recheck", 1, 1);
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_lock_pins_catch_writer_without_locks() {
    lock_pins("writer-ignores-slot-locks", 1, 1);
}

// ------------------------------------------------------------------ takeover

/// A writer dies in the middle of a publish (its slot left `WRITING`, its
/// locks dropped by the kernel); a second writer takes over (the real
/// liveness lock and `recover`) and publishes, while a reader reads across.
fn takeover(lock_pins: bool) {
    model("", move || {
        let o = ModelObject::new(2, 1, lock_pins);
        let mut w1 = ModelWriter::new(&o, 0);
        assert_eq!(w1.liveness().ok(), Some(true));
        let r = {
            let o = o.clone();
            thread::spawn(move || if lock_pins { lock_reader(&o, 1, 2) } else { table_reader(&o, 1, 2) })
        };
        w1.publish(2);
        let k = w1.begin();
        w1.fill(k, 99); // half-written, never published
        w1.die();
        let mut w2 = ModelWriter::new(&o, 2);
        assert_eq!(w2.liveness().ok(), Some(true));
        let next = slots::recover(&w2.t).unwrap();
        assert_eq!(next, 3);
        w2.publish(next);
        r.join().unwrap();
    });
}

#[test]
fn loom_takeover_table_pins() {
    takeover(false);
}

#[test]
fn loom_takeover_lock_pins() {
    takeover(true);
}

/// A second writer tries to take over a LIVE writer (whose `.lock` object was
/// unlinked): the real liveness lock refuses; with the check mutated away two
/// writers fill slots at once and a reader sees a torn view.
fn live_takeover(mutation: &'static str) {
    model(mutation, || {
        let o = ModelObject::new(3, 1, false);
        let mut w1 = ModelWriter::new(&o, 0);
        assert_eq!(w1.liveness().ok(), Some(true));
        let r = {
            let o = o.clone();
            thread::spawn(move || table_reader(&o, 1, 1))
        };
        let w2 = {
            let o = o.clone();
            thread::spawn(move || {
                let mut w2 = ModelWriter::new(&o, 2);
                match w2.liveness() {
                    Err(OpenError::WriterBusy { .. }) => return,
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
                let g = slots::recover(&w2.t).unwrap();
                w2.publish(g + 10);
            })
        };
        w1.publish(2);
        w1.publish(3);
        w2.join().unwrap();
        r.join().unwrap();
    });
}

#[test]
fn loom_live_writer_is_not_taken_over() {
    live_takeover("");
}

/// (Two writers also reset each other's pin counts under the reader, which
/// then refuses the pin: that is what loom finds first.)
#[test]
#[should_panic(expected = "bad pin")]
fn loom_live_takeover_catches_a_missing_liveness_check() {
    live_takeover("takeover-ignores-live-writer");
}

// ------------------------------------------------ shared writers' publish lock

/// Two live writers take the publish lock (`protocol/publish_lock.rs`), each
/// bumping a counter inside that no other access may race with (loom's
/// `UnsafeCell` reports a race as a causality violation); with `one_dies`, a
/// third takes it first and dies holding it (its seat lock, here a flag,
/// goes; it never unlocks): both live writers see it dead and race to take it
/// over. Every live writer must still get it, once at a time.
fn publish_lock_model(mutation: &'static str, one_dies: bool) {
    use crate::protocol::publish_lock;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::Ordering::{Acquire, Release};

    struct Shared {
        word: AtomicU32,
        /// Writer `id`'s seat lock is gone (index `id - 1`).
        gone: [AtomicU32; 3],
        counter: UnsafeCell<u32>,
    }
    // SAFETY: `counter` is only touched under the lock, which the model checks.
    #[allow(unsafe_code)]
    unsafe impl Sync for Shared {}

    fn take(s: &Shared, id: u32) {
        // The probe of a dead writer's seat: the kernel released its lock
        // after it died, so what it did is ordered before (Acquire / Release).
        let dead = |holder: u32| Ok::<_, ()>(s.gone[holder as usize - 1].load(Acquire) == 1);
        assert!(publish_lock::lock(&s.word, id, true, dead, |_| loom::thread::yield_now()).unwrap());
        // SAFETY: under the lock (the model reports it if not).
        #[allow(unsafe_code)]
        s.counter.with_mut(|c| unsafe { *c += 1 });
    }

    model(mutation, move || {
        let s = Arc::new(Shared {
            word: AtomicU32::new(0),
            gone: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            counter: UnsafeCell::new(0),
        });
        if one_dies {
            // Before the others start: a model in which they wait while it
            // dies spins past loom's branch bound (the waiters' polling); the
            // takeover race between the two live writers is the part to check.
            take(&s, 3);
            s.gone[2].store(1, Release); // dies holding it
        }
        let mut writers = Vec::new();
        for id in 1..=2 {
            let s = s.clone();
            writers.push(loom::thread::spawn(move || {
                take(&s, id);
                publish_lock::unlock(&s.word, || {});
            }));
        }
        for w in writers {
            w.join().unwrap();
        }
        // SAFETY: every writer has been joined.
        #[allow(unsafe_code)]
        let n = s.counter.with(|c| unsafe { *c });
        assert_eq!(n, if one_dies { 3 } else { 2 });
    });
}

#[test]
fn loom_publish_lock_excludes() {
    publish_lock_model("", false);
}

#[test]
fn loom_publish_lock_taken_over_from_a_dead_holder() {
    publish_lock_model("", true);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn loom_publish_lock_catches_relaxed_orderings() {
    publish_lock_model("publish-lock-relaxed", false);
}
