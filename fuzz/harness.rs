//! Code paths shared by the fuzz targets (fuzz/fuzz_targets/*.rs) and the
//! regression replay in tests/bad_bytes.rs (`#[path = "../fuzz/harness.rs"]`),
//! so a minimized crasher replays through exactly the code that found it.
//!
//! Every function here must return normally for every input: a panic, SIGBUS,
//! hang or sanitizer report is a bug in shmstate (or in this harness).
#![allow(dead_code, clippy::collapsible_if, clippy::collapsible_match)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use shmstate::{OpenError, PublishError, ReadError, Reader, Writer};

// ------------------------------------------------------------ the stored type

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Empty,
    Circle(f64),
    Poly { points: Vec<(i32, i32)>, name: Option<String> },
}

/// A value with enough structure for bytecheck to chew on.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzValue {
    pub gen: u64,
    pub words: Vec<u64>,
    pub text: String,
    pub shapes: Vec<Shape>,
    pub tag: Option<u32>,
    pub map: HashMap<String, u32>,
}

impl FuzzValue {
    pub fn new(gen: u64, words: usize) -> Self {
        let mut map = HashMap::new();
        map.insert(format!("g{}", gen % 5), gen as u32);
        FuzzValue {
            gen,
            words: vec![gen; words],
            text: format!("value {gen}"),
            shapes: vec![
                Shape::Empty,
                Shape::Circle(gen as f64),
                Shape::Poly { points: vec![(1, 2), (gen as i32, -3)], name: (gen % 2 == 0).then(|| "p".into()) },
            ],
            tag: (gen % 3 == 0).then_some(gen as u32),
            map,
        }
    }
}

/// Walks every part of a validated view (so a sanitizer sees any bad access).
pub fn touch(a: &ArchivedFuzzValue) -> u64 {
    let add = u64::wrapping_add;
    let mut h = a.gen.to_native();
    h = add(h, a.words.iter().map(|w| w.to_native()).fold(0, add));
    h = add(h, a.text.as_bytes().iter().map(|&b| b as u64).fold(a.text.len() as u64, add));
    for s in a.shapes.iter() {
        h = add(
            h,
            match s {
                ArchivedShape::Empty => 1,
                ArchivedShape::Circle(r) => r.to_native().to_bits(),
                ArchivedShape::Poly { points, name } => add(
                    points.iter().map(|p| (p.0.to_native() as u64) ^ (p.1.to_native() as u64)).fold(0, add),
                    name.as_ref().map_or(0, |n| n.len() as u64),
                ),
            },
        );
    }
    h = add(h, a.tag.as_ref().map_or(0, |t| t.to_native() as u64));
    for (k, v) in a.map.iter() {
        h = add(h, k.len() as u64 ^ v.to_native() as u64);
    }
    h
}

// ------------------------------------------------------------ objects on shm

/// A unique object name, removed on drop.
pub struct Obj(pub String);

impl Obj {
    pub fn new(tag: &str) -> Obj {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("fz{}-{}-{tag}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let _ = shmstate::remove(&name);
        Obj(name)
    }
    pub fn data_path(&self) -> String {
        format!("/dev/shm/shmstate.{}", self.0)
    }
    pub fn readers_path(&self) -> String {
        format!("/dev/shm/shmstate.{}.readers", self.0)
    }
    pub fn data_file(&self) -> File {
        OpenOptions::new().read(true).write(true).open(self.data_path()).expect("open data segment")
    }
    pub fn readers_file(&self) -> File {
        OpenOptions::new().read(true).write(true).open(self.readers_path()).expect("open reader table")
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        let _ = shmstate::remove(&self.0);
    }
}

pub const MAX_READERS: u32 = 4;

/// A valid object with `gens` publishes (3 slots of 4 KiB; gen g in slot g-1 for g ≤ 3);
/// its writer is gone (dropped), the objects stay.
pub fn valid_object(tag: &str, gens: u64) -> Obj {
    let obj = Obj::new(tag);
    let mut w = Writer::<FuzzValue>::options()
        .slots(3)
        .capacity(4096)
        .max_readers(MAX_READERS)
        .create(&obj.0)
        .expect("create a valid object");
    for g in 1..=gens {
        w.publish(&FuzzValue::new(g, 4)).expect("publish");
    }
    obj
}

pub fn write_u64(f: &File, off: u64, v: u64) {
    f.write_all_at(&v.to_le_bytes(), off).expect("write u64");
}

pub fn write_u32(f: &File, off: u64, v: u32) {
    f.write_all_at(&v.to_le_bytes(), off).expect("write u32");
}

pub fn read_u64(f: &File, off: u64) -> u64 {
    let mut b = [0; 8];
    f.read_exact_at(&mut b, off).expect("read u64");
    u64::from_le_bytes(b)
}

// ------------------------------------------------------------ outcomes

pub fn open_v(e: &OpenError) -> &'static str {
    match e {
        OpenError::NotFound { .. } => "NotFound",
        OpenError::AlreadyExists { .. } => "AlreadyExists",
        OpenError::PermissionDenied { .. } => "PermissionDenied",
        OpenError::InvalidName { .. } => "InvalidName",
        OpenError::WriterBusy { .. } => "WriterBusy",
        OpenError::TypeMismatch { .. } => "TypeMismatch",
        OpenError::FormatVersion { .. } => "FormatVersion",
        OpenError::Corrupt { .. } => "Corrupt",
        OpenError::NotInitialized { .. } => "NotInitialized",
        OpenError::ReaderTableFull { .. } => "ReaderTableFull",
        OpenError::InvalidOption { .. } => "InvalidOption",
        OpenError::Os { .. } => "Os",
        _ => "Other",
    }
}

