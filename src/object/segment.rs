//! Opening and checking the shm objects of a name: the data segment and the
//! reader table. Every number read from shared memory is bounded here before
//! anything uses it (docs/DESIGN.md, invariant 7).

use std::time::{Duration, Instant};

use crate::error::{Errno, OpenError};
use crate::os::{self, LockProbe, Mapping, ShmObject};
use crate::protocol::layout::{
    self, Header, Region, FIXED_HEADER, FORMAT_VERSION, MAGIC, PREVIOUS_FORMAT, READERS_MAGIC, SLOT_ALIGN,
};
use crate::protocol::sync::Ordering::{Acquire, Relaxed};
use crate::protocol::MAX_SLOTS;

/// Largest schema description accepted from shared memory.
pub(crate) const MAX_SCHEMA_LEN: u64 = 1 << 20;
/// Largest reader table accepted.
pub(crate) const MAX_READERS: u32 = 1 << 16;

/// The checked, immutable geometry of a data segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub fingerprint: u64,
    pub max_slots: u32,
    pub header_size: u64,
    pub schema_len: u64,
    pub data_start: u64,
    /// `layout::pin_mode`.
    pub pin_mode: u32,
    /// Reader handles allowed at once.
    pub max_readers: u32,
    /// Random id of this incarnation of the object (non-zero).
    pub incarnation: u64,
    /// `FORMAT_VERSION` or `PREVIOUS_FORMAT`.
    pub format_version: u32,
}

/// An opened, mapped data segment.
#[derive(Debug)]
pub(crate) struct DataSegment {
    pub obj: ShmObject,
    pub map: Mapping,
    pub writable: bool,
}

/// Maps an `Errno` from opening `object` of `name` to an `OpenError`.
pub(crate) fn open_errno(name: &str, object: &'static str, op: &'static str, e: Errno) -> OpenError {
    match e {
        Errno::NOENT => OpenError::NotFound { name: name.to_string() },
        Errno::ACCESS | Errno::PERM => OpenError::PermissionDenied { name: name.to_string(), object },
        Errno::EXIST => OpenError::AlreadyExists { name: name.to_string() },
        Errno::LOOP => {
            OpenError::Corrupt { name: name.into(), what: format!("its {object} is a symbolic link (refused)") }
        }
        errno => OpenError::Os { name: name.into(), op, errno },
    }
}

