//! Bad bytes are errors (docs/DESIGN.md, invariant 7): a process with write access
//! corrupts every field of the data segment and the reader table, truncates
//! them, writes a newer format; then Reader::open / read, inspect and
//! Writer::open_or_create / publish must return a specific error variant:
//! never a panic, SIGBUS, hang or UB.
//!
//! Each case runs in a child process (the test binary re-executed with a role),
//! so a SIGBUS shows up as a signal exit status and fails the case instead of
//! killing the harness. Offsets are those of src/protocol/layout.rs.
#![cfg(not(miri))]
#![allow(clippy::identity_op)] // `slot(i) + S_GEN` with S_GEN = 0 reads as the layout does

mod common;
#[path = "../fuzz/fingerprint_case.rs"]
mod fingerprint_case;
#[path = "../fuzz/harness.rs"]
mod harness;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{read_u64, valid_object, write_u32, write_u64, FuzzValue, Obj, Outcome};
use shmstate::{PublishError, Reader, Writer};

const ENTRY: &str = "child_entry";

// Header field offsets (src/protocol/layout.rs `Header`, `SlotEntry`, reader table).
const MAGIC: u64 = 0;
const FORMAT_VERSION: u64 = 8;
const HEADER_SIZE: u64 = 12;
const FINGERPRINT: u64 = 16;
const MAX_SLOTS: u64 = 32;
const SLOT_COUNT: u64 = 36;
const SCHEMA_LEN: u64 = 40;
const DATA_START: u64 = 48;
const SEGMENT_LEN: u64 = 56;
const CURRENT: u64 = 128;
const fn slot(i: u64) -> u64 {
    256 + i * 64
}
const S_GEN: u64 = 0;
const S_OFFSET: u64 = 8;
const S_CAPACITY: u64 = 16;
const S_LEN: u64 = 24;
const S_STATE: u64 = 40;
const R_MAGIC: u64 = 0;
const R_CAPACITY: u64 = 8;
const R_HIGH_WATER: u64 = 12;
const R_COUNT_SLOTS: u64 = 20;
/// Slot `k`'s pin count: after the header and `capacity` entries.
fn pin_count(f: &File, k: u64) -> u64 {
    let capacity = read_u64(f, R_CAPACITY) & 0xffff_ffff;
    64 + 64 * capacity + 8 * k
}
const fn reader_entry(i: u64) -> u64 {
    64 + i * 64
}

#[test]
#[ignore = "child process entry point (runs only with a role)"]
fn child_entry() {
    let Some(role) = common::role() else { return };
    let parts: Vec<&str> = role.split_whitespace().collect();
    match parts.as_slice() {
        ["probe", name] => println!("OUTCOME {}", harness::probe(name).line()),
        _ => panic!("unknown role {role:?}"),
    }
}