pub fn read_v(e: &ReadError) -> &'static str {
    match e {
        ReadError::Empty { .. } => "Empty",
        ReadError::Invalid { .. } => "Invalid",
        ReadError::Corrupt { .. } => "Corrupt",
        ReadError::Os { .. } => "Os",
        _ => "Other",
    }
}

pub fn publish_v(e: &PublishError) -> &'static str {
    match e {
        PublishError::TooLarge { .. } => "TooLarge",
        PublishError::AllSlotsPinned { .. } => "AllSlotsPinned",
        PublishError::Serialize { .. } => "Serialize",
        PublishError::GenerationsExhausted { .. } => "GenerationsExhausted",
        PublishError::Os { .. } => "Os",
        _ => "Other",
    }
}

/// What each operation on a (possibly corrupt) object returned: "Ok" or the
/// error variant; "-" when skipped because an earlier step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub open: &'static str,
    pub read: &'static str,
    pub inspect: &'static str,
    pub wopen: &'static str,
    pub publish: &'static str,
    pub reread: &'static str,
}

impl Outcome {
    pub fn line(&self) -> String {
        format!(
            "open={} read={} inspect={} wopen={} publish={} reread={}",
            self.open, self.read, self.inspect, self.wopen, self.publish, self.reread
        )
    }
    pub fn parse(line: &str) -> Option<Outcome> {
        let mut v = Vec::new();
        for part in line.split_whitespace() {
            let (_, val) = part.split_once('=')?;
            v.push(&*Box::leak(val.to_string().into_boxed_str()));
        }
        let [open, read, inspect, wopen, publish, reread] = v.try_into().ok()?;
        Some(Outcome { open, read, inspect, wopen, publish, reread })
    }
}

/// Reader::open + read, inspect, Writer::open_or_create + publish, then a fresh
/// reader. Never waits (init timeout 0). Validated views are walked.
pub fn probe(name: &str) -> Outcome {
    let mut out = Outcome { open: "-", read: "-", inspect: "-", wopen: "-", publish: "-", reread: "-" };
    let reader = Reader::<FuzzValue>::options().init_timeout(Duration::ZERO).open(name);
    let mut reader = match reader {
        Ok(r) => {
            out.open = "Ok";
            Some(r)
        }
        Err(e) => {
            out.open = open_v(&e);
            None
        }
    };
    if let Some(r) = &mut reader {
        out.read = match r.read() {
            Ok(s) => {
                std::hint::black_box(touch(&s));
                "Ok"
            }
            Err(e) => read_v(&e),
        };
    }
    out.inspect = match shmstate::inspect(name) {
        Ok(info) => {
            std::hint::black_box(format!("{info:?}"));
            "Ok"
        }
        Err(e) => open_v(&e),
    };
    match Writer::<FuzzValue>::options().max_readers(MAX_READERS).open_or_create(name) {
        Ok(mut w) => {
            out.wopen = "Ok";
            let g = w.next_generation().get();
            out.publish = match w.publish(&FuzzValue::new(g, 6)) {
                Ok(_) => "Ok",
                Err(e) => publish_v(&e),
            };
        }
        Err(e) => out.wopen = open_v(&e),
    }
    drop(reader);
    out.reread = match Reader::<FuzzValue>::options().init_timeout(Duration::ZERO).open(name) {
        Ok(mut r) => match r.read() {
            Ok(s) => {
                std::hint::black_box(touch(&s));
                "Ok"
            }
            Err(e) => read_v(&e),
        },
        Err(e) => open_v(&e),
    };
    out
}

