//! The decoder against real rkyv bytes of derived types, hostile bytes, the
//! limits, the text form, and the reader on a real object.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use proptest::prelude::*;

use super::*;
use crate::schema::schema_of;

#[crate::shared(crate = crate)]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[repr(u16)]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
enum Wide {
    A = 3,
    B {
        #[rkyv(omit_bounds)]
        x: Option<Box<Wide>>,
        y: [u8; 4],
    },
    C(HashMap<u32, BTreeMap<u16, (u8, i64)>>),
}

#[crate::shared(crate = crate)]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Node {
    label: String,
    #[rkyv(omit_bounds)]
    children: Vec<Node>,
    keyed: BTreeMap<Side, String>,
}

#[crate::shared(crate = crate)]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
enum Side {
    Left,
    Right,
}

#[crate::shared(crate = crate)]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Small {
    id: u8,
    big: u128,
    name: String,
    pair: (i32, char),
    tag: Option<Box<Side>>,
    by_id: HashMap<u16, f64>,
}

fn bytes<T>(v: &T) -> rkyv::util::AlignedVec
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::Error,
        >,
    >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(v).unwrap()
}

fn leaf(s: &str) -> Node {
    Node { label: s.into(), children: vec![], keyed: BTreeMap::new() }
}

fn sample() -> Node {
    Node {
        label: "root node with a long label".into(),
        children: vec![leaf("a"), Node { label: "b".into(), children: vec![leaf("c")], keyed: BTreeMap::new() }],
        keyed: BTreeMap::from([(Side::Left, "l".into()), (Side::Right, "r".into())]),
    }
}

fn small() -> Small {
    Small {
        id: 7,
        big: u128::MAX,
        name: "seven".into(),
        pair: (-1, 'λ'),
        tag: Some(Box::new(Side::Right)),
        by_id: HashMap::from([(20, 0.5), (3, -1.0), (11, 2.0)]),
    }
}

fn unit_variant(name: &str, variant: &str) -> Value {
    Value::Enum { name: name.into(), variant: variant.into(), fields: Fields::Unit }
}

#[test]
fn decodes_to_the_shape_of_the_original() {
    let doc = schema_of::<Small>();
    let got = decode(&doc, &bytes(&small())).unwrap();
    let expected = Value::Struct {
        name: "Small".into(),
        fields: Fields::Named(vec![
            ("id".into(), Value::U64(7)),
            ("big".into(), Value::U128(u128::MAX)),
            ("name".into(), Value::String("seven".into())),
            ("pair".into(), Value::Tuple(vec![Value::I64(-1), Value::Char('λ')])),
            // `Box<T>` decodes to the `T`.
            ("tag".into(), Value::Option(Some(Box::new(unit_variant("Side", "Right"))))),
            // Hash-map entries come sorted by key, whatever the bucket order.
            (
                "by_id".into(),
                Value::Map(vec![
                    (Value::U64(3), Value::F64(-1.0)),
                    (Value::U64(11), Value::F64(2.0)),
                    (Value::U64(20), Value::F64(0.5)),
                ]),
            ),
        ]),
    };
    assert_eq!(got, expected);
}

#[test]
fn display_is_rust_like_and_wraps_with_alternate() {
    let doc = schema_of::<Small>();
    let v = decode(&doc, &bytes(&small())).unwrap();
    let line = format!("{v}");
    assert_eq!(
        line,
        "Small { id: 7, big: 340282366920938463463374607431768211455, name: \"seven\", pair: (-1, 'λ'), \
         tag: Some(Right), by_id: {3: -1.0, 11: 2.0, 20: 0.5} }"
    );
    let wrapped = format!("{v:#}");
    assert!(wrapped.starts_with("Small {\n    id: 7,\n    big: 3402823669"), "{wrapped}");
    assert!(wrapped.ends_with("    by_id: {3: -1.0, 11: 2.0, 20: 0.5},\n}"), "{wrapped}");
    assert!(wrapped.lines().all(|l| l.chars().count() <= 100), "{wrapped}");
    assert_eq!(format!("{}", Value::Tuple(vec![Value::Unit])), "((),)");
}

