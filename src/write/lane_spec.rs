//! A layout a writer publishes besides its own (a lane, docs/DEPLOYING.md
//! "Lanes"): its schema, and how a value of the writer's type becomes it.

use std::sync::Arc;

use rkyv::ser::allocator::Arena;

use crate::archive::{serialize_into, SlotWriter};
use crate::schema::SchemaDoc;
use crate::Shared;

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

    /// The lane of the `U` inside each `T`, which `project` borrows
    /// (serialized in place: no conversion).
    pub(crate) fn of_ref<U: Shared>(project: impl Fn(&T) -> &U + Send + Sync + 'static) -> Self {
        let serialize = move |value: &T, arena: &mut Arena, out: SlotWriter| serialize_into(project(value), arena, out);
        LaneSpec { schema: crate::schema::schema_of::<U>(), serialize: Arc::new(serialize) }
    }
}
