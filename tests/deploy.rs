//! Deployments: another version of the type, writer restarts, replaced
//! objects, readers started before their writer. Behaviour about processes is
//! tested with real processes (this test binary re-executed with a role).
#![cfg(not(miri))]

mod common;

use std::io::{Read, Write};
use std::process::Child;
use std::time::Duration;

use common::{consistent, role, spawn_child, Checked, TestName};
use shmstate::{Generation, OpenError, ReadError, Reader, WaitError, Writer};

/// Entry point of child processes (ignored in normal runs). Roles are
/// `what:name[:arg]`.
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let parts: Vec<&str> = role.split(':').collect();
    let code = match parts[..] {
        ["writer", name, lock_pins, count] => writer(name, lock_pins == "locks", count.parse().unwrap()),
        ["writer-on-go", name] => writer_on_go(name),
        ["early-reader", name] => early_reader(name),
        ["ticking-writer", name] => ticking_writer(name),
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

/// Creates `name`, says `READY`, publishes 3 generations once a line arrives
/// on stdin, says `PUBLISHED <last>`, and stays alive until killed.
fn writer_on_go(name: &str) -> i32 {
    let mut w = Writer::<Checked>::create(name).expect("writer");
    println!("READY");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    let mut last = Generation::NONE;
    for _ in 0..3 {
        let g = w.next_generation().get();
        last = w.publish(&Checked::new(g, 10)).expect("publish");
    }
    println!("PUBLISHED {}", last.get());
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// Creates `name` and publishes every 5 ms until killed (it goes on after
/// its object is removed).
fn ticking_writer(name: &str) -> i32 {
    let mut w = Writer::<Checked>::create(name).expect("writer");
    w.publish(&Checked::new(1, 5)).expect("publish");
    println!("READY 1");
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let g = w.next_generation().get();
        w.publish(&Checked::new(g, 5)).expect("publish");
    }
}

/// Opens `name` before its writer exists, waiting for it; says `READ <gen>`.
fn early_reader(name: &str) -> i32 {
    println!("OPENING");
    let opened = Reader::<Checked>::options().wait_for_writer(Duration::from_secs(60)).open(name);
    let mut r = match opened {
        Ok(r) => r,
        Err(e) => {
            println!("ERROR {e}");
            return 1;
        }
    };
    match r.read() {
        Ok(snap) if consistent(&snap) == Ok(snap.generation().get()) => {
            println!("READ {}", snap.generation().get());
            0
        }
        Ok(snap) => {
            println!("ERROR torn view at {}", snap.generation());
            1
        }
        Err(e) => {
            println!("ERROR {e}");
            1
        }
    }
}

/// The rest of the first line of `child`'s output that starts with `prefix`.
fn line_after(child: &mut Proc, prefix: &str) -> String {
    // Byte by byte: a buffer would swallow the lines after this one.
    let out = child.0.stdout.as_mut().expect("piped stdout");
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        assert_eq!(out.read(&mut byte).expect("child stdout"), 1, "child exited early");
        if byte[0] != b'\n' {
            line.push(byte[0]);
            continue;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
        line.clear();
    }
}

/// Like `common::spawn_child`, with a pipe to the child's stdin.
fn spawn_with_stdin(role: &str) -> Proc {
    let child = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args(["__child", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(common::ROLE_VAR, role)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    Proc(child)
}

fn spawn_writer(name: &str, lock_pins: bool, count: u64) -> (Proc, Generation) {
    let mode = if lock_pins { "locks" } else { "table" };
    let mut child = Proc(spawn_child("__child", &format!("writer:{name}:{mode}:{count}")));
    let g = line_after(&mut child, "READY ").parse().unwrap();
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
        &format!("{:#018x}", shmstate::schema::fingerprint_of::<v1::Config>()),
        &format!("{:#018x}", shmstate::schema::fingerprint_of::<v2::Config>()),
        "roll readers and writer together",
        "WriterOptions::lane",
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
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(WaitError::WriterDead { name: name.as_str().into() }));
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

/// `rm` and `create` under an open reader: it learns, instead of waiting on
/// the dead object for ever (`WriterDead` was all it could say).
#[test]
fn a_replaced_object_is_reported() {
    let name = TestName::new("replaced");
    let (mut first, last) = spawn_writer(name.as_str(), false, 3);
    let mut r = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().generation(), last);
    let mut quiet = Reader::<Checked>::open(name.as_str()).unwrap();
    assert_eq!(quiet.read().unwrap().generation(), last);
    kill(&mut first);
    shmstate::remove(name.as_str()).unwrap();
    let (_second, _) = spawn_writer(name.as_str(), false, 2);
    // A reader that only reads: an unchanged generation is one load and checks
    // nothing; its slow path (here after `release`) checks the name, at most
    // every 100 ms (looking at the clock every 8th time).
    assert_eq!(quiet.read().unwrap().generation(), last);
    std::thread::sleep(Duration::from_millis(150));
    let noticed = (0..16).find_map(|_| {
        quiet.release();
        match quiet.read() {
            Ok(snap) => {
                assert_eq!(snap.generation(), last, "the old object's snapshot until noticed");
                None
            }
            Err(e) => Some(e),
        }
    });
    assert!(matches!(noticed, Some(ReadError::Replaced { .. })), "{noticed:?}");
    let replaced = WaitError::Replaced { name: name.as_str().to_string() };
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(replaced.clone()));
    assert!(matches!(r.read(), Err(ReadError::Replaced { .. })), "read after the wait noticed it");
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(replaced));
}

