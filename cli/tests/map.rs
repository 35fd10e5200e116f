//! `shmstate dump`, `list` and `inspect` of a map object written by a
//! `MapWriter` in this process (the command runs in another).
#![cfg(not(miri))]

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Output};

use serde::Serialize;
use shmstate::map::{MapReader, MapRoot, MapWriter};
use shmstate::Reader;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Entry {
    id: u64,
    tags: Vec<String>,
    weight: Option<f64>,
}

fn entry(i: u64) -> Entry {
    Entry { id: i, tags: (0..i % 3).map(|t| format!("t{t}")).collect(), weight: (i % 2 == 0).then_some(i as f64 / 4.0) }
}

struct Name(String);

impl Name {
    fn new(test: &str) -> Self {
        let name = format!("climap{}-{test}", std::process::id());
        let _ = shmstate::remove(&name);
        Name(name)
    }
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = shmstate::remove(&self.0);
    }
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmstate")).args(args).output().expect("run shmstate")
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("JSON on stdout")
}

/// A map of 500 keys `k000`..`k499`, and the same as a `BTreeMap`.
fn written(name: &str) -> (MapWriter<String, Entry>, BTreeMap<String, Entry>) {
    let mut w = MapWriter::<String, Entry>::create(name).unwrap();
    let model: BTreeMap<String, Entry> = (0..500).map(|i| (format!("k{i:03}"), entry(i))).collect();
    w.extend(model.clone());
    w.commit().unwrap();
    (w, model)
}

#[test]
fn dump_prints_every_entry_one_key_or_a_prefix_as_serde_would() {
    let name = Name::new("dump");
    let (mut w, mut model) = written(name.as_str());
    let all = json(&cli(&["dump", name.as_str(), "--json"]));
    assert_eq!(all, serde_json::to_value(&model).unwrap());

    let one = json(&cli(&["dump", name.as_str(), "--json", "--key", "k042"]));
    assert_eq!(one, serde_json::to_value(&model["k042"]).unwrap());

    let under: BTreeMap<_, _> = model.range("k12".to_string().."k13".to_string()).collect();
    let some = json(&cli(&["dump", name.as_str(), "--json", "--compact", "--prefix", "k12"]));
    assert_eq!(some, serde_json::to_value(&under).unwrap());
    assert_eq!(under.len(), 10);

    // A later commit is what the next dump shows.
    w.remove(&"k042".to_string());
    w.insert("k042x".into(), entry(9));
    w.commit().unwrap();
    model.remove("k042");
    model.insert("k042x".into(), entry(9));
    assert_eq!(json(&cli(&["dump", name.as_str(), "--json"])), serde_json::to_value(&model).unwrap());

    let text = ok(&cli(&["dump", name.as_str(), "--key", "k042x"]));
    assert!(text.contains("map<String, Entry>") && text.contains("id: 9"), "{text}");
    let missing = cli(&["dump", name.as_str(), "--key", "k042"]);
    assert_eq!(missing.status.code(), Some(3), "an absent key exits 3");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no key \"k042\""));
}

#[test]
fn integer_keys_and_bad_arguments() {
    let name = Name::new("ints");
    let mut w = MapWriter::<i32, Entry>::create(name.as_str()).unwrap();
    w.extend((-5i32..5).map(|i| (i, entry(i.unsigned_abs() as u64))));
    w.commit().unwrap();
    let all = json(&cli(&["dump", name.as_str(), "--json"]));
    // serde_json writes integer map keys as strings, in the map's (numeric) order.
    let expected: BTreeMap<i32, Entry> = (-5i32..5).map(|i| (i, entry(i.unsigned_abs() as u64))).collect();
    assert_eq!(all, serde_json::to_value(&expected).unwrap());
    assert_eq!(json(&cli(&["dump", name.as_str(), "--json", "--key", "-3"])), serde_json::to_value(entry(3)).unwrap());
    for bad in [["--key", "x"], ["--key", "99999999999"], ["--prefix", "1"]] {
        let o = cli(&["dump", name.as_str(), bad[0], bad[1]]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // --key on an object that is no map.
    let plain = Name::new("plain");
    let mut pw = shmstate::Writer::<Entry>::create(plain.as_str()).unwrap();
    pw.publish(&entry(1)).unwrap();
    assert_eq!(cli(&["dump", plain.as_str(), "--key", "1"]).status.code(), Some(2));
}

#[test]
fn list_and_inspect_say_it_is_a_map_and_what_its_memory_holds() {
    let name = Name::new("inspect");
    let (mut w, _) = written(name.as_str());
    let list = ok(&cli(&["list", name.as_str()]));
    assert!(list.contains("map<String, Entry> (500 entries, pages"), "{list}");
    let listed = json(&cli(&["list", name.as_str(), "--json"]));
    assert_eq!(listed[0]["map"]["entries"], 500, "{listed}");
    assert_eq!(listed[0]["map"]["types"], "map<String, Entry>");

    // A reader holds this generation while the writer replaces every value.
    let mut r = MapReader::<String, Entry>::open(name.as_str()).unwrap();
    let held = r.read().unwrap();
    let held_gen = held.generation().get();
    w.extend((0..500).map(|i| (format!("k{i:03}"), entry(i + 1))));
    w.commit().unwrap();
    w.insert("k000".into(), entry(7));
    w.commit().unwrap();
    let text = ok(&cli(&["inspect", name.as_str()]));
    assert!(text.contains("map: map<String, Entry>") && text.contains("500 entries"), "{text}");
    assert!(text.contains(&format!("held generations: [{held_gen}]")), "{text}");
    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    assert_eq!(v["map"]["entries"], 500);
    assert!(v["map"]["garbage_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(v["map"]["pages_file_bytes"].as_u64().unwrap() >= v["map"]["pages_len"].as_u64().unwrap());
    // The held snapshot still reads its own generation.
    assert_eq!(held.get(&"k000".to_string()).unwrap().unwrap().id, 0);
}

#[test]
fn a_corrupted_pages_file_is_a_clear_error() {
    let name = Name::new("corrupt");
    let (_w, _) = written(name.as_str());
    let root: MapRoot = Reader::<MapRoot>::open(name.as_str()).unwrap().read().unwrap().to_value().unwrap();
    let path = format!("/dev/shm/shmstate.{}.pages", name.as_str());
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(root.root_offset)).unwrap();
    f.write_all(&vec![0xa5; root.root_len as usize]).unwrap();
    let o = cli(&["dump", name.as_str(), "--json"]);
    assert_eq!(o.status.code(), Some(5), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(name.as_str()));

    // A pages header without a value schema (as an older writer left it).
    f.seek(SeekFrom::Start(12)).unwrap();
    f.write_all(&[0; 4]).unwrap();
    let o = cli(&["dump", name.as_str()]);
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no value schema"), "{}", String::from_utf8_lossy(&o.stderr));
}
