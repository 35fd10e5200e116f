//! Lanes: one name, several layouts of a type during a rolling upgrade
//! (docs/DEPLOYING.md "Lanes"). Resolution and refusals in process; the
//! rolling deploy with real processes.
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{role, spawn_child, TestName};
use shmstate::{OpenError, Reader, Shared, WaitError, Writer};

mod v1 {
    /// The old version.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
        pub writer: u32,
        pub data: Vec<u64>,
        pub sum: u64,
    }
}

mod v2 {
    /// The new version: a field added in the middle, one retyped.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
        pub writer: u32,
        pub label: String,
        pub data: Vec<u64>,
        pub sum: u128,
    }
}

mod v3 {
    /// A third version nobody publishes.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u32,
    }
}

fn checksum(gen: u64, writer: u32, data: &[u64]) -> u64 {
    data.iter().fold(gen.wrapping_mul(31) ^ writer as u64, |acc, x| acc.rotate_left(7) ^ x)
}

fn value(gen: u64, writer: u32) -> v2::Conf {
    let data: Vec<u64> = (0..(gen % 13 + 3)).map(|i| gen * 1000 + i).collect();
    let sum = checksum(gen, writer, &data);
    v2::Conf { gen, writer, label: format!("w{writer}-g{gen}"), data, sum: sum as u128 * 3 }
}

fn to_v1(v: &v2::Conf) -> v1::Conf {
    v1::Conf { gen: v.gen, writer: v.writer, data: v.data.clone(), sum: checksum(v.gen, v.writer, &v.data) }
}

fn v1_value(gen: u64, writer: u32) -> v1::Conf {
    to_v1(&value(gen, writer))
}

/// The V2 lane of a V1 writer (a rollback build that keeps V2 readers fed).
fn v1_to_v2(v: &v1::Conf) -> v2::Conf {
    value(v.gen, v.writer)
}

/// A V1 value read as V2 by a reader started before any V2 writer.
fn from_v1(a: &v1::ArchivedConf) -> v2::Conf {
    let data: Vec<u64> = a.data.iter().map(|x| x.to_native()).collect();
    let (gen, writer) = (a.gen.to_native(), a.writer.to_native());
    let sum = if a.sum == checksum(gen, writer, &data) { a.sum.to_native() as u128 * 3 } else { 0 };
    v2::Conf { gen, writer, label: format!("w{writer}-g{gen}"), data, sum }
}

/// The generation and writer of a V1 view whose fields agree.
fn check_v1(a: &v1::ArchivedConf) -> Result<(u64, u32), String> {
    let data: Vec<u64> = a.data.iter().map(|x| x.to_native()).collect();
    let (gen, writer) = (a.gen.to_native(), a.writer.to_native());
    if a.sum != checksum(gen, writer, &data) {
        return Err(format!("torn V1 view at {gen}"));
    }
    Ok((gen, writer))
}

/// The generation and writer of a V2 view whose fields agree.
fn check_v2(a: &v2::ArchivedConf) -> Result<(u64, u32), String> {
    let data: Vec<u64> = a.data.iter().map(|x| x.to_native()).collect();
    let (gen, writer) = (a.gen.to_native(), a.writer.to_native());
    if a.sum != checksum(gen, writer, &data) as u128 * 3 || a.label.as_str() != format!("w{writer}-g{gen}") {
        return Err(format!("torn V2 view at {gen}"));
    }
    Ok((gen, writer))
}

fn lanes_of(name: &str) -> Vec<String> {
    let prefix = format!("shmstate.{name}@");
    let mut out: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with(&prefix) && !f.ends_with(".readers") && !f.ends_with(".lock"))
        .map(|f| f["shmstate.".len()..].to_string())
        .collect();
    out.sort();
    out
}

fn lane(name: &str, fp: u64) -> String {
    format!("{name}@{fp:016x}")
}

fn fp<T: Shared>() -> u64 {
    shmstate::schema::fingerprint_of::<T>()
}

// ---------------------------------------------------------------------------
// In process: resolution, generations, refusals, retirement.

#[test]
fn a_v2_writer_with_a_v1_lane_takes_over_and_each_reader_finds_its_layout() {
    let name = TestName::new("takeover");
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    assert_eq!(check_v1(&r1.read().unwrap()).unwrap(), (1, 1));
    drop(w1);

    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    assert_eq!(w2.fingerprints(), [fp::<v2::Conf>(), fp::<v1::Conf>()]);
    assert_eq!(w2.name(), name.as_str());
    assert_eq!(lanes_of(name.as_str()), [lane(name.as_str(), fp::<v2::Conf>())]);
    let g = w2.next_generation().get();
    assert_eq!(w2.publish(&value(g, 2)).unwrap().get(), 2, "generations continue upward");

    // The running V1 reader reads the new writer's values, without reopening.
    let s = r1.read().unwrap();
    assert_eq!((check_v1(&s).unwrap(), s.generation().get()), ((2, 2), 2));
    drop(s);
    // New readers of either version open the plain name.
    let mut r1b = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    assert_eq!(r1b.object_name(), name.as_str());
    let mut r2 = Reader::<v2::Conf>::open(name.as_str()).unwrap();
    assert_eq!(r2.name(), name.as_str());
    assert_eq!(r2.object_name(), lane(name.as_str(), fp::<v2::Conf>()));
    for g in 3..20 {
        w2.publish(&value(g, 2)).unwrap();
        let (a, b, c) = (r1.read().unwrap(), r1b.read().unwrap(), r2.read().unwrap());
        // The same generation number in every layout.
        assert_eq!([a.generation().get(), b.generation().get(), c.generation().get()], [g; 3]);
        assert_eq!(check_v1(&a).unwrap(), (g, 2));
        assert_eq!(check_v2(&c).unwrap(), (g, 2));
    }
}

