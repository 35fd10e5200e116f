//! Async waits (`SharedReader::changed`, feature `tokio`) against real
//! writers: a writer thread, and a writer process killed with SIGKILL.
#![cfg(all(feature = "tokio", not(miri)))]

mod common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use common::{consistent, role, spawn_child, Checked, TestName};
use shmstate::{inspect, Reader, SharedReader, WaitError, Writer};

/// Against hangs only (never an upper bound on speed).
const HANG: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("runtime")
}

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let Some(name) = role.strip_prefix("writer:") else { return };
    let mut w = Writer::<Checked>::create(name).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    println!("ready");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn changed_wakes_on_publish_from_another_thread() {
    let name = TestName::new("async-publish");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open");
    let writer = std::thread::spawn(move || {
        for g in 2..=4 {
            std::thread::sleep(Duration::from_millis(30));
            w.publish(&Checked::new(g, 4)).expect("publish");
        }
        w
    });
    runtime().block_on(async {
        let mut seen = g1;
        while seen.get() < 4 {
            let g = tokio::time::timeout(HANG, shared.changed(seen)).await.expect("hang").expect("changed");
            assert!(g > seen);
            seen = g;
            let snap = shared.load().expect("load");
            assert!(consistent(&snap).expect("consistent") >= g.get());
        }
    });
    drop(writer.join().expect("writer"));
    // Nothing is left counted as waiting.
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

/// A future dropped while pending (cancelled by a timeout) leaves nothing
/// registered: the object's waiter count goes back to 0 and the next future
/// is woken by the next publish.
#[test]
fn cancelled_future_leaves_nothing_behind() {
    let name = TestName::new("async-cancel");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open");
    let rt = runtime();
    rt.block_on(async {
        // Pending while nothing is published; counted as one waiter.
        let mut fut = Box::pin(shared.changed(g1));
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut fut).await.is_err());
        assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 1);
        drop(fut);
        assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
        for _ in 0..5 {
            assert!(tokio::time::timeout(Duration::from_millis(5), shared.changed(g1)).await.is_err());
        }
        assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
    });
    let waiting = rt.spawn({
        let shared = std::sync::Arc::new(shared);
        async move { tokio::time::timeout(HANG, shared.changed(g1)).await }
    });
    std::thread::sleep(Duration::from_millis(30));
    let g2 = w.publish(&Checked::new(2, 4)).expect("publish");
    assert_eq!(rt.block_on(waiting).expect("task").expect("hang"), Ok(g2));
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

/// Futures on several objects at once: a publish on one wakes only its own.
#[test]
fn one_helper_thread_serves_several_objects() {
    let names: Vec<_> = (0..3).map(|i| TestName::new(&format!("async-multi{i}"))).collect();
    let mut writers: Vec<_> = names.iter().map(|n| Writer::<Checked>::create(n.as_str()).expect("create")).collect();
    for w in &mut writers {
        w.publish(&Checked::new(1, 4)).expect("publish");
    }
    let readers: Vec<_> = names.iter().map(|n| SharedReader::<Checked>::open(n.as_str()).expect("open")).collect();
    let rt = runtime();
    rt.block_on(async {
        let g1 = readers[0].generation();
        let mut futs: Vec<_> = readers.iter().map(|r| Box::pin(r.changed(g1))).collect();
        for f in &mut futs {
            assert!(tokio::time::timeout(Duration::from_millis(10), f).await.is_err());
        }
        writers[1].publish(&Checked::new(2, 4)).expect("publish");
        let g = tokio::time::timeout(HANG, &mut futs[1]).await.expect("hang").expect("changed");
        assert_eq!(g.get(), 2);
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut futs[0]).await.is_err());
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut futs[2]).await.is_err());
        writers[2].publish(&Checked::new(2, 4)).expect("publish");
        assert_eq!(tokio::time::timeout(HANG, &mut futs[2]).await.expect("hang").expect("changed").get(), 2);
    });
}

