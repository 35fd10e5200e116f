//! What lives in shared memory, byte for byte.
//!
//! Data segment (`shmstate.N`; writer read-write, readers read-only):
//! ```text
//! 0                 Header (fixed fields, 256 bytes)
//! 256               slot table: max_slots × SlotEntry (64 bytes each)
//! header_size       schema description (rkyv-encoded SchemaDoc)
//! data_start        slot payloads, each 64-byte aligned, appended as slots grow
//! segment_len       end (the object only ever grows)
//! ```
//! Reader table (`shmstate.N.readers`; everyone read-write): a 64-byte
//! `ReaderTableHeader`, then `capacity` × `ReaderEntry`, then `count_slots` ×
//! 8-byte pin counts (one per slot, `words.rs`), padded to 64 bytes. Entry
//! `i`'s owner holds an OFD write lock on byte `READER_LOCK_BASE + i` of that
//! object for its life.
//!
//! Every field is an atomic: other processes may write any of them at any time,
//! and every value read is checked before use (docs/DESIGN.md, invariant 7).

use core::marker::PhantomData;
use core::mem::{align_of, size_of};

use crate::protocol::sync::{AtomicU32, AtomicU64};

/// `b"shmstat\x01"`: identifies a data segment (stored last at creation).
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"shmstat\x01");
/// Identifies a reader table.
pub(crate) const READERS_MAGIC: u64 = u64::from_le_bytes(*b"shmrdrs\x01");
/// Version of this layout and protocol (2: incarnation ids; slots are unlocked
/// before they are published; 3: per-slot pin counts in the reader table).
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The previous format, which this build still reads and writes
/// (`WriterOptions::format_version`, docs/COMPATIBILITY.md): the same bytes
/// as format 3 but for the pin counts, which a format 2 reader table does
/// not have (`count_slots` is 0, padding in format 2). Readers then pin
/// without counting, and the writer finds pinned slots by every reader's
/// pin only (its slow path, which is format 2's algorithm).
pub(crate) const PREVIOUS_FORMAT: u32 = 2;
/// Size of the fixed header fields; the slot table follows.
pub(crate) const FIXED_HEADER: u64 = 256;
/// Size of one slot entry and one reader entry (a cache line each).
pub(crate) const ENTRY: u64 = 64;
/// Payloads start on this boundary (rkyv needs ≥ 16; a cache line avoids sharing).
pub(crate) const SLOT_ALIGN: u64 = 64;
/// Page size used to round the header and growth.
pub(crate) const PAGE: u64 = 4096;
/// The writer's liveness lock: byte 0 of the data segment.
pub(crate) const WRITER_LOCK_BYTE: u64 = 0;
/// Shared writers (`WriterOptions::shared`): writer `i` holds a write lock on
/// byte `SHARED_WRITER_BASE + i` of the data segment for its life (liveness
/// when it does not hold `WRITER_LOCK_BYTE`), for `i < MAX_SHARED_WRITERS`.
pub(crate) const SHARED_WRITER_BASE: u64 = 1 << 39;
/// The most writer processes that share one object.
pub(crate) const MAX_SHARED_WRITERS: u32 = 64;
/// Shared writers: the open lock, a write lock on this byte of the object's
/// `.lock` file, held by a shared writer while it opens.
pub(crate) const OPEN_LOCK_BYTE: u64 = 0;

/// Reader entry `i` is owned by whoever write-locks byte `READER_LOCK_BASE + i`
/// of the reader table (bytes past the end of the object are lockable).
pub(crate) const READER_LOCK_BASE: u64 = 1 << 40;

/// Slot `k`'s lock byte in the data segment, for `pin_mode::LOCKS`: readers
/// hold a read lock on it while they use the slot, the writer a write lock
/// while it fills it.
pub(crate) const SLOT_LOCK_BASE: u64 = 1 << 41;

/// With lock pins, reader seat `i` is held by whoever holds the only read lock
/// on this byte + `i` of the data segment (readers register nowhere else).
pub(crate) const READER_SEAT_BASE: u64 = 1 << 42;