// ------------------------------------------------------------ fuzz entry points

/// Target `header`: bytes become (part of) a data segment or reader table, then
/// `probe`. Input layout: `mode` byte, then either the raw object (mode bit 0
/// clear) or 11-byte patches `[off u16][kind u8][value u64]` over a valid object.
pub fn header_case(data: &[u8]) -> Outcome {
    let obj = valid_object("hdr", 2);
    let Some((&mode, rest)) = data.split_first() else { return probe(&obj.0) };
    let target = if mode & 2 == 0 { obj.data_file() } else { obj.readers_file() };
    if mode & 1 == 0 {
        target.set_len(rest.len() as u64).unwrap();
        target.write_all_at(rest, 0).unwrap();
    } else {
        for p in rest.chunks_exact(11) {
            let off = u16::from_le_bytes([p[0], p[1]]) as u64;
            let v = u64::from_le_bytes(p[3..11].try_into().unwrap());
            match p[2] % 5 {
                0 => write_u64(&target, off & !7, v),
                1 => write_u32(&target, off & !3, v as u32),
                2 => target.write_all_at(&[v as u8], off).unwrap(),
                3 => target.set_len(v % (64 << 10)).unwrap(),
                _ => {
                    // Patch a slot-table / reader-entry field with a small value.
                    write_u64(&target, (256 + (off % 6) * 64 + (v % 6) * 8) & !7, v >> 8 & 0xffff)
                }
            }
        }
    }
    drop(target);
    probe(&obj.0)
}

/// Target `payload`: a valid object whose current slot holds the fuzzer's
/// bytes; `read` must return Ok (then the view is walked) or `Invalid`.
pub struct PayloadRig {
    obj: Obj,
    reader: Reader<FuzzValue>,
    file: File,
    offset: u64,
    capacity: u64,
    gen: u64,
}

const SLOT: u64 = 0;

impl PayloadRig {
    pub fn new() -> PayloadRig {
        let obj = Obj::new("payload");
        let mut w = Writer::<FuzzValue>::options().slots(2).capacity(64 << 10).create(&obj.0).unwrap();
        w.publish(&FuzzValue::new(1, 1)).unwrap(); // gen 1 in slot 0
        drop(w);
        let info = shmstate::inspect(&obj.0).unwrap();
        let slot = &info.slots[SLOT as usize];
        let reader = Reader::<FuzzValue>::open(&obj.0).unwrap();
        let file = obj.data_file();
        PayloadRig { offset: slot.offset, capacity: slot.capacity, obj, reader, file, gen: 1 }
    }

    /// Publishes `data` (cut to the slot's capacity) as a new generation by
    /// writing the slot entry and the publish word, as a writer would.
    pub fn run(&mut self, data: &[u8]) -> &'static str {
        let data = &data[..data.len().min(self.capacity as usize)];
        self.gen += 1;
        let entry = 256 + SLOT * 64;
        self.file.write_all_at(data, self.offset).unwrap();
        write_u64(&self.file, entry + 24, data.len() as u64); // len
        write_u64(&self.file, entry, self.gen); // gen
        write_u32(&self.file, entry + 40, 2); // state = SEALED
                                              // The slot's pin count in the reader table starts again with the
                                              // generation's tag (after the header and `capacity` entries).
        let readers = self.obj.readers_file();
        let mut capacity = [0u8; 4];
        readers.read_exact_at(&mut capacity, 8).unwrap();
        let counts = 64 + 64 * u32::from_le_bytes(capacity) as u64;
        write_u64(&readers, counts + SLOT * 8, (self.gen & 0xffff_ffff) << 32);
        write_u64(&self.file, 128, self.gen << 12 | SLOT); // current
        match self.reader.read() {
            Ok(s) => {
                std::hint::black_box(touch(&s));
                "Ok"
            }
            Err(ReadError::Invalid { generation, .. }) => {
                assert_eq!(generation, self.gen);
                "Invalid"
            }
            Err(e) => panic!("payload of {} bytes: unexpected {e:?} (want Ok or Invalid)", data.len()),
        }
    }

    pub fn name(&self) -> &str {
        &self.obj.0
    }
}

