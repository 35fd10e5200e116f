//! `shmstate publish` and `shmstate schema`: JSON in the form `dump --json`
//! prints, published by the command (another process) and read by a typed
//! `Reader<T>` here; a schema file creates an object typed readers accept;
//! bad JSON is refused with its path named, and publishes nothing.
#![cfg(not(miri))]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Output};
use std::time::Duration;

use serde::Serialize;
use shmstate::{Reader, Writer};

struct Name(String);

impl Name {
    fn new(test: &str) -> Self {
        let name = format!("clipub{}-{test}", std::process::id());
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

/// A file under the target directory's temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("shmstate-publish-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmstate")).args(args).output().expect("run shmstate")
}

#[track_caller]
fn ok(o: &Output) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(o.status.success(), "status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
enum Mode {
    Primary,
    Replica { of: String, lag: Option<Duration> },
    Weighted(u8, f64),
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Port(u16);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Config {
    name: String,
    port: Port,
    big: u128,
    hosts: Vec<String>,
    limits: HashMap<String, u32>,
    by_id: HashMap<u64, (bool, char)>,
    ordered: BTreeMap<i32, Vec<u8>>,
    tags: HashSet<String>,
    levels: BTreeSet<u16>,
    mode: Mode,
    modes: Vec<Mode>,
    tls: Option<Box<u32>>,
    bind: SocketAddr,
    gateways: BTreeMap<Ipv4Addr, IpAddr>,
    timeout: Duration,
    matrix: [[i16; 2]; 2],
}

fn config(n: u32) -> Config {
    Config {
        name: format!("config number {n}"),
        port: Port(8000 + n as u16),
        // Past 64 bits only where the JSON comes from `dump` (a decimal
        // string): serde_json's own `to_value` fails there.
        big: if n == 9 { u128::MAX - 9 } else { u128::from(n) << 50 },
        hosts: (0..n).map(|i| format!("host-{i}.example")).collect(),
        limits: (0..n).map(|i| (format!("limit {i}"), i * 10)).collect(),
        by_id: (0..n).map(|i| (u64::from(i) << 40, (i % 2 == 0, 'λ'))).collect(),
        ordered: (0..n as i32).map(|i| (i - 3, vec![i as u8; i as usize])).collect(),
        tags: (0..n).map(|i| format!("tag{i}")).collect(),
        levels: (0..n as u16).map(|i| i * 3).collect(),
        mode: Mode::Replica { of: "primary.example".into(), lag: Some(Duration::from_millis(250)) },
        modes: vec![Mode::Primary, Mode::Weighted(3, 0.5), Mode::Replica { of: "x".into(), lag: None }],
        tls: (n % 2 == 1).then(|| Box::new(443)),
        bind: "[::1]:9000".parse().unwrap(),
        gateways: BTreeMap::from([(Ipv4Addr::new(10, 0, 0, 1), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254)))]),
        timeout: Duration::new(3, 5),
        matrix: [[1, -2], [3, -4]],
    }
}

fn read_typed(name: &str) -> Config {
    let mut r = Reader::<Config>::open(name).unwrap();
    let snap = r.read().unwrap();
    shmstate::rkyv::deserialize::<Config, shmstate::rkyv::rancor::Error>(&*snap).unwrap()
}

#[test]
fn published_json_is_read_by_a_typed_reader() {
    let name = Name::new("typed");
    drop(Writer::<Config>::create(name.as_str()).unwrap());
    for n in [0, 1, 7, 40] {
        let want = config(n);
        let file = TempFile::new("typed.json", &serde_json::to_string(&want).unwrap());
        let out = ok(&cli(&["publish", name.as_str(), file.path()]));
        assert!(out.contains("published generation"), "{out}");
        assert_eq!(read_typed(name.as_str()), want, "with {n} elements");
    }
}

#[test]
fn dump_json_published_back_is_the_same_value() {
    let name = Name::new("dump");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    w.publish(&config(9)).unwrap();
    drop(w);
    let dumped = ok(&cli(&["dump", name.as_str(), "--json"]));
    let file = TempFile::new("dump.json", &dumped);
    ok(&cli(&["publish", name.as_str(), file.path()]));
    assert_eq!(read_typed(name.as_str()), config(9));
    assert_eq!(ok(&cli(&["dump", name.as_str(), "--json"])), dumped);
}

#[test]
fn a_schema_file_creates_an_object_typed_readers_accept() {
    let source = Name::new("schema-src");
    drop(Writer::<Config>::create(source.as_str()).unwrap());
    let schema = ok(&cli(&["schema", source.as_str()]));
    assert!(ok(&cli(&["schema", source.as_str(), "--text"])).contains("struct Config"));
    let schema_file = TempFile::new("config.schema.json", &schema);
    let created = Name::new("schema-new");
    let value = TempFile::new("value.json", &serde_json::to_string(&config(3)).unwrap());
    // Without the object or a schema file there is no type to publish.
    let missing = cli(&["publish", created.as_str(), value.path()]);
    assert_eq!(missing.status.code(), Some(3), "{}", String::from_utf8_lossy(&missing.stderr));
    ok(&cli(&["publish", created.as_str(), value.path(), "--schema", schema_file.path()]));
    assert_eq!(read_typed(created.as_str()), config(3));
    // A broken schema file is refused.
    let broken = TempFile::new("broken.schema.json", &schema.replacen("\"align\": 8", "\"align\": 3", 1));
    let o = cli(&["publish", created.as_str(), value.path(), "--schema", broken.path()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid schema description"), "{o:?}");
}

#[test]
fn bad_json_is_refused_naming_its_path_and_publishes_nothing() {
    let name = Name::new("bad");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    w.publish(&config(2)).unwrap();
    drop(w);
    let good = serde_json::to_value(config(2)).unwrap();
    type Breaker = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (Box::new(|j| j["port"] = 70000.into()), "at .port: 70000 is out of range for u16"),
        (Box::new(|j| j["hosts"][1] = 5.into()), "at .hosts[1]: expected a string for String, found the number 5"),
        (
            Box::new(|j| j["mode"] = serde_json::json!({"Replica": {"of": "x"}})),
            "at .mode.Replica: missing field \"lag\" of Mode::Replica",
        ),
        (
            Box::new(|j| j["modes"][2] = "Secondary".into()),
            "at .modes[2]: Mode has no variant \"Secondary\" (variants: Primary, Replica, Weighted)",
        ),
        (Box::new(|j| j["limits"]["limit 1"] = (-1).into()), "at .limits[\"limit 1\"]: -1 is out of range for u32"),
        (
            Box::new(|j| j["by_id"] = serde_json::json!({"x": [true, "c"]})),
            "at .by_id[\"x\"]: expected an integer for u64, found the string \"x\"",
        ),
        (Box::new(|j| j["bind"] = "localhost".into()), "at .bind: \"localhost\" is not a socket address"),
        (Box::new(|j| j["matrix"][0] = serde_json::json!([1])), "at .matrix[0]: [i16; 2] needs 2 elements, found 1"),
        (
            Box::new(|j| j["timeout"]["nanos"] = 2_000_000_000u64.into()),
            "at .timeout.nanos: 2000000000 is out of range for Duration nanoseconds",
        ),
        (
            Box::new(|j| {
                j.as_object_mut().unwrap().remove("tls");
            }),
            "missing field \"tls\" of Config",
        ),
        (Box::new(|j| j["extra"] = 1.into()), "Config has no field \"extra\""),
    ];
    for (break_it, want) in cases {
        let mut j = good.clone();
        break_it(&mut j);
        let file = TempFile::new("bad.json", &j.to_string());
        let o = cli(&["publish", name.as_str(), file.path()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "expected {want:?} in {err}");
    }
    let not_json = TempFile::new("not.json", "{\"name\": ");
    let o = cli(&["publish", name.as_str(), not_json.path()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not JSON"), "{o:?}");
    // Nothing was published: the first snapshot is still the only one.
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().generation, 1);
    assert_eq!(read_typed(name.as_str()), config(2));
}

#[test]
fn publish_refuses_an_object_whose_writer_is_alive() {
    let name = Name::new("busy");
    let mut w = Writer::<Config>::create(name.as_str()).unwrap();
    w.publish(&config(1)).unwrap();
    let file = TempFile::new("busy.json", &serde_json::to_string(&config(2)).unwrap());
    let o = cli(&["publish", name.as_str(), file.path()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another live writer"), "{o:?}");
    assert_eq!(read_typed(name.as_str()), config(1));
}
