//! Unit tests of the schema internals: std descriptions against real archived
//! bytes, validation of hostile docs, and the derive used inside this crate
//! (`crate = crate`).

use std::collections::{BTreeMap, HashMap};

use super::*;

#[crate::shared(crate = crate)]
#[derive(Debug, PartialEq)]
#[repr(u8)]
enum Shape {
    Dot,
    Circle { r: u16, center: (u8, u64) } = 5,
    Label(bool, String, u32),
    Poly(Vec<u32>),
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Position of the root object: rkyv writes it last, at `len - size`.
fn root_pos<T: Schema>(bytes: &[u8]) -> usize {
    bytes.len() - schema_of::<T>().root().size as usize
}

fn variant<'a>(doc: &'a SchemaDoc, name: &str) -> &'a Variant {
    let Kind::Enum { variants, .. } = &doc.root().kind else { panic!("not an enum") };
    variants.iter().find(|v| v.name == name).unwrap()
}

#[test]
fn enum_offsets_and_tags_match_archived_bytes() {
    let doc = schema_of::<Shape>();
    let Kind::Enum { tag_size, .. } = doc.root().kind else { panic!() };
    assert_eq!(tag_size, 1);
    assert_eq!(doc.root().size as usize, core::mem::size_of::<ArchivedShape>());

    // Explicit discriminants are kept; implicit ones count on from the previous.
    let discs: Vec<u64> = ["Dot", "Circle", "Label", "Poly"].iter().map(|n| variant(&doc, n).discriminant).collect();
    assert_eq!(discs, [0, 5, 6, 7]);

    let v = Shape::Label(true, "hi".into(), 0xDEAD_BEEF);
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&v).unwrap();
    let root = root_pos::<Shape>(&bytes);
    assert_eq!(bytes[root], 6, "tag byte");
    let f = &variant(&doc, "Label").fields;
    assert_eq!(bytes[root + f[0].offset as usize], 1);
    assert_eq!(le_u32(&bytes, root + f[2].offset as usize), 0xDEAD_BEEF);
    assert_eq!([f[0].offset, f[1].offset, f[2].offset], [1, 4, 12]);

    let v = Shape::Circle { r: 0x1234, center: (9, 0x0102_0304_0506_0708) };
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&v).unwrap();
    let root = root_pos::<Shape>(&bytes);
    assert_eq!(bytes[root], 5);
    let f = &variant(&doc, "Circle").fields;
    let r = root + f[0].offset as usize;
    assert_eq!(u16::from_le_bytes([bytes[r], bytes[r + 1]]), 0x1234);
    let c = root + f[1].offset as usize;
    assert_eq!(bytes[c], 9);
    let Kind::Tuple(tf) = &doc.types[f[1].ty as usize].kind else { panic!() };
    let second = c + tf[1].offset as usize;
    assert_eq!(u64::from_le_bytes(bytes[second..second + 8].try_into().unwrap()), 0x0102_0304_0506_0708);
}

#[test]
fn std_layouts_match_rkyv() {
    use core::mem::{align_of, size_of};
    let d = schema_of::<String>();
    assert_eq!((d.root().size, d.root().align), (8, 4));
    assert_eq!(schema_of::<Vec<u64>>().root().size, 8);
    assert_eq!(schema_of::<Box<[u8]>>().root().size, 8);
    assert_eq!(schema_of::<Box<u64>>().root().size, 4);
    assert_eq!(schema_of::<HashMap<u8, u8>>().root().size, 12);
    assert_eq!(schema_of::<BTreeMap<u8, u8>>().root().size, 8);
    assert_eq!(schema_of::<usize>().root().size, 4);
    assert_eq!(schema_of::<char>().root().size, 4);
    let d = schema_of::<Option<u64>>();
    assert_eq!(d.root().size as usize, size_of::<rkyv::Archived<Option<u64>>>());
    assert_eq!(d.root().align as usize, align_of::<rkyv::Archived<Option<u64>>>());
    let d = schema_of::<(u8, u32, u16)>();
    let Kind::Tuple(fs) = &d.root().kind else { panic!() };
    assert_eq!(fs.iter().map(|f| f.offset).collect::<Vec<_>>(), [0, 4, 8]);
    assert_eq!(d.root().name, "(u8, u32, u16)");
    assert_eq!(schema_of::<(u8,)>().root().name, "(u8,)");
    assert_eq!(schema_of::<[Option<i16>; 3]>().root().name, "[Option<i16>; 3]");
    assert_eq!(schema_of::<HashMap<String, Vec<u8>>>().root().name, "HashMap<String, Vec<u8>>");
}

#[test]
fn option_payload_follows_tag_at_its_alignment() {
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&Some(0xABCD_u32)).unwrap();
    let root = root_pos::<Option<u32>>(&bytes);
    assert_eq!(bytes[root], 1);
    assert_eq!(le_u32(&bytes, root + 4), 0xABCD);
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&None::<u32>).unwrap();
    assert_eq!(bytes[root_pos::<Option<u32>>(&bytes)], 0);
}

