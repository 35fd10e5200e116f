//! The single writer of an object: creates it, serializes snapshots straight
//! into free slots, publishes them, reclaims dead readers' pins and grows.

use std::marker::PhantomData;
use std::time::Duration;

use rkyv::rancor::BoxedError;
use rkyv::ser::allocator::Arena;

use crate::error::{Errno, OpenError, PublishError};
use crate::layout::{self, Header, ReaderEntry, ReaderTableHeader, SlotEntry, PAGE, READERS_MAGIC, SLOT_ALIGN};
use crate::locks::ByteLocks;
use crate::os::{self, Mapping, ShmObject};
use crate::protocol::{MAX_GENERATION, MAX_SLOTS};
use crate::segment::{open_errno, DataSegment, ReaderTable, MAX_READERS};
use crate::slot_writer::SlotWriter;
use crate::slots::{self, Slots};
use crate::sync::Ordering::{Relaxed, Release};
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

    fn check(&self, name: &str) -> Result<(), OpenError> {
        let bad = |what: String| Err(OpenError::InvalidOption { name: name.into(), what });
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
    tables: ObjectTables,
    slots: Slots,
    next_gen: u64,
    arena: Arena,
    liveness_held: bool,
    remove_on_drop: bool,
    _type: PhantomData<fn(&T)>,
}

/// The writer's mappings of the object, as `slots::Tables` for the protocol code.
struct ObjectTables {
    name: String,
    data: DataSegment,
    /// With table pins: the reader table of this incarnation.
    readers: Option<ReaderTable>,
    max_size: u64,
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
        opts.check(name)?;
        let lock = Self::take_lock(name)?;
        let existing = ShmObject::create_new(&crate::name::data(name), opts.mode);
        let (data, created, liveness_held) = match existing {
            Ok(obj) => {
                let seg = Self::initialise(name, obj, &opts)?;
                let held = slots::take_liveness_lock(name, &seg.obj)?;
                (seg, true, held)
            }
            Err(Errno::EXIST) if take_over => match DataSegment::open(name, true, Duration::ZERO) {
                Ok((seg, geo)) => {
                    check_owner(name, "data segment", &seg.obj)?;
                    // Before anything is written: a live writer (whose `.lock`
                    // was unlinked under it) keeps the object.
                    let held = slots::take_liveness_lock(name, &seg.obj)?;
                    if geo.fingerprint != T::FINGERPRINT {
                        return Err(crate::reader::type_mismatch::<T>(name, &seg, &geo));
                    }
                    (seg, false, held)
                }
                // A creator that died before finishing: we hold the lock, so
                // nobody else is initialising it. Start afresh under the name.
                Err(OpenError::NotInitialized { .. }) => {
                    let _ = ShmObject::unlink(&crate::name::data(name));
                    let obj = ShmObject::create_new(&crate::name::data(name), opts.mode)
                        .map_err(|e| open_errno(name, "data segment", "creating the data segment", e))?;
                    let seg = Self::initialise(name, obj, &opts)?;
                    let held = slots::take_liveness_lock(name, &seg.obj)?;
                    (seg, true, held)
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(open_errno(name, "data segment", "creating the data segment", e)),
        };
        let incarnation = data.header().incarnation.load(Relaxed);
        let lock_pins = data.header().pin_mode.load(Relaxed) == layout::pin_mode::LOCKS;
        let readers = if lock_pins {
            if created {
                // Readers of a lock-pin object use no table: drop a stale one.
                let _ = ShmObject::unlink(&crate::name::readers(name));
            }
            None
        } else if created {
            Some(create_reader_table(name, &opts, incarnation)?)
        } else {
            // Only the table of this incarnation: readers of the data
            // segment pin there and nowhere else.
            let t = ReaderTable::open_paired(name, incarnation, true).map_err(|e| e.into_open_error(name))?;
            check_owner(name, "reader table", &t.obj)?;
            Some(t)
        };
        let max_slots = data.header().max_slots.load(Relaxed);
        let tables = ObjectTables { name: name.to_string(), data, readers, max_size: opts.max_size };
        let next_gen = if created { 1 } else { slots::recover(&tables)? };
        let w = Writer {
            name: name.to_string(),
            _lock: lock,
            tables,
            slots: Slots::new(lock_pins, max_slots),
            next_gen,
            arena: Arena::new(),
            liveness_held,
            remove_on_drop: opts.remove_on_drop,
            _type: PhantomData,
        };
        let h = w.tables.data.header();
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
            Err(errno) => Err(OpenError::Os { name: name.into(), op: "flock", errno }),
        }
    }