impl Default for PayloadRig {
    fn default() -> Self {
        Self::new()
    }
}

/// Target `schema`: `SchemaDoc::decode` never panics; a decoded doc prints.
pub fn schema_case(data: &[u8]) -> bool {
    match shmstate::schema::SchemaDoc::decode(data) {
        Ok(doc) => {
            std::hint::black_box(format!("{doc}"));
            std::hint::black_box(doc.root());
            true
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
            false
        }
    }
}

/// Target `dynamic`: `shmstate::dynamic::decode` on arbitrary bytes never
/// panics, with the fuzz type's schema or with a fuzzed one, and
/// `dynamic::validate` accepts exactly what it accepts (up to the value limit). The first byte
/// picks: even, the rest is a snapshot of `FuzzValue`; odd, the next two bytes
/// (little-endian) are the length of a stored schema (`SchemaDoc::decode`),
/// and what follows it is the snapshot.
pub fn dynamic_case(data: &[u8]) -> bool {
    use shmstate::dynamic::{decode_with, Limits};
    use shmstate::schema::{schema_of, SchemaDoc};
    let Some((&mode, rest)) = data.split_first() else { return false };
    let (doc, bytes) = if mode % 2 == 0 {
        (schema_of::<FuzzValue>(), rest)
    } else {
        let Some((len, rest)) = rest.split_first_chunk::<2>() else { return false };
        let (schema, bytes) = rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()));
        match SchemaDoc::decode(schema) {
            Ok(doc) => (doc, bytes),
            Err(_) => return false,
        }
    };
    // Small limits keep each run fast; the checks are the same at any limit.
    let limits = Limits { max_depth: 64, max_values: 100_000 };
    let decoded = decode_with(&doc, bytes, limits);
    // `validate` (the bridge's check) accepts what `decode` accepts; it may
    // accept more only where `decode` hit the value limit (plain-number
    // sequences are not counted by `validate`).
    match (&decoded, shmstate::dynamic::validate(&doc, bytes, limits)) {
        (Ok(_), Err(e)) => panic!("decode accepts, validate refuses: {e}"),
        (Err(e), Ok(())) => assert!(e.to_string().contains("limit"), "validate accepts, decode refuses: {e}"),
        _ => {}
    }
    match decoded {
        Ok(value) => {
            std::hint::black_box(format!("{value:#}"));
            true
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
            false
        }
    }
}

// ------------------------------------------------ dynamic_differential types

/// A fixed hasher: hash tables (and so snapshots) are the same on every run,
/// so an input replays as it ran.
pub type Fixed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Strings (inline and out of line), a `Vec<String>`, both maps, an enum.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct DiffProfile {
    pub name: String,
    pub hosts: Vec<String>,
    pub limits: std::collections::BTreeMap<String, u32>,
    pub ports: HashMap<u16, String, Fixed>,
    pub shape: Shape,
}

/// The other kinds: std types with invariants of their own, shared pointers
/// (two `Arc`s of one value and of one slice), `Rc`s, sets, tuples, arrays,
/// options, boxes, results, addresses.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
pub struct DiffKinds {
    pub timeout: Duration,
    pub id: std::num::NonZeroU32,
    pub port: Option<std::num::NonZeroU16>,
    pub label: Box<str>,
    pub first: std::sync::Arc<String>,
    pub second: std::sync::Arc<String>,
    pub words: std::sync::Arc<str>,
    pub blob: std::sync::Arc<[u8]>,
    pub same_blob: std::sync::Arc<[u8]>,
    pub note: std::rc::Rc<String>,
    pub local: std::rc::Rc<[u16]>,
    pub boxed: Box<(u8, char)>,
    pub maybe: Option<Box<Shape>>,
    pub tags: std::collections::HashSet<String, Fixed>,
    pub sorted: std::collections::BTreeSet<u32>,
    pub queue: std::collections::VecDeque<i16>,
    pub grid: [[bool; 2]; 3],
    pub pair: (String, u64),
    pub addr: std::net::SocketAddr,
    pub ips: Vec<std::net::IpAddr>,
    pub outcome: Result<u8, String>,
}