#[test]
fn string_inline_and_out_of_line() {
    // Inline: the bytes themselves, padded with 0xFF.
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&String::from("abc")).unwrap();
    let r = root_pos::<String>(&bytes);
    assert_eq!(&bytes[r..r + 8], b"abc\xff\xff\xff\xff\xff");
    // Out of line: length word with bits 6..7 = 10, then offset from the string.
    let s = "x".repeat(100);
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&s).unwrap();
    let r = root_pos::<String>(&bytes);
    let w = le_u32(&bytes, r);
    assert_eq!(w & 0xC0, 0x80);
    assert_eq!((w & 0x3F) | ((w & !0xFF) >> 2), 100);
    let off = le_u32(&bytes, r + 4) as i32;
    let at = (r as isize + off as isize) as usize;
    assert_eq!(&bytes[at..at + 100], s.as_bytes());
}

#[test]
fn vec_is_relative_offset_then_len() {
    let v = vec![7u32, 8, 9];
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&v).unwrap();
    let r = root_pos::<Vec<u32>>(&bytes);
    let at = (r as isize + le_u32(&bytes, r) as i32 as isize) as usize;
    assert_eq!(le_u32(&bytes, r + 4), 3);
    assert_eq!([le_u32(&bytes, at), le_u32(&bytes, at + 4), le_u32(&bytes, at + 8)], [7, 8, 9]);
}

#[test]
fn hashmap_buckets_sit_below_control_bytes() {
    let m: HashMap<u32, u32> = (0..20).map(|i| (i, i * 10)).collect();
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&m).unwrap();
    let r = root_pos::<HashMap<u32, u32>>(&bytes);
    let ctrl = (r as isize + le_u32(&bytes, r) as i32 as isize) as usize;
    let (len, cap) = (le_u32(&bytes, r + 4) as usize, le_u32(&bytes, r + 8) as usize);
    assert_eq!(len, 20);
    let mut seen = Vec::new();
    for i in 0..cap {
        if bytes[ctrl + i] & 0x80 == 0 {
            let e = ctrl - (i + 1) * 8;
            seen.push((le_u32(&bytes, e), le_u32(&bytes, e + 4)));
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20).map(|i| (i, i * 10)).collect::<Vec<_>>());
}

#[test]
fn validate_rejects_hostile_docs() {
    let good = schema_of::<Shape>();
    good.validate().unwrap();

    let mut d = good.clone();
    d.root = 99;
    assert!(d.validate().is_err());

    // A zero-sized struct containing itself passes every size check but
    // would send a decoder into an endless loop.
    let looped = SchemaDoc {
        root: 0,
        types: vec![TypeDesc {
            name: "X".into(),
            size: 0,
            align: 1,
            kind: Kind::Struct { fields: vec![Field { name: "a".into(), ty: 0, offset: 0 }], tuple: false },
        }],
    };
    assert!(looped.validate().unwrap_err().0.contains("itself"));

    // A member whose (later) type claims alignment 0 must not divide by zero.
    let mut d = schema_of::<(u8, u32)>();
    let last = d.types.len() - 1;
    d.types[last].align = 0;
    assert!(d.validate().is_err());

    // A field running past its parent.
    let mut d = schema_of::<(u8, u32)>();
    if let Kind::Tuple(fs) = &mut d.types[d.root as usize].kind {
        fs[1].offset = 6;
    }
    assert!(d.validate().is_err());

    // A primitive with a size this build does not archive it with.
    let mut d = schema_of::<u64>();
    d.types[0].size = 4;
    d.types[0].align = 4;
    assert!(d.validate().is_err());
}

#[test]
fn builder_names_recursive_references() {
    let doc = schema_of::<Shape>();
    let poly = &variant(&doc, "Poly").fields[0];
    assert_eq!(doc.types[poly.ty as usize].name, "Vec<u32>");
    assert_eq!(SchemaBuilder::repr_c_offsets(1, [(1, 1), (8, 8), (2, 2)]), [1, 8, 16]);
}

/// Two types spelled alike (`type_name` gives both as `…::two_metas::Meta`)
/// are still two types.
#[test]
fn builder_keeps_same_named_types_apart() {
    type Adder = fn(&mut SchemaBuilder) -> TypeIndex;
    let narrow: Adder = {
        #[crate::shared(crate = crate)]
        struct Meta {
            a: u8,
        }
        |b| b.add::<Meta>()
    };
    let wide: Adder = {
        #[crate::shared(crate = crate)]
        struct Meta {
            a: u64,
        }
        |b| b.add::<Meta>()
    };
    let mut b = SchemaBuilder::default();
    let (n, w) = (narrow(&mut b), wide(&mut b));
    assert_ne!(n, w, "two types share one description");
    let doc = b.finish(w);
    assert_eq!((doc.types[n as usize].size, doc.types[w as usize].size), (1, 8));
    let text = doc.to_string();
    assert!(text.contains("struct Meta { // 8 bytes") && text.contains("struct Meta { // 1 bytes"), "{text}");
}

