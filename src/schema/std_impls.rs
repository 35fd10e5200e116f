//! `Schema` for primitives and std containers. (Filled in by the schema work.)

use super::{Kind, Primitive, Schema, SchemaBuilder, TypeDesc, TypeIndex};
use super::fp::{fnv1a64, mix, RKYV_FORMAT};

macro_rules! primitive {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Schema for $t {
            const FINGERPRINT: u64 = mix(fnv1a64(stringify!($t).as_bytes()), RKYV_FORMAT);
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_with::<$t>(|_| TypeDesc {
                    name: stringify!($t).to_string(),
                    size: core::mem::size_of::<rkyv::Archived<$t>>() as u32,
                    align: core::mem::align_of::<rkyv::Archived<$t>>() as u32,
                    kind: Kind::Primitive(Primitive::$p),
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

impl Schema for String {
    const FINGERPRINT: u64 = mix(fnv1a64(b"String"), RKYV_FORMAT);
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<String>(|_| TypeDesc {
            name: "String".into(),
            size: core::mem::size_of::<rkyv::Archived<String>>() as u32,
            align: core::mem::align_of::<rkyv::Archived<String>>() as u32,
            kind: Kind::String,
        })
    }
}

impl<T: Schema + rkyv::Archive> Schema for Vec<T> {
    const FINGERPRINT: u64 = mix(fnv1a64(b"Vec"), T::FINGERPRINT);
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Vec<T>>(|b| {
            let e = b.add::<T>();
            TypeDesc {
                name: format!("Vec<{}>", b.type_name(e)),
                size: core::mem::size_of::<rkyv::Archived<Vec<T>>>() as u32,
                align: core::mem::align_of::<rkyv::Archived<Vec<T>>>() as u32,
                kind: Kind::Vec(e),
            }
        })
    }
}
