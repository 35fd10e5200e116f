//! `RawMapWriter` and `RawMapSnapshot::changes_since`: a map copied through
//! raw keys and value bytes (what the bridge does) reads the same with its
//! Rust types; keys and values that are not of the map's types are refused
//! before they are staged; the raw changes are the typed changes.
#![cfg(not(miri))]

mod common;

use std::collections::BTreeMap;

use common::TestName;
use proptest::prelude::*;
use shmstate::map::{Change, MapKeyKind, MapReader, MapWriter, RawMapReader, RawMapWriter};
use shmstate::{OpenError, PublishError};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: i64,
    text: String,
}

fn entry(key: i64, commit: u64) -> Entry {
    Entry { key, text: format!("{key}:{commit}") }
}

/// Applies the changes from `r_old`'s pinned generation to `r_new`'s latest
/// onto `mirror`, as the importer does with a delta.
fn copy_changes(old: &RawMapReader, new: &mut RawMapReader, mirror: &mut RawMapWriter) -> usize {
    let newer = new.read().unwrap();
    let mut n = 0;
    match old.pinned() {
        Some(older) => {
            for c in newer.changes_since(&older) {
                let c = c.unwrap();
                match c.new {
                    Some(v) => mirror.insert(&c.key, v).unwrap(),
                    None => mirror.remove(&c.key).unwrap(),
                }
                n += 1;
            }
        }
        None => {
            let mut all = newer.iter();
            while let Some(e) = all.next_bytes() {
                let (k, v) = e.unwrap();
                mirror.insert(k, v).unwrap();
                n += 1;
            }
        }
    }
    mirror.commit().unwrap();
    n
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn a_map_copied_by_its_raw_changes_reads_as_the_source(batches in prop::collection::vec(prop::collection::vec((-60..60i64, any::<bool>()), 0..150), 1..6)) {
        let (src, dst) = (TestName::new("map-rw-src"), TestName::new("map-rw-dst"));
        let mut w = MapWriter::<i64, Entry>::create(src.as_str()).unwrap();
        let (mut a, mut b) = (RawMapReader::open(src.as_str()).unwrap(), RawMapReader::open(src.as_str()).unwrap());
        let mut mirror = RawMapWriter::open_or_create(dst.as_str(), a.key_kind(), a.schema()).unwrap();
        let mut typed = MapReader::<i64, Entry>::open(dst.as_str()).unwrap();
        let mut model = BTreeMap::new();
        for (g, batch) in batches.iter().enumerate() {
            let mut touched = BTreeMap::new();
            for &(k, put) in batch {
                if put { w.insert(k, entry(k, g as u64)); model.insert(k, entry(k, g as u64)); }
                else { w.remove(&k); model.remove(&k); }
                touched.insert(k, ());
            }
            w.commit().unwrap();
            let shipped = copy_changes(&a, &mut b, &mut mirror);
            if g > 0 {
                prop_assert!(shipped <= touched.len(), "{} changes for {} touched keys", shipped, touched.len());
            }
            std::mem::swap(&mut a, &mut b);
            let snap = typed.read().unwrap();
            let got: Vec<(i64, Entry)> = snap.iter().map(|e| { let (k, v) = e.unwrap(); (k, rkyv::deserialize::<Entry, rkyv::rancor::Error>(v).unwrap()) }).collect();
            let want: Vec<(i64, Entry)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(mirror.len(), model.len() as u64);
            let keys: Vec<Vec<u8>> = model.keys().map(|k| MapKeyKind::Signed(64).encode(&shmstate::dynamic::Value::I64(*k)).unwrap()).collect();
            prop_assert_eq!(mirror.keys(), keys);
        }
    }
}

