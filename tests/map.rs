//! The map object (`shmstate::map`): a model test against `BTreeMap`,
//! snapshots held across commits, readers and writers in other processes, a
//! writer killed mid-commit and taken over, garbage in the pages segment,
//! and memory reclaimed once no reader holds it.
#![cfg(not(miri))]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{role, spawn_child, TestName};
use proptest::prelude::*;
use shmstate::map::{MapReader, MapRoot, MapSnapshot, MapWriter};
use shmstate::{ReadError, Reader};

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: u64,
    commit: u64,
    text: String,
}

fn entry(key: u64, commit: u64) -> Entry {
    Entry { key, commit, text: format!("{key}:{commit}") }
}

/// Keys 1..=KEYSPACE; key 0 says which commit wrote the snapshot.
const KEYSPACE: u64 = 5_000;

/// The keys the commit of generation `g` writes, and the one it removes.
fn schedule(g: u64, changes: u64) -> (Vec<u64>, u64) {
    let put = (0..changes).map(|t| (g * 7_919 + t * 104_729) % KEYSPACE + 1).collect();
    (put, (g * 31) % KEYSPACE + 1)
}

/// Stages and commits generation `g`'s changes; returns the generation.
fn commit_scheduled(w: &mut MapWriter<u64, Entry>, changes: u64) -> u64 {
    let g = w.next_generation().get();
    let (put, removed) = schedule(g, changes);
    w.remove(&removed);
    for k in put {
        w.insert(k, entry(k, g));
    }
    w.insert(0, entry(0, g));
    assert_eq!(w.commit().expect("commit").get(), g);
    g
}

/// Checks a snapshot: key 0 names its generation, that commit's keys carry
/// it, its removed key is gone (unless re-put), every entry is internally
/// consistent and no newer than the snapshot, iteration is sorted and
/// `len` long.
fn check_snapshot(snap: &MapSnapshot<'_, u64, Entry>, changes: u64) -> Result<u64, String> {
    let g = snap.generation().get();
    let e = |x: ReadError| x.to_string();
    let marker = snap.get(&0).map_err(e)?.ok_or("no key 0")?;
    if marker.commit.to_native() != g {
        return Err(format!("key 0 says commit {} in generation {g}", marker.commit));
    }
    let (put, removed) = schedule(g, changes);
    for &k in &put {
        let v = snap.get(&k).map_err(e)?.ok_or(format!("key {k} of commit {g} missing"))?;
        if v.commit.to_native() != g {
            return Err(format!("key {k} has commit {} in generation {g}", v.commit));
        }
    }
    if !put.contains(&removed) && snap.get(&removed).map_err(e)?.is_some() {
        return Err(format!("key {removed}, removed by commit {g}, still there"));
    }
    let mut count = 0u64;
    let mut last = None;
    for item in snap.iter() {
        let (k, v) = item.map_err(e)?;
        if last.is_some_and(|l| l >= k) || v.key.to_native() != k || v.text.as_str() != format!("{k}:{}", v.commit) {
            return Err(format!("entry {k} after {last:?}: {v:?}"));
        }
        if v.commit.to_native() > g {
            return Err(format!("entry {k} from commit {} in generation {g}", v.commit));
        }
        last = Some(k);
        count += 1;
    }
    if count != snap.len() {
        return Err(format!("iterated {count} entries, len {}", snap.len()));
    }
    Ok(g)
}

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let mut parts = role.splitn(3, ':');
    let (what, name, arg) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or("0"));
    let code = match what {
        "writer" => endless_writer(name),
        "reader" => checking_reader(name, arg.parse().unwrap()),
        "hold" => hold(name),
        "fault-writer" => fault_writer(name),
        other => {
            eprintln!("unknown role {other}");
            2
        }
    };
    std::process::exit(code);
}

/// Changed keys per commit in the process tests: enough that a commit takes
/// a while, so a SIGKILL lands inside one.
const CHANGES: u64 = 500;

fn endless_writer(name: &str) -> i32 {
    let mut w = MapWriter::<u64, Entry>::open_or_create(name).expect("take over");
    for i in 0.. {
        commit_scheduled(&mut w, CHANGES);
        if i == 20 {
            println!("RUNNING");
        }
    }
    0
}

/// Checks every generation it sees until it has seen `until`.
fn checking_reader(name: &str, until: u64) -> i32 {
    let mut r = MapReader::<u64, Entry>::open(name).expect("open");
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut seen, mut last) = (0u64, 0u64);
    while last < until && Instant::now() < deadline {
        let snap = r.read().expect("read");
        if snap.generation().get() == last || snap.generation().get() == 1 {
            last = snap.generation().get();
            continue;
        }
        match check_snapshot(&snap, CHANGES) {
            Ok(g) if g > last => {
                last = g;
                seen += 1;
            }
            Ok(g) => {
                println!("BAD generation {g} after {last}");
                return 1;
            }
            Err(e) => {
                println!("BAD {e}");
                return 1;
            }
        }
    }
    println!("RESULT seen={seen} last={last}");
    i32::from(last < until)
}

