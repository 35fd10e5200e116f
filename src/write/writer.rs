//! The typed writer: [`Writer<T>`], which serializes each snapshot of `T`
//! straight into a free slot of a [`RawWriter`], and into its lanes.

use rkyv::ser::allocator::Arena;

use crate::archive::serialize_into;
use crate::archive::SlotWriter;
use crate::error::{OpenError, PublishError};
use crate::write::lane_spec::LaneSpec;
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
    /// How a value becomes each lane's layout.
    specs: Vec<LaneSpec<T>>,
}

impl<T> Writer<T> {
    /// [`RawWriter::set_origin`] (a mirrored map's root object).
    pub(crate) fn set_origin(&mut self, host: &str, generation: crate::Generation) {
        self.raw.set_origin(host, generation);
    }
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
        let specs = opts.lanes.clone();
        let schemas = specs.iter().map(|s| s.schema.clone()).collect();
        let (raw, lanes) = LaneSet::open(name, opts, crate::schema::schema_of::<T>(), schemas, take_over)?;
        Ok(Writer { raw, arena: Arena::new(), lanes, specs })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.lanes.name()
    }

    /// What this writer has published (of its own layout; a lane's publishes
    /// are counted in the lane's object), and the object's counters: plain
    /// numbers to export with a service's own metrics library.
    ///
    /// ```
    /// # #[shmstate::shared] #[derive(Debug, Clone)] struct Flags { on: bool }
    /// # let name = format!("doc-stats-{}", std::process::id());
    /// let mut w = shmstate::Writer::<Flags>::create(&name)?;
    /// w.publish(&Flags { on: true })?;
    /// let stats = w.stats();
    /// assert_eq!((stats.publishes, stats.failed_publishes), (1, 0));
    /// assert!(stats.bytes_published > 0);
    /// # drop(w); shmstate::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> crate::WriterStats {
        self.raw.stats()
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
    ///
    /// A [shared](WriterOptions::shared) writer waits for the other writers'
    /// publishes in progress (never for readers); [`try_publish`](Self::try_publish)
    /// does not wait.
    pub fn publish(&mut self, value: &T) -> Result<Generation, PublishError> {
        let arena = &mut self.arena;
        let g = self.raw.publish_with(|out| serialize_into(value, arena, out))?;
        self.after_publish(value, g)
    }

    /// The lanes' part of a publish of `value` as generation `g`.
    fn after_publish(&mut self, value: &T, g: Generation) -> Result<Generation, PublishError> {
        let (arena, specs, own_fp) = (&mut self.arena, &self.specs, self.raw.fingerprint());
        // The lanes carry the own layout's publish time (one clock read per publish).
        let now_ns = self.raw.last_publish_ns();
        // Each layout from `value`: the own one as it is, a lane's converted.
        let mut fill = |fp: u64, out: SlotWriter| match specs.iter().find(|s| s.schema.fingerprint() == fp) {
            Some(spec) => (spec.serialize)(value, arena, out),
            None if fp == own_fp => serialize_into(value, arena, out),
            None => Err(format!("no lane of layout {fp:#018x}")),
        };
        let in_lanes = self.lanes.publish(&mut fill, g, now_ns);
        self.lanes.retire_unread(&mut fill, g, &mut self.raw);
        in_lanes.map(|()| g)
    }

    /// [`publish`](Self::publish), but a shared writer returns
    /// `PublishError::Busy` at once, publishing nothing, when another writer
    /// is publishing (an exclusive writer never is busy).
    pub fn try_publish(&mut self, value: &T) -> Result<Generation, PublishError> {
        let arena = &mut self.arena;
        let g = self.raw.serialized(false, |raw| raw.publish_locked(|out| serialize_into(value, arena, out)));
        let g = g?.ok_or_else(|| PublishError::Busy { name: self.name().to_string() })?;
        self.after_publish(value, g)
    }

    /// Reads the latest snapshot, builds the next one from it with `next`,
    /// and publishes it, with no other writer's publish in between: for
    /// [shared](WriterOptions::shared) writers, a read-modify-write that
    /// loses no other writer's update (docs/SEVERAL_WRITERS.md). `next` gets
    /// `None` before the first publish. The snapshot is validated (bytecheck)
    /// before `next` sees it: another writer's bytes are input like any other.
    ///
    /// A shared writer holds the publish lock while `next` runs: keep it short.
    pub fn update(&mut self, next: impl FnOnce(Option<&T::Archived>) -> T) -> Result<Generation, PublishError> {
        self.update_with(true, next)?.ok_or_else(|| unreachable_busy(self.name()))
    }

    /// [`update`](Self::update), but `PublishError::Busy` at once (without
    /// calling `next`) when another shared writer is publishing.
    pub fn try_update(&mut self, next: impl FnOnce(Option<&T::Archived>) -> T) -> Result<Generation, PublishError> {
        self.update_with(false, next)?.ok_or_else(|| PublishError::Busy { name: self.name().to_string() })
    }

    fn update_with(
        &mut self,
        block: bool,
        next: impl FnOnce(Option<&T::Archived>) -> T,
    ) -> Result<Option<Generation>, PublishError> {
        let arena = &mut self.arena;
        let done = self.raw.serialized(block, |raw| {
            let value = {
                let current = raw.current_bytes()?;
                let archived = match current {
                    None => None,
                    Some(bytes) => Some(rkyv::access::<T::Archived, rkyv::rancor::BoxedError>(bytes).map_err(|e| {
                        PublishError::Corrupt {
                            name: raw.name().to_string(),
                            what: format!("the latest snapshot: {e}"),
                        }
                    })?),
                };
                next(archived)
            };
            let g = raw.publish_locked(|out| serialize_into(&value, arena, out))?;
            Ok((value, g))
        })?;
        let Some((value, g)) = done else { return Ok(None) };
        self.after_publish(&value, g).map(Some)
    }
}

/// A blocking `serialized` always runs its closure.
fn unreachable_busy(name: &str) -> PublishError {
    PublishError::Busy { name: name.to_string() }
}
