//! loom model of the publish / pin / reclaim / growth protocol.
//!
//! Run with `scripts/loom.sh` (`RUSTFLAGS="--cfg loom" cargo test --release --lib loom`).
//! Under `--cfg loom` only `protocol` and `sync` are compiled, and `crate::sync`
//! switches to loom's atomics, so the functions checked here are the production
//! ones (`protocol::publish`, `scan_pins`, `pin_current`, `unpin`).
//!
//! The model: a writer publishes generations into slots whose payload is a few
//! `AtomicU64` words written `Relaxed` (standing for the bytes rkyv writes; in the
//! real code they are plain writes, which Miri checks in `heap_tests.rs`). It picks
//! the lowest slot that is neither current nor pinned, and "grows" (activates one
//! more slot) when there is none. A reader pins the current snapshot and checks
//! that every payload word equals the generation, then reads them all again to
//! check they did not change while pinned (invariant 1). Broken variants of the
//! reader (no re-check, no fence) and of dead-pin reclaim (probe + CAS, the ABA of
//! `Writer::reclaim_dead_pins`) are `#[should_panic]`: loom finds the torn read.
//!
//! Lock pins (`pin_mode::LOCKS`) are modelled too: each slot's OFD lock byte is
//! an `AtomicU32` try-lock with OFD semantics (read locks shared, the write lock
//! exclusive, never blocking; taking one is Acquire, dropping it Release, as the
//! kernel's lock on the inode's lock list gives). The reader steps mirror
//! `raw_reader::pin_with_locks`, the writer steps `Writer::free_slot_locked` and
//! `Writer::publish`; a reader without the re-check and a writer that ignores the
//! locks are `#[should_panic]`.

use loom::sync::Arc;
use loom::thread;

use crate::protocol::{self, generation_of, slot_of, word, Pinned};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

const WORDS: usize = 2;
const MAX_SLOTS: usize = 3;

struct Shm {
    current: AtomicU64,
    pins: Vec<AtomicU64>,
    /// Stand-in for each reader entry's OFD lock: 0 free, 1 reader, 2 writer.
    owners: Vec<AtomicU64>,
    slots: Vec<[AtomicU64; WORDS]>,
    /// Each slot's lock byte (`SLOT_LOCK_BASE + k`), for the lock-pin models.
    locks: Vec<SlotLock>,
}

impl Shm {
    fn new(readers: usize) -> Self {
        Shm {
            current: AtomicU64::new(0),
            pins: (0..readers).map(|_| AtomicU64::new(0)).collect(),
            owners: (0..readers).map(|_| AtomicU64::new(0)).collect(),
            slots: (0..MAX_SLOTS).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
            locks: (0..MAX_SLOTS).map(|_| SlotLock(AtomicU32::new(0))).collect(),
        }
    }

    fn write_slot(&self, k: usize, g: u64) {
        for w in &self.slots[k] {
            w.store(g, Ordering::Relaxed);
        }
    }

    fn check_slot(&self, k: usize, g: u64) {
        for (i, w) in self.slots[k].iter().enumerate() {
            let v = w.load(Ordering::Relaxed);
            assert_eq!(v, g, "torn view: slot {k} word {i} holds {v} while pinned at generation {g}");
        }
    }
}

/// The writer side of the model: `active` slots in use (grows), publishes `gens`.
struct ModelWriter {
    active: usize,
    pinned: Vec<bool>,
}

impl ModelWriter {
    /// Slot 0 holds generation 1 and is current before any thread starts.
    fn start(shm: &Shm, active: usize) -> Self {
        shm.write_slot(0, 1);
        protocol::publish(&shm.current, word(1, 0));
        ModelWriter { active, pinned: vec![false; MAX_SLOTS] }
    }

    fn publish(&mut self, shm: &Shm, g: u64) {
        self.pinned.iter_mut().for_each(|p| *p = false);
        let high_water = AtomicU32::new(shm.pins.len() as u32);
        protocol::scan_pins(&high_water, shm.pins.len() as u32, |i| shm.pins.get(i as usize), &mut self.pinned);
        let current = slot_of(shm.current.load(Ordering::Relaxed)) as usize;
        let free = (0..self.active).find(|&k| k != current && !self.pinned[k]);
        let k = match free {
            Some(k) => k,
            None => {
                // Growth: a live reader pins at most one slot, so one more suffices.
                assert!(self.active < MAX_SLOTS, "all slots pinned with one reader");
                self.active += 1;
                self.active - 1
            }
        };
        shm.write_slot(k, g);
        protocol::publish(&shm.current, word(g, k as u32));
    }
}