#[test]
fn a_removed_object_whose_writer_died_is_removed_after_the_grace_period() {
    let name = TestName::new("removed");
    let (mut first, last) = spawn_writer(name.as_str(), false, 3);
    let r = Reader::<Checked>::options().writer_grace(Duration::from_millis(300)).open(name.as_str()).unwrap();
    kill(&mut first);
    shmstate::remove(name.as_str()).unwrap();
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(WaitError::Removed { name: name.as_str().into() }));
}

/// With `follow`, the reader keeps serving the old snapshot until the new
/// object has published, then switches to it by itself.
#[test]
fn a_following_reader_moves_to_the_new_object() {
    let name = TestName::new("follow");
    let (mut first, last) = spawn_writer(name.as_str(), false, 5);
    let mut r = Reader::<Checked>::options().follow(true).open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().generation(), last);
    kill(&mut first);
    shmstate::remove(name.as_str()).unwrap();
    let mut second = spawn_with_stdin(&format!("writer-on-go:{}", name.as_str()));
    line_after(&mut second, "READY");
    // The new object has published nothing: no newer generation, and the old snapshot.
    assert_eq!(r.wait_newer(last, Duration::from_millis(300)), Err(WaitError::Timeout { name: name.as_str().into() }));
    for _ in 0..2 {
        let snap = r.read().expect("the old snapshot until the new object has one");
        assert_eq!(snap.generation(), last);
        assert_eq!(consistent(&snap), Ok(last.get()));
    }
    second.0.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    // The new object's generations start again from 1.
    let woke = r.wait_newer(last, Duration::from_secs(60)).expect("woken by the new object's publish");
    assert!(woke.get() >= 1, "{woke}");
    let newest: u64 = line_after(&mut second, "PUBLISHED ").parse().unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.generation().get(), newest);
    assert_eq!(consistent(&snap), Ok(newest));
    drop(snap);
    // It is a reader of the new object now: it waits there.
    assert_eq!(
        r.wait_newer(Generation::new(newest), Duration::from_millis(50)),
        Err(WaitError::Timeout { name: name.as_str().into() })
    );
}

/// A reader started before its writer waits for it (it got `NotFound` and had
/// to sleep and retry by hand), and its first read succeeds.
#[test]
fn a_reader_started_before_its_writer_waits_for_the_first_publish() {
    let name = TestName::new("early");
    let mut reader = Proc(spawn_child("__child", &format!("early-reader:{}", name.as_str())));
    line_after(&mut reader, "OPENING");
    std::thread::sleep(Duration::from_millis(300));
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    // Created, nothing published yet: the reader keeps waiting.
    std::thread::sleep(Duration::from_millis(300));
    w.publish(&Checked::new(1, 10)).unwrap();
    let mut text = String::new();
    reader.0.stdout.as_mut().unwrap().read_to_string(&mut text).unwrap();
    let status = reader.0.wait().unwrap();
    assert!(status.success(), "{text}");
    assert!(text.lines().any(|l| l == "READ 1"), "{text}");
}

#[test]
fn waiting_for_a_writer_that_never_comes_ends_in_not_found() {
    let name = TestName::new("nowriter");
    let opened = Reader::<Checked>::options().wait_for_writer(Duration::from_millis(200)).open(name.as_str());
    assert!(matches!(opened, Err(OpenError::NotFound { .. })), "{opened:?}");
}

/// Following cannot cross a type change: the new object holds another type.
#[test]
fn a_following_reader_reports_a_replacement_of_another_type() {
    let name = TestName::new("followtype");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let last = w.publish(&Checked::new(1, 4)).unwrap();
    let mut r = Reader::<Checked>::options().follow(true).open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().generation(), last);
    drop(w);
    shmstate::remove(name.as_str()).unwrap();
    let mut other = Writer::<v1::Config>::create(name.as_str()).unwrap();
    other.publish(&v1::Config { db: vec![], mode: v1::Mode::Primary, name: "x".into() }).unwrap();
    let replaced = WaitError::Replaced { name: name.as_str().into() };
    assert_eq!(r.wait_newer(last, Duration::from_secs(60)), Err(replaced));
    assert!(matches!(r.read(), Err(ReadError::Replaced { .. })));
}

