//! Several writer processes on one object (`WriterOptions::shared`), and the
//! active/standby failover of exclusive writers (`wait_for_lock`). Real
//! processes: this test binary re-executed with a role.
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{role, spawn_child, TestName};
use shmstate::{OpenError, PublishError, Reader, Writer};

/// Writers at most in these tests (the per-writer counts).
const WRITERS: usize = 8;

#[shmstate::shared]
#[derive(Debug, Clone, PartialEq)]
struct Tally {
    /// Updates so far, by everyone.
    counter: u64,
    /// Updates so far, by writer index.
    per_writer: Vec<u64>,
    /// `3 * counter`: with `per_writer` summing to `counter`, a torn view shows.
    check: u64,
}

impl Tally {
    fn empty() -> Self {
        Tally { counter: 0, per_writer: vec![0; WRITERS], check: 0 }
    }

    /// The next tally after one update by writer `me`.
    fn bumped(current: Option<&ArchivedTally>, me: usize) -> Self {
        let mut t = match current {
            Some(a) => rkyv::deserialize::<Tally, rkyv::rancor::Error>(a).expect("deserialize"),
            None => Tally::empty(),
        };
        t.counter += 1;
        t.per_writer[me] += 1;
        t.check = 3 * t.counter;
        t
    }
}

/// What a reader checks on every snapshot.
fn consistent(t: &ArchivedTally) -> Result<u64, String> {
    let counter = t.counter.to_native();
    let sum: u64 = t.per_writer.iter().map(|v| v.to_native()).sum();
    if sum != counter || t.check.to_native() != 3 * counter || t.per_writer.len() != WRITERS {
        return Err(format!("torn: counter {counter}, per-writer sum {sum}, check {}", t.check.to_native()));
    }
    Ok(counter)
}

fn shared_writer(name: &str) -> Result<Writer<Tally>, OpenError> {
    Writer::<Tally>::options().shared(true).open_or_create(name)
}

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let parts: Vec<&str> = role.split(':').collect();
    let code = match parts[..] {
        ["updater", name, me, count] => updater(name, me.parse().unwrap(), count.parse().unwrap()),
        ["forever", name, me] => updater(name, me.parse().unwrap(), u64::MAX),
        ["hold", name] => hold(name),
        ["active", name] => active(name),
        ["standby", name] => standby(name),
        _ => {
            eprintln!("unknown role {role}");
            2
        }
    };
    std::process::exit(code);
}

/// Opens a shared writer, says `READY`, makes `count` updates as writer `me`, says `DONE`.
fn updater(name: &str, me: usize, count: u64) -> i32 {
    let mut w = shared_writer(name).expect("shared writer");
    println!("READY");
    for _ in 0..count {
        w.update(|cur| Tally::bumped(cur, me)).expect("update");
    }
    println!("DONE");
    0
}

/// An exclusive writer that publishes 5 generations, says `READY`, and stays until killed.
/// Takes the publish lock (inside an update) and keeps it until killed.
fn hold(name: &str) -> i32 {
    let mut w = shared_writer(name).expect("shared writer");
    let _ = w.update(|cur| {
        println!("HOLDING");
        loop {
            std::thread::sleep(Duration::from_secs(1));
            if cur.is_none() {
                break Tally::empty(); // never: the parent published first
            }
        }
    });
    1
}

fn active(name: &str) -> i32 {
    let mut w = Writer::<Tally>::create(name).expect("active writer");
    for _ in 0..5 {
        w.update(|cur| Tally::bumped(cur, 0)).expect("update");
    }
    println!("READY");
    std::thread::sleep(Duration::from_secs(600));
    0
}

/// Says `WAITING`, waits for the active writer to go, says `TOOK <next
/// generation>`, publishes once and says `PUBLISHED <generation>`.
fn standby(name: &str) -> i32 {
    println!("WAITING");
    let mut w = Writer::<Tally>::options()
        .wait_for_lock(Duration::from_secs(60))
        .open_or_create(name)
        .expect("standby takes over");
    println!("TOOK {}", w.next_generation().get());
    let g = w.update(|cur| Tally::bumped(cur, 1)).expect("standby's first publish");
    println!("PUBLISHED {}", g.get());
    0
}

