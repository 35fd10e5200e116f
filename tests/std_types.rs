//! The std types rkyv archives beyond the containers: each round-trips through
//! a real Writer/Reader, its description matches the archived bytes (the CLI's
//! schema-driven `dump` decodes them at the described offsets), and a change of
//! one of them changes the fingerprint.

mod common;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::{NonZeroI64, NonZeroU16, NonZeroU32, NonZeroU8};
use std::ops::{Range, RangeInclusive};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::TestName;
use serde_json::json;
use shmstate::schema::{fingerprint_of, schema_of, Kind};
use shmstate::{Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct StdTypes {
    timeout: Duration,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    ips: Vec<IpAddr>,
    sock4: SocketAddrV4,
    sock6: SocketAddrV6,
    socks: Vec<SocketAddr>,
    tags: HashSet<String>,
    sorted: BTreeSet<u32>,
    queue: VecDeque<i16>,
    label: Box<str>,
    shared: Arc<String>,
    shared_str: Arc<str>,
    shared_list: Arc<[u8]>,
    local: Rc<u64>,
    local_list: Rc<[u16]>,
    id: NonZeroU32,
    small: NonZeroU8,
    port: Option<NonZeroU16>,
    delta: NonZeroI64,
    span: Range<u32>,
    closed: RangeInclusive<u8>,
    outcome: Result<u64, String>,
    failed: Result<u64, String>,
}

fn sample() -> StdTypes {
    StdTypes {
        timeout: Duration::new(90_000_000_123, 456_789_012),
        v4: Ipv4Addr::new(192, 168, 1, 20),
        v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42),
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)],
        sock4: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080),
        sock6: SocketAddrV6::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 443, 0x0102_0304, 7),
        socks: vec![
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 53)),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 65535, 9, 10)),
        ],
        tags: HashSet::from(["red".to_owned(), "a tag longer than eight bytes".to_owned()]),
        sorted: (0..12).map(|i| i * 7).collect(),
        queue: VecDeque::from([-1, 2, -3]),
        label: "a boxed str".into(),
        shared: Arc::new("arc".to_owned()),
        shared_str: "arc str".into(),
        shared_list: Arc::from([9u8, 8, 7]),
        local: Rc::new(0x0102_0304_0506_0708),
        local_list: Rc::from([1u16, 65535]),
        id: NonZeroU32::new(0xDEAD_BEEF).unwrap(),
        small: NonZeroU8::new(200).unwrap(),
        port: NonZeroU16::new(4242),
        delta: NonZeroI64::new(-5).unwrap(),
        span: 3..17,
        closed: 1..=255,
        outcome: Ok(u64::MAX),
        failed: Err("nope".into()),
    }
}

#[test]
fn std_types_round_trip_through_writer_and_reader() {
    let name = TestName::new("std-types");
    let mut w = Writer::<StdTypes>::create(name.as_str()).unwrap();
    let value = sample();
    w.publish(&value).unwrap();
    let mut r = Reader::<StdTypes>::open(name.as_str()).unwrap();
    let s = r.read().unwrap();
    assert_eq!(s.to_value().unwrap(), value);
    assert_eq!(s.timeout.as_secs(), 90_000_000_123);
    assert_eq!(s.sock6.port(), 443);
    assert!(s.tags.contains("red"));
}

