//! `MapSnapshot::changes_since`: the changes between two held generations
//! against the difference of two `BTreeMap`s, over random batches and random
//! pairs of generations (the same one included), across a takeover, and
//! across a removal and re-creation of the map (a full comparison).
#![cfg(not(miri))]

mod common;

use std::collections::BTreeMap;

use common::TestName;
use proptest::prelude::*;
use shmstate::map::{Change, MapReader, MapSnapshot, MapWriter};

/// What `changes_since` must give: (key, old value, new value) for every key
/// whose value differs, in key order.
type Diff = Vec<(u64, Option<String>, Option<String>)>;

fn expected(old: &BTreeMap<u64, String>, new: &BTreeMap<u64, String>) -> Diff {
    let keys: std::collections::BTreeSet<u64> = old.keys().chain(new.keys()).copied().collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(&k), new.get(&k));
            (a != b).then(|| (k, a.cloned(), b.cloned()))
        })
        .collect()
}

fn actual(new: &MapSnapshot<'_, u64, String>, old: &MapSnapshot<'_, u64, String>) -> Diff {
    new.changes_since(old)
        .map(|c| match c.expect("change") {
            Change::Added { key, new } => (key, None, Some(new.to_string())),
            Change::Removed { key, old } => (key, Some(old.to_string()), None),
            Change::Changed { key, old, new } => (key, Some(old.to_string()), Some(new.to_string())),
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put(u64),
    /// Writes the value the key already has (no change to report).
    Rewrite(u64),
    Remove(u64),
    /// Removes a run of keys (merges, a lower tree).
    RemoveRange(u64, u64),
}

fn op(keyspace: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..keyspace).prop_map(Op::Put),
        1 => (0..keyspace).prop_map(Op::Rewrite),
        3 => (0..keyspace).prop_map(Op::Remove),
        1 => (0..keyspace, 0..keyspace / 2).prop_map(|(a, n)| Op::RemoveRange(a, a + n)),
    ]
}

/// Applies one batch to the writer and the model; `version` makes new values.
fn apply(w: &mut MapWriter<u64, String>, model: &mut BTreeMap<u64, String>, batch: &[Op], version: u64) {
    for o in batch {
        match *o {
            Op::Put(k) => {
                let v = format!("{k}:{version}:{}", "x".repeat((k % 7) as usize));
                w.insert(k, v.clone());
                model.insert(k, v);
            }
            Op::Rewrite(k) => {
                if let Some(v) = model.get(&k) {
                    w.insert(k, v.clone());
                }
            }
            Op::Remove(k) => {
                w.remove(&k);
                model.remove(&k);
            }
            Op::RemoveRange(a, b) => {
                for k in a..b {
                    w.remove(&k);
                    model.remove(&k);
                }
            }
        }
    }
    w.commit().expect("commit");
}

const KEYSPACE: u64 = 6_000;
const BATCHES: usize = 6;

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Every pair of held generations (older == newer included, and each
    /// way round), after batches that grow, shrink and rewrite the map.
    #[test]
    fn changes_match_the_model(
        fill in 0..KEYSPACE,
        batches in prop::collection::vec(prop::collection::vec(op(KEYSPACE), 0..60), 1..BATCHES),
        takeover_after in 0..BATCHES,
    ) {
        let name = TestName::new("map-changes");
        let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create");
        let mut model = BTreeMap::new();
        let fill_batch: Vec<Op> = (0..fill).map(|k| Op::Put(k * 7 % KEYSPACE)).collect();
        apply(&mut w, &mut model, &fill_batch, 0);

        let mut readers: Vec<MapReader<u64, String>> =
            (0..=batches.len()).map(|_| MapReader::open(name.as_str()).expect("open")).collect();
        let mut free = readers.iter_mut();
        let mut held = vec![(free.next().unwrap().read().expect("read"), model.clone())];
        for (i, batch) in batches.iter().enumerate() {
            if i == takeover_after {
                // A new writer takes the map over (same pages segment).
                drop(w);
                w = MapWriter::open_or_create(name.as_str()).expect("take over");
            }
            apply(&mut w, &mut model, batch, i as u64 + 1);
            held.push((free.next().unwrap().read().expect("read"), model.clone()));
        }
        for (new, new_model) in &held {
            for (old, old_model) in &held {
                prop_assert_eq!(actual(new, old), expected(old_model, new_model),
                    "from generation {} to {}", old.generation().get(), new.generation().get());
            }
        }
    }
}