/// A child process, SIGKILLed when dropped (also when a test fails).
struct Proc(Child, BufReader<std::process::ChildStdout>);

impl Proc {
    fn spawn(role: &str) -> Self {
        let mut c = spawn_child("__child", role);
        let out = BufReader::new(c.stdout.take().unwrap());
        Proc(c, out)
    }

    /// The rest of the next line that starts with `prefix` (other lines are skipped).
    fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.1.read_line(&mut line).unwrap() > 0, "child exited before {prefix:?}");
            if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }

    fn wait_ok(&mut self) {
        let status = self.0.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How generations relate to updates in a test.
#[derive(Clone, Copy)]
enum Generations {
    /// One generation per update: no writer dies, so the counter is the generation.
    OnePerUpdate,
    /// Writers are killed: one killed after sealing its snapshot and before
    /// publishing it costs a generation number (docs/SEVERAL_WRITERS.md), never
    /// an update. Between two snapshots seen, the counter then grows by at
    /// least one and at most as many as the generations.
    MaySkip,
}

/// Reads `name` until `stop`, checking every snapshot it sees: consistent, and
/// counter and generation never going back. Returns the snapshots checked.
fn check_reader(name: &str, stop: &AtomicBool, gens: Generations) -> u64 {
    let mut r = Reader::<Tally>::options().wait_for_writer(Duration::from_secs(30)).open(name).expect("reader");
    let (mut last_gen, mut last_counter, mut checked) = (0, 0, 0);
    while !stop.load(Ordering::Relaxed) {
        let snap = match r.read() {
            Ok(s) => s,
            Err(shmstate::ReadError::Empty { .. }) => continue,
            Err(e) => panic!("read: {e}"),
        };
        let g = snap.generation().get();
        let counter = consistent(&snap).unwrap();
        assert!(
            g >= last_gen && counter >= last_counter,
            "went back: gen {last_gen} -> {g}, counter {last_counter} -> {counter}"
        );
        match gens {
            Generations::OnePerUpdate => assert_eq!(counter, g, "generation {g} holds counter {counter}"),
            Generations::MaySkip if g > last_gen => {
                // Two updates built on the same snapshot would show as a new
                // generation with no new update.
                assert!(counter > last_counter, "gen {last_gen} -> {g} with no new update (counter {counter})");
                assert!(counter - last_counter <= g - last_gen, "more updates than generations");
            }
            Generations::MaySkip => {}
        }
        (last_gen, last_counter) = (g, counter);
        checked += 1;
    }
    checked
}

#[test]
fn eight_writers_lose_no_update() {
    const UPDATES: u64 = 10_000;
    let name = TestName::new("eight");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| check_reader(name.as_str(), &stop, Generations::OnePerUpdate));
        let mut writers: Vec<Proc> =
            (0..WRITERS).map(|me| Proc::spawn(&format!("updater:{}:{me}:{UPDATES}", name.as_str()))).collect();
        for w in &mut writers {
            w.expect("DONE");
            w.wait_ok();
        }
        stop.store(true, Ordering::Relaxed);
        let checked = reader.join().unwrap();
        assert!(checked > 0);
    });
    let mut r = Reader::<Tally>::open(name.as_str()).unwrap();
    let snap = r.read().unwrap();
    assert_eq!(snap.counter.to_native(), WRITERS as u64 * UPDATES);
    assert!(snap.per_writer.iter().all(|v| v.to_native() == UPDATES), "{:?}", snap.per_writer);
    assert_eq!(snap.generation().get(), WRITERS as u64 * UPDATES);
}

