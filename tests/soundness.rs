//! Regression tests for the holes a review found in the promise "validated
//! views that nobody writes while you hold them" (RELIABILITY.md §5). Each
//! failed on the code before its fix:
//!
//! - `reader_never_pairs_files_of_two_incarnations`: a reader opened the data
//!   segment, the object was removed and created again, and the reader pinned
//!   in the NEW reader table while reading the OLD segment; the old writer then
//!   rewrote the pinned slot under a live `Snapshot`. The interleaving is forced
//!   with `strace` (a 2 s delay on the reader's `openat` of the reader table).
//! - `live_writer_is_not_taken_over_when_its_lock_object_is_gone`: with the
//!   `.lock` object unlinked under a live writer, `open_or_create` took over.
//! - `published_slot_is_never_write_locked_while_the_writer_stalls` (strace) and, with the
//!   `fault-injection` feature, `lock_pin_read_returns_while_the_writer_is_stopped_after_publishing`:
//!   a published slot stayed write-locked until the writer ran again, and a
//!   lock-pin reader spun on it.
//!
//! The strace tests need `strace` (`.ci/run` installs it); without it they
//! fail with a message saying so, they do not skip.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestName;
use shmstate::{OpenError, Reader, Writer};

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Big {
    gen: u64,
    words: Vec<u64>,
}

fn big(g: u64) -> Big {
    Big { gen: g, words: vec![g; 512] }
}

#[shmstate::shared]
#[derive(Debug, Clone)]
struct Small {
    x: u64,
}

const NAME_VAR: &str = "SHMSTATE_SOUNDNESS_NAME";

/// `strace` with the given arguments, running the ignored test `entry` of this
/// binary as the traced child.
fn traced_child(strace_args: &[&str], entry: &str, name: &str) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new("strace")
        .args(strace_args)
        .arg(&exe)
        .args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(NAME_VAR, name)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs strace (apt-get install strace; .ci/run installs it): {e}"))
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Child: opens the object (its `openat` of the reader table is delayed by
/// strace), reads one snapshot and watches its bytes for 1.5 s.
#[test]
#[ignore = "child process of reader_never_pairs_files_of_two_incarnations"]
fn child_slow_opening_reader() {
    let Ok(name) = std::env::var(NAME_VAR) else { return };
    let t0 = Instant::now();
    let mut r = Reader::<Big>::open(&name).expect("open");
    println!("child: opened after {:?}", t0.elapsed());
    let s = r.read().expect("read");
    let first = s.words[0].to_native();
    println!("child: words[0] = {first}");
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        for (i, w) in s.words.iter().enumerate() {
            // SAFETY: `w` points into the pinned slot we hold a view of; a
            // volatile read observes what the writer may (wrongly) store there.
            let v = unsafe { std::ptr::read_volatile(w as *const _ as *const u64) };
            if v != first {
                println!("child: TORN: the live snapshot now holds words[{i}] = {v} (was {first})");
                return;
            }
        }
    }
    println!("child: snapshot stable");
}

