//! The untyped writer: creates or takes over an object, and publishes
//! snapshots that a caller fills into a free slot: [`Writer<T>`] serializes a
//! `T` with rkyv; [`RawWriter::publish_bytes`] copies already-archived bytes
//! (tools, bridges, bindings), under the fingerprint and schema it was opened
//! with. The protocol steps are `protocol/slots.rs`; this file puts them on shared
//! memory.
//!
//! [`Writer<T>`]: crate::Writer

use std::time::{Duration, Instant};

use crate::archive::SlotWriter;
use crate::error::{Errno, OpenError, PublishError};
use crate::object::layouts::type_mismatch_doc;
use crate::object::segment::{open_errno, DataSegment, Geometry, ReaderTable};
use crate::os::{self, Mapping, ShmObject};
use crate::protocol::layout::{
    self, Header, ReaderEntry, ReaderTableHeader, SlotEntry, PAGE, READERS_MAGIC, SLOT_ALIGN,
};
use crate::protocol::locks::ByteLocks;
use crate::protocol::slots::{self, Slots};
use crate::protocol::sync::AtomicU64;
use crate::protocol::sync::Ordering::{Acquire, Relaxed, Release};
use crate::protocol::{self, MAX_GENERATION};
use crate::schema::SchemaDoc;
use crate::write::options::WriterOptions;
use crate::write::shared::{self, WriterTable};
use crate::write::WriterStats;
use crate::Generation;

impl WriterOptions<RawWriter> {
    /// Creates a new object that stores values of the type `schema` describes
    /// (its fingerprint is `schema.fingerprint()`); `AlreadyExists` if one exists.
    pub fn create_raw(self, name: &str, schema: &SchemaDoc) -> Result<RawWriter, OpenError> {
        RawWriter::open_with(name, &self, schema, false, |seg, geo| type_mismatch_doc(name, schema, seg, geo))
    }

    /// Creates the object, or takes over one whose writer is gone and whose
    /// fingerprint is `schema.fingerprint()`.
    pub fn open_or_create_raw(self, name: &str, schema: &SchemaDoc) -> Result<RawWriter, OpenError> {
        RawWriter::open_with(name, &self, schema, true, |seg, geo| type_mismatch_doc(name, schema, seg, geo))
    }
}

/// The single writer of an object, without its Rust type: it publishes bytes
/// under the fingerprint and schema it was opened with. Open one with
/// `RawWriter::options().open_or_create_raw(name, &schema)`.
pub struct RawWriter {
    name: String,
    /// The `.lock` object's flock (`None` once handed on by `into_lock`).
    lock: Option<ShmObject>,
    tables: ObjectTables,
    slots: Slots,
    next_gen: u64,
    fingerprint: u64,
    /// What `publish_bytes` checks the bytes against (and `publish_value` encodes with).
    pub(super) schema: SchemaDoc,
    liveness_held: bool,
    remove_on_drop: bool,
    /// The process that opened the writer: only it lets go of the locks at
    /// drop (see `RawReader`'s `opener`).
    opener: u32,
    /// Waiters the last publish's futex wake woke (0 or 1: the woken one
    /// passes it on, `watch::pass_on_wake`; every waiter in a format 2 object).
    woken: u32,
    /// A format 2 object: each publish wakes every waiter, as format 2's
    /// writers did, because readers of format 2 builds do not pass wake-ups
    /// on (docs/COMPATIBILITY.md).
    wakes_all: bool,
    /// When a wake-up last woke nobody while `waiters` was not 0 and the
    /// writer looked for dead waiters (`slots::reclaim_dead_waits`).
    last_waits_scan: Option<Instant>,
    /// With `WriterOptions::shared`: this writer's seat and the writer table.
    shared: Option<SharedSeat>,
    /// What this handle has done (`stats`).
    stats: WriterStats,
    /// The publish time of this handle's last publish (`last_publish_ns`).
    published_ns: u64,
}

/// A shared writer's place among the writers of its object (`write/shared.rs`).
#[derive(Debug)]
struct SharedSeat {
    seat: u32,
    /// Its id in the publish lock word (`WriterTable::claim`).
    id: u32,
    /// Boxed: publish-lock guards point at it while the writer is borrowed.
    table: Box<WriterTable>,
    /// The turn count this writer left at the publish lock (`WriterTable::take_turn`).
    turn: u64,
}

/// Releases the publish lock of a shared object when dropped, on every path
/// out of a publish (a panic in the caller's closure included).
struct PublishLock {
    /// The writer table of the writer that holds the lock; the writer outlives
    /// this guard (the guard lives inside one of its methods).
    table: *const WriterTable,
}