#[test]
fn holders_killed_mid_update_lose_no_committed_update() {
    const KILLS: u32 = 100;
    let name = TestName::new("killed");
    let stop = AtomicBool::new(false);
    let after_kills = std::thread::scope(|s| {
        let reader = s.spawn(|| check_reader(name.as_str(), &stop, Generations::MaySkip));
        // One writer that keeps going throughout, and one killed at a random
        // moment of its updates, again and again.
        let mut steady = Proc::spawn(&format!("forever:{}:0", name.as_str()));
        steady.expect("READY");
        let mut seed = std::process::id() as u64 | 1;
        for _ in 0..KILLS {
            let mut victim = Proc::spawn(&format!("forever:{}:1", name.as_str()));
            victim.expect("READY");
            // xorshift: 0..2000 µs into its updates.
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(seed % 2000));
            drop(victim); // SIGKILL
        }
        // Nobody is stuck: the steady writer still gets through, and a new
        // writer can still open and update.
        let before = Reader::<Tally>::open(name.as_str()).unwrap().read().unwrap().generation().get();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = Reader::<Tally>::open(name.as_str()).unwrap().read().unwrap().generation().get();
            if now > before + 100 {
                break;
            }
            assert!(Instant::now() < deadline, "the steady writer made no progress after the kills");
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(steady);
        // Dead now (drop waits): what it committed is in; a snapshot it sealed
        // and did not publish is not, and must not be built on.
        let after_kills = Reader::<Tally>::open(name.as_str()).unwrap().read().unwrap().counter.to_native();
        let mut last = Proc::spawn(&format!("updater:{}:2:10", name.as_str()));
        last.expect("DONE");
        last.wait_ok();
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        after_kills
    });
    // The last writer's ten updates each built on the one before, starting
    // from the last committed update of the killed writers.
    let snap_reader = &mut Reader::<Tally>::open(name.as_str()).unwrap();
    let snap = snap_reader.read().unwrap();
    assert_eq!(snap.counter.to_native(), after_kills + 10);
    assert_eq!(snap.per_writer[2].to_native(), 10);
    assert!(snap.counter.to_native() <= snap.generation().get());
}

#[test]
fn a_standby_takes_over_when_the_active_writer_dies() {
    let name = TestName::new("failover");
    let mut active = Proc::spawn(&format!("active:{}", name.as_str()));
    active.expect("READY");
    let mut standby = Proc::spawn(&format!("standby:{}", name.as_str()));
    standby.expect("WAITING");
    // It waits while the active one lives (a publish from it would be a second writer).
    std::thread::sleep(Duration::from_millis(200));
    let mut r = Reader::<Tally>::open(name.as_str()).unwrap();
    assert_eq!(r.read().unwrap().generation().get(), 5);
    let killed = Instant::now();
    drop(active);
    assert_eq!(standby.expect("TOOK "), "6", "generations continue");
    assert_eq!(standby.expect("PUBLISHED "), "6");
    eprintln!("kill -> standby's first publish: {:?}", killed.elapsed());
    standby.wait_ok();
    let snap = r.read().unwrap();
    assert_eq!(snap.generation().get(), 6);
    assert_eq!(consistent(&snap).unwrap(), 6);
}

#[test]
fn shared_and_exclusive_writers_exclude_each_other() {
    let name = TestName::new("modes");
    let mut a = shared_writer(name.as_str()).unwrap();
    let b = shared_writer(name.as_str()).unwrap();
    assert!(matches!(Writer::<Tally>::open_or_create(name.as_str()), Err(OpenError::WriterBusy { .. })));
    a.update(|cur| Tally::bumped(cur, 0)).unwrap();
    drop((a, b));
    let exclusive = Writer::<Tally>::open_or_create(name.as_str()).unwrap();
    assert!(matches!(shared_writer(name.as_str()), Err(OpenError::WriterBusy { .. })));
    drop(exclusive);
    // Lanes are not for shared writers (yet): refused up front.
    let with_lane = Writer::<Tally>::options().shared(true).lane(|t: &Tally| t.counter).open_or_create(name.as_str());
    assert!(matches!(with_lane, Err(OpenError::InvalidOption { .. })), "{with_lane:?}");
    // Nor removal on drop: the first writer to go would remove the others' object.
    let removing = Writer::<Tally>::options().shared(true).remove_on_drop(true).open_or_create(name.as_str());
    assert!(matches!(removing, Err(OpenError::InvalidOption { .. })), "{removing:?}");
}

