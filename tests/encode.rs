//! The schema-driven encoder (`dynamic::encode`) against rkyv itself: a typed
//! value, archived by rkyv, decoded to a `Value` from its schema alone and
//! encoded again gives rkyv's own bytes (every kind but hash maps, whose
//! bytes depend on the Rust map's random iteration order), and in every case
//! bytes that `rkyv::access` validates and that deserialize to the value.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::{NonZeroI64, NonZeroU16, NonZeroU8};
use std::ops::{Range, RangeInclusive};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use shmstate::dynamic::{self, Fields, Value};
use shmstate::schema::{schema_of, Schema};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Marker;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Meters(f64);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Named { w: u32, label: Option<String> },
}

#[shmstate::shared]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord, Hash))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Side {
    Left,
    Right,
    Up = 7,
}

#[shmstate::shared]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord, Hash))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    zone: u8,
    name: String,
}

#[shmstate::shared]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
#[derive(Debug, Clone, PartialEq)]
struct Tree {
    label: String,
    #[rkyv(omit_bounds)]
    children: Vec<Tree>,
}

/// Every kind but hash maps: the encoder must give rkyv's bytes exactly.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct NoHash {
    unit: (),
    flag: bool,
    a_u8: u8,
    a_u16: u16,
    a_u32: u32,
    a_u64: u64,
    a_u128: u128,
    a_usize: usize,
    a_i8: i8,
    a_i16: i16,
    a_i32: i32,
    a_i64: i64,
    a_i128: i128,
    a_isize: isize,
    a_f32: f32,
    a_f64: f64,
    a_char: char,
    nz_u8: NonZeroU8,
    nz_u16: NonZeroU16,
    nz_i64: NonZeroI64,
    empty: String,
    short: String,
    eight: String,
    nine: String,
    long: String,
    boxed_str: Box<str>,
    long_boxed_str: Box<str>,
    arc_str: Arc<str>,
    rc_str: Rc<str>,
    list: Vec<u16>,
    no_items: Vec<u64>,
    strings: Vec<String>,
    some: Option<u8>,
    none: Option<String>,
    nested: Option<Option<Box<u64>>>,
    boxed: Box<u32>,
    boxed_slice: Box<[i8]>,
    deque: VecDeque<String>,
    arc: Arc<String>,
    rc: Rc<u64>,
    arc_slice: Arc<[u8]>,
    rc_slice: Rc<[u16]>,
    array: [u8; 3],
    strings3: [String; 3],
    one: (u8,),
    triple: (u8, String, bool),
    phantom: PhantomData<u32>,
    tree: BTreeMap<i64, bool>,
    char_keys: BTreeMap<char, u8>,
    tree_set: BTreeSet<u32>,
    empty_tree: BTreeMap<String, String>,
    by_side: BTreeMap<Side, Vec<String>>,
    by_key: BTreeMap<Key, u8>,
    duration: Duration,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    ip4: IpAddr,
    sock4: SocketAddrV4,
    sock6: SocketAddrV6,
    sock: SocketAddr,
    range: Range<u32>,
    closed: RangeInclusive<i8>,
    ok: Result<u8, String>,
    err: Result<u8, String>,
    marker: Marker,
    meters: Meters,
    shapes: Vec<Shape>,
    side: Side,
    tree_of: Tree,
}

