//! Deployments: another version of the type, writer restarts, replaced
//! objects, readers started before their writer. Behaviour about processes is
//! tested with real processes (this test binary re-executed with a role).
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use common::{consistent, role, spawn_child, Checked, TestName};
use shmstate::{Generation, OpenError, Reader, Writer};

/// Entry point of child processes (ignored in normal runs). Roles are
/// `what:name[:arg]`.
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let parts: Vec<&str> = role.split(':').collect();
    let code = match parts[..] {
        ["writer", name, lock_pins, count] => writer(name, lock_pins == "locks", count.parse().unwrap()),
        _ => {
            eprintln!("unknown role {role}");
            2
        }
    };
    std::process::exit(code);
}

/// Creates or takes over `name`, publishes `count` generations, says
/// `READY <last generation>`, and stays alive until killed.
fn writer(name: &str, lock_pins: bool, count: u64) -> i32 {
    let mut w = Writer::<Checked>::options().lock_pins(lock_pins).slots(2).open_or_create(name).expect("writer");
    let mut last = Generation::NONE;
    for _ in 0..count {
        let g = w.next_generation().get();
        last = w.publish(&Checked::new(g, (g % 5 + 1) as usize * 10)).expect("publish");
    }
    println!("READY {}", last.get());
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// A child process, SIGKILLed when dropped (also when a test fails).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_writer(name: &str, lock_pins: bool, count: u64) -> (Proc, Generation) {
    let mode = if lock_pins { "locks" } else { "table" };
    let mut child = Proc(spawn_child("__child", &format!("writer:{name}:{mode}:{count}")));
    let out = child.0.stdout.as_mut().expect("piped stdout");
    let line = BufReader::new(out)
        .lines()
        .map(|l| l.expect("child stdout"))
        .find(|l| l.starts_with("READY "))
        .expect("writer exited before READY");
    let g = line["READY ".len()..].parse().unwrap();
    (child, Generation::new(g))
}

fn kill(child: &mut Proc) {
    child.0.kill().expect("SIGKILL child");
    child.0.wait().expect("reap child");
}

/// The type as the running writer was built.
mod v1 {
    #[shmstate::shared]
    pub struct Db {
        pub host: String,
        pub port: u16,
    }

    #[shmstate::shared]
    pub enum Mode {
        Primary,
        Standby { lag_ms: u32 },
    }

    #[shmstate::shared]
    pub struct Config {
        pub db: Vec<Db>,
        pub mode: Mode,
        pub name: String,
    }
}

/// The type as the new reader was built: one field retyped, a variant added.
mod v2 {
    #[shmstate::shared]
    pub struct Db {
        pub host: String,
        pub port: u32,
    }

    #[shmstate::shared]
    pub enum Mode {
        Primary,
        Standby { lag_ms: u32 },
        Replica { of: String },
    }

    #[shmstate::shared]
    pub struct Config {
        pub db: Vec<Db>,
        pub mode: Mode,
        pub name: String,
    }
}

#[test]
fn type_mismatch_shows_the_field_diff_and_what_to_do_not_both_schemas() {
    let name = TestName::new("diffmsg");
    let _w = Writer::<v1::Config>::create(name.as_str()).unwrap();
    let err = Reader::<v2::Config>::open(name.as_str()).unwrap_err();
    let OpenError::TypeMismatch { diff, .. } = &err else { panic!("expected TypeMismatch, got {err:?}") };
    let lines: Vec<String> = diff.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["Config.db[].port: u16 → u32", "Config.mode: variant Mode::Replica added", "Config: 24 → 28 bytes, align 4"]
    );

    let text = err.to_string();
    println!("{text}");
    for want in [
        "Config.db[].port: u16 → u32",
        "Config.mode: variant Mode::Replica added",
        &format!("{:#018x}", <v1::Config as shmstate::Schema>::FINGERPRINT),
        &format!("{:#018x}", <v2::Config as shmstate::Schema>::FINGERPRINT),
        "roll readers and writer together",
        "publish both versions",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The diff, not the two schemas (the old message printed every type twice).
    assert!(!text.contains("struct Db"), "{text}");
    assert!(text.lines().count() <= 8, "{text}");
    let debug = format!("{err:?}");
    assert!(debug.contains("Config.db[].port: u16 → u32") && !debug.contains("struct Db"), "{debug}");
}

#[test]
fn wait_newer_spans_a_writer_killed_and_restarted() {
    let name = TestName::new("restart");
    let (mut first, last) = spawn_writer(name.as_str(), false, 3);
    let r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(r.generation(), last);
    let waiter = std::thread::spawn(move || {
        // The deadline only guards against a hang.
        let got = r.wait_newer(last, Duration::from_secs(60));
        (r, got)
    });
    kill(&mut first);
    std::thread::sleep(Duration::from_secs(1));
    let (mut second, newest) = spawn_writer(name.as_str(), false, 1);
    let (_r, got) = waiter.join().unwrap();
    // Without a grace period this was WriterDead at once.
    let got = got.expect("the waiter sees the new writer's generation, not WriterDead");
    assert!(got > last && got <= newest, "{got} after {last}, new writer at {newest}");
    kill(&mut second);
}

#[test]
fn zero_grace_is_writer_dead_at_once() {
    let name = TestName::new("nograce");
    let (mut first, last) = spawn_writer(name.as_str(), false, 1);
    let r = Reader::<Checked>::options().writer_grace(Duration::ZERO).open(name.as_str()).unwrap();
    kill(&mut first);
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(shmstate::WaitError::WriterDead));
}

/// A snapshot held across a takeover keeps its bytes: its slot is pinned, and
/// the new writer honours the pins it finds (table pins and lock pins).
#[test]
fn a_snapshot_held_across_a_takeover_is_unchanged() {
    for lock_pins in [false, true] {
        let name = TestName::new("heldtakeover");
        let (mut first, last) = spawn_writer(name.as_str(), lock_pins, 7);
        let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
        let snap = r.read().unwrap();
        assert_eq!(snap.generation(), last);
        let before = snap.to_value().unwrap();
        kill(&mut first);
        // Two slots to start with and 40 publishes: every free slot is rewritten many times.
        let (mut second, newest) = spawn_writer(name.as_str(), lock_pins, 40);
        assert_eq!(snap.to_value().unwrap(), before, "held snapshot changed (lock pins: {lock_pins})");
        assert_eq!(consistent(&snap), Ok(last.get()));
        drop(snap);
        let snap = r.read().unwrap();
        assert_eq!(snap.generation(), newest);
        assert_eq!(consistent(&snap), Ok(newest.get()));
        drop(snap);
        kill(&mut second);
    }
}
