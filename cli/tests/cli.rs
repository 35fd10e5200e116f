//! End-to-end tests of the `shmstate` command against objects written here.
#![cfg(not(miri))]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroU32;
use std::ops::{Range, RangeInclusive};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use shmstate::{Reader, Writer};

/// A unique object name for this test, removed on drop.
struct Name(String);

impl Name {
    fn new(test: &str) -> Self {
        let name = format!("cli{}-{test}", std::process::id());
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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "status {:?}\nstdout:\n{}\nstderr:\n{}", o.status, stdout(o), stderr(o));
    stdout(o)
}

#[track_caller]
fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).expect("valid JSON on stdout")
}

/// Waits until some condition on the object's info holds.
fn wait_for(name: &str, what: &str, f: impl Fn(&shmstate::ObjectInfo) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if shmstate::inspect(name).is_ok_and(|i| f(&i)) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child forked from this (multi-threaded) test process that only waits to
/// be killed: it holds copies of all the process's descriptors, as every
/// `Command` (`posix_spawn`) child does between its fork and its exec, but for
/// as long as the test needs (other tests' pipes it inherited stay open as
/// long, which can only delay those tests that long). Killed and reaped on drop.
struct ForkedChild(libc::pid_t);

impl ForkedChild {
    fn new() -> Self {
        // SAFETY: fork is sound in a multi-threaded process as long as the
        // child calls only async-signal-safe functions: it only pauses until
        // SIGKILL.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            loop {
                // SAFETY: pause is async-signal-safe and takes no arguments.
                unsafe { libc::pause() };
            }
        }
        ForkedChild(pid)
    }
}

