//! `RawMapReader`: a map read without its Rust types agrees with the typed
//! reader and with a `BTreeMap` model, holds its generation across commits,
//! survives a writer's takeover, and refuses a map whose stored schema is
//! missing or wrong.
#![cfg(not(miri))]

mod common;

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Bound;

use common::TestName;
use proptest::prelude::*;
use shmstate::dynamic::{Fields, Value};
use shmstate::map::{MapKeyKind, MapWriter, RawMapReader};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: i64,
    text: String,
}

fn entry(key: i64, commit: u64) -> Entry {
    Entry { key, text: format!("{key}:{commit}") }
}

/// What the dynamic decoder gives for `e`.
fn value_of(e: &Entry) -> Value {
    Value::Struct {
        name: "Entry".into(),
        fields: Fields::Named(vec![("key".into(), Value::I64(e.key)), ("text".into(), Value::String(e.text.clone()))]),
    }
}

fn check(r: &mut RawMapReader, model: &BTreeMap<i64, Entry>) -> Result<(), TestCaseError> {
    let snap = r.read().map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(snap.len(), model.len() as u64);
    let kind = snap.key_kind();
    let all: Vec<(Value, Value)> =
        snap.iter().collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let want: Vec<(Value, Value)> = model.iter().map(|(k, v)| (Value::I64(*k), value_of(v))).collect();
    prop_assert_eq!(all, want);
    for k in -40..40i64 {
        let key = kind.parse(&k.to_string()).unwrap();
        let got = snap.get(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, model.get(&k).map(value_of));
        prop_assert_eq!(snap.get_bytes(&key).unwrap().is_some(), model.contains_key(&k));
    }
    let (lo, hi) = (kind.encode(&Value::I64(-10)).unwrap(), kind.encode(&Value::I64(10)).unwrap());
    let n = snap.range(Bound::Included(lo), Bound::Excluded(hi)).count();
    prop_assert_eq!(n, model.range(-10..10).count());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn the_raw_reader_matches_a_btreemap(batches in prop::collection::vec(prop::collection::vec((-40..40i64, any::<bool>()), 0..120), 1..6)) {
        let name = TestName::new("map-raw");
        let mut w = MapWriter::<i64, Entry>::create(name.as_str()).unwrap();
        let mut r = RawMapReader::open(name.as_str()).unwrap();
        prop_assert_eq!(r.key_kind(), MapKeyKind::Signed(64));
        prop_assert_eq!(&r.schema().root().name, "Entry");
        let mut model = BTreeMap::new();
        for (g, batch) in batches.iter().enumerate() {
            for &(k, put) in batch {
                if put {
                    w.insert(k, entry(k, g as u64));
                    model.insert(k, entry(k, g as u64));
                } else {
                    w.remove(&k);
                    model.remove(&k);
                }
            }
            w.commit().unwrap();
            check(&mut r, &model)?;
        }
    }
}

#[test]
fn a_held_raw_snapshot_keeps_its_generation_across_commits() {
    let name = TestName::new("map-raw-held");
    let mut w = MapWriter::<String, Entry>::create(name.as_str()).unwrap();
    w.extend((0..3000).map(|i| (format!("a{i:04}"), entry(i, 0))));
    w.commit().unwrap();
    let mut r = RawMapReader::open(name.as_str()).unwrap();
    let snap = r.read().unwrap();
    for round in 1..20 {
        w.extend((0..3000).map(|i| (format!("a{i:04}"), entry(i, round))));
        w.remove(&format!("a{:04}", round));
        w.commit().unwrap();
    }
    let prefix = snap.prefix(b"a012");
    let got: Vec<_> = prefix.map(|e| e.unwrap()).collect();
    assert_eq!(got.len(), 10);
    for (i, (k, v)) in got.iter().enumerate() {
        let n = 120 + i as i64;
        assert_eq!(k, &Value::String(format!("a{n:04}")));
        assert_eq!(v, &value_of(&entry(n, 0)), "the held generation's value");
    }
    let _ = snap;
    let now = r.read().unwrap();
    assert_eq!(now.len(), 2999, "each round put back the key the one before removed");
    assert_eq!(now.get(b"a0019").unwrap(), None);
    assert_eq!(now.get(b"a0100").unwrap(), Some(value_of(&entry(100, 19))));
}

#[test]
fn a_taken_over_map_keeps_its_schema_block() {
    let name = TestName::new("map-raw-takeover");
    let mut w = MapWriter::<u32, Entry>::create(name.as_str()).unwrap();
    w.extend((0..200).map(|i| (i, entry(i as i64, 0))));
    w.commit().unwrap();
    drop(w);
    let mut w = MapWriter::<u32, Entry>::open_or_create(name.as_str()).unwrap();
    // Every free block gets reused: the schema's must not be among them.
    for round in 1..40 {
        w.extend((0..200).map(|i| (i, entry(i as i64, round))));
        w.commit().unwrap();
    }
    let mut r = RawMapReader::open(name.as_str()).expect("the stored schema is intact");
    let snap = r.read().unwrap();
    assert_eq!(snap.get(&7u32.to_be_bytes()).unwrap(), Some(value_of(&entry(7, 39))));
}

