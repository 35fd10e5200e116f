//! Fingerprints and descriptions produced by `#[shared]` / `#[derive(Schema)]`,
//! checked from a crate that depends only on shmstate.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use shmstate::rkyv;
use shmstate::schema::{fingerprint_of, schema_of, Kind, Primitive, SchemaDoc, TypeDesc};

mod v1 {
    #[shmstate::shared]
    #[rkyv(derive(Debug), compare(PartialEq))]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Quote {
        pub bid: f64,
        pub ask: f64,
        pub venue: String,
        pub size: u32,
    }

    #[shmstate::shared]
    pub enum Side {
        Buy,
        Sell,
    }
}

/// Identical structure, different module: must be compatible.
mod same {
    #[shmstate::shared]
    pub struct Quote {
        pub bid: f64,
        pub ask: f64,
        pub venue: String,
        pub size: u32,
    }

    #[shmstate::shared]
    pub enum Side {
        Buy,
        Sell,
    }
}

mod renamed {
    #[shmstate::shared]
    pub struct Quote {
        pub bid_px: f64,
        pub ask: f64,
        pub venue: String,
        pub size: u32,
    }
}

mod retyped {
    #[shmstate::shared]
    pub struct Quote {
        pub bid: f32,
        pub ask: f64,
        pub venue: String,
        pub size: u32,
    }
}

mod reordered {
    #[shmstate::shared]
    pub struct Quote {
        pub ask: f64,
        pub bid: f64,
        pub venue: String,
        pub size: u32,
    }
}

mod added {
    #[shmstate::shared]
    pub enum Side {
        Buy,
        Sell,
        Short,
    }
}

mod renumbered {
    #[shmstate::shared]
    #[repr(u8)]
    pub enum Side {
        Buy = 1,
        Sell,
    }
}

#[shmstate::shared]
#[derive(Debug, PartialEq)]
struct Pair<T> {
    a: T,
    b: T,
}

#[shmstate::shared]
struct Tagged<T, const N: usize> {
    items: [T; N],
}

#[shmstate::shared]
struct Meters(u32, f64);

#[shmstate::shared]
struct Marker;

#[shmstate::shared]
#[derive(Debug)]
enum Event {
    Tick { px: f64, seq: u32 },
    Halt(String),
    Idle,
}

#[shmstate::shared]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
struct Node {
    label: String,
    #[rkyv(omit_bounds)]
    kids: Vec<Node>,
}

#[shmstate::shared]
enum Either<L, R> {
    Left(L),
    Right { r: R, tail: Vec<L> },
}

/// Mutual recursion: each type is described once and referred to by index.
#[shmstate::shared]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
struct Dir {
    #[rkyv(omit_bounds)]
    files: Vec<File>,
}

#[shmstate::shared]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
struct File {
    size: u64,
    #[rkyv(omit_bounds)]
    parent: Option<Box<Dir>>,
}

/// Every std type the crate describes, in one nested struct.
#[shmstate::shared]
struct Everything {
    unit: (),
    flag: bool,
    c: char,
    u: (u8, u16, u32, u64, u128, usize),
    i: (i8, i16, i32, i64, i128, isize),
    f: (f32, f64),
    text: String,
    list: Vec<Pair<u16>>,
    maybe: Option<Box<Meters>>,
    boxed: Box<[u8]>,
    grid: [[u8; 3]; 2],
    by_name: HashMap<String, u64>,
    sorted: BTreeMap<u32, Event>,
    quote: v1::Quote,
    wide: (u8, u8, u8, u8, u8, u8, u8, u8),
}

/// Two types both named `Quote`, from two modules.
#[shmstate::shared]
struct TwoQuotes {
    a: v1::Quote,
    b: retyped::Quote,
}

#[test]
fn same_named_types_from_two_modules_stay_two_types() {
    let doc = schema_of::<TwoQuotes>();
    doc.validate().unwrap();
    let Kind::Struct { fields, .. } = &doc.root().kind else { panic!() };
    assert_ne!(fields[0].ty, fields[1].ty);
    let text = doc.to_string();
    assert_eq!(text.matches("struct Quote {").count(), 2, "{text}");
    assert!(text.contains("bid: f64,") && text.contains("bid: f32,"), "{text}");
}

#[test]
fn fingerprint_ignores_module_path() {
    assert_eq!(fingerprint_of::<v1::Quote>(), fingerprint_of::<same::Quote>());
    assert_eq!(fingerprint_of::<v1::Side>(), fingerprint_of::<same::Side>());
    // The descriptions agree too, since names carry no module path.
    assert_eq!(schema_of::<v1::Quote>(), schema_of::<same::Quote>());
}