/// Takes over (or creates) the map and commits once; `SHMSTATE_FAULT` aborts it inside.
fn fault_writer(name: &str) -> i32 {
    let mut w = MapWriter::<u64, Entry>::open_or_create(name).expect("take over");
    for k in 0..3_000 {
        w.insert(k, entry(k, 999));
    }
    w.remove(&1);
    w.commit().expect("commit");
    0
}

/// Pins the current generation, says so, and waits to be killed.
fn hold(name: &str) -> i32 {
    let mut r = MapReader::<u64, Entry>::open(name).expect("open");
    let g = r.read().expect("read").generation();
    println!("HOLDING {g}");
    std::thread::sleep(Duration::from_secs(600));
    0
}

fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines.next().expect("child exited early").expect("read child stdout");
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
}

#[test]
fn readers_in_other_processes_see_whole_generations_through_killed_writers() {
    let name = TestName::new("map-kill");
    // Created here, so the readers can open it before any writer child runs.
    drop(MapWriter::<u64, Entry>::create(name.as_str()).unwrap());
    let final_gen = {
        let mut readers: Vec<Child> = Vec::new();
        // The readers stop once they have seen the final generation.
        let until = 400;
        for _ in 0..2 {
            readers.push(spawn_child("__child", &format!("reader:{}:{until}", name.as_str())));
        }
        let mut watch = MapReader::<u64, Entry>::open(name.as_str()).unwrap();
        for round in 0..3 {
            let mut writer = spawn_child("__child", &format!("writer:{}", name.as_str()));
            wait_for_line(&mut writer, "RUNNING");
            // Let it commit a few more, then kill it wherever it is (a commit
            // of 500 keys is most of its time).
            let from = watch.read().unwrap().generation();
            let deadline = Instant::now() + Duration::from_secs(60);
            while watch.read().unwrap().generation().get() < from.get() + 5 + round && Instant::now() < deadline {
                std::thread::yield_now();
            }
            writer.kill().unwrap();
            writer.wait().unwrap();
            let snap = watch.read().unwrap();
            check_snapshot(&snap, CHANGES).unwrap_or_else(|e| panic!("after kill {round}: {e}"));
        }
        // Take over here and commit up to the readers' last generation.
        let mut w = MapWriter::<u64, Entry>::open_or_create(name.as_str()).expect("take over");
        let mut g = 0;
        while g < until {
            g = commit_scheduled(&mut w, CHANGES);
        }
        for r in readers {
            let out = r.wait_with_output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "reader: {text}");
            assert!(text.contains("RESULT"), "{text}");
        }
        let snap = watch.read().unwrap();
        check_snapshot(&snap, CHANGES).unwrap()
    };
    assert!(final_gen >= 400);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batches of inserts and removals, each committed, against a
    /// `BTreeMap`; a snapshot taken midway is checked again at the end,
    /// after the writer reused whatever it could.
    #[test]
    fn commits_match_a_btreemap(
        batches in prop::collection::vec(
            prop::collection::vec((0u16..3000, prop::option::weighted(0.7, "[a-z]{0,40}")), 0..300),
            1..12,
        ),
        probes in prop::collection::vec(0u16..3100, 20),
        held_at in 0usize..12,
    ) {
        let name = TestName::new("map-model");
        let mut w = MapWriter::<u16, String>::create(name.as_str()).unwrap();
        let mut r = MapReader::<u16, String>::open(name.as_str()).unwrap();
        let mut held = MapReader::<u16, String>::open(name.as_str()).unwrap();
        let mut model = BTreeMap::new();
        let mut held_model = None;
        let mut held_snap = None;
        for (i, batch) in batches.iter().enumerate() {
            for (k, v) in batch {
                match v {
                    Some(v) => {
                        w.insert(*k, v.clone());
                        model.insert(*k, v.clone());
                    }
                    None => {
                        w.remove(k);
                        model.remove(k);
                    }
                }
            }
            let g = w.commit().unwrap();
            let snap = r.read().unwrap();
            prop_assert_eq!(snap.generation(), g);
            check_against(&snap, &model, &probes)?;
            if i == held_at.min(batches.len() - 1) {
                held_model = Some(model.clone());
                held_snap = Some(held.read().unwrap());
            }
        }
        let (snap, model) = (held_snap.unwrap(), held_model.unwrap());
        check_against(&snap, &model, &probes)?;
    }
}