#[test]
fn a_missing_or_wrong_schema_is_refused() {
    let name = TestName::new("map-raw-schema");
    let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    w.insert(1, entry(1, 0));
    w.commit().unwrap();
    let path = format!("/dev/shm/shmstate.{}.pages", name.as_str());
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut header = [0u8; 32];
    std::io::Read::read_exact(&mut f, &mut header).unwrap();
    let schema_at = u64::from_le_bytes(header[24..32].try_into().unwrap());
    assert!(schema_at >= 64, "the header records the schema block");
    // One byte of the schema changed: the fingerprint no longer matches (or it no longer decodes).
    f.seek(SeekFrom::Start(schema_at + 20)).unwrap();
    f.write_all(&[0x5a]).unwrap();
    let e = RawMapReader::open(name.as_str()).unwrap_err().to_string();
    assert!(e.contains("schema"), "{e}");
    // No schema recorded at all.
    f.seek(SeekFrom::Start(12)).unwrap();
    f.write_all(&[0; 4]).unwrap();
    let e = RawMapReader::open(name.as_str()).unwrap_err().to_string();
    assert!(e.contains("no value schema"), "{e}");
    // The typed reader does not need it.
    let mut typed = shmstate::map::MapReader::<u64, Entry>::open(name.as_str()).unwrap();
    assert_eq!(typed.read().unwrap().get(&1).unwrap().unwrap().text, "1:0");
}

#[test]
fn junk_values_are_errors() {
    let name = TestName::new("map-raw-junk");
    let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    w.extend((0..100).map(|i| (i, entry(i as i64, 0))));
    w.commit().unwrap();
    let pages_len = std::fs::metadata(format!("/dev/shm/shmstate.{}.pages", name.as_str())).unwrap().len();
    let mut r = RawMapReader::open(name.as_str()).unwrap();
    // Everything past the schema block: nodes and values.
    let mut f =
        std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/shmstate.{}.pages", name.as_str())).unwrap();
    f.seek(SeekFrom::Start(1024)).unwrap();
    f.write_all(&vec![0xee; (pages_len - 1024) as usize]).unwrap();
    let snap = r.read().unwrap();
    let errors = snap.iter().filter(Result::is_err).count()
        + (0..100u64).filter(|k| snap.get(&k.to_be_bytes()).is_err()).count();
    assert!(errors > 0, "junk over every node and value went unnoticed");
}

#[test]
fn pinned_is_the_last_read_generation_until_released() {
    let name = TestName::new("map-raw-pinned");
    let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    w.insert(1, entry(1, 1));
    let g1 = w.commit().unwrap();
    let mut r = RawMapReader::open(name.as_str()).unwrap();
    assert!(r.pinned().is_none());
    assert_eq!(r.read().unwrap().generation(), g1);
    w.insert(1, entry(1, 2));
    w.commit().unwrap();
    let again = r.pinned().expect("still pinned");
    assert_eq!(again.generation(), g1);
    assert_eq!(again.get(&1u64.to_be_bytes()).unwrap(), Some(value_of(&entry(1, 1))));
    r.release();
    assert!(r.pinned().is_none());
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Marker;

#[test]
fn zero_sized_values_are_stored_and_read() {
    let name = TestName::new("map-zst");
    let mut w = MapWriter::<String, ()>::create(name.as_str()).unwrap();
    w.extend((0..200).map(|i| (format!("member{i:03}"), ())));
    w.commit().unwrap();
    w.remove(&"member007".to_string());
    w.commit().unwrap();
    let mut r = shmstate::map::MapReader::<String, ()>::open(name.as_str()).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.len(), 199);
    assert!(snap.get(&"member008".to_string()).unwrap().is_some());
    assert!(snap.get(&"member007".to_string()).unwrap().is_none());
    assert_eq!(snap.iter().count(), 199);
    let mut raw = RawMapReader::open(name.as_str()).unwrap();
    let rs = raw.read().unwrap();
    assert_eq!(rs.get(b"member008").unwrap(), Some(Value::Unit));
    assert_eq!(rs.prefix(b"member01").count(), 10);

    let other = TestName::new("map-zst-struct");
    let mut w = MapWriter::<u8, Marker>::create(other.as_str()).unwrap();
    w.insert(3, Marker);
    w.commit().unwrap();
    let mut r = shmstate::map::MapReader::<u8, Marker>::open(other.as_str()).unwrap();
    assert!(r.read().unwrap().get(&3).unwrap().is_some());
    let mut raw = RawMapReader::open(other.as_str()).unwrap();
    let got = raw.read().unwrap().get(&[3]).unwrap();
    assert!(matches!(got, Some(Value::Struct { ref name, .. }) if name == "Marker"), "{got:?}");
}