#[test]
fn round_trips_recursive_and_wide_tag_types() {
    let doc = schema_of::<Node>();
    let got = decode(&doc, &bytes(&sample())).unwrap();
    let Value::Struct { fields: Fields::Named(fields), .. } = &got else { panic!("{got:?}") };
    assert_eq!(
        fields[2].1,
        Value::Map(vec![
            (unit_variant("Side", "Left"), Value::String("l".into())),
            (unit_variant("Side", "Right"), Value::String("r".into())),
        ])
    );
    let w =
        Wide::B { x: Some(Box::new(Wide::C(HashMap::from([(7, BTreeMap::from([(1, (2, -3))]))])))), y: [1, 2, 3, 4] };
    let doc = schema_of::<Wide>();
    let got = decode(&doc, &bytes(&w)).unwrap();
    assert_eq!(format!("{got}"), "B { x: Some(C({7: {1: (2, -3)}})), y: [1, 2, 3, 4] }");
    assert_eq!(decode(&doc, &bytes(&Wide::A)).unwrap(), unit_variant("Wide", "A"));
}

#[cfg(feature = "serde")]
#[test]
fn serializes_like_serde_derive_on_the_original() {
    let v = sample();
    assert_eq!(
        serde_json::to_value(decode(&schema_of::<Node>(), &bytes(&v)).unwrap()).unwrap(),
        serde_json::to_value(&v).unwrap()
    );
    let w =
        Wide::B { x: Some(Box::new(Wide::C(HashMap::from([(7, BTreeMap::from([(1, (2, -3))]))])))), y: [1, 2, 3, 4] };
    let doc = schema_of::<Wide>();
    assert_eq!(serde_json::to_value(decode(&doc, &bytes(&w)).unwrap()).unwrap(), serde_json::to_value(&w).unwrap());
    assert_eq!(serde_json::to_value(decode(&doc, &bytes(&Wide::A)).unwrap()).unwrap(), serde_json::json!("A"));

    // serde_json cannot hold a u128 past u64::MAX in a `Value`: a decimal string.
    let mut s = small();
    let got = serde_json::to_value(decode(&schema_of::<Small>(), &bytes(&s)).unwrap()).unwrap();
    assert_eq!(got["big"], serde_json::json!(u128::MAX.to_string()));
    s.big = 5;
    let got = serde_json::to_value(decode(&schema_of::<Small>(), &bytes(&s)).unwrap()).unwrap();
    assert_eq!(got, serde_json::to_value(&s).unwrap());

    // Keys JSON cannot take make a list of pairs.
    let pairs = Value::Map(vec![(Value::Tuple(vec![Value::U64(1), Value::U64(2)]), Value::Bool(true))]);
    assert_eq!(serde_json::to_value(&pairs).unwrap(), serde_json::json!([[[1, 2], true]]));
    // An empty map is an object, as serde_json makes it whatever the key type.
    let empty = BTreeMap::<(u8, u8), u8>::new();
    let got = serde_json::to_value(decode(&schema_of::<BTreeMap<(u8, u8), u8>>(), &bytes(&empty)).unwrap()).unwrap();
    assert_eq!(got, serde_json::to_value(&empty).unwrap());
}

#[test]
fn depth_and_value_limits_are_errors() {
    let mut v = sample();
    for _ in 0..50 {
        v = Node { label: "x".into(), children: vec![v], keyed: BTreeMap::new() };
    }
    let doc = schema_of::<Node>();
    let b = bytes(&v);
    let e = decode_with(&doc, &b, Limits { max_depth: 20, max_values: 1 << 20 }).unwrap_err();
    assert!(e.what.contains("deeper than 20"), "{e}");
    assert!(e.path.starts_with(".children[0].children[0]"), "{e}");
    let e = decode_with(&doc, &b, Limits { max_depth: 1000, max_values: 30 }).unwrap_err();
    assert!(e.what.contains("limit of 30 values") || e.what.contains("more than 30 values"), "{e}");
    assert!(decode(&doc, &b).is_ok());
}

#[test]
fn the_default_depth_fits_a_spawned_threads_stack() {
    // Each wrapping node is two levels (the node, its `Vec`): 63 of them put
    // the innermost label at level 128, the default limit.
    let mut v = leaf("deepest");
    for _ in 0..63 {
        v = Node { label: "x".into(), children: vec![v], keyed: BTreeMap::new() };
    }
    let b = bytes(&v);
    let doc = schema_of::<Node>();
    // 2 MiB: what `std::thread::spawn` gives by default.
    let found = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let value = decode(&doc, &b).unwrap();
            #[cfg(feature = "serde")]
            assert!(serde_json::to_string(&value).unwrap().contains("deepest"));
            let text = format!("{value:#}");
            drop(value);
            text.matches("deepest").count()
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(found, 1);
    let deeper = Node { label: "y".into(), children: vec![v], keyed: BTreeMap::new() };
    let e = decode(&schema_of::<Node>(), &bytes(&deeper)).unwrap_err();
    assert!(e.what.contains("deeper than 128"), "{e}");
}