#[test]
fn a_reader_of_a_layout_nobody_publishes_gets_a_type_mismatch_listing_the_lanes() {
    let name = TestName::new("refuse");
    let mut w = Writer::<v2::Conf>::options().lane(to_v1).create(name.as_str()).unwrap();
    w.publish(&value(1, 1)).unwrap();
    // Created fresh: the plain name holds the writer's own type, V1 is a lane.
    assert_eq!(lanes_of(name.as_str()), [lane(name.as_str(), fp::<v1::Conf>())]);
    let err = Reader::<v3::Conf>::open(name.as_str()).unwrap_err();
    let OpenError::TypeMismatch { found, .. } = &err else { panic!("{err:?}") };
    assert!(found.contains("also carried in lanes") && found.contains(&format!("{:#018x}", fp::<v1::Conf>())), "{err}");
    println!("{err}");
    // The V1 lane is found; the V3 reader waiting for its layout times out
    // with the same error.
    assert_eq!(check_v1(&Reader::<v1::Conf>::open(name.as_str()).unwrap().read().unwrap()).unwrap(), (1, 1));
    let waited = Reader::<v3::Conf>::options().wait_for_layout(Duration::from_millis(150)).open(name.as_str());
    assert!(matches!(waited, Err(OpenError::TypeMismatch { .. })), "{waited:?}");
}

#[test]
fn bad_lane_declarations_are_refused() {
    let name = TestName::new("badlanes");
    let own = Writer::<v1::Conf>::options().lane(|v: &v1::Conf| v.clone()).create(name.as_str());
    assert!(matches!(own, Err(OpenError::InvalidOption { .. })), "{own:?}");
    let twice = Writer::<v2::Conf>::options().lane(to_v1).lane(to_v1).create(name.as_str());
    assert!(matches!(twice, Err(OpenError::InvalidOption { .. })), "{twice:?}");
    let long = "x".repeat(shmstate::MAX_NAME_LEN);
    let too_long = Writer::<v2::Conf>::options().lane(to_v1).create(&long);
    assert!(matches!(too_long, Err(OpenError::InvalidOption { .. })), "{too_long:?}");

    // Without lanes declared or present, another type is refused as before.
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    drop(w1);
    let plain = Writer::<v2::Conf>::open_or_create(name.as_str());
    assert!(matches!(plain, Err(OpenError::TypeMismatch { .. })), "{plain:?}");
    // `create` does not take over.
    let created = Writer::<v2::Conf>::options().lane(to_v1).create(name.as_str());
    assert!(matches!(created, Err(OpenError::AlreadyExists { .. })), "{created:?}");
    // A live writer of the old version keeps its object.
    let _w1 = Writer::<v1::Conf>::open_or_create(name.as_str()).unwrap();
    let busy = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str());
    assert!(matches!(busy, Err(OpenError::WriterBusy { .. })), "{busy:?}");
    assert!(lanes_of(name.as_str()).is_empty(), "a refused writer leaves no lane");
}

#[test]
fn a_v1_layout_is_retired_once_unread_and_v2_readers_follow_to_the_plain_name() {
    let name = TestName::new("retire");
    let mut w = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    w.publish(&value(1, 1)).unwrap();
    drop(w);
    // Rebuild the V1-first arrangement: plain V1, V2 in a lane.
    shmstate::remove(name.as_str()).unwrap();
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    w2.publish(&value(2, 2)).unwrap();
    drop(w2);
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    let mut r2 = Reader::<v2::Conf>::options().follow(true).open(name.as_str()).unwrap();
    assert_eq!(r2.object_name(), lane(name.as_str(), fp::<v2::Conf>()));

    // Redeployed without the V1 lane: V1 has a live reader, so it stays.
    let mut w3 = Writer::<v2::Conf>::open_or_create(name.as_str()).unwrap();
    assert_eq!(w3.fingerprints(), [fp::<v2::Conf>()]);
    w3.publish(&value(3, 3)).unwrap();
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().fingerprint, fp::<v1::Conf>());
    assert_eq!(check_v1(&r1.read().unwrap()).unwrap(), (2, 2), "V1 keeps its last snapshot");
    assert_eq!(check_v2(&r2.read().unwrap()).unwrap(), (3, 3));

    // Its reader goes: the next check (at most a second later) retires V1.
    drop(r1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut g = 4;
    while shmstate::inspect(name.as_str()).ok().map(|i| i.fingerprint) != Some(fp::<v2::Conf>()) {
        assert!(Instant::now() < deadline, "V1 never retired");
        w3.publish(&value(g, 3)).unwrap();
        g += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lanes_of(name.as_str()).is_empty(), "the V2 lane went when V2 moved to the plain name");
    // The plain object starts at the generation the lane last had.
    assert_eq!(shmstate::inspect(name.as_str()).unwrap().generation, g - 1);
    // The following V2 reader lands on the plain name, without a failed read.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = r2.read().unwrap();
        let seen = check_v2(&s).unwrap();
        drop(s);
        if r2.object_name() == name.as_str() {
            assert_eq!(seen, (g - 1, 3));
            break;
        }
        assert!(Instant::now() < deadline, "the V2 reader never moved");
        std::thread::sleep(Duration::from_millis(20));
        r2.release();
    }
    w3.publish(&value(g, 3)).unwrap();
    assert_eq!(check_v2(&r2.read().unwrap()).unwrap(), (g, 3));
    // And new V1 readers get the error that says what to do.
    assert!(matches!(Reader::<v1::Conf>::open(name.as_str()), Err(OpenError::TypeMismatch { .. })));
}