#[test]
fn raw_changes_are_the_typed_changes() {
    let name = TestName::new("map-rw-changes");
    let mut w = MapWriter::<u32, Entry>::create(name.as_str()).unwrap();
    w.extend((0..5000).map(|i| (i, entry(i as i64, 0))));
    w.commit().unwrap();
    let (mut t_old, mut t_new) =
        (MapReader::<u32, Entry>::open(name.as_str()).unwrap(), MapReader::<u32, Entry>::open(name.as_str()).unwrap());
    let (mut r_old, mut r_new) =
        (RawMapReader::open(name.as_str()).unwrap(), RawMapReader::open(name.as_str()).unwrap());
    let (to, ro) = (t_old.read().unwrap(), r_old.read().unwrap());
    for i in (0..5000).step_by(97) {
        w.insert(i, entry(i as i64, 1));
    }
    w.remove(&10);
    w.insert(7000, entry(7000, 1));
    w.commit().unwrap();
    let (tn, rn) = (t_new.read().unwrap(), r_new.read().unwrap());
    let typed: Vec<(Vec<u8>, bool, bool)> = tn
        .changes_since(&to)
        .map(|c| {
            let c = c.unwrap();
            let k = c.key().to_be_bytes().to_vec();
            match c {
                Change::Added { .. } => (k, false, true),
                Change::Removed { .. } => (k, true, false),
                Change::Changed { .. } => (k, true, true),
            }
        })
        .collect();
    let raw: Vec<(Vec<u8>, bool, bool)> =
        rn.changes_since(&ro).map(|c| c.unwrap()).map(|c| (c.key, c.old.is_some(), c.new.is_some())).collect();
    assert_eq!(raw.len(), 5000 / 97 + 1 + 2);
    assert_eq!(raw, typed);
    let one = rn.changes_since(&ro).map(|c| c.unwrap()).find(|c| c.key == 97u32.to_be_bytes()).unwrap();
    assert_eq!(one.old, ro.get_bytes(&97u32.to_be_bytes()).unwrap());
    assert_eq!(one.new, rn.get_bytes(&97u32.to_be_bytes()).unwrap());
}

#[test]
fn keys_and_values_of_other_types_are_refused_before_staging() {
    let (src, dst) = (TestName::new("map-rw-bad-src"), TestName::new("map-rw-bad-dst"));
    let mut w = MapWriter::<u64, Entry>::create(src.as_str()).unwrap();
    w.insert(1, Entry { key: 1, text: "a text too long to be stored inline".into() });
    w.commit().unwrap();
    let mut r = RawMapReader::open(src.as_str()).unwrap();
    let snap = r.read().unwrap();
    let good = snap.get_bytes(&1u64.to_be_bytes()).unwrap().unwrap().to_vec();
    let mut mirror = RawMapWriter::open_or_create(dst.as_str(), snap.key_kind(), snap.schema()).unwrap();
    // A u64 key is 8 bytes.
    let e = mirror.insert(b"abc", &good).unwrap_err();
    assert!(matches!(e, PublishError::Invalid { .. }), "{e}");
    assert!(mirror.remove(b"abc").is_err());
    // The root (last 16 bytes) is `key`, then the text's length and its
    // relative offset: an offset far past the value.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 4..n].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let e = mirror.insert(&2u64.to_be_bytes(), &bad).unwrap_err();
    assert!(matches!(e, PublishError::Invalid { .. }), "{e}");
    assert!(mirror.insert(&3u64.to_be_bytes(), &[0xff; 3]).is_err(), "a value shorter than its root");
    assert_eq!(mirror.staged(), 0);
    mirror.insert(&1u64.to_be_bytes(), &good).unwrap();
    mirror.commit().unwrap();
    let mut typed = MapReader::<u64, Entry>::open(dst.as_str()).unwrap();
    assert_eq!(
        typed.read().unwrap().get(&1).unwrap().map(|v| v.text.as_str()),
        Some("a text too long to be stored inline")
    );
}

#[test]
fn a_mirror_of_another_type_is_refused_and_one_of_the_same_is_taken_over() {
    let (src, dst) = (TestName::new("map-rw-type-src"), TestName::new("map-rw-type-dst"));
    let mut w = MapWriter::<String, Entry>::create(src.as_str()).unwrap();
    w.commit().unwrap();
    let r = RawMapReader::open(src.as_str()).unwrap();
    let mut other = MapWriter::<String, u64>::create(dst.as_str()).unwrap();
    other.insert("x".into(), 5);
    other.commit().unwrap();
    drop(other);
    let e = RawMapWriter::open_or_create(dst.as_str(), r.key_kind(), r.schema()).unwrap_err();
    assert!(matches!(e, OpenError::TypeMismatch { .. }), "{e}");
    let e = RawMapWriter::open_or_create(dst.as_str(), MapKeyKind::Bytes, &shmstate::schema::schema_of::<u64>())
        .unwrap_err();
    assert!(matches!(e, OpenError::TypeMismatch { .. }), "{e}");
    let mut same =
        RawMapWriter::open_or_create(dst.as_str(), MapKeyKind::String, &shmstate::schema::schema_of::<u64>()).unwrap();
    assert_eq!(same.keys(), vec![b"x".to_vec()]);
    same.remove(b"x").unwrap();
    same.commit().unwrap();
    assert!(same.is_empty());
}