#[test]
fn errors_are_specific() {
    let doc = schema_of::<Option<bool>>();
    assert!(decode(&doc, &[7, 1]).unwrap_err().what.contains("invalid tag 7 for Option<bool>"));
    assert!(decode(&doc, &[1, 9]).unwrap_err().what.contains("invalid bool byte 0x09"));
    assert!(decode(&doc, &[1]).unwrap_err().what.contains("too few for its root"));
    let doc = schema_of::<Vec<u32>>();
    let mut b = bytes(&vec![1u32, 2, 3]).to_vec();
    let n = b.len();
    b[n - 8..n - 4].copy_from_slice(&(-1000i32).to_le_bytes());
    let e = decode(&doc, &b).unwrap_err();
    assert!(e.what.contains("points outside the snapshot"), "{e}");
    b[n - 8..n - 4].copy_from_slice(&(-(n as i32) + 9).to_le_bytes());
    let e = decode(&doc, &b).unwrap_err();
    assert!(e.what.contains("not aligned to 4") || e.what.contains("outside"), "{e}");
}

/// Plain-number sequences (checked as one range by `validate`) beside ones
/// whose elements have invalid bit patterns.
#[crate::shared(crate = crate)]
#[derive(Debug, Clone, PartialEq)]
struct Numbers {
    xs: Vec<u64>,
    fs: [f32; 3],
    flags: Vec<bool>,
    cs: Vec<char>,
}

fn numbers() -> Numbers {
    Numbers { xs: (0..40).collect(), fs: [1.0, 2.5, -3.0], flags: vec![true, false, true], cs: vec!['a', 'é'] }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `validate` accepts exactly the snapshots `decode` accepts.
    #[test]
    fn validate_agrees_with_decode(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in 0usize..64) {
        let w = Wide::B { x: Some(Box::new(Wide::C((0..20).map(|i| (i, BTreeMap::from([(i as u16, (1, 2))]))).collect()))), y: [0; 4] };
        for (doc, mut b) in [(schema_of::<Numbers>(), bytes(&numbers()).to_vec()), (schema_of::<Wide>(), bytes(&w).to_vec()), (schema_of::<Small>(), bytes(&small()).to_vec())] {
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] = *x;
            }
            b.truncate(b.len().saturating_sub(cut % 3 * (cut / 3)));
            let limits = Limits { max_depth: 64, max_values: 1 << 40 };
            let decoded = decode_with(&doc, &b, limits).map(drop);
            prop_assert_eq!(validate(&doc, &b, limits), decoded);
        }
    }

    /// Whatever the bytes, decoding returns (an error or a value) without
    /// panicking, within the limits.
    #[test]
    fn corrupted_snapshots_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in 0usize..64) {
        let mut v = sample();
        v.keyed = BTreeMap::from([(Side::Left, "left side".into())]);
        let w = Wide::B { x: Some(Box::new(Wide::C((0..20).map(|i| (i, BTreeMap::from([(i as u16, (1, 2))]))).collect()))), y: [0; 4] };
        for (doc, mut b) in [(schema_of::<Node>(), bytes(&v).to_vec()), (schema_of::<Wide>(), bytes(&w).to_vec()), (schema_of::<Small>(), bytes(&small()).to_vec())] {
            for (i, x) in &flips {
                let at = i.index(b.len());
                b[at] = *x;
            }
            b.truncate(b.len().saturating_sub(cut % 3 * (cut / 3)));
            if let Ok(value) = decode_with(&doc, &b, Limits { max_depth: 64, max_values: 100_000 }) {
                let _ = format!("{value:#}");
            }
        }
    }
}

/// A unique object name for this test (pid, counter, test), removed on drop.
struct Name(String);

impl Name {
    fn new(test: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Name(format!("dyn{}-{}-{test}", std::process::id(), NEXT.fetch_add(1, Relaxed)))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = crate::remove(&self.0);
    }
}