#[test]
fn a_v2_reader_started_first_reads_through_its_conversion_then_moves_to_the_v2_lane() {
    let name = TestName::new("convert");
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    let mut r2 = Reader::<v2::Conf>::options().convert_from::<v1::Conf>(from_v1).open(name.as_str()).unwrap();
    assert!(r2.is_converting());
    assert_eq!(check_v2(&r2.read().unwrap()).unwrap(), (1, 1));
    w1.publish(&v1_value(2, 1)).unwrap();
    assert_eq!(check_v2(&r2.read().unwrap()).unwrap(), (2, 1));
    drop(w1);

    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut g = 3;
    while r2.is_converting() {
        assert!(Instant::now() < deadline, "never moved to the V2 lane");
        w2.publish(&value(g, 2)).unwrap();
        let s = r2.read().unwrap();
        assert_eq!(check_v2(&s).unwrap(), (g, 2));
        g += 1;
        drop(s);
        std::thread::sleep(Duration::from_millis(15));
    }
    assert_eq!(r2.object_name(), lane(name.as_str(), fp::<v2::Conf>()));
    w2.publish(&value(g, 2)).unwrap();
    assert_eq!(check_v2(&r2.read().unwrap()).unwrap(), (g, 2));
}

#[test]
fn a_converting_reader_in_wait_newer_moves_on_when_its_source_layout_stops() {
    // The converted layout (V1) loses its writer to one that publishes V2
    // only: the reader's wait finds V2 instead of reporting WriterDead, and
    // its next read moves there, so that V1, unread, can be retired.
    let name = TestName::new("convwait");
    let n = name.as_str();
    let mut w1 = Writer::<v1::Conf>::create(n).unwrap();
    let g1 = w1.publish(&v1_value(1, 1)).unwrap();
    let opts = Reader::<v2::Conf>::options().writer_grace(Duration::from_millis(200));
    let mut r = opts.convert_from::<v1::Conf>(from_v1).open(n).unwrap();
    assert_eq!(check_v2(&r.read().unwrap()).unwrap(), (1, 1));
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(n).unwrap();
    let g2 = w2.publish(&value(2, 2)).unwrap();
    drop(w2);
    let mut w3 = Writer::<v2::Conf>::open_or_create(n).unwrap();
    let g3 = w3.publish(&value(3, 3)).unwrap();
    assert_eq!(shmstate::inspect(n).unwrap().fingerprint, fp::<v1::Conf>(), "V1 has a reader: kept");

    assert_eq!(r.wait_newer(g1, Duration::from_secs(10)).unwrap(), g2);
    assert_eq!(check_v2(&r.read().unwrap()).unwrap(), (2, 2));
    assert!(r.is_converting());
    // Nothing new in V1 any more: after the grace period, V2's generation.
    assert_eq!(r.wait_newer(g2, Duration::from_secs(10)).unwrap(), g3);
    assert_eq!(check_v2(&r.read().unwrap()).unwrap(), (3, 3));
    assert!(!r.is_converting());
    assert_eq!(r.object_name(), lane(n, fp::<v2::Conf>()));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut g = 4;
    while shmstate::inspect(n).unwrap().fingerprint != fp::<v2::Conf>() {
        assert!(Instant::now() < deadline, "V1 never retired");
        w3.publish(&value(g, 3)).unwrap();
        g += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn generations_continue_above_a_retiring_layout() {
    // A retirement cut short (the writer died after removing the plain
    // object of V1 and before creating it again): the next writer creates
    // the plain name and must still number above what V2's lane published,
    // or its following readers would see generations go back.
    let name = TestName::new("gencont");
    let n = name.as_str();
    let mut w1 = Writer::<v1::Conf>::create(n).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(n).unwrap();
    for g in 2..=5 {
        w2.publish(&value(g, 2)).unwrap();
    }
    drop(w2);
    for suffix in ["", ".readers", ".lock"] {
        std::fs::remove_file(format!("/dev/shm/shmstate.{n}{suffix}")).unwrap();
    }
    let w3 = Writer::<v2::Conf>::open_or_create(n).unwrap();
    assert_eq!(w3.next_generation().get(), 6);
}

#[test]
fn a_shared_reader_resolves_its_lane_and_waits_there() {
    let name = TestName::new("shared");
    let n = name.as_str();
    let mut w = Writer::<v2::Conf>::options().lane(to_v1).create(n).unwrap();
    let g1 = w.publish(&value(1, 1)).unwrap();
    let shared = std::sync::Arc::new(shmstate::SharedReader::<v1::Conf>::open(n).unwrap());
    assert_eq!(check_v1(&shared.load().unwrap()).unwrap(), (1, 1));
    let waiter = {
        let shared = shared.clone();
        std::thread::spawn(move || shared.wait_newer(g1, Duration::from_secs(10)))
    };
    std::thread::sleep(Duration::from_millis(50));
    let g2 = w.publish(&value(2, 1)).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), g2);
    assert_eq!(check_v1(&shared.load().unwrap()).unwrap(), (2, 1));
}

