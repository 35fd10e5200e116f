//! Lanes across hosts (docs/ACROSS_HOSTS.md "Lanes"): a writer on host A
//! rolls from V1 to V2 with a V1 lane (docs/DEPLOYING.md "Lanes"); on host B
//! (its own /dev/shm, as in tests/two_hosts.rs) a V1 reader that was reading
//! before the roll and a V2 reader started after it both read on, with no
//! failed read, through the mirror the importer keeps with the same lanes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use shmstate::{Reader, Writer};

mod v1 {
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
        pub last: bool,
        pub data: Vec<u64>,
        pub sum: u64,
    }
}

mod v2 {
    /// A field added in the middle, one retyped.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
        pub last: bool,
        pub label: String,
        pub data: Vec<u64>,
        pub sum: u128,
    }
}

fn checksum(gen: u64, data: &[u64]) -> u64 {
    data.iter().fold(gen.wrapping_mul(31), |acc, x| acc.rotate_left(7) ^ x)
}

fn value(gen: u64, last: bool) -> v2::Conf {
    let data: Vec<u64> = (0..(gen % 13 + 3)).map(|i| gen * 1000 + i).collect();
    let sum = checksum(gen, &data) as u128 * 3;
    v2::Conf { gen, last, label: format!("g{gen}"), data, sum }
}

fn to_v1(v: &v2::Conf) -> v1::Conf {
    v1::Conf { gen: v.gen, last: v.last, data: v.data.clone(), sum: checksum(v.gen, &v.data) }
}

const ROLE: &str = "SHMSTATE_BRIDGE_TEST_LANE_READER";

/// Run on host B by the test below: reads `NAME` as V1 or V2 until the
/// value marked last, checking every value; prints "ready" after its first
/// read, then the counts; exits non-zero on any failed or bad read.
#[test]
#[ignore = "run inside host B's namespace by a_rolling_type_change_on_host_a_rolls_out_on_host_b"]
fn lane_reader_on_host_b() {
    let Ok(spec) = std::env::var(ROLE) else { return };
    let (version, name) = spec.split_once('=').unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    match version {
        "v1" => {
            let open = || Reader::<v1::Conf>::options().follow(true).open(name).ok();
            let mut r = loop {
                if let Some(r) = open() {
                    break r;
                }
                assert!(Instant::now() < deadline, "no V1 object {name} on host B");
                std::thread::sleep(Duration::from_millis(10));
            };
            read_until_last(deadline, || {
                let snap = r.read().map_err(|e| e.to_string())?;
                let v: v1::Conf = shmstate::rkyv::deserialize::<_, shmstate::rkyv::rancor::Error>(&*snap).unwrap();
                let good = v.sum == checksum(v.gen, &v.data);
                Ok((v.gen, v.last, good))
            });
        }
        _ => {
            let opts = Reader::<v2::Conf>::options().follow(true).wait_for_layout(Duration::from_secs(60));
            let mut r = opts.open(name).expect("a V2 layout on host B");
            read_until_last(deadline, || {
                let snap = r.read().map_err(|e| e.to_string())?;
                let v: v2::Conf = shmstate::rkyv::deserialize::<_, shmstate::rkyv::rancor::Error>(&*snap).unwrap();
                let good = v.sum == checksum(v.gen, &v.data) as u128 * 3 && v.label == format!("g{}", v.gen);
                Ok((v.gen, v.last, good))
            });
            println!("object={}", r.object_name());
        }
    }
}

/// Reads with `read` (the value's gen, whether it is the last, whether it
/// checks out) until the last value; asserts that no read failed.
fn read_until_last(deadline: Instant, mut read: impl FnMut() -> Result<(u64, bool, bool), String>) {
    let (mut reads, mut failed, mut seen, mut gen) = (0u64, 0u64, 0u64, 0u64);
    loop {
        match read() {
            Ok((g, last, good)) => {
                reads += 1;
                if !good || g < gen {
                    eprintln!("bad value: gen {g} after {gen}, checks out: {good}");
                    failed += 1;
                }
                if g != gen {
                    seen += 1;
                    if seen == 1 {
                        println!("ready");
                    }
                }
                gen = g;
                if last {
                    break;
                }
            }
            Err(e) => {
                eprintln!("read failed: {e}");
                failed += 1;
            }
        }
        assert!(Instant::now() < deadline, "no last value; at gen {gen}");
        // A reader's loop, not a synchronisation.
        std::thread::sleep(Duration::from_micros(300));
    }
    println!("reads={reads} failed={failed} seen={seen} gen={gen}");
    assert_eq!(failed, 0);
    // (The caller may print more after this line.)
}