#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn reader_never_pairs_files_of_two_incarnations() {
    let name = TestName::new("pairing");
    // Owner-only object: table pins (data segment + reader table).
    let mut w1 = Writer::<Big>::create(name.as_str()).unwrap();
    w1.publish(&big(1)).unwrap();
    let table = format!("/dev/shm/shmstate.{}.readers", name.as_str());
    let child = traced_child(
        &[
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-P",
            &table,
            "-e",
            "trace=open,openat",
            "-e",
            "inject=open,openat:delay_enter=2000000",
        ],
        "child_slow_opening_reader",
        name.as_str(),
    );
    // The child maps the data segment, then sits in the delayed openat() of the table.
    std::thread::sleep(Duration::from_millis(1000));
    shmstate::remove(name.as_str()).unwrap();
    let mut w2 = Writer::<Big>::create(name.as_str()).unwrap();
    w2.publish(&big(1_000_000)).unwrap();
    // The old writer goes on publishing into the old (unlinked) segment.
    let start = Instant::now();
    let mut g = 2;
    while start.elapsed() < Duration::from_millis(6000) {
        w1.publish(&big(g)).unwrap();
        g += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = child.wait_with_output().unwrap();
    let text = stdout_of(&out);
    print!("{text}");
    assert!(out.status.success(), "child failed: {text}");
    assert!(!text.contains("TORN"), "a live, validated Snapshot changed under the reader");
    // It reads the object the name refers to now, through that object's table.
    assert!(text.contains("child: words[0] = 1000000"), "reader did not end up on the new object: {text}");
    drop((w1, w2));
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn live_writer_is_not_taken_over_when_its_lock_object_is_gone() {
    let name = TestName::new("busy");
    for lock_pins in [false, true] {
        let _ = shmstate::remove(name.as_str());
        let mut w1 = Writer::<Small>::options().lock_pins(lock_pins).create(name.as_str()).unwrap();
        w1.publish(&Small { x: 1 }).unwrap();
        // `shmstate rm` of the lock alone, a cleanup script, systemd's RemoveIPC…
        std::fs::remove_file(format!("/dev/shm/shmstate.{}.lock", name.as_str())).unwrap();
        match Writer::<Small>::open_or_create(name.as_str()) {
            Err(OpenError::WriterBusy { name: n }) => assert_eq!(n, name.as_str()),
            other => panic!("a second writer of a live object: {other:?}"),
        }
        // The live writer still publishes and readers see it.
        w1.publish(&Small { x: 2 }).unwrap();
        let mut r = Reader::<Small>::open(name.as_str()).unwrap();
        assert_eq!(r.read().unwrap().x, 2);
        // Once it is gone, the object can be taken over as usual.
        drop((r, w1));
        let mut w2 = Writer::<Small>::open_or_create(name.as_str()).unwrap();
        assert_eq!(w2.publish(&Small { x: 3 }).unwrap().get(), 3);
    }
}

/// Child: a lock-pin writer whose 5th `fcntl` (the slot unlock of its second
/// publish) strace delays by 3 s.
#[test]
#[ignore = "child process of published_slot_is_never_write_locked_while_the_writer_stalls"]
fn child_stalling_writer() {
    let Ok(name) = std::env::var(NAME_VAR) else { return };
    let mut w = Writer::<Small>::options().lock_pins(true).create(&name).unwrap();
    w.publish(&Small { x: 1 }).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.publish(&Small { x: 2 }).unwrap();
    std::thread::sleep(Duration::from_millis(500));
}

/// The writer stalls for 3 s around its second publish. Before the fix it
/// stalled with the new slot published and still write-locked, so a lock-pin
/// `read()` spun for the whole stall. The invariant that rules this out is
/// asserted directly: `inspect` never finds the published slot write-locked
/// (the same generation before and after the probe), while a reader thread
/// keeps reading and ends on generation 2.
#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn published_slot_is_never_write_locked_while_the_writer_stalls() {
    let name = TestName::new("spin");
    let stall = Duration::from_secs(3);
    let delay = format!("inject=fcntl:delay_enter={}:when=5", stall.as_micros());
    let mut child = traced_child(
        &["-f", "-qq", "-o", "/dev/null", "-e", "trace=fcntl", "-e", &delay],
        "child_stalling_writer",
        name.as_str(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut r = loop {
        match Reader::<Small>::open(name.as_str()) {
            Ok(r) if r.generation().get() >= 1 => break r,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            other => panic!("writer never published: {other:?}"),
        }
    };
    // Reads in their own thread, so a spinning read cannot hide the probes.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reads = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                last = r.read().unwrap().x.to_native();
                std::thread::sleep(Duration::from_millis(2));
            }
            last
        })
    };
    let mut probes = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "writer never finished");
        let before = shmstate::inspect(name.as_str()).unwrap();
        let after = shmstate::inspect(name.as_str()).unwrap();
        if let Some(k) = before.current_slot {
            let locked = before.slots[k as usize].write_locked;
            assert!(
                !(locked && before.generation == after.generation),
                "published slot {k} (generation {}) is write-locked: readers would spin",
                before.generation
            );
            probes += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = reads.join().unwrap();
    assert!(child.wait().unwrap().success(), "writer failed");
    assert_eq!(last, 2);
    assert!(probes > 0, "inspect never saw a published slot");
}

/// With the writer stopped (SIGSTOP) right after its publish store, a
/// lock-pin reader gets that generation at once. Before the fix the slot was
/// still write-locked there and `read()` spun until the writer ran again
/// (here: forever, caught by the hang deadline).
#[cfg(feature = "fault-injection")]
#[test]
#[cfg_attr(miri, ignore = "uses shm and processes")]
fn lock_pin_read_returns_while_the_writer_is_stopped_after_publishing() {
    let name = TestName::new("stopped");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_publish_once", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(NAME_VAR, name.as_str())
        .env("SHMSTATE_FAULT", "after-publish:stop")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
    };
    while state(child.id()) != Some('T') {
        assert!(Instant::now() < deadline, "writer never stopped after publishing");
        std::thread::sleep(Duration::from_millis(5));
    }
    let reader_name = name.as_str().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = Reader::<Small>::open(&reader_name).unwrap();
        let s = r.read().map(|s| (s.generation().get(), s.x.to_native()));
        let _ = tx.send(s.map_err(|e| e.to_string()));
    });
    // A deadline only against a hang (the old code never returned).
    let got = rx.recv_timeout(Duration::from_secs(30));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(got.expect("read() did not return while the writer was stopped"), Ok((1, 7)));
}

/// Child: creates a lock-pin object and publishes once (stopped there by the
/// fault point).
#[test]
#[ignore = "child process of lock_pin_read_returns_while_the_writer_is_stopped_after_publishing"]
fn child_publish_once() {
    let Ok(name) = std::env::var(NAME_VAR) else { return };
    let mut w = Writer::<Small>::options().lock_pins(true).create(&name).unwrap();
    w.publish(&Small { x: 7 }).unwrap();
}