impl Drop for ForkedChild {
    fn drop(&mut self) {
        // SAFETY: plain syscalls on our own child's pid; a null status is allowed.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Point {
    x: i32,
    y: i32,
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Pair(u8, String);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Meters(f64);

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Marker;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[repr(u8)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u32, h: u32, label: Option<String> },
    Pair(u8, u16),
    Far = 200,
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Person {
    name: String,
    age: u8,
    tags: Vec<String>,
    home: Option<Point>,
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Everything {
    unit: (),
    flag: bool,
    a_u8: u8,
    a_u16: u16,
    a_u32: u32,
    a_u64: u64,
    a_u128: u128,
    a_usize: usize,
    a_i8: i8,
    a_i16: i16,
    a_i32: i32,
    a_i64: i64,
    a_i128: i128,
    a_isize: isize,
    a_f32: f32,
    a_f64: f64,
    a_char: char,
    short: String,
    long: String,
    empty: String,
    point: Point,
    pair: Pair,
    meters: Meters,
    marker: Marker,
    shapes: Vec<Shape>,
    some: Option<u32>,
    none: Option<String>,
    boxed_point: Option<Box<Point>>,
    counts: HashMap<String, u64>,
    big_counts: HashMap<String, u64>,
    tree: BTreeMap<u32, String>,
    small_tree: BTreeMap<String, Shape>,
    people: Vec<Person>,
    array: [u16; 4],
    grid: [[u8; 3]; 2],
    tuple: (u8, String, bool),
    boxed: Box<Person>,
    boxed_slice: Box<[u32]>,
    empty_vec: Vec<u64>,
    empty_map: HashMap<String, u64>,
    empty_tree: BTreeMap<u32, String>,
}

fn everything() -> Everything {
    let person = |name: &str, age: u8| Person {
        name: name.into(),
        age,
        tags: vec!["a".into(), "a much longer tag than eight bytes".into()],
        home: (age % 2 == 0).then_some(Point { x: age as i32, y: -(age as i32) }),
    };
    Everything {
        unit: (),
        flag: true,
        a_u8: 255,
        a_u16: 65535,
        a_u32: 4_000_000_000,
        a_u64: u64::MAX,
        a_u128: u64::MAX as u128 - 7,
        a_usize: 123_456,
        a_i8: -128,
        a_i16: -32768,
        a_i32: i32::MIN,
        a_i64: i64::MIN,
        a_i128: -(1i128 << 62),
        a_isize: -5,
        a_f32: 1.5,
        a_f64: -2.25e100,
        a_char: 'λ',
        short: "hi".into(),
        long: "a string longer than eight bytes, stored out of line ✓".into(),
        empty: String::new(),
        point: Point { x: 1, y: -2 },
        pair: Pair(7, "seven".into()),
        meters: Meters(3.25),
        marker: Marker,
        shapes: vec![
            Shape::Empty,
            Shape::Circle(0.5),
            Shape::Rect { w: 3, h: 4, label: Some("box".into()) },
            Shape::Rect { w: 0, h: 0, label: None },
            Shape::Pair(1, 1000),
            Shape::Far,
        ],
        some: Some(42),
        none: None,
        boxed_point: Some(Box::new(Point { x: 9, y: 9 })),
        counts: HashMap::from([("alpha".into(), 1), ("beta".into(), 2), ("gamma-longer-key".into(), u64::MAX)]),
        big_counts: (0..100).map(|i| (format!("key-{i}"), i * 1_000_000_007)).collect(),
        tree: (0..40).map(|i| (i * 3, format!("v{i}"))).collect(),
        small_tree: BTreeMap::from([("c".into(), Shape::Circle(2.0)), ("e".into(), Shape::Empty)]),
        people: vec![person("ann", 30), person("bob", 41), person("a-long-name-here", 2)],
        array: [1, 2, 3, 65535],
        grid: [[1, 2, 3], [4, 5, 6]],
        tuple: (8, "eight".into(), false),
        boxed: Box::new(person("boxed", 77)),
        boxed_slice: vec![10, 20, 30].into_boxed_slice(),
        empty_vec: Vec::new(),
        empty_map: HashMap::new(),
        empty_tree: BTreeMap::new(),
    }
}

#[test]
fn dump_json_matches_serde_of_the_original_value() {
    let name = Name::new("dump");
    let mut w = Writer::<Everything>::create(name.as_str()).unwrap();
    let value = everything();
    w.publish(&value).unwrap();
    let expected = serde_json::to_value(&value).unwrap();
    let got = json(&cli(&["dump", name.as_str(), "--json"]));
    assert_eq!(got, expected, "\ngot:      {got}\nexpected: {expected}");
    let compact = ok(&cli(&["dump", name.as_str(), "--json", "--compact"]));
    assert_eq!(compact.lines().count(), 1);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&compact).unwrap(), expected);

    let text = ok(&cli(&["dump", name.as_str()]));
    assert!(text.starts_with(&format!("// {}: Everything, generation 1", name.as_str())), "{text}");
    for needle in [
        "Rect { w: 3, h: 4, label: Some(\"box\") }",
        "point: Point { x: 1, y: -2 }",
        "pair: Pair(7, \"seven\")",
        "marker: Marker,",
        "a_char: 'λ'",
        "a_u64: 18446744073709551615",
        "none: None",
        "tuple: (8, \"eight\", false)",
        "\"alpha\": 1",
        "Far,",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// A deployed config of std types: what an operator diffs `dump --json`
/// against.
#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct StdConfig {
    listen: SocketAddr,
    admin: SocketAddrV4,
    metrics: SocketAddrV6,
    bind_ip: IpAddr,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
    peers: Vec<SocketAddr>,
    gateway: Option<IpAddr>,
    no_gateway: Option<IpAddr>,
    timeout: Duration,
    timeouts: HashMap<String, Duration>,
    weights: HashMap<IpAddr, u16>,
    features: HashSet<String>,
    ports: BTreeSet<u16>,
    label: Box<str>,
    workers: NonZeroU32,
    sep: char,
    span: Range<u32>,
    closed: RangeInclusive<u8>,
    last: Result<u8, String>,
    failed: Result<u8, String>,
    marker: PhantomData<u64>,
}

fn std_config() -> StdConfig {
    StdConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 18080)),
        admin: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9000),
        metrics: SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9100, 0, 0),
        bind_ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        v4: Ipv4Addr::new(192, 168, 0, 1),
        v6: "2001:db8::7".parse().unwrap(),
        peers: vec!["10.0.0.2:7000".parse().unwrap(), "[fe80::1%3]:7001".parse().unwrap()],
        gateway: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 254))),
        no_gateway: None,
        timeout: Duration::from_millis(1500),
        timeouts: HashMap::from([("connect".into(), Duration::from_secs(3)), ("idle".into(), Duration::from_nanos(1))]),
        weights: HashMap::from([(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 3), (IpAddr::V6(Ipv6Addr::LOCALHOST), 1)]),
        // One element: serde_json lists a HashSet in its table's order, the dump sorted.
        features: HashSet::from(["tls".into()]),
        ports: BTreeSet::from([443, 80, 8080]),
        label: "edge-1".into(),
        workers: NonZeroU32::new(8).unwrap(),
        sep: ',',
        span: 1..10,
        closed: 0..=255,
        last: Ok(3),
        failed: Err("unreachable".into()),
        marker: PhantomData,
    }
}

