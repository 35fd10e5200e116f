//! `dynamic::Value`'s `Serialize` (what `shmstate dump --json` prints) equals
//! `serde_json::to_value` of the original value for every std type shmstate
//! describes, and its `Display` (the text dump) prints addresses, durations
//! and sets as their `Debug` does: each published with a real `Writer`,
//! decoded from the stored schema alone.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128, NonZeroU16, NonZeroU32,
    NonZeroU64, NonZeroU8, NonZeroUsize,
};
use std::ops::{Range, RangeInclusive};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::TestName;
use serde::Serialize;
use serde_json::json;
use shmstate::dynamic::{self, Fields, Value};
use shmstate::Writer;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Marker;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Meters(f64);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Pair(u8, String);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, u32),
    Named { w: u32, label: Option<String> },
}

/// A field of every std type shmstate describes, plus a few nested.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct AllStd {
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
    nz_u32: NonZeroU32,
    nz_u64: NonZeroU64,
    nz_u128: NonZeroU128,
    nz_usize: NonZeroUsize,
    nz_i8: NonZeroI8,
    nz_i16: NonZeroI16,
    nz_i32: NonZeroI32,
    nz_i64: NonZeroI64,
    nz_i128: NonZeroI128,
    nz_isize: NonZeroIsize,
    text: String,
    boxed_str: Box<str>,
    long_boxed_str: Box<str>,
    arc_str: Arc<str>,
    rc_str: Rc<str>,
    list: Vec<u16>,
    some: Option<u8>,
    none: Option<String>,
    boxed: Box<u32>,
    boxed_slice: Box<[i8]>,
    deque: VecDeque<String>,
    arc: Arc<String>,
    rc: Rc<u64>,
    arc_slice: Arc<[u8]>,
    rc_slice: Rc<[u16]>,
    array: [u8; 3],
    one: (u8,),
    triple: (u8, String, bool),
    phantom: PhantomData<u32>,
    map: HashMap<String, i32>,
    int_keys: HashMap<u32, String>,
    tree: BTreeMap<i64, bool>,
    char_keys: BTreeMap<char, u8>,
    set: HashSet<String>,
    int_set: HashSet<u64>,
    tree_set: BTreeSet<u32>,
    empty_set: HashSet<u8>,
    duration: Duration,
    long_duration: Duration,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    mapped: Ipv6Addr,
    ip4: IpAddr,
    ip6: IpAddr,
    sock4: SocketAddrV4,
    sock6: SocketAddrV6,
    scoped: SocketAddrV6,
    sock: SocketAddr,
    sock_v6: SocketAddr,
    range: Range<u32>,
    closed: RangeInclusive<i8>,
    ok: Result<u8, String>,
    err: Result<u8, String>,
    marker: Marker,
    meters: Meters,
    pair: Pair,
    shapes: Vec<Shape>,
    // Nested.
    peers: Vec<SocketAddr>,
    timeouts: HashMap<String, Duration>,
    gateway: Option<IpAddr>,
    no_gateway: Option<IpAddr>,
    outcome: Result<u8, String>,
    by_ip: HashMap<IpAddr, u16>,
    by_addr: HashMap<SocketAddr, String>,
    by_v4: BTreeMap<Ipv4Addr, bool>,
    ranges: Vec<Range<u64>>,
    waits: Option<Box<Duration>>,
    results: Vec<Result<SocketAddr, String>>,
    by_name: HashMap<Box<str>, u8>,
}