/// The snapshot `dynamic_differential_case` mutates: type `kind % 4`, sized
/// by `n`.
fn differential_base(kind: u8, n: u8) -> (shmstate::schema::SchemaDoc, Vec<u8>) {
    use shmstate::rkyv::{rancor::Error, to_bytes};
    use shmstate::schema::schema_of;
    let n = usize::from(n);
    let text = |i: usize| if i % 3 == 0 { format!("out-of-line string {i}") } else { i.to_string() };
    match kind % 4 {
        0 => (schema_of::<FuzzValue>(), to_bytes::<Error>(&FuzzValue::new(n as u64, n % 9)).unwrap().to_vec()),
        1 => {
            let v = DiffProfile {
                name: text(n),
                hosts: (0..n % 6).map(text).collect(),
                limits: (0..n % 13).map(|i| (text(i), i as u32)).collect(),
                ports: (0..n % 7).map(|i| (i as u16 * 11, text(i + 1))).collect(),
                shape: match n % 3 {
                    0 => Shape::Empty,
                    1 => Shape::Circle(n as f64),
                    _ => Shape::Poly { points: vec![(1, -1); n % 4], name: Some(text(n)) },
                },
            };
            (schema_of::<DiffProfile>(), to_bytes::<Error>(&v).unwrap().to_vec())
        }
        2 => {
            let shared = std::sync::Arc::new(text(n));
            let blob: std::sync::Arc<[u8]> = (0..n as u8 % 5).collect();
            let v = DiffKinds {
                timeout: Duration::new(n as u64, 999_999_000 + n as u32),
                id: std::num::NonZeroU32::new(1 + n as u32 % 2).unwrap(),
                port: std::num::NonZeroU16::new(n as u16 % 3 * 0x100),
                label: text(n).into(),
                first: shared.clone(),
                second: shared,
                words: text(n + 1).into(),
                same_blob: blob.clone(),
                blob,
                note: std::rc::Rc::new(text(n + 3)),
                local: (0..n as u16 % 4).collect(),
                boxed: Box::new((n as u8, 'λ')),
                maybe: (n % 2 == 0).then(|| Box::new(Shape::Poly { points: vec![(2, 3)], name: None })),
                tags: (0..n % 5).map(text).collect(),
                sorted: (0..n as u32 % 20).collect(),
                queue: (0..n as i16 % 4).collect(),
                grid: [[n % 2 == 0, true], [false, false], [true, n % 3 == 0]],
                pair: (text(n + 2), n as u64),
                addr: std::net::SocketAddr::from(([10, 0, 0, n as u8], 8080)),
                ips: vec![std::net::IpAddr::from([127, 0, 0, 1]); n % 3],
                outcome: if n % 2 == 0 { Ok(n as u8) } else { Err(text(n)) },
            };
            (schema_of::<DiffKinds>(), to_bytes::<Error>(&v).unwrap().to_vec())
        }
        // B-trees of up to three levels (5 entries a node).
        _ => {
            let v: std::collections::BTreeMap<u16, String> = (0..n as u16 % 64).map(|i| (i, text(i.into()))).collect();
            (schema_of::<std::collections::BTreeMap<u16, String>>(), to_bytes::<Error>(&v).unwrap().to_vec())
        }
    }
}