/// How readers pin (`Header::pin_mode`).
pub(crate) mod pin_mode {
    /// Pins are words in the reader table (fast: no syscall). Every reader can
    /// write the table, so the readers of an object trust one another.
    pub(crate) const SHARED_MEMORY: u32 = 0;
    /// Pins are OFD read locks on the slot's lock byte of the data segment,
    /// which a read-only descriptor can take and nobody else can release.
    /// Readers need no write access anywhere; costs two lock syscalls per
    /// publish and per new generation read.
    pub(crate) const LOCKS: u32 = 1;
}

/// Slot states (`SlotEntry::state`).
pub(crate) mod slot_state {
    /// Never used, or reset by recovery.
    pub(crate) const EMPTY: u32 = 0;
    /// The writer is serializing into it (a dead writer may leave this).
    pub(crate) const WRITING: u32 = 1;
    /// Holds a complete snapshot of `gen`.
    pub(crate) const SEALED: u32 = 2;
}

/// The fixed header fields of a data segment.
#[repr(C)]
pub(crate) struct Header {
    /// MAGIC once initialised (Release store, last step of creation).
    pub magic: AtomicU64,
    pub format_version: AtomicU32,
    /// Offset of the schema description (end of the slot table, page rounded).
    pub header_size: AtomicU32,
    pub fingerprint: AtomicU64,
    pub rkyv_format: AtomicU64,
    pub max_slots: AtomicU32,
    /// Slot entries in use, `<= max_slots`; grows.
    pub slot_count: AtomicU32,
    pub schema_len: AtomicU64,
    pub data_start: AtomicU64,
    /// Bytes of the segment that are allocated and in use; grows, never shrinks.
    pub segment_len: AtomicU64,
    /// Upper bound the writer may grow the segment to.
    pub max_segment_len: AtomicU64,
    pub created_ns: AtomicU64,
    /// Diagnostics only; liveness is the lock on `WRITER_LOCK_BYTE`.
    pub writer_pid: AtomicU32,
    /// How readers pin slots: `pin_mode::SHARED_MEMORY` or `pin_mode::LOCKS`.
    pub pin_mode: AtomicU32,
    /// Reader handles allowed at once (the reader table's capacity; with lock
    /// pins, the number of reader seats).
    pub max_readers: AtomicU32,
    pub _pad_inc: u32,
    /// Random, non-zero, fixed at creation: names this incarnation of the
    /// object. The reader table carries the same value; a reader or writer that
    /// opened the two by name checks they match, so files of an object that was
    /// removed and created again are never paired (docs/DESIGN.md, invariant 1).
    pub incarnation: AtomicU64,
    pub _pad0: [u8; 24],
    // --- cache line 2 (offset 128): what readers poll ---
    /// The publish word (`protocol/words.rs`): `generation << 12 | slot`, 0 = none.
    pub current: AtomicU64,
    /// Futex word, bumped after every publish.
    pub notify: AtomicU32,
    /// Non-zero once this object's writer publishes its layout in another
    /// object under the same name (a lane whose layout moved to the plain
    /// name, or a lane left over from an earlier writer): set before the
    /// object's last publish, so a reader that sees that publish sees the
    /// mark too, and resolves the name again (docs/PROTOCOL.md "Moved
    /// objects"). Was padding (zero) before, so older objects read as not
    /// moved.
    pub moved: AtomicU32,
    pub _pad1: [u8; 48],
    // --- cache line 3 (offset 192): writer-side counters ---
    pub publishes: AtomicU64,
    pub growths: AtomicU64,
    pub reclaimed_pins: AtomicU64,
    pub last_publish_ns: AtomicU64,
    /// Diagnostics for mirrored objects (`RawWriter::set_origin`): the source
    /// generation of the latest publish, 0 for an object published locally.
    /// Were padding (zero) before; readers never use them.
    pub origin_generation: AtomicU64,
    /// The source host's name, NUL-padded and cut to 24 bytes.
    pub origin_host: [AtomicU64; 3],
}

/// One slot's bookkeeping. Written by the writer only while the slot is free.
#[repr(C)]
pub(crate) struct SlotEntry {
    /// Generation of the sealed snapshot (0 = none).
    pub gen: AtomicU64,
    /// Payload offset in the segment.
    pub offset: AtomicU64,
    /// Payload capacity in bytes.
    pub capacity: AtomicU64,
    /// Serialized length of the snapshot (rkyv's root is at the end).
    pub len: AtomicU64,
    pub published_ns: AtomicU64,
    pub state: AtomicU32,
    pub _pad: [u8; 20],
}