fn all_std() -> AllStd {
    AllStd {
        unit: (),
        flag: true,
        a_u8: 255,
        a_u16: 65535,
        a_u32: u32::MAX,
        a_u64: u64::MAX,
        // serde_json::to_value fails past the 64-bit range.
        a_u128: u128::from(u64::MAX),
        a_usize: 1 << 31,
        a_i8: i8::MIN,
        a_i16: i16::MIN,
        a_i32: i32::MIN,
        a_i64: i64::MIN,
        a_i128: i128::from(i64::MIN),
        a_isize: -(1 << 31),
        a_f32: 1.5,
        a_f64: -0.1,
        a_char: 'λ',
        nz_u8: NonZeroU8::new(200).unwrap(),
        nz_u16: NonZeroU16::new(4242).unwrap(),
        nz_u32: NonZeroU32::new(0xDEAD_BEEF).unwrap(),
        nz_u64: NonZeroU64::new(u64::MAX).unwrap(),
        nz_u128: NonZeroU128::new(7).unwrap(),
        nz_usize: NonZeroUsize::new(9).unwrap(),
        nz_i8: NonZeroI8::new(-8).unwrap(),
        nz_i16: NonZeroI16::new(-16).unwrap(),
        nz_i32: NonZeroI32::new(-32).unwrap(),
        nz_i64: NonZeroI64::new(i64::MIN).unwrap(),
        nz_i128: NonZeroI128::new(-128).unwrap(),
        nz_isize: NonZeroIsize::new(-1).unwrap(),
        text: "plain string".into(),
        boxed_str: "short".into(),
        long_boxed_str: "a boxed str longer than eight bytes, ünïcödé".into(),
        arc_str: "arc str".into(),
        rc_str: "rc str".into(),
        list: vec![1, 2, 3],
        some: Some(4),
        none: None,
        boxed: Box::new(5),
        boxed_slice: vec![-1, 0, 1].into_boxed_slice(),
        deque: VecDeque::from(["front".to_owned(), "back".to_owned()]),
        arc: Arc::new("arc".into()),
        rc: Rc::new(0x0102_0304_0506_0708),
        arc_slice: Arc::from([9u8, 8, 7]),
        rc_slice: Rc::from([1u16, 65535]),
        array: [10, 20, 30],
        one: (1,),
        triple: (8, "eight".into(), false),
        phantom: PhantomData,
        map: HashMap::from([("alpha".into(), 1), ("beta".into(), -2)]),
        int_keys: HashMap::from([(3, "three".into()), (11, "eleven".into())]),
        tree: BTreeMap::from([(-5, true), (7, false)]),
        char_keys: BTreeMap::from([('a', 1), ('λ', 2)]),
        set: HashSet::from(["b".into(), "a".into(), "a tag longer than eight bytes".into()]),
        int_set: HashSet::from([30, 1, 200]),
        tree_set: (0..12).map(|i| i * 7).collect(),
        empty_set: HashSet::new(),
        duration: Duration::from_millis(1500),
        long_duration: Duration::new(90_000_000_123, 456_789_012),
        v4: Ipv4Addr::new(192, 168, 1, 20),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42),
        mapped: Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped(),
        ip4: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip6: IpAddr::V6(Ipv6Addr::LOCALHOST),
        sock4: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080),
        sock6: SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 443, 0x0102_0304, 0),
        scoped: SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 22, 0, 7),
        sock: SocketAddr::from(([127, 0, 0, 1], 18080)),
        sock_v6: SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 65535, 9, 0)),
        range: 3..17,
        closed: -1..=127,
        ok: Ok(1),
        err: Err("nope".into()),
        marker: Marker,
        meters: Meters(2.5),
        pair: Pair(7, "seven".into()),
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.0),
            Shape::Rect(3, 4),
            Shape::Named { w: 5, label: Some("five".into()) },
        ],
        peers: vec![SocketAddr::from(([10, 0, 0, 2], 7000)), "[::1]:7001".parse().unwrap()],
        timeouts: HashMap::from([("connect".into(), Duration::from_secs(3)), ("idle".into(), Duration::from_nanos(7))]),
        gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254))),
        no_gateway: None,
        outcome: Err("timed out".into()),
        by_ip: HashMap::from([(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)), 1), (IpAddr::V6(Ipv6Addr::LOCALHOST), 2)]),
        by_addr: HashMap::from([(SocketAddr::from(([1, 1, 1, 1], 53)), "dns".into())]),
        by_v4: BTreeMap::from([(Ipv4Addr::new(8, 8, 8, 8), true), (Ipv4Addr::new(9, 9, 9, 9), false)]),
        ranges: vec![0..1, 5..u64::MAX],
        waits: Some(Box::new(Duration::from_micros(250))),
        results: vec![Ok(SocketAddr::from(([127, 0, 0, 1], 1))), Err("refused".into())],
        by_name: HashMap::from([("x".into(), 1), ("a long boxed key".into(), 2)]),
    }
}

