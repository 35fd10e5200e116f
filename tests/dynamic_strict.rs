//! `dynamic::validate` (the schema-driven check behind `shmstate dump` and the
//! bridge's importer) is exactly as strict as bytecheck (`rkyv::access`, what
//! every typed reader runs): on every single-byte mutation of real snapshots,
//! one accepts if and only if the other does.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::{NonZeroU16, NonZeroU32};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use shmstate::dynamic::{self, Limits};
use shmstate::rkyv::{self, rancor, util::AlignedVec};
use shmstate::schema::{schema_of, SchemaDoc};

/// A fixed hasher, so that hash tables (and so the snapshot bytes the
/// regression cases name) are the same on every run.
type Fixed = BuildHasherDefault<DefaultHasher>;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Off,
    Fixed(u32),
    Named { label: String, weight: i16 },
}

/// Strings (inline and out of line), a `Vec<String>`, both maps and an enum.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Profile {
    name: String,
    short: String,
    hosts: Vec<String>,
    limits: BTreeMap<String, u32>,
    ports: HashMap<u16, String, Fixed>,
    mode: Mode,
}

fn profile() -> Profile {
    let mut ports = HashMap::default();
    ports.insert(443, "https for the api".to_owned());
    ports.insert(22, "ssh".to_owned());
    Profile {
        name: "primary profile".into(),
        short: "p1".into(),
        hosts: vec!["alpha.example.org".into(), "b".into(), "gamma.example.net".into()],
        limits: BTreeMap::from([("connections".into(), 64), ("rps".into(), 1000)]),
        ports,
        mode: Mode::Named { label: "weighted round robin".into(), weight: -3 },
    }
}

/// The other kinds: std structs with invariants of their own (`Duration`,
/// `NonZero*`, `Box<str>`), shared pointers (two `Arc`s of one value, which
/// rkyv stores once, and two of one slice), `Rc`s, sets, tuples, arrays, options, boxes,
/// results, addresses, and a B-tree deep enough for inner nodes.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Kinds {
    timeout: Duration,
    id: NonZeroU32,
    port: Option<NonZeroU16>,
    label: Box<str>,
    first: Arc<String>,
    second: Arc<String>,
    words: Arc<str>,
    blob: Arc<[u8]>,
    same_blob: Arc<[u8]>,
    note: Rc<String>,
    local: Rc<[u16]>,
    boxed: Box<(u8, char)>,
    maybe: Option<Box<Mode>>,
    tags: HashSet<String, Fixed>,
    sorted: BTreeSet<u32>,
    table: BTreeMap<u16, String>,
    queue: VecDeque<i16>,
    grid: [[bool; 2]; 3],
    pair: (String, u64),
    addr: SocketAddr,
    ips: Vec<IpAddr>,
    outcome: Result<u8, String>,
}

fn kinds() -> Kinds {
    let shared = Arc::new("shared by two fields".to_owned());
    let blob: Arc<[u8]> = Arc::from([1u8, 2, 3]);
    let mut tags = HashSet::default();
    tags.insert("red".to_owned());
    tags.insert("a tag longer than eight bytes".to_owned());
    Kinds {
        timeout: Duration::new(12, 345_678_901),
        // One bit from zero (in either byte).
        id: NonZeroU32::new(1).unwrap(),
        port: NonZeroU16::new(0x0100),
        label: "a boxed str".into(),
        first: shared.clone(),
        second: shared,
        words: "arc str".into(),
        same_blob: blob.clone(),
        blob,
        note: Rc::new("an rc string".to_owned()),
        local: Rc::from([1u16, 65535]),
        boxed: Box::new((9, 'λ')),
        maybe: Some(Box::new(Mode::Fixed(5))),
        tags,
        sorted: (0..3).collect(),
        table: (0..13).map(|i| (i * 3, if i % 4 == 0 { format!("entry number {i}") } else { i.to_string() })).collect(),
        queue: VecDeque::from([-1, 2]),
        grid: [[true, false], [false, false], [true, true]],
        pair: ("a pair's string".into(), 7),
        addr: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 8080)),
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        outcome: Err("no".into()),
    }
}

fn snapshot<T>(v: &T) -> AlignedVec
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<AlignedVec, rkyv::ser::allocator::ArenaHandle<'a>, rancor::Error>,
    >,
{
    rkyv::to_bytes::<rancor::Error>(v).unwrap()
}

/// Bit patterns xor-ed into each byte: every single bit, and all of them.
const XORS: [u8; 9] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff];

/// What `validate` and bytecheck say of `bytes` (aligned as a reader maps them).
fn verdicts<A>(doc: &SchemaDoc, bytes: &[u8]) -> (Result<(), String>, Result<(), String>)
where
    A: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let dynamic = dynamic::validate(doc, &aligned, Limits::default()).map_err(|e| e.to_string());
    let typed = rkyv::access::<A, rancor::Error>(&aligned).map(drop).map_err(|e| e.to_string());
    // The one decode path: `decode` (what `shmstate dump` prints) accepts the same.
    let decoded = dynamic::decode(doc, &aligned).map(drop).map_err(|e| e.to_string());
    assert_eq!(decoded.is_ok(), dynamic.is_ok(), "decode {decoded:?}, validate {dynamic:?}");
    (dynamic, typed)
}