/// The reader table's header.
#[repr(C)]
pub(crate) struct ReaderTableHeader {
    pub magic: AtomicU64,
    pub capacity: AtomicU32,
    /// One past the highest entry ever claimed: the writer scans `[0, high_water)`.
    pub high_water: AtomicU32,
    /// Readers inside `wait_newer`, plus one per pending async future (the
    /// writer skips the wake syscall at 0). Each counted wait of a reader that
    /// owns an entry is also marked in that entry's `waiting`.
    pub waiters: AtomicU32,
    /// Pin counts after the entries: one per slot (the data segment's
    /// `max_slots`).
    pub count_slots: AtomicU32,
    /// Snapshots that failed validation in some reader.
    pub validation_failures: AtomicU64,
    pub opens: AtomicU64,
    /// The data segment's `Header::incarnation` (written before `magic`).
    pub incarnation: AtomicU64,
    /// Where `claim_entry` starts looking for a free entry: one past the
    /// last entry claimed, or lower when a handle releases its entry. Only a
    /// hint: the entry's lock decides.
    pub claim_hint: AtomicU32,
    pub _pad: [u8; 12],
}

/// One reader handle's entry.
#[repr(C)]
pub(crate) struct ReaderEntry {
    /// The publish word this reader uses (0 = none). See `protocol/words.rs`.
    pub pin: AtomicU64,
    pub pid: AtomicU32,
    /// How many of the `waiters` of the table header are this entry's owner's
    /// (its blocking waits and async registrations in progress): what a
    /// reclaim of the entry takes back from `waiters` once the owner is dead
    /// (`protocol/waiters.rs`). Was padding (zero) before: readers of older
    /// builds count in `waiters` only, and nobody takes their counts back.
    pub waiting: AtomicU32,
    pub opened_ns: AtomicU64,
    pub _pad: [u8; 40],
}

#[cfg(not(loom))]
const _: () = {
    assert!(size_of::<Header>() as u64 == FIXED_HEADER);
    assert!(core::mem::offset_of!(Header, current) == 128);
    assert!(core::mem::offset_of!(Header, moved) == 140);
    assert!(core::mem::offset_of!(Header, incarnation) == 96);
    assert!(core::mem::offset_of!(Header, origin_generation) == 224);
    assert!(core::mem::offset_of!(ReaderTableHeader, incarnation) == 40);
    assert!(size_of::<SlotEntry>() as u64 == ENTRY);
    assert!(size_of::<ReaderTableHeader>() as u64 == ENTRY);
    assert!(size_of::<ReaderEntry>() as u64 == ENTRY);
    assert!(core::mem::offset_of!(ReaderEntry, waiting) == 12);
    assert!(align_of::<Header>() <= 8 && align_of::<SlotEntry>() <= 8);
};

/// Rounds `x` up to a multiple of `to` (a power of two); `None` on overflow.
pub(crate) fn align_up(x: u64, to: u64) -> Option<u64> {
    Some(x.checked_add(to - 1)? & !(to - 1))
}

/// The header size for `max_slots` slots (fixed part + slot table, page rounded).
pub(crate) fn header_size_for(max_slots: u32) -> u64 {
    align_up(FIXED_HEADER + max_slots as u64 * ENTRY, PAGE).unwrap_or(u64::MAX)
}

/// Size of a reader table with `capacity` entries and `slots` pin counts.
pub(crate) fn reader_table_size(capacity: u32, slots: u32) -> u64 {
    counts_offset(capacity) + align_up(slots as u64 * COUNT, ENTRY).unwrap_or(u64::MAX)
}

/// Size of one pin count.
const COUNT: u64 = 8;
const _: () = assert!(COUNT == size_of::<AtomicU64>() as u64);

/// Where the pin counts of a reader table with `capacity` entries start.
fn counts_offset(capacity: u32) -> u64 {
    ENTRY + capacity as u64 * ENTRY
}

/// A mapped region: base pointer + length, with typed access to the structures
/// above. Backed by shared memory in production and by heap memory in tests
/// (Miri cannot map files). `'a` is the life of the memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Region<'a> {
    base: *mut u8,
    len: u64,
    _life: PhantomData<&'a [u8]>,
}