fn no_hash() -> NoHash {
    NoHash {
        unit: (),
        flag: true,
        a_u8: 255,
        a_u16: 65535,
        a_u32: u32::MAX,
        a_u64: u64::MAX,
        a_u128: u128::MAX,
        a_usize: 1 << 31,
        a_i8: i8::MIN,
        a_i16: i16::MIN,
        a_i32: i32::MIN,
        a_i64: i64::MIN,
        a_i128: i128::MIN,
        a_isize: -(1 << 31),
        a_f32: 1.5,
        a_f64: -0.1,
        a_char: 'λ',
        nz_u8: NonZeroU8::new(200).unwrap(),
        nz_u16: NonZeroU16::new(4242).unwrap(),
        nz_i64: NonZeroI64::new(i64::MIN).unwrap(),
        empty: String::new(),
        short: "abc".into(),
        eight: "12345678".into(),
        nine: "123456789".into(),
        long: "a string longer than eight bytes, ünïcödé".into(),
        boxed_str: "short".into(),
        long_boxed_str: "a boxed str longer than eight bytes".into(),
        arc_str: "arc str".into(),
        rc_str: "rc str".into(),
        list: vec![1, 2, 3],
        no_items: Vec::new(),
        strings: vec!["x".into(), "a longer element string".into(), String::new()],
        some: Some(4),
        none: None,
        nested: Some(Some(Box::new(9))),
        boxed: Box::new(5),
        boxed_slice: vec![-1, 0, 1].into_boxed_slice(),
        deque: VecDeque::from(["front".to_owned(), "back of the queue".to_owned()]),
        arc: Arc::new("arc".into()),
        rc: Rc::new(0x0102_0304_0506_0708),
        arc_slice: Arc::from([9u8, 8, 7]),
        rc_slice: Rc::from([1u16, 65535]),
        array: [10, 20, 30],
        strings3: ["a".into(), "bbbbbbbbbbbbbbbbbbb".into(), "c".into()],
        one: (1,),
        triple: (8, "eight and more".into(), false),
        phantom: PhantomData,
        tree: (-40..60).map(|i| (i * 3, i % 2 == 0)).collect(),
        char_keys: BTreeMap::from([('a', 1), ('λ', 2), ('Z', 3)]),
        tree_set: (0..12).map(|i| i * 7).collect(),
        empty_tree: BTreeMap::new(),
        by_side: BTreeMap::from([
            (Side::Up, vec!["up".into()]),
            (Side::Left, vec![]),
            (Side::Right, vec!["r".into(), "right right right".into()]),
        ]),
        by_key: (0..8u8).map(|i| (Key { zone: i % 3, name: format!("key number {i}") }, i)).collect(),
        duration: Duration::new(90_000_000_123, 456_789_012),
        v4: Ipv4Addr::new(192, 168, 1, 20),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42),
        ip4: IpAddr::V4(Ipv4Addr::LOCALHOST),
        sock4: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080),
        sock6: SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 22, 0, 7),
        sock: SocketAddr::from(([127, 0, 0, 1], 18080)),
        range: 3..17,
        closed: -1..=127,
        ok: Ok(1),
        err: Err("nope".into()),
        marker: Marker,
        meters: Meters(2.5),
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.0),
            Shape::Rect(3, 4),
            Shape::Named { w: 5, label: Some("five is a number".into()) },
        ],
        side: Side::Up,
        tree_of: Tree {
            label: "root of the tree".into(),
            children: vec![
                Tree { label: "a".into(), children: vec![] },
                Tree { label: "b".into(), children: vec![Tree { label: "leaf leaf leaf".into(), children: vec![] }] },
            ],
        },
    }
}

fn rkyv_bytes<T>(v: &T) -> AlignedVec
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, RkyvError>,
    >,
{
    rkyv::to_bytes::<RkyvError>(v).unwrap()
}

fn aligned(bytes: &[u8]) -> AlignedVec {
    let mut a = AlignedVec::with_capacity(bytes.len());
    a.extend_from_slice(bytes);
    a
}

/// rkyv's bytes → `Value` (schema only) → encoder: the encoder's bytes.
fn re_encode<T: Schema>(original: &[u8]) -> Vec<u8> {
    let schema = schema_of::<T>();
    let value = dynamic::decode(&schema, original).unwrap();
    let bytes = dynamic::encode(&schema, &value).unwrap();
    dynamic::validate(&schema, &bytes, dynamic::Limits::default()).unwrap();
    assert_eq!(dynamic::decode(&schema, &bytes).unwrap(), value);
    bytes
}

/// The first differing byte, for a readable failure.
fn assert_same_bytes(ours: &[u8], theirs: &[u8]) {
    if let Some(i) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
        panic!("first difference at byte {i} of {} (ours {} bytes)", theirs.len(), ours.len());
    }
    assert_eq!(ours.len(), theirs.len(), "same prefix, other lengths");
}

#[test]
fn every_kind_but_hash_maps_encodes_to_rkyvs_own_bytes() {
    let v = no_hash();
    let theirs = rkyv_bytes(&v);
    let ours = re_encode::<NoHash>(&theirs);
    assert_same_bytes(&ours, &theirs);
    let back: NoHash = rkyv::from_bytes::<NoHash, RkyvError>(&aligned(&ours)).unwrap();
    assert_eq!(back, v);
}