#[test]
fn dump_json_of_std_types_matches_serde_of_the_original_value() {
    let name = Name::new("dumpstd");
    let mut w = Writer::<StdConfig>::create(name.as_str()).unwrap();
    let value = std_config();
    w.publish(&value).unwrap();
    let expected = serde_json::to_value(&value).unwrap();
    let got = json(&cli(&["dump", name.as_str(), "--json"]));
    assert_eq!(got, expected, "\ngot:      {got}\nexpected: {expected}");
    assert_eq!(got["listen"], json!("127.0.0.1:18080"));
    assert_eq!(got["features"], json!(["tls"]));

    let text = ok(&cli(&["dump", name.as_str()]));
    for needle in [
        "listen: 127.0.0.1:18080,",
        "metrics: [::1]:9100,",
        "peers: [10.0.0.2:7000, [fe80::1%3]:7001],",
        "gateway: Some(10.0.0.254),",
        "timeout: 1.5s,",
        "\"connect\": 3s",
        "features: {\"tls\"},",
        "ports: {80, 443, 8080},",
        "label: \"edge-1\",",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn dump_of_nothing_published_and_of_a_missing_object() {
    let name = Name::new("dumpempty");
    let _w = Writer::<Point>::create(name.as_str()).unwrap();
    let o = cli(&["dump", name.as_str()]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("nothing has been published yet"), "{}", stderr(&o));
    drop(_w);
    let missing = Name::new("missing");
    for args in [
        vec!["dump", missing.as_str()],
        vec!["inspect", missing.as_str()],
        vec!["watch", missing.as_str()],
        vec!["rm", missing.as_str()],
    ] {
        let o = cli(&args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("no shmstate object named \"{}\"", missing.as_str())), "{}", stderr(&o));
    }
}

#[test]
fn list_shows_type_and_generation() {
    let name = Name::new("list");
    let mut w = Writer::<Point>::create(name.as_str()).unwrap();
    for i in 0..3 {
        w.publish(&Point { x: i, y: i }).unwrap();
    }
    let prefix = format!("cli{}-", std::process::id());
    let text = ok(&cli(&["list"]));
    let line = text.lines().find(|l| l.starts_with(&format!("{} ", name.as_str()))).expect(&text);
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "Point", "{line}");
    assert!(cols.contains(&"3"), "{line}");
    assert!(line.contains("alive"), "{line}");
    assert!(text.starts_with("NAME "), "{text}");

    let v = json(&cli(&["list", &prefix, "--json"]));
    let entry = v.as_array().unwrap().iter().find(|e| e["name"] == name.as_str()).expect("listed");
    assert_eq!(entry["type"], "Point");
    assert_eq!(entry["generation"], 3);
    assert_eq!(entry["writer_alive"], true);
    assert_eq!(entry["ok"], true);
    assert!(v.as_array().unwrap().iter().all(|e| e["name"].as_str().unwrap().starts_with(&prefix)));
}