#[test]
fn readers_see_a_live_writer_while_any_shared_writer_lives() {
    let name = TestName::new("alive");
    let mut first = shared_writer(name.as_str()).unwrap();
    let mut second = shared_writer(name.as_str()).unwrap();
    first.update(|cur| Tally::bumped(cur, 0)).unwrap();
    second.update(|cur| Tally::bumped(cur, 1)).unwrap();
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.writer_alive);
    assert_eq!(info.shared_writers.len(), 2, "{:?}", info.shared_writers);
    assert!(info.shared_writers.iter().all(|w| w.pid == Some(std::process::id()) && !w.publishing));
    // The first held the old readers' byte; the second holds only its seat.
    drop(first);
    let info = shmstate::inspect(name.as_str()).unwrap();
    assert!(info.writer_alive, "a live shared writer without byte 0 counts");
    assert_eq!(info.shared_writers.len(), 1);
    drop(second);
    assert!(!shmstate::inspect(name.as_str()).unwrap().writer_alive);
}

#[test]
fn a_writer_killed_holding_the_publish_lock_stalls_nobody() {
    let name = TestName::new("holder");
    let mut w = shared_writer(name.as_str()).unwrap();
    assert_eq!(w.update(|cur| Tally::bumped(cur, 0)).unwrap().get(), 1);
    let mut holder = Proc::spawn(&format!("hold:{}", name.as_str()));
    holder.expect("HOLDING");
    assert!(matches!(w.try_update(|_| unreachable!("busy")), Err(PublishError::Busy { .. })));
    // SIGKILL, inside its update. The lock word still names the dead writer;
    // its seat lock is gone, so this update takes the lock over and continues
    // from generation 1 (a minute's guard: without the takeover it would wait
    // for ever).
    drop(holder);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let g = w.update(|cur| Tally::bumped(cur, 0)).unwrap().get();
        done.send((g, w)).unwrap();
    });
    let (g, _w) = finished.recv_timeout(Duration::from_secs(60)).expect("the update is stuck behind the dead holder");
    assert_eq!(g, 2);
    let snap = Reader::<Tally>::open(name.as_str()).unwrap().read().map(|s| consistent(&s)).unwrap();
    assert_eq!(snap.unwrap(), 2);
    // And a writer that opens now (it catches up under the lock) is not stalled either.
    let mut late = shared_writer(name.as_str()).unwrap();
    assert_eq!(late.update(|cur| Tally::bumped(cur, 1)).unwrap().get(), 3);
}

#[test]
fn try_publish_is_busy_while_another_writer_publishes() {
    let name = TestName::new("busy");
    let mut a = shared_writer(name.as_str()).unwrap();
    let mut b = shared_writer(name.as_str()).unwrap();
    a.update(|cur| {
        // A is the only writer now: B may not publish or update, and inspect says who.
        assert!(matches!(b.try_publish(&Tally::empty()), Err(PublishError::Busy { .. })));
        assert!(matches!(b.try_update(|_| unreachable!("not called when busy")), Err(PublishError::Busy { .. })));
        let info = shmstate::inspect(name.as_str()).unwrap();
        assert_eq!(info.shared_writers.iter().filter(|w| w.publishing).count(), 1, "{:?}", info.shared_writers);
        Tally::bumped(cur, 0)
    })
    .unwrap();
    let g = b.try_update(|cur| Tally::bumped(cur, 1)).unwrap();
    assert_eq!(g.get(), 2, "b continues a's generations");
    let snap = Reader::<Tally>::open(name.as_str()).unwrap().read().map(|s| consistent(&s)).unwrap();
    assert_eq!(snap.unwrap(), 2);
}