/// Runs `probe` on `name` in a child; fails on a signal, a panic or a hang.
fn probe_in_child(name: &str, case: &str) -> Outcome {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([ENTRY, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(common::ROLE_VAR, format!("probe {name}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("case {case}: probe hung");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "case {case}: probe child died: {} \n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text.lines().find_map(|l| l.strip_prefix("OUTCOME ")).unwrap_or_else(|| panic!("case {case}: {text}"));
    Outcome::parse(line).unwrap()
}

/// One corruption and what each operation must return afterwards.
/// `read`, `publish` and `reread` patterns allow alternatives with '|'.
struct Case {
    name: &'static str,
    corrupt: fn(&Obj),
    expect: [&'static str; 6],
}

fn matches(pattern: &str, got: &str) -> bool {
    pattern.split('|').any(|p| p == got)
}

fn data(o: &Obj) -> File {
    o.data_file()
}

fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let obj = valid_object("bad", 2); // gen 1 in slot 0, gen 2 (current) in slot 1
        (c.corrupt)(&obj);
        let got = probe_in_child(&obj.0, c.name);
        let fields = [got.open, got.read, got.inspect, got.wopen, got.publish, got.reread];
        if !c.expect.iter().zip(fields).all(|(p, g)| matches(p, g)) {
            failures.push(format!("{:<34} got  {}\n{:<34} want {:?}", c.name, got.line(), "", c.expect));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

const OK: [&str; 6] = ["Ok", "Ok", "Ok", "Ok", "Ok", "Ok"];
const CORRUPT: [&str; 6] = ["Corrupt", "-", "Corrupt", "Corrupt", "-", "Corrupt"];

macro_rules! case {
    ($name:expr, |$o:ident| $body:expr, $expect:expr) => {
        Case {
            name: $name,
            corrupt: {
                fn f($o: &Obj) {
                    $body;
                }
                f
            },
            expect: $expect,
        }
    };
}

#[test]
fn header_fields() {
    if common::role().is_some() {
        return;
    }
    let fv = ["FormatVersion", "-", "FormatVersion", "FormatVersion", "-", "FormatVersion"];
    check(&[
        case!("magic garbage", |o| write_u64(&data(o), MAGIC, 0xdead_beef), CORRUPT),
        case!(
            "magic zero (creator died)",
            |o| write_u64(&data(o), MAGIC, 0),
            ["NotInitialized", "-", "NotInitialized", "Ok", "Ok", "Ok"]
        ),
        case!("format version newer", |o| write_u32(&data(o), FORMAT_VERSION, 4), fv),
        case!("format version zero", |o| write_u32(&data(o), FORMAT_VERSION, 0), fv),
        case!("format version max", |o| write_u32(&data(o), FORMAT_VERSION, u32::MAX), fv),
        case!("header size + page", |o| write_u32(&data(o), HEADER_SIZE, 8192), CORRUPT),
        case!("header size zero", |o| write_u32(&data(o), HEADER_SIZE, 0), CORRUPT),
        case!(
            "fingerprint",
            |o| {
                let f = data(o);
                write_u64(&f, FINGERPRINT, read_u64(&f, FINGERPRINT) ^ 1)
            },
            ["TypeMismatch", "-", "Ok", "TypeMismatch", "-", "TypeMismatch"]
        ),
        case!("max slots zero", |o| write_u32(&data(o), MAX_SLOTS, 0), CORRUPT),
        case!("max slots 5000", |o| write_u32(&data(o), MAX_SLOTS, 5000), CORRUPT),
        case!("max slots u32::MAX", |o| write_u32(&data(o), MAX_SLOTS, u32::MAX), CORRUPT),
        case!("max slots 4096 (header size mismatch)", |o| write_u32(&data(o), MAX_SLOTS, 4096), CORRUPT),
        // The header alone would allow 7 slots, but the reader table holds a
        // pin count for each of the slots the object was made with: the pair
        // does not match (format 3).
        case!(
            "max slots 7 (same header size)",
            |o| write_u32(&data(o), MAX_SLOTS, 7),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!("slot count > max slots", |o| write_u32(&data(o), SLOT_COUNT, 7), CORRUPT),
        case!("slot count u32::MAX", |o| write_u32(&data(o), SLOT_COUNT, u32::MAX), CORRUPT),
        case!("slot count zero", |o| write_u32(&data(o), SLOT_COUNT, 0), ["Ok", "Ok", "Ok", "Corrupt", "-", "Ok"]),
        case!("slot count = max (zero entries)", |o| write_u32(&data(o), SLOT_COUNT, 6), OK),
        case!("schema len 2 MiB", |o| write_u64(&data(o), SCHEMA_LEN, 2 << 20), CORRUPT),
        case!("schema len u64::MAX", |o| write_u64(&data(o), SCHEMA_LEN, u64::MAX), CORRUPT),
        case!(
            "schema len - 1 (undecodable schema)",
            |o| {
                let f = data(o);
                write_u64(&f, SCHEMA_LEN, read_u64(&f, SCHEMA_LEN) - 1)
            },
            OK
        ),
        case!(
            "data start misaligned",
            |o| {
                let f = data(o);
                write_u64(&f, DATA_START, read_u64(&f, DATA_START) + 8)
            },
            CORRUPT
        ),
        case!("data start inside header", |o| write_u64(&data(o), DATA_START, 64), CORRUPT),
        case!("data start past segment", |o| write_u64(&data(o), DATA_START, 1 << 30), CORRUPT),
        case!("data start u64::MAX", |o| write_u64(&data(o), DATA_START, u64::MAX & !63), CORRUPT),
        case!(
            "segment len > object",
            |o| {
                let f = data(o);
                write_u64(&f, SEGMENT_LEN, f.metadata().unwrap().len() + 1)
            },
            CORRUPT
        ),
        case!("segment len u64::MAX", |o| write_u64(&data(o), SEGMENT_LEN, u64::MAX), CORRUPT),
        // Below, a current slot whose region is unusable: readers report Corrupt;
        // a new writer still takes over (it never writes the current slot, and
        // gives that slot a fresh region once it is free), so the object heals.
        case!("segment len < data start", |o| write_u64(&data(o), SEGMENT_LEN, 4096), CORRUPT),
        case!(
            "segment len = data start",
            |o| {
                let f = data(o);
                write_u64(&f, SEGMENT_LEN, read_u64(&f, DATA_START))
            },
            ["Ok", "Ok", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!("object grown 1 GiB (sparse)", |o| data(o).set_len(1 << 30).unwrap(), OK),
        case!(
            "object truncated to 0",
            |o| data(o).set_len(0).unwrap(),
            ["NotInitialized", "-", "NotInitialized", "Ok", "Ok", "Ok"]
        ),
        case!(
            "object truncated to 100",
            |o| data(o).set_len(100).unwrap(),
            ["NotInitialized", "-", "NotInitialized", "Ok", "Ok", "Ok"]
        ),
        case!("object truncated inside the header", |o| data(o).set_len(300).unwrap(), CORRUPT),
        case!(
            "object truncated by a page",
            |o| {
                let f = data(o);
                f.set_len(f.metadata().unwrap().len() - 4096).unwrap()
            },
            CORRUPT
        ),
        case!(
            "all zero header page",
            |o| data(o).write_all_at(&[0; 4096], 0).unwrap(),
            ["NotInitialized", "-", "NotInitialized", "Ok", "Ok", "Ok"]
        ),
        case!("all 0xff header page", |o| data(o).write_all_at(&[0xff; 4096], 0).unwrap(), CORRUPT),
    ]);
}

#[test]
fn publish_word_and_slot_table() {
    if common::role().is_some() {
        return;
    }
    check(&[
        case!("current zero", |o| write_u64(&data(o), CURRENT, 0), ["Ok", "Empty", "Ok", "Ok", "Ok", "Ok"]),
        case!(
            "current slot 4095",
            |o| write_u64(&data(o), CURRENT, 2 << 12 | 4095),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current slot 5 (< max, > count)",
            |o| write_u64(&data(o), CURRENT, 2 << 12 | 5),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current names an unsealed slot",
            |o| write_u64(&data(o), CURRENT, 2 << 12 | 2),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current generation mismatch",
            |o| write_u64(&data(o), CURRENT, 9 << 12 | 1),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current u64::MAX",
            |o| write_u64(&data(o), CURRENT, u64::MAX),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current slot offset misaligned",
            |o| {
                let f = data(o);
                write_u64(&f, slot(1) + S_OFFSET, read_u64(&f, slot(1) + S_OFFSET) + 8)
            },
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot offset 0 (header)",
            |o| write_u64(&data(o), slot(1) + S_OFFSET, 0),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot offset 2^40",
            |o| write_u64(&data(o), slot(1) + S_OFFSET, 1 << 40),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot offset u64::MAX",
            |o| write_u64(&data(o), slot(1) + S_OFFSET, u64::MAX & !63),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot offset = other slot",
            |o| {
                let f = data(o);
                write_u64(&f, slot(1) + S_OFFSET, read_u64(&f, slot(0) + S_OFFSET))
            },
            ["Ok", "Ok|Invalid", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot len 0",
            |o| write_u64(&data(o), slot(1) + S_LEN, 0),
            ["Ok", "Invalid", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot len - 8",
            |o| {
                let f = data(o);
                write_u64(&f, slot(1) + S_LEN, read_u64(&f, slot(1) + S_LEN) - 8)
            },
            ["Ok", "Invalid", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot len 2^40",
            |o| write_u64(&data(o), slot(1) + S_LEN, 1 << 40),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot len u64::MAX",
            |o| write_u64(&data(o), slot(1) + S_LEN, u64::MAX),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot gen",
            |o| write_u64(&data(o), slot(1) + S_GEN, 7),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot state writing",
            |o| write_u32(&data(o), slot(1) + S_STATE, 1),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current slot state garbage",
            |o| write_u32(&data(o), slot(1) + S_STATE, 77),
            ["Ok", "Corrupt", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "current slot capacity u64::MAX",
            |o| write_u64(&data(o), slot(1) + S_CAPACITY, u64::MAX),
            ["Ok", "Ok", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "current slot capacity past the end",
            |o| write_u64(&data(o), slot(1) + S_CAPACITY, 1 << 30),
            ["Ok", "Ok", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!("free slot capacity past the end", |o| write_u64(&data(o), slot(0) + S_CAPACITY, 1 << 30), OK),
        case!("free slot offset u64::MAX", |o| write_u64(&data(o), slot(0) + S_OFFSET, u64::MAX), OK),
        case!("free slot state garbage", |o| write_u32(&data(o), slot(0) + S_STATE, 77), OK),
        case!("free slot gen huge (sealed)", |o| write_u64(&data(o), slot(0) + S_GEN, 1 << 40), OK),
        case!(
            "random payload bytes",
            |o| {
                let f = data(o);
                let off = read_u64(&f, slot(1) + S_OFFSET);
                let mut x = 0x1234_5678_9abc_def1u64;
                let bytes: Vec<u8> = (0..512)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                f.write_all_at(&bytes, off).unwrap()
            },
            ["Ok", "Ok|Invalid", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "payload tail flipped (rkyv root)",
            |o| {
                let f = data(o);
                let end = read_u64(&f, slot(1) + S_OFFSET) + read_u64(&f, slot(1) + S_LEN);
                f.write_all_at(&[0x7f; 8], end - 8).unwrap()
            },
            ["Ok", "Invalid", "Ok", "Ok", "Ok", "Ok"]
        ),
    ]);
}

#[test]
fn reader_table() {
    if common::role().is_some() {
        return;
    }
    check(&[
        case!(
            "reader table magic",
            |o| write_u64(&o.readers_file(), R_MAGIC, 1),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "reader table capacity 0",
            |o| write_u32(&o.readers_file(), R_CAPACITY, 0),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "reader table capacity 2^20",
            |o| write_u32(&o.readers_file(), R_CAPACITY, 1 << 20),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "reader table capacity > size",
            |o| write_u32(&o.readers_file(), R_CAPACITY, 1000),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!("reader table high water u32::MAX", |o| write_u32(&o.readers_file(), R_HIGH_WATER, u32::MAX), OK),
        case!(
            "reader table with fewer pin counts than slots",
            |o| write_u32(&o.readers_file(), R_COUNT_SLOTS, 1),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "pin count of the current slot with another tag",
            |o| write_u64(&o.readers_file(), pin_count(&o.readers_file(), 1), 1),
            ["Ok", "Corrupt", "Ok", "Ok", "Ok", "Ok"]
        ),
        case!(
            "reader table truncated",
            |o| o.readers_file().set_len(10).unwrap(),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "reader table truncated to one entry",
            |o| o.readers_file().set_len(128).unwrap(),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "reader table missing",
            |o| std::fs::remove_file(o.readers_path()).unwrap(),
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
        case!(
            "garbage pins (dead owners)",
            |o| {
                let f = o.readers_file();
                write_u32(&f, R_HIGH_WATER, 4);
                for i in 0..4 {
                    write_u64(&f, reader_entry(i), (i + 3) << 12 | i)
                }
            },
            OK
        ),
        case!(
            "pins at slots >= max_slots",
            |o| {
                let f = o.readers_file();
                write_u32(&f, R_HIGH_WATER, 4);
                for i in 0..4 {
                    write_u64(&f, reader_entry(i), 5 << 12 | (4000 + i))
                }
            },
            OK
        ),
        case!(
            "random reader table bytes",
            |o| {
                let f = o.readers_file();
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                let bytes: Vec<u8> = (0..320)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                f.write_all_at(&bytes, 0).unwrap()
            },
            ["Corrupt", "-", "Ok", "Corrupt", "-", "Corrupt"]
        ),
    ]);
}

/// Garbage pins in entries whose owners are alive (so they cannot be
/// reclaimed): the writer skips the named slots, grows up to max_slots at
/// most, and keeps publishing (AllSlotsPinned is the only acceptable failure).
#[test]
fn garbage_pins_with_live_owners_cannot_break_the_writer() {
    let obj = Obj::new("livepins");
    let mut w = Writer::<FuzzValue>::options().slots(2).capacity(256).max_readers(4).create(&obj.0).unwrap();
    w.publish(&FuzzValue::new(1, 1)).unwrap();
    let mut readers: Vec<_> = (0..4).map(|_| Reader::<FuzzValue>::open(&obj.0).unwrap()).collect();
    let f = obj.readers_file();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let (mut ok, mut all_pinned) = (0, 0);
    for i in 0..300u64 {
        for e in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slot = if x % 5 == 0 { x >> 20 } else { x % 8 };
            write_u64(&f, reader_entry(e), (x >> 40).max(1) << 12 | (slot & 4095));
        }
        write_u32(&f, R_HIGH_WATER, if i % 2 == 0 { u32::MAX } else { 4 });
        let g = w.next_generation().get();
        match w.publish(&FuzzValue::new(g, (i % 50) as usize)) {
            Ok(_) => ok += 1,
            Err(PublishError::AllSlotsPinned { .. }) => all_pinned += 1,
            Err(e) => panic!("publish with garbage pins: {e:?}"),
        }
        let info = shmstate::inspect(&obj.0).unwrap();
        assert!(info.slot_count <= info.max_slots);
    }
    let info = shmstate::inspect(&obj.0).unwrap();
    println!(
        "garbage pins: {ok} publishes ok, {all_pinned} AllSlotsPinned, {} of {} slots",
        info.slot_count, info.max_slots
    );
    // Readers whose own pins were overwritten still read a consistent latest value.
    for e in 0..4 {
        write_u64(&f, reader_entry(e), 0);
    }
    let g = w.publish(&FuzzValue::new(w.next_generation().get(), 3)).unwrap().get();
    for r in &mut readers {
        let s = r.read().unwrap();
        assert_eq!(s.generation().get(), g);
        assert_eq!(s.to_value().unwrap(), FuzzValue::new(g, 3));
    }
}

/// Random payload bytes behind a valid header: `Ok` (then walked) or `Invalid`.
#[test]
fn random_payloads_are_ok_or_invalid() {
    let mut rig = harness::PayloadRig::new();
    let mut x = 0x1234_5678u64;
    let (mut ok, mut invalid) = (0, 0);
    let valid = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&FuzzValue::new(42, 5)).unwrap();
    for i in 0..2000 {
        let mut bytes = valid.to_vec();
        let n = if i % 4 == 0 { (x % 600) as usize } else { bytes.len() };
        bytes.resize(n, 0);
        for _ in 0..(1 + i % 8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !bytes.is_empty() {
                let at = (x as usize >> 8) % bytes.len();
                bytes[at] = x as u8;
            }
        }
        match rig.run(&bytes) {
            "Ok" => ok += 1,
            _ => invalid += 1,
        }
    }
    println!("random payloads: {ok} Ok, {invalid} Invalid");
    assert!(invalid > 0);
}

/// The `fingerprint` fuzz target's checks over pseudo-random inputs: random
/// valid docs keep their fingerprint under relabeling; an edit changes it
/// exactly when the edited type is reachable from the root.
#[test]
fn fingerprint_case_on_random_docs() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let (mut reachable, mut unreachable) = (0, 0);
    for _ in 0..10_000 {
        let bytes: Vec<u8> = (0..160)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        match fingerprint_case::fingerprint_case(&bytes) {
            Some(true) => reachable += 1,
            Some(false) => unreachable += 1,
            None => {}
        }
    }
    println!("edits checked: {reachable} reachable, {unreachable} unreachable");
    assert!(reachable > 1000 && unreachable > 100, "{reachable} reachable, {unreachable} unreachable edits");
}

/// The `dynamic_differential` fuzz target's check over pseudo-random patches
/// of real snapshots: `dynamic::validate` accepts exactly what bytecheck does.
#[test]
fn dynamic_differential_case_on_random_patches() {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut accepted = 0;
    for i in 0..4_000u32 {
        let mut input = vec![(i % 4) as u8, (i / 4 % 251) as u8];
        // One to four patches.
        for _ in 0..=(i % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            input.extend(&x.to_le_bytes()[..4]);
        }
        accepted += u32::from(harness::dynamic_differential_case(&input));
    }
    println!("random patches: {accepted} of 4000 accepted by both");
    assert!(accepted > 100, "{accepted} accepted");
}

/// The `encode` fuzz target's check over real archives of the four
/// differential types, unpatched and with pseudo-random byte flips: what
/// decodes encodes to bytes that validate and pass bytecheck, as a fixpoint,
/// and unpatched archives come back as they were (byte for byte where rkyv's
/// bytes do not depend on a hash map's iteration order or shared pointers).
#[test]
fn encode_case_on_real_and_patched_archives() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut accepted = 0;
    for i in 0..2_000u32 {
        let mut input = vec![2, (i % 4) as u8, (i / 4 % 251) as u8];
        for _ in 0..(i % 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            input.extend(&x.to_le_bytes()[..2]);
        }
        accepted += u32::from(harness::encode_case(&input));
    }
    println!("encode: {accepted} of 2000 decoded and re-encoded");
    assert!(accepted > 700, "{accepted} accepted");
}

/// Replays the seed corpus and every minimized crasher in fuzz/regressions/
/// through the same code paths as the fuzz targets (fuzz/harness.rs).
#[test]
fn fuzz_regressions_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let mut rig = None;
    let mut map_rig = None;
    for dir in ["regressions", "seeds"] {
        for target in
            ["header", "payload", "schema", "ops", "fingerprint", "dynamic", "dynamic_differential", "encode", "map"]
        {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
            let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for path in files {
                let data = std::fs::read(&path).unwrap();
                match target {
                    "header" => {
                        std::hint::black_box(harness::header_case(&data));
                    }
                    "payload" => {
                        rig.get_or_insert_with(harness::PayloadRig::new).run(&data);
                    }
                    "schema" => {
                        harness::schema_case(&data);
                    }
                    "fingerprint" => {
                        let _ = fingerprint_case::fingerprint_case(&data);
                    }
                    "dynamic" => {
                        harness::dynamic_case(&data);
                    }
                    "dynamic_differential" => {
                        harness::dynamic_differential_case(&data);
                    }
                    "encode" => {
                        harness::encode_case(&data);
                    }
                    "map" => {
                        map_rig.get_or_insert_with(harness::MapRig::new).run(&data);
                    }
                    _ => harness::ops_case(&data),
                }
                replayed += 1;
            }
        }
    }
    println!("replayed {replayed} fuzz inputs");
}

/// BUG (src/protocol/slots.rs `recover`): slot entries of free slots are trusted on
/// takeover as long as `offset + capacity <= segment_len`. A free slot whose
/// offset points into the header, or whose bytes overlap the current (pinned)
/// slot, is then written by the new writer: it overwrites the header (the
/// object becomes Corrupt for everyone) or a snapshot a reader holds.
#[test]
fn recover_rejects_free_slot_offset_inside_the_header() {
    let obj = valid_object("ovl-hdr", 2);
    write_u64(&obj.data_file(), slot(0) + S_OFFSET, 0);
    let got = probe_in_child(&obj.0, "free slot offset 0");
    assert_eq!(
        got.line(),
        Outcome { open: "Ok", read: "Ok", inspect: "Ok", wopen: "Ok", publish: "Ok", reread: "Ok" }.line()
    );
}

/// Regression (same cause as above): a free slot aliasing the current slot, which a reader pins.
#[test]
fn recover_rejects_free_slot_aliasing_the_pinned_current_slot() {
    let obj = valid_object("ovl-cur", 2);
    let f = obj.data_file();
    write_u64(&f, slot(0) + S_OFFSET, read_u64(&f, slot(1) + S_OFFSET));
    let mut r = Reader::<FuzzValue>::open(&obj.0).unwrap();
    assert_eq!(r.read().unwrap().generation().get(), 2); // pins slot 1
    let pinned_offset = read_u64(&f, slot(1) + S_OFFSET);
    let mut w = Writer::<FuzzValue>::options().max_readers(harness::MAX_READERS).open_or_create(&obj.0).unwrap();
    w.publish(&FuzzValue::new(w.next_generation().get(), 4)).unwrap();
    let info = shmstate::inspect(&obj.0).unwrap();
    let written = &info.slots[info.current_slot.unwrap() as usize];
    assert_ne!(written.offset, pinned_offset, "the writer wrote over the snapshot a reader pins");
}

/// Writes the small seed corpus in fuzz/seeds/ (committed): `cargo test --test
/// bad_bytes -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "regenerates fuzz/seeds"]
fn write_fuzz_seeds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    };
    // header: a whole valid data segment (mode 0), a valid reader table (mode 2),
    // and patch lists (mode 1 / 3) touching header fields and slot entries.
    let obj = valid_object("seed", 2);
    let mut seg = vec![0u8];
    seg.extend(std::fs::read(obj.data_path()).unwrap());
    put("header", "valid-segment", &seg);
    let mut rt = vec![2u8];
    rt.extend(std::fs::read(obj.readers_path()).unwrap());
    put("header", "valid-reader-table", &rt);
    let patch = |off: u16, kind: u8, v: u64| {
        let mut p = off.to_le_bytes().to_vec();
        p.push(kind);
        p.extend(v.to_le_bytes());
        p
    };
    let mut p1 = vec![1u8];
    p1.extend(patch(CURRENT as u16, 0, 3 << 12 | 2));
    p1.extend(patch((slot(1) + S_LEN) as u16, 0, 12));
    put("header", "patch-current-len", &p1);
    let mut p2 = vec![1u8];
    p2.extend(patch(SEGMENT_LEN as u16, 0, 1 << 20));
    p2.extend(patch(0, 3, 9000));
    put("header", "patch-truncate", &p2);
    let mut p3 = vec![3u8];
    p3.extend(patch(R_HIGH_WATER as u16, 1, 99));
    p3.extend(patch(reader_entry(0) as u16, 0, 5 << 12 | 1));
    put("header", "patch-pins", &p3);
    // payload: valid archives of a few values.
    for g in [1u64, 6, 33] {
        let b = shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&FuzzValue::new(g, g as usize % 7)).unwrap();
        put("payload", &format!("value-{g}"), &b);
    }
    // schema: the stored descriptions of the fuzz type and a container.
    put("schema", "fuzzvalue", &shmstate::schema::schema_of::<FuzzValue>().encode());
    put("schema", "map", &shmstate::schema::schema_of::<std::collections::HashMap<String, Vec<u8>>>().encode());
    // dynamic: snapshots of the fuzz type (mode 0), and a schema with a
    // snapshot of it (mode 1).
    for g in [2u64, 9] {
        let mut d = vec![0u8];
        d.extend(shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&FuzzValue::new(g, 3)).unwrap().iter());
        put("dynamic", &format!("value-{g}"), &d);
    }
    let schema = shmstate::schema::schema_of::<FuzzValue>().encode();
    let mut d = vec![1u8];
    d.extend((schema.len() as u16).to_le_bytes());
    d.extend(&schema);
    d.extend(shmstate::rkyv::to_bytes::<shmstate::rkyv::rancor::Error>(&FuzzValue::new(4, 1)).unwrap().iter());
    put("dynamic", "schema-and-value", &d);
    // dynamic_differential: each base snapshot, unpatched.
    for (kind, name) in [(0u8, "fuzzvalue"), (1, "profile"), (2, "kinds"), (3, "btree")] {
        put("dynamic_differential", name, &[kind, 12]);
    }
    // ops: publish/open/read/grow/drop/reopen mixes.
    put("ops", "basic", &[0, 3, 3, 0, 4, 0, 0, 1, 4, 1, 2, 200, 4, 0, 7, 0, 0, 5, 4, 1, 5, 0, 2, 9, 3, 0, 4, 1]);
    put("ops", "pins", &[3, 0, 3, 0, 3, 0, 0, 1, 4, 0, 0, 2, 4, 1, 0, 3, 4, 2, 0, 4, 6, 1, 0, 5, 7, 0, 0, 6]);
}