#[test]
fn inspect_shows_schema_slots_and_readers() {
    let name = Name::new("inspect");
    let mut w = Writer::<Person>::create(name.as_str()).unwrap();
    w.publish(&Person { name: "x".into(), age: 1, tags: vec![], home: None }).unwrap();
    let mut r = Reader::<Person>::open(name.as_str()).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.age, 1);
    let text = ok(&cli(&["inspect", name.as_str()]));
    let pid = std::process::id().to_string();
    for needle in ["type:", "Person", "struct Person {", "tags: Vec<String>,", "slots (", "readers (1 live", "sealed"] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let reader_line = text.lines().skip_while(|l| !l.starts_with("readers")).nth(2).expect(&text);
    assert!(reader_line.contains("yes") && reader_line.contains(&pid), "{reader_line}");
    assert!(reader_line.contains("generation 1"), "{reader_line}");

    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    assert_eq!(v["type"], "Person");
    assert_eq!(v["generation"], 1);
    let readers = v["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1, "{v}");
    assert_eq!(readers[0]["alive"], true);
    assert_eq!(readers[0]["pid"], std::process::id());
    assert_eq!(readers[0]["pinned"]["generation"], 1);
    assert!(v["schema"].as_str().unwrap().contains("struct Person"));
    assert_eq!(v["held_old_bytes"], 0, "generation 1 is the current one");
    assert!(text.contains("readers keep no older generation"), "{text}");
    drop(snap);
}

