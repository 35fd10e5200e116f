//! Several writer processes on one object (`WriterOptions::shared`): the
//! locks that serialize them and the table that names them.
//!
//! docs/SEVERAL_WRITERS.md has the design. In short, every lock here is an OFD
//! lock or a `flock`, so the kernel releases it when its holder dies:
//!
//! - the `.lock` file's `flock` is *shared* by the shared writers (an
//!   exclusive writer, which takes it exclusively, and they exclude each other);
//! - the open lock, a write lock on `OPEN_LOCK_BYTE` of the `.lock` file,
//!   serializes opens: whoever finds an object not yet initialised knows its
//!   creator died;
//! - the publish lock, a futex word in the writer table (`lock`), is held
//!   around every publish and update (and the catching up of an open): one
//!   writer at a time touches the slot table, and one that comes after
//!   another starts with `slots::recover`, exactly as a writer taking over
//!   from a dead one. Taking it free costs one compare-and-swap. The kernel
//!   does not release a futex of a dead process, so the word names the
//!   holder's seat, and a waiter that finds that seat's lock gone (below)
//!   takes the lock over;
//! - each writer holds a seat, a write lock on one byte of the data segment's
//!   shared-writer range, for its life: readers see a live writer while any
//!   seat is held (`DataSegment::writer_alive`).
//!
//! The `.lock` file also holds, for tools, each seat's pid and open time and
//! the seat of the writer holding the publish lock, and, for the writers, the
//! count of turns taken at the publish lock (`WriterTable`): plain words in a
//! page that only writers (its owner) can open.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::error::{Errno, OpenError};
use crate::os::LockProbe;
use crate::os::{self, Mapping, ShmObject};
use crate::protocol::layout::{MAX_SHARED_WRITERS, OPEN_LOCK_BYTE, SHARED_WRITER_BASE};
use crate::protocol::publish_lock;
// Plain std atomics: the writer table is shared by writer processes only
// (loom models the protocol between the writer and its readers).
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Size of the `.lock` file of a shared object: the writer table.
pub(crate) const WRITER_TABLE_LEN: u64 = 4096;
/// "SHMSTWR1": the table is laid out as below.
const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"SHMSTWR1");
/// Where the seat entries start; each is `ENTRY` bytes: pid (u32), the
/// seat's incarnation (u32: counts the writers that took the seat, below
/// `INCARNATIONS`), open time (u64, ns since the Unix epoch).
const ENTRIES: usize = 64;
/// Turns taken at the publish lock (u64, `take_turn`).
const TURNS: usize = 16;
/// The publish lock (u32, `protocol::publish_lock`): 0 when free, else the
/// holder's id (`writer_id`).
const LOCK: usize = 8;
/// How long a waiting writer sleeps before it looks again whether the
/// holder died (nobody wakes it then): the longest a dead holder stalls others.
const DEATH_POLL: Duration = Duration::from_millis(1);
const ENTRY: usize = 16;
/// Incarnations of a seat wrap at this: a writer's id in the lock word
/// (`writer_id`) stays below `publish_lock::CONTENDED`.
const INCARNATIONS: u32 = 1 << 24;

/// The id a writer puts in the publish lock word: its seat and the seat's
/// incarnation, so that a writer that takes the seat of a dead holder has
/// another id (no waiter can mistake one for the other: a compare-and-swap
/// on the dead holder's id cannot succeed on the new writer's).
fn writer_id(seat: u32, incarnation: u32) -> u32 {
    1 + seat + MAX_SHARED_WRITERS * incarnation
}

/// The seat and incarnation of a lock word's holder id.
fn seat_of(id: u32) -> (u32, u32) {
    ((id - 1) % MAX_SHARED_WRITERS, (id - 1) / MAX_SHARED_WRITERS)
}

/// One writer's view of the writer table in the `.lock` file.
pub(crate) struct WriterTable {
    map: Mapping,
}

impl std::fmt::Debug for WriterTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterTable").finish_non_exhaustive()
    }
}

impl WriterTable {
    /// Maps the table of `lock` (growing the file to the table's size first).
    pub(crate) fn open(name: &str, lock: &ShmObject) -> Result<Self, OpenError> {
        let os_err = |op, errno| OpenError::Os { name: name.into(), op, errno };
        lock.grow_to(WRITER_TABLE_LEN).map_err(|e| os_err("growing the writer table", e))?;
        let map = Mapping::new(lock, WRITER_TABLE_LEN, true).map_err(|e| os_err("mapping the writer table", e))?;
        let t = WriterTable { map };
        // SYNC(writer-table): Relaxed; diagnostics for tools, ordered with nothing.
        t.word64(0).store(TABLE_MAGIC, Relaxed);
        Ok(t)
    }