/// A writer process killed with SIGKILL (without publishing anything newer):
/// the pending future resolves with `WriterDead` once the default grace
/// period is over.
#[test]
fn killed_writer_process_gives_writer_dead() {
    let name = TestName::new("async-dead");
    let mut child = spawn_child("__child", &format!("writer:{}", name.as_str()));
    // Kept open until the end: the child must not meet a closed pipe.
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while line.trim() != "ready" {
        line.clear();
        assert!(out.read_line(&mut line).expect("child output") > 0, "child exited before it was ready");
    }
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open");
    let g1 = shared.generation();
    assert_eq!(g1.get(), 1);
    let rt = runtime();
    rt.block_on(async {
        let mut fut = Box::pin(shared.changed(g1));
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut fut).await.is_err());
        child.kill().expect("kill writer");
        child.wait().expect("reap writer");
        let result = tokio::time::timeout(HANG, fut).await.expect("hang");
        assert_eq!(result, Err(WaitError::WriterDead { name: name.as_str().to_string() }));
        // A new future on the dead object waits out its own grace period.
        assert_eq!(shared.changed(g1).await, Err(WaitError::WriterDead { name: name.as_str().to_string() }));
    });
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

/// An object with lock pins (readers cannot count themselves as waiters; the
/// writer always wakes): threads load through one handle and a future wakes.
#[test]
fn lock_pin_object_loads_and_wakes() {
    let name = TestName::new("async-locks");
    let mut w = Writer::<Checked>::options().lock_pins(true).create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = std::sync::Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open"));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || consistent(&shared.load().expect("load")).expect("consistent"))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 1);
    }
    let rt = runtime();
    let waiting = rt.spawn({
        let shared = shared.clone();
        async move { tokio::time::timeout(HANG, shared.changed(g1)).await }
    });
    std::thread::sleep(Duration::from_millis(30));
    let g2 = w.publish(&Checked::new(2, 4)).expect("publish");
    assert_eq!(rt.block_on(waiting).expect("task").expect("hang"), Ok(g2));
    assert_eq!(consistent(&shared.load().expect("load")), Ok(2));
}

/// A writer dropped, and a new writer that takes over 500 ms later (within
/// the default grace period) and publishes: both a future pending before the
/// writer died and one created after resolve with the new generation, not
/// with `WriterDead`.
#[test]
fn takeover_within_grace_resolves_with_the_new_generation() {
    let name = TestName::new("async-takeover");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open");
    let rt = runtime();
    let mut before = Box::pin(shared.changed(g1));
    rt.block_on(async {
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut before).await.is_err());
    });
    drop(w);
    let after = shared.changed(g1);
    let successor = std::thread::spawn({
        let name = name.as_str().to_string();
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let mut w = Writer::<Checked>::open_or_create(&name).expect("take over");
            let g = w.publish(&Checked::new(2, 4)).expect("publish");
            (w, g)
        }
    });
    let (first, second) = rt.block_on(async {
        let first = tokio::time::timeout(HANG, before).await.expect("hang");
        let second = tokio::time::timeout(HANG, after).await.expect("hang");
        (first, second)
    });
    let (_w, g2) = successor.join().expect("successor");
    assert!(g2 > g1);
    assert_eq!(first, Ok(g2));
    assert_eq!(second, Ok(g2));
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

/// With `writer_grace(Duration::ZERO)` a dead writer ends the wait at once
/// with `WriterDead`, as before the grace period existed.
#[test]
fn zero_grace_gives_writer_dead_at_once() {
    let name = TestName::new("async-nograce");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Reader::<Checked>::options().writer_grace(Duration::ZERO).open_shared(name.as_str()).expect("open");
    let dead = Err(WaitError::WriterDead { name: name.as_str().to_string() });
    runtime().block_on(async {
        let mut fut = Box::pin(shared.changed(g1));
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut fut).await.is_err());
        drop(w);
        assert_eq!(tokio::time::timeout(HANG, fut).await.expect("hang"), dead);
        assert_eq!(tokio::time::timeout(HANG, shared.changed(g1)).await.expect("hang"), dead);
    });
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

/// A removed object gives `Removed`, and a name created again `Replaced`, as
/// the blocking `wait_newer` reports them (zero grace: no need to wait it out).
#[test]
fn removed_and_replaced_objects_are_reported() {
    let name = TestName::new("async-removed");
    let mut w = Writer::<Checked>::options().remove_on_drop(true).create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Reader::<Checked>::options().writer_grace(Duration::ZERO).open_shared(name.as_str()).expect("open");
    runtime().block_on(async {
        let mut fut = Box::pin(shared.changed(g1));
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut fut).await.is_err());
        drop(w);
        let result = tokio::time::timeout(HANG, fut).await.expect("hang");
        assert_eq!(result, Err(WaitError::Removed { name: name.as_str().to_string() }));
        let _again = Writer::<Checked>::create(name.as_str()).expect("create again");
        let result = tokio::time::timeout(HANG, shared.changed(g1)).await.expect("hang");
        assert_eq!(result, Err(WaitError::Replaced { name: name.as_str().to_string() }));
    });
}
