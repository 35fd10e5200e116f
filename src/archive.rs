//! How a value becomes archived bytes: the [`Shared`] bound, and
//! [`SlotWriter`], an rkyv writer that serializes straight into a slot of
//! shared memory (or any buffer the caller owns).
//!
//! It never forms a `&mut [u8]` over shared memory (only raw-pointer copies into a
//! slot the writer owns: not current, not pinned). Past the capacity it keeps
//! counting instead of failing, so one pass gives the exact size a too-small slot
//! would have needed: no second, counting serialization.
#![allow(unsafe_code)]

use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor::BoxedError;
use rkyv::ser::allocator::{Arena, ArenaHandle};
use rkyv::ser::{Positional, Writer};
use rkyv::util::AlignedVec;

use crate::Schema;

/// What a type needs to be published and read: [`Schema`], rkyv `Archive` with a
/// checkable archived form, and rkyv `Serialize`. `#[shmstate::shared]` gives all
/// of it; this trait is implemented automatically.
pub trait Shared:
    Schema
    + rkyv::Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>>>
    + for<'a> rkyv::Serialize<HighSerializer<SlotWriter, ArenaHandle<'a>, BoxedError>>
{
}

impl<T> Shared for T where
    T: Schema
        + rkyv::Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>>>
        + for<'a> rkyv::Serialize<HighSerializer<SlotWriter, ArenaHandle<'a>, BoxedError>>
{
}

/// Serializes into `[ptr, ptr + capacity)`; counts bytes beyond it.
pub struct SlotWriter {
    ptr: *mut u8,
    capacity: usize,
    pos: usize,
}

impl SlotWriter {
    /// # Safety
    /// `ptr` is valid for writes of `capacity` bytes that no other thread or
    /// process reads or writes until the writer is done with them.
    pub(crate) unsafe fn new(ptr: *mut u8, capacity: usize) -> Self {
        SlotWriter { ptr, capacity, pos: 0 }
    }

    /// Bytes the serialization produced (may exceed the capacity).
    pub(crate) fn len(&self) -> usize {
        self.pos
    }

    /// Whether everything fitted.
    pub(crate) fn fitted(&self) -> bool {
        self.pos <= self.capacity
    }
}

impl Positional for SlotWriter {
    #[inline]
    fn pos(&self) -> usize {
        self.pos
    }
}

impl<E> Writer<E> for SlotWriter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        let end = self.pos.saturating_add(bytes.len());
        if end <= self.capacity {
            // SAFETY:
            // - destination `[ptr + pos, ptr + end)` lies inside the region the
            //   constructor's contract makes exclusively ours (`end <= capacity`);
            // - `bytes` is a distinct, live slice of our own memory: no overlap.
            unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(self.pos), bytes.len()) };
        }
        self.pos = end;
        Ok(())
    }
}

/// rkyv-serializes `value` into `out` with the writer's arena.
pub(crate) fn serialize_into<U: Shared>(value: &U, arena: &mut Arena, out: SlotWriter) -> Result<SlotWriter, String> {
    let out = rkyv::api::high::to_bytes_in_with_alloc::<_, _, BoxedError>(value, out, arena.acquire())
        .map_err(|e| e.to_string());
    // As rkyv's own `to_bytes` does: keep the arena to one block, or each
    // publish pays for walking and freeing the blocks the last one grew.
    arena.shrink();
    out
}

/// Archives `value` at the start of `buf` (grown as needed); its length.
pub(crate) fn archive_into<T: Shared>(value: &T, buf: &mut AlignedVec<16>) -> Result<usize, String> {
    let mut arena = Arena::new();
    loop {
        let capacity = buf.len();
        // SAFETY: `buf` is ours alone (`&mut`), initialised over `capacity`
        // bytes, and outlives the writer, which is dropped in this iteration.
        let out = unsafe { SlotWriter::new(buf.as_mut_ptr(), capacity) };
        let out = rkyv::api::high::to_bytes_in_with_alloc::<_, _, BoxedError>(value, out, arena.acquire())
            .map_err(|e| e.to_string())?;
        if out.fitted() {
            return Ok(out.len());
        }
        // It counted what it needed: grow, then write again.
        buf.resize(out.len(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkyv::rancor::Error;
    use rkyv::util::Align;

    #[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
    struct Rec {
        id: u64,
        name: String,
        xs: Vec<u32>,
    }

    fn serialize(rec: &Rec, buf: &mut [u8]) -> SlotWriter {
        // SAFETY: `buf` is a live exclusive buffer of `buf.len()` bytes.
        let w = unsafe { SlotWriter::new(buf.as_mut_ptr(), buf.len()) };
        rkyv::api::high::to_bytes_in::<_, Error>(rec, w).unwrap()
    }

    #[test]
    fn writes_in_place_and_counts_overflow() {
        let rec = Rec { id: 7, name: "a name longer than inline".into(), xs: (0..50).collect() };
        let mut big = Align([0u8; 1024]);
        let w = serialize(&rec, &mut big[..]);
        assert!(w.fitted());
        let len = w.len();
        let a = rkyv::access::<ArchivedRec, Error>(&big[..len]).unwrap();
        assert_eq!(a.id, 7);
        assert_eq!(a.xs.len(), 50);

        let mut small = Align([0u8; 64]);
        let w = serialize(&rec, &mut small[..]);
        assert!(!w.fitted());
        assert_eq!(w.len(), len, "overflowing pass must count the exact size");
    }
}