#[test]
fn a_v2_reader_started_first_can_wait_for_its_layout() {
    let name = TestName::new("waitlayout");
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    let n = name.as_str().to_string();
    let reader = std::thread::spawn(move || {
        let mut r = Reader::<v2::Conf>::options().wait_for_layout(Duration::from_secs(30)).open(&n)?;
        let seen = check_v2(&r.read().unwrap()).unwrap();
        Ok::<_, OpenError>((seen, r.is_converting()))
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(!reader.is_finished(), "the reader did not wait");
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    w2.publish(&value(2, 2)).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), ((2, 2), false));
}

#[test]
fn a_dynamic_watch_of_a_lane_follows_its_layout_into_the_plain_name() {
    // An untyped watch (what the Python package waits with) opened on a lane:
    // when V1 is retired, the lane's layout moves to the plain name and the
    // lane is removed; the watch finds it there (it used to look for the
    // removed lane until its timeout).
    let name = TestName::new("dynlane");
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).unwrap();
    w2.publish(&value(2, 2)).unwrap();
    drop(w2);
    let lane_name = lane(name.as_str(), fp::<v2::Conf>());
    let watch = shmstate::dynamic::Watch::open(&lane_name, true, Duration::from_secs(60)).unwrap();
    // Redeployed without the V1 lane; V1 has no reader, so the next check retires it.
    let mut w3 = Writer::<v2::Conf>::open_or_create(name.as_str()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut g = 3;
    while shmstate::inspect(name.as_str()).ok().map(|i| i.fingerprint) != Some(fp::<v2::Conf>()) {
        assert!(Instant::now() < deadline, "V1 never retired");
        w3.publish(&value(g, 3)).unwrap();
        g += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lanes_of(name.as_str()).is_empty());
    let last = w3.publish(&value(g, 3)).unwrap();
    let seen = watch.wait_newer(shmstate::Generation::new(last.get() - 1), Duration::from_secs(10)).unwrap();
    assert_eq!(seen, last);
    assert_eq!(watch.generation(), last);
}

#[test]
fn a_lane_reader_wait_sees_the_layout_move() {
    // A reader blocked in wait_newer on a lane that is removed because its
    // layout moved is told at once (Replaced), not after the grace period.
    let name = TestName::new("lanewait");
    let mut w = Writer::<v2::Conf>::options().lane(to_v1).create(name.as_str()).unwrap();
    w.publish(&value(1, 1)).unwrap();
    let r1 = Reader::<v1::Conf>::options().writer_grace(Duration::from_secs(60)).open(name.as_str()).unwrap();
    let lane_name = r1.object_name().to_string();
    assert_ne!(lane_name, name.as_str());
    let waiter = std::thread::spawn(move || r1.wait_newer(shmstate::Generation::new(1), Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(150));
    drop(w);
    shmstate::remove(&lane_name).unwrap();
    assert!(matches!(waiter.join().unwrap(), Err(WaitError::Replaced { .. })));
}

// ---------------------------------------------------------------------------
// The rolling deploy, with real processes.

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let parts: Vec<&str> = role.split(':').collect();
    let code = match parts[..] {
        ["writer", name, id, layout] => run_writer(name, id.parse().unwrap(), layout),
        ["reader", name, kind, until_writer, count] => {
            run_reader(name, kind, until_writer.parse().unwrap(), count.parse().unwrap())
        }
        ["shared", name, open, until_writer, count] => {
            run_shared(name, open, until_writer.parse().unwrap(), count.parse().unwrap())
        }
        _ => {
            eprintln!("unknown role {role}");
            2
        }
    };
    std::process::exit(code);
}

/// Publishes a value every millisecond until killed: V1 alone (`v1`), V1
/// with a V2 lane (`v1+v2`, a rollback build), V2 with a V1 lane (`v2+v1`),
/// or V2 alone (`v2`).
fn run_writer(name: &str, id: u32, layout: &str) -> i32 {
    let mut publish: Box<dyn FnMut()> = match layout {
        "v1" | "v1+v2" => {
            let opts = Writer::<v1::Conf>::options();
            let opts = if layout == "v1+v2" { opts.lane(v1_to_v2) } else { opts };
            let mut w = opts.open_or_create(name).expect("V1 writer");
            Box::new(move || {
                let g = w.next_generation().get();
                assert_eq!(w.publish(&v1_value(g, id)).unwrap().get(), g);
            })
        }
        "v2+v1" | "v2" => {
            let opts = Writer::<v2::Conf>::options();
            let opts = if layout == "v2+v1" { opts.lane(to_v1) } else { opts };
            let mut w = opts.open_or_create(name).expect("V2 writer");
            Box::new(move || {
                let g = w.next_generation().get();
                assert_eq!(w.publish(&value(g, id)).unwrap().get(), g);
            })
        }
        _ => return 2,
    };
    publish();
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_millis(1));
        publish();
    }
}