/// Every `(byte, xor)` on which `validate` and bytecheck disagree, described.
fn disagreements<A>(doc: &SchemaDoc, original: &[u8]) -> Vec<String>
where
    A: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    let (d, t) = verdicts::<A>(doc, original);
    assert!(d.is_ok() && t.is_ok(), "the unmutated snapshot: validate {d:?}, bytecheck {t:?}");
    let mut out = Vec::new();
    let mut bytes = original.to_vec();
    for at in 0..bytes.len() {
        for x in XORS {
            bytes[at] ^= x;
            let (d, t) = verdicts::<A>(doc, &bytes);
            if d.is_ok() != t.is_ok() {
                out.push(format!("byte {at} ^ {x:#04x}: validate {d:?}, bytecheck {t:?}"));
            }
            bytes[at] ^= x;
        }
    }
    out
}

#[test]
fn validate_agrees_with_bytecheck_on_every_byte_flip_of_a_profile() {
    let bytes = snapshot(&profile());
    let bad = disagreements::<ArchivedProfile>(&schema_of::<Profile>(), &bytes);
    assert!(
        bad.is_empty(),
        "{} of {} flips of a {}-byte snapshot disagree:\n{}",
        bad.len(),
        bytes.len() * XORS.len(),
        bytes.len(),
        bad.join("\n")
    );
}

#[test]
fn validate_agrees_with_bytecheck_on_every_byte_flip_of_the_other_kinds() {
    let bytes = snapshot(&kinds());
    let bad = disagreements::<ArchivedKinds>(&schema_of::<Kinds>(), &bytes);
    assert!(
        bad.is_empty(),
        "{} of {} flips of a {}-byte snapshot disagree:\n{}",
        bad.len(),
        bytes.len() * XORS.len(),
        bytes.len(),
        bad.join("\n")
    );
}

// Regression cases: single-byte flips that `validate` accepted before it
// followed rkyv's rules (each made every typed reader fail). `(byte, xor,
// what bytecheck says)`; the bytes are those of `profile()` and `kinds()` (a
// changed layout fails the bytecheck message check, not silently).

/// Pointers whose targets overlap other claims or lie after the value holding
/// them (what the review found: "subtree pointer overran range").
const PROFILE_OVERLAPS: &[(usize, u8, &str)] = &[
    // `.name`'s bytes moved one on, over `.hosts[0]`'s.
    (268, 0x01, "subtree pointer overran range"),
    // `.hosts[0]` one byte back, over `.name`'s.
    (56, 0x01, "subtree pointer overran range"),
    // `.hosts[2]` over `.hosts[0]`.
    (72, 0x10, "subtree pointer overran range"),
    // A `.limits` key, a `.ports` value and `.mode`'s label aliasing earlier strings.
    (96, 0x40, "subtree pointer overran range"),
    (208, 0x80, "subtree pointer overran range"),
    (316, 0x80, "subtree pointer overran range"),
];

/// Out-of-line strings short enough to be inline.
const PROFILE_SHORT_STRINGS: &[(usize, u8, &str)] = &[
    (52, 0x10, "out-of-line but the length was too short"),
    (92, 0x08, "out-of-line but the length was too short"),
    (264, 0x08, "out-of-line but the length was too short"),
    (312, 0x10, "out-of-line but the length was too short"),
];

/// Hash-table control bytes past the capacity that do not repeat the first ones.
const PROFILE_CONTROL_BYTES: &[(usize, u8, &str)] = &[
    (212, 0x01, "unwrapped control byte"),
    (215, 0x80, "unwrapped control byte"),
    (217, 0xff, "unwrapped control byte"),
    // The capacity (3 → 11): more control bytes must repeat.
    (296, 0x08, "unwrapped control byte"),
];

