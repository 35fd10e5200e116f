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
//!
//! Layout facts a schema-driven decoder relies on (rkyv 0.8, this crate's pinned
//! format: little-endian, aligned, 32-bit archived `usize` and relative offsets)
//! are documented on each [`Kind`] variant.

mod desc;
mod diff;
mod display;
pub mod fp;
mod std_impls;
mod validate;

use std::collections::HashMap;

pub use desc::{Field, Kind, Primitive, SchemaDoc, SchemaError, TypeDesc, TypeIndex, Variant};
pub use diff::{Change, ChangeKind, SchemaDiff};

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
    // Keyed by `type_name`: `Schema` has no `'static` bound, so `TypeId` is out.
    seen: HashMap<&'static str, TypeIndex>,
}

impl SchemaBuilder {
    /// Returns `T`'s index, describing it with `f` on first sight. The index is
    /// reserved before `f` runs, so recursive types terminate.
    ///
    /// While `f` runs, a recursive reference sees an empty name; use
    /// [`describe_named`](Self::describe_named) when the name is known first.
    pub fn describe_with<T: ?Sized>(&mut self, f: impl FnOnce(&mut SchemaBuilder) -> TypeDesc) -> TypeIndex {
        self.describe_named::<T>(|_| String::new(), |b, _| f(b))
    }

    /// Like [`describe_with`](Self::describe_with), but computes the name first
    /// and records it before `body` runs, so a recursive reference (e.g. the
    /// `Vec<Node>` inside `Node`) can already print `Node`.
    pub fn describe_named<T: ?Sized>(
        &mut self,
        name: impl FnOnce(&mut SchemaBuilder) -> String,
        body: impl FnOnce(&mut SchemaBuilder, String) -> TypeDesc,
    ) -> TypeIndex {
        let key = core::any::type_name::<T>();
        if let Some(&idx) = self.seen.get(key) {
            return idx;
        }
        let idx = self.types.len() as TypeIndex;
        self.seen.insert(key, idx);
        self.types.push(TypeDesc::placeholder());
        let name = name(self);
        self.types[idx as usize].name.clone_from(&name);
        let desc = body(self, name);
        self.types[idx as usize] = desc;
        idx
    }

    /// Adds `T` and returns its index.
    pub fn add<T: Schema + ?Sized>(&mut self) -> TypeIndex {
        T::describe(self)
    }

    /// Adds `T` and returns its recorded name (for composing generic names).
    pub fn name_of<T: Schema + ?Sized>(&mut self) -> String {
        let idx = self.add::<T>();
        self.type_name(idx).to_owned()
    }

    /// The name recorded for an already added type.
    pub fn type_name(&self, idx: TypeIndex) -> &str {
        self.types.get(idx as usize).map_or("?", |t| t.name.as_str())
    }

    /// `base<arg, arg…>`, or `base` alone without arguments.
    pub fn generic_name(base: &str, args: &[String]) -> String {
        if args.is_empty() {
            base.to_owned()
        } else {
            format!("{base}<{}>", args.join(", "))
        }
    }

    /// Spelling of a const generic argument inside a type name.
    pub fn const_arg(value: impl core::fmt::Display) -> String {
        value.to_string()
    }

    /// Offsets of fields laid out with `repr(C)` rules after `start` bytes, from
    /// their `(size, align)`. Used for enum variants, whose archived structs
    /// (`#[repr(C)] { tag, fields… }`) are private to rkyv's derive.
    pub fn repr_c_offsets<const K: usize>(start: usize, fields: [(usize, usize); K]) -> [u32; K] {
        let mut offset = start;
        fields.map(|(size, align)| {
            offset = offset.next_multiple_of(align.max(1));
            let at = offset as u32;
            offset += size;
            at
        })
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

#[cfg(test)]
mod tests;