impl DataSegment {
    /// Opens and maps an existing data segment, waiting up to `init_timeout` for
    /// a creator that is still initialising it. Checks magic, version and sizes.
    pub(crate) fn open(name: &str, writable: bool, init_timeout: Duration) -> Result<(Self, Geometry), OpenError> {
        let start = Instant::now();
        loop {
            // Reopened by name each round: a creator that died half-way may be
            // replaced by a new writer under the same name.
            let obj = ShmObject::open(&crate::object::name::data(name), writable)
                .map_err(|e| open_errno(name, "data segment", "opening the data segment", e))?;
            let size = obj.size().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
            if size >= FIXED_HEADER {
                let map = Mapping::new(&obj, size, writable).map_err(|errno| OpenError::Os {
                    name: name.into(),
                    op: "mmap",
                    errno,
                })?;
                let seg = DataSegment { obj, map, writable };
                // SYNC(init): Acquire pairs with the Release store of MAGIC in
                // `Writer::open_with`: every header field is visible after it.
                let magic = seg.header().magic.load(Acquire);
                if magic == MAGIC {
                    let geo = seg.check(name)?;
                    return Ok((seg, geo));
                }
                if magic != 0 {
                    return Err(OpenError::Corrupt {
                        name: name.into(),
                        what: format!("not a shmstate data segment (magic {magic:#018x})"),
                    });
                }
            }
            if start.elapsed() >= init_timeout {
                return Err(OpenError::NotInitialized { name: name.to_string() });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[inline]
    pub(crate) fn region(&self) -> Region<'_> {
        map_region(&self.map)
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // Every constructor checks the object holds at least FIXED_HEADER bytes.
        self.region().header().expect("data segment smaller than its header")
    }

    /// Checks the header against itself and the object's size.
    pub(crate) fn check(&self, name: &str) -> Result<Geometry, OpenError> {
        let h = self.header();
        let corrupt = |what: String| Err(OpenError::Corrupt { name: name.into(), what });
        let version = h.format_version.load(Relaxed);
        if version != FORMAT_VERSION && version != PREVIOUS_FORMAT {
            return Err(OpenError::FormatVersion { name: name.into(), found: version, supported: FORMAT_VERSION });
        }
        let size = self.obj.size().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
        let max_slots = h.max_slots.load(Relaxed);
        if max_slots == 0 || max_slots > MAX_SLOTS {
            return corrupt(format!("max_slots {max_slots} outside 1..={MAX_SLOTS}"));
        }
        let header_size = h.header_size.load(Relaxed) as u64;
        if header_size != layout::header_size_for(max_slots) {
            return corrupt(format!("header size {header_size} does not match {max_slots} slots"));
        }
        let slot_count = h.slot_count.load(Relaxed);
        if slot_count > max_slots {
            return corrupt(format!("slot count {slot_count} exceeds max_slots {max_slots}"));
        }
        let schema_len = h.schema_len.load(Relaxed);
        if schema_len > MAX_SCHEMA_LEN {
            return corrupt(format!("schema description of {schema_len} bytes"));
        }
        let data_start = h.data_start.load(Relaxed);
        if data_start % SLOT_ALIGN != 0 || data_start < header_size + schema_len {
            return corrupt(format!("data start {data_start} overlaps the header or is misaligned"));
        }
        let segment_len = h.segment_len.load(Relaxed);
        if segment_len < data_start || segment_len > size {
            return corrupt(format!("segment length {segment_len} outside [{data_start}, {size}] (object truncated?)"));
        }
        if self.map.len() < data_start {
            return corrupt(format!("mapping of {} bytes is smaller than the header", self.map.len()));
        }
        let pin_mode = h.pin_mode.load(Relaxed);
        if pin_mode != layout::pin_mode::SHARED_MEMORY && pin_mode != layout::pin_mode::LOCKS {
            return corrupt(format!("unknown pin mode {pin_mode}"));
        }
        let max_readers = h.max_readers.load(Relaxed);
        if max_readers == 0 || max_readers > MAX_READERS {
            return corrupt(format!("max_readers {max_readers} outside 1..={MAX_READERS}"));
        }
        let incarnation = h.incarnation.load(Relaxed);
        if incarnation == 0 {
            return corrupt("incarnation id 0".to_string());
        }
        Ok(Geometry {
            incarnation,
            format_version: version,
            fingerprint: h.fingerprint.load(Relaxed),
            max_slots,
            header_size,
            schema_len,
            data_start,
            pin_mode,
            max_readers,
        })
    }

    /// A copy of the stored schema description bytes.
    #[allow(unsafe_code)]
    pub(crate) fn schema_bytes(&self, geo: &Geometry) -> Vec<u8> {
        // SAFETY: the schema bytes are written once, before MAGIC is published,
        // and never again (a process with write access is trusted, RELIABILITY.md).
        let bytes = unsafe { self.region().bytes(geo.header_size, geo.schema_len) };
        bytes.map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// Remaps to the object's current size if `needed` lies beyond the mapping.
    pub(crate) fn ensure_mapped(&mut self, needed: u64) -> Result<bool, Errno> {
        self.map.cover(&self.obj, needed, self.writable)
    }

    /// What lock is held on `byte` of the segment by another descriptor (one
    /// `F_OFD_GETLK`: takes nothing, needs only read access).
    fn probe(&self, byte: u64) -> Result<LockProbe, Errno> {
        os::probe_lock(self.obj.fd(), byte, 1)
    }

    /// With lock pins: whether reader seat `i` is taken.
    pub(crate) fn seat_taken(&self, i: u32) -> bool {
        self.probe(layout::READER_SEAT_BASE + i as u64) == Ok(LockProbe::ReadLocked)
    }

    /// With lock pins: whether readers hold slot `k`.
    pub(crate) fn slot_lock_pinned(&self, k: u32) -> bool {
        self.probe(layout::SLOT_LOCK_BASE + k as u64) == Ok(LockProbe::ReadLocked)
    }

    /// With lock pins: whether someone write-locks slot `k` (only an earlier
    /// writer, while it fills the slot: `SlotInfo::write_locked`).
    pub(crate) fn slot_write_locked(&self, k: u32) -> bool {
        self.probe(layout::SLOT_LOCK_BASE + k as u64) == Ok(LockProbe::WriteLocked)
    }

    /// Whether this object's writer publishes its layout elsewhere under the
    /// name from now on (`Header::moved`): one load, in the publish word's
    /// cache line.
    pub(crate) fn moved(&self) -> bool {
        // SYNC(moved): Acquire pairs with the Release publish that follows
        // the mark (`RawWriter::mark_moved`); callers have loaded `current`
        // (Acquire) first, so a publish word they saw carries the mark.
        self.header().moved.load(Acquire) != 0
    }

    /// Whether a live writer holds this segment: its OFD lock on the first
    /// byte, or, for shared writers, any write lock on their range (one more
    /// `F_OFD_GETLK`, only when the first byte is free).
    pub(crate) fn writer_alive(&self) -> Result<bool, Errno> {
        if self.probe(layout::WRITER_LOCK_BYTE)? == LockProbe::WriteLocked {
            return Ok(true);
        }
        let range = os::probe_lock(self.obj.fd(), layout::SHARED_WRITER_BASE, layout::MAX_SHARED_WRITERS as u64)?;
        Ok(range == LockProbe::WriteLocked)
    }

    /// Shared writers: which of the writer seats are held (one probe each; for tools).
    pub(crate) fn shared_writer_seats(&self) -> Vec<u32> {
        (0..layout::MAX_SHARED_WRITERS)
            .filter(|&i| self.probe(layout::SHARED_WRITER_BASE + i as u64) == Ok(LockProbe::WriteLocked))
            .collect()
    }
}

/// An opened, mapped reader table.
#[derive(Debug)]
pub(crate) struct ReaderTable {
    pub obj: ShmObject,
    pub map: Mapping,
    pub capacity: u32,
    /// Pin counts after the entries (one per slot of the data segment).
    pub count_slots: u32,
    /// The incarnation of the data segment it belongs to.
    pub incarnation: u64,
}

/// Why a reader table could not be paired with a data segment.
#[derive(Debug)]
pub(crate) enum PairError {
    /// The table under the name belongs to another incarnation of the object
    /// (it was removed and created again since the data segment was opened):
    /// open both again.
    Replaced,
    /// No reader table under the name: `remove` unlinks the data segment,
    /// then the table, so the object is most likely being removed: open both
    /// again (the data segment is then `NotFound`).
    Missing,
    /// Anything else.
    Open(OpenError),
}

impl PairError {
    /// Whether opening both files again may help.
    pub(crate) fn retry(&self) -> bool {
        matches!(self, PairError::Replaced | PairError::Missing)
    }
}

impl PairError {
    /// After retries: a pair that never matches is a broken object.
    pub(crate) fn into_open_error(self, name: &str) -> OpenError {
        match self {
            PairError::Replaced => OpenError::Corrupt {
                name: name.into(),
                what: "its reader table belongs to another incarnation of the object \
                       (removed and created again while being opened, or tampered with)"
                    .into(),
            },
            PairError::Missing => OpenError::Corrupt { name: name.into(), what: "its reader table is missing".into() },
            PairError::Open(e) => e,
        }
    }
}

impl ReaderTable {
    /// Opens the reader table of `name` and checks that it belongs to the data
    /// segment of incarnation `incarnation` (read-write to pin, read-only to
    /// inspect). Both are opened by name, separately: without this check a
    /// reader could pin in the table of a newer object while reading the old
    /// one, and the old writer would never see its pin.
    pub(crate) fn open_paired(name: &str, incarnation: u64, writable: bool) -> Result<Self, PairError> {
        let obj = ShmObject::open(&crate::object::name::readers(name), writable).map_err(|e| match e {
            Errno::NOENT => PairError::Missing,
            e => PairError::Open(open_errno(name, "reader table", "opening the reader table", e)),
        })?;
        let t = Self::from_object(name, obj, writable).map_err(PairError::Open)?;
        if t.incarnation != incarnation {
            return Err(PairError::Replaced);
        }
        Ok(t)
    }

    pub(crate) fn from_object(name: &str, obj: ShmObject, writable: bool) -> Result<Self, OpenError> {
        let size = obj.size().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
        if size < layout::ENTRY {
            return Err(OpenError::Corrupt { name: name.into(), what: format!("reader table of {size} bytes") });
        }
        let map = Mapping::new(&obj, size, writable).map_err(|errno| OpenError::Os {
            name: name.into(),
            op: "mmap",
            errno,
        })?;
        let t = ReaderTable { obj, map, capacity: 0, count_slots: 0, incarnation: 0 };
        let h = t.region().readers_header().expect("checked size");
        let magic = h.magic.load(Acquire);
        if magic != READERS_MAGIC {
            return Err(OpenError::Corrupt { name: name.into(), what: format!("reader table magic {magic:#018x}") });
        }
        let capacity = h.capacity.load(Relaxed);
        let count_slots = h.count_slots.load(Relaxed);
        if capacity == 0
            || capacity > MAX_READERS
            || count_slots > MAX_SLOTS
            || layout::reader_table_size(capacity, count_slots) > size
        {
            return Err(OpenError::Corrupt {
                name: name.into(),
                what: format!("reader table capacity {capacity} and {count_slots} pin counts for {size} bytes"),
            });
        }
        // Written before the Release store of the magic we loaded with Acquire.
        let incarnation = h.incarnation.load(Relaxed);
        Ok(ReaderTable { capacity, count_slots, incarnation, ..t })
    }

    pub(crate) fn region(&self) -> Region<'_> {
        map_region(&self.map)
    }

    /// A table that pins must hold one pin count per slot of its data
    /// segment (format 3): with fewer, readers could not count (they would
    /// report `Corrupt`) and the writer would scan every pin at each publish.
    /// A format 2 table has none (`count_slots` was padding, zero): its
    /// readers pin without counting ([`Self::counts_pins`]).
    pub(crate) fn check_counts(&self, name: &str, geo: &Geometry) -> Result<(), OpenError> {
        let expected = if geo.format_version == PREVIOUS_FORMAT { 0 } else { geo.max_slots };
        if self.count_slots == expected {
            return Ok(());
        }
        let (n, v) = (self.count_slots, geo.format_version);
        let what = format!("reader table has {n} pin counts for {} slots of format {v}", geo.max_slots);
        Err(OpenError::Corrupt { name: name.into(), what })
    }

    /// Whether readers count their pins in this table (format 3; after
    /// `check_counts`, false exactly for a format 2 object).
    #[inline]
    pub(crate) fn counts_pins(&self) -> bool {
        self.count_slots != 0
    }

    /// Slot `k`'s pin count (`protocol/words.rs`), if the table has one.
    #[inline]
    pub(crate) fn pin_count(&self, k: u32) -> Option<&crate::protocol::sync::AtomicU64> {
        self.region().pin_count(self.capacity, self.count_slots, k)
    }

    /// Entries to scan: `[0, min(high_water, capacity))`.
    pub(crate) fn scan_len(&self) -> u32 {
        let hw = self.region().readers_header().map_or(0, |h| h.high_water.load(Relaxed));
        hw.min(self.capacity)
    }

    /// Whether entry `i` is owned by a live reader.
    pub(crate) fn entry_alive(&self, i: u32) -> Result<bool, Errno> {
        Ok(os::probe_lock(self.obj.fd(), layout::READER_LOCK_BASE + i as u64, 1)? == LockProbe::WriteLocked)
    }
}

/// The region of a live mapping, borrowed for as long as the mapping.
#[allow(unsafe_code)]
#[inline]
pub(crate) fn map_region(map: &Mapping) -> Region<'_> {
    // SAFETY: `map` is a live, page-aligned mapping of `map.len()` bytes, and the
    // region's lifetime is the borrow of `map`, so it cannot outlive the mapping.
    unsafe { Region::new(map.ptr(), map.len()) }
}