/// Reads `name` (kind `v1`, `v2conv`: V2 through a conversion until a V2
/// writer comes, `v2wait`: V2 waiting for its layout) in a loop of
/// `wait_newer` + `read`, checking every view, until it has read `count`
/// generations of writer `until_writer`; then prints its counts.
fn run_reader(name: &str, kind: &str, until_writer: u32, count: u64) -> i32 {
    let grace = Duration::from_secs(10);
    let stats = match kind {
        "v1" => {
            let r = Reader::<v1::Conf>::options().follow(true).writer_grace(grace).open(name).expect("V1 reader");
            read_loop(r, check_v1, until_writer, count)
        }
        "v2conv" => {
            let opts = Reader::<v2::Conf>::options().follow(true).writer_grace(grace);
            let r = opts.convert_from::<v1::Conf>(from_v1).open(name).expect("converting V2 reader");
            read_loop(r, check_v2, until_writer, count)
        }
        "v2wait" => {
            let opts = Reader::<v2::Conf>::options().follow(true).writer_grace(grace);
            let r = opts.wait_for_layout(Duration::from_secs(60)).open(name).expect("waiting V2 reader");
            read_loop(r, check_v2, until_writer, count)
        }
        _ => return 2,
    };
    println!("{stats}");
    0
}

/// Reads `name` as V2 through one `SharedReader` (opened at once, `now`, or
/// waiting for the V2 layout, `wait`), the way a service does: four threads
/// that only `load()` (1 ms apart), one in a `wait_newer` + `load` loop, and,
/// with the `tokio` feature, a task in a `changed().await` + `load` loop.
/// Each checks every view and stops once it has read `count` new
/// generations of writer `until_writer` (or at a deadline); one STATS line
/// per reader, `who=` naming it.
fn run_shared(name: &str, open: &str, until_writer: u32, count: u64) -> i32 {
    use std::sync::Arc;
    let opts = Reader::<v2::Conf>::options().follow(true).writer_grace(Duration::from_secs(10));
    let opts = if open == "wait" { opts.wait_for_layout(Duration::from_secs(60)) } else { opts };
    let shared = Arc::new(opts.open_shared(name).expect("V2 SharedReader"));
    println!("OPEN");
    let deadline = Instant::now() + Duration::from_secs(60);
    // One view: counts it, and says whether this reader is done.
    // One `load`, its view checked and counted.
    let load = move |shared: &shmstate::SharedReader<v2::Conf>, c: &mut Counts| {
        c.reads += 1;
        let s = match shared.load() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("load: {e}");
                c.failed += 1;
                return;
            }
        };
        match check_v2(&s) {
            Ok((gen, writer)) => {
                if gen != s.generation().get() || gen < c.last {
                    c.backwards += 1;
                }
                // New generations only: a reader stuck on one counts it once.
                if writer == until_writer && gen > c.last {
                    c.seen_last += 1;
                }
                c.last = gen;
                c.first.entry(writer).or_insert_with(unix_ns);
            }
            Err(e) => {
                eprintln!("{e}");
                c.torn += 1;
            }
        }
    };
    let mut threads = Vec::new();
    for i in 0..4 {
        let shared = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            let mut c = Counts::default();
            while c.seen_last < count && Instant::now() < deadline {
                load(&shared, &mut c);
                std::thread::sleep(Duration::from_millis(1));
            }
            c.line(&format!("load{i}"), count)
        }));
    }
    {
        let shared = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            let mut c = Counts::default();
            while c.seen_last < count && Instant::now() < deadline {
                match shared.wait_newer(shmstate::Generation::new(c.last), Duration::from_millis(200)) {
                    Ok(_) | Err(WaitError::Timeout { .. }) => {}
                    Err(e) => {
                        eprintln!("wait: {e}");
                        c.failed += 1;
                    }
                }
                load(&shared, &mut c);
            }
            c.line("wait", count)
        }));
    }
    #[cfg(feature = "tokio")]
    {
        let shared = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
            rt.block_on(async move {
                let mut c = Counts::default();
                while c.seen_last < count && Instant::now() < deadline {
                    let changed = shared.changed(shmstate::Generation::new(c.last));
                    match tokio::time::timeout(Duration::from_millis(200), changed).await {
                        Err(_) | Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            eprintln!("changed: {e}");
                            c.failed += 1;
                        }
                    }
                    load(&shared, &mut c);
                }
                c.line("changed", count)
            })
        }));
    }
    for t in threads {
        println!("{}", t.join().expect("reader thread"));
    }
    0
}

/// What one reading thread of `run_shared` saw.
#[derive(Default)]
struct Counts {
    reads: u64,
    failed: u64,
    torn: u64,
    backwards: u64,
    seen_last: u64,
    last: u64,
    first: std::collections::BTreeMap<u32, u128>,
}

impl Counts {
    fn line(&self, who: &str, count: u64) -> String {
        let firsts: Vec<String> = self.first.iter().map(|(w, ns)| format!("w{w}={ns}")).collect();
        format!(
            "STATS who={who} reads={} failed={} torn={} backwards={} done={} object=- first={}",
            self.reads,
            self.failed,
            self.torn,
            self.backwards,
            self.seen_last >= count,
            firsts.join(",")
        )
    }
}