/// Target `dynamic_differential`: `dynamic::validate` accepts a snapshot
/// exactly when bytecheck (`rkyv::access`, what every typed reader runs) does,
/// and `dynamic::decode` agrees with `validate`. Input: `kind`, `n` (the base
/// snapshot: a real one of one of four types, see `differential_base`), then
/// 4-byte patches `[pos lo, pos hi, op, v]` at `pos % len`: op 0 xors `v`, 1
/// sets `v`, 2 adds `v as i8` to the `i32` around `pos` (nudging relative
/// pointers), 3 points the `i32` around `pos` at byte `4·v` as a relative
/// pointer (aliasing), 4 truncates to `pos % len` bytes; a trailing partial
/// patch is ignored.
pub fn dynamic_differential_case(data: &[u8]) -> bool {
    use shmstate::dynamic::{decode_with, validate, Limits};
    use shmstate::rkyv::{access, rancor::Error, util::AlignedVec};
    let [kind, n, patches @ ..] = data else { return false };
    let (doc, mut bytes) = differential_base(*kind, *n);
    for p in patches.chunks_exact(4) {
        let len = bytes.len();
        if len == 0 {
            break;
        }
        let pos = usize::from(u16::from_le_bytes([p[0], p[1]])) % len;
        // The 4-byte word around `pos` (the last one if `pos` is in a
        // shorter tail), as a little-endian `i32`.
        let word = (pos & !3).min(len.saturating_sub(4));
        let set_word = |bytes: &mut Vec<u8>, f: &dyn Fn(i32) -> i32| {
            if let Some(w) = bytes.get_mut(word..word + 4) {
                let old = i32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                w.copy_from_slice(&f(old).to_le_bytes());
            }
        };
        match p[2] % 5 {
            0 => bytes[pos] ^= p[3],
            1 => bytes[pos] = p[3],
            2 => set_word(&mut bytes, &|old| old.wrapping_add(i32::from(p[3] as i8))),
            3 => set_word(&mut bytes, &|_| 4 * i32::from(p[3]) - word as i32),
            _ => bytes.truncate(pos),
        }
    }
    let mut aligned = AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(&bytes);
    let typed = match kind % 4 {
        0 => access::<ArchivedFuzzValue, Error>(&aligned).map(drop),
        1 => access::<ArchivedDiffProfile, Error>(&aligned).map(drop),
        2 => access::<ArchivedDiffKinds, Error>(&aligned).map(drop),
        _ => access::<shmstate::rkyv::Archived<std::collections::BTreeMap<u16, String>>, Error>(&aligned).map(drop),
    };
    // The default limits, as the bridge and `shmstate dump` use them: within
    // them, these types at these sizes decode whatever bytecheck accepts.
    let limits = Limits::default();
    let checked = validate(&doc, &aligned, limits);
    match (&checked, &typed) {
        (Ok(()), Err(e)) => panic!("validate accepts what bytecheck refuses: {e}"),
        (Err(e), Ok(())) => panic!("validate refuses what bytecheck accepts: {e}"),
        _ => {}
    }
    match (&checked, decode_with(&doc, &aligned, limits)) {
        (Ok(()), Err(e)) => panic!("validate accepts, decode refuses: {e}"),
        (Err(e), Ok(_)) => panic!("decode accepts, validate refuses: {e}"),
        _ => {}
    }
    checked.is_ok()
}

/// Target `ops`: random operation sequences against an in-memory oracle.
/// Every byte is one operation; publishes, reads, reader opens/drops/releases,
/// writer drops (the next publish takes over) and large values (growth).
pub fn ops_case(data: &[u8]) {
    let obj = Obj::new("ops");
    let mut writer: Option<Writer<FuzzValue>> = None;
    let mut readers: Vec<Reader<FuzzValue>> = Vec::new();
    let mut latest: Option<FuzzValue> = None;
    let mut max_live = 0usize;
    let opts = || Writer::<FuzzValue>::options().slots(2).capacity(64).max_readers(MAX_READERS).max_size(64 << 20);
    let mut bytes = data.iter().copied();
    while let Some(op) = bytes.next() {
        let arg = bytes.next().unwrap_or(0) as usize;
        match op % 8 {
            0..=2 => {
                let w = match &mut writer {
                    Some(w) => w,
                    None => {
                        let w = opts().open_or_create(&obj.0).expect("create or take over");
                        let g = w.next_generation().get();
                        assert!(g > latest.as_ref().map_or(0, |v| v.gen), "takeover went back to {g}");
                        writer.insert(w)
                    }
                };
                let words = if op % 8 == 2 { arg * 97 } else { arg % 16 };
                let v = FuzzValue::new(w.next_generation().get(), words);
                assert_eq!(w.publish(&v).expect("publish").get(), v.gen);
                latest = Some(v);
            }
            3 if readers.len() < MAX_READERS as usize => {
                if latest.is_some() || writer.is_some() {
                    readers.push(Reader::open(&obj.0).expect("open reader"));
                    max_live = max_live.max(readers.len());
                }
            }
            4 if !readers.is_empty() => {
                let i = arg % readers.len();
                let r = &mut readers[i];
                match (r.read(), &latest) {
                    (Ok(s), Some(v)) => {
                        assert_eq!(s.generation().get(), v.gen);
                        assert_eq!(&s.to_value().unwrap(), v, "read differs from the oracle");
                    }
                    (Err(ReadError::Empty { .. }), None) => {}
                    (r, v) => panic!(
                        "read {:?} vs oracle generation {:?}",
                        r.map(|s| s.generation()),
                        v.as_ref().map(|v| v.gen)
                    ),
                }
            }
            5 if !readers.is_empty() => {
                readers.swap_remove(arg % readers.len());
            }
            6 if !readers.is_empty() => {
                let i = arg % readers.len();
                readers[i].release();
            }
            7 => writer = None,
            _ => {}
        }
        if let Ok(info) = shmstate::inspect(&obj.0) {
            assert!(
                info.slot_count <= (max_live as u32 + 2).max(2),
                "slot count {} with ≤ {max_live} readers",
                info.slot_count
            );
            assert_eq!(info.generation, latest.as_ref().map_or(0, |v| v.gen));
        }
    }
}

