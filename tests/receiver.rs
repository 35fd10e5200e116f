//! `Receiver` (`SharedReader::subscribe`) against real objects: writers in
//! threads, writer processes killed with SIGKILL and taken over by another
//! process, replaced objects and a lane that moves to the plain name.
#![cfg(all(feature = "tokio", not(miri)))]

mod common;

use std::io::{BufRead, BufReader};
use std::pin::Pin;
use std::process::{Child, ChildStdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{consistent, role, spawn_child, Checked, TestName};
use futures_core::Stream;
use shmstate::{Generation, Reader, Receiver, SharedReader, WaitError, Writer};

/// Against hangs only (never an upper bound on speed).
const HANG: Duration = Duration::from_secs(30);
/// The grace period of the dead-writer tests.
const GRACE: Duration = Duration::from_millis(200);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("runtime")
}

/// The next item of a stream.
async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// Entry point of child processes (ignored in normal runs): `writer:NAME`
/// creates NAME and publishes generation 1; `takeover:NAME` takes NAME over
/// and publishes once. Each prints `published G` and sleeps until killed.
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let mut w = if let Some(name) = role.strip_prefix("writer:") {
        Writer::<Checked>::create(name).expect("create")
    } else if let Some(name) = role.strip_prefix("takeover:") {
        Writer::<Checked>::open_or_create(name).expect("take over")
    } else {
        return;
    };
    let g = w.next_generation().get();
    let g = w.publish(&Checked::new(g, 4)).expect("publish");
    println!("published {g}");
    std::thread::sleep(Duration::from_secs(120));
}

/// A child writer process, killed when dropped.
struct WriterProcess {
    child: Child,
    /// Kept open until the end: the child must not meet a closed pipe.
    _out: BufReader<ChildStdout>,
    published: Generation,
}

impl WriterProcess {
    fn start(role: &str) -> Self {
        let mut child = spawn_child("__child", role);
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let published = loop {
            line.clear();
            assert!(out.read_line(&mut line).expect("child output") > 0, "child exited before it published");
            if let Some(g) = line.trim().strip_prefix("published ") {
                break Generation::new(g.parse().expect("generation"));
            }
        };
        WriterProcess { child, _out: out, published }
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill writer");
        self.child.wait().expect("reap writer");
    }
}

impl Drop for WriterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn a_receiver_is_send_and_clones_keep_their_own_seen_generation() {
    let name = TestName::new("recv-clone");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    assert_send(&rx);
    assert_send(&rx.changed());
    let mut other = rx.clone();
    assert!(Arc::ptr_eq(rx.shared(), other.shared()), "clones share the SharedReader");
    assert_eq!((rx.seen(), other.seen()), (g1, g1));
    let g2 = w.publish(&Checked::new(2, 4)).expect("publish");
    assert!(rx.has_changed() && other.has_changed());
    assert_eq!(rx.wait(HANG), Ok(g2));
    // Marking one leaves the other alone.
    assert!(!rx.has_changed());
    assert!(other.has_changed());
    assert_eq!(other.seen(), g1);
    // A receiver moved to another thread waits there.
    let waiter = std::thread::spawn(move || {
        let g = other.wait(Duration::ZERO);
        (g, other.seen())
    });
    assert_eq!(waiter.join().expect("thread"), (Ok(g2), g2));
}

#[test]
fn changed_resolves_on_a_publish_from_another_thread_and_marks_it_seen() {
    let name = TestName::new("recv-changed");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    assert_eq!(rx.seen(), g1);
    assert!(!rx.has_changed());
    let rt = runtime();
    rt.block_on(async {
        // Nothing newer: pending.
        assert!(tokio::time::timeout(Duration::from_millis(50), rx.changed()).await.is_err());
    });
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let g = w.publish(&Checked::new(2, 4)).expect("publish");
        (w, g)
    });
    // A task of the runtime, as in the doc example.
    let task = rt.spawn(async move {
        let g = tokio::time::timeout(HANG, rx.changed()).await.expect("hang").expect("changed");
        let (seen, changed) = (rx.seen(), rx.has_changed());
        let value = consistent(&rx.borrow_and_update().expect("borrow")).expect("consistent");
        (g, seen, changed, value)
    });
    let (g, seen, changed, value) = rt.block_on(task).expect("task");
    let (_w, g2) = writer.join().expect("writer");
    assert_eq!((g, seen, changed, value), (g2, g2, false, 2));
    assert_eq!(shmstate::inspect(name.as_str()).expect("inspect").waiters, 0);
}