/// `A` and `B` refer to each other; `wider` differs from `base` only in
/// `B::x`, and `copy` is `base` again in another module.
macro_rules! mutual {
    ($m:ident, $x:ty) => {
        mod $m {
            use crate::rkyv;

            #[crate::shared(crate = crate)]
            #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
            #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
            #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
            pub struct A {
                #[rkyv(omit_bounds)]
                pub b: Option<Box<B>>,
            }

            #[crate::shared(crate = crate)]
            #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
            #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
            #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
            pub struct B {
                #[rkyv(omit_bounds)]
                pub a: Vec<A>,
                pub x: $x,
            }
        }
    };
}
mutual!(base, u8);
mutual!(wider, u16);
mutual!(copy, u8);

#[test]
fn mutual_recursion_is_hashed_through_the_cycle() {
    let doc = schema_of::<base::A>();
    doc.validate().unwrap();
    assert_eq!(doc.types.iter().filter(|t| t.name == "A" || t.name == "B").count(), 2, "{doc}");
    assert_ne!(fingerprint_of::<base::A>(), fingerprint_of::<base::B>());
    // A change in B, reached from A only through the cycle, changes both.
    assert_ne!(fingerprint_of::<base::A>(), fingerprint_of::<wider::A>());
    assert_ne!(fingerprint_of::<base::B>(), fingerprint_of::<wider::B>());
    assert_eq!(fingerprint_of::<base::A>(), fingerprint_of::<copy::A>());
}

#[test]
fn equal_layouts_fingerprint_equal_whatever_was_built_before() {
    // Other (unreachable) types first: every index differs from `schema_of`'s.
    let mut b = SchemaBuilder::default();
    b.add::<Shape>();
    b.add::<HashMap<String, u64>>();
    let root = b.add::<copy::B>();
    let doc = b.finish(root);
    assert_ne!(doc.types, schema_of::<base::B>().types);
    assert_eq!(doc.fingerprint(), fingerprint_of::<base::B>());
    // And the doc a reader decodes from the header gives the same value.
    assert_eq!(SchemaDoc::decode(&doc.encode()).unwrap().fingerprint(), doc.fingerprint());
}

/// `doc` with type `i` moved to `perm[i]` and every reference renamed.
fn relabel(doc: &SchemaDoc, perm: &[TypeIndex]) -> SchemaDoc {
    let mut types = vec![TypeDesc::placeholder(); doc.types.len()];
    for (i, t) in doc.types.iter().enumerate() {
        let mut t = t.clone();
        let fields = |fs: &mut Vec<Field>| fs.iter_mut().for_each(|f| f.ty = perm[f.ty as usize]);
        match &mut t.kind {
            Kind::Primitive(_) | Kind::String => {}
            Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) => *e = perm[*e as usize],
            Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => (*k, *v) = (perm[*k as usize], perm[*v as usize]),
            Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fields(fs),
            Kind::Enum { variants, .. } => variants.iter_mut().for_each(|v| fields(&mut v.fields)),
        }
        types[perm[i] as usize] = t;
    }
    SchemaDoc { root: perm[doc.root as usize], types }
}

#[test]
fn permuting_the_types_keeps_the_fingerprint() {
    let doc = schema_of::<HashMap<String, (base::A, Shape, BTreeMap<u8, [Option<char>; 2]>)>>();
    let n = doc.types.len() as TypeIndex;
    for perm in [(0..n).rev().collect::<Vec<_>>(), (0..n).map(|i| (i + n / 2) % n).collect()] {
        let moved = relabel(&doc, &perm);
        moved.validate().unwrap();
        assert_ne!(moved.types, doc.types);
        assert_eq!(moved.fingerprint(), doc.fingerprint());
    }
}

#[test]
fn any_reachable_layout_change_changes_the_fingerprint() {
    let doc = schema_of::<(base::A, Shape, [u16; 3])>();
    let fp = doc.fingerprint();
    for i in 0..doc.types.len() {
        let mut d = doc.clone();
        d.types[i].size += 1;
        assert_ne!(d.fingerprint(), fp, "size of {}", doc.types[i].name);
        let mut d = doc.clone();
        d.types[i].align *= 2;
        assert_ne!(d.fingerprint(), fp, "align of {}", doc.types[i].name);
    }
    // An unreachable type does not count.
    let mut d = doc.clone();
    d.types.push(TypeDesc::placeholder());
    assert_eq!(d.fingerprint(), fp);
}

/// Fingerprints are compared across builds and versions: a change to the
/// scheme (record order, kind codes, the numbering) makes every existing
/// object refuse new readers. Change this value only on purpose.
#[test]
fn fingerprint_scheme_is_stable() {
    let fp = fingerprint_of::<(Shape, Option<Vec<HashMap<String, [i16; 2]>>>)>();
    assert_eq!(fp, 0x3577_8c4d_b609_1e72, "{fp:#018x}");
}