/// serde_json lists a `HashSet` in the table's iteration order, `Value` in
/// sorted order (as it sorts `HashMap` keys): sort the expected side.
fn sort_hash_sets(expected: &mut serde_json::Value) {
    for field in ["set", "int_set", "empty_set"] {
        let Some(items) = expected[field].as_array_mut() else { panic!("{field} is not an array") };
        items.sort_by_key(|v| match v {
            serde_json::Value::Number(n) => format!("{:020}", n.as_u64().unwrap()),
            other => other.as_str().unwrap().to_owned(),
        });
    }
}

fn decoded(name: &TestName) -> Value {
    dynamic::Reader::open(name.as_str()).unwrap().read().unwrap().value
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    let Value::Struct { fields: Fields::Named(fields), .. } = v else { panic!("not a struct: {v:?}") };
    &fields.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no field {name}")).1
}

#[test]
fn json_of_every_std_type_equals_serde_json_of_the_original() {
    let name = TestName::new("std-json");
    let mut w = Writer::<AllStd>::create(name.as_str()).unwrap();
    let value = all_std();
    w.publish(&value).unwrap();

    let got = serde_json::to_value(decoded(&name)).unwrap();
    let mut expected = serde_json::to_value(&value).unwrap();
    sort_hash_sets(&mut expected);
    // Field by field first, so a failure names the type.
    let (g, e) = (got.as_object().unwrap(), expected.as_object().unwrap());
    let wrong: Vec<String> = e
        .iter()
        .filter(|(k, v)| g.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: got {}, expected {v}", g.get(k).map_or("nothing".into(), |x| x.to_string())))
        .collect();
    assert!(wrong.is_empty(), "{} fields differ:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(got, expected);
    // The shapes an operator compares against a config file.
    assert_eq!(got["sock"], json!("127.0.0.1:18080"));
    assert_eq!(got["ip4"], json!("127.0.0.1"));
    assert_eq!(got["set"], json!(["a", "a tag longer than eight bytes", "b"]));
    assert_eq!(got["duration"], json!({ "secs": 1, "nanos": 500_000_000 }));
}

#[test]
fn text_of_addresses_durations_ranges_and_sets_is_their_debug() {
    let name = TestName::new("std-text");
    let mut w = Writer::<AllStd>::create(name.as_str()).unwrap();
    let v = all_std();
    w.publish(&v).unwrap();
    let got = decoded(&name);
    let cases: Vec<(&str, String)> = vec![
        ("duration", format!("{:?}", v.duration)),
        ("long_duration", format!("{:?}", v.long_duration)),
        ("v4", format!("{:?}", v.v4)),
        ("v6", format!("{:?}", v.v6)),
        ("mapped", format!("{:?}", v.mapped)),
        ("ip4", format!("{:?}", v.ip4)),
        ("ip6", format!("{:?}", v.ip6)),
        ("sock4", format!("{:?}", v.sock4)),
        ("sock6", format!("{:?}", v.sock6)),
        ("scoped", format!("{:?}", v.scoped)),
        ("sock", format!("{:?}", v.sock)),
        ("sock_v6", format!("{:?}", v.sock_v6)),
        ("peers", format!("{:?}", v.peers)),
        ("gateway", format!("{:?}", v.gateway)),
        ("waits", format!("{:?}", v.waits)),
        ("tree_set", format!("{:?}", v.tree_set)),
        ("range", format!("{:?}", v.range)),
        ("closed", format!("{:?}", v.closed)),
        ("ranges", format!("{:?}", v.ranges)),
        ("empty_set", format!("{:?}", v.empty_set)),
        ("boxed_str", format!("{:?}", v.boxed_str)),
        ("long_boxed_str", format!("{:?}", v.long_boxed_str)),
        ("arc_str", format!("{:?}", v.arc_str)),
        ("rc_str", format!("{:?}", v.rc_str)),
        // Sorted, where `HashSet`'s `Debug` follows the table.
        ("set", r#"{"a", "a tag longer than eight bytes", "b"}"#.to_owned()),
        ("int_set", "{1, 30, 200}".to_owned()),
    ];
    for (f, expected) in &cases {
        assert_eq!(field(&got, f).to_string(), *expected, "field {f}");
    }
    assert_eq!(format!("{:?}", v.sock), "127.0.0.1:18080");
    assert_eq!(format!("{:?}", v.duration), "1.5s");

    // The wrapped form keeps them on one line each.
    let pretty = format!("{got:#}");
    for needle in [
        "    sock: 127.0.0.1:18080,\n",
        "    duration: 1.5s,\n",
        "    scoped: [fe80::1%7]:22,\n",
        "    tree_set: {0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77},\n",
        "    by_ip: {1.2.3.4: 1, ::1: 2},\n",
        "    closed: -1..=127,\n",
    ] {
        assert!(pretty.contains(needle), "missing {needle:?} in\n{pretty}");
    }
}

/// User types that only look like std ones (another shape under the same
/// name) keep the plain struct form.
mod lookalike {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    pub struct Ipv4Addr {
        pub octets: [u16; 4],
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    pub struct Duration {
        pub secs: u64,
    }

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    pub struct Both {
        pub ip: Ipv4Addr,
        pub wait: Duration,
    }
}

#[test]
fn user_types_of_other_shapes_under_std_names_stay_structs() {
    let name = TestName::new("std-lookalike");
    let mut w = Writer::<lookalike::Both>::create(name.as_str()).unwrap();
    let v =
        lookalike::Both { ip: lookalike::Ipv4Addr { octets: [1, 2, 300, 4] }, wait: lookalike::Duration { secs: 3 } };
    w.publish(&v).unwrap();
    let got = decoded(&name);
    assert_eq!(serde_json::to_value(&got).unwrap(), serde_json::to_value(&v).unwrap());
    assert_eq!(got.to_string(), "Both { ip: Ipv4Addr { octets: [1, 2, 300, 4] }, wait: Duration { secs: 3 } }");
}

/// The limit of telling them apart: names are stored without module path, so
/// a user type with the std name and description is the std type to shmstate
/// (same fingerprint: a reader of either opens the other's object) and prints
/// as it.
#[test]
fn a_user_type_with_the_std_name_and_description_is_the_std_type() {
    mod same {
        #[shmstate::shared]
        #[derive(Debug, Clone, PartialEq)]
        pub struct Ipv4Addr {
            pub octets: [u8; 4],
        }
    }
    use shmstate::schema::fingerprint_of;
    assert_eq!(fingerprint_of::<same::Ipv4Addr>(), fingerprint_of::<Ipv4Addr>());
    let name = TestName::new("std-same");
    let mut w = Writer::<same::Ipv4Addr>::create(name.as_str()).unwrap();
    w.publish(&same::Ipv4Addr { octets: [1, 2, 3, 4] }).unwrap();
    let got = decoded(&name);
    assert_eq!(got.to_string(), "1.2.3.4");
    assert_eq!(serde_json::to_value(&got).unwrap(), json!("1.2.3.4"));
}

#[shmstate::shared]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord, Hash))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
enum Color {
    Red,
    Green,
}

#[shmstate::shared]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord, Hash))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
struct Id(u32);

#[shmstate::shared]
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord, Hash))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
struct Zone {
    zone: u8,
}

/// Maps whose keys serde_json writes as object keys (after stringifying
/// them), and sets, of every key kind `Schema` describes.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct StringKeys {
    bools: BTreeMap<bool, u8>,
    chars: HashMap<char, u8>,
    bytes: BTreeMap<u8, u8>,
    negatives: BTreeMap<i16, u8>,
    wide: BTreeMap<u128, u8>,
    wide_signed: BTreeMap<i128, u8>,
    non_zero: BTreeMap<NonZeroU16, u8>,
    variants: BTreeMap<Color, u8>,
    newtypes: HashMap<Id, u8>,
    boxed: HashMap<Box<u32>, u8>,
    v6: HashMap<Ipv6Addr, u8>,
    sock6: BTreeMap<SocketAddrV6, u8>,
    empty_of_tuples: HashMap<(u8, u8), u8>,
    addr_set: HashSet<SocketAddr>,
    ip_set: BTreeSet<IpAddr>,
    char_set: BTreeSet<char>,
    variant_set: BTreeSet<Color>,
    nested_sets: HashMap<String, BTreeSet<u8>>,
    sets_in_a_list: Vec<BTreeSet<String>>,
    map_of_maps: BTreeMap<u8, BTreeMap<u16, Vec<u8>>>,
}

#[test]
fn maps_with_keys_serde_json_stringifies_and_sets_equal_serde_json_of_the_original() {
    let name = TestName::new("std-json-keys");
    let mut w = Writer::<StringKeys>::create(name.as_str()).unwrap();
    let value = StringKeys {
        bools: BTreeMap::from([(false, 0), (true, 1)]),
        chars: HashMap::from([('x', 1)]),
        bytes: BTreeMap::from([(0, 1), (255, 2)]),
        negatives: BTreeMap::from([(-300, 1), (7, 2)]),
        wide: BTreeMap::from([(u128::MAX, 1), (3, 2)]),
        wide_signed: BTreeMap::from([(i128::MIN, 1)]),
        non_zero: BTreeMap::from([(NonZeroU16::new(9).unwrap(), 1)]),
        variants: BTreeMap::from([(Color::Red, 1), (Color::Green, 2)]),
        newtypes: HashMap::from([(Id(42), 1)]),
        boxed: HashMap::from([(Box::new(5), 1)]),
        v6: HashMap::from([(Ipv6Addr::LOCALHOST, 1)]),
        sock6: BTreeMap::from([(SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 22, 0, 3), 1)]),
        empty_of_tuples: HashMap::new(),
        addr_set: HashSet::from([SocketAddr::from(([10, 0, 0, 1], 80))]),
        ip_set: BTreeSet::from([IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        char_set: BTreeSet::from(['b', 'a']),
        variant_set: BTreeSet::from([Color::Green]),
        nested_sets: HashMap::from([("n".into(), BTreeSet::from([3, 1]))]),
        sets_in_a_list: vec![BTreeSet::from(["z".into(), "y".into()]), BTreeSet::new()],
        map_of_maps: BTreeMap::from([(1, BTreeMap::from([(2, vec![3])]))]),
    };
    w.publish(&value).unwrap();
    let got = serde_json::to_value(decoded(&name)).unwrap();
    let expected = serde_json::to_value(&value).unwrap();
    let (g, e) = (got.as_object().unwrap(), expected.as_object().unwrap());
    let wrong: Vec<String> = e
        .iter()
        .filter(|(k, v)| g.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: got {}, expected {v}", g.get(k).map_or("nothing".into(), |x| x.to_string())))
        .collect();
    assert!(wrong.is_empty(), "{} fields differ:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(got, expected);
    assert_eq!(got["wide"], json!({ "3": 2, "340282366920938463463374607431768211455": 1 }));
    assert_eq!(got["variants"], json!({ "Red": 1, "Green": 2 }));
}

/// Where serde_json itself fails ("key must be a string"), `dump --json`
/// prints the map as `[key, value]` pairs (docs/CLI.md), which is what
/// serde_json gives for the map's entries as a list, and `publish` reads back.
/// Where serde_json itself fails ("key must be a string"), `dump --json`
/// prints the map as `[key, value]` pairs (docs/CLI.md): what serde_json
/// gives for the map's entries as a list, and what `publish` reads back.
#[test]
fn maps_whose_keys_serde_json_refuses_are_lists_of_pairs() {
    macro_rules! check {
        ($key:ty, $a:expr, $b:expr) => {{
            #[shmstate::shared]
            #[derive(Debug, Clone, PartialEq, Serialize)]
            struct Pairs {
                map: BTreeMap<$key, u8>,
            }
            let value = Pairs { map: BTreeMap::from([($a, 1), ($b, 2)]) };
            let err = serde_json::to_value(&value).expect_err("serde_json refuses these keys");
            assert!(err.to_string().contains("key must be"), "{err}");
            let name = TestName::new("std-json-pairs");
            let mut w = Writer::<Pairs>::create(name.as_str()).unwrap();
            w.publish(&value).unwrap();
            let got = serde_json::to_value(decoded(&name)).unwrap();
            let pairs: Vec<(&$key, &u8)> = value.map.iter().collect();
            assert_eq!(got["map"], serde_json::to_value(&pairs).unwrap(), "keys {}", stringify!($key));
        }};
    }
    check!((u8, u8), (1, 2), (3, 4));
    check!(Option<u8>, None, Some(5));
    check!(Duration, Duration::from_secs(1), Duration::from_millis(1500));
    check!(Zone, Zone { zone: 1 }, Zone { zone: 2 });
    check!(Vec<u8>, vec![1], vec![2, 3]);
    check!([u8; 2], [0, 1], [1, 2]);
}