fn check_against(
    snap: &MapSnapshot<'_, u16, String>,
    model: &BTreeMap<u16, String>,
    probes: &[u16],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(snap.len(), model.len() as u64);
    let all: Vec<(u16, String)> =
        snap.iter().map(|e| e.map(|(k, v)| (k, v.to_string()))).collect::<Result<_, _>>().map_err(fail)?;
    let expected: Vec<(u16, String)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
    prop_assert_eq!(all, expected);
    for p in probes {
        prop_assert_eq!(snap.get(p).map_err(fail)?.map(|v| v.to_string()), model.get(p).cloned());
        let hi = p.saturating_add(40);
        let got: Vec<u16> = snap.range(*p..hi).map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>().map_err(fail)?;
        let want: Vec<u16> = model.range(*p..hi).map(|(k, _)| *k).collect();
        prop_assert_eq!(got, want);
        let got: Vec<u16> = snap.range(..=*p).map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>().map_err(fail)?;
        let want: Vec<u16> = model.range(..=*p).map(|(k, _)| *k).collect();
        prop_assert_eq!(got, want);
    }
    Ok(())
}

fn fail(e: ReadError) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// The root record of the current generation, read as any snapshot.
fn root_record(name: &str) -> MapRoot {
    let mut r = Reader::<MapRoot>::open(name).unwrap();
    let snap = r.read().unwrap();
    snap.to_value().unwrap()
}

fn pages_file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new().read(true).write(true).open(format!("/dev/shm/shmstate.{name}.pages")).unwrap()
}

#[test]
fn garbage_in_the_pages_is_an_error_never_undefined_behaviour() {
    let mut errors = 0;
    for seed in 0..40u64 {
        let name = TestName::new("map-garbage");
        let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
        for g in 0..3 {
            for k in 0..2_000u64 {
                w.insert(k * 3 + g, entry(k, g));
            }
            w.commit().unwrap();
        }
        let root = root_record(name.as_str());
        drop(w);
        // Overwrite a run of bytes somewhere in the blocks: the root node
        // itself for the first seeds, then anywhere.
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
        let mut f = pages_file(name.as_str());
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&junk).unwrap();
        drop(f);

        let mut r = MapReader::<u64, Entry>::open(name.as_str()).unwrap();
        let snap = r.read().unwrap();
        let mut failed = false;
        for k in (0..6_000).step_by(7) {
            if let Ok(Some(v)) = snap.get(&k) {
                // A value that validates is a well-formed `Entry` (its bytes
                // may be junk that happens to validate: only its shape is known).
                let _ = (v.key.to_native(), v.text.len());
            } else if snap.get(&k).is_err() {
                failed = true;
            }
        }
        for item in snap.iter() {
            if item.is_err() {
                failed = true;
            }
        }
        // A writer taking over checks the whole tree: garbage in a node is refused.
        drop(r);
        let takeover = MapWriter::<u64, Entry>::open_or_create(name.as_str());
        if seed < 8 {
            assert!(failed, "seed {seed}: junk in the root node went unnoticed by the reader");
            assert!(takeover.is_err(), "seed {seed}: junk in the root node went unnoticed by the takeover");
        }
        errors += u32::from(failed);
    }
    assert!(errors >= 8, "only {errors} of 40 corrupted maps gave an error");
}

#[test]
fn a_held_generation_keeps_its_blocks_and_memory_comes_back_after() {
    let name = TestName::new("map-reclaim");
    let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    w.extend((0..10_000).map(|k| (k, entry(k, 0))));
    w.commit().unwrap();
    let mut held = MapReader::<u64, Entry>::open(name.as_str()).unwrap();
    let before = root_record(name.as_str());
    {
        let snap = held.read().unwrap();
        for round in 1..=200 {
            w.insert(round % 10_000, entry(round % 10_000, round));
            w.commit().unwrap();
        }
        // Nothing the held generation reaches was reused.
        for k in 0..10_000 {
            assert_eq!(snap.get(&k).unwrap().unwrap().commit.to_native(), 0, "key {k}");
        }
        let during = root_record(name.as_str());
        assert!(during.garbage_bytes > 0, "{during:?}");
    }
    held.read().unwrap(); // moves the pin to the current generation...
    w.commit().unwrap();
    held.release(); // ...and lets it go
    w.commit().unwrap();
    let after = root_record(name.as_str());
    // Only the last commit's garbage is left; what the held one kept is free.
    assert!(after.garbage_bytes < before.live_bytes / 10, "{after:?}");
    assert!(after.free_bytes > 0, "{after:?}");
    // And it is reused: 1000 more one-key commits barely grow the segment.
    for round in 0..1_000 {
        w.insert(round % 10_000, entry(round % 10_000, round));
        w.commit().unwrap();
    }
    let last = root_record(name.as_str());
    assert!(last.pages_len < after.pages_len + after.pages_len / 10, "{after:?} then {last:?}");
}