#[test]
fn fingerprint_changes_with_structure() {
    let base = fingerprint_of::<v1::Quote>();
    assert_ne!(base, fingerprint_of::<renamed::Quote>(), "renamed field");
    assert_ne!(base, fingerprint_of::<retyped::Quote>(), "retyped field");
    assert_ne!(base, fingerprint_of::<reordered::Quote>(), "reordered fields");
    assert_ne!(fingerprint_of::<v1::Side>(), fingerprint_of::<added::Side>(), "added variant");
    assert_ne!(fingerprint_of::<v1::Side>(), fingerprint_of::<renumbered::Side>(), "new discriminants");
    assert_ne!(fingerprint_of::<Pair<u32>>(), fingerprint_of::<Pair<u64>>());
    assert_ne!(fingerprint_of::<Tagged<u8, 2>>(), fingerprint_of::<Tagged<u8, 3>>());
    assert_ne!(fingerprint_of::<Vec<u8>>(), fingerprint_of::<Box<[u8]>>());
    assert_ne!(fingerprint_of::<(u8, u16)>(), fingerprint_of::<(u16, u8)>());
    assert_ne!(fingerprint_of::<[u8; 2]>(), fingerprint_of::<[u8; 3]>());
}

#[test]
fn primitive_fingerprints_are_distinct() {
    let fps = [
        fingerprint_of::<()>(),
        fingerprint_of::<bool>(),
        fingerprint_of::<char>(),
        fingerprint_of::<u8>(),
        fingerprint_of::<u16>(),
        fingerprint_of::<u32>(),
        fingerprint_of::<u64>(),
        fingerprint_of::<u128>(),
        fingerprint_of::<usize>(),
        fingerprint_of::<i8>(),
        fingerprint_of::<i16>(),
        fingerprint_of::<i32>(),
        fingerprint_of::<i64>(),
        fingerprint_of::<i128>(),
        fingerprint_of::<isize>(),
        fingerprint_of::<f32>(),
        fingerprint_of::<f64>(),
        fingerprint_of::<String>(),
    ];
    let mut sorted = fps.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), fps.len());
}

fn find<'a>(doc: &'a SchemaDoc, name: &str) -> &'a TypeDesc {
    doc.types.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} not in\n{doc}"))
}

#[test]
fn descriptions_name_generics_and_recursion() {
    let doc = schema_of::<Pair<u32>>();
    assert_eq!(doc.root().name, "Pair<u32>");
    assert_eq!(schema_of::<Tagged<u8, 4>>().root().name, "Tagged<u8, 4>");

    let doc = schema_of::<Node>();
    let Kind::Struct { fields, tuple: false } = &doc.root().kind else { panic!() };
    assert_eq!(doc.types[fields[1].ty as usize].name, "Vec<Node>");
    let Kind::Vec(elem) = doc.types[fields[1].ty as usize].kind else { panic!() };
    assert_eq!(elem, doc.root, "the recursion points back at the root");

    let doc = schema_of::<Meters>();
    assert!(matches!(&doc.root().kind, Kind::Struct { fields, tuple: true } if fields.len() == 2));
    let doc = schema_of::<Marker>();
    assert!(matches!(&doc.root().kind, Kind::Struct { fields, tuple: false } if fields.is_empty()));
    assert_eq!(doc.root().size, 0);
}

#[test]
fn generic_enum_offsets_match_archived_bytes() {
    assert_ne!(fingerprint_of::<Either<u8, u64>>(), fingerprint_of::<Either<u64, u8>>());
    let doc = schema_of::<Either<u8, u64>>();
    assert_eq!(doc.root().name, "Either<u8, u64>");
    let v = Either::<u8, u64>::Right { r: 0x1122_3344_5566_7788, tail: vec![1, 2] };
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&v).unwrap();
    let root = bytes.len() - doc.root().size as usize;
    let Kind::Enum { variants, .. } = &doc.root().kind else { panic!() };
    assert_eq!(u64::from(bytes[root]), variants[1].discriminant);
    let [r, tail] = &variants[1].fields[..] else { panic!() };
    assert_eq!((r.offset, tail.offset), (8, 16));
    let at = root + r.offset as usize;
    assert_eq!(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), 0x1122_3344_5566_7788);
    let at = root + tail.offset as usize + 4;
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 2, "Vec len");
}

#[test]
fn mutual_recursion() {
    assert_ne!(fingerprint_of::<Dir>(), fingerprint_of::<File>());
    let doc = schema_of::<Dir>();
    doc.validate().unwrap();
    assert!(doc.to_string().contains("parent: Option<Box<Dir>>"), "{doc}");
}