#[test]
fn btrees_of_every_height_encode_to_rkyvs_own_bytes() {
    // 0, a leaf, a full leaf, the first inner node, full levels and past them.
    for n in [0usize, 1, 4, 5, 6, 7, 11, 12, 35, 36, 37, 100, 215, 216, 217, 1000, 1296, 1500] {
        let map: BTreeMap<u32, String> = (0..n as u32).map(|i| (i * 2, format!("value {i}"))).collect();
        let theirs = rkyv_bytes(&map);
        assert_same_bytes(&re_encode::<BTreeMap<u32, String>>(&theirs), &theirs);
        let set: BTreeSet<(u8, u64)> = (0..n as u64).map(|i| ((i % 7) as u8, i)).collect();
        let theirs = rkyv_bytes(&set);
        assert_same_bytes(&re_encode::<BTreeSet<(u8, u64)>>(&theirs), &theirs);
    }
}

#[test]
fn vectors_of_every_alignment_encode_to_rkyvs_own_bytes() {
    type Mixed = (u8, Vec<u8>, Vec<u64>, Vec<u128>, Option<Vec<u16>>, Vec<Vec<u32>>, Vec<()>, (Box<u8>, Vec<Box<u64>>));
    let v: Mixed = (
        1,
        vec![1, 2, 3],
        vec![],
        vec![u128::MAX, 1],
        Some(vec![]),
        vec![vec![], vec![1], vec![2, 3]],
        vec![(), ()],
        (Box::new(7), vec![Box::new(1), Box::new(2)]),
    );
    let theirs = rkyv_bytes(&v);
    assert_same_bytes(&re_encode::<Mixed>(&theirs), &theirs);
}

/// The `Value` of a typed value, as the decoder gives it.
fn value_of<T>(v: &T) -> (shmstate::schema::SchemaDoc, Value)
where
    T: Schema
        + for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, RkyvError>,
        >,
{
    let schema = schema_of::<T>();
    let value = dynamic::decode(&schema, &rkyv_bytes(v)).unwrap();
    (schema, value)
}

#[test]
fn hash_maps_and_sets_read_back_with_working_lookups() {
    for n in [0u32, 1, 2, 6, 7, 8, 14, 15, 16, 17, 100, 1000] {
        let strings: HashMap<String, u32> = (0..n).map(|i| (format!("key {i}"), i)).collect();
        let (schema, value) = value_of(&strings);
        let bytes = aligned(&dynamic::encode(&schema, &value).unwrap());
        let archived = rkyv::access::<rkyv::Archived<HashMap<String, u32>>, RkyvError>(&bytes).unwrap();
        assert_eq!(archived.len(), n as usize);
        for (k, v) in &strings {
            assert_eq!(archived.get(k.as_str()).map(|x| x.to_native()), Some(*v), "lookup of {k:?} with {n} keys");
        }
        assert!(archived.get("absent").is_none());
        assert_eq!(rkyv::from_bytes::<HashMap<String, u32>, RkyvError>(&bytes).unwrap(), strings);

        let ints: HashSet<i64> = (0..i64::from(n)).map(|i| i * 1_000_003 - 500).collect();
        let (schema, value) = value_of(&ints);
        let bytes = aligned(&dynamic::encode(&schema, &value).unwrap());
        let archived = rkyv::access::<rkyv::Archived<HashSet<i64>>, RkyvError>(&bytes).unwrap();
        for k in &ints {
            assert!(archived.contains(&rkyv::rend::i64_le::from_native(*k)), "lookup of {k} with {n} keys");
        }
        assert_eq!(rkyv::from_bytes::<HashSet<i64>, RkyvError>(&bytes).unwrap(), ints);
    }
}

