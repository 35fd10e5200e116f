//! A snapshot that gives its pin back when dropped: for readers that sit idle
//! between reads and should not keep an old snapshot alive meanwhile.

use std::ops::Deref;

use crate::reader::{Reader, Snapshot};
use crate::Shared;

/// A [`Snapshot`] that releases its reader's pin when dropped, from
/// [`Reader::read_releasing`].
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
    reader: &'a Reader<T>,
}

impl<'a, T: Shared> Releasing<'a, T> {
    pub(crate) fn new(snapshot: Snapshot<'a, T>, reader: &'a Reader<T>) -> Self {
        Releasing { snapshot, reader }
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
        self.reader.release_pin();
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