/// One hundred changed keys among a million-entry map's 100k: the walk finds
/// exactly them (the values are checked, not only the keys).
#[test]
fn few_changes_in_a_large_map() {
    let name = TestName::new("map-changes-large");
    let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create");
    let mut model: BTreeMap<u64, String> = (0..100_000).map(|k| (k, format!("v{k}"))).collect();
    w.extend(model.clone());
    w.commit().expect("commit");
    let mut r_old = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let mut r_new = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let old = r_old.read().expect("read");
    let old_model = model.clone();
    for i in 0..100u64 {
        let k = i * 997 % 100_000;
        if i % 10 == 0 {
            w.remove(&k);
            model.remove(&k);
        } else {
            w.insert(k, format!("changed {k}"));
            model.insert(k, format!("changed {k}"));
        }
    }
    w.insert(200_000, "new".into());
    model.insert(200_000, "new".into());
    w.commit().expect("commit");
    let new = r_new.read().expect("read");
    let diff = actual(&new, &old);
    assert_eq!(diff.len(), 101);
    assert_eq!(diff, expected(&old_model, &model));
}

/// A map removed and created again between the two snapshots: no block is
/// shared (a reused offset and serial would otherwise pass for one), every
/// entry is compared.
#[test]
fn another_incarnation_is_compared_in_full() {
    let name = TestName::new("map-changes-incarnation");
    let model: BTreeMap<u64, String> = (0..3_000).map(|k| (k, format!("v{k}"))).collect();
    let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create");
    w.extend(model.clone());
    w.commit().expect("commit");
    let mut r_old = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let old = r_old.read().expect("read");
    drop(w);
    shmstate::remove(name.as_str()).expect("remove");

    // The same commits again: the same offsets, lengths and serials for
    // different values.
    let mut new_model: BTreeMap<u64, String> = (0..3_000).map(|k| (k, format!("w{k}"))).collect();
    let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create again");
    w.extend(new_model.clone());
    w.commit().expect("commit");
    new_model.remove(&5);
    w.remove(&5);
    w.commit().expect("commit");
    let mut r_new = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let new = r_new.read().expect("read");
    assert_eq!(actual(&new, &old), expected(&model, &new_model));
    assert_eq!(actual(&old, &new), expected(&new_model, &model));
}

