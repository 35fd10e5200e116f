//! The single writer of an object: creates it, serializes snapshots straight
//! into free slots, publishes them, reclaims dead readers' pins and grows.

use std::marker::PhantomData;
use std::time::Duration;

use rkyv::rancor::BoxedError;
use rkyv::ser::allocator::Arena;

use crate::error::{Errno, OpenError, PublishError};
use crate::layout::{self, slot_state, Header, ReaderTableHeader, SlotEntry, PAGE, READERS_MAGIC, SLOT_ALIGN};
use crate::os::{self, Mapping, ShmObject};
use crate::protocol::{self, MAX_GENERATION, MAX_SLOTS};
use crate::segment::{open_errno, DataSegment, ReaderTable, MAX_READERS};
use crate::slot_writer::SlotWriter;
use crate::sync::Ordering::{Relaxed, Release, SeqCst};
use crate::{Generation, Shared};

/// Options for creating or taking over an object. Start with [`Writer::options`].
pub struct WriterOptions<T> {
    slots: u32,
    capacity: u64,
    mode: u32,
    max_readers: u32,
    max_size: u64,
    remove_on_drop: bool,
    lock_pins: Option<bool>,
    _type: PhantomData<fn(&T)>,
}

impl<T> Clone for WriterOptions<T> {
    fn clone(&self) -> Self {
        WriterOptions { _type: PhantomData, ..*self }
    }
}

impl<T> std::fmt::Debug for WriterOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("slots", &self.slots)
            .field("capacity", &self.capacity)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("max_readers", &self.max_readers)
            .field("max_size", &self.max_size)
            .field("remove_on_drop", &self.remove_on_drop)
            .field("lock_pins", &self.lock_pins)
            .finish()
    }
}

impl<T> Default for WriterOptions<T> {
    fn default() -> Self {
        WriterOptions {
            slots: 3,
            capacity: 4096,
            mode: 0o600,
            max_readers: 64,
            max_size: 1 << 34,
            remove_on_drop: false,
            lock_pins: None,
            _type: PhantomData,
        }
    }
}

impl<T: Shared> WriterOptions<T> {
    /// Slots allocated at creation (default 3; more are added when readers pin them).
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }

    /// Initial capacity of each slot in bytes (default 4096; slots grow as needed).
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// File mode of the data segment (default `0o600`, owner only). Read bits let
    /// others read, and then make lock pins the default ([`Self::lock_pins`]);
    /// with table pins the reader table gets matching write bits (readers write
    /// their pins). The writer lock is always owner-only.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Reader handles that may be open at once (default 64).
    pub fn max_readers(mut self, n: u32) -> Self {
        self.max_readers = n;
        self
    }

    /// Largest size the data segment may grow to (default 16 GiB).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Remove the object's names when the writer is dropped (default false:
    /// readers keep reading the last snapshot after the writer exits).
    pub fn remove_on_drop(mut self, yes: bool) -> Self {
        self.remove_on_drop = yes;
        self
    }

    /// How readers pin the slots they use (fixed when the object is created).
    ///
    /// `false`: pins are words in the reader table, which every reader can
    /// write: no syscall on any path, but the readers of the object must trust
    /// one another (a hostile one could clear another's pin or truncate the
    /// table). `true`: pins are OFD read locks on the data segment, taken with a
    /// read-only descriptor: readers need no write access at all and cannot
    /// disturb each other or the writer, for syscalls: per publish two lock
    /// calls plus a futex wake (readers cannot register as waiters), per new
    /// generation read two lock calls (about 2.4 µs and 1.4 µs on the 2-vCPU VM
    /// of BENCHMARKS.md; unchanged reads stay one load). Default: `true` exactly
    /// when `mode` lets other users read the object.
    pub fn lock_pins(mut self, yes: bool) -> Self {
        self.lock_pins = Some(yes);
        self
    }

    fn uses_lock_pins(&self) -> bool {
        self.lock_pins.unwrap_or(self.mode & 0o077 != 0)
    }

    /// Creates a new object; `AlreadyExists` if one exists.
    pub fn create(self, name: &str) -> Result<Writer<T>, OpenError> {
        Writer::open_with(name, self, false)
    }

    /// Creates the object, or takes over an existing one whose writer is gone
    /// (same type required); generations continue upward.
    pub fn open_or_create(self, name: &str) -> Result<Writer<T>, OpenError> {
        Writer::open_with(name, self, true)
    }

    fn check(&self) -> Result<(), OpenError> {
        let bad = |what: String| Err(OpenError::InvalidOption { what });
        if self.slots < 2 {
            return bad(format!("slots = {} (at least 2)", self.slots));
        }
        if self.max_readers == 0 || self.max_readers > MAX_READERS {
            return bad(format!("max_readers = {} (1..={MAX_READERS})", self.max_readers));
        }
        if self.max_slots() > MAX_SLOTS {
            return bad(format!("slots + max_readers too large ({} slots, limit {MAX_SLOTS})", self.max_slots()));
        }
        if self.mode & !0o777 != 0 {
            return bad(format!("mode {:#o} has bits outside 0o777", self.mode));
        }
        if self.mode & 0o600 != 0o600 {
            return bad(format!("mode {:#o} must let the owner read and write", self.mode));
        }
        Ok(())
    }

    /// Live readers pin at most one slot each; with two more (current and the one
    /// being written) the writer never runs out while readers behave.
    fn max_slots(&self) -> u32 {
        self.slots.max(self.max_readers.saturating_add(2)).min(MAX_SLOTS + 1)
    }
}