    fn word32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset + 4 <= WRITER_TABLE_LEN as usize && offset % 4 == 0);
        // SAFETY: the offset is inside the mapping (checked above) and 4-aligned
        // (the mapping is page-aligned); the page is shared memory that other
        // writers access only through atomics of the same size at the same offsets.
        #[allow(unsafe_code)]
        unsafe {
            &*(self.map.ptr().add(offset) as *const AtomicU32)
        }
    }

    fn word64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset + 8 <= WRITER_TABLE_LEN as usize && offset % 8 == 0);
        // SAFETY: as `word32`, 8-aligned.
        #[allow(unsafe_code)]
        unsafe {
            &*(self.map.ptr().add(offset) as *const AtomicU64)
        }
    }

    /// Counts a new incarnation of seat `seat`, just taken (under the open
    /// lock), and returns this writer's id for the publish lock.
    pub(crate) fn claim(&self, seat: u32) -> u32 {
        let word = self.word32(ENTRIES + seat as usize * ENTRY + 4);
        // SYNC(writer-table): Relaxed; a prober that reads the previous value
        // sees the seat lock held (ours) and looks again later.
        let incarnation = word.load(Relaxed).wrapping_add(1) % INCARNATIONS;
        word.store(incarnation, Relaxed);
        writer_id(seat, incarnation)
    }

    /// Records `pid` (and the time) in seat `seat`'s entry.
    pub(crate) fn enter(&self, seat: u32) {
        let at = ENTRIES + seat as usize * ENTRY;
        // SYNC(writer-table): Relaxed, diagnostics.
        self.word32(at).store(os::pid(), Relaxed);
        self.word64(at + 8).store(os::now_unix_ns(), Relaxed);
    }

    /// Clears seat `seat`'s entry.
    pub(crate) fn leave(&self, seat: u32) {
        // SYNC(writer-table): Relaxed, diagnostics.
        self.word32(ENTRIES + seat as usize * ENTRY).store(0, Relaxed);
    }

    /// Takes a turn at the publish lock (the caller holds it): counts the
    /// turn and says whether another writer took one since `mine`, this
    /// writer's last turn. When none did, no other writer, live or dead, has
    /// touched the object since this one let go, and it skips catching up.
    /// The count is taken on entry, so a writer that dies holding the lock
    /// has counted its turn.
    pub(crate) fn take_turn(&self, mine: &mut u64) -> bool {
        // SYNC(writer-turns): Relaxed; only the holder of the publish lock
        // touches the word, and taking the lock orders us after its last holder.
        let turns = self.word64(TURNS).load(Relaxed);
        let others = turns != *mine;
        *mine = turns.wrapping_add(1);
        self.word64(TURNS).store(*mine, Relaxed);
        others
    }

    /// Takes the publish lock for seat `me`, waiting for it (`block`) or
    /// returning `Ok(false)` at once when a live writer holds it. A holder
    /// whose seat lock in `data` is gone died holding it: the lock is taken
    /// over (the turn it counted makes the new holder catch up).
    pub(crate) fn lock(&self, id: u32, block: bool, data: &ShmObject) -> Result<bool, Errno> {
        let word = self.word32(LOCK);
        let sleep = |seen| os::futex_wait(word, seen, DEATH_POLL);
        publish_lock::lock(word, id, block, |holder| self.holder_dead(holder, data), sleep)
    }

    /// Whether the writer `holder` (an id in the lock word) is gone: its
    /// seat's incarnation moved on (another writer took the seat, which the
    /// holder kept while alive), or its seat lock is not held (a write lock on
    /// a seat byte can only be a live writer's; a read lock there is a
    /// reader's, after the writer left). Our own seat's lock reads as free
    /// (locks of one's own open file description are not reported), but a
    /// word naming our seat names an earlier incarnation.
    fn holder_dead(&self, holder: u32, data: &ShmObject) -> Result<bool, Errno> {
        let (seat, incarnation) = seat_of(holder);
        // SYNC(writer-table): Relaxed, as in `claim`.
        if self.word32(ENTRIES + seat as usize * ENTRY + 4).load(Relaxed) != incarnation {
            return Ok(true);
        }
        Ok(os::probe_lock(data.fd(), SHARED_WRITER_BASE + seat as u64, 1)? != LockProbe::WriteLocked)
    }

    /// Releases the publish lock, waking one waiting writer if any may wait.
    pub(crate) fn unlock(&self) {
        let word = self.word32(LOCK);
        publish_lock::unlock(word, || {
            os::futex_wake(word, 1);
        });
    }
}