#[test]
fn inspect_names_the_shared_writers() {
    let name = Name::new("sharedw");
    let shared = || Writer::<Person>::options().shared(true).open_or_create(name.as_str()).unwrap();
    let (mut a, b) = (shared(), shared());
    a.update(|_| Person { name: "x".into(), age: 1, tags: vec![], home: None }).unwrap();
    let pid = std::process::id();
    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    let writers = v["shared_writers"].as_array().unwrap();
    assert_eq!(writers.iter().map(|w| w["seat"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1], "{v}");
    assert!(writers.iter().all(|w| w["pid"] == pid && w["publishing"] == false), "{v}");
    let text = ok(&cli(&["inspect", name.as_str()]));
    assert!(text.contains(&format!("seat 0: pid {pid}, seat 1: pid {pid}")), "{text}");
    drop(a);
    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    assert_eq!(v["shared_writers"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["writer_alive"], true, "seat 1 lives on");
    drop(b);
    let text = ok(&cli(&["inspect", name.as_str()]));
    assert!(text.lines().any(|l| l.starts_with("shared writers:") && l.ends_with("none")), "{text}");
}

#[test]
fn inspect_shows_the_memory_idle_readers_keep() {
    let name = Name::new("inspect-held");
    let mut w = Writer::<Person>::options().capacity(8192).create(name.as_str()).unwrap();
    let person = |age| Person { name: "x".into(), age, tags: vec![], home: None };
    w.publish(&person(1)).unwrap();
    let mut idle = Reader::<Person>::open(name.as_str()).unwrap();
    assert_eq!(idle.read().unwrap().age, 1);
    let mut releasing = Reader::<Person>::open(name.as_str()).unwrap();
    assert_eq!(releasing.read_releasing().unwrap().age, 1);
    w.publish(&person(2)).unwrap();
    w.publish(&person(3)).unwrap();

    let text = ok(&cli(&["inspect", name.as_str()]));
    let memory = text.lines().find(|l| l.contains("memory:")).expect(&text);
    assert!(
        memory.contains("readers keep 1 older generation(s), 8.0 KiB: generation 1 (8.0 KiB, reader 0)"),
        "{memory}"
    );
    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    assert_eq!(v["held_old_bytes"], 8192, "{v}");
    // The pin counts readers keep per slot: generation 1's slot counts the idle reader.
    let slots = v["slot_table"].as_array().unwrap();
    let held = slots.iter().find(|s| s["generation"] == 1).expect("generation 1's slot");
    assert_eq!((held["pin_count"].clone(), held["pinned_by"].clone()), (json!(1), json!([0])), "{v}");
    let current = slots.iter().find(|s| s["current"] == true).unwrap();
    assert_eq!(current["pin_count"], 0, "nobody read generation 3: {v}");

    drop(idle);
    let v = json(&cli(&["inspect", name.as_str(), "--json"]));
    assert_eq!(v["held_old_bytes"], 0, "{v}");
}

/// The next version of `Point`, published with a lane of `Point`.
#[shmstate::shared]
#[derive(Debug, Clone)]
struct Point3 {
    x: i32,
    y: i32,
    z: i32,
}

#[test]
fn inspect_and_list_show_the_lanes_and_the_readers_of_each() {
    let name = Name::new("lanes");
    let n = name.as_str();
    let to_point = |p: &Point3| Point { x: p.x, y: p.y };
    let mut w = Writer::<Point3>::options().lane(to_point).create(n).unwrap();
    w.publish(&Point3 { x: 1, y: 2, z: 3 }).unwrap();
    let mut old: Vec<Reader<Point>> = (0..2).map(|_| Reader::<Point>::open(n).unwrap()).collect();
    let mut new = Reader::<Point3>::open(n).unwrap();
    assert_eq!(old[0].read().unwrap().y, 2);
    assert_eq!(new.read().unwrap().z, 3);
    let lane = format!("{n}@{:016x}", shmstate::schema::fingerprint_of::<Point>());
    assert_eq!(old[1].object_name(), lane);

    let text = ok(&cli(&["inspect", n]));
    assert!(text.contains("versions (2 layouts"), "{text}");
    let row = |object: &str| {
        let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{object} "))).expect(&text);
        line.split_whitespace().map(str::to_string).collect::<Vec<_>>()
    };
    // OBJECT TYPE FINGERPRINT GEN WRITER… READERS: one reader of Point3, two of Point.
    assert_eq!((row(n)[1].as_str(), row(n).last().unwrap().as_str()), ("Point3", "1"), "{text}");
    assert_eq!((row(&lane)[1].as_str(), row(&lane).last().unwrap().as_str()), ("Point", "2"), "{text}");

    let v = json(&cli(&["inspect", n, "--json"]));
    assert_eq!(v["lanes"][0]["name"], lane.as_str());
    assert_eq!(v["lanes"][0]["live_readers"], 2);
    assert_eq!(v["lanes"][0]["lane_of"], n);
    assert!(ok(&cli(&["inspect", &lane])).contains(&format!("this is a lane of {n:?}")));

    // `list`: the object, then its lane, each with its readers.
    let listed = ok(&cli(&["list"]));
    let lines: Vec<&str> = listed.lines().collect();
    let at = lines.iter().position(|l| l.starts_with(&format!("{n} "))).expect(&listed);
    let cols = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!((cols(at)[1], *cols(at).last().unwrap()), ("Point3", "1"), "{listed}");
    assert_eq!(
        (cols(at + 1)[0], cols(at + 1)[1], *cols(at + 1).last().unwrap()),
        (lane.as_str(), "Point", "2"),
        "{listed}"
    );

    // `rm` counts the lane's readers too, and removes the lanes.
    drop(new);
    assert_eq!(code(&cli(&["rm", n])), 7, "two live readers of the lane");
    drop(old);
    ok(&cli(&["rm", n]));
    assert!(matches!(shmstate::inspect(&lane), Err(shmstate::OpenError::NotFound { .. })));
}

/// Dropping a reader or a writer lets go of its locks at once, even while a
/// child forked by another thread shares the process's descriptors (every
/// `Command` child does, from its fork to its exec). The cli tests spawn from
/// parallel threads all the time: this is how `rm` once reported "2 live
/// readers (pid N, N)" right after both had been dropped. The forked child
/// here waits instead of exec'ing, which makes that window deterministic.
#[test]
fn dropped_handles_are_released_while_a_forked_child_shares_the_descriptors() {
    for lock_pins in [false, true] {
        let name = Name::new(if lock_pins { "forked-locks" } else { "forked-table" });
        let n = name.as_str();
        let mut w = Writer::<Point>::options().lock_pins(lock_pins).create(n).unwrap();
        w.publish(&Point { x: 1, y: 2 }).unwrap();
        let mut r = Reader::<Point>::open(n).unwrap();
        assert_eq!(r.read().unwrap().x, 1);
        let child = ForkedChild::new();
        drop(r);
        drop(w);
        let v = json(&cli(&["inspect", n, "--json"]));
        assert_eq!(
            (&v["live_readers"], &v["writer_alive"]),
            (&json!(0), &json!(false)),
            "lock pins {lock_pins}: both handles were dropped: {v}"
        );
        ok(&cli(&["rm", n]));
        drop(child);
    }
}

/// A header fingerprint that the stored schema does not hash to (an object
/// from another fingerprint scheme) is flagged; a sound one is not.
#[test]
fn inspect_flags_a_fingerprint_the_schema_does_not_hash_to() {
    use std::os::unix::fs::FileExt;
    let name = Name::new("inspect-fp");
    let mut w = Writer::<Point>::create(name.as_str()).unwrap();
    w.publish(&Point { x: 1, y: 2 }).unwrap();
    let flag = "the stored schema hashes to";
    let text = ok(&cli(&["inspect", name.as_str()]));
    assert!(text.contains(&format!("{:#018x}", shmstate::schema::fingerprint_of::<Point>())), "{text}");
    assert!(!text.contains(flag), "{text}");

    // The header's fingerprint word is at byte 16 (docs/PROTOCOL.md).
    let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/shmstate.{}", name.as_str())).unwrap();
    file.write_all_at(&0x0123_4567_89ab_cdefu64.to_le_bytes(), 16).unwrap();
    let text = ok(&cli(&["inspect", name.as_str()]));
    assert!(text.contains(&format!("0x0123456789abcdef (! {flag}")), "{text}");
}

#[test]
fn watch_prints_one_line_per_generation() {
    let name = Name::new("watch");
    let mut w = Writer::<Point>::create(name.as_str()).unwrap();
    w.publish(&Point { x: 0, y: 0 }).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmstate"))
        .args(["watch", name.as_str(), "--count", "2", "--timeout", "20s", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(name.as_str(), "the watcher to open", |i| i.live_readers() == 1);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let publisher = std::thread::spawn(move || {
        w.publish(&Point { x: 1, y: 1 }).unwrap();
        w
    });
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let mut w = publisher.join().unwrap();
    assert_eq!(first["generation"], 2, "{first}");
    let publisher = std::thread::spawn(move || {
        w.publish(&Point { x: 2, y: 2 }).unwrap();
        w
    });
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["generation"], 3, "{second}");
    assert_eq!(second["skipped"], 0);
    assert!(lines.next().is_none(), "stops after --count 2");
    assert!(child.wait().unwrap().success());
    drop(publisher.join().unwrap());
}

#[test]
fn watch_exits_6_when_the_writer_dies() {
    let name = Name::new("watchdead");
    let mut w = Writer::<Point>::create(name.as_str()).unwrap();
    w.publish(&Point { x: 0, y: 0 }).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_shmstate"))
        .args(["watch", name.as_str(), "--dump"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(name.as_str(), "the watcher to open", |i| i.live_readers() == 1);
    w.publish(&Point { x: 5, y: 6 }).unwrap();
    drop(w);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(stderr(&o).contains("the writer is gone"), "{}", stderr(&o));
    // The publish just before the death is either reported or coalesced away,
    // never lost silently into a hang.
    let out = stdout(&o);
    assert!(out.is_empty() || out.contains("generation 2") && out.contains("Point { x: 5, y: 6 }"), "{out}");
}

#[test]
fn watch_times_out() {
    let name = Name::new("watchtimeout");
    let _w = Writer::<Point>::create(name.as_str()).unwrap();
    let o = cli(&["watch", name.as_str(), "--timeout", "100ms"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no new generation"), "{}", stderr(&o));
}

/// `rm` of an object with live readers refuses, says who reads it, and
/// leaves it alone; `--force` removes it.
#[test]
fn rm_refuses_an_object_with_live_readers_and_names_them() {
    let name = Name::new("rmbusy");
    let mut w = Writer::<Point>::create(name.as_str()).unwrap();
    w.publish(&Point { x: 1, y: 2 }).unwrap();
    let mut r = Reader::<Point>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().x, 1);
    let o = cli(&["rm", name.as_str()]);
    let err = stderr(&o);
    assert_eq!(code(&o), 7, "{err}");
    let pid = format!("pid {}", std::process::id());
    assert!(err.contains("1 live reader") && err.contains(&pid) && err.contains("--force"), "{err}");
    assert!(shmstate::inspect(name.as_str()).is_ok(), "the object must still be there");
    assert_eq!(r.read().unwrap().x, 1);
    ok(&cli(&["rm", "--force", name.as_str()]));
    assert_eq!(code(&cli(&["inspect", name.as_str()])), 3);
    drop(r);
}

#[test]
fn rm_removes() {
    let name = Name::new("rm");
    drop(Writer::<Point>::create(name.as_str()).unwrap());
    assert_eq!(ok(&cli(&["rm", name.as_str()])), format!("removed {}\n", name.as_str()));
    assert_eq!(code(&cli(&["inspect", name.as_str()])), 3);
    assert_eq!(code(&cli(&["rm", name.as_str()])), 3);
    assert_eq!(code(&cli(&["rm", "bad/name"])), 2);
}

#[test]
fn gc_removes_dead_unread_objects_only() {
    let dead = Name::new("gc-dead");
    let live = Name::new("gc-live");
    let read = Name::new("gc-read");
    {
        let mut w = Writer::<Point>::create(dead.as_str()).unwrap();
        w.publish(&Point { x: 1, y: 1 }).unwrap();
    }
    let _live_writer = Writer::<Point>::create(live.as_str()).unwrap();
    drop(Writer::<Point>::create(read.as_str()).unwrap());
    let _reader = Reader::<Point>::open(read.as_str()).unwrap();
    let prefix = format!("cli{}-gc-", std::process::id());

    let v = json(&cli(&["gc", &prefix, "--json"]));
    assert_eq!(v["dry_run"], true);
    let names: Vec<&str> = v["candidates"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, [dead.as_str()]);
    let text = ok(&cli(&["gc", &prefix]));
    assert!(text.contains("would remove") && text.contains(dead.as_str()) && text.contains("--yes"), "{text}");
    assert!(shmstate::inspect(dead.as_str()).is_ok(), "a dry run removes nothing");

    let text = ok(&cli(&["gc", &prefix, "--yes"]));
    assert!(text.contains("removed") && text.contains(dead.as_str()), "{text}");
    assert!(!text.contains(live.as_str()) && !text.contains(read.as_str()), "{text}");
    assert!(matches!(shmstate::inspect(dead.as_str()), Err(shmstate::OpenError::NotFound { .. })));
    assert!(shmstate::inspect(live.as_str()).is_ok());
    assert!(shmstate::inspect(read.as_str()).is_ok());
}

fn corrupt(name: &str, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/shmstate.{name}")).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn corrupt_object_exits_5() {
    let name = Name::new("corrupt");
    {
        let mut w = Writer::<Point>::create(name.as_str()).unwrap();
        w.publish(&Point { x: 1, y: 1 }).unwrap();
    }
    corrupt(name.as_str(), 0, b"garbage!");
    for cmd in ["inspect", "dump", "watch"] {
        let o = cli(&[cmd, name.as_str()]);
        assert_eq!(code(&o), 5, "{cmd}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(name.as_str()) && err.contains("corrupt object"), "{err}");
    }
    let text = ok(&cli(&["list"]));
    let line = text.lines().find(|l| l.starts_with(name.as_str())).expect(&text);
    assert!(line.contains("corrupt"), "{line}");
    let v = json(&cli(&["list", name.as_str(), "--json"]));
    assert_eq!(v[0]["error"], "corrupt", "{v}");
    let o = cli(&["gc", name.as_str()]);
    assert!(stdout(&o).contains("skipped"), "gc leaves unreadable objects alone: {}", stdout(&o));
}

#[test]
fn unknown_format_version_exits_5() {
    let name = Name::new("version");
    drop(Writer::<Point>::create(name.as_str()).unwrap());
    corrupt(name.as_str(), 8, &99u32.to_le_bytes());
    let o = cli(&["inspect", name.as_str()]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("format version 99"), "{}", stderr(&o));
    let v = json(&cli(&["list", name.as_str(), "--json"]));
    assert_eq!(v[0]["error"], "unknown_format_version", "{v}");
}

#[test]
fn corrupt_snapshot_bytes_exit_5_with_a_position() {
    let name = Name::new("badsnap");
    let mut w = Writer::<Person>::create(name.as_str()).unwrap();
    w.publish(&Person { name: "a name longer than eight".into(), age: 1, tags: vec![], home: None }).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    let slot = info.slots.iter().find(|s| s.current).unwrap();
    // The root is at the end of the snapshot; point the relative offset of its
    // out-of-line `name` far outside it.
    let doc = shmstate::schema::schema_of::<Person>();
    let shmstate::schema::Kind::Struct { fields, .. } = &doc.root().kind else { panic!("a struct") };
    let field = fields.iter().find(|f| f.name == "name").unwrap().offset as u64;
    let root = slot.offset + slot.len - doc.root().size as u64;
    corrupt(name.as_str(), root + field + 4, &0x4000_0000i32.to_le_bytes());
    let o = cli(&["dump", name.as_str()]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("points outside the snapshot") && err.contains(".name"), "{err}");
    drop(w);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&cli(&["dump"])), 2);
    assert_eq!(code(&cli(&["frobnicate"])), 2);
    assert_eq!(code(&cli(&["inspect", "../etc"])), 2);
    let help = ok(&cli(&["--help"]));
    assert!(help.contains("Exit codes") && help.contains("6  the writer died"), "{help}");
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
enum Mode {
    Primary,
    Replica { of: String, lag_ms: u32 },
    Draining(u64),
}

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Config {
    port: u16,
    hosts: Vec<String>,
    mode: Mode,
    limits: HashMap<String, u64>,
    tls: Option<String>,
    weights: BTreeMap<u32, f32>,
}

/// A writer for the session captured in docs/CLI.md:
/// `SHMSTATE_DEMO=demo.config cargo test -p shmstate-cli --test cli demo_writer -- --ignored`.
#[test]
#[ignore = "manual: long-running demo writer for docs/CLI.md"]
fn demo_writer() {
    let name = std::env::var("SHMSTATE_DEMO").unwrap_or_else(|_| "demo.config".into());
    let publishes: u64 = std::env::var("SHMSTATE_DEMO_PUBLISHES").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut w = Writer::<Config>::open_or_create(&name).unwrap();
    for g in 0..publishes {
        let cfg = Config {
            port: 8080,
            hosts: vec!["db-1.internal".into(), "db-2.internal".into()],
            mode: if g % 2 == 0 {
                Mode::Primary
            } else {
                Mode::Replica { of: "db-1.internal".into(), lag_ms: g as u32 }
            },
            limits: HashMap::from([("max_conns".into(), 512), ("timeout_ms".into(), 2500 + g)]),
            tls: None,
            weights: BTreeMap::from([(1, 0.5), (2, 0.25), (3, 0.25)]),
        };
        w.publish(&cfg).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// A reader still on an object that was removed and created again under it
/// is in no reader table `inspect` reads; `inspect` lists it among the
/// processes that map a removed object of the name, until it lets go.
#[test]
fn inspect_shows_readers_left_on_a_removed_object() {
    let name = Name::new("inspect-removed");
    let n = name.as_str();
    let mut w = Writer::<Point>::create(n).unwrap();
    w.publish(&Point { x: 1, y: 2 }).unwrap();
    let mut r = shmstate::Reader::<Point>::open(n).unwrap();
    assert_eq!(r.read().unwrap().generation().get(), 1);
    drop(w);
    shmstate::remove(n).unwrap();
    let mut w = Writer::<Point>::create(n).unwrap();
    w.publish(&Point { x: 3, y: 4 }).unwrap();

    let v = json(&cli(&["inspect", n, "--json"]));
    let users = v["removed_users"].as_array().expect("removed_users");
    let pid = std::process::id() as u64;
    assert!(users.iter().any(|u| u["pid"] == pid && u["object"] == n), "{users:?}");
    assert_eq!(v["live_readers"], 0, "the new object has no reader: {v}");
    // Only this process's entries count: a child another test is spawning
    // maps everything this process maps between its fork and its exec, and
    // inspect rightly lists it then.
    let text = ok(&cli(&["inspect", n]));
    assert!(text.contains("removed objects of this name still mapped ("), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with(&format!("{pid} ")) && l.ends_with(n)), "{text}");

    drop(r);
    let v = json(&cli(&["inspect", n, "--json"]));
    let ours = v["removed_users"].as_array().unwrap().iter().filter(|u| u["pid"] == pid).count();
    assert_eq!(ours, 0, "the reader let go: {v}");
}