#[allow(unsafe_code)]
impl<'a> Region<'a> {
    /// # Safety
    /// - `base` is valid for reads of `len` bytes for `'a` (for writes too, if
    ///   the caller writes through `base_ptr`);
    /// - `base` is aligned to at least 64 bytes.
    pub(crate) unsafe fn new(base: *mut u8, len: u64) -> Self {
        debug_assert!(base as usize % 64 == 0);
        Region { base, len, _life: PhantomData }
    }

    /// Pointer to `[offset, offset + len)` if it lies inside the region.
    pub(crate) fn range_ptr(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(self.base.wrapping_add(offset as usize))
    }

    /// The bytes `[offset, offset + len)`, if inside the region.
    ///
    /// # Safety
    /// Nobody writes these bytes during `'a` (e.g. the slot is pinned, or the
    /// bytes are immutable after initialisation).
    pub(crate) unsafe fn bytes(&self, offset: u64, len: u64) -> Option<&'a [u8]> {
        let p = self.range_ptr(offset, len)?;
        // SAFETY:
        // - in bounds of the region, valid for reads for `'a` (`Region::new`);
        // - not written during `'a` (this function's contract);
        // - `u8` has no alignment or validity requirement beyond initialised
        //   bytes, and shared memory is always initialised (zero-filled).
        Some(unsafe { core::slice::from_raw_parts(p, len as usize) })
    }

    /// A `&T` at `offset`, if it fits and is aligned.
    #[inline]
    fn at<T>(&self, offset: u64) -> Option<&'a T> {
        let end = offset.checked_add(size_of::<T>() as u64)?;
        if end > self.len || offset % align_of::<T>() as u64 != 0 {
            return None;
        }
        // SAFETY:
        // - in bounds: `offset + size_of::<T>() <= len`, and `base` is valid for
        //   `len` bytes during `'a` (contract of `Region::new`);
        // - aligned: `base` is 64-aligned and `offset` is a multiple of align_of::<T>();
        // - `T` is one of the `#[repr(C)]` structs of atomics and padding above,
        //   for which every bit pattern is valid and concurrent access from other
        //   processes is through atomics only.
        Some(unsafe { &*(self.base.add(offset as usize) as *const T) })
    }

    /// The data segment header (`None` if the region is too small).
    #[inline]
    pub(crate) fn header(&self) -> Option<&'a Header> {
        self.at(0)
    }

    /// Slot entry `i` (`None` if outside the region).
    #[inline]
    pub(crate) fn slot(&self, i: u32) -> Option<&'a SlotEntry> {
        self.at(FIXED_HEADER + i as u64 * ENTRY)
    }

    /// The reader table header.
    pub(crate) fn readers_header(&self) -> Option<&'a ReaderTableHeader> {
        self.at(0)
    }

    /// Reader entry `i`.
    pub(crate) fn reader(&self, i: u32) -> Option<&'a ReaderEntry> {
        self.at(ENTRY + i as u64 * ENTRY)
    }

    /// Slot `k`'s pin count in a reader table of `capacity` entries and
    /// `slots` counts (`None` if `k >= slots` or outside the region).
    #[inline]
    pub(crate) fn pin_count(&self, capacity: u32, slots: u32, k: u32) -> Option<&'a AtomicU64> {
        if k >= slots {
            return None;
        }
        self.at(counts_offset(capacity) + k as u64 * COUNT)
    }

    /// The first of the `slots` pin counts of a reader table of `capacity`
    /// entries, if all of them lie inside the region (`None` for none). A raw
    /// pointer carrying the region's provenance, so that `add(k)` for
    /// `k < slots` is the count `pin_count` gives (they are contiguous,
    /// `COUNT` = `size_of::<AtomicU64>()` apart) and stays inside the region.
    pub(crate) fn pin_counts(&self, capacity: u32, slots: u32) -> Option<*const AtomicU64> {
        let offset = counts_offset(capacity);
        if slots == 0 || offset % align_of::<AtomicU64>() as u64 != 0 {
            return None;
        }
        self.range_ptr(offset, slots as u64 * COUNT).map(|p| p.cast_const().cast::<AtomicU64>())
    }
}