impl Drop for PublishLock {
    fn drop(&mut self) {
        // SAFETY: `table` points into a `Box<WriterTable>` of the writer
        // (`SharedSeat::table`, or the box `open_with` is about to move into
        // it): boxes do not move their contents, and the box outlives every
        // guard made from it (see where guards are made).
        #[allow(unsafe_code)]
        let table = unsafe { &*self.table };
        table.unlock();
    }
}

/// The writer's mappings of the object, as `slots::Tables` for the protocol code.
struct ObjectTables {
    name: String,
    data: DataSegment,
    /// With table pins: the reader table of this incarnation.
    readers: Option<ReaderTable>,
    max_size: u64,
}

// SAFETY: a `RawWriter` owns its descriptors and mappings; the raw pointers
// inside them refer to shared memory that is accessed through atomics or only
// by the owner of the writer lock, so moving the handle to another thread is sound.
#[allow(unsafe_code)]
unsafe impl Send for RawWriter {}

impl std::fmt::Debug for RawWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWriter").field("name", &self.name).field("next_gen", &self.next_gen).finish()
    }
}

impl RawWriter {
    /// Default options (`create_raw` / `open_or_create_raw` finish them).
    pub fn options() -> WriterOptions<RawWriter> {
        WriterOptions::default()
    }

