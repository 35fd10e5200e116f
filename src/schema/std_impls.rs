//! `Schema` for primitives and the std types rkyv archives.
//!
//! Every description records the size and alignment of the *archived* type, so
//! the CLI can walk a snapshot with no Rust type at hand (and the fingerprint,
//! a hash of the descriptions, covers the layout).

use core::marker::PhantomData;
use core::mem::offset_of;
use core::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128, NonZeroU16, NonZeroU32,
    NonZeroU64, NonZeroU8, NonZeroUsize,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use rkyv::{Archive, Archived};

use super::{Field, Kind, Primitive, Schema, SchemaBuilder, TypeDesc, TypeIndex};

/// A description of `T` whose layout is that of `T`'s archived form.
fn archived<T: Archive>(name: String, kind: Kind) -> TypeDesc {
    TypeDesc {
        name,
        size: core::mem::size_of::<Archived<T>>() as u32,
        align: core::mem::align_of::<Archived<T>>() as u32,
        kind,
    }
}

macro_rules! primitive {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Schema for $t {
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_with::<$t>(|_| {
                    archived::<$t>(stringify!($t).to_owned(), Kind::Primitive(Primitive::$p))
                })
            }
        }
    )*};
}

primitive!(
    () => Unit, bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    usize => Usize, i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    isize => Isize, f32 => F32, f64 => F64, char => Char,
);

// Archived like the integer (bytecheck rejects zero); the name keeps them
// apart from it in the fingerprint.
primitive!(
    NonZeroU8 => U8, NonZeroU16 => U16, NonZeroU32 => U32, NonZeroU64 => U64, NonZeroU128 => U128,
    NonZeroUsize => Usize, NonZeroI8 => I8, NonZeroI16 => I16, NonZeroI32 => I32, NonZeroI64 => I64,
    NonZeroI128 => I128, NonZeroIsize => Isize,
);

impl Schema for String {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<String>(|_| archived::<String>("String".to_owned(), Kind::String))
    }
}

/// Unsized strings behind a pointer (`ArchivedBox<str>`, `ArchivedRc<str, _>`):
/// a relative offset and a length, laid out as `Vec<u8>` (not as `String`,
/// whose short values are stored inline).
macro_rules! str_ptr {
    ($($ty:ty, $name:literal;)*) => {$(
        impl Schema for $ty {
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_with::<Self>(|b| archived::<Self>($name.to_owned(), Kind::Vec(b.add::<u8>())))
            }
        }
    )*};
}

str_ptr! {
    Box<str>, "Box<str>";
    Arc<str>, "Arc<str>";
    Rc<str>, "Rc<str>";
}

/// One-parameter containers: `$fmt` spells the name, `$kind` is the shape.
macro_rules! unary {
    ($($ty:ty, $fmt:literal, $kind:ident;)*) => {$(
        impl<T: Schema> Schema for $ty
        where
            $ty: Archive,
        {
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_named::<Self>(
                    |b| format!($fmt, b.name_of::<T>()),
                    |b, name| archived::<Self>(name, Kind::$kind(b.add::<T>())),
                )
            }
        }
    )*};
}

unary! {
    Vec<T>, "Vec<{}>", Vec;
    Option<T>, "Option<{}>", Option;
    Box<T>, "Box<{}>", Box;
    // Same archived layout as `Vec<T>` (relative offset + length).
    Box<[T]>, "Box<[{}]>", Vec;
    VecDeque<T>, "VecDeque<{}>", Vec;
    // Shared pointers archive as one relative pointer, like `Box` (rkyv
    // deduplicates the target; the layout does not show it).
    Arc<T>, "Arc<{}>", Box;
    Rc<T>, "Rc<{}>", Box;
    Arc<[T]>, "Arc<[{}]>", Vec;
    Rc<[T]>, "Rc<[{}]>", Vec;
}

impl<T: Schema, const N: usize> Schema for [T; N]
where
    [T; N]: Archive,
{
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("[{}; {N}]", b.name_of::<T>()),
            |b, name| archived::<Self>(name, Kind::Array(b.add::<T>(), N as u64)),
        )
    }
}

impl<K: Schema, V: Schema, S: 'static> Schema for HashMap<K, V, S>
where
    HashMap<K, V, S>: Archive,
{
    // The hasher `S` is not described: the archived map always uses rkyv's own.
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("HashMap<{}, {}>", b.name_of::<K>(), b.name_of::<V>()),
            |b, name| archived::<Self>(name, Kind::HashMap(b.add::<K>(), b.add::<V>())),
        )
    }
}

impl<K: Schema, V: Schema> Schema for BTreeMap<K, V>
where
    BTreeMap<K, V>: Archive,
{
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("BTreeMap<{}, {}>", b.name_of::<K>(), b.name_of::<V>()),
            |b, name| archived::<Self>(name, Kind::BTreeMap(b.add::<K>(), b.add::<V>())),
        )
    }
}

// Sets archive as maps with `()` values (`#[repr(transparent)]` wrappers).
impl<K: Schema, S: 'static> Schema for HashSet<K, S>
where
    HashSet<K, S>: Archive,
{
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("HashSet<{}>", b.name_of::<K>()),
            |b, name| archived::<Self>(name, Kind::HashMap(b.add::<K>(), b.add::<()>())),
        )
    }
}

impl<K: Schema> Schema for BTreeSet<K>
where
    BTreeSet<K>: Archive,
{
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("BTreeSet<{}>", b.name_of::<K>()),
            |b, name| archived::<Self>(name, Kind::BTreeMap(b.add::<K>(), b.add::<()>())),
        )
    }
}

/// Zero-sized; described as an empty tuple so decoders need no new kind.
impl<T: Schema + ?Sized> Schema for PhantomData<T> {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| format!("PhantomData<{}>", b.name_of::<T>()),
            |_, name| archived::<Self>(name, Kind::Tuple(Vec::new())),
        )
    }
}

macro_rules! tuple {
    ($($t:ident $i:tt),+) => {
        // Bounds on the components, not on the tuple: a `(A, B): Archive`
        // where-clause would keep `Archived<Self>` an opaque projection, which
        // `offset_of!` cannot look into.
        impl<$($t: Schema + Archive),+> Schema for ($($t,)+) {
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_named::<Self>(
                    |b| {
                        let parts = [$(b.name_of::<$t>()),+];
                        // `(A,)` keeps a 1-tuple distinct from a parenthesised type.
                        let comma = if parts.len() == 1 { "," } else { "" };
                        format!("({}{comma})", parts.join(", "))
                    },
                    |b, name| {
                        let fields = Vec::from([$(Field {
                            name: stringify!($i).to_owned(),
                            ty: b.add::<$t>(),
                            offset: offset_of!(Archived<Self>, $i) as u32,
                        }),+]);
                        archived::<Self>(name, Kind::Tuple(fields))
                    },
                )
            }
        }
    };
}

tuple!(A 0);
tuple!(A 0, B 1);
tuple!(A 0, B 1, C 2);
tuple!(A 0, B 1, C 2, D 3);
tuple!(A 0, B 1, C 2, D 3, E 4);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
