//! Several real processes on one object: torn-view stress, readers and writers
//! killed with SIGKILL. Children are this test binary re-executed with a role.
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::{Duration, Instant};

use common::{child_lines, consistent, role, spawn_child, Checked, TestName};
use shmstate::{Generation, ReadError, Reader, WaitError, Writer};

const GENERATIONS: u64 = 10_000;
const GROWTH_GENERATIONS: u64 = 30;

/// Payload length for generation `g`: varies so slots grow and relocate.
fn payload_len(g: u64) -> usize {
    match g % 100 {
        0 => 20_000,
        n => (n * 7) as usize,
    }
}

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let mut parts = role.splitn(2, ':');
    let (what, name) = (parts.next().unwrap(), parts.next().unwrap());
    let code = match what {
        "stress-reader" => stress_reader(name, GENERATIONS),
        "growth-reader" => stress_reader(name, GROWTH_GENERATIONS),
        "pin-and-hang" => pin_and_hang(name),
        "endless-writer" => endless_writer(name),
        other => {
            eprintln!("unknown role {other}");
            2
        }
    };
    std::process::exit(code);
}

/// Reads continuously until the last generation, checking every view.
fn stress_reader(name: &str, final_generation: u64) -> i32 {
    let mut r = Reader::<Checked>::open(name).expect("open");
    let (mut reads, mut distinct, mut last) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while last < final_generation && Instant::now() < deadline {
        match r.read() {
            Ok(snap) => {
                let g = match consistent(&snap) {
                    Ok(g) => g,
                    Err(e) => {
                        println!("TORN {e}");
                        return 1;
                    }
                };
                if g != snap.generation().get() || g < last {
                    println!("TORN generation {} after {last} (value says {g})", snap.generation());
                    return 1;
                }
                if g != last {
                    distinct += 1;
                }
                last = g;
                reads += 1;
            }
            Err(ReadError::Empty { .. }) => std::thread::yield_now(),
            Err(e) => {
                println!("ERROR {e}");
                return 1;
            }
        }
    }
    println!("RESULT reads={reads} generations={distinct} last={last}");
    0
}