fn unix_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn read_loop<T: Shared>(
    mut r: Reader<T>,
    check: impl Fn(&T::Archived) -> Result<(u64, u32), String>,
    until_writer: u32,
    count: u64,
) -> String {
    println!("OPEN");
    let (mut reads, mut failed, mut torn, mut backwards, mut seen_last) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut first_native_ns = std::collections::BTreeMap::<u32, u128>::new();
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen_last < count && Instant::now() < deadline {
        match r.wait_newer(shmstate::Generation::new(last), Duration::from_millis(50)) {
            Ok(_) | Err(WaitError::Timeout { .. }) => {}
            Err(e) => {
                eprintln!("wait: {e}");
                failed += 1;
            }
        }
        let converting = r.is_converting();
        reads += 1;
        match r.read() {
            Ok(s) => match check(&s) {
                Ok((gen, writer)) => {
                    if gen != s.generation().get() || gen < last {
                        backwards += 1;
                    }
                    last = gen;
                    if !converting {
                        first_native_ns.entry(writer).or_insert_with(unix_ns);
                    }
                    if writer == until_writer {
                        seen_last += 1;
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    torn += 1;
                }
            },
            Err(e) => {
                eprintln!("read: {e}");
                failed += 1;
            }
        }
    }
    let firsts: Vec<String> = first_native_ns.iter().map(|(w, ns)| format!("w{w}={ns}")).collect();
    format!(
        "STATS reads={reads} failed={failed} torn={torn} backwards={backwards} done={} object={} first={}",
        seen_last >= count,
        r.object_name(),
        firsts.join(",")
    )
}

/// A child process, SIGKILLed when dropped (also when a test fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn spawn(role: &str) -> Self {
        Proc(spawn_child("__child", role))
    }

    /// Reads stdout lines until one starts with `prefix`.
    fn expect_line(&mut self, prefix: &str) -> String {
        let out = self.0.stdout.as_mut().expect("piped stdout");
        // One byte at a time: nothing is buffered past the line.
        let mut line = Vec::new();
        let mut byte = [0u8];
        loop {
            use std::io::Read;
            let n = out.read(&mut byte).expect("child stdout");
            assert!(n == 1, "child exited before printing {prefix:?}");
            if byte[0] != b'\n' {
                line.push(byte[0]);
                continue;
            }
            let text = String::from_utf8_lossy(&line).to_string();
            if text.starts_with(prefix) {
                return text;
            }
            line.clear();
        }
    }

    /// Waits (up to a deadline against hangs) for the reader to exit and
    /// returns its STATS line.
    fn stats(mut self) -> Stats {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "reader hung");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = BufReader::new(self.0.stdout.take().unwrap());
        let line = out.lines().map_while(Result::ok).find(|l| l.starts_with("STATS")).expect("STATS line");
        Stats(line)
    }
}

struct Stats(String);

impl Stats {
    fn field(&self, key: &str) -> &str {
        let want = format!("{key}=");
        self.0.split(' ').find_map(|kv| kv.strip_prefix(want.as_str())).unwrap_or_else(|| panic!("{key} in {}", self.0))
    }

    fn count(&self, key: &str) -> u64 {
        self.field(key).parse().unwrap()
    }

    /// When the reader first read writer `w`'s values in its own layout.
    fn first_native(&self, w: u32) -> u128 {
        let want = format!("w{w}=");
        let first = self.field("first").split(',').find_map(|kv| kv.strip_prefix(want.as_str()).map(str::to_string));
        first.unwrap_or_else(|| panic!("never read writer {w} natively: {}", self.0)).parse().unwrap()
    }

    fn assert_clean(&self, who: &str) {
        println!("{who}: {}", self.0);
        for key in ["failed", "torn", "backwards"] {
            assert_eq!(self.count(key), 0, "{who}: {key} in {}", self.0);
        }
        assert_eq!(self.field("done"), "true", "{who}: {}", self.0);
        assert!(self.count("reads") > 0);
    }
}

#[test]
fn rolling_deploy_v1_to_v2_with_v1_and_v2_readers_running() {
    let name = TestName::new("rolling");
    let n = name.as_str();
    let mut w1 = Proc::spawn(&format!("writer:{n}:1:v1"));
    w1.expect_line("READY");
    let mut r1 = [Proc::spawn(&format!("reader:{n}:v1:2:300")), Proc::spawn(&format!("reader:{n}:v1:2:300"))];
    let mut r2conv = Proc::spawn(&format!("reader:{n}:v2conv:3:300"));
    let r2wait = Proc::spawn(&format!("reader:{n}:v2wait:3:300"));
    for r in r1.iter_mut().chain([&mut r2conv]) {
        r.expect_line("OPEN");
    }
    std::thread::sleep(Duration::from_millis(300));

    // Deploy V2 (with a V1 lane): the old writer goes, the new one takes over.
    drop(w1);
    let takeover_ns = unix_ns();
    let mut w2 = Proc::spawn(&format!("writer:{n}:2:v2+v1"));
    w2.expect_line("READY");
    let [r1a, r1b] = r1;
    let (r1a, r1b) = (r1a.stats(), r1b.stats());
    r1a.assert_clean("V1 reader a");
    r1b.assert_clean("V1 reader b");

    // Retire V1: the V1 readers are gone; the writer is redeployed without it.
    drop(w2);
    let retire_ns = unix_ns();
    let mut w3 = Proc::spawn(&format!("writer:{n}:3:v2"));
    w3.expect_line("READY");
    let (r2conv, r2wait) = (r2conv.stats(), r2wait.stats());
    r2conv.assert_clean("V2 reader (conversion first)");
    r2wait.assert_clean("V2 reader (waited for its layout)");
    for r in [&r2conv, &r2wait] {
        assert_eq!(r.field("object"), n, "the V2 readers end on the plain name: {}", r.0);
    }
    let info = shmstate::inspect(n).unwrap();
    assert_eq!(info.fingerprint, fp::<v2::Conf>(), "the plain name carries V2");
    assert!(lanes_of(n).is_empty(), "no lane left: {:?}", lanes_of(n));

    let ms = |from: u128, to: u128| (to as f64 - from as f64) / 1e6;
    println!("switch times (from the old writer's exit, including starting the new process):");
    for (who, s) in [("V1 reader a", &r1a), ("V1 reader b", &r1b)] {
        println!("  {who}: first V2-writer generation after {:.1} ms", ms(takeover_ns, s.first_native(2)));
    }
    for (who, s) in [("V2 reader (conversion)", &r2conv), ("V2 reader (waited)", &r2wait)] {
        println!("  {who}: first zero-copy V2 generation after {:.1} ms", ms(takeover_ns, s.first_native(2)));
        println!("  {who}: first generation of the V2-only writer after {:.1} ms", ms(retire_ns, s.first_native(3)));
    }
}