    /// Lays out a freshly created data segment.
    fn initialise(name: &str, obj: ShmObject, opts: &WriterOptions<T>) -> Result<DataSegment, OpenError> {
        let os_err = |op| move |errno| OpenError::Os { name: name.into(), op, errno };
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
                name: name.into(),
                what: format!("{} slots of {} bytes exceed max_size {}", opts.slots, capacity, opts.max_size),
            })?;
        obj.grow_to(segment_len)
            .map_err(|e| OpenError::allocating(name, "allocating the data segment", segment_len, e))?;
        let map = Mapping::new(&obj, segment_len, true).map_err(os_err("mmap"))?;
        let seg = DataSegment { obj, map, writable: true };
        {
            let region = seg.region();
            let h = seg.header();
            h.format_version.store(layout::FORMAT_VERSION, Relaxed);
            h.header_size.store(header_size as u32, Relaxed);
            h.fingerprint.store(T::FINGERPRINT, Relaxed);
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
            h.incarnation.store(os::random_id(), Relaxed);
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
            return Err(PublishError::GenerationsExhausted { name: self.name.clone() });
        }
        if !self.liveness_held {
            // A hostile reader's read lock kept us from it at open; try again.
            let byte = layout::WRITER_LOCK_BYTE;
            self.liveness_held = matches!(self.tables.data.obj.try_write_lock(byte), Ok(true));
        }
        let gen = self.next_gen;
        let mut slot = self.slots.free_slot(&mut self.tables)?;
        let mut len = self.serialize_into(slot, value)?;
        if let Err(needed) = len {
            slot = self.slots.slot_with_room(&mut self.tables, slot, needed)?;
            len = self.serialize_into(slot, value)?;
        }
        let len = len.map_err(|needed| PublishError::Serialize {
            name: self.name.clone(),
            message: format!("value changed size between passes ({needed} bytes)"),
        })?;
        let now = os::now_unix_ns();
        self.slots.commit(&self.tables, slot, gen, len, now);
        let h = self.tables.data.header();
        h.publishes.fetch_add(1, Relaxed);
        h.last_publish_ns.store(now, Relaxed);
        self.next_gen += 1;
        if slots::announce(&self.tables) {
            os::futex_wake_all(&h.notify);
        }
        Ok(Generation(gen))
    }

    /// Serializes into `slot`; `Ok(Err(needed))` when it does not fit.
    fn serialize_into(&mut self, slot: u32, value: &T) -> Result<Result<u64, u64>, PublishError> {
        let (offset, capacity) = self.slots.begin_fill(&self.tables, slot);
        // A slot without room (reset by `recover`) only counts the size needed.
        let ptr = if capacity == 0 {
            core::ptr::NonNull::dangling().as_ptr()
        } else {
            self.tables.data.region().range_ptr(offset, capacity).ok_or_else(|| PublishError::Os {
                name: self.name.clone(),
                op: "slot outside the mapping",
                errno: Errno::FAULT,
            })?
        };
        // SAFETY: the slot is neither current nor pinned by any reader (checked by
        // `Slots::free_slot`/`slot_with_room` after the SeqCst fence of
        // `protocol::scan_pins`, or under its write lock with lock pins), and we
        // hold the writer lock, so nobody reads or writes these bytes until we
        // publish them; `range_ptr` checked they lie inside our mapping (with
        // capacity 0 nothing is ever written through the dangling pointer).
        #[allow(unsafe_code)]
        let out = unsafe { SlotWriter::new(ptr, capacity as usize) };
        let out = rkyv::api::high::to_bytes_in_with_alloc::<_, _, BoxedError>(value, out, self.arena.acquire())
            .map_err(|e| PublishError::Serialize { name: self.name.clone(), message: e.to_string() })?;
        let len = out.len() as u64;
        // As rkyv's own `to_bytes` does: keep the arena to one block, or each
        // publish pays for walking and freeing the blocks the last one grew.
        self.arena.shrink();
        Ok(if out.fitted() { Ok(len) } else { Err(len) })
    }
}