    /// Creates `name` for values described by `schema`, or takes it over
    /// (`take_over`) if its fingerprint is `schema.fingerprint()`; `mismatch`
    /// makes the error for an object of another type.
    pub(crate) fn open_with<O>(
        name: &str,
        opts: &WriterOptions<O>,
        schema: &SchemaDoc,
        take_over: bool,
        mismatch: impl FnOnce(&DataSegment, &Geometry) -> OpenError,
    ) -> Result<Self, OpenError> {
        crate::object::name::check(name)?;
        opts.check(name)?;
        // A schema readers would refuse (they decode it from shared memory
        // with these same checks) is refused here, before anything exists.
        let bad_schema = |what: String| OpenError::InvalidOption { name: name.into(), what };
        schema.validate().map_err(|e| bad_schema(e.to_string()))?;
        let encoded = schema.encode().len() as u64;
        if encoded > crate::object::segment::MAX_SCHEMA_LEN {
            let limit = crate::object::segment::MAX_SCHEMA_LEN;
            return Err(bad_schema(format!("schema description of {encoded} bytes (readers accept {limit})")));
        }
        let mut lock = Self::take_lock(name, opts.shared, opts.wait_for_lock)?;
        // Shared writers open one at a time, under the publish lock: whoever
        // finds an object not yet initialised knows its creator died. On an
        // error below, closing `lock` (its only descriptor) releases it.
        let table = if opts.shared {
            shared::lock_opening(lock.fd()).map_err(|errno| OpenError::Os {
                name: name.into(),
                op: "taking the open lock",
                errno,
            })?;
            Some(Box::new(WriterTable::open(name, &lock)?))
        } else {
            None
        };
        let liveness = |seg: &DataSegment| -> Result<(bool, Option<u32>), OpenError> {
            if opts.shared {
                let seat = shared::take_seat(name, &seg.obj)?;
                // Byte 0 too when free: readers of earlier builds look only there.
                let first = matches!(seg.obj.try_write_lock(layout::WRITER_LOCK_BYTE), Ok(true));
                Ok((first, Some(seat)))
            } else {
                Ok((take_liveness_lock(name, seg)?, None))
            }
        };
        let existing = ShmObject::create_new(&crate::object::name::data(name), opts.mode);
        let mut first_gen = 1;
        let (data, created, (liveness_held, seat)) = match existing {
            Ok(obj) => {
                let seg = Self::initialise(name, obj, opts, schema)?;
                let held = liveness(&seg)?;
                (seg, true, held)
            }
            Err(Errno::EXIST) if take_over => match DataSegment::open(name, true, Duration::ZERO) {
                Ok((seg, geo)) => {
                    check_owner(name, "data segment", &seg.obj)?;
                    // Before anything is written: a live writer (whose `.lock`
                    // was unlinked under it) keeps the object.
                    let held = liveness(&seg)?;
                    if geo.fingerprint != schema.fingerprint() {
                        return Err(mismatch(&seg, &geo));
                    }
                    let (format, chosen) = opts.format();
                    // Shared writers keep the object's format (one of them
                    // cannot replace the object under the others).
                    if geo.format_version != format && (!chosen || opts.shared) {
                        return Err(OpenError::FormatVersion {
                            name: name.into(),
                            found: geo.format_version,
                            supported: format,
                        });
                    }
                    if geo.format_version != format {
                        // Asked to write another format than the object's
                        // (`WriterOptions::format_version`): a new object in
                        // that format replaces it. First, as the writer of the
                        // old one, mark it moved and publish its value once
                        // more (docs/PROTOCOL.md, "Moved objects"), so that its
                        // readers leave it at their next read, even on the fast
                        // path: readers that follow then move to the new object
                        // at its first publish, the others get `Replaced`.
                        let mut old = Self::assemble(name, opts, schema, lock, None, seg, false, held, 1)?;
                        old.remove_on_drop = false;
                        let last = old.republish_moved()?;
                        // Generations go on upward, as after a takeover.
                        first_gen = last.saturating_add(1).min(MAX_GENERATION);
                        lock = old.into_lock();
                        let seg = Self::replace_data_segment(name, opts, schema)?;
                        let held = liveness(&seg)?;
                        (seg, true, held)
                    } else {
                        // A lane an earlier writer marked moved is published
                        // again from here: readers that open it may stay.
                        // SYNC(moved): Relaxed, ordered before readers' view by
                        // our first publish's Release.
                        seg.header().moved.store(0, Relaxed);
                        (seg, false, held)
                    }
                }
                // A creator that died before finishing: we hold the lock, so
                // nobody else is initialising it. Start afresh under the name.
                Err(OpenError::NotInitialized { .. }) => {
                    let seg = Self::replace_data_segment(name, opts, schema)?;
                    let held = liveness(&seg)?;
                    (seg, true, held)
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(open_errno(name, "data segment", "creating the data segment", e)),
        };
        Self::assemble(name, opts, schema, lock, table, data, created, (liveness_held, seat), first_gen)
    }

    /// The writer of `data` (just created, or taken over), holding `lock`
    /// (and, shared, its seat in `table`): pairs or creates the reader table,
    /// recovers, and sets the magic.
    #[allow(clippy::too_many_arguments)]
    fn assemble<O>(
        name: &str,
        opts: &WriterOptions<O>,
        schema: &SchemaDoc,
        lock: ShmObject,
        table: Option<Box<WriterTable>>,
        data: DataSegment,
        created: bool,
        (liveness_held, seat): (bool, Option<u32>),
        first_gen: u64,
    ) -> Result<Self, OpenError> {
        // Shared: the slot table is the other writers' too from here on
        // (recovery below rewrites it): under the publish lock, released when
        // `_publishing` drops, after the table has moved (boxed) into `w`.
        let writer_id = table.as_ref().zip(seat).map(|(t, me)| t.claim(me));
        let _publishing = match (&table, writer_id) {
            (Some(t), Some(id)) => {
                t.lock(id, true, &data.obj).map_err(|errno| OpenError::Os {
                    name: name.into(),
                    op: "taking the publish lock",
                    errno,
                })?;
                Some(PublishLock { table: &**t })
            }
            _ => None,
        };
        let incarnation = data.header().incarnation.load(Relaxed);
        let lock_pins = data.header().pin_mode.load(Relaxed) == layout::pin_mode::LOCKS;
        let readers = if lock_pins {
            if created {
                // Readers of a lock-pin object use no table: drop a stale one.
                let _ = ShmObject::unlink(&crate::object::name::readers(name));
            }
            None
        } else if created {
            // SYNC(init): Relaxed; `max_slots` is fixed before the data segment's
            // magic, which `DataSegment::open` loaded with Acquire.
            Some(create_reader_table(name, opts, incarnation, data.header().max_slots.load(Relaxed))?)
        } else {
            // Only the table of this incarnation: readers of the data
            // segment pin there and nowhere else.
            let t = ReaderTable::open_paired(name, incarnation, true).map_err(|e| e.into_open_error(name))?;
            check_owner(name, "reader table", &t.obj)?;
            t.check_counts(name, &data.check(name)?)?;
            Some(t)
        };
        let max_slots = data.header().max_slots.load(Relaxed);
        // Relaxed: written at creation, before the magic this open checked.
        let wakes_all = data.header().format_version.load(Relaxed) == layout::PREVIOUS_FORMAT;
        let tables = ObjectTables { name: name.to_string(), data, readers, max_size: opts.max_size };
        let next_gen = if created { first_gen } else { slots::recover(&tables)? };
        let w = RawWriter {
            name: name.to_string(),
            lock: Some(lock),
            tables,
            slots: Slots::new(lock_pins, max_slots),
            next_gen,
            fingerprint: schema.fingerprint(),
            schema: schema.clone(),
            liveness_held,
            remove_on_drop: opts.remove_on_drop,
            opener: os::pid(),
            woken: 0,
            wakes_all,
            last_waits_scan: None,
            shared: None,
            stats: WriterStats::default(),
            published_ns: 0,
        };
        let mut w = w;
        w.shared = seat.zip(table).zip(writer_id).map(|((seat, table), id)| SharedSeat { seat, id, table, turn: 0 });
        if let Some(s) = &mut w.shared {
            s.table.enter(s.seat);
            // This open caught up (`recover` above): the turn is counted.
            s.table.take_turn(&mut s.turn);
            if let Some(lock) = &w.lock {
                shared::unlock_opening(lock.fd());
            }
        }
        let h = w.tables.data.header();
        h.writer_pid.store(os::pid(), Relaxed);
        // SYNC(init): Release pairs with the Acquire load of `magic` in
        // `DataSegment::open`: the header, slot table and schema are complete.
        h.magic.store(layout::MAGIC, Release);
        Ok(w)
    }

    /// The owner-only lock object: its flock, exclusive (or `shared` by the
    /// shared writers), released by the kernel on death. Waits `wait` (at
    /// least `INHERITED_LOCK_PATIENCE`) for a holder to go away.
    pub(crate) fn take_lock(name: &str, shared: bool, wait: Option<Duration>) -> Result<ShmObject, OpenError> {
        let lock = ShmObject::open_or_create(&crate::object::name::lock(name), 0o600)
            .map_err(|e| open_errno(name, "writer lock", "opening the writer lock", e))?;
        check_owner(name, "writer lock", &lock)?;
        let deadline = Instant::now() + wait.unwrap_or_default().max(INHERITED_LOCK_PATIENCE);
        loop {
            let taken = if shared { lock.try_flock_shared() } else { lock.try_flock_exclusive() };
            match taken {
                Ok(true) => return Ok(lock),
                Ok(false) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Ok(false) => return Err(OpenError::WriterBusy { name: name.into() }),
                Err(errno) => return Err(OpenError::Os { name: name.into(), op: "flock", errno }),
            }
        }
    }

    /// Unlinks the data segment under `name` and creates a new one in its
    /// place (we hold the `.lock`, so nobody else creates it meanwhile).
    fn replace_data_segment<O>(
        name: &str,
        opts: &WriterOptions<O>,
        schema: &SchemaDoc,
    ) -> Result<DataSegment, OpenError> {
        let _ = ShmObject::unlink(&crate::object::name::data(name));
        let obj = ShmObject::create_new(&crate::object::name::data(name), opts.mode)
            .map_err(|e| open_errno(name, "data segment", "creating the data segment", e))?;
        Self::initialise(name, obj, opts, schema)
    }

    /// Lays out a freshly created data segment.
    fn initialise<O>(
        name: &str,
        obj: ShmObject,
        opts: &WriterOptions<O>,
        schema: &SchemaDoc,
    ) -> Result<DataSegment, OpenError> {
        let os_err = |op| move |errno| OpenError::Os { name: name.into(), op, errno };
        let max_slots = opts.max_slots();
        let fingerprint = schema.fingerprint();
        let schema = schema.encode();
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
            h.format_version.store(opts.format().0, Relaxed);
            h.header_size.store(header_size as u32, Relaxed);
            h.fingerprint.store(fingerprint, Relaxed);
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

    /// For tests: how many waiting readers the last publish woke itself.
    #[doc(hidden)]
    pub fn woken_by_last_publish(&self) -> u32 {
        self.woken
    }

    /// Lets the next publish get generation `g` at least: the lanes of one
    /// writer publish each value under one number. Only ever raises it, so a
    /// reader never sees a generation go back.
    pub(crate) fn raise_next_generation(&mut self, g: Generation) {
        self.next_gen = self.next_gen.max(g.0);
    }

    /// The oldest generation a reader may still hold (`Slots::oldest_held`;
    /// `thorough` also reclaims dead readers); `None` with lock pins.
    pub(crate) fn oldest_held(&mut self, thorough: bool) -> Option<u64> {
        self.slots.oldest_held(&self.tables, thorough)
    }

    /// The fingerprint of the type this writer publishes.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Records where the next snapshots come from, for `inspect` (a mirror such
    /// as `shmstate-bridge` calls it before each publish): the source host
    /// (cut to 24 bytes) and the source's generation. Diagnostics only:
    /// readers never look at it, and `inspect` may see it one publish early.
    pub fn set_origin(&mut self, host: &str, generation: Generation) {
        let h = self.tables.data.header();
        let mut words = [0u8; 24];
        let n = host.len().min(words.len());
        words[..n].copy_from_slice(&host.as_bytes()[..n]);
        for (i, word) in h.origin_host.iter().enumerate() {
            let bytes: [u8; 8] = words[i * 8..i * 8 + 8].try_into().expect("8 bytes");
            // SYNC(origin): diagnostics, no pairing; inspect reads them Relaxed.
            word.store(u64::from_le_bytes(bytes), Relaxed);
        }
        h.origin_generation.store(generation.get(), Relaxed);
    }

    /// Publishes `archived`: the bytes of one rkyv archive (root at the end,
    /// as `rkyv::to_bytes` makes them) of the type this object stores, in
    /// this build's rkyv format. They are checked first against the schema
    /// the writer was opened with ([`dynamic::validate`], as strict as rkyv's
    /// bytecheck), then copied into a free slot: bytes that are no valid
    /// archive are [`PublishError::Invalid`] and never become current, so a
    /// reader's [`read_unchecked`](crate::Reader::read_unchecked), which
    /// trusts the object's writer, can trust this one too.
    ///
    /// [`dynamic::validate`]: crate::dynamic::validate
    pub fn publish_bytes(&mut self, archived: &[u8]) -> Result<Generation, PublishError> {
        crate::dynamic::validate(&self.schema, archived, crate::dynamic::Limits::default())
            .map_err(|e| PublishError::Invalid { name: self.name.clone(), reason: e.to_string() })?;
        self.copy_bytes(archived)
    }

    /// [`publish_bytes`](Self::publish_bytes) without the check, for bytes
    /// the caller has just validated (or for tests of readers' validation).
    ///
    /// # Safety
    /// `archived` is a valid archive of the object's type, or no reader of
    /// the object uses [`Reader::read_unchecked`](crate::Reader::read_unchecked)
    /// (readers that validate, `read` and the `dynamic` decoder, turn bad
    /// bytes into `ReadError::Invalid`; `read_unchecked` of bad bytes is
    /// undefined behaviour in the reader).
    #[allow(unsafe_code)]
    pub unsafe fn publish_bytes_unchecked(&mut self, archived: &[u8]) -> Result<Generation, PublishError> {
        self.copy_bytes(archived)
    }

    /// Publishes a copy of `archived`, whatever it holds.
    pub(crate) fn copy_bytes(&mut self, archived: &[u8]) -> Result<Generation, PublishError> {
        self.publish_with(|mut out| {
            rkyv::ser::Writer::<rkyv::rancor::Panic>::write(&mut out, archived)
                .map_err(|never| -> String { match never {} })?;
            Ok(out)
        })
    }

    /// Marks the object moved: its layout is published in another object under
    /// the same name from now on (docs/PROTOCOL.md "Moved objects"). The next
    /// publish, its last, carries the mark to every reader, which then
    /// resolves the name again; no reader keeps serving this object.
    pub(crate) fn mark_moved(&mut self) {
        // SYNC(moved): Relaxed; the Release store of the next publish orders
        // it before every reader that sees that publish (`DataSegment::moved`).
        self.tables.data.header().moved.store(1, Relaxed);
    }

    /// Marks the object moved and publishes its current value once more, the
    /// last publish of the object, which tells its readers (a new publish
    /// word). Returns the generation of that publish (the last one, if
    /// nothing was ever published: then no reader holds a value to leave).
    fn republish_moved(&mut self) -> Result<u64, OpenError> {
        let name = self.name.clone();
        // Relaxed: only this writer stores `current`.
        let word = self.tables.data.header().current.load(Relaxed);
        if word == 0 {
            return Ok(self.next_gen - 1);
        }
        let region = self.tables.data.region();
        let corrupt =
            || OpenError::Corrupt { name: name.clone(), what: "the current slot lies outside the segment".into() };
        let entry = region.slot(protocol::slot_of(word)).ok_or_else(corrupt)?;
        // Relaxed: sealed before we took the object over (we hold its locks).
        let len = entry.len.load(Relaxed);
        let ptr = region.range_ptr(entry.offset.load(Relaxed), len).ok_or_else(corrupt)?;
        // SAFETY: `range_ptr` checked that the `len` bytes lie inside our
        // mapping; the slot is current, so nobody writes it (we are its only
        // writer, and we copy them before choosing a slot to publish in).
        #[allow(unsafe_code)]
        let bytes = unsafe { core::slice::from_raw_parts(ptr, len as usize) }.to_vec();
        self.mark_moved();
        self.copy_bytes(&bytes).map(|g| g.0).map_err(|e| republish_error(&name, e))
    }

    /// The `.lock` object's flock, for the writer that replaces this object
    /// under the same name; dropping `self` then lets go of the rest.
    fn into_lock(mut self) -> ShmObject {
        self.lock.take().expect("a writer holds its lock until dropped")
    }

    /// Publishes the snapshot `fill` writes into a [`SlotWriter`] over a free
    /// slot. `fill` may be called twice: when the first pass does not fit, the
    /// writer makes room for the length it counted and calls it again.
    ///
    /// Never waits for readers: a slot pinned by a reader is skipped; dead
    /// readers' pins are reclaimed; with no free slot, or none large enough, the
    /// segment grows (never shrinks). On error the previous snapshot stays current.
    pub(crate) fn publish_with(
        &mut self,
        fill: impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
    ) -> Result<Generation, PublishError> {
        self.serialized(true, |w| w.publish_locked(fill)).map(|g| g.expect("a blocking lock is always taken"))
    }

    /// [`publish_with`](Self::publish_with) of a value just published in
    /// another object at `now_ns` (a lane of the writer that published it):
    /// an exclusive writer takes that as its publish time instead of reading
    /// the clock again. A shared one reads the clock under the publish lock,
    /// so that the object's publish times keep the order of its publishes.
    pub(crate) fn publish_with_time(
        &mut self,
        now_ns: u64,
        fill: impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
    ) -> Result<Generation, PublishError> {
        let time = self.shared.is_none().then_some(now_ns);
        self.serialized(true, |w| w.publish_locked_at(fill, time)).map(|g| g.expect("a blocking lock is always taken"))
    }

    /// The publish time (ns since the Unix epoch) of this handle's last
    /// successful publish; 0 before it.
    pub(crate) fn last_publish_ns(&self) -> u64 {
        self.published_ns
    }

    /// Runs `f` as the only writer of the object: at once for an exclusive
    /// writer; for a shared writer under the publish lock (waiting for it when
    /// `block`, else `Ok(None)` if another writer holds it), after catching
    /// up with what the other writers published ([`catch_up`](Self::catch_up)).
    pub(crate) fn serialized<R>(
        &mut self,
        block: bool,
        f: impl FnOnce(&mut Self) -> Result<R, PublishError>,
    ) -> Result<Option<R>, PublishError> {
        let Some(seat) = &mut self.shared else { return f(self).map(Some) };
        let lock_err = |errno| PublishError::Os { name: self.name.clone(), op: "taking the publish lock", errno };
        if !seat.table.lock(seat.id, block, &self.tables.data.obj).map_err(lock_err)? {
            self.stats.busy += 1;
            return Ok(None);
        }
        // The box stays in `self.shared` (private: `f` cannot take it) for
        // longer than the guard.
        let _unlock = PublishLock { table: &*seat.table };
        if seat.table.take_turn(&mut seat.turn) {
            self.stats.caught_up += 1;
            self.catch_up()?;
        }
        f(self).map(Some)
    }

    /// A shared writer that just took the publish lock: maps what another
    /// writer grew, and recovers the slot table as a writer taking over does
    /// (`slots::recover`: a writer that died mid-publish left a slot
    /// `WRITING`), which also gives the next generation.
    fn catch_up(&mut self) -> Result<(), PublishError> {
        let corrupt = |what: String| PublishError::Corrupt { name: self.name.clone(), what };
        // SYNC(segment-len): Acquire pairs with the Release store in `allocate`
        // of the writer that grew it; the publish lock orders us after it anyway.
        let len = self.tables.data.header().segment_len.load(Acquire);
        match self.tables.data.ensure_mapped(len) {
            Ok(true) => {}
            Ok(false) => return Err(corrupt(format!("segment_len {len} beyond the object's size"))),
            Err(errno) => return Err(PublishError::Os { name: self.name.clone(), op: "mmap", errno }),
        }
        self.next_gen = slots::recover(&self.tables).map_err(|e| match e {
            OpenError::Corrupt { what, .. } => corrupt(what),
            other => corrupt(other.to_string()),
        })?;
        Ok(())
    }

    /// The latest published snapshot's bytes, if any (the caller is the only
    /// writer for now: `serialized`).
    pub(crate) fn current_bytes(&self) -> Result<Option<&[u8]>, PublishError> {
        let h = self.tables.data.header();
        // SYNC(publish): Acquire pairs with the Release in `protocol::publish`
        // (ours, or another shared writer's before it let go of the lock).
        let current = h.current.load(Acquire);
        if current == 0 {
            return Ok(None);
        }
        let corrupt = |what: String| PublishError::Corrupt { name: self.name.clone(), what };
        let k = crate::protocol::slot_of(current);
        let e = self.tables.data.region().slot(k).ok_or_else(|| corrupt(format!("published slot {k}")))?;
        let (offset, len) = (e.offset.load(Relaxed), e.len.load(Relaxed));
        // SAFETY: the published slot is sealed and never written while it is
        // current, and only a writer (the caller, now the only one) could make
        // another slot current; `bytes` checks the range against the mapping.
        #[allow(unsafe_code)]
        let bytes = unsafe { self.tables.data.region().bytes(offset, len) };
        bytes.map(Some).ok_or_else(|| corrupt(format!("published slot {k} outside the segment")))
    }

    /// [`publish_with`](Self::publish_with) once this writer is the only one
    /// (inside [`serialized`](Self::serialized)).
    pub(crate) fn publish_locked(
        &mut self,
        fill: impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
    ) -> Result<Generation, PublishError> {
        self.publish_locked_at(fill, None)
    }

    /// [`publish_locked`](Self::publish_locked) with the publish time given
    /// (`None`: read the clock).
    fn publish_locked_at(
        &mut self,
        fill: impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
        time: Option<u64>,
    ) -> Result<Generation, PublishError> {
        let published = self.publish_counted(fill, time);
        match &published {
            Ok((_, len)) => {
                let s = &mut self.stats;
                s.publishes += 1;
                s.bytes_published += len;
                s.largest_snapshot = s.largest_snapshot.max(*len);
                s.woken += u64::from(self.woken);
            }
            Err(_) => self.stats.failed_publishes += 1,
        }
        published.map(|(g, _)| g)
    }

    /// What this handle has done since it opened, and the object's counters.
    pub fn stats(&self) -> WriterStats {
        let h = self.tables.data.header();
        // SYNC(counters): Relaxed; diagnostics, ordered with nothing.
        WriterStats {
            object_publishes: h.publishes.load(Relaxed),
            object_growths: h.growths.load(Relaxed),
            object_reclaimed_pins: h.reclaimed_pins.load(Relaxed),
            ..self.stats
        }
    }

    /// [`publish_locked`](Self::publish_locked): the generation and the
    /// snapshot's length.
    fn publish_counted(
        &mut self,
        mut fill: impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
        time: Option<u64>,
    ) -> Result<(Generation, u64), PublishError> {
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
        let mut len = self.fill_slot(slot, &mut fill)?;
        if let Err(needed) = len {
            slot = self.slots.slot_with_room(&mut self.tables, slot, needed)?;
            len = self.fill_slot(slot, &mut fill)?;
        }
        let len = len.map_err(|needed| PublishError::Serialize {
            name: self.name.clone(),
            message: format!("value changed size between passes ({needed} bytes)"),
        })?;
        let now = time.unwrap_or_else(os::now_unix_ns);
        self.published_ns = now;
        self.slots.commit(&self.tables, slot, gen, len, now);
        let h = self.tables.data.header();
        h.publishes.fetch_add(1, Relaxed);
        h.last_publish_ns.store(now, Relaxed);
        self.next_gen += 1;
        // One waiter, whatever their number: each one woken wakes the next
        // ones, so no publish pays for every waiter (docs/PROTOCOL.md, "Wake-ups").
        // Format 2: all of them, since its readers do not pass a wake-up on.
        let counted = slots::announce(&self.tables);
        let n = if self.wakes_all { i32::MAX as u32 } else { 1 };
        self.woken = if counted { os::futex_wake(&h.notify, n) } else { 0 };
        if counted && self.woken == 0 {
            self.look_for_dead_waiters();
        }
        Ok((Generation(gen), len))
    }

    /// A wake-up found nobody asleep although `waiters` was not 0: waiters
    /// between their count and their sleep (or just woken), or the count of a
    /// waiter killed while it waited. Table pins: takes the dead waiters'
    /// counts back (`slots::reclaim_dead_waits`), at most once per wait slice
    /// (100 ms), so that live waiters in transit cost a busy writer at most
    /// that many scans. Lock pins: nothing to do (no count).
    fn look_for_dead_waiters(&mut self) {
        if self.tables.readers.is_none() {
            return;
        }
        let now = Instant::now();
        if self.last_waits_scan.is_some_and(|t| now.duration_since(t) < crate::protocol::waiters::WAIT_SLICE) {
            return;
        }
        self.last_waits_scan = Some(now);
        slots::reclaim_dead_waits(&self.tables);
    }

    /// Runs `fill` over `slot`; `Ok(Err(needed))` when it did not fit.
    fn fill_slot(
        &mut self,
        slot: u32,
        fill: &mut impl FnMut(SlotWriter) -> Result<SlotWriter, String>,
    ) -> Result<Result<u64, u64>, PublishError> {
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
        let out = fill(out).map_err(|message| PublishError::Serialize { name: self.name.clone(), message })?;
        let len = out.len() as u64;
        Ok(if out.fitted() { Ok(len) } else { Err(len) })
    }
}

impl slots::Tables for ObjectTables {
    type Locks = ShmObject;

    #[inline]
    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn header(&self) -> &Header {
        self.data.header()
    }

    #[inline]
    fn slot(&self, k: u32) -> Option<&SlotEntry> {
        self.data.region().slot(k)
    }

    #[inline]
    fn data_locks(&self) -> &ShmObject {
        &self.data.obj
    }

    #[inline]
    fn reader_table(&self) -> Option<(&ReaderTableHeader, u32, &ShmObject)> {
        let t = self.readers.as_ref()?;
        Some((t.region().readers_header()?, t.capacity, &t.obj))
    }

    #[inline]
    fn reader(&self, i: u32) -> Option<&ReaderEntry> {
        self.readers.as_ref()?.region().reader(i)
    }

    #[inline]
    fn pin_count(&self, k: u32) -> Option<&AtomicU64> {
        self.readers.as_ref()?.pin_count(k)
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
        crate::os::fault::point("after-grow");
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

impl Drop for RawWriter {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = crate::object::remove_object(&self.name);
        }
        // Let go of the liveness lock and then the writer lock explicitly: a
        // child forked by any thread of this process shares them until it
        // execs, and the writer would look alive (and busy to a new writer,
        // `INHERITED_LOCK_PATIENCE`) for that long. Unlocking through our
        // descriptor releases them for every copy of it.
        if os::pid() == self.opener {
            if let Some(s) = &self.shared {
                s.table.leave(s.seat);
                shared::leave_seat(&self.tables.data.obj, s.seat);
            }
            if self.liveness_held {
                let _ = self.tables.data.obj.unlock(layout::WRITER_LOCK_BYTE);
            }
            if let Some(lock) = &self.lock {
                let _ = lock.unlock_flock();
            }
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

/// How long a writer lock held by someone else may take to go away before
/// `WriterBusy`. A writer's locks belong to its open file descriptions, and a
/// child forked by *any* thread of a process shares them until it `exec`s
/// (`O_CLOEXEC` closes them only then): for a moment after a writer is dropped,
/// or dies, its locks can outlive it. A live writer holds them for good.
const INHERITED_LOCK_PATIENCE: Duration = Duration::from_millis(250);

/// `slots::take_liveness_lock`, waiting out a lock that only a forked child
/// still carries (see `INHERITED_LOCK_PATIENCE`).
fn take_liveness_lock(name: &str, seg: &DataSegment) -> Result<bool, OpenError> {
    let deadline = Instant::now() + INHERITED_LOCK_PATIENCE;
    loop {
        match slots::take_liveness_lock(name, &seg.obj) {
            Err(OpenError::WriterBusy { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            r => return r,
        }
    }
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
fn create_reader_table<O>(
    name: &str,
    opts: &WriterOptions<O>,
    incarnation: u64,
    max_slots: u32,
) -> Result<ReaderTable, OpenError> {
    let path = crate::object::name::readers(name);
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
    // Format 2 tables have no pin counts (`count_slots` 0 was padding there).
    let counts = if opts.format().0 == layout::PREVIOUS_FORMAT { 0 } else { max_slots };
    let size = layout::reader_table_size(opts.max_readers, counts);
    obj.grow_to(size).map_err(|e| OpenError::allocating(name, "allocating the reader table", size, e))?;
    let map = Mapping::new(&obj, size, true).map_err(|errno| OpenError::Os { name: name.into(), op: "mmap", errno })?;
    {
        let region = crate::object::segment::map_region(&map);
        let h = region.readers_header().expect("reader table holds its header");
        // SYNC(init): Relaxed; published by the Release magic store below.
        h.capacity.store(opts.max_readers, Relaxed);
        h.count_slots.store(counts, Relaxed);
        h.incarnation.store(incarnation, Relaxed);
        // SYNC(init): Release pairs with the Acquire load in `ReaderTable::from_object`.
        h.magic.store(READERS_MAGIC, Release);
    }
    drop(map);
    ReaderTable::from_object(name, obj, true)
}

/// A failed last publish of a replaced object, as the error of the open.
fn republish_error(name: &str, e: PublishError) -> OpenError {
    match e {
        PublishError::NoSpace { needed, shm, .. } => OpenError::NoSpace { name: name.into(), needed, shm },
        PublishError::Os { op, errno, .. } => OpenError::Os { name: name.into(), op, errno },
        other => OpenError::Corrupt { name: name.into(), what: format!("republishing before replacing it: {other}") },
    }
}