#[test]
fn a_one_entry_hash_map_is_rkyvs_own_bytes() {
    // One entry leaves rkyv no iteration order to differ in: same hash, same bucket.
    fn same<K, V>(map: HashMap<K, V>)
    where
        HashMap<K, V>: Schema
            + for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, RkyvError>,
            >,
    {
        let theirs = rkyv_bytes(&map);
        assert_same_bytes(&re_encode::<HashMap<K, V>>(&theirs), &theirs);
    }
    same(HashMap::from([("a key longer than eight".to_owned(), 1u8)]));
    same(HashMap::from([(u8::MAX, ())]));
    same(HashMap::from([(-3i16, 'x')]));
    same(HashMap::from([(-3isize, 1usize)]));
    same(HashMap::from([(u128::MAX - 5, 0u8)]));
    same(HashMap::from([(true, 0u8)]));
    same(HashMap::from([('λ', 0u8)]));
    same(HashMap::from([(Box::<str>::from("boxed"), 0u8)]));
    same(HashMap::from([((7u32, "t".to_owned()), 0u8)]));
    same(HashMap::from([(Some(3u64), 0u8)]));
    same(HashMap::from([(Key { zone: 2, name: "k".into() }, 0u8)]));
    same(HashMap::from([(Side::Up, 0u8)]));
    same(HashMap::from([(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 0u8)]));
    same(HashMap::from([(IpAddr::V6(Ipv6Addr::LOCALHOST), 0u8)]));
    same(HashMap::from([(SocketAddr::from(([1, 1, 1, 1], 53)), 0u8)]));
}

type Inner = HashMap<u16, BTreeMap<u16, (u8, i64)>>;

#[test]
fn maps_with_every_supported_key_type_deserialize_to_the_original() {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    struct Maps {
        by_side: HashMap<Side, String>,
        by_key: HashMap<Key, Vec<u8>>,
        by_ip: HashMap<IpAddr, u16>,
        by_addr: HashMap<SocketAddr, String>,
        by_pair: HashMap<(u8, String), u8>,
        nested: HashMap<String, Inner>,
        empty: HashMap<u8, u8>,
    }
    let v = Maps {
        by_side: HashMap::from([(Side::Left, "l".into()), (Side::Up, "up up up up up".into())]),
        by_key: (0..20u8).map(|i| (Key { zone: i, name: format!("name {i}") }, vec![i; i as usize])).collect(),
        by_ip: HashMap::from([(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 1), (IpAddr::V6(Ipv6Addr::LOCALHOST), 2)]),
        by_addr: HashMap::from([(SocketAddr::from(([1, 1, 1, 1], 53)), "dns".into())]),
        by_pair: (0..30u8).map(|i| ((i, format!("p{i}")), i)).collect(),
        nested: (0..5)
            .map(|i| {
                let inner = (0..i).map(|j| (j, (0..j).map(|x| (x, (x as u8, -(x as i64)))).collect())).collect();
                (format!("outer {i}"), inner)
            })
            .collect(),
        empty: HashMap::new(),
    };
    let (schema, value) = value_of(&v);
    let bytes = aligned(&dynamic::encode(&schema, &value).unwrap());
    assert_eq!(rkyv::from_bytes::<Maps, RkyvError>(&bytes).unwrap(), v);
    let archived = rkyv::access::<rkyv::Archived<Maps>, RkyvError>(&bytes).unwrap();
    for (k, want) in &v.by_key {
        let got = archived
            .by_key
            .get_with(k, |q: &Key, a: &rkyv::Archived<Key>| q.zone == a.zone && q.name == a.name.as_str());
        assert_eq!(got.map(|x| x.as_slice().to_vec()).as_ref(), Some(want));
    }
}