impl slots::Tables for ObjectTables {
    type Locks = ShmObject;

    fn name(&self) -> &str {
        &self.name
    }

    fn header(&self) -> &Header {
        self.data.header()
    }

    fn slot(&self, k: u32) -> Option<&SlotEntry> {
        self.data.region().slot(k)
    }

    fn data_locks(&self) -> &ShmObject {
        &self.data.obj
    }

    fn reader_table(&self) -> Option<(&ReaderTableHeader, u32, &ShmObject)> {
        let t = self.readers.as_ref()?;
        Some((t.region().readers_header()?, t.capacity, &t.obj))
    }

    fn reader(&self, i: u32) -> Option<&ReaderEntry> {
        self.readers.as_ref()?.region().reader(i)
    }

    /// Grows the segment by `capacity` bytes at its end; returns their offset.
    fn allocate(&mut self, capacity: u64, needed: u64) -> Result<u64, PublishError> {
        let h = self.data.header();
        let offset = layout::align_up(h.segment_len.load(Relaxed), SLOT_ALIGN).unwrap_or(u64::MAX);
        let Some(end) = offset.checked_add(capacity).filter(|&e| e <= self.max_size) else {
            return Err(PublishError::TooLarge { name: self.name.clone(), needed, limit: self.max_size });
        };
        // Whole pages where the limit allows.
        let end = layout::align_up(end, PAGE).filter(|&e| e <= self.max_size).unwrap_or(end);
        self.data.obj.grow_to(end).map_err(|errno| PublishError::growing(&self.name, end - offset, errno))?;
        #[cfg(feature = "fault-injection")]
        crate::fault::point("after-grow");
        self.data.map = Mapping::new(&self.data.obj, end, true).map_err(|errno| PublishError::Os {
            name: self.name.clone(),
            op: "mmap",
            errno,
        })?;
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

/// Refuses objects of another user: taking them over would let whoever
/// planted them read or disturb what this writer publishes.
fn check_owner(name: &str, object: &'static str, obj: &ShmObject) -> Result<(), OpenError> {
    let (_, owner) = obj.mode_and_owner().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
    if owner == os::euid() {
        Ok(())
    } else {
        Err(OpenError::NotOwner { name: name.into(), object, owner })
    }
}

/// Creates (or replaces a stale) reader table for a new data segment.
fn create_reader_table<T: Shared>(
    name: &str,
    opts: &WriterOptions<T>,
    incarnation: u64,
) -> Result<ReaderTable, OpenError> {
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
    obj.grow_to(size).map_err(|e| OpenError::allocating(name, "allocating the reader table", size, e))?;
    let map = Mapping::new(&obj, size, true).map_err(|errno| OpenError::Os { name: name.into(), op: "mmap", errno })?;
    {
        let region = crate::segment::map_region(&map);
        let h = region.readers_header().expect("reader table holds its header");
        h.capacity.store(opts.max_readers, Relaxed);
        h.incarnation.store(incarnation, Relaxed);
        // SYNC(init): Release pairs with the Acquire load in `ReaderTable::from_object`.
        h.magic.store(READERS_MAGIC, Release);
    }
    drop(map);
    ReaderTable::from_object(name, obj, true)
}