/// The old writer lives on and publishes into its removed object while a new
/// object has the name: readers notice on their slow path (new generations).
#[test]
fn readers_of_a_removed_object_whose_writer_lives_on_notice_the_new_one() {
    let name = TestName::new("zombie");
    let mut old_writer = Proc(spawn_child("__child", &format!("ticking-writer:{}", name.as_str())));
    line_after(&mut old_writer, "READY ");
    let mut plain = Reader::<Checked>::open(name.as_str()).unwrap();
    let mut follower = Reader::<Checked>::options().follow(true).open(name.as_str()).unwrap();
    assert!(plain.read().is_ok() && follower.read().is_ok());
    shmstate::remove(name.as_str()).unwrap();
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let marker = 1_000_000;
    w.publish(&Checked::new(marker, 3)).unwrap();
    // Deadlines only against hangs: the old writer keeps the slow path busy.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let err = loop {
        assert!(std::time::Instant::now() < deadline, "the plain reader never noticed");
        match plain.read() {
            Ok(snap) => assert!(consistent(&snap).is_ok()),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ReadError::Replaced { .. }), "{err:?}");
    loop {
        assert!(std::time::Instant::now() < deadline, "the follower never moved");
        let snap = follower.read().unwrap();
        assert!(consistent(&snap).is_ok());
        if snap.gen == marker {
            break;
        }
    }
    kill(&mut old_writer);
}

/// `SharedReader::wait_newer` honours `writer_grace` too: a takeover 4 s after
/// the writer's end (past the 3 s default) ends the wait with its generation.
#[test]
fn a_shared_reader_waits_out_its_own_grace_period() {
    let name = TestName::new("sharedgrace");
    let mut w = Writer::<Checked>::create(name.as_str()).unwrap();
    let last = w.publish(&Checked::new(1, 4)).unwrap();
    let r = Reader::<Checked>::options().writer_grace(Duration::from_secs(60)).open_shared(name.as_str()).unwrap();
    drop(w);
    let takeover = std::thread::spawn({
        let name = name.as_str().to_string();
        move || {
            std::thread::sleep(Duration::from_secs(4));
            let mut w = Writer::<Checked>::open_or_create(&name).unwrap();
            let g = w.next_generation();
            w.publish(&Checked::new(g.get(), 4)).unwrap()
        }
    });
    let got = r.wait_newer(last, Duration::from_secs(60));
    let published = takeover.join().unwrap();
    assert_eq!(got, Ok(published));
}

/// A following reader whose caller only waits (`g = r.wait_newer(g)?`, no
/// `read` in between) blocks on the new object like on any other. It used to
/// return the new object's generation again at once, so such a loop spun.
#[test]
fn a_following_readers_wait_loop_blocks_on_the_new_object() {
    let name = TestName::new("follow-loop");
    let mut a = Writer::<Checked>::create(name.as_str()).unwrap();
    a.publish(&Checked::new(1, 4)).unwrap();
    let r = Reader::<Checked>::options().follow(true).open(name.as_str()).unwrap();
    drop(a);
    shmstate::remove(name.as_str()).unwrap();
    let mut b = Writer::<Checked>::create(name.as_str()).unwrap();
    for g in 1..=3 {
        b.publish(&Checked::new(g, 4)).unwrap();
    }
    let g = r.wait_newer(Generation::new(1), Duration::from_secs(30)).expect("the new object's generation");
    assert_eq!(g.get(), 3);
    assert_eq!(r.wait_newer(g, Duration::from_millis(300)), Err(WaitError::Timeout { name: name.as_str().into() }));
    b.publish(&Checked::new(4, 4)).unwrap();
    assert_eq!(r.wait_newer(g, Duration::from_secs(30)).unwrap().get(), 4);
}

/// A following reader whose first successor died before publishing, after
/// which the name was replaced again, moves on to the object that is there
/// now. (It used to keep the dead successor and serve the old snapshot for
/// ever.)
#[test]
fn a_following_reader_skips_a_successor_that_died_unpublished() {
    let name = TestName::new("follow-dead-successor");
    let mut a = Writer::<Checked>::create(name.as_str()).unwrap();
    a.publish(&Checked::new(100, 4)).unwrap();
    let mut r = Reader::<Checked>::options().follow(true).open(name.as_str()).unwrap();
    assert_eq!(consistent(&r.read().unwrap()), Ok(100));
    drop(a);
    shmstate::remove(name.as_str()).unwrap();
    // B: created, never published, gone.
    let b = Writer::<Checked>::create(name.as_str()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Until the reader has noticed B (it keeps serving A's snapshot meanwhile).
    // (`release` sends the next read down the slow path, which checks the name.)
    for _ in 0..20 {
        r.release();
        assert_eq!(consistent(&r.read().unwrap()), Ok(100));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(b);
    shmstate::remove(name.as_str()).unwrap();
    // C: created and published.
    let mut c = Writer::<Checked>::create(name.as_str()).unwrap();
    c.publish(&Checked::new(7, 4)).unwrap();
    loop {
        r.release();
        let got = consistent(&r.read().unwrap());
        if got == Ok(7) {
            break;
        }
        assert_eq!(got, Ok(100));
        assert!(std::time::Instant::now() < deadline, "the reader never moved past the dead successor");
        std::thread::sleep(Duration::from_millis(20));
    }
}