#[test]
fn borrow_does_not_mark_seen_and_borrow_and_update_does() {
    let name = TestName::new("recv-borrow");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    let g2 = w.publish(&Checked::new(2, 4)).expect("publish");
    {
        let snap = rx.borrow().expect("borrow");
        assert_eq!((snap.generation(), consistent(&snap)), (g2, Ok(2)));
    }
    assert!(rx.has_changed(), "borrow marked nothing");
    // So the wait returns at once with what was borrowed.
    assert_eq!(rx.wait(Duration::ZERO), Ok(g2));
    assert!(!rx.has_changed());
    let g3 = w.publish(&Checked::new(3, 4)).expect("publish");
    assert!(rx.has_changed());
    assert_eq!(rx.borrow_and_update().expect("borrow").generation(), g3);
    assert_eq!(rx.seen(), g3);
    assert!(!rx.has_changed());
    assert_eq!(rx.wait(Duration::from_millis(50)), Err(WaitError::Timeout { name: name.as_str().into() }));
}

#[test]
fn mark_seen_and_mark_unseen() {
    let name = TestName::new("recv-mark");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    rx.mark_unseen();
    assert_eq!(rx.seen(), Generation::NONE);
    assert!(rx.has_changed());
    runtime().block_on(async {
        let g = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await.expect("at once");
        assert_eq!(g, Ok(g1));
    });
    assert_eq!(rx.seen(), g1);
    let g3 = {
        w.publish(&Checked::new(2, 4)).expect("publish");
        w.publish(&Checked::new(3, 4)).expect("publish")
    };
    assert!(rx.has_changed());
    rx.mark_seen();
    assert_eq!(rx.seen(), g3, "the latest, not the next");
    assert!(!rx.has_changed());
    assert_eq!(rx.wait(Duration::from_millis(50)), Err(WaitError::Timeout { name: name.as_str().into() }));
}

#[test]
fn wait_times_out_then_returns_the_next_generation() {
    let name = TestName::new("recv-wait");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    let start = Instant::now();
    assert_eq!(rx.wait(Duration::from_millis(100)), Err(WaitError::Timeout { name: name.as_str().into() }));
    assert!(start.elapsed() >= Duration::from_millis(100));
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let g = w.publish(&Checked::new(2, 4)).expect("publish");
        (w, g)
    });
    let g = rx.wait(HANG);
    let (_w, g2) = writer.join().expect("writer");
    assert_eq!(g, Ok(g2));
    assert_eq!(rx.seen(), g2);
}

#[test]
fn the_stream_yields_increasing_generations() {
    let name = TestName::new("recv-stream");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    let writer = std::thread::spawn(move || {
        let mut last = g1;
        for g in 2..=6 {
            std::thread::sleep(Duration::from_millis(20));
            last = w.publish(&Checked::new(g, 4)).expect("publish");
        }
        (w, last)
    });
    let seen = runtime().block_on(async {
        let mut seen = vec![g1];
        while seen.last().map(|g| g.get()) < Some(6) {
            let g = tokio::time::timeout(HANG, next(&mut rx)).await.expect("hang").expect("never ends");
            seen.push(g.expect("generation"));
            assert_eq!(rx.seen(), *seen.last().unwrap(), "marked seen");
        }
        seen
    });
    let (_w, last) = writer.join().expect("writer");
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&last));
}

/// `Replaced` (without `follow`) comes back at once on every wait: the
/// stream yields it once, then ends.
#[test]
fn the_stream_ends_after_a_replacement_it_cannot_follow() {
    let name = TestName::new("recv-streamend");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let opts = Reader::<Checked>::options().writer_grace(Duration::ZERO);
    let mut rx = Arc::new(opts.open_shared(name.as_str()).expect("open")).subscribe();
    drop(w);
    shmstate::remove(name.as_str()).expect("remove");
    let mut again = Writer::<Checked>::create(name.as_str()).expect("create again");
    again.publish(&Checked::new(1, 4)).expect("publish");
    runtime().block_on(async {
        let first = tokio::time::timeout(HANG, next(&mut rx)).await.expect("hang");
        assert_eq!(first, Some(Err(WaitError::Replaced { name: name.as_str().into() })));
        assert_eq!(tokio::time::timeout(HANG, next(&mut rx)).await.expect("hang"), None);
        // `changed` still says why.
        let again = tokio::time::timeout(HANG, rx.changed()).await.expect("hang");
        assert_eq!(again, Err(WaitError::Replaced { name: name.as_str().into() }));
    });
}

