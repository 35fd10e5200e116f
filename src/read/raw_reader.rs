//! An untyped reader handle: owns a reader-table entry, pins the current
//! snapshot and exposes its bytes. [`Reader`](crate::Reader) adds the type,
//! validation and caching; tools (the CLI's `dump`) use this directly.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::error::{Errno, OpenError, ReadError, WaitError};
use crate::object::segment::{DataSegment, Geometry, ReaderTable};
use crate::os::{self, UnderName};
use crate::protocol::layout::{self, Header, ReaderEntry};
use crate::protocol::lock_pins;
use crate::protocol::sync::AtomicU64;
use crate::protocol::sync::Ordering::{Acquire, Relaxed};
use crate::protocol::waiters::WaitCount;
use crate::protocol::{self, Pinned};
use crate::read::stats::{ReadCounts, ReaderStats};
use crate::schema::{SchemaDoc, SchemaError};
use crate::Generation;

/// How long `wait_newer` keeps waiting after the writer is found dead, for a
/// new writer to take over (a restart, a deployment) before it says `WriterDead`.
pub const DEFAULT_WRITER_GRACE: Duration = Duration::from_secs(3);

/// How often `open` reopens an object replaced while it was being opened
/// before it reports the pair as broken.
const OPEN_ATTEMPTS: u32 = 8;

/// A reader handle that knows nothing of the stored type.
///
/// Owns one entry of the object's reader table (its pin), held by an OFD lock so
/// the writer can reclaim it if this process dies.
pub struct RawReader {
    name: String,
    pub(crate) data: DataSegment,
    pub(crate) geo: Geometry,
    pins: Pins,
    /// The process that opened the handle: only it lets go of the locks at
    /// drop (a forked child that drops an inherited copy must not free the
    /// parent's entry, see the crate docs, "`fork()`").
    opener: u32,
    /// What [`stats`](RawReader::stats) reports: `read` and the waits.
    counts: ReadCounts,
}

/// Where a pinned snapshot is, from [`RawReader::pin_latest`].
pub(crate) struct Pin {
    /// The publish word the pin holds.
    pub(crate) word: u64,
    offset: u64,
    len: u64,
    /// The segment had grown: the mapping moved (and so did the publish word).
    pub(crate) remapped: bool,
}

/// With table pins: this handle's pin word and the slots' pin counts, located
/// once at open in the reader table's mapping, which never moves (it is
/// never remapped and lives as long as the handle): the pin of a new
/// generation then takes no bound checks but the slot index's.
#[derive(Debug)]
struct PinWords {
    /// Our entry's pin word.
    pin: *const AtomicU64,
    /// `count_slots` contiguous pin counts.
    counts: *const AtomicU64,
    count_slots: u32,
}

impl PinWords {
    fn locate(readers: &ReaderTable, entry: u32) -> Option<PinWords> {
        let pin = &readers.region().reader(entry)?.pin;
        // Every count inside the table, as one pointer with the mapping's
        // provenance (not derived from a `&AtomicU64` of the first).
        // A format 2 table has none (`count_slots` 0: `count` finds none).
        let counts = match readers.count_slots {
            0 => std::ptr::null(),
            n => readers.region().pin_counts(readers.capacity, n)?,
        };
        Some(PinWords { pin, counts, count_slots: readers.count_slots })
    }

    fn pin(&self) -> &AtomicU64 {
        // SAFETY: located in the reader table's mapping at open (`locate`),
        // which lives, unmoved, as long as the handle that owns `self`.
        #[allow(unsafe_code)]
        unsafe {
            &*self.pin
        }
    }

    #[inline]
    fn count(&self, k: u32) -> Option<&AtomicU64> {
        // SAFETY: `k < count_slots`, and the `count_slots` counts starting at
        // `counts` are inside the reader table's mapping (`locate`), which
        // lives, unmoved, as long as the handle that owns `self`.
        #[allow(unsafe_code)]
        (k < self.count_slots).then(|| unsafe { &*self.counts.add(k as usize) })
    }
}

/// How this handle pins (the object's `pin_mode`).
#[derive(Debug)]
enum Pins {
    /// A reader-table entry, held by an OFD lock; its pin word names the slot.
    Table { readers: ReaderTable, entry: u32, words: PinWords },
    /// An OFD read lock on the lock byte of the slot in use (if any), and one
    /// on the reader's seat (which bounds readers at `max_readers`).
    /// (`held` is a `Cell` so that a snapshot can release it through a shared
    /// borrow of the handle: `Reader::read_releasing`.)
    Locks { held: Cell<Option<u32>>, seat: u32 },
}

