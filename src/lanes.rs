//! Lanes: one object name carrying several layouts of a type during a rolling
//! upgrade. A lane is an ordinary object named `name@<fingerprint>`
//! (`name::lane`), written by the same writer as the object under the plain
//! name, which keeps the layout it was created with. A reader resolves the
//! name to the object that carries its own layout: the plain name if its
//! fingerprint is the reader's, else the lane of the reader's fingerprint.
//! The shm protocol is unchanged: every lane is an object like any other.
//! docs/DEPLOYING.md ("Lanes") has the rules.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rkyv::rancor::BoxedError;
use rkyv::ser::allocator::Arena;
use rkyv::util::AlignedVec;

use crate::error::OpenError;
use crate::raw_reader::RawReader;
use crate::schema::SchemaDoc;
use crate::segment::DataSegment;
use crate::slot_writer::SlotWriter;
use crate::{Generation, Shared};

/// Serializes the lane's layout of a `T` value into a slot.
type SerializeFn<T> = dyn Fn(&T, &mut Arena, SlotWriter) -> Result<SlotWriter, String> + Send + Sync;

/// A layout a writer of `T` publishes besides `T` itself: its schema and how
/// to serialize it from a `T` (the user's conversion, then rkyv).
pub(crate) struct LaneSpec<T> {
    pub(crate) schema: SchemaDoc,
    pub(crate) serialize: Arc<SerializeFn<T>>,
}

impl<T> Clone for LaneSpec<T> {
    fn clone(&self) -> Self {
        LaneSpec { schema: self.schema.clone(), serialize: Arc::clone(&self.serialize) }
    }
}

impl<T> LaneSpec<T> {
    /// The lane of `U`, converted from each `T` by `convert`.
    pub(crate) fn of<U: Shared>(convert: impl Fn(&T) -> U + Send + Sync + 'static) -> Self {
        let serialize =
            move |value: &T, arena: &mut Arena, out: SlotWriter| serialize_into(&convert(value), arena, out);
        LaneSpec { schema: crate::schema::schema_of::<U>(), serialize: Arc::new(serialize) }
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

/// Reads another type's layout as `T` (a reader started before any writer of
/// `T`): validates the bytes as `U`, converts, and archives the `T` into a
/// buffer of the reader's own. A copy per new generation, by design.
pub(crate) struct Converter<T> {
    pub(crate) fingerprint: u64,
    convert: Box<ConvertFn>,
    _type: PhantomData<fn() -> T>,
}

type ConvertFn = dyn Fn(&[u8], &mut AlignedVec<16>) -> Result<usize, String> + Send + Sync;

impl<T: Shared> Converter<T> {
    pub(crate) fn from<U: Shared>(convert: impl Fn(&U::Archived) -> T + Send + Sync + 'static) -> Self {
        let convert = move |bytes: &[u8], buf: &mut AlignedVec<16>| {
            let archived = rkyv::access::<U::Archived, BoxedError>(bytes).map_err(|e| e.to_string())?;
            archive_into(&convert(archived), buf)
        };
        Converter { fingerprint: crate::schema::fingerprint_of::<U>(), convert: Box::new(convert), _type: PhantomData }
    }

    /// Converts the archived `U` in `bytes` into `buf`; the archived `T`'s length.
    pub(crate) fn convert(&self, bytes: &[u8], buf: &mut AlignedVec<16>) -> Result<usize, String> {
        (self.convert)(bytes, buf)
    }
}

/// Archives `value` at the start of `buf` (grown as needed); its length.
fn archive_into<T: Shared>(value: &T, buf: &mut AlignedVec<16>) -> Result<usize, String> {
    let mut arena = Arena::new();
    loop {
        let capacity = buf.len();
        // SAFETY: `buf` is ours alone (`&mut`), initialised over `capacity`
        // bytes, and outlives the writer, which is dropped in this iteration.
        #[allow(unsafe_code)]
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

/// The fingerprint of the object under `name`, without claiming a reader
/// entry; `None` when there is none (or its creator has not finished).
pub(crate) fn fingerprint_under(name: &str) -> Result<Option<u64>, OpenError> {
    match DataSegment::open(name, false, Duration::ZERO) {
        Ok((_, geo)) => Ok(Some(geo.fingerprint)),
        Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The latest generation published in the layout of fingerprint `fp` under
/// `name` (the plain name or its lane), if one has been; a cheap probe (no
/// reader entry, no schema decoding) for readers that poll for their layout.
pub(crate) fn published_generation(name: &str, fp: u64) -> Option<Generation> {
    let lane = crate::name::lane(name, fp);
    let found = [name, lane.as_str()].into_iter().find_map(|object| published_in(object, Some(fp)));
    found
}

/// The latest generation published in the object `object` (of fingerprint
/// `fp`, if given), if any.
pub(crate) fn published_in(object: &str, fp: Option<u64>) -> Option<Generation> {
    let (seg, geo) = DataSegment::open(object, false, Duration::ZERO).ok()?;
    // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
    let word = seg.header().current.load(crate::sync::Ordering::Acquire);
    let g = Generation::new(crate::protocol::generation_of(word));
    (fp.is_none_or(|fp| geo.fingerprint == fp) && g > Generation::NONE).then_some(g)
}

/// Opens the object that carries the layout of fingerprint `fp` under
/// `name`: the plain name if it carries it, else the lane `name@fp`.
/// `TypeMismatch` (made by `mismatch` from the plain object, listing the
/// lanes present) when the name exists in other layouts only; what the
/// plain name gave (`NotFound`, `NotInitialized`) when no object carries it.
pub(crate) fn open_layout(
    name: &str,
    fp: u64,
    init_timeout: Duration,
    mismatch: impl FnOnce(&RawReader) -> OpenError,
) -> Result<RawReader, OpenError> {
    let (plain, missing) = match RawReader::open(name, init_timeout) {
        Ok(raw) if raw.geo.fingerprint == fp => return Ok(raw),
        Ok(raw) => (Some(raw), None),
        Err(e @ (OpenError::NotFound { .. } | OpenError::NotInitialized { .. })) => {
            if crate::name::split_lane(name).is_some() {
                return Err(e);
            }
            (None, Some(e))
        }
        Err(e) => return Err(e),
    };
    if crate::name::split_lane(name).is_none() {
        match RawReader::open(&crate::name::lane(name, fp), init_timeout) {
            Ok(raw) if raw.geo.fingerprint == fp => return Ok(raw),
            // A lane's name says its fingerprint; another one inside is no lane of ours.
            Ok(_) | Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    match (plain, missing) {
        (Some(raw), _) => Err(mismatch(&raw)),
        // What the plain name gave: nothing there, or a creator still at work.
        (None, Some(e)) => Err(e),
        (None, None) => Err(OpenError::NotFound { name: name.into() }),
    }
}

/// "; lanes: `fp` (`Type`), …" for a `TypeMismatch` message: the other
/// layouts `name` carries. Empty when it has no lane.
pub(crate) fn lanes_note(name: &str) -> String {
    let lanes = crate::name::lanes_in_shm(name);
    if lanes.is_empty() {
        return String::new();
    }
    let described: Vec<String> = lanes
        .iter()
        .map(|(lane, fp)| match crate::inspect(lane).ok().and_then(|i| i.type_name) {
            Some(ty) => format!("{ty} ({fp:#018x})"),
            None => format!("{fp:#018x}"),
        })
        .collect();
    format!("; also carried in lanes: {}", described.join(", "))
}