/// The single writer of an object.
///
/// Holds the writer lock for its whole life; the kernel releases it when the
/// process dies, so a new writer can take over with
/// [`WriterOptions::open_or_create`].
pub struct Writer<T> {
    name: String,
    _lock: ShmObject,
    data: DataSegment,
    pins: Pins,
    /// Scratch for `order_slots`: (slot, capacity), best first.
    order: Vec<(u32, u64)>,
    next_gen: u64,
    arena: Arena,
    liveness_held: bool,
    last_len: u64,
    max_size: u64,
    remove_on_drop: bool,
    _type: PhantomData<fn(&T)>,
}

/// How the object's readers pin (its `pin_mode`), with the writer's state for it.
enum Pins {
    /// Pin words in the reader table; `pinned` is the scratch the scan fills.
    Table { readers: ReaderTable, pinned: Vec<bool> },
    /// OFD locks on slot bytes; `held` is the slot we write-lock while filling it.
    Locks { held: Option<u32> },
}

// SAFETY: a `Writer` owns its descriptors and mappings; the raw pointers inside
// them refer to shared memory that is accessed through atomics or only by the
// owner of the writer lock, so moving the handle to another thread is sound.
#[allow(unsafe_code)]
unsafe impl<T> Send for Writer<T> {}

impl<T> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("name", &self.name).field("next_gen", &self.next_gen).finish()
    }
}

impl<T: Shared> Writer<T> {
    /// Default options.
    pub fn options() -> WriterOptions<T> {
        WriterOptions::default()
    }

