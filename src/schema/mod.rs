//! Type identity across processes: the [`Schema`] trait, its compile-time
//! fingerprint and the structured description stored in every segment header.
//!
//! bytecheck proves that bytes are *memory-safe* to view as a type, not that they
//! were written as that type (a `Quote` validates as an unrelated struct). The
//! fingerprint closes that gap; the description lets tools decode a snapshot
//! without the Rust type (`shmstate dump`).
//!
//! INTERFACE CONTRACT (used by the runtime, the CLI and the derive):
//! - `T::FINGERPRINT` is a `const` u64 over the structure and the rkyv format.
//! - `T::describe(&mut SchemaBuilder) -> TypeIndex` adds `T` (and what it
//!   contains) to a [`SchemaDoc`]; [`schema_of::<T>()`] builds the whole doc.
//! - [`SchemaDoc::encode`] / [`SchemaDoc::decode`] give the bytes stored in the
//!   header; `decode` validates everything (it parses untrusted shared memory).
//! - `impl Display for SchemaDoc` prints a human-readable, Rust-like schema.

mod desc;
pub mod fp;
mod std_impls;

pub use desc::{Field, Kind, Primitive, SchemaDoc, SchemaError, TypeDesc, TypeIndex, Variant};

/// A type whose structure can be compared across processes and described to tools.
///
/// Implemented by `#[shmstate::shared]` and `#[derive(shmstate::Schema)]`, and by
/// shmstate for primitives and the std containers rkyv supports.
pub trait Schema {
    /// Structural fingerprint: equal for equal structure, different (with high
    /// probability) when a name, type, order, variant or the rkyv format differs.
    const FINGERPRINT: u64;

    /// Adds this type's description to `builder` and returns its index.
    fn describe(builder: &mut SchemaBuilder) -> TypeIndex;
}

/// Collects type descriptions, deduplicating by type and handling recursion.
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    types: Vec<TypeDesc>,
    seen: Vec<(&'static str, TypeIndex)>,
}

impl SchemaBuilder {
    /// Returns `T`'s index, describing it with `f` on first sight. The index is
    /// reserved before `f` runs, so recursive types terminate.
    pub fn describe_with<T: ?Sized>(
        &mut self,
        f: impl FnOnce(&mut SchemaBuilder) -> TypeDesc,
    ) -> TypeIndex {
        let key = core::any::type_name::<T>();
        if let Some(&(_, idx)) = self.seen.iter().find(|(k, _)| *k == key) {
            return idx;
        }
        let idx = self.types.len() as TypeIndex;
        self.seen.push((key, idx));
        self.types.push(TypeDesc::placeholder());
        let desc = f(self);
        self.types[idx as usize] = desc;
        idx
    }

    /// Adds `T` and returns its index.
    pub fn add<T: Schema + ?Sized>(&mut self) -> TypeIndex {
        T::describe(self)
    }

    /// Finishes the document with `root` as the described type.
    pub fn finish(self, root: TypeIndex) -> SchemaDoc {
        SchemaDoc { root, types: self.types }
    }
}

/// The full description of `T`, as stored in a segment header.
pub fn schema_of<T: Schema + ?Sized>() -> SchemaDoc {
    let mut b = SchemaBuilder::default();
    let root = b.add::<T>();
    b.finish(root)
}

impl SchemaBuilder {
    /// The name recorded for an already added type.
    pub fn type_name(&self, idx: TypeIndex) -> &str {
        self.types.get(idx as usize).map_or("?", |t| t.name.as_str())
    }
}