/// With `follow`, an object removed and created again numbers from 1: the
/// receiver returns the new object's generation although it is lower than
/// the one seen, `borrow` gives the new object's snapshot (not the old one
/// this thread's reader held), and a clone that did not wait knows it has
/// something new.
#[test]
fn a_replaced_object_is_followed_and_its_lower_generations_count_as_new() {
    let name = TestName::new("recv-replaced");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let mut g5 = Generation::NONE;
    for g in 1..=5 {
        g5 = w.publish(&Checked::new(g, 4)).expect("publish");
    }
    let opts = Reader::<Checked>::options().follow(true).writer_grace(GRACE);
    let shared = Arc::new(opts.open_shared(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    let mut other = rx.clone();
    assert_eq!(rx.borrow_and_update().expect("borrow").generation(), g5);
    drop(w);
    shmstate::remove(name.as_str()).expect("remove");
    let mut w2 = Writer::<Checked>::create(name.as_str()).expect("create again");
    let new1 = w2.publish(&Checked::new(100, 4)).expect("publish");
    assert!(new1 < g5);
    assert!(!other.has_changed(), "no wait has followed yet");
    let g = runtime().block_on(async { tokio::time::timeout(HANG, rx.changed()).await.expect("hang") });
    assert_eq!(g, Ok(new1));
    assert_eq!(rx.seen(), new1);
    assert!(!rx.has_changed());
    {
        let snap = rx.borrow().expect("borrow");
        assert_eq!((snap.generation(), consistent(&snap)), (new1, Ok(100)), "the new object's snapshot");
    }
    // The clone still has the old object's 5 as seen: the new 1 is new to it.
    assert!(other.has_changed());
    assert_eq!(other.wait(Duration::ZERO), Ok(new1));
    assert_eq!(other.borrow_and_update().expect("borrow").generation(), new1);
    // From here on both wait in the new object's numbers.
    assert_eq!(rx.wait(Duration::from_millis(50)), Err(WaitError::Timeout { name: name.as_str().into() }));
    let new2 = w2.publish(&Checked::new(101, 4)).expect("publish");
    assert_eq!(rx.wait(HANG), Ok(new2));
    assert_eq!(consistent(&rx.borrow_and_update().expect("borrow")), Ok(101));
    assert_eq!(other.wait(HANG), Ok(new2));
}

/// A writer process SIGKILLed, with `keep_waiting_after_writer_dead`: one
/// `WriterDead` after the grace period, then `changed` goes on waiting
/// (several grace periods) and resolves with the generation of another
/// process that takes the object over.
#[test]
fn keep_waiting_reports_a_killed_writer_once_then_changed_resolves_on_the_next_writer() {
    let name = TestName::new("recv-dead-async");
    let mut first = WriterProcess::start(&format!("writer:{}", name.as_str()));
    let opts = Reader::<Checked>::options().writer_grace(GRACE);
    let shared = Arc::new(opts.open_shared(name.as_str()).expect("open"));
    let mut rx = shared.subscribe().keep_waiting_after_writer_dead(true);
    assert_eq!(rx.seen(), first.published);
    let dead = WaitError::WriterDead { name: name.as_str().into() };
    let rt = runtime();
    rt.block_on(async {
        assert!(tokio::time::timeout(Duration::from_millis(50), rx.changed()).await.is_err(), "writer alive");
        first.kill();
        assert_eq!(tokio::time::timeout(HANG, rx.changed()).await.expect("hang"), Err(dead.clone()));
        // Reported: the next waits outlast several grace periods.
        assert!(tokio::time::timeout(GRACE * 4, rx.changed()).await.is_err(), "WriterDead reported twice");
    });
    let pending = rt.spawn(async move {
        let g = tokio::time::timeout(HANG, rx.changed()).await.expect("hang");
        (g, rx)
    });
    std::thread::sleep(GRACE * 3);
    assert!(!pending.is_finished(), "WriterDead reported twice");
    let second = WriterProcess::start(&format!("takeover:{}", name.as_str()));
    assert!(second.published > first.published);
    let (g, mut rx) = rt.block_on(pending).expect("task");
    assert_eq!(g, Ok(second.published));
    assert_eq!(consistent(&rx.borrow_and_update().expect("borrow")), Ok(second.published.get()));
    drop(second);
    // Something new came since: the next death is reported again.
    let again = rt.block_on(async { tokio::time::timeout(HANG, rx.changed()).await.expect("hang") });
    assert_eq!(again, Err(dead));
}

/// The same with the blocking `wait`: one `WriterDead`, then `Timeout`s
/// (not `WriterDead`) while no writer is there, then the next writer's
/// generation.
#[test]
fn keep_waiting_reports_a_killed_writer_once_then_wait_returns_the_next_writer() {
    let name = TestName::new("recv-dead-sync");
    let mut first = WriterProcess::start(&format!("writer:{}", name.as_str()));
    let opts = Reader::<Checked>::options().writer_grace(GRACE);
    let shared = Arc::new(opts.open_shared(name.as_str()).expect("open"));
    let mut rx = shared.subscribe().keep_waiting_after_writer_dead(true);
    first.kill();
    assert_eq!(rx.wait(HANG), Err(WaitError::WriterDead { name: name.as_str().into() }));
    let timeout = Err(WaitError::Timeout { name: name.as_str().into() });
    for _ in 0..2 {
        assert_eq!(rx.wait(GRACE * 2), timeout, "WriterDead reported twice");
    }
    let name_ = name.as_str().to_string();
    let takeover = std::thread::spawn(move || {
        std::thread::sleep(GRACE * 2);
        WriterProcess::start(&format!("takeover:{name_}"))
    });
    let g = rx.wait(HANG);
    let second = takeover.join().expect("takeover");
    assert_eq!(g, Ok(second.published));
    assert_eq!(rx.seen(), second.published);
}

/// Without the policy every wait on a dead writer waits the grace period
/// out and returns `WriterDead` again.
#[test]
fn without_the_policy_writer_dead_repeats() {
    let name = TestName::new("recv-dead-repeat");
    let mut first = WriterProcess::start(&format!("writer:{}", name.as_str()));
    let opts = Reader::<Checked>::options().writer_grace(GRACE);
    let shared = Arc::new(opts.open_shared(name.as_str()).expect("open"));
    let mut rx = shared.subscribe();
    first.kill();
    let dead = Err(WaitError::WriterDead { name: name.as_str().into() });
    runtime().block_on(async {
        for _ in 0..2 {
            assert_eq!(tokio::time::timeout(HANG, rx.changed()).await.expect("hang"), dead);
        }
        let item = tokio::time::timeout(HANG, next(&mut rx)).await.expect("hang");
        assert_eq!(item, Some(dead.clone()), "the stream goes on after WriterDead");
    });
    assert_eq!(rx.wait(HANG), dead);
    assert_eq!(rx.seen(), first.published);
}

mod v1 {
    /// The old version.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
    }
}

mod v2 {
    /// The new version.
    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq)]
    pub struct Conf {
        pub gen: u64,
        pub label: String,
    }
}