#[test]
fn values_that_do_not_fit_the_schema_are_errors_naming_the_path() {
    let (schema, value) = value_of(&no_hash());
    let Value::Struct { name, fields: Fields::Named(mut fields) } = value else { panic!("not a struct") };
    let set = |fields: &mut Vec<(String, Value)>, field: &str, v: Value| {
        fields.iter_mut().find(|(n, _)| n == field).unwrap().1 = v;
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("a_u8", Value::U64(256), "at .a_u8: 256 is out of range for u8"),
        ("a_i8", Value::I64(-129), "at .a_i8: -129 is out of range for i8"),
        ("a_u64", Value::I64(-1), "at .a_u64: -1 is out of range for u64"),
        ("nz_u8", Value::U64(0), "at .nz_u8: NonZeroU8 cannot be zero"),
        ("flag", Value::U64(1), "at .flag: expected a bool for bool, found the integer 1"),
        ("array", Value::Seq(vec![Value::U64(1)]), "at .array: [u8; 3] needs 3 elements, found 1"),
        (
            "strings",
            Value::Seq(vec![Value::U64(1)]),
            "at .strings[0]: expected a string for String, found the integer 1",
        ),
        (
            "side",
            Value::Enum { name: "Side".into(), variant: "Down".into(), fields: Fields::Unit },
            "at .side: Side has no variant \"Down\" (variants: Left, Right, Up)",
        ),
        (
            "shapes",
            Value::Seq(vec![Value::Enum {
                name: "Shape".into(),
                variant: "Rect".into(),
                fields: Fields::Tuple(vec![Value::U64(1)]),
            }]),
            "at .shapes[0]: Shape::Rect has 2 fields, found 1",
        ),
        (
            "duration",
            Value::Struct {
                name: "Duration".into(),
                fields: Fields::Named(vec![
                    ("secs".into(), Value::U64(1)),
                    ("nanos".into(), Value::U64(1_000_000_000)),
                ]),
            },
            "at .duration.nanos: 1000000000 is out of range for Duration nanoseconds (at most 999 999 999)",
        ),
    ];
    for (field, bad, want) in cases {
        let mut f = fields.clone();
        set(&mut f, field, bad);
        let err =
            dynamic::encode(&schema, &Value::Struct { name: name.clone(), fields: Fields::Named(f) }).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    fields.retain(|(n, _)| n != "flag");
    let err = dynamic::encode(&schema, &Value::Struct { name: name.clone(), fields: Fields::Named(fields.clone()) })
        .unwrap_err();
    assert_eq!(err.to_string(), "missing field \"flag\" of NoHash");
    fields.push(("flag".into(), Value::Bool(true)));
    fields.push(("extra".into(), Value::Unit));
    let err = dynamic::encode(&schema, &Value::Struct { name, fields: Fields::Named(fields) }).unwrap_err();
    assert!(err.to_string().starts_with("NoHash has no field \"extra\""), "{err}");
}

#[test]
fn duplicate_map_keys_and_unsupported_hash_keys_are_errors() {
    let schema = schema_of::<BTreeMap<u8, u8>>();
    let dup = Value::Map(vec![(Value::U64(1), Value::U64(1)), (Value::U64(1), Value::U64(2))]);
    assert_eq!(dynamic::encode(&schema, &dup).unwrap_err().to_string(), "the key 1 appears twice");
    let schema = schema_of::<HashMap<u8, u8>>();
    assert!(dynamic::encode(&schema, &dup).unwrap_err().to_string().contains("appears twice"));
    let schema = schema_of::<HashMap<Vec<u8>, u8>>();
    let v = Value::Map(vec![(Value::Seq(vec![]), Value::U64(1))]);
    let err = dynamic::encode(&schema, &v).unwrap_err().to_string();
    assert!(err.contains("hash map keys of type Vec<u8> are not supported by the encoder yet"), "{err}");
}

fn tree_strategy() -> impl Strategy<Value = Tree> {
    let leaf = ".{0,12}".prop_map(|label| Tree { label, children: vec![] });
    leaf.prop_recursive(4, 32, 4, |inner| {
        (".{0,12}", prop::collection::vec(inner, 0..4)).prop_map(|(label, children)| Tree { label, children })
    })
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Random {
    texts: Vec<String>,
    tree: BTreeMap<String, Option<i32>>,
    hashed: HashMap<u64, String>,
    set: HashSet<String>,
    nodes: Tree,
    pairs: Vec<(u8, Option<Box<str>>)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_values_round_trip(
        texts in prop::collection::vec(".{0,20}", 0..8),
        tree in prop::collection::btree_map(".{0,10}", prop::option::of(any::<i32>()), 0..60),
        hashed in prop::collection::hash_map(any::<u64>(), ".{0,10}", 0..60),
        set in prop::collection::hash_set(".{0,10}", 0..40),
        nodes in tree_strategy(),
        pairs in prop::collection::vec((any::<u8>(), prop::option::of(".{0,12}".prop_map(Box::<str>::from))), 0..6),
    ) {
        let v = Random { texts, tree, hashed, set, nodes, pairs };
        let (schema, value) = value_of(&v);
        let bytes = aligned(&dynamic::encode(&schema, &value).unwrap());
        let back = rkyv::from_bytes::<Random, RkyvError>(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        let archived = rkyv::access::<rkyv::Archived<Random>, RkyvError>(&bytes).unwrap();
        for (k, s) in &v.hashed {
            prop_assert_eq!(archived.hashed.get(&rkyv::rend::u64_le::from_native(*k)).map(|x| x.as_str()), Some(s.as_str()));
        }
        for s in &v.set {
            prop_assert!(archived.set.contains(s.as_str()));
        }
        if v.hashed.is_empty() && v.set.is_empty() {
            let theirs = rkyv_bytes(&v);
            assert_same_bytes(&bytes, &theirs);
        }
    }
}

mod common;

#[test]
fn publish_value_into_an_existing_object_is_read_by_a_typed_reader() {
    let name = common::TestName::new("encode-publish");
    let mut w = shmstate::Writer::<NoHash>::create(name.as_str()).unwrap();
    w.publish(&no_hash()).unwrap();
    drop(w);
    // Another value, as the dynamic decoder gives it, changed a little.
    let mut changed = no_hash();
    changed.short = "changed".into();
    changed.tree.insert(1_000, true);
    let (_, value) = value_of(&changed);
    let mut raw = shmstate::RawWriter::options().open_existing_raw(name.as_str()).unwrap();
    assert_eq!(raw.schema(), &schema_of::<NoHash>());
    let g = raw.publish_value(&value).unwrap();
    assert_eq!(g.get(), 2);
    let mut r = shmstate::Reader::<NoHash>::open(name.as_str()).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(rkyv::deserialize::<NoHash, RkyvError>(&*snap).unwrap(), changed);
    // A value of another shape is refused and publishes nothing.
    let err = raw.publish_value(&Value::U64(1)).unwrap_err().to_string();
    assert!(err.contains("expected the struct NoHash, found the integer 1"), "{err}");
    assert_eq!(raw.next_generation().get(), 3);
}

#[test]
fn a_schema_survives_its_json_file_and_bad_files_are_refused() {
    let schema = schema_of::<NoHash>();
    let back = shmstate::schema::SchemaDoc::from_json(&schema.to_json()).unwrap();
    assert_eq!(back, schema);
    assert_eq!(back.fingerprint(), schema.fingerprint());
    let broken = schema.to_json().replacen("\"root\": ", "\"root\": 9999", 1);
    assert!(shmstate::schema::SchemaDoc::from_json(&broken).is_err());
    assert!(shmstate::schema::SchemaDoc::from_json("[]").unwrap_err().to_string().contains("not a schema file"));
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct EmptyShared {
    blob: Arc<[u8]>,
    note: Rc<String>,
}

#[test]
fn an_empty_shared_slice_takes_a_byte_as_rkyvs_does() {
    // rkyv pads a byte after a shared target that took none, so that the
    // string's target does not start where the empty slice's does (the
    // validators would take them for one target of two types and refuse).
    let v = EmptyShared { blob: Arc::from([]), note: Rc::new("x".into()) };
    let theirs = rkyv_bytes(&v);
    assert_same_bytes(&re_encode::<EmptyShared>(&theirs), &theirs);
    let v = (Arc::<[u8]>::from([]), Rc::<str>::from(""), Arc::new(()), Rc::new(1u8));
    let theirs = rkyv_bytes(&v);
    assert_same_bytes(&re_encode::<(Arc<[u8]>, Rc<str>, Arc<()>, Rc<u8>)>(&theirs), &theirs);
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Numbers {
    u8s: Vec<u8>,
    u16s: Vec<u16>,
    u32s: Vec<u32>,
    u64s: Vec<u64>,
    u128s: Vec<u128>,
    i8s: Vec<i8>,
    i16s: Vec<i16>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    i128s: Vec<i128>,
    f32s: Vec<f32>,
    f64s: Vec<f64>,
    bools: Vec<bool>,
    chars: Vec<char>,
    nonzero: Vec<NonZeroU16>,
    boxed: Box<[u32]>,
    empty: Vec<f64>,
}

fn numbers() -> Numbers {
    Numbers {
        u8s: (0..=255).collect(),
        u16s: vec![0, 1, u16::MAX],
        u32s: vec![0, 7, u32::MAX],
        u64s: vec![0, u64::MAX],
        u128s: vec![0, u128::MAX],
        i8s: vec![i8::MIN, -1, 0, i8::MAX],
        i16s: vec![i16::MIN, i16::MAX],
        i32s: vec![i32::MIN, -7, i32::MAX],
        i64s: vec![i64::MIN, i64::MAX],
        i128s: vec![i128::MIN, i128::MAX],
        f32s: vec![0.5, -1.25, f32::MAX, f32::MIN_POSITIVE],
        f64s: (0..1000).map(|i| f64::from(i) * 0.1 - 3.0).collect(),
        bools: vec![true, false, true],
        chars: vec!['a', 'é', '🦀'],
        nonzero: vec![NonZeroU16::new(1).unwrap(), NonZeroU16::MAX],
        boxed: vec![1, 2, 3].into_boxed_slice(),
        empty: vec![],
    }
}

/// Vectors of every primitive (the encoder's and `from_json`'s fast path):
/// rkyv's own bytes, straight from the `Value` and through its JSON form.
#[test]
fn numeric_vectors_of_every_type_encode_to_rkyvs_own_bytes_and_round_trip_through_json() {
    let original = numbers();
    let theirs = rkyv_bytes(&original);
    let (schema, value) = value_of(&original);
    assert_same_bytes(&dynamic::encode(&schema, &value).unwrap(), &theirs);
    let json = serde_json::to_value(&value).unwrap();
    let from_json = dynamic::from_json(&schema, &json).unwrap();
    let ours = dynamic::encode(&schema, &from_json).unwrap();
    assert_same_bytes(&ours, &theirs);
    let back = rkyv::from_bytes::<Numbers, RkyvError>(&aligned(&ours)).unwrap();
    assert_eq!(back, original);
}

/// An element that does not fit its vector's type is an error naming its
/// index, from the `Value` and from JSON; nothing else is.
#[test]
fn a_numeric_element_that_does_not_fit_is_an_error_naming_its_index() {
    let (schema, value) = value_of(&numbers());
    let mut json = serde_json::to_value(&value).unwrap();
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("u8s", serde_json::json!([1, 2, 256]), "at .u8s[2]: 256 is out of range for u8"),
        ("u8s", serde_json::json!([1, 2.5]), "at .u8s[1]: expected an integer for u8, found 2.5"),
        ("i16s", serde_json::json!([0, -40000]), "at .i16s[1]: -40000 is out of range for i16"),
        ("f64s", serde_json::json!([1.0, "x"]), "at .f64s[1]: expected a number"),
        ("nonzero", serde_json::json!([3, 0]), "at .nonzero[1]: NonZeroU16 cannot be zero"),
        ("bools", serde_json::json!([true, 1]), "at .bools[1]: expected true or false"),
    ];
    for (field, bad, want) in cases {
        let good = json[field].clone();
        json[field] = bad;
        let err = dynamic::from_json(&schema, &json).unwrap_err().to_string();
        assert!(err.starts_with(want), "{field}: {err}");
        json[field] = good;
    }
    // The encoder checks each element too (a `Value` built by hand).
    let Value::Struct { name, fields: Fields::Named(mut fields) } = value else { panic!("not a struct") };
    let set = |fields: &mut Vec<(String, Value)>, field: &str, v: Value| {
        fields.iter_mut().find(|(n, _)| n == field).unwrap().1 = v;
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("u16s", Value::Seq(vec![Value::U64(1), Value::U64(70_000)]), "at .u16s[1]: 70000 is out of range for u16"),
        ("f32s", Value::Seq(vec![Value::F64(1.0), Value::Bool(true)]), "at .f32s[1]: expected a number for f32"),
        ("i8s", Value::Seq(vec![Value::String("x".into())]), "at .i8s[0]: expected an integer"),
        ("chars", Value::Seq(vec![Value::Char('a'), Value::String("ab".into())]), "at .chars[1]: expected a char"),
    ];
    for (field, bad, want) in cases {
        let mut broken = fields.clone();
        set(&mut broken, field, bad);
        let v = Value::Struct { name: name.clone(), fields: Fields::Named(broken) };
        let err = dynamic::encode(&schema, &v).unwrap_err().to_string();
        assert!(err.starts_with(want), "{field}: {err}");
    }
    set(&mut fields, "u8s", Value::Seq(vec![Value::U64(9)]));
    assert!(dynamic::encode(&schema, &Value::Struct { name, fields: Fields::Named(fields) }).is_ok());
}