impl Proc {
    /// Waits (up to a deadline against hangs) for the process to exit and
    /// returns every STATS line it printed.
    fn all_stats(mut self) -> Vec<Stats> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "reader hung");
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = BufReader::new(self.0.stdout.take().unwrap());
        out.lines().map_while(Result::ok).filter(|l| l.starts_with("STATS")).map(Stats).collect()
    }
}

/// The type change of docs/DEPLOYING.md "Lanes" with `SharedReader`s: V2
/// readers on every thread of a process read the V2 lane while V1 is
/// retired, then must follow V2 to the plain name and read the V2-only
/// writer's generations: `load()` alone, `wait_newer` and `changed()`.
fn shared_readers_follow_the_type_change(name: &TestName, readers_first: bool) {
    let n = name.as_str();
    let mut w1 = Proc::spawn(&format!("writer:{n}:1:v1"));
    w1.expect_line("READY");
    let readers = if readers_first {
        // Opened while only V1 is published: they wait for the V2 layout.
        let r = Proc::spawn(&format!("shared:{n}:wait:3:200"));
        drop(w1);
        let mut w2 = Proc::spawn(&format!("writer:{n}:2:v2+v1"));
        w2.expect_line("READY");
        (r, w2)
    } else {
        drop(w1);
        let mut w2 = Proc::spawn(&format!("writer:{n}:2:v2+v1"));
        w2.expect_line("READY");
        (Proc::spawn(&format!("shared:{n}:now:3:200")), w2)
    };
    let (mut r, w2) = readers;
    r.expect_line("OPEN");
    std::thread::sleep(Duration::from_millis(300));

    // Retire V1: redeploy the writer without it. Nobody reads V1, so the
    // writer's first check moves V2 from its lane to the plain name.
    drop(w2);
    let retire_ns = unix_ns();
    let mut w3 = Proc::spawn(&format!("writer:{n}:3:v2"));
    w3.expect_line("READY");
    let all = r.all_stats();
    let expected = if cfg!(feature = "tokio") { 6 } else { 5 };
    assert_eq!(all.len(), expected, "one STATS line per reading thread");
    let ms = |from: u128, to: u128| (to as f64 - from as f64) / 1e6;
    for s in &all {
        let who = format!("V2 SharedReader {}", s.field("who"));
        s.assert_clean(&who);
        println!("  {who}: first generation of the V2-only writer after {:.1} ms", ms(retire_ns, s.first_native(3)));
    }
    let info = shmstate::inspect(n).unwrap();
    assert_eq!(info.fingerprint, fp::<v2::Conf>(), "the plain name carries V2");
    assert!(lanes_of(n).is_empty(), "no lane left: {:?}", lanes_of(n));
}

#[test]
fn shared_readers_follow_a_type_change_writer_first() {
    shared_readers_follow_the_type_change(&TestName::new("shared-roll-w"), false);
}

#[test]
fn shared_readers_follow_a_type_change_readers_first() {
    shared_readers_follow_the_type_change(&TestName::new("shared-roll-r"), true);
}

/// Rolling back while the V2 writer still published the V1 lane: the old V1
/// binary (no lanes) takes that lane over, its readers read on without a
/// failed read, and since nobody reads V2 any more, V1 takes the plain name
/// back and its readers follow there.
#[test]
fn rolling_back_to_the_v1_binary_while_the_v1_lane_is_published() {
    let name = TestName::new("rollback-lane");
    let n = name.as_str();
    let mut w2 = Proc::spawn(&format!("writer:{n}:2:v2+v1"));
    w2.expect_line("READY");
    assert_eq!(shmstate::inspect(n).unwrap().fingerprint, fp::<v2::Conf>());
    let mut r1 = [Proc::spawn(&format!("reader:{n}:v1:1:200")), Proc::spawn(&format!("reader:{n}:v1:1:200"))];
    for r in &mut r1 {
        r.expect_line("OPEN");
    }
    std::thread::sleep(Duration::from_millis(200));

    drop(w2);
    let mut w1 = Proc::spawn(&format!("writer:{n}:1:v1"));
    w1.expect_line("READY");
    for (i, r) in r1.into_iter().enumerate() {
        let s = r.stats();
        s.assert_clean(&format!("V1 reader {i}"));
        assert_eq!(s.field("object"), n, "the V1 readers end on the plain name: {}", s.0);
    }
    assert_eq!(shmstate::inspect(n).unwrap().fingerprint, fp::<v1::Conf>(), "V1 took the plain name back");
    assert!(lanes_of(n).is_empty(), "no lane left: {:?}", lanes_of(n));
}