fn v2_value(gen: u64) -> v2::Conf {
    v2::Conf { gen, label: format!("g{gen}") }
}

/// A V2 receiver opened on V2's lane while V1 holds the plain name; V2 then
/// moves to the plain name: every wait returns the generation just
/// published (numbers go on across the move: no `Replaced`, no generation
/// twice, never the moved lane's last publish), and `borrow_and_update`
/// gives it.
#[test]
fn a_lane_moving_to_the_plain_name_keeps_the_numbers() {
    let name = TestName::new("recv-lane");
    let mut w1 = Writer::<v1::Conf>::create(name.as_str()).expect("create V1");
    w1.publish(&v1::Conf { gen: 1 }).expect("publish");
    drop(w1);
    let to_v1 = |v: &v2::Conf| v1::Conf { gen: v.gen };
    let mut w2 = Writer::<v2::Conf>::options().lane(to_v1).open_or_create(name.as_str()).expect("V2 with a V1 lane");
    let g = w2.next_generation().get();
    w2.publish(&v2_value(g)).expect("publish");
    drop(w2);
    let opts = Reader::<v2::Conf>::options().follow(true);
    let shared = Arc::new(opts.open_shared(name.as_str()).expect("open V2"));
    let mut rx = shared.subscribe();
    assert_ne!(
        shmstate::inspect(name.as_str()).expect("inspect").fingerprint,
        shmstate::schema::fingerprint_of::<v2::Conf>()
    );
    // Redeployed without the V1 lane: V1 is unread, so V2 moves to the plain
    // name at one of the next publishes.
    let mut w3 = Writer::<v2::Conf>::open_or_create(name.as_str()).expect("V2 alone");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after_move = 0;
    while after_move < 3 {
        assert!(Instant::now() < deadline, "V2 never moved to the plain name");
        let g = w3.next_generation().get();
        let published = w3.publish(&v2_value(g)).expect("publish");
        assert_eq!(rx.wait(HANG), Ok(published));
        let snap = rx.borrow_and_update().expect("borrow");
        assert_eq!((snap.generation(), snap.gen.to_native()), (published, g));
        drop(snap);
        assert!(!rx.has_changed(), "at {published}");
        let moved = shmstate::inspect(name.as_str()).expect("inspect").fingerprint
            == shmstate::schema::fingerprint_of::<v2::Conf>();
        if moved {
            after_move += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rx.wait(Duration::from_millis(50)), Err(WaitError::Timeout { name: name.as_str().into() }));
}

/// Type-level checks: `Receiver` is `Send` and `Clone` for any `Shared`.
#[allow(dead_code)]
fn receiver_is_send_and_clone<T: shmstate::Shared>(rx: &Receiver<T>) -> impl Send + Clone {
    rx.clone()
}