/// Junk written into the pages (the newer root node for the first seeds,
/// anywhere after) while both generations are held: the walk gives errors,
/// never a panic or undefined behaviour, whichever way round it runs.
#[test]
fn garbage_in_the_pages_is_an_error_never_undefined_behaviour() {
    use std::io::{Seek, SeekFrom, Write};
    let mut errors = 0;
    for seed in 0..40u64 {
        let name = TestName::new("map-changes-garbage");
        let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create");
        w.extend((0..4_000u64).map(|k| (k, format!("v{k}"))));
        w.commit().expect("commit");
        let mut r_old = MapReader::<u64, String>::open(name.as_str()).expect("open");
        let old = r_old.read().expect("read");
        for k in (0..4_000u64).step_by(13) {
            w.insert(k, format!("changed {k}"));
        }
        w.commit().expect("commit");
        let forward: Vec<u64> = (0..4_000u64).step_by(13).collect();
        let backward = forward.clone();
        let root: shmstate::map::MapRoot = {
            let mut r = shmstate::Reader::<shmstate::map::MapRoot>::open(name.as_str()).expect("open root");
            let snap = r.read().expect("read root");
            snap.to_value().expect("root record")
        };
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (at, len) = if seed < 8 {
            (root.root_offset + next() % root.root_len as u64, 1 + next() % 64)
        } else {
            (64 + next() % (root.pages_len - 64), 1 + next() % 4096)
        };
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/shmstate.{}.pages", name.as_str()))
            .expect("open pages");
        f.seek(SeekFrom::Start(at)).expect("seek");
        f.write_all(&junk).expect("write");
        drop(f);

        let mut r_new = MapReader::<u64, String>::open(name.as_str()).expect("open");
        let new = r_new.read().expect("read");
        let mut failed = false;
        for (changes, want) in [(new.changes_since(&old), &forward), (old.changes_since(&new), &backward)] {
            let mut got = Vec::new();
            let mut last = None;
            for c in changes {
                match c {
                    // A value that validates is a well-formed `String`; keys come in order.
                    Ok(c) => {
                        let k = *c.key();
                        assert!(last.is_none_or(|l| l < k), "seed {seed}: key {k} after {last:?}");
                        last = Some(k);
                        got.push(k);
                    }
                    Err(_) => failed = true,
                }
            }
            // Junk in the root node: an error, or the right keys (it hit
            // bytes the walk need not trust, such as a serial).
            if seed < 8 {
                assert!(failed || &got == want, "seed {seed}: junk in the newer root gave wrong changes silently");
            }
        }
        errors += u32::from(failed);
    }
    assert!(errors >= 4, "only {errors} of 40 corrupted maps gave an error");
}

/// A branch key changed to another valid key (bytecheck cannot see it): the
/// walk refuses the node instead of giving changes out of line with the tree.
#[test]
fn a_branch_key_that_is_not_its_childs_first_key_is_an_error() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let name = TestName::new("map-changes-branch-key");
    let mut w = MapWriter::<u64, String>::create(name.as_str()).expect("create");
    w.extend((0..4_000u64).map(|k| (k, format!("v{k}"))));
    w.commit().expect("commit");
    let mut r_old = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let old = r_old.read().expect("read");
    w.insert(17, "changed".into());
    w.commit().expect("commit");
    let root: shmstate::map::MapRoot = {
        let mut r = shmstate::Reader::<shmstate::map::MapRoot>::open(name.as_str()).expect("open root");
        let snap = r.read().expect("read root");
        snap.to_value().expect("root record")
    };
    assert!(root.height >= 2, "the root must be a branch");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmstate.{}.pages", name.as_str()))
        .expect("open pages");
    let mut node = vec![0u8; root.root_len as usize];
    f.seek(SeekFrom::Start(root.root_offset)).expect("seek");
    f.read_exact(&mut node).expect("read");
    // The root's keys are its children's first keys: each is there as its
    // bytes (big-endian) and as its inline prefix (a little-endian word
    // equal to the key). Both become the next key, so the node stays valid
    // and consistent, only no longer its child's first key.
    let find = |bytes: [u8; 8]| node.windows(8).position(|w| w == bytes);
    let (k, key_at, prefix_at) = (256..4_000u64)
        .find_map(|k| Some((k, find(k.to_be_bytes())?, find(k.to_le_bytes())?)))
        .expect("a key of the root");
    for (at, bytes) in [(key_at, (k + 1).to_be_bytes()), (prefix_at, (k + 1).to_le_bytes())] {
        f.seek(SeekFrom::Start(root.root_offset + at as u64)).expect("seek");
        f.write_all(&bytes).expect("write");
    }
    drop(f);

    let mut r_new = MapReader::<u64, String>::open(name.as_str()).expect("open");
    let new = r_new.read().expect("read");
    for (way, changes) in [("forward", new.changes_since(&old)), ("backward", old.changes_since(&new))] {
        let results: Vec<_> = changes.collect();
        assert!(
            results.iter().any(|c| c.is_err()),
            "{way}: key {k} of the root changed to {} gave {} changes and no error",
            k + 1,
            results.len()
        );
    }
}
