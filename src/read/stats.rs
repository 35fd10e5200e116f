//! What a reader handle has done, as a plain struct a service can export
//! with its own metrics library (`Reader::stats`, `SharedReader::stats`,
//! `RawReader::stats`), and the process-local counters behind it.
//!
//! Nothing here is in shared memory: the counts are the handle's own, kept
//! where only its thread writes them, so counting adds no shared-memory
//! traffic and no atomic read-modify-write to any read.

use std::cell::Cell;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Counts of one reader handle since it opened.
///
/// Reads of an unchanged generation are not counted: that read stays one
/// atomic load and nothing else, no store even to the handle. Every other
/// read call (`read`, `read_unchecked`, `read_releasing`; `load`,
/// `load_releasing` on a [`SharedReader`](crate::SharedReader)) takes the
/// slow path and is counted in `slow_reads`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaderStats {
    /// Reads that returned an error (`Invalid`, `Corrupt`, `Replaced`, …).
    pub errors: u64,
    /// Reads that took the slow path and pinned: a new generation, the first
    /// read, the first after `release`, or one that looked at the name
    /// (`slow_reads - errors` of them returned a snapshot).
    pub slow_reads: u64,
    /// Bytecheck validations run (at most one per generation; a generation
    /// pinned again after `release` is not validated twice).
    pub validations: u64,
    /// Validations (or conversions) that failed: `ReadError::Invalid`.
    pub validation_failures: u64,
    /// Snapshots converted from another layout
    /// ([`ReaderOptions::convert_from`](crate::ReaderOptions::convert_from)).
    pub conversions: u64,
    /// Blocking waits (`wait_newer`) begun.
    pub waits: u64,
    /// Waits that returned a newer generation (the rest timed out or failed).
    pub wakeups: u64,
    /// Times the reader moved to another object under its name
    /// ([`ReaderOptions::follow`](crate::ReaderOptions::follow): a replaced
    /// object, a lane retired when its layout moved), or to `T`'s own layout
    /// while converting.
    pub follows: u64,
}

impl ReaderStats {
    /// What happened between `before` and `self` (counts only grow).
    pub(crate) fn since(&self, before: &ReaderStats) -> ReaderStats {
        let d = |now: u64, then: u64| now.wrapping_sub(then);
        ReaderStats {
            errors: d(self.errors, before.errors),
            slow_reads: d(self.slow_reads, before.slow_reads),
            validations: d(self.validations, before.validations),
            validation_failures: d(self.validation_failures, before.validation_failures),
            conversions: d(self.conversions, before.conversions),
            waits: d(self.waits, before.waits),
            wakeups: d(self.wakeups, before.wakeups),
            follows: d(self.follows, before.follows),
        }
    }

    /// `self + other`, field by field.
    pub(crate) fn plus(&self, other: &ReaderStats) -> ReaderStats {
        ReaderStats {
            errors: self.errors + other.errors,
            slow_reads: self.slow_reads + other.slow_reads,
            validations: self.validations + other.validations,
            validation_failures: self.validation_failures + other.validation_failures,
            conversions: self.conversions + other.conversions,
            waits: self.waits + other.waits,
            wakeups: self.wakeups + other.wakeups,
            follows: self.follows + other.follows,
        }
    }
}

/// A count of a handle used by one thread at a time: a plain increment.
#[derive(Debug, Default)]
pub(crate) struct Count(Cell<u64>);

impl Count {
    #[inline(always)]
    pub(crate) fn bump(&self) {
        self.0.set(self.0.get() + 1);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }
}

/// The counts of a [`Reader`](crate::Reader) or [`RawReader`](crate::RawReader):
/// the fields of [`ReaderStats`], as plain counters of the handle.
#[derive(Debug, Default)]
pub(crate) struct ReadCounts {
    pub(crate) errors: Count,
    pub(crate) slow_reads: Count,
    pub(crate) validations: Count,
    pub(crate) validation_failures: Count,
    pub(crate) conversions: Count,
    pub(crate) waits: Count,
    pub(crate) wakeups: Count,
    pub(crate) follows: Count,
}

impl ReadCounts {
    pub(crate) fn get(&self) -> ReaderStats {
        ReaderStats {
            errors: self.errors.get(),
            slow_reads: self.slow_reads.get(),
            validations: self.validations.get(),
            validation_failures: self.validation_failures.get(),
            conversions: self.conversions.get(),
            waits: self.waits.get(),
            wakeups: self.wakeups.get(),
            follows: self.follows.get(),
        }
    }
}

/// A count one thread writes and any thread may read: the owner's increment
/// is a load and a store (no read-modify-write, no lock prefix), which is
/// exact because no other thread writes it.
#[derive(Debug, Default)]
pub(crate) struct OwnedCount(AtomicU64);

impl OwnedCount {
    /// Only the owning thread calls this.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        // SYNC(stats): Relaxed: a statistic; the other threads' Relaxed loads
        // in `get` need no order with anything else.
        self.0.store(self.0.load(Relaxed) + n, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        // SYNC(stats): Relaxed, pairs with nothing (see `add`).
        self.0.load(Relaxed)
    }
}

/// The counts of one thread's readers of a [`SharedReader`](crate::SharedReader)
/// (each thread has its own, on its own cache lines), readable by `stats()`
/// from any thread.
#[derive(Debug, Default)]
pub(crate) struct ThreadCounts {
    /// Load errors that happened outside the readers (no reader entry left).
    pub(crate) errors: OwnedCount,
    reader_errors: OwnedCount,
    slow_reads: OwnedCount,
    validations: OwnedCount,
    validation_failures: OwnedCount,
    conversions: OwnedCount,
    follows: OwnedCount,
}

impl ThreadCounts {
    /// Adds what a reader of this thread counted in one `read` (owner only).
    pub(crate) fn add(&self, d: &ReaderStats) {
        self.reader_errors.add(d.errors);
        self.slow_reads.add(d.slow_reads);
        self.validations.add(d.validations);
        self.validation_failures.add(d.validation_failures);
        self.conversions.add(d.conversions);
        self.follows.add(d.follows);
    }

    pub(crate) fn get(&self) -> ReaderStats {
        ReaderStats {
            errors: self.errors.get() + self.reader_errors.get(),
            slow_reads: self.slow_reads.get(),
            validations: self.validations.get(),
            validation_failures: self.validation_failures.get(),
            conversions: self.conversions.get(),
            waits: 0,
            wakeups: 0,
            follows: self.follows.get(),
        }
    }
}