// SAFETY: the handle owns its descriptors and mappings; every shared location
// is accessed through atomics, or (pinned slot bytes) is immutable while pinned.
#[allow(unsafe_code)]
unsafe impl Send for RawReader {}

impl std::fmt::Debug for RawReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawReader").field("name", &self.name).field("pins", &self.pins).finish()
    }
}

impl RawReader {
    /// Opens `name` without checking the stored type. `init_timeout` bounds the
    /// wait for a writer that is still initialising the object.
    pub fn open(name: &str, init_timeout: Duration) -> Result<Self, OpenError> {
        crate::object::name::check(name)?;
        let mut attempt = 0;
        loop {
            let (data, geo) = DataSegment::open(name, false, init_timeout)?;
            if geo.pin_mode == layout::pin_mode::LOCKS {
                let pins = Pins::Locks { held: Cell::new(None), seat: claim_seat(name, &data, geo.max_readers)? };
                return Ok(RawReader::opened(name, data, geo, pins));
            }
            // The data segment and the reader table are opened by name, one
            // after the other: the object may be removed and created again in
            // between. Pin only in the table of this data segment's incarnation.
            match ReaderTable::open_paired(name, geo.incarnation, true) {
                Ok(readers) => {
                    readers.check_counts(name, &geo)?;
                    let entry = claim_entry(name, &readers)?;
                    let Some(words) = PinWords::locate(&readers, entry) else {
                        let what = "reader entry or pin counts outside the reader table".to_string();
                        return Err(OpenError::Corrupt { name: name.into(), what });
                    };
                    let pins = Pins::Table { readers, entry, words };
                    return Ok(RawReader::opened(name, data, geo, pins));
                }
                Err(e) if e.retry() && attempt < OPEN_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e.into_open_error(name)),
            }
        }
    }

    /// The handle, once its segment is open and its pin claimed.
    fn opened(name: &str, data: DataSegment, geo: Geometry, pins: Pins) -> Self {
        RawReader { name: name.to_string(), data, geo, pins, opener: os::pid(), counts: ReadCounts::default() }
    }

    /// Random id of the incarnation of the object this handle reads (a name
    /// removed and created again refers to a new incarnation).
    pub fn incarnation(&self) -> u64 {
        self.geo.incarnation
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stored type's fingerprint.
    pub fn fingerprint(&self) -> u64 {
        self.geo.fingerprint
    }

    /// The stored schema description, decoded and checked.
    pub fn schema(&self) -> Result<SchemaDoc, SchemaError> {
        SchemaDoc::decode(&self.data.schema_bytes(&self.geo))
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        self.data.header()
    }

    /// The publish word's bit position of the generation: a publish word is
    /// `generation << GENERATION_SHIFT | slot` (docs/PROTOCOL.md).
    pub const GENERATION_SHIFT: u32 = protocol::MAX_SLOTS.trailing_zeros();

    /// Where the publish word lives in the current mapping, for a binding
    /// whose fast path is inlined in another language (the C header's
    /// `shmstate_read_fast`): load it with Acquire, as
    /// [`generation`](Self::generation) does (pairing with the publish's
    /// Release store), and shift by [`GENERATION_SHIFT`](Self::GENERATION_SHIFT).
    /// Valid until the next remap, which only [`read`](Self::read) does
    /// (`pin_latest`), or until the reader is dropped.
    pub fn current_ptr(&self) -> *const AtomicU64 {
        &self.header().current
    }

    fn my_entry(readers: &ReaderTable, entry: u32) -> &ReaderEntry {
        readers.region().reader(entry).expect("claimed entry inside the table")
    }

    /// The latest published generation (`Generation::NONE` before the first
    /// publish), without pinning anything.
    #[inline]
    pub fn generation(&self) -> Generation {
        // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
        Generation(protocol::generation_of(self.header().current.load(Acquire)))
    }

    /// Whether the writer has moved this object's layout elsewhere under the
    /// name: its last publish here carried the mark (docs/PROTOCOL.md "Moved
    /// objects"). One load.
    pub fn moved(&self) -> bool {
        self.data.moved()
    }

    /// Whether the object to read under this handle's name is no longer this
    /// one: its layout [`moved`](Self::moved), the name refers to another
    /// object (removed and created again), or, for a lane (`NAME@<fp>`), to
    /// nothing (a lane is removed when its layout moves). An object removed
    /// and not created again is still the one to read. Two `stat`s unless
    /// moved: for slow paths (what `ReaderOptions::follow` looks at).
    pub fn superseded(&self) -> Result<bool, Errno> {
        if self.moved() {
            return Ok(true);
        }
        let lane = self.name.contains('@');
        Ok(match self.under_name()? {
            UnderName::Another => true,
            UnderName::Nothing => lane,
            UnderName::This => false,
        })
    }

    /// Opens `name` once it exists and has published, waiting up to
    /// `timeout` (inotify on `/dev/shm`, then the object's futex; a creator
    /// that dies before its first publish is waited past for `grace`, for a
    /// writer that takes over). At the timeout: the object if it exists
    /// (maybe with nothing published), else `NotFound`.
    pub fn open_when_published(name: &str, timeout: Duration, grace: Duration) -> Result<Self, OpenError> {
        crate::read::await_writer::open_when_published(timeout, grace, || RawReader::open(name, Duration::ZERO))
    }

    /// Whether a live writer holds the object (an OFD-lock probe: one syscall).
    pub fn writer_alive(&self) -> bool {
        self.data.writer_alive().unwrap_or(false)
    }

    /// Pins the latest snapshot and returns its generation and bytes (rkyv's
    /// root is at the end). Not validated: decode it defensively.
    pub fn read(&mut self) -> Result<(Generation, &[u8]), ReadError> {
        self.counts.slow_reads.bump();
        let pin = self.pin_latest().inspect_err(|_| self.counts.errors.bump())?;
        let bytes = self.pinned_bytes(&pin).inspect_err(|_| self.counts.errors.bump())?;
        Ok((Generation(protocol::generation_of(pin.word)), bytes))
    }

    /// What this handle's [`read`](Self::read) and waits have done since it
    /// opened (every read pins: `slow_reads` counts them all; nothing is
    /// validated). Plain numbers kept in the handle, as
    /// [`Reader::stats`](crate::Reader::stats).
    pub fn stats(&self) -> ReaderStats {
        self.counts.get()
    }

    /// Pins the current snapshot and says where its bytes are, remapping
    /// first if the segment grew past the mapping.
    ///
    /// The path of every new-generation read: what is not the pin or a
    /// bound check (building errors, remapping) is out of line.
    #[inline(always)]
    pub(crate) fn pin_latest(&mut self) -> Result<Pin, ReadError> {
        let pinned = match &mut self.pins {
            Pins::Table { readers, words, .. } if readers.counts_pins() => {
                protocol::pin_current(&self.data.header().current, words.pin(), |k| words.count(k))
            }
            // A format 2 object: its table has no pin counts.
            Pins::Table { words, .. } => protocol::pin_uncounted(&self.data.header().current, words.pin()),
            Pins::Locks { held, .. } => {
                let mut slot = held.get();
                let pinned = lock_pins::pin_with_locks(&self.data.obj, &self.data.header().current, &mut slot);
                held.set(slot);
                match pinned {
                    Ok(p) => p,
                    Err(errno) => return Err(self.os_error("locking a slot", errno)),
                }
            }
        };
        let Pinned::Word(word) = pinned else { return Err(self.not_pinned(pinned)) };
        let slot = protocol::slot_of(word);
        let region = match self.data.region().slot(slot).filter(|_| slot < self.geo.max_slots) {
            Some(e) => protocol::pinned_region(e, word, self.geo.data_start),
            None => return Err(self.bad_slot(word)),
        };
        let (offset, len) = match region {
            Ok(r) => r,
            Err(bad) => return Err(self.corrupt(bad.to_string())),
        };
        let mut remapped = false;
        // `pinned_region` checked that `offset + len` does not overflow.
        if offset + len > self.data.map.len() {
            self.remap_for(offset, len)?;
            remapped = true;
        }
        Ok(Pin { word, offset, len, remapped })
    }

    /// The bytes of the slot `pin` (the last `pin_latest`) pinned.
    #[inline]
    pub(crate) fn pinned_bytes(&self, pin: &Pin) -> Result<&[u8], ReadError> {
        // SAFETY: the slot is pinned and the pin was confirmed against `current`
        // after a SeqCst fence (protocol/words.rs), so the writer will not write these
        // bytes until our pin changes, which needs `&mut self` (the returned
        // slice borrows `self`); `pin_latest` made them part of the mapping.
        #[allow(unsafe_code)]
        let bytes = unsafe { self.data.region().bytes(pin.offset, pin.len) };
        match bytes {
            Some(bytes) => Ok(bytes),
            None => Err(self.corrupt("slot outside the mapping".into())),
        }
    }

    /// The mapping does not reach `[offset, offset + len)`: remaps if the
    /// object grew that far (else the slot lies beyond its end: `Corrupt`).
    #[cold]
    fn remap_for(&mut self, offset: u64, len: u64) -> Result<(), ReadError> {
        match self.data.ensure_mapped(offset + len) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(self.corrupt(format!("slot [{offset}, {}) lies beyond the end of the object", offset + len)))
            }
            Err(errno) => Err(self.os_error("remapping", errno)),
        }
    }

    #[cold]
    fn not_pinned(&self, pinned: Pinned) -> ReadError {
        match pinned {
            Pinned::BadCount(w) => {
                self.corrupt(format!("slot {}'s pin count does not belong to its published word", protocol::slot_of(w)))
            }
            Pinned::Empty | Pinned::Word(_) => ReadError::Empty { name: self.name.clone() },
        }
    }

    #[cold]
    fn bad_slot(&self, word: u64) -> ReadError {
        let slot = protocol::slot_of(word);
        self.corrupt(format!("published slot {slot} beyond max_slots {}", self.geo.max_slots))
    }

    #[cold]
    fn corrupt(&self, what: String) -> ReadError {
        ReadError::Corrupt { name: self.name.clone(), what }
    }

    #[cold]
    fn os_error(&self, op: &'static str, errno: Errno) -> ReadError {
        ReadError::Os { name: self.name.clone(), op, errno }
    }

    /// Counts a validation failure in the shared counters (for tools).
    pub(crate) fn count_validation_failure(&self) {
        // (With lock pins readers cannot write shared counters.)
        if let Pins::Table { readers, .. } = &self.pins {
            if let Some(h) = readers.region().readers_header() {
                h.validation_failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// Drops the pin, letting the writer reuse the slot.
    pub fn release(&mut self) {
        self.unpin();
    }

    /// [`release`](Self::release) through a shared borrow: for a snapshot
    /// that releases its pin when dropped (`Reader::read_releasing`), which
    /// borrows the handle while it lives. The pin is this handle's own
    /// (an entry only it writes, or its own lock), and a handle is used by one
    /// thread at a time (`RawReader` is not `Sync`).
    pub(crate) fn unpin(&self) {
        match &self.pins {
            Pins::Table { words, .. } => protocol::unpin(words.pin(), |k| words.count(k)),
            Pins::Locks { held, .. } => {
                let mut slot = held.get();
                let _ = lock_pins::release(&self.data.obj, &mut slot);
                held.set(slot);
            }
        }
    }

    /// Blocks until a generation newer than `than` is published, the writer is
    /// found dead for longer than [`DEFAULT_WRITER_GRACE`] (a writer restarted
    /// within it is waited for), or `timeout` passes. Uses a shared futex in the
    /// header: no polling, and no wake-up syscall for the writer when nobody waits.
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        self.wait_newer_with_grace(than, timeout, DEFAULT_WRITER_GRACE)
    }

    /// [`wait_newer`](Self::wait_newer), waiting up to `grace` for a dead
    /// writer to be replaced (a new writer's `open_or_create` takes the object
    /// over and continues the generations upward, so its first publish ends the
    /// wait). `Duration::ZERO` reports `WriterDead` as soon as the writer is dead.
    pub fn wait_newer_with_grace(
        &self,
        than: Generation,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Generation, WaitError> {
        self.counts.waits.bump();
        let woke = self.wait_counted(than, timeout, grace);
        if woke.is_ok() {
            self.counts.wakeups.bump();
        }
        woke
    }

    /// The wait of `wait_newer_with_grace`.
    fn wait_counted(&self, than: Generation, timeout: Duration, grace: Duration) -> Result<Generation, WaitError> {
        // With lock pins there is no table to count waiters in; the writer then
        // always wakes.
        // With table pins our waits are also marked in our entry, so that the
        // writer takes them back if we die waiting (`protocol/waiters.rs`).
        let count = match &self.pins {
            Pins::Table { readers, entry, .. } => readers
                .region()
                .readers_header()
                .map(|rh| WaitCount { waiters: &rh.waiters, mark: Some(&Self::my_entry(readers, *entry).waiting) }),
            Pins::Locks { .. } => None,
        };
        crate::read::watch::wait_for_newer(&self.name, &self.data, count, than, timeout, grace)
    }

    /// What the object's name refers to now: this object, another one (it was
    /// removed and created again), or nothing (removed). Two `stat`s: for slow
    /// paths only.
    pub(crate) fn under_name(&self) -> Result<UnderName, Errno> {
        self.data.obj.under_name(&crate::object::name::data(&self.name))
    }
}

impl Drop for RawReader {
    fn drop(&mut self) {
        // The locks are let go of explicitly, not by closing the descriptors: a
        // child forked by any thread of this process shares the open file
        // descriptions, and so the OFD locks, until it execs (`O_CLOEXEC`), and
        // the handle would look alive (`inspect`, `shmstate rm`), or its slot
        // pinned, for that long. An unlock through our descriptor releases
        // the lock for every copy of it.
        let mine = os::pid() == self.opener;
        match &self.pins {
            Pins::Table { readers, entry, words } => {
                protocol::unpin(words.pin(), |k| words.count(k));
                // After the unpin: once unlocked, the entry may be claimed again.
                if mine {
                    let _ = os::unlock(readers.obj.fd(), layout::READER_LOCK_BASE + *entry as u64, 1);
                }
                if let Some(h) = readers.region().readers_header() {
                    protocol::release_entry(h, *entry);
                }
            }
            Pins::Locks { held, seat } if mine => {
                let mut slot = held.get();
                let _ = lock_pins::release(&self.data.obj, &mut slot);
                held.set(slot);
                let _ = os::unlock(self.data.obj.fd(), layout::READER_SEAT_BASE + *seat as u64, 1);
            }
            Pins::Locks { .. } => {}
        }
    }
}

/// Lock pins: takes a free reader seat. A seat is free when nobody holds a
/// lock on its byte; after read-locking it, the reader probes again (its own
/// lock is invisible to its own probe): another holder means two readers
/// raced, and both back off. So no two readers keep one seat; a hostile reader
/// can only fill seats (`ReaderTableFull`), as a reader of a table-pin object can.
///
/// Two readers opening at once would otherwise collide on every seat in
/// lockstep: each starts at a random seat and, after a collision, waits a random
/// few microseconds, which breaks the symmetry.
fn claim_seat(name: &str, data: &DataSegment, capacity: u32) -> Result<u32, OpenError> {
    let fd = data.obj.fd();
    let os_err = |errno| OpenError::Os { name: name.into(), op: "locking a reader seat", errno };
    let mut rng = (os::now_unix_ns() ^ (os::pid() as u64).rotate_left(32)) | 1;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let deadline = Instant::now() + Duration::from_millis(200);
    loop {
        let start = (random() % capacity as u64) as u32;
        let mut collided = false;
        for i in (0..capacity).map(|n| (start + n) % capacity) {
            if data.seat_taken(i) {
                continue;
            }
            let byte = layout::READER_SEAT_BASE + i as u64;
            if !os::try_read_lock(fd, byte, 1).map_err(os_err)? {
                continue;
            }
            if !data.seat_taken(i) {
                return Ok(i);
            }
            os::unlock(fd, byte, 1).map_err(os_err)?;
            collided = true;
            break;
        }
        // Every seat held by someone else: full. A collision: try again.
        if !collided || Instant::now() >= deadline {
            return Err(OpenError::ReaderTableFull { name: name.into(), capacity });
        }
        std::thread::sleep(Duration::from_micros(random() % 200));
    }
}

/// Claims a free reader entry (`protocol::claim_entry`) and records who holds it.
pub(crate) fn claim_entry(name: &str, t: &ReaderTable) -> Result<u32, OpenError> {
    let region = t.region();
    let h = region.readers_header().expect("checked reader table");
    let claimed = protocol::claim_entry(&t.obj, h, t.capacity, |i| region.reader(i))
        .map_err(|errno| OpenError::Os { name: name.into(), op: "locking a reader entry", errno })?;
    let i = claimed.ok_or(OpenError::ReaderTableFull { name: name.into(), capacity: t.capacity })?;
    let e = region.reader(i).expect("entry inside the checked table");
    e.pid.store(os::pid(), Relaxed);
    e.opened_ns.store(os::now_unix_ns(), Relaxed);
    Ok(i)
}