const KINDS_CASES: &[(usize, u8, &str)] = &[
    // Overlapping claims behind an `Arc`, in B-tree nodes, and of a B-tree
    // root, `Rc<[u16]>`, `Box`, `Option<Box<_>>`, `HashSet`, `VecDeque`, `Vec`.
    (36, 0x01, "subtree pointer overran range"),
    (260, 0x80, "subtree pointer overran range"),
    (292, 0x01, "subtree pointer overran range"),
    (448, 0x01, "subtree pointer overran range"),
    (572, 0x04, "subtree pointer overran range"),
    (576, 0x10, "subtree pointer overran range"),
    (580, 0x80, "subtree pointer overran range"),
    (588, 0x40, "subtree pointer overran range"),
    (620, 0x80, "subtree pointer overran range"),
    (688, 0x80, "subtree pointer overran range"),
    // `.same_blob` one byte off `.blob`'s target: no longer shared, overlapping.
    (560, 0x01, "subtree pointer overran range"),
    // Shared pointers to one target with two lengths, or of two types.
    (556, 0x01, "same type with"),
    (564, 0x80, "same type with"),
    (572, 0x08, "two different types"),
    // Out-of-line strings of 4, 8 and 7 bytes.
    (32, 0x10, "out-of-line but the length was too short"),
    (64, 0x04, "out-of-line but the length was too short"),
    (640, 0x08, "out-of-line but the length was too short"),
    // `HashSet` control bytes.
    (156, 0x01, "unwrapped control byte"),
    (161, 0xff, "unwrapped control byte"),
    // std invariants: `Duration` nanoseconds, `NonZeroU32`, `Option<NonZeroU16>`,
    // UTF-8 of `Box<str>` and `Arc<str>`.
    (515, 0x80, "`nanos` field of `Duration` is greater than 1 billion"),
    (520, 0x01, "nonzero integer is zero"),
    (527, 0x01, "nonzero integer is zero"),
    (0, 0x80, "invalid UTF-8"),
    (40, 0xff, "invalid UTF-8"),
];

/// Each flip makes bytecheck fail for the reason given, and `validate` and
/// `decode` refuse it too.
fn refused<A>(doc: &SchemaDoc, original: &[u8], cases: &[(usize, u8, &str)])
where
    A: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
{
    for &(at, x, why) in cases {
        let mut bytes = original.to_vec();
        bytes[at] ^= x;
        let (d, t) = verdicts::<A>(doc, &bytes);
        let t = t.expect_err(&format!("byte {at} ^ {x:#04x}: bytecheck accepts it (did the layout change?)"));
        assert!(t.contains(why), "byte {at} ^ {x:#04x}: bytecheck says {t:?}, expected {why:?}");
        assert!(d.is_err(), "byte {at} ^ {x:#04x}: validate accepts what bytecheck refuses ({t})");
    }
}

#[test]
fn overlapping_subtree_claims_are_refused() {
    refused::<ArchivedProfile>(&schema_of::<Profile>(), &snapshot(&profile()), PROFILE_OVERLAPS);
}

#[test]
fn out_of_line_strings_that_fit_inline_are_refused() {
    refused::<ArchivedProfile>(&schema_of::<Profile>(), &snapshot(&profile()), PROFILE_SHORT_STRINGS);
}

#[test]
fn hash_tables_must_repeat_their_first_control_bytes() {
    refused::<ArchivedProfile>(&schema_of::<Profile>(), &snapshot(&profile()), PROFILE_CONTROL_BYTES);
}

#[test]
fn shared_pointers_std_invariants_and_other_kinds_are_checked_as_bytecheck_does() {
    refused::<ArchivedKinds>(&schema_of::<Kinds>(), &snapshot(&kinds()), KINDS_CASES);
}

/// Two `Box`es and two `Arc`s of one type.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Pointers {
    a: Box<u64>,
    b: Box<u64>,
    x: Arc<u64>,
    y: Arc<u64>,
}

/// Aliasing is refused between `Box`es and accepted between `Arc`s (rkyv
/// stores a shared value once and checks it once), and a shared value decodes
/// at each of its pointers.
#[test]
fn only_shared_pointers_may_share_a_target() {
    let v = Pointers { a: Box::new(1), b: Box::new(2), x: Arc::new(3), y: Arc::new(4) };
    let bytes = snapshot(&v);
    let doc = schema_of::<Pointers>();
    let root = bytes.len() - doc.root().size as usize;
    let shmstate::schema::Kind::Struct { fields, .. } = &doc.root().kind else { panic!("a struct") };
    let field = |name: &str| root + fields.iter().find(|f| f.name == name).unwrap().offset as usize;
    let target = |b: &[u8], at: usize| at as i64 + i64::from(i32::from_le_bytes(b[at..at + 4].try_into().unwrap()));
    // Points the pointer at field `to` where the one at `from` points.
    let alias = |from: &str, to: &str| {
        let mut b = bytes.to_vec();
        let (from, to) = (field(from), field(to));
        let t = target(&b, from);
        b[to..to + 4].copy_from_slice(&((t - to as i64) as i32).to_le_bytes());
        b
    };

    let (d, t) = verdicts::<ArchivedPointers>(&doc, &alias("a", "b"));
    assert!(t.as_ref().is_err_and(|t| t.contains("subtree pointer overran range")), "bytecheck {t:?}");
    assert!(d.as_ref().is_err_and(|d| d.contains("at .b") && d.contains("outside bytes")), "validate {d:?}");

    let shared = alias("x", "y");
    let (d, t) = verdicts::<ArchivedPointers>(&doc, &shared);
    assert!(t.is_ok() && d.is_ok(), "validate {d:?}, bytecheck {t:?}");
    let mut aligned = AlignedVec::<16>::new();
    aligned.extend_from_slice(&shared);
    assert_eq!(format!("{}", dynamic::decode(&doc, &aligned).unwrap()), "Pointers { a: 1, b: 2, x: 3, y: 3 }");
}