#[test]
fn everything_is_described() {
    let doc = schema_of::<Everything>();
    doc.validate().unwrap();
    for (name, prim) in [("u128", Primitive::U128), ("isize", Primitive::Isize), ("char", Primitive::Char)] {
        assert_eq!(find(&doc, name).kind, Kind::Primitive(prim));
    }
    assert!(matches!(find(&doc, "HashMap<String, u64>").kind, Kind::HashMap(..)));
    assert!(matches!(find(&doc, "BTreeMap<u32, Event>").kind, Kind::BTreeMap(..)));
    assert!(matches!(find(&doc, "Option<Box<Meters>>").kind, Kind::Option(_)));
    assert!(matches!(find(&doc, "Box<Meters>").kind, Kind::Box(_)));
    assert!(matches!(find(&doc, "Box<[u8]>").kind, Kind::Vec(_)));
    assert!(matches!(find(&doc, "[[u8; 3]; 2]").kind, Kind::Array(_, 2)));
    assert!(matches!(&find(&doc, "(u8, u8, u8, u8, u8, u8, u8, u8)").kind, Kind::Tuple(f) if f.len() == 8));
    assert!(matches!(&find(&doc, "Event").kind, Kind::Enum { variants, tag_size: 1 } if variants.len() == 3));
    assert_eq!(doc.root().size as usize, core::mem::size_of::<ArchivedEverything>());
}

#[test]
fn display_lists_user_types() {
    let text = schema_of::<Everything>().to_string();
    for needle in [
        "struct Everything {",
        "    sorted: BTreeMap<u32, Event>,",
        "struct Pair<u16> {",
        "struct Meters(u32, f64);",
        "enum Event {",
        "    Tick { px: f64, seq: u32 },",
        "    Halt(String),",
        "struct Quote {",
        "    venue: String,",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    assert!(schema_of::<renumbered::Side>().to_string().contains("Buy = 1,"));
    assert!(schema_of::<Vec<u8>>().to_string().starts_with("Vec<u8>"));
}

#[test]
fn struct_offsets_match_archived_bytes() {
    let q = v1::Quote { bid: 1.5, ask: 2.5, venue: "XNYS".into(), size: 0xC0FF_EE00 };
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&q).unwrap();
    let doc = schema_of::<v1::Quote>();
    let root = bytes.len() - doc.root().size as usize;
    let Kind::Struct { fields, .. } = &doc.root().kind else { panic!() };
    let size = fields.iter().find(|f| f.name == "size").unwrap();
    let at = root + size.offset as usize;
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 0xC0FF_EE00);
    let archived = rkyv::access::<v1::ArchivedQuote, rkyv::rancor::Error>(&bytes).unwrap();
    assert_eq!(archived, &q);

    // A data enum: the tuple variant's field sits after the one-byte tag.
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&Event::Tick { px: 0.25, seq: 77 }).unwrap();
    let doc = schema_of::<Event>();
    let root = bytes.len() - doc.root().size as usize;
    let Kind::Enum { variants, .. } = &doc.root().kind else { panic!() };
    assert_eq!(u64::from(bytes[root]), variants[0].discriminant);
    let seq = &variants[0].fields[1];
    let at = root + seq.offset as usize;
    assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), 77);
}

#[test]
fn encode_decode_round_trips() {
    let docs = [
        schema_of::<Everything>(),
        schema_of::<Node>(),
        schema_of::<Event>(),
        schema_of::<Pair<String>>(),
        schema_of::<Marker>(),
        schema_of::<u8>(),
        schema_of::<HashMap<String, Vec<Option<i64>>>>(),
    ];
    for doc in docs {
        assert_eq!(SchemaDoc::decode(&doc.encode()).as_ref(), Ok(&doc));
    }
}

#[test]
fn decode_rejects_every_truncation() {
    let bytes = schema_of::<Everything>().encode();
    for n in 0..bytes.len() {
        assert!(SchemaDoc::decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
    }
}

proptest! {
    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Err almost surely; if random bytes ever do decode, they are validated.
        if let Ok(doc) = SchemaDoc::decode(&bytes) {
            prop_assert!(doc.validate().is_ok());
            let _ = doc.to_string();
        }
    }

    #[test]
    fn decode_never_panics_on_corrupted_docs(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = schema_of::<Everything>().encode();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Ok(doc) = SchemaDoc::decode(&bytes) {
            let _ = doc.to_string();
        }
    }

    /// Structurally hostile docs that bytecheck would accept: arbitrary sizes,
    /// alignments, offsets and indices. `validate` must refuse or accept without
    /// panicking, and an accepted doc must print.
    #[test]
    fn validate_never_panics_on_mutated_docs(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..5, any::<u32>()), 1..6),
    ) {
        let mut doc = schema_of::<Everything>();
        for (at, what, x) in edits {
            let i = at.index(doc.types.len());
            let t = &mut doc.types[i];
            match (what, &mut t.kind) {
                (0, _) => t.size = x,
                (1, _) => t.align = x % 65,
                (2, Kind::Struct { fields, .. } | Kind::Tuple(fields)) if !fields.is_empty() => {
                    let n = fields.len();
                    fields[x as usize % n].offset = x >> 8;
                }
                (3, Kind::Struct { fields, .. } | Kind::Tuple(fields)) if !fields.is_empty() => {
                    let n = fields.len();
                    fields[x as usize % n].ty = x % 80;
                }
                (_, Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _)) => *e = x % 80,
                _ => doc.root = x % 80,
            }
        }
        if doc.validate().is_ok() {
            let _ = doc.to_string();
        }
    }
}
