//! Type identity across processes: the [`Schema`] trait, the structured
//! description stored in every segment header, and its fingerprint.
//!
//! bytecheck proves that bytes are *memory-safe* to view as a type, not that they
//! were written as that type (a `Quote` validates as an unrelated struct). The
//! fingerprint closes that gap; the description lets tools decode a snapshot
//! without the Rust type (`shmstate dump`).
//!
//! INTERFACE CONTRACT (used by the runtime, the CLI and the derive):
//! - `T::describe(&mut SchemaBuilder) -> TypeIndex` adds `T` (and what it
//!   contains) to a [`SchemaDoc`]; [`schema_of::<T>()`] builds the whole doc.
//! - [`SchemaDoc::fingerprint`] hashes the archived layout of every type the
//!   doc reaches from its root, plus the rkyv format;
//!   [`fingerprint_of::<T>()`](fingerprint_of) is that of `schema_of::<T>()`.
//!   It is what readers compare at open: `read_unchecked` relies on it.
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
mod fingerprint;
pub mod fp;
#[cfg(feature = "serde")]
mod json;
mod std_impls;
mod std_structs;
mod validate;

use core::any::TypeId;
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

pub use desc::{Field, Kind, Primitive, SchemaDoc, SchemaError, TypeDesc, TypeIndex, Variant};
pub use diff::{Change, ChangeKind, SchemaDiff};

/// A type whose structure can be compared across processes and described to tools.
///
/// Implemented by `#[shmstate::shared]` and `#[derive(shmstate::Schema)]`, and by
/// shmstate for primitives and the std containers rkyv supports. `'static`
/// because the builder tells types apart by [`TypeId`] (names are not unique).
pub trait Schema: 'static {
    /// Adds this type's description to `builder` and returns its index.
    fn describe(builder: &mut SchemaBuilder) -> TypeIndex;
}

/// Collects type descriptions, deduplicating by type and handling recursion.
#[derive(Debug, Default)]
pub struct SchemaBuilder {
    types: Vec<TypeDesc>,
    // By identity: `type_name` is not unique (two `Meta`s declared in two
    // blocks of one function are both `…::f::Meta`).
    seen: HashMap<TypeId, TypeIndex>,
}

impl SchemaBuilder {
    /// Returns `T`'s index, describing it with `f` on first sight. The index is
    /// reserved before `f` runs, so recursive types terminate.
    ///
    /// While `f` runs, a recursive reference sees an empty name; use
    /// [`describe_named`](Self::describe_named) when the name is known first.
    pub fn describe_with<T: ?Sized + 'static>(&mut self, f: impl FnOnce(&mut SchemaBuilder) -> TypeDesc) -> TypeIndex {
        self.describe_named::<T>(|_| String::new(), |b, _| f(b))
    }

    /// Like [`describe_with`](Self::describe_with), but computes the name first
    /// and records it before `body` runs, so a recursive reference (e.g. the
    /// `Vec<Node>` inside `Node`) can already print `Node`.
    pub fn describe_named<T: ?Sized + 'static>(
        &mut self,
        name: impl FnOnce(&mut SchemaBuilder) -> String,
        body: impl FnOnce(&mut SchemaBuilder, String) -> TypeDesc,
    ) -> TypeIndex {
        let key = TypeId::of::<T>();
        if let Some(&idx) = self.seen.get(&key) {
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

/// The fingerprint of `T`: [`SchemaDoc::fingerprint`] of [`schema_of::<T>()`].
/// Equal for equal archived layouts (names included, module paths not),
/// different (up to 64-bit hash collisions) otherwise.
///
/// Computed once per type and process (a few microseconds for a typical
/// config struct), then served from a cache: a type's layout cannot change
/// while the process runs.
pub fn fingerprint_of<T: Schema + ?Sized>() -> u64 {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, u64>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = TypeId::of::<T>();
    // A panic while holding the lock cannot leave a wrong entry behind
    // (inserts are single calls), so a poisoned lock is still good.
    if let Some(&fp) = cache.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return fp;
    }
    let fp = schema_of::<T>().fingerprint();
    cache.write().unwrap_or_else(PoisonError::into_inner).insert(key, fp);
    fp
}

#[cfg(test)]
mod tests;
