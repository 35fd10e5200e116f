//! The typed writer: [`Writer<T>`], which serializes each snapshot of `T`
//! straight into a free slot of a [`RawWriter`], and into its lanes.

use rkyv::ser::allocator::Arena;

use crate::archive::serialize_into;
use crate::error::{OpenError, PublishError};
use crate::write::lanes::LaneSet;
use crate::write::options::WriterOptions;
use crate::write::raw_writer::RawWriter;
use crate::{Generation, Shared};

impl<T: Shared> WriterOptions<T> {
    /// Creates a new object; `AlreadyExists` if one exists.
    pub fn create(self, name: &str) -> Result<Writer<T>, OpenError> {
        Writer::open_with(name, self, false)
    }

    /// Creates the object, or takes over an existing one whose writer is gone
    /// (same type required); generations continue upward.
    pub fn open_or_create(self, name: &str) -> Result<Writer<T>, OpenError> {
        Writer::open_with(name, self, true)
    }
}

/// The single writer of an object of type `T`.
///
/// Holds the writer lock for its whole life; the kernel releases it when the
/// process dies, so a new writer can take over with
/// [`WriterOptions::open_or_create`].
pub struct Writer<T> {
    /// The object of `T`'s own layout: the plain name, or its lane.
    raw: RawWriter,
    arena: Arena,
    /// The other layouts it publishes or retires.
    lanes: LaneSet<T>,
}

impl<T> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("raw", &self.raw).finish_non_exhaustive()
    }
}

impl<T: Shared> Writer<T> {
    /// Default options.
    pub fn options() -> WriterOptions<T> {
        WriterOptions::default()
    }

    /// Creates a new object with default options.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        WriterOptions::<T>::default().create(name)
    }

    /// Creates the object or takes over an existing one, with default options.
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        WriterOptions::<T>::default().open_or_create(name)
    }

    fn open_with(name: &str, opts: WriterOptions<T>, take_over: bool) -> Result<Self, OpenError> {
        let (raw, lanes) = LaneSet::open(name, opts, take_over)?;
        Ok(Writer { raw, arena: Arena::new(), lanes })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.lanes.name()
    }

    /// The fingerprints of the layouts this writer publishes: its own
    /// first, then one per [`lane`](WriterOptions::lane).
    pub fn fingerprints(&self) -> Vec<u64> {
        let mut fps = vec![self.raw.fingerprint()];
        fps.extend(self.lanes.fingerprints());
        fps
    }

    /// The generation the next publish will get.
    pub fn next_generation(&self) -> Generation {
        self.raw.next_generation()
    }

    /// For tests: how many waiting readers the last publish (of `T`'s own
    /// layout) woke itself.
    #[doc(hidden)]
    pub fn woken_by_last_publish(&self) -> u32 {
        self.raw.woken_by_last_publish()
    }

    /// The oldest generation a reader may still hold (see `RawWriter::oldest_held`).
    pub(crate) fn oldest_held(&mut self, thorough: bool) -> Option<u64> {
        self.raw.oldest_held(thorough)
    }

    /// Serializes `value` straight into a free slot and publishes it.
    ///
    /// Never waits for readers: a slot pinned by a reader is skipped; dead
    /// readers' pins are reclaimed; with no free slot, or none large enough, the
    /// segment grows (never shrinks). On error the previous snapshot stays current.
    ///
    /// With lanes, the value is published in `T`'s own layout first, then
    /// converted and published in each lane under the same generation. An
    /// error in a lane is returned after the other lanes were published
    /// (the generation is then missing from that lane only).
    pub fn publish(&mut self, value: &T) -> Result<Generation, PublishError> {
        let arena = &mut self.arena;
        let g = self.raw.publish_with(|out| serialize_into(value, arena, out))?;
        let in_lanes = self.lanes.publish(value, g, arena);
        self.lanes.retire_unread(value, g, &mut self.raw, arena);
        in_lanes.map(|()| g)
    }
}