/// Rolling back after V1 was retired (the plain name holds V2, no lane):
/// the old V1 binary alone is refused with the type mismatch; a V1 build
/// that declares a V2 lane takes the name back, its V2 readers read on
/// (converted values, no failed read), and V1 readers find V1 in its lane.
#[test]
fn rolling_back_after_v1_was_retired_with_a_v1_build_that_keeps_a_v2_lane() {
    let name = TestName::new("rollback-retired");
    let n = name.as_str();
    let mut w3 = Proc::spawn(&format!("writer:{n}:3:v2"));
    w3.expect_line("READY");
    let mut r2 = Proc::spawn(&format!("reader:{n}:v2wait:5:200"));
    r2.expect_line("OPEN");
    std::thread::sleep(Duration::from_millis(200));

    drop(w3);
    // The old binary cannot take a name that carries only V2: it says so.
    match Writer::<v1::Conf>::open_or_create(n) {
        Err(OpenError::TypeMismatch { .. }) => {}
        other => panic!("a V1 writer without lanes on a V2 name: {other:?}"),
    }
    let mut w5 = Proc::spawn(&format!("writer:{n}:5:v1+v2"));
    w5.expect_line("READY");
    let r1 = Proc::spawn(&format!("reader:{n}:v1:5:200"));
    let s2 = r2.stats();
    s2.assert_clean("V2 reader");
    assert_eq!(s2.field("object"), n, "the V2 reader stays on the plain name: {}", s2.0);
    let s1 = r1.stats();
    s1.assert_clean("V1 reader started after the rollback");
    assert_eq!(s1.field("object"), lane(n, fp::<v1::Conf>()), "V1 is in its lane: {}", s1.0);
}

/// A lane left over from an earlier writer (here: the plain object removed
/// by hand under a V2 lane, as a writer that died mid-move would leave it)
/// whose layout the new writer publishes under the plain name: the writer
/// marks the lane moved at its first publish, and a reader that only calls
/// `read` on the lane moves to the plain name at its next read.
#[test]
fn a_left_over_lane_of_the_writers_layout_sends_its_readers_to_the_plain_name() {
    let name = TestName::new("leftover");
    let n = name.as_str();
    let mut w1 = Writer::<v1::Conf>::create(n).unwrap();
    w1.publish(&v1_value(1, 1)).unwrap();
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(n).unwrap();
    w2.publish(&value(2, 2)).unwrap();
    drop(w2);
    let mut r = Reader::<v2::Conf>::options().follow(true).open(n).unwrap();
    assert_eq!(r.object_name(), lane(n, fp::<v2::Conf>()));
    assert_eq!(check_v2(&r.read().unwrap()).unwrap(), (2, 2));
    for suffix in ["", ".readers", ".lock"] {
        std::fs::remove_file(format!("/dev/shm/shmstate.{n}{suffix}")).unwrap();
    }

    let mut w3 = Writer::<v2::Conf>::open_or_create(n).unwrap();
    assert_eq!(w3.fingerprints(), [fp::<v2::Conf>()]);
    let g = w3.next_generation().get();
    assert!(g > 2, "generations continue above the left-over lane's");
    w3.publish(&value(g, 3)).unwrap();
    assert!(lanes_of(n).is_empty(), "the left-over lane is gone: {:?}", lanes_of(n));
    // No wait, no release: `read` alone follows.
    let seen = check_v2(&r.read().unwrap()).unwrap();
    assert_eq!(seen, (g, 3), "the reader reads the new writer's value");
    assert_eq!(r.object_name(), n);
    w3.publish(&value(g + 1, 3)).unwrap();
    assert_eq!(check_v2(&r.read().unwrap()).unwrap(), (g + 1, 3));
}

mod v4 {
    /// A version that wraps the old one whole: its lane borrows it.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub v1: super::v1::Conf,
        pub zone: String,
    }
}

#[test]
fn a_lane_by_reference_publishes_the_wrapped_old_value_with_the_same_generation_and_time() {
    let name = TestName::new("lane-ref");
    let mut w = Writer::<v4::Conf>::options().lane_ref(|v: &v4::Conf| &v.v1).create(name.as_str()).unwrap();
    assert_eq!(w.fingerprints(), [fp::<v4::Conf>(), fp::<v1::Conf>()]);
    let mut r1 = Reader::<v1::Conf>::open(name.as_str()).unwrap();
    let mut r4 = Reader::<v4::Conf>::open(name.as_str()).unwrap();
    assert_eq!(r1.object_name(), lane(name.as_str(), fp::<v1::Conf>()), "V1 is read from its lane");
    for g in 1..10 {
        let published = w.publish(&v4::Conf { v1: v1_value(g, 4), zone: format!("z{g}") }).unwrap();
        let (a, b) = (r1.read().unwrap(), r4.read().unwrap());
        assert_eq!([a.generation(), b.generation()], [published; 2]);
        assert_eq!(check_v1(&a).unwrap(), (g, 4));
        assert_eq!(b.zone.as_str(), format!("z{g}"));
        assert_eq!(check_v1(&b.v1).unwrap(), (g, 4));
        // One publish, one publish time, in both layouts.
        let plain = shmstate::inspect(name.as_str()).unwrap();
        let lane = shmstate::inspect(r1.object_name()).unwrap();
        assert_ne!(plain.last_publish_ns, 0);
        assert_eq!(lane.last_publish_ns, plain.last_publish_ns);
    }
}