/// Reads through `pin_fn`, checks the payload, re-reads it, `reads` times.
fn reader(shm: &Shm, entry: usize, reads: usize, pin_fn: fn(&AtomicU64, &AtomicU64) -> Pinned) {
    let mut last = 0;
    for _ in 0..reads {
        let Pinned::Word(w) = pin_fn(&shm.current, &shm.pins[entry]) else { panic!("published before start") };
        let (g, k) = (generation_of(w), slot_of(w) as usize);
        assert!(g >= last, "generation went back from {last} to {g}");
        last = g;
        shm.check_slot(k, g);
        thread::yield_now();
        shm.check_slot(k, g);
    }
    protocol::unpin(&shm.pins[entry]);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Publish / pin / growth: one writer, one reader, two initial slots.
#[test]
fn loom_publish_pin_grow() {
    model(|| {
        let shm = Arc::new(Shm::new(1));
        let mut w = ModelWriter::start(&shm, 2);
        let s = shm.clone();
        let r = thread::spawn(move || reader(&s, 0, 2, protocol::pin_current));
        for g in 2..=3 {
            w.publish(&shm, g);
        }
        r.join().unwrap();
    });
}

/// Two readers, three slots from the start (no growth needed but allowed).
#[test]
fn loom_two_readers() {
    model(|| {
        let shm = Arc::new(Shm::new(2));
        let mut w = ModelWriter::start(&shm, 2);
        let readers: Vec<_> = (0..2)
            .map(|i| {
                let s = shm.clone();
                thread::spawn(move || reader(&s, i, 1, protocol::pin_current))
            })
            .collect();
        for g in 2..=3 {
            w.publish(&shm, g);
        }
        for r in readers {
            r.join().unwrap();
        }
    });
}

/// A broken `pin_current`: pins what it loaded and returns without re-checking
/// `current`. The writer can pick the slot in between: loom finds the torn view.
fn pin_without_recheck(current: &AtomicU64, pin: &AtomicU64) -> Pinned {
    let c1 = current.load(Ordering::Acquire);
    if c1 == 0 {
        return Pinned::Empty;
    }
    pin.store(c1, Ordering::Release);
    fence(Ordering::SeqCst);
    Pinned::Word(c1)
}

/// A broken `pin_current`: re-checks, but without the SeqCst fence between the
/// pin store and the reload (store-buffering is then allowed).
fn pin_without_fence(current: &AtomicU64, pin: &AtomicU64) -> Pinned {
    let mut c1 = current.load(Ordering::Acquire);
    loop {
        if c1 == 0 {
            return Pinned::Empty;
        }
        pin.store(c1, Ordering::Release);
        let c2 = current.load(Ordering::Acquire);
        if c2 == c1 {
            return Pinned::Word(c1);
        }
        c1 = c2;
        thread::yield_now();
    }
}

fn broken_reader_model(pin_fn: fn(&AtomicU64, &AtomicU64) -> Pinned) {
    model(move || {
        let shm = Arc::new(Shm::new(1));
        // Three slots from the start: the writer always finds a free one, so
        // the only way to tear is to write the slot the reader is using.
        let mut w = ModelWriter::start(&shm, 3);
        let s = shm.clone();
        let r = thread::spawn(move || reader(&s, 0, 1, pin_fn));
        for g in 2..=4 {
            w.publish(&shm, g);
        }
        r.join().unwrap();
    });
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_catches_missing_recheck() {
    broken_reader_model(pin_without_recheck);
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_catches_missing_fence() {
    broken_reader_model(pin_without_fence);
}

/// Reclaim of a dead reader's pin, then a new reader claiming the same entry.
///
/// Entry 0 was left by a dead reader pinning the current word (gen 1, slot 0).
/// The writer reclaims dead pins, then publishes twice; the new reader claims
/// entry 0 (or entry 1 if entry 0 is busy), pins and reads.
fn reclaim_model(reclaim: fn(&Shm, usize)) {
    model(move || {
        let shm = Arc::new(Shm::new(2));
        let mut w = ModelWriter::start(&shm, 3);
        shm.pins[0].store(word(1, 0), Ordering::Relaxed); // the dead reader's pin
        let s = shm.clone();
        let r = thread::spawn(move || {
            // claim_entry: take the first entry whose lock is free; clear its pin.
            let entry = (0..2)
                .find(|&i| s.owners[i].compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok())
                .expect("an entry is free");
            protocol::unpin(&s.pins[entry]);
            reader(&s, entry, 1, protocol::pin_current);
        });
        reclaim(&shm, 0);
        for g in 2..=3 {
            w.publish(&shm, g);
        }
        r.join().unwrap();
    });
}

/// What `Writer::reclaim_dead_pins` does today: probe the entry's lock, then
/// CAS the pin it loaded to 0. A reader that claims the entry between the probe
/// and the CAS and pins the same word loses its pin.
fn reclaim_probe_then_cas(shm: &Shm, i: usize) {
    let p = shm.pins[i].load(Ordering::Relaxed);
    let alive = shm.owners[i].load(Ordering::Acquire) != 0;
    if p != 0 && !alive {
        let _ = shm.pins[i].compare_exchange(p, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// The fix: take the entry's lock (the writer's own OFD write lock on the
/// entry's byte) while clearing the pin, so no reader can claim it meanwhile.
fn reclaim_under_lock(shm: &Shm, i: usize) {
    if shm.owners[i].compare_exchange(0, 2, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        protocol::unpin(&shm.pins[i]);
        shm.owners[i].store(0, Ordering::Release);
    }
}

#[test]
#[should_panic(expected = "torn view")]
fn loom_reclaim_probe_then_cas_loses_a_live_pin() {
    reclaim_model(reclaim_probe_then_cas);
}

#[test]
fn loom_reclaim_under_entry_lock() {
    reclaim_model(reclaim_under_lock);
}

// ------------------------------------------------------------------ lock pins

/// One OFD lock byte: the number of read locks held, or `WRITE_LOCKED`.
///
/// Non-blocking like `F_OFD_SETLK`: a read lock fails while the write lock is
/// held, the write lock fails while any lock is held. One descriptor per
/// process, as in shmstate, so each thread holds at most one lock per byte.
struct SlotLock(AtomicU32);

const WRITE_LOCKED: u32 = u32::MAX;

impl SlotLock {
    /// Every step is a read-modify-write (a failed compare-exchange included),
    /// so it reads the newest state, as the kernel's locked lock list does; a
    /// plain load could go on returning a stale "write-locked" forever.
    fn try_read(&self) -> bool {
        let mut v = 0;
        loop {
            // Acquire: a lock taken after the writer's unlock sees everything
            // the writer did before it.
            match self.0.compare_exchange(v, v + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(WRITE_LOCKED) => return false,
                Err(now) => v = now,
            }
        }
    }

    fn unlock_read(&self) {
        self.0.fetch_sub(1, Ordering::Release);
    }

    fn try_write(&self) -> bool {
        self.0.compare_exchange(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    fn unlock_write(&self) {
        self.0.store(0, Ordering::Release);
    }
}

/// `raw_reader::pin_with_locks`: read-lock the slot of the loaded word (keeping
/// the lock already held if it is the same slot, otherwise dropping the old one
/// and taking the new one), then re-check `current`. `recheck: false` is the
/// broken variant.
///
/// The real reader retries a failed lock (the writer holds the byte) until the
/// writer's unlock; loom cannot bound two threads spinning on a third, so here
/// the reader gives up after `MAX_LOCK_FAILURES` failures (`None`): a schedule
/// where it gives up checks nothing, every other one checks the pin.
fn pin_with_locks(shm: &Shm, held: &mut Option<usize>, recheck: bool) -> Option<u64> {
    let mut failures = 0;
    let mut c1 = shm.current.load(Ordering::Acquire);
    loop {
        assert_ne!(c1, 0, "published before start");
        let k = slot_of(c1) as usize;
        if *held != Some(k) {
            // Drop the old slot first, as the real reader does (it never holds two).
            if let Some(old) = held.take() {
                shm.locks[old].unlock_read();
            }
            if !shm.locks[k].try_read() {
                failures += 1;
                if failures == MAX_LOCK_FAILURES {
                    return None;
                }
                // The writer is filling it: our word is stale.
                c1 = shm.current.load(Ordering::Acquire);
                thread::yield_now();
                continue;
            }
            *held = Some(k);
        }
        if !recheck {
            return Some(c1);
        }
        let c2 = shm.current.load(Ordering::Acquire);
        if c2 == c1 {
            return Some(c1);
        }
        c1 = c2;
    }
}

const MAX_LOCK_FAILURES: u32 = 3;

/// A lock-pin reader: pins `reads` times, checks the payload, yields, checks
/// it again while still holding the lock, then releases (`RawReader::release`).
fn lock_reader(shm: &Shm, reads: usize, recheck: bool) {
    let mut held = None;
    let mut last = 0;
    for _ in 0..reads {
        let Some(w) = pin_with_locks(shm, &mut held, recheck) else { continue };
        let (g, k) = (generation_of(w), slot_of(w) as usize);
        assert!(g >= last, "generation went back from {last} to {g}");
        last = g;
        shm.check_slot(k, g);
        thread::yield_now();
        shm.check_slot(k, g);
    }
    if let Some(k) = held.take() {
        shm.locks[k].unlock_read();
    }
}

/// The writer side with lock pins: `Writer::free_slot_locked` + `publish`.
struct LockWriter {
    active: usize,
    held: Option<usize>,
    /// `false`: the broken variant that trusts "not current" alone.
    use_locks: bool,
}

impl LockWriter {
    fn start(shm: &Shm, active: usize, use_locks: bool) -> Self {
        ModelWriter::start(shm, active);
        LockWriter { active, held: None, use_locks }
    }

    fn try_hold(&mut self, shm: &Shm, k: usize) -> bool {
        let ok = !self.use_locks || shm.locks[k].try_write();
        if ok {
            self.held = Some(k);
        }
        ok
    }

    fn release_held(&mut self, shm: &Shm) {
        if let Some(k) = self.held.take() {
            if self.use_locks {
                shm.locks[k].unlock_write();
            }
        }
    }

    /// `free_slot_locked`: the first non-current slot whose byte we can
    /// write-lock; none: append slots until one can be locked.
    fn free_slot(&mut self, shm: &Shm) -> usize {
        self.release_held(shm);
        let current = slot_of(shm.current.load(Ordering::Relaxed)) as usize;
        for k in (0..self.active).filter(|&k| k != current) {
            if self.try_hold(shm, k) {
                return k;
            }
        }
        loop {
            // Growth: one reader holds at most one lock, so one more suffices.
            assert!(self.active < MAX_SLOTS, "all slots locked with one reader");
            self.active += 1;
            if self.try_hold(shm, self.active - 1) {
                return self.active - 1;
            }
        }
    }

    fn publish(&mut self, shm: &Shm, g: u64) {
        let k = self.free_slot(shm);
        shm.write_slot(k, g);
        protocol::publish(&shm.current, word(g, k as u32));
        // Readers may lock the new current slot now.
        self.release_held(shm);
    }
}

fn lock_pin_model(readers: usize, reads: usize, recheck: bool, use_locks: bool) {
    model(move || {
        let shm = Arc::new(Shm::new(0));
        // Two slots: a reader holding the non-current one forces a growth.
        let mut w = LockWriter::start(&shm, 2, use_locks);
        let rs: Vec<_> = (0..readers)
            .map(|_| {
                let s = shm.clone();
                thread::spawn(move || lock_reader(&s, reads, recheck))
            })
            .collect();
        for g in 2..=3 {
            w.publish(&shm, g);
        }
        for r in rs {
            r.join().unwrap();
        }
    });
}

/// Lock pins: one reader pinning twice (so it moves its lock), writer
/// publishing twice over two slots, growing when the reader holds the other.
#[test]
fn loom_lock_pins() {
    lock_pin_model(1, 2, true, true);
}

/// Lock pins with two readers (read locks are shared).
#[test]
fn loom_lock_pins_two_readers() {
    lock_pin_model(2, 1, true, true);
}

/// Without the re-check, a reader that loaded `current` before two publishes
/// locks its slot after the writer refilled it: it reads a newer generation
/// than it believes it pinned.
#[test]
#[should_panic(expected = "torn view")]
fn loom_lock_pins_catch_missing_recheck() {
    lock_pin_model(1, 1, false, true);
}

/// A writer that skips the slot locks and trusts "not current" writes the slot
/// a reader still holds.
#[test]
#[should_panic(expected = "torn view")]
fn loom_lock_pins_catch_writer_without_locks() {
    lock_pin_model(1, 1, true, false);
}