#[test]
fn reader_decodes_the_latest_snapshot_and_keeps_no_pin() {
    let name = Name::new("reader");
    let mut w = crate::Writer::<Small>::create(&name.0).unwrap();
    let mut r = Reader::open(&name.0).unwrap();
    assert_eq!(r.schema().root().name, "Small");
    assert!(matches!(r.read(), Err(Error::Read(crate::ReadError::Empty { .. }))));
    let g1 = w.publish(&small()).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.generation, g1);
    assert_eq!(snap.size, bytes(&small()).len());
    assert_eq!(snap.value, decode(&schema_of::<Small>(), &bytes(&small())).unwrap());
    let info = crate::inspect(&name.0).unwrap();
    assert!(info.slots.iter().all(|s| s.pinned_by.is_empty()), "read released its pin: {:?}", info.slots);

    let mut s = small();
    s.id = 8;
    let g2 = w.publish(&s).unwrap();
    assert_eq!(r.wait_newer(g1, std::time::Duration::from_secs(10)).unwrap(), g2);
    let snap = r.read().unwrap();
    assert_eq!(snap.generation, g2);
    assert!(format!("{}", snap.value).starts_with("Small { id: 8,"), "{}", snap.value);
    assert!(r.writer_alive());
}

#[crate::shared(crate = crate)]
#[derive(Debug, Clone, PartialEq)]
struct Texts {
    short: String,
    long: String,
    boxed: Box<str>,
    // A `Box` the cursor looks through, around a string.
    #[allow(clippy::box_collection)]
    wrapped: Box<String>,
    n: u32,
}

/// The fields of a struct root, by name.
fn root_fields(c: &Cursor<'_, '_>) -> Vec<(String, crate::dynamic::Node)> {
    match c.expand(c.root().unwrap()).unwrap() {
        Shape::Struct { fields: NodeFields::Named(f), .. } => f,
        other => panic!("not a struct: {other:?}"),
    }
}

#[test]
fn cursor_text_is_the_string_in_place() {
    let doc = schema_of::<Texts>();
    let v = Texts {
        short: "inline".into(),
        long: "out of line: more than eight bytes".into(),
        boxed: "a boxed str".into(),
        wrapped: Box::new("behind a Box".into()),
        n: 3,
    };
    let b = bytes(&v);
    let c = Cursor::new(&doc, &b, Limits::default());
    let inside = b.as_ptr_range();
    let mut seen = 0;
    for (name, node) in root_fields(&c) {
        let want = match name.as_str() {
            "short" => "inline",
            "long" => &*v.long,
            "boxed" => &*v.boxed,
            "wrapped" => v.wrapped.as_str(),
            _ => {
                assert_eq!(c.text(node).unwrap(), None, "{name} is no string");
                continue;
            }
        };
        let t = c.text(node).unwrap().unwrap_or_else(|| panic!("{name}: no text"));
        assert_eq!(t, want);
        assert!(inside.contains(&t.as_ptr()), "{name} is read in place, not copied");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn cursor_text_refuses_bytes_that_are_not_utf8() {
    let doc = schema_of::<Texts>();
    let v = Texts { short: "inline".into(), long: "x".repeat(20), boxed: "b".into(), wrapped: Box::default(), n: 0 };
    let mut b = bytes(&v).to_vec();
    let at = b.windows(20).position(|w| w == "x".repeat(20).as_bytes()).unwrap();
    b[at + 3] = 0xFF;
    let c = Cursor::new(&doc, &b, Limits::default());
    let long = root_fields(&c).into_iter().find(|(n, _)| n == "long").unwrap().1;
    let e = c.text(long).unwrap_err();
    assert!(e.what.contains("not valid UTF-8"), "{e}");
}

#[test]
fn cursor_field_finds_struct_and_tuple_fields_by_the_schema() {
    let doc = schema_of::<Small>();
    let b = bytes(&small());
    let c = Cursor::new(&doc, &b, Limits::default());
    let root = c.root().unwrap();
    let expanded = root_fields(&c);
    for (name, node) in &expanded {
        assert_eq!(c.field(root, name).unwrap(), Some(*node), "{name}: the node expand gives");
    }
    let pair = c.field(root, "pair").unwrap().unwrap();
    let second = c.field(pair, "1").unwrap().unwrap();
    assert_eq!(c.decode(second).unwrap(), Value::Char('λ'));
    assert_eq!(c.field(root, "nope").unwrap(), None);
    let id = c.field(root, "id").unwrap().unwrap();
    assert_eq!(c.field(id, "x").unwrap(), None, "a number has no fields");
    // A root that does not fit the snapshot is an error, not a read past it.
    let moved = crate::dynamic::Node { ty: root.ty, at: b.len() - 1 };
    assert!(c.field(moved, "id").unwrap_err().what.contains("outside the snapshot"));
}
