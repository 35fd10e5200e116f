//! What a [`Reader`](crate::Reader) hands out: a [`Snapshot`] (a validated,
//! pinned view), the cached view behind it, and [`Releasing`], a snapshot
//! that gives its pin back when dropped, for readers that sit idle between
//! reads and should not keep an old snapshot alive meanwhile.

use std::cell::Cell;
use std::ops::Deref;

use rkyv::rancor::BoxedError;

use crate::read::raw_reader::RawReader;
use crate::{Generation, Shared};

/// The view of the pinned snapshot, with the publish word it belongs to.
/// (`Copy`, to live in a `Cell`: a [`Releasing`] snapshot clears it through
/// a shared borrow of the reader.)
pub(crate) struct Cached<T: Shared> {
    pub(crate) word: u64,
    pub(crate) root: *const T::Archived,
    /// bytecheck ran on it (`false` after `read_unchecked`): `read` only
    /// returns a cached view that was validated.
    pub(crate) validated: bool,
}

impl<T: Shared> Clone for Cached<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Shared> Copy for Cached<T> {}

/// A validated, pinned snapshot: derefs to the archived value in shared memory.
///
/// While it lives, the writer does not touch its bytes (docs/DESIGN.md, invariant 1).
/// It borrows the reader, so the pin cannot move under it.
#[must_use]
pub struct Snapshot<'a, T: Shared> {
    archived: &'a T::Archived,
    generation: Generation,
}

impl<'a, T: Shared> Snapshot<'a, T> {
    pub(crate) fn new(archived: &'a T::Archived, generation: Generation) -> Self {
        Snapshot { archived, generation }
    }

    /// The generation of this snapshot.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Deserializes a copy of the value.
    pub fn to_value(&self) -> Result<T, BoxedError>
    where
        T::Archived: rkyv::Deserialize<T, rkyv::rancor::Strategy<rkyv::de::Pool, BoxedError>>,
    {
        rkyv::deserialize::<T, BoxedError>(self.archived)
    }
}

impl<T: Shared> Deref for Snapshot<'_, T> {
    type Target = T::Archived;
    #[inline]
    fn deref(&self) -> &T::Archived {
        self.archived
    }
}

impl<T: Shared> std::fmt::Debug for Snapshot<'_, T>
where
    T::Archived: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("generation", &self.generation).field("value", self.archived).finish()
    }
}

/// A [`Snapshot`] that releases its reader's pin when dropped, from
/// [`Reader::read_releasing`](crate::Reader::read_releasing).
///
/// An idle reader then holds no slot, so the writer's memory is bounded by
/// the snapshots in use at that moment, not by the generations idle readers
/// last saw (RELIABILITY.md, guarantee 4). The price: the next read pins
/// again, even of an unchanged generation (about 25 ns instead of one load;
/// BENCHMARKS.md, "Memory: an idle reader gives its slot back"); bytecheck
/// still runs once per generation.
///
/// It derefs to the [`Snapshot`], and through it to the archived value.
#[must_use]
pub struct Releasing<'a, T: Shared> {
    snapshot: Snapshot<'a, T>,
    /// The reader's cached view, forgotten first on drop, so that no read
    /// can return it without pinning it again...
    view: &'a Cell<Option<Cached<T>>>,
    /// ...then the pin goes.
    raw: &'a RawReader,
}

impl<'a, T: Shared> Releasing<'a, T> {
    pub(crate) fn new(snapshot: Snapshot<'a, T>, view: &'a Cell<Option<Cached<T>>>, raw: &'a RawReader) -> Self {
        Releasing { snapshot, view, raw }
    }
}

impl<'a, T: Shared> Deref for Releasing<'a, T> {
    type Target = Snapshot<'a, T>;
    #[inline]
    fn deref(&self) -> &Snapshot<'a, T> {
        &self.snapshot
    }
}

impl<T: Shared> Drop for Releasing<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.view.set(None);
        self.raw.unpin();
    }
}

impl<T: Shared> std::fmt::Debug for Releasing<'_, T>
where
    T::Archived: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot.fmt(f)
    }
}