// ------------------------------------------------------------------ encode

/// Target `encode`: the encoder inverts the decoder. Input: `mode`, then
/// - `mode % 3 == 0`: snapshot bytes for the fixed `FuzzValue` schema;
/// - `mode % 3 == 1`: a schema (2-byte length, its bytes) and snapshot bytes;
/// - `mode % 3 == 2`: `kind`, `n` and 2-byte patches `[pos, v]` (xor `v` at
///   `pos % len`) of a real archive (`differential_base`).
///
/// Whatever decodes encodes again without panicking; for the crate's own
/// schemas (not arbitrary ones, where a hash map key type whose hash the
/// encoder does not know is an error) the encoded bytes validate and pass
/// bytecheck, encoding is a fixpoint (the encoded bytes decode to a value
/// that encodes to them again), and values with maps in the order the
/// encoder writes them (`FuzzValue`'s, whose one map the decoder sorts, and
/// unpatched archives) decode back to themselves. Patched bytes may hold
/// map keys twice (an error) or a B-tree out of order (which the encoder
/// sorts). An unpatched archive of a type without multi-entry hash maps or
/// shared pointers comes back byte for byte.
pub fn encode_case(data: &[u8]) -> bool {
    use shmstate::dynamic::{decode_with, encode, validate, Limits};
    use shmstate::rkyv::{access, rancor::Error, util::AlignedVec};
    use shmstate::schema::{schema_of, SchemaDoc};
    let Some((&mode, rest)) = data.split_first() else { return false };
    let mut kind = 0;
    let mut exact = false;
    let mut patched = 0;
    let (doc, bytes, ours) = match mode % 3 {
        0 => (schema_of::<FuzzValue>(), rest.to_vec(), true),
        1 => {
            let Some((len, rest)) = rest.split_first_chunk::<2>() else { return false };
            let (schema, bytes) = rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()));
            match SchemaDoc::decode(schema) {
                Ok(doc) => (doc, bytes.to_vec(), false),
                Err(_) => return false,
            }
        }
        _ => {
            let [k, n, patches @ ..] = rest else { return false };
            kind = *k % 4;
            let (doc, mut bytes) = differential_base(kind, *n);
            for p in patches.chunks_exact(2) {
                let len = bytes.len();
                bytes[usize::from(p[0]) * 16 % len] ^= p[1];
            }
            patched = patches.len() / 2;
            exact = patched == 0 && (kind == 0 || kind == 3);
            (doc, bytes, true)
        }
    };
    let limits = Limits { max_depth: 64, max_values: 100_000 };
    let Ok(value) = decode_with(&doc, &bytes, limits) else { return false };
    let encoded = match encode(&doc, &value) {
        Ok(e) => e,
        Err(e) if !ours => {
            std::hint::black_box(e.to_string());
            return false;
        }
        Err(e) if e.what.contains("appears twice") => return false,
        Err(e) => panic!("a decoded value of the crate's own schema does not encode: {e}"),
    };
    if ours {
        if let Err(e) = validate(&doc, &encoded, limits) {
            panic!("the encoder's bytes do not validate: {e}");
        }
        let mut aligned = AlignedVec::<16>::with_capacity(encoded.len());
        aligned.extend_from_slice(&encoded);
        let typed = match (mode % 3, kind) {
            (0, _) | (_, 0) => access::<ArchivedFuzzValue, Error>(&aligned).map(drop),
            (_, 1) => access::<ArchivedDiffProfile, Error>(&aligned).map(drop),
            (_, 2) => access::<ArchivedDiffKinds, Error>(&aligned).map(drop),
            _ => access::<shmstate::rkyv::Archived<std::collections::BTreeMap<u16, String>>, Error>(&aligned).map(drop),
        };
        if let Err(e) = typed {
            panic!("bytecheck refuses the encoder's bytes: {e}");
        }
        let again = decode_with(&doc, &encoded, limits).expect("validated bytes decode");
        assert_eq!(encode(&doc, &again).ok(), Some(encoded.clone()), "encoding is no fixpoint");
        if mode % 3 == 0 || patched == 0 {
            // Debug text: NaN is not equal to itself, but prints the same.
            assert_eq!(format!("{again:?}"), format!("{value:?}"), "encode then decode changed the value");
        }
        if exact {
            assert_eq!(encoded, bytes, "the encoder's bytes differ from rkyv's");
        }
    }
    true
}