/// A shared writer's tables, as tools read them (`inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WriterTableView {
    /// Pid and open time recorded in each seat, by seat.
    pub entries: Vec<(u32, u32, u64)>,
    /// The seat that holds the publish lock, if one is recorded.
    pub holder: Option<u32>,
}

/// Reads the writer table from the bytes of a `.lock` file (garbage gives
/// garbage entries, never a panic: every field is bounded by the caller).
pub(crate) fn parse_writer_table(bytes: &[u8]) -> Option<WriterTableView> {
    let u64_at = |o: usize| bytes.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    let u32_at = |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    if u64_at(0)? != TABLE_MAGIC {
        return None;
    }
    // An id past the incarnations a seat can have is garbage: nobody's.
    let holder = publish_lock::holder(u32_at(LOCK)?).map(seat_of).filter(|&(_, i)| i < INCARNATIONS).map(|(s, _)| s);
    let entries = (0..MAX_SHARED_WRITERS)
        .filter_map(|s| {
            let at = ENTRIES + s as usize * ENTRY;
            Some((s, u32_at(at)?, u64_at(at + 8)?))
        })
        .collect();
    Some(WriterTableView { entries, holder })
}

/// Takes a free seat: the first byte of the shared-writer range of `data`
/// that no live writer holds. `WriterBusy`-like error when all are taken.
pub(crate) fn take_seat(name: &str, data: &ShmObject) -> Result<u32, OpenError> {
    for seat in 0..MAX_SHARED_WRITERS {
        match os::try_write_lock(data.fd(), SHARED_WRITER_BASE + seat as u64, 1) {
            Ok(true) => return Ok(seat),
            Ok(false) => continue,
            Err(errno) => return Err(OpenError::Os { name: name.into(), op: "taking a shared-writer seat", errno }),
        }
    }
    Err(OpenError::InvalidOption {
        name: name.into(),
        what: format!("more than {MAX_SHARED_WRITERS} shared writers on one object"),
    })
}

/// Releases seat `seat` of `data`.
pub(crate) fn leave_seat(data: &ShmObject, seat: u32) {
    let _ = os::unlock(data.fd(), SHARED_WRITER_BASE + seat as u64, 1);
}

/// Takes the open lock on the `.lock` file `lock` (waits for it).
pub(crate) fn lock_opening(lock: BorrowedFd<'_>) -> Result<(), Errno> {
    os::write_lock_wait(lock, OPEN_LOCK_BYTE, 1)
}

/// Releases the open lock.
pub(crate) fn unlock_opening(lock: BorrowedFd<'_>) {
    let _ = os::unlock(lock, OPEN_LOCK_BYTE, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_tables_parse_to_nothing_or_bounded_entries() {
        assert_eq!(parse_writer_table(&[]), None);
        assert_eq!(parse_writer_table(&[0; 4096]), None);
        let mut b = vec![0u8; 4096];
        b[..8].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        b[LOCK..LOCK + 4].copy_from_slice(&(!publish_lock::CONTENDED).to_le_bytes());
        b[ENTRIES..ENTRIES + 4].copy_from_slice(&42u32.to_le_bytes());
        let v = parse_writer_table(&b).unwrap();
        assert_eq!(v.holder, None, "an id past the range is no holder");
        b[LOCK..LOCK + 4].copy_from_slice(&(writer_id(5, 7) | publish_lock::CONTENDED).to_le_bytes());
        assert_eq!(parse_writer_table(&b).unwrap().holder, Some(5));
        assert_eq!(v.entries[0], (0, 42, 0));
        assert_eq!(v.entries.len(), MAX_SHARED_WRITERS as usize);
        // Cut short: only the entries that fit.
        assert_eq!(parse_writer_table(&b[..ENTRIES + ENTRY * 2]).unwrap().entries.len(), 2);
    }
}