/// A reader process on host B (`nsenter` into the importer's namespace);
/// its stdout lines arrive on the channel.
fn spawn_reader(pid: u32, version: &str, name: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["lane_reader_on_host_b", "--exact", "--ignored", "--quiet", "--test-threads=1", "--nocapture"])
        .env(ROLE, format!("{version}={name}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a reader on host B");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn ready(rx: &mpsc::Receiver<String>) -> bool {
    rx.try_iter().any(|line| line == "ready")
}

/// The counts line of a reader that exited, and its status.
fn finish(child: Child, rx: mpsc::Receiver<String>, what: &str) -> String {
    finish_lines(child, rx, what).into_iter().find(|l| l.starts_with("reads=")).unwrap_or_default()
}

/// Every line a reader printed after "ready", once it exited successfully.
fn finish_lines(mut child: Child, rx: mpsc::Receiver<String>, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the {what} reader did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reading thread sees the end of the pipe after the exit.
    let lines: Vec<String> = rx.iter().collect();
    assert!(status.success(), "the {what} reader failed: {lines:?}");
    lines
}

fn count(line: &str, key: &str) -> u64 {
    let field = line.split(' ').find_map(|f| f.strip_prefix(&format!("{key}="))).unwrap_or("0");
    field.parse().unwrap()
}

#[test]
fn a_rolling_type_change_on_host_a_rolls_out_on_host_b() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("lanes"), bucket("lanes"));
    let name = names.source.as_str();
    let mut w1 = Writer::<v1::Conf>::create(name).unwrap();
    w1.publish(&to_v1(&value(1, false))).unwrap();
    let export = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", name]);
    let import = Bridge::spawn_on_own_host(&[server.url()], &bucket, "host-b", &["import", "*"]);
    let logs = || format!("export:\n{}\nimport:\n{}", export.log(), import.log());
    // The mirror exists on host B (and so does host B's namespace, which a
    // reader started earlier might not enter yet) before the V1 reader starts.
    eventually(DEADLINE, logs, || import.log().contains("publishing into new local object").then_some(()));
    let (r1, out1) = spawn_reader(import.pid(), "v1", name);
    let mut gen = 1;
    // V1 readers on host B are reading before the roll.
    let mut v1_ready = false;
    eventually(DEADLINE, logs, || {
        gen += 1;
        w1.publish(&to_v1(&value(gen, false))).unwrap();
        v1_ready |= ready(&out1);
        std::thread::sleep(Duration::from_millis(5));
        v1_ready.then_some(())
    });
    // The roll: the V1 writer stops, a V2 writer with a V1 lane takes over.
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name).unwrap();
    let rolled = gen + 1;
    let (r2, out2) = spawn_reader(import.pid(), "v2", name);
    let mut v2_ready = false;
    eventually(DEADLINE, logs, || {
        gen += 1;
        w2.publish(&value(gen, false)).unwrap();
        v2_ready |= ready(&out2);
        std::thread::sleep(Duration::from_millis(5));
        v2_ready.then_some(())
    });
    // Both read on while V2 is published.
    for _ in 0..100 {
        gen += 1;
        w2.publish(&value(gen, false)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    w2.publish(&value(gen + 1, true)).unwrap();
    let (c1, c2) = (finish(r1, out1, "V1"), finish(r2, out2, "V2"));
    eprintln!("rolled at gen {rolled}, last {}; V1 reader: {c1}; V2 reader: {c2}", gen + 1);
    for c in [&c1, &c2] {
        assert_eq!((count(c, "failed"), count(c, "gen")), (0, gen + 1), "{c}\n{}", logs());
    }
    // Each read several generations (the bridge may skip some, not all).
    assert!(count(&c1, "seen") > 2 && count(&c2, "seen") > 2, "V1: {c1}, V2: {c2}");
    assert!(import.log().contains("layouts are now"), "{}", logs());
}

#[test]
fn retiring_v1_on_host_a_moves_host_b_to_v2_under_the_plain_name() {
    let server = NatsServer::start();
    let (names, bucket) = (Names::new("retire"), bucket("retire"));
    let name = names.source.as_str();
    // Mid-rollout already: V2 with a V1 lane (the plain name holds V1).
    let mut w1 = Writer::<v1::Conf>::create(name).unwrap();
    w1.publish(&to_v1(&value(1, false))).unwrap();
    drop(w1);
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name).unwrap();
    w2.publish(&value(2, false)).unwrap();
    let export = Bridge::spawn(&[server.url()], &bucket, "host-a", &["export", name]);
    let import = Bridge::spawn_on_own_host(&[server.url()], &bucket, "host-b", &["import", "*"]);
    let logs = || format!("export:\n{}\nimport:\n{}", export.log(), import.log());
    eventually(DEADLINE, logs, || import.log().contains("publishing into new local object").then_some(()));
    let (r2, out2) = spawn_reader(import.pid(), "v2", name);
    let mut gen = 2;
    let mut v2_ready = false;
    eventually(DEADLINE, logs, || {
        gen += 1;
        w2.publish(&value(gen, false)).unwrap();
        v2_ready |= ready(&out2);
        std::thread::sleep(Duration::from_millis(5));
        v2_ready.then_some(())
    });
    // V1 retired: the writer is redeployed without the lane. Nobody reads
    // V1 on either host, so each retires it (within a second, at a publish)
    // and V2 takes the plain name; host B's V2 reader follows.
    drop(w2);
    let mut w2 = Writer::<v2::Conf>::open_or_create(name).unwrap();
    let plain_v2 = shmstate::schema::fingerprint_of::<v2::Conf>();
    eventually(DEADLINE, logs, || {
        gen += 1;
        w2.publish(&value(gen, false)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let info = shmstate::inspect(name).ok()?;
        (info.fingerprint == plain_v2 && info.lanes.is_empty()).then_some(())
    });
    // Host B's mirror does the same once the bridge brings the new layouts.
    for _ in 0..400 {
        gen += 1;
        w2.publish(&value(gen, false)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    w2.publish(&value(gen + 1, true)).unwrap();
    let lines = finish_lines(r2, out2, "V2");
    let counts = lines.iter().find(|l| l.starts_with("reads=")).cloned().unwrap_or_default();
    assert_eq!((count(&counts, "failed"), count(&counts, "gen")), (0, gen + 1), "{lines:?}\n{}", logs());
    assert!(
        lines.contains(&format!("object={name}")),
        "the V2 reader did not move to the plain name: {lines:?}\n{}",
        logs()
    );
}