// ------------------------------------------------------------ map pages

/// Target `map`: a valid map (three commits of 300 keys, its writer gone)
/// whose pages segment the fuzzer's edits overwrite (restored before each
/// case); the typed reader, the type-erased reader and a writer's takeover
/// must each give errors or values, never a crash.
pub struct MapRig {
    obj: Obj,
    file: File,
    original: Vec<u8>,
}

/// Keys the map holds: `k * 3 + g` for k < 300, g < 3.
const MAP_KEYS: u64 = 900;

impl MapRig {
    pub fn new() -> MapRig {
        use shmstate::map::MapWriter;
        let obj = Obj::new("map");
        let mut w = MapWriter::<u64, FuzzValue>::create(&obj.0).unwrap();
        for g in 0..3 {
            for k in 0..300u64 {
                w.insert(k * 3 + g, FuzzValue::new(k, (k % 4) as usize));
            }
            w.commit().unwrap();
        }
        drop(w);
        let path = format!("/dev/shm/shmstate.{}.pages", obj.0);
        let original = std::fs::read(&path).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        MapRig { obj, file, original }
    }

    /// Restores the pages, applies `data` as edits (3 bytes of offset, 1 of
    /// length, then that many bytes), and reads the map three ways.
    pub fn run(&mut self, data: &[u8]) -> &'static str {
        use shmstate::map::{MapReader, MapWriter, RawMapReader};
        self.file.write_all_at(&self.original, 0).unwrap();
        let mut rest = data;
        while rest.len() >= 4 {
            let at = u32::from_le_bytes([rest[0], rest[1], rest[2], 0]) as usize % self.original.len();
            let n = (rest[3] as usize).min(rest.len() - 4).min(self.original.len() - at);
            self.file.write_all_at(&rest[4..4 + n], at as u64).unwrap();
            rest = &rest[4 + n..];
        }
        let mut outcome = "Ok";
        if let Ok(mut r) = MapReader::<u64, FuzzValue>::open(&self.obj.0) {
            match r.read() {
                Ok(snap) => {
                    for k in (0..MAP_KEYS + 10).step_by(7) {
                        match snap.get(&k) {
                            Ok(Some(v)) => {
                                std::hint::black_box(touch(v));
                            }
                            Ok(None) => {}
                            Err(_) => outcome = "Err",
                        }
                    }
                    for item in snap.range(100..400) {
                        match item {
                            Ok((k, v)) => {
                                std::hint::black_box((k, touch(v)));
                            }
                            Err(_) => outcome = "Err",
                        }
                    }
                }
                Err(_) => outcome = "Err",
            }
        } else {
            outcome = "Err";
        }
        if let Ok(mut r) = RawMapReader::open(&self.obj.0) {
            if let Ok(snap) = r.read() {
                for item in snap.iter() {
                    std::hint::black_box(item.map(|(k, v)| format!("{k}{v}")).ok());
                }
                for k in (0..MAP_KEYS).step_by(13) {
                    std::hint::black_box(snap.get_bytes(&k.to_be_bytes()).ok());
                }
                std::hint::black_box(snap.prefix(&[0, 0, 0, 0, 0, 0, 1]).count());
            }
        }
        // A writer taking over walks and checks the whole current tree.
        std::hint::black_box(MapWriter::<u64, FuzzValue>::open_or_create(&self.obj.0).map(|w| w.len()).ok());
        outcome
    }
}

impl Default for MapRig {
    fn default() -> Self {
        Self::new()
    }
}