    /// Creates a new object with default options.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        WriterOptions::default().create(name)
    }

    /// Creates the object or takes over an existing one, with default options.
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        WriterOptions::default().open_or_create(name)
    }

    fn open_with(name: &str, opts: WriterOptions<T>, take_over: bool) -> Result<Self, OpenError> {
        crate::name::check(name)?;
        opts.check()?;
        let lock = Self::take_lock(name)?;
        let existing = ShmObject::create_new(&crate::name::data(name), opts.mode);
        let (data, next_gen, created) = match existing {
            Ok(obj) => (Self::initialise(obj, &opts)?, 1, true),
            Err(Errno::EXIST) if take_over => match DataSegment::open(name, true, Duration::ZERO) {
                Ok((seg, geo)) => {
                    check_owner(name, "data segment", &seg.obj)?;
                    if geo.fingerprint != crate::schema::fingerprint_of::<T>() {
                        return Err(crate::reader::type_mismatch::<T>(name, &seg, &geo));
                    }
                    let next = recover(&seg)?;
                    (seg, next, false)
                }
                // A creator that died before finishing: we hold the lock, so
                // nobody else is initialising it. Start afresh under the name.
                Err(OpenError::NotInitialized { .. }) => {
                    let _ = ShmObject::unlink(&crate::name::data(name));
                    let obj = ShmObject::create_new(&crate::name::data(name), opts.mode)
                        .map_err(|e| open_errno(name, "data segment", "creating the data segment", e))?;
                    (Self::initialise(obj, &opts)?, 1, true)
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(open_errno(name, "data segment", "creating the data segment", e)),
        };
        let pins = if data.header().pin_mode.load(Relaxed) == layout::pin_mode::LOCKS {
            if created {
                // Readers of a lock-pin object use no table: drop a stale one.
                let _ = ShmObject::unlink(&crate::name::readers(name));
            }
            Pins::Locks { held: None }
        } else {
            let readers = if created {
                create_reader_table(name, &opts)?
            } else {
                let t = ReaderTable::open(name)?;
                check_owner(name, "reader table", &t.obj)?;
                t
            };
            let max_slots = data.header().max_slots.load(Relaxed);
            Pins::Table { readers, pinned: vec![false; max_slots as usize] }
        };
        let mut w = Writer {
            name: name.to_string(),
            _lock: lock,
            data,
            pins,
            order: Vec::new(),
            next_gen,
            arena: Arena::new(),
            liveness_held: false,
            last_len: 0,
            max_size: opts.max_size,
            remove_on_drop: opts.remove_on_drop,
            _type: PhantomData,
        };
        w.take_liveness_lock(Duration::from_millis(100));
        let h = w.data.header();
        h.writer_pid.store(os::pid(), Relaxed);
        // SYNC(init): Release pairs with the Acquire load of `magic` in
        // `DataSegment::open`: the header, slot table and schema are complete.
        h.magic.store(layout::MAGIC, Release);
        Ok(w)
    }

    /// The owner-only lock object: exclusive flock, released by the kernel on death.
    fn take_lock(name: &str) -> Result<ShmObject, OpenError> {
        let lock = ShmObject::open_or_create(&crate::name::lock(name), 0o600)
            .map_err(|e| open_errno(name, "writer lock", "opening the writer lock", e))?;
        check_owner(name, "writer lock", &lock)?;
        match lock.try_flock_exclusive() {
            Ok(true) => Ok(lock),
            Ok(false) => Err(OpenError::WriterBusy { name: name.into() }),
            Err(errno) => Err(OpenError::Os { op: "flock", errno }),
        }
    }

    /// The OFD write lock readers probe for liveness. Readers can hold read
    /// locks on that byte (a probe in flight, or a hostile reader), so retry
    /// briefly, then carry on without it and try again at later publishes:
    /// a reader cannot stop publishing, only blur liveness reports.
    fn take_liveness_lock(&mut self, patience: Duration) {
        let start = std::time::Instant::now();
        loop {
            if let Ok(true) = os::try_write_lock(self.data.obj.fd(), layout::WRITER_LOCK_BYTE, 1) {
                self.liveness_held = true;
                return;
            }
            if start.elapsed() >= patience {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lays out a freshly created data segment.
    fn initialise(obj: ShmObject, opts: &WriterOptions<T>) -> Result<DataSegment, OpenError> {
        let os_err = |op| move |errno| OpenError::Os { op, errno };
        let max_slots = opts.max_slots();
        let schema = crate::schema::schema_of::<T>().encode();
        let header_size = layout::header_size_for(max_slots);
        let data_start = layout::align_up(header_size + schema.len() as u64, PAGE).unwrap_or(u64::MAX);
        let capacity = layout::align_up(opts.capacity.max(SLOT_ALIGN), SLOT_ALIGN).unwrap_or(u64::MAX);
        let segment_len = capacity
            .checked_mul(opts.slots as u64)
            .and_then(|n| n.checked_add(data_start))
            .filter(|&n| n <= opts.max_size)
            .ok_or_else(|| OpenError::InvalidOption {
                what: format!("{} slots of {} bytes exceed max_size {}", opts.slots, capacity, opts.max_size),
            })?;
        obj.grow_to(segment_len).map_err(os_err("allocating the data segment"))?;
        let map = Mapping::new(&obj, segment_len, true).map_err(os_err("mmap"))?;
        let seg = DataSegment { obj, map, writable: true };
        {
            let region = seg.region();
            let h = seg.header();
            h.format_version.store(layout::FORMAT_VERSION, Relaxed);
            h.header_size.store(header_size as u32, Relaxed);
            h.fingerprint.store(crate::schema::fingerprint_of::<T>(), Relaxed);
            h.rkyv_format.store(crate::schema::fp::RKYV_FORMAT, Relaxed);
            h.max_slots.store(max_slots, Relaxed);
            h.slot_count.store(opts.slots, Relaxed);
            h.schema_len.store(schema.len() as u64, Relaxed);
            h.data_start.store(data_start, Relaxed);
            h.segment_len.store(segment_len, Relaxed);
            h.max_segment_len.store(opts.max_size, Relaxed);
            h.created_ns.store(os::now_unix_ns(), Relaxed);
            let pins = if opts.uses_lock_pins() { layout::pin_mode::LOCKS } else { layout::pin_mode::SHARED_MEMORY };
            h.pin_mode.store(pins, Relaxed);
            h.max_readers.store(opts.max_readers, Relaxed);
            for i in 0..opts.slots {
                let e = region.slot(i).expect("slot table inside the header");
                e.offset.store(data_start + i as u64 * capacity, Relaxed);
                e.capacity.store(capacity, Relaxed);
            }
            let dst = region.range_ptr(header_size, schema.len() as u64).expect("schema inside the header");
            write_bytes(dst, &schema);
        }
        Ok(seg)
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The generation the next publish will get.
    pub fn next_generation(&self) -> Generation {
        Generation(self.next_gen)
    }

    /// Serializes `value` straight into a free slot and publishes it.
    ///
    /// Never waits for readers: a slot pinned by a reader is skipped; dead
    /// readers' pins are reclaimed; with no free slot, or none large enough, the
    /// segment grows (never shrinks). On error the previous snapshot stays current.
    pub fn publish(&mut self, value: &T) -> Result<Generation, PublishError> {
        if self.next_gen > MAX_GENERATION {
            return Err(PublishError::GenerationsExhausted);
        }
        if !self.liveness_held {
            self.take_liveness_lock(Duration::ZERO);
        }
        let gen = self.next_gen;
        // (A lock held since a failed publish: let it go before choosing again.)
        self.release_held_slot();
        let mut slot = self.free_slot()?;
        let mut len = self.serialize_into(slot, value)?;
        if let Err(needed) = len {
            slot = self.slot_with_room(slot, needed)?;
            len = self.serialize_into(slot, value)?;
        }
        let len = len.map_err(|needed| PublishError::Serialize {
            message: format!("value changed size between passes ({needed} bytes)"),
        })?;
        let now = os::now_unix_ns();
        let h = self.data.header();
        let e = self.entry(slot);
        e.len.store(len, Relaxed);
        e.gen.store(gen, Relaxed);
        e.published_ns.store(now, Relaxed);
        // SYNC(seal): Release pairs with the Acquire load in `recover` (a later
        // writer trusts only sealed slots).
        e.state.store(slot_state::SEALED, Release);
        #[cfg(feature = "fault-injection")]
        crate::fault::point("after-seal");
        protocol::publish(&h.current, protocol::word(gen, slot));
        // Readers may lock the new current slot now.
        self.release_held_slot();
        let h = self.data.header();
        h.publishes.fetch_add(1, Relaxed);
        h.last_publish_ns.store(now, Relaxed);
        self.last_len = len;
        self.next_gen += 1;
        self.wake_waiters(h);
        Ok(Generation(gen))
    }

    fn wake_waiters(&self, h: &Header) {
        // SYNC(wake): SeqCst RMW, then SeqCst load of `waiters`; pairs with the
        // SeqCst increment of `waiters` and load of `notify` in `Reader::wait_newer`
        // (store-buffering: one side sees the other, so no wake-up is lost).
        h.notify.fetch_add(1, SeqCst);
        let someone_waits = match &self.pins {
            Pins::Table { readers, .. } => readers_header(readers).waiters.load(SeqCst) > 0,
            // Lock-pin readers have no write access to count themselves.
            Pins::Locks { .. } => true,
        };
        if someone_waits {
            os::futex_wake_all(&h.notify);
        }
    }

    /// Lock pins: lets readers lock the slot we filled (now current).
    fn release_held_slot(&mut self) {
        if let Pins::Locks { held } = &mut self.pins {
            if let Some(k) = held.take() {
                let _ = os::unlock(self.data.obj.fd(), layout::SLOT_LOCK_BASE + k as u64, 1);
            }
        }
    }

    /// Makes slot `k` ours to fill if no reader uses it. Table pins: the last
    /// scan saw no pin on it (`fresh`: it did not exist at the scan, so no
    /// reader can have pinned it). Lock pins: we take the write lock on its
    /// byte, which succeeds only if no reader holds a read lock there (the
    /// kernel orders the two).
    fn try_take(&mut self, k: u32, fresh: bool) -> bool {
        match &mut self.pins {
            Pins::Table { pinned, .. } => fresh || !pinned[k as usize],
            Pins::Locks { held } => {
                let byte = layout::SLOT_LOCK_BASE + k as u64;
                let ok = matches!(os::try_write_lock(self.data.obj.fd(), byte, 1), Ok(true));
                if ok {
                    *held = Some(k);
                }
                ok
            }
        }
    }

    fn entry(&self, slot: u32) -> &SlotEntry {
        self.data.region().slot(slot).expect("slot index below max_slots")
    }

    /// Picks a slot that is neither current nor used by a reader, preferring
    /// one that fits the last snapshot's size; then reclaims dead readers' pins;
    /// then appends a slot (a hostile lock-pin reader may have locked the byte
    /// of a new slot too, so that may repeat up to `max_slots`).
    fn free_slot(&mut self) -> Result<u32, PublishError> {
        for attempt in 0..2 {
            self.scan_pins();
            self.order_slots();
            for i in 0..self.order.len() {
                let k = self.order[i].0;
                if self.try_take(k, false) {
                    return Ok(k);
                }
            }
            if attempt == 1 || self.reclaim_dead_pins() == 0 {
                break;
            }
        }
        loop {
            let k = self.add_slot(self.last_len.max(SLOT_ALIGN))?;
            if self.try_take(k, true) {
                return Ok(k);
            }
        }
    }

    /// Fills `order` with the slots other than the current one and their
    /// capacities, best first: those with room for the last snapshot, smallest
    /// first; then the others, largest first. (A kept buffer: no allocation per
    /// publish.)
    fn order_slots(&mut self) {
        let h = self.data.header();
        let c = h.current.load(Relaxed);
        let current = (c != 0).then(|| protocol::slot_of(c));
        let region = self.data.region();
        let capacity = |k: u32| region.slot(k).expect("slot below max_slots").capacity.load(Relaxed);
        self.order.clear();
        let count = h.slot_count.load(Relaxed);
        self.order.extend((0..count).filter(|&k| Some(k) != current).map(|k| (k, capacity(k))));
        let last_len = self.last_len;
        self.order.sort_unstable_by_key(
            |&(k, cap)| {
                if cap >= last_len {
                    (false, cap, k)
                } else {
                    (true, u64::MAX - cap, k)
                }
            },
        );
    }

    /// Table pins: marks the slots some reader's pin names.
    fn scan_pins(&mut self) {
        if let Pins::Table { readers, pinned } = &mut self.pins {
            let region = readers.region();
            pinned.iter_mut().for_each(|p| *p = false);
            let pins = (0..readers.scan_len()).filter_map(|i| region.reader(i)).map(|r| &r.pin);
            protocol::scan_pins(pins, pinned);
        }
    }

    /// Table pins: clears the pins of reader entries whose owner died (lock
    /// pins need none: the kernel drops a dead reader's locks).
    ///
    /// The writer takes the entry's OFD lock itself before clearing: a probe
    /// followed by a CAS could erase the pin of a reader that claimed the entry
    /// and pinned the same word in between (loom_tests shows it). Holding the
    /// lock keeps new readers out of the entry until the pin is cleared.
    fn reclaim_dead_pins(&mut self) -> u32 {
        let Pins::Table { readers, .. } = &self.pins else { return 0 };
        let region = readers.region();
        let mut reclaimed = 0;
        for i in 0..readers.scan_len() {
            let Some(r) = region.reader(i) else { break };
            if r.pin.load(Relaxed) == 0 {
                continue;
            }
            let byte = layout::READER_LOCK_BASE + i as u64;
            if let Ok(true) = os::try_write_lock(readers.obj.fd(), byte, 1) {
                // SYNC(unpin): Release, like a reader's own unpin.
                r.pin.store(0, Release);
                let _ = os::unlock(readers.obj.fd(), byte, 1);
                reclaimed += 1;
            }
        }
        self.data.header().reclaimed_pins.fetch_add(reclaimed as u64, Relaxed);
        reclaimed
    }

    /// Serializes into `slot`; `Ok(Err(needed))` when it does not fit.
    fn serialize_into(&mut self, slot: u32, value: &T) -> Result<Result<u64, u64>, PublishError> {
        let (offset, capacity) = {
            let e = self.entry(slot);
            e.state.store(slot_state::WRITING, Relaxed);
            (e.offset.load(Relaxed), e.capacity.load(Relaxed))
        };
        // A slot without room (reset by `recover`) only counts the size needed.
        let ptr = if capacity == 0 {
            core::ptr::NonNull::dangling().as_ptr()
        } else {
            self.data
                .region()
                .range_ptr(offset, capacity)
                .ok_or(PublishError::Os { op: "slot outside the mapping", errno: Errno::FAULT })?
        };
        // SAFETY: the slot is neither current nor pinned by any reader (checked by
        // `free_slot`/`slot_with_room` after the SeqCst fence of `scan_pins`), and we
        // hold the writer lock, so nobody reads or writes these bytes until we
        // publish them; `range_ptr` checked they lie inside our mapping (with
        // capacity 0 nothing is ever written through the dangling pointer).
        #[allow(unsafe_code)]
        let out = unsafe { SlotWriter::new(ptr, capacity as usize) };
        let out = rkyv::api::high::to_bytes_in_with_alloc::<_, _, BoxedError>(value, out, self.arena.acquire())
            .map_err(|e| PublishError::Serialize { message: e.to_string() })?;
        let len = out.len() as u64;
        // As rkyv's own `to_bytes` does: keep the arena to one block, or each
        // publish pays for walking and freeing the blocks the last one grew.
        self.arena.shrink();
        Ok(if out.fitted() { Ok(len) } else { Err(len) })
    }

    /// A free slot with at least `needed` bytes: another free one that fits, or
    /// `slot` moved to a new, larger region at the end of the segment.
    fn slot_with_room(&mut self, slot: u32, needed: u64) -> Result<u32, PublishError> {
        self.last_len = needed;
        // Table pins: another unpinned slot may already have room. (With lock
        // pins only the slot we hold is ours: it is moved instead.)
        if matches!(self.pins, Pins::Table { .. }) {
            self.order_slots();
            if let Pins::Table { pinned, .. } = &self.pins {
                let roomy = self.order.iter().find(|&&(k, cap)| !pinned[k as usize] && cap >= needed);
                if let Some(&(k, _)) = roomy {
                    return Ok(k);
                }
            }
        }
        let capacity = needed.max(SLOT_ALIGN).checked_next_power_of_two().unwrap_or(needed);
        let offset = self.allocate(capacity, needed)?;
        let e = self.entry(slot);
        e.state.store(slot_state::EMPTY, Relaxed);
        e.offset.store(offset, Relaxed);
        e.capacity.store(capacity, Relaxed);
        Ok(slot)
    }

    /// Appends a new slot of `capacity` bytes.
    fn add_slot(&mut self, capacity: u64) -> Result<u32, PublishError> {
        let h = self.data.header();
        let count = h.slot_count.load(Relaxed);
        let max = h.max_slots.load(Relaxed);
        if count >= max {
            return Err(PublishError::AllSlotsPinned { slots: count });
        }
        let capacity = layout::align_up(capacity, SLOT_ALIGN).unwrap_or(capacity);
        let offset = self.allocate(capacity, capacity)?;
        let e = self.entry(count);
        e.state.store(slot_state::EMPTY, Relaxed);
        e.gen.store(0, Relaxed);
        e.offset.store(offset, Relaxed);
        e.capacity.store(capacity, Relaxed);
        // Readers never look at slot_count; `recover` and tools do.
        self.data.header().slot_count.store(count + 1, Release);
        Ok(count)
    }

    /// Grows the segment by `capacity` bytes at its end; returns their offset.
    fn allocate(&mut self, capacity: u64, needed: u64) -> Result<u64, PublishError> {
        let h = self.data.header();
        let offset = layout::align_up(h.segment_len.load(Relaxed), SLOT_ALIGN).unwrap_or(u64::MAX);
        let Some(end) = offset.checked_add(capacity).filter(|&e| e <= self.max_size) else {
            return Err(PublishError::TooLarge { needed, limit: self.max_size });
        };
        // Whole pages where the limit allows.
        let end = layout::align_up(end, PAGE).filter(|&e| e <= self.max_size).unwrap_or(end);
        self.data.obj.grow_to(end).map_err(|errno| PublishError::Os { op: "growing the data segment", errno })?;
        #[cfg(feature = "fault-injection")]
        crate::fault::point("after-grow");
        self.data.map =
            Mapping::new(&self.data.obj, end, true).map_err(|errno| PublishError::Os { op: "mmap", errno })?;
        let h = self.data.header();
        // Readers do not need this (they check each slot against fstat); it
        // records how much of the object is in use, for recovery and tools.
        h.segment_len.store(end, Release);
        h.growths.fetch_add(1, Relaxed);
        Ok(offset)
    }
}

impl<T> Drop for Writer<T> {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = crate::remove(&self.name);
        }
    }
}

fn write_bytes(dst: *mut u8, src: &[u8]) {
    // SAFETY: `dst` comes from `Region::range_ptr(.., src.len())` of a mapping we
    // just created and nobody else can see yet (MAGIC is not set).
    #[allow(unsafe_code)]
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len())
    };
}

fn readers_header(readers: &ReaderTable) -> &ReaderTableHeader {
    readers.region().readers_header().expect("checked reader table")
}

/// Refuses objects of another user: taking them over would let whoever
/// planted them read or disturb what this writer publishes.
fn check_owner(name: &str, object: &'static str, obj: &ShmObject) -> Result<(), OpenError> {
    let (_, owner) = obj.mode_and_owner().map_err(|errno| OpenError::Os { op: "fstat", errno })?;
    if owner == os::euid() {
        Ok(())
    } else {
        Err(OpenError::NotOwner { name: name.into(), object, owner })
    }
}

/// Creates (or replaces a stale) reader table for a new data segment.
fn create_reader_table<T: Shared>(name: &str, opts: &WriterOptions<T>) -> Result<ReaderTable, OpenError> {
    let path = crate::name::readers(name);
    // Readers need write access to pin: mirror the data segment's read bits.
    let mode = opts.mode | ((opts.mode & 0o044) >> 1);
    let obj = match ShmObject::create_new(&path, mode) {
        Err(Errno::EXIST) => {
            // Left over from an object that was removed incompletely: readers of
            // that old object keep their own (unlinked) copy.
            let _ = ShmObject::unlink(&path);
            ShmObject::create_new(&path, mode)
        }
        r => r,
    }
    .map_err(|e| open_errno(name, "reader table", "creating the reader table", e))?;
    let size = layout::reader_table_size(opts.max_readers);
    obj.grow_to(size).map_err(|errno| OpenError::Os { op: "allocating the reader table", errno })?;
    let map = Mapping::new(&obj, size, true).map_err(|errno| OpenError::Os { op: "mmap", errno })?;
    {
        let region = crate::segment::map_region(&map);
        let h = region.readers_header().expect("reader table holds its header");
        h.capacity.store(opts.max_readers, Relaxed);
        // SYNC(init): Release pairs with the Acquire load in `ReaderTable::from_object`.
        h.magic.store(READERS_MAGIC, Release);
    }
    drop(map);
    ReaderTable::from_object(obj, true)
}

/// Takes over a segment whose writer died: returns the next generation.
///
/// The publish word is a single atomic, so it always names a sealed slot;
/// slots left `WRITING` are simply free. Generations continue above both the
/// published one and any sealed-but-unpublished one.
fn recover(seg: &DataSegment) -> Result<u64, OpenError> {
    let h = seg.header();
    let region = seg.region();
    let current = h.current.load(crate::sync::Ordering::Acquire);
    let count = h.slot_count.load(Relaxed);
    let segment_len = h.segment_len.load(Relaxed);
    let corrupt = |what: String| Err(OpenError::Corrupt { what });
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
        let e = region.slot(k).expect("slot below max_slots");
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
        // SYNC(seal): Acquire pairs with the Release store of SEALED in `publish`.
        match e.state.load(crate::sync::Ordering::Acquire) {
            slot_state::SEALED => highest = highest.max(e.gen.load(Relaxed)),
            _ if is_current => return corrupt(format!("published slot {k} is not sealed")),
            _ => e.state.store(slot_state::EMPTY, Relaxed),
        }
    }
    Ok(highest.saturating_add(1))
}