/// Pins the current snapshot, says so, and waits to be killed.
fn pin_and_hang(name: &str) -> i32 {
    let mut r = Reader::<Checked>::open(name).expect("open");
    let g = r.read().expect("read").generation();
    println!("PINNED {g}");
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// Takes over the object and publishes until killed.
fn endless_writer(name: &str) -> i32 {
    let mut w = Writer::<Checked>::open_or_create(name).expect("writer");
    let mut g = w.next_generation().get();
    loop {
        w.publish(&Checked::new(g, payload_len(g))).expect("publish");
        if g == 200 {
            println!("RUNNING");
        }
        g += 1;
    }
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

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL child");
    child.wait().expect("reap child");
}

#[test]
fn readers_in_other_processes_never_see_torn_views() {
    stress(false);
}

#[test]
fn readers_in_other_processes_never_see_torn_views_with_lock_pins() {
    stress(true);
}

fn stress(lock_pins: bool) {
    let name = TestName::new(if lock_pins { "stress-locks" } else { "stress" });
    let mut w = Writer::<Checked>::options().capacity(512).lock_pins(lock_pins).create(name.as_str()).unwrap();
    w.publish(&Checked::new(1, payload_len(1))).unwrap();
    let role = format!("stress-reader:{}", name.as_str());
    let readers: Vec<Child> = (0..2).map(|_| spawn_child("__child", &role)).collect();
    for g in 2..=GENERATIONS {
        w.publish(&Checked::new(g, payload_len(g))).unwrap();
    }
    for child in readers {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "reader failed: {text}");
        let result = child_lines(&out, "RESULT ");
        assert_eq!(result.len(), 1, "{text}");
        assert!(result[0].contains(&format!("last={GENERATIONS}")), "{text}");
        println!("reader: {}", result[0]);
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(info.generation, GENERATIONS);
    assert!(info.slot_count <= 5, "slots stay bounded: {}", info.slot_count);
}

/// Two reader processes pin generations 1 and 2 and are SIGKILLed; the
/// writer goes on publishing 1,000 generations in the same 3 slots.
fn kill_two_pinning_readers(lock_pins: bool) -> (TestName, shmstate::ObjectInfo, shmstate::ObjectInfo) {
    let name = TestName::new(if lock_pins { "lockkill" } else { "reclaim" });
    let mut w =
        Writer::<Checked>::options().slots(2).max_readers(8).lock_pins(lock_pins).create(name.as_str()).unwrap();
    let role = format!("pin-and-hang:{}", name.as_str());
    // Opened first, so the dead readers' entries are not simply reused by it.
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    w.publish(&Checked::new(1, 10)).unwrap();
    let mut a = spawn_child("__child", &role);
    assert_eq!(wait_for_line(&mut a, "PINNED "), "1");
    w.publish(&Checked::new(2, 10)).unwrap();
    let mut b = spawn_child("__child", &role);
    assert_eq!(wait_for_line(&mut b, "PINNED "), "2");
    w.publish(&Checked::new(3, 10)).unwrap();
    let before = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(before.slot_count, 3, "two pinned slots + current");
    assert_eq!(before.live_readers(), 3);
    kill(&mut a);
    kill(&mut b);
    let dead = shmstate::inspect(name.as_str()).unwrap();
    if lock_pins {
        // The kernel dropped the dead readers' locks at once.
        assert!(dead.slots.iter().all(|s| !s.lock_pinned), "{:#?}", dead.slots);
    } else {
        // Their pins stay until the writer needs the slots.
        let stale = dead.readers.iter().filter(|r| !r.alive && r.pinned.is_some()).count();
        assert_eq!(stale, 2, "{:#?}", dead.readers);
    }
    for g in 4..=1_000 {
        w.publish(&Checked::new(g, 10)).unwrap();
        assert_eq!(consistent(&r.read().unwrap()), Ok(g));
    }
    let after = shmstate::inspect(name.as_str()).unwrap();
    assert_eq!(after.slot_count, 3, "memory stays bounded after the kills");
    assert_eq!(after.live_readers(), 1);
    (name, before, after)
}

#[test]
fn killed_readers_pins_are_reclaimed() {
    let (_name, _, after) = kill_two_pinning_readers(false);
    assert_eq!(after.reclaimed_pins, 2, "both dead readers' pins reclaimed");
    assert!(after.readers.iter().all(|r| r.alive), "no dead entry keeps a pin: {:#?}", after.readers);
}

#[test]
fn killed_readers_lock_pins_are_released_by_the_kernel() {
    let (_name, before, after) = kill_two_pinning_readers(true);
    assert_eq!(before.slots.iter().filter(|s| s.lock_pinned).count(), 2, "{:#?}", before.slots);
    // Only the live reader's lock remains: the kernel dropped the dead ones'.
    let locked: Vec<u64> = after.slots.iter().filter(|s| s.lock_pinned).map(|s| s.generation).collect();
    assert_eq!(locked, vec![1_000], "{:#?}", after.slots);
}

#[test]
fn killed_writer_leaves_last_generation_and_a_new_writer_continues() {
    let name = TestName::new("writerkill");
    // Create it here so the reader can open it before the child writes.
    drop(Writer::<Checked>::create(name.as_str()).unwrap());
    let mut child = spawn_child("__child", &format!("endless-writer:{}", name.as_str()));
    wait_for_line(&mut child, "RUNNING");
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert!(r.writer_alive());
    for _ in 0..1_000 {
        let snap = r.read().unwrap();
        assert_eq!(consistent(&snap).map(Generation::new), Ok(snap.generation()));
    }
    kill(&mut child);

    let last = {
        let snap = r.read().expect("last generation stays readable");
        assert_eq!(consistent(&snap).map(Generation::new), Ok(snap.generation()));
        snap.generation()
    };
    assert!(last.get() >= 200);
    assert!(!r.writer_alive());
    // A hang would end in Timeout after 30 s; the dead writer must be noticed.
    assert!(matches!(r.wait_newer(last, Duration::from_secs(30)), Err(WaitError::WriterDead { .. })));

    let mut w = Writer::<Checked>::open_or_create(name.as_str()).expect("take over");
    let g = w.next_generation();
    assert!(g > last, "generations continue upward: {g} after {last}");
    w.publish(&Checked::new(g.get(), 5)).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.generation(), g);
    assert_eq!(consistent(&snap), Ok(g.get()));
}

#[test]
fn growth_to_10_mib_while_other_processes_read() {
    let name = TestName::new("growth-mp");
    let mut w = Writer::<Checked>::options().capacity(2048).create(name.as_str()).unwrap();
    let words = |g: u64| if g % 3 == 2 { (10 << 20) / 8 } else { 1024 / 8 };
    w.publish(&Checked::new(1, words(1))).unwrap();
    let role = format!("growth-reader:{}", name.as_str());
    let readers: Vec<Child> = (0..2).map(|_| spawn_child("__child", &role)).collect();
    for g in 2..=GROWTH_GENERATIONS {
        w.publish(&Checked::new(g, words(g))).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    for child in readers {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "reader failed: {text}");
        assert!(text.contains(&format!("last={GROWTH_GENERATIONS}")), "{text}");
    }
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.size >= 10 << 20, "grew to {}", info.size);
    assert!(info.size <= 64 << 20, "bounded: {}", info.size);
}