/// `dynamic` (and so the CLI's `dump`) decodes the snapshot from the stored description alone, so every
/// offset and layout in it must match the archived bytes.
#[test]
fn dump_decodes_std_types_at_their_described_offsets() {
    let name = TestName::new("std-dump");
    let mut w = Writer::<StdTypes>::create(name.as_str()).unwrap();
    w.publish(&sample()).unwrap();
    // What `shmstate dump --json` prints: the schema-driven decoder's value
    // through its serde conventions (serde's own for the std types).
    let snap = shmstate::dynamic::Reader::open(name.as_str()).unwrap().read().unwrap();
    let got = serde_json::to_value(&snap.value).unwrap();
    let expected = json!({
        "timeout": { "secs": 90_000_000_123u64, "nanos": 456_789_012 },
        "v4": "192.168.1.20",
        "v6": "2001:db8::42",
        "ips": ["127.0.0.1", "::1"],
        "sock4": "10.0.0.1:8080",
        "sock6": "[fe80::1%7]:443",
        "socks": ["1.2.3.4:53", "[::%10]:65535"],
        // Hash sets sorted.
        "tags": ["a tag longer than eight bytes", "red"],
        "sorted": (0..12).map(|i| i * 7).collect::<Vec<_>>(),
        "queue": [-1, 2, -3],
        "label": "a boxed str",
        "shared": "arc",
        "shared_str": "arc str",
        "shared_list": [9, 8, 7],
        "local": 0x0102_0304_0506_0708u64,
        "local_list": [1, 65535],
        "id": 0xDEAD_BEEFu32,
        "small": 200,
        "port": 4242,
        "delta": -5,
        "span": { "start": 3, "end": 17 },
        "closed": { "start": 1, "end": 255 },
        "outcome": { "Ok": u64::MAX },
        "failed": { "Err": "nope" },
    });
    assert_eq!(got, expected, "\ngot:      {got}\nexpected: {expected}");
    // Socket address strings leave out the flow info: it is decoded too.
    let text = snap.value.to_string();
    for needle in ["sock6: [fe80::1%7]:443", "socks: [1.2.3.4:53, [::%10]:65535]", "timeout: 90000000123.456789012s"] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    let shmstate::dynamic::Value::Struct { fields: shmstate::dynamic::Fields::Named(fields), .. } = &snap.value else {
        panic!("{:?}", snap.value)
    };
    let sock6 = &fields.iter().find(|(n, _)| n == "sock6").unwrap().1;
    let shmstate::dynamic::Value::Struct { fields: shmstate::dynamic::Fields::Named(sock6), .. } = sock6 else {
        panic!("{sock6:?}")
    };
    assert_eq!(sock6[2], ("flowinfo".to_owned(), shmstate::dynamic::Value::U64(0x0102_0304)));
}

#[test]
fn std_types_are_described_with_existing_kinds() {
    let doc = schema_of::<StdTypes>();
    doc.validate().unwrap();
    let kind = |name: &str| &doc.types.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name}\n{doc}")).kind;
    assert!(matches!(kind("HashSet<String>"), Kind::HashMap(..)));
    assert!(matches!(kind("BTreeSet<u32>"), Kind::BTreeMap(..)));
    assert!(matches!(kind("Arc<String>"), Kind::Box(_)));
    assert!(matches!(kind("Box<str>"), Kind::Vec(_)));
    assert!(matches!(kind("SocketAddr"), Kind::Enum { .. }));
    let text = doc.to_string();
    assert!(text.contains("struct Duration { // 16 bytes, align 8"), "{text}");
}

#[test]
fn std_types_fingerprint_by_name_and_layout() {
    let fps = [
        fingerprint_of::<u32>(),
        fingerprint_of::<NonZeroU32>(),
        fingerprint_of::<Ipv4Addr>(),
        fingerprint_of::<[u8; 4]>(),
        fingerprint_of::<SocketAddrV4>(),
        fingerprint_of::<SocketAddrV6>(),
        fingerprint_of::<Vec<u8>>(),
        fingerprint_of::<Box<str>>(),
        fingerprint_of::<Arc<str>>(),
        fingerprint_of::<HashSet<u8>>(),
        fingerprint_of::<std::collections::HashMap<u8, ()>>(),
        fingerprint_of::<Range<u32>>(),
        fingerprint_of::<Range<u64>>(),
        fingerprint_of::<Result<u8, u16>>(),
        fingerprint_of::<Result<u16, u8>>(),
    ];
    let distinct: BTreeSet<u64> = fps.iter().copied().collect();
    assert_eq!(distinct.len(), fps.len());
}
