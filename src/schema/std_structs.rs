//! `Schema` for std value types that rkyv archives as small structs and enums
//! of its own: `Duration`, the IP and socket addresses, `Range`, `Result`.
//!
//! Their archived fields are private to rkyv, so offsets are recomputed with
//! `repr(C)` rules from the recorded field layouts, exactly as rkyv 0.8 lays
//! them out (`#[repr(C)] struct ArchivedDuration { secs: u64, nanos: u32 }`,
//! `#[repr(u8)] enum ArchivedIpAddr { V4(..), V6(..) }`…); the tests check
//! them against archived bytes. Described with the existing [`Kind`]s, so a
//! schema-driven decoder walks them like user structs and enums.

use core::ops::{Range, RangeInclusive};
use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use rkyv::{Archive, Archived};

use super::{Field, Kind, Schema, SchemaBuilder, TypeDesc, TypeIndex, Variant};

/// Fields `(name, type)` placed with `repr(C)` rules from `start`.
fn place(b: &SchemaBuilder, start: u32, fields: &[(&str, TypeIndex)]) -> Vec<Field> {
    let mut end = start;
    fields
        .iter()
        .map(|&(name, ty)| {
            let t = &b.types[ty as usize];
            let offset = end.next_multiple_of(t.align.max(1));
            end = offset + t.size;
            Field { name: name.to_owned(), ty, offset }
        })
        .collect()
}

fn layout_of<T: Archive>(name: String, kind: Kind) -> TypeDesc {
    TypeDesc {
        name,
        size: core::mem::size_of::<Archived<T>>() as u32,
        align: core::mem::align_of::<Archived<T>>() as u32,
        kind,
    }
}

/// A `repr(C)` struct with named fields.
fn record<T: Archive>(b: &SchemaBuilder, name: String, fields: &[(&str, TypeIndex)]) -> TypeDesc {
    layout_of::<T>(name, Kind::Struct { fields: place(b, 0, fields), tuple: false })
}

/// rkyv's `#[repr(u8)]` enum of one-field tuple variants, tags 0, 1, ….
fn one_field_variants<T: Archive>(b: &SchemaBuilder, name: String, variants: &[(&str, TypeIndex)]) -> TypeDesc {
    let variants = (0u64..)
        .zip(variants)
        .map(|(discriminant, &(name, ty))| Variant {
            name: name.to_owned(),
            discriminant,
            fields: place(b, 1, &[("0", ty)]),
            tuple: true,
        })
        .collect();
    layout_of::<T>(name, Kind::Enum { variants, tag_size: 1 })
}

impl Schema for Duration {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let fields = [("secs", b.add::<u64>()), ("nanos", b.add::<u32>())];
            record::<Self>(b, "Duration".to_owned(), &fields)
        })
    }
}

impl Schema for Ipv4Addr {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let fields = [("octets", b.add::<[u8; 4]>())];
            record::<Self>(b, "Ipv4Addr".to_owned(), &fields)
        })
    }
}

impl Schema for Ipv6Addr {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let fields = [("octets", b.add::<[u8; 16]>())];
            record::<Self>(b, "Ipv6Addr".to_owned(), &fields)
        })
    }
}

impl Schema for IpAddr {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let variants = [("V4", b.add::<Ipv4Addr>()), ("V6", b.add::<Ipv6Addr>())];
            one_field_variants::<Self>(b, "IpAddr".to_owned(), &variants)
        })
    }
}

impl Schema for SocketAddrV4 {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let fields = [("ip", b.add::<Ipv4Addr>()), ("port", b.add::<u16>())];
            record::<Self>(b, "SocketAddrV4".to_owned(), &fields)
        })
    }
}

impl Schema for SocketAddrV6 {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let fields = [
                ("ip", b.add::<Ipv6Addr>()),
                ("port", b.add::<u16>()),
                ("flowinfo", b.add::<u32>()),
                ("scope_id", b.add::<u32>()),
            ];
            record::<Self>(b, "SocketAddrV6".to_owned(), &fields)
        })
    }
}

impl Schema for SocketAddr {
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_with::<Self>(|b| {
            let variants = [("V4", b.add::<SocketAddrV4>()), ("V6", b.add::<SocketAddrV6>())];
            one_field_variants::<Self>(b, "SocketAddr".to_owned(), &variants)
        })
    }
}

impl<T: Schema, E: Schema> Schema for Result<T, E>
where
    Result<T, E>: Archive,
{
    fn describe(b: &mut SchemaBuilder) -> TypeIndex {
        b.describe_named::<Self>(
            |b| SchemaBuilder::generic_name("Result", &[b.name_of::<T>(), b.name_of::<E>()]),
            |b, name| {
                let variants = [("Ok", b.add::<T>()), ("Err", b.add::<E>())];
                one_field_variants::<Self>(b, name, &variants)
            },
        )
    }
}

/// `Range<T>` and `RangeInclusive<T>`: rkyv's `#[repr(C)] { start: T, end: T }`.
macro_rules! range {
    ($($ty:ident),*) => {$(
        impl<T: Schema> Schema for $ty<T>
        where
            $ty<T>: Archive,
        {
            fn describe(b: &mut SchemaBuilder) -> TypeIndex {
                b.describe_named::<Self>(
                    |b| SchemaBuilder::generic_name(stringify!($ty), &[b.name_of::<T>()]),
                    |b, name| {
                        let t = b.add::<T>();
                        record::<Self>(b, name, &[("start", t), ("end", t)])
                    },
                )
            }
        }
    )*};
}

range!(Range, RangeInclusive);