#[test]
fn a_killed_reader_does_not_hold_memory_for_good() {
    let name = TestName::new("map-deadreader");
    let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    w.extend((0..5_000).map(|k| (k, entry(k, 0))));
    w.commit().unwrap();
    let mut child = spawn_child("__child", &format!("hold:{}", name.as_str()));
    wait_for_line(&mut child, "HOLDING");
    for round in 1..=50 {
        w.insert(round, entry(round, round));
        w.commit().unwrap();
    }
    let held = root_record(name.as_str());
    child.kill().unwrap();
    child.wait().unwrap();
    // The dead reader's pin is reclaimed by a commit at most 100 ms after
    // the last look; commit until its garbage is free (a deadline guards a hang).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        w.insert(1, entry(1, 99));
        w.commit().unwrap();
        let now = root_record(name.as_str());
        if now.garbage_bytes < held.garbage_bytes / 10 {
            break;
        }
        assert!(Instant::now() < deadline, "garbage still held: {held:?} then {now:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn readers_of_another_type_are_refused() {
    let name = TestName::new("map-types");
    let _w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
    assert!(matches!(MapReader::<u64, String>::open(name.as_str()), Err(shmstate::OpenError::TypeMismatch { .. })));
    assert!(matches!(MapReader::<i64, Entry>::open(name.as_str()), Err(shmstate::OpenError::TypeMismatch { .. })));
    assert!(MapReader::<u64, Entry>::open(name.as_str()).is_ok());
    // A map has one writer (its mirror of the tree is the free-space map) and table pins.
    let other = TestName::new("map-options");
    for opts in [MapWriter::<u64, Entry>::options().shared(true), MapWriter::<u64, Entry>::options().lock_pins(true)] {
        let refused = MapWriter::<u64, Entry>::create_with(other.as_str(), opts);
        assert!(matches!(refused, Err(shmstate::OpenError::InvalidOption { .. })), "{refused:?}");
    }
}

/// A writer aborted at a crash point inside a commit (`map-before-publish`:
/// the new blocks written, the root not published; `after-seal`: the root
/// record sealed in its slot, not published), and at its very first commit
/// (`after-seal` of generation 1): the previous generation stays current and
/// whole, and a new writer takes over and goes on.
#[cfg(feature = "fault-injection")]
#[test]
fn a_writer_aborted_inside_a_commit_leaves_the_last_generation_whole() {
    use std::process::{Command, Stdio};
    let run_faulty = |name: &str, point: &str| {
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["__child", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(common::ROLE_VAR, format!("fault-writer:{name}"))
            .env("SHMSTATE_FAULT", point)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the writer was to abort at {point}");
    };
    for point in ["map-before-publish", "after-seal"] {
        let name = TestName::new("map-fault");
        let mut model = BTreeMap::new();
        {
            let mut w = MapWriter::<u64, Entry>::create(name.as_str()).unwrap();
            for g in 0..3u64 {
                for k in (g..2_000).step_by(3) {
                    w.insert(k, entry(k, g));
                    model.insert(k, g);
                }
                w.commit().unwrap();
            }
        }
        let mut r = MapReader::<u64, Entry>::open(name.as_str()).unwrap();
        let before = r.read().unwrap().generation();
        run_faulty(name.as_str(), point);
        let whole = |r: &mut MapReader<u64, Entry>, model: &BTreeMap<u64, u64>| {
            let snap = r.read().unwrap();
            let got: Vec<(u64, u64)> =
                snap.iter().map(|e| e.map(|(k, v)| (k, v.commit.to_native())).unwrap()).collect();
            assert_eq!(got, model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), "{point}");
            snap.generation()
        };
        assert_eq!(whole(&mut r, &model), before, "{point}: the aborted commit was published");
        let mut w = MapWriter::<u64, Entry>::open_or_create(name.as_str()).expect("take over");
        assert_eq!(w.len(), model.len() as u64);
        w.insert(5, entry(5, 7));
        model.insert(5, 7);
        w.remove(&6);
        model.remove(&6);
        let g = w.commit().unwrap();
        assert!(g > before);
        assert_eq!(whole(&mut r, &model), g, "{point}");
    }
    // The very first commit (the empty map) aborted after its seal.
    let name = TestName::new("map-fault-first");
    run_faulty(name.as_str(), "after-seal");
    let mut w = MapWriter::<u64, Entry>::open_or_create(name.as_str()).expect("start afresh");
    w.insert(1, entry(1, 1));
    w.commit().unwrap();
    let mut r = MapReader::<u64, Entry>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().len(), 1);
}
