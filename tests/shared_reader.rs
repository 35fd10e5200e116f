//! `SharedReader`: one handle read from many threads while a writer publishes.
#![cfg(not(miri))]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{consistent, Checked, TestName};
use shmstate::{inspect, ReadError, SharedReader, Writer};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handle_is_send_and_sync() {
    assert_send_sync::<SharedReader<Checked>>();
}

/// N threads read one handle while a writer thread publishes: every view is
/// internally consistent, generations never go back on a thread, and every
/// thread's reader entry is released once the threads exit.
#[test]
fn many_threads_read_consistent_views_and_release_entries() {
    const THREADS: usize = 4;
    const LAST: u64 = 2_000;
    let name = TestName::new("shared-many");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 8)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open shared"));
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS + 1));

    let readers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (shared, done, start) = (shared.clone(), done.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (mut last, mut reads, mut held_pairs) = (0u64, 0u64, 0u64);
                while !done.load(Ordering::Relaxed) {
                    let a = shared.load().expect("load");
                    let g = consistent(&a).unwrap_or_else(|e| panic!("thread {t}: {e}"));
                    assert_eq!(g, a.generation().get());
                    assert!(g >= last, "thread {t}: generation went back from {last} to {g}");
                    last = g;
                    // Now and then keep `a` while loading again: the second
                    // view may be newer (another lane); both stay intact.
                    if reads % 7 == 0 {
                        let b = shared.load().expect("second load");
                        let gb = consistent(&b).unwrap_or_else(|e| panic!("thread {t}, second view: {e}"));
                        assert!(gb >= g);
                        held_pairs += u64::from(gb > g);
                        consistent(&a).unwrap_or_else(|e| panic!("thread {t}, held view: {e}"));
                        last = gb;
                    }
                    reads += 1;
                }
                (reads, held_pairs)
            })
        })
        .collect();

    start.wait();
    for g in 2..=LAST {
        w.publish(&Checked::new(g, (g % 50) as usize)).expect("publish");
        if g % 64 == 0 {
            std::thread::yield_now();
        }
    }
    // Let every thread see the last generation.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.generation().get() < LAST && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let during = inspect(name.as_str()).expect("inspect").live_readers();
    done.store(true, Ordering::Relaxed);
    let mut total = 0;
    for r in readers {
        let (reads, _) = r.join().expect("reader thread");
        assert!(reads > 0);
        total += reads;
    }
    assert!(total > 0);
    assert!((1..=THREADS * 3).contains(&during), "{during} entries for {THREADS} threads");
    // The threads are gone: so are their entries (the thread-local destructors
    // closed their readers).
    assert_eq!(shared.threads(), 0);
    assert_eq!(inspect(name.as_str()).expect("inspect").live_readers(), 0);
}

/// A guard keeps its slot while the same thread loads newer generations: the
/// writer publishes well past its slot count and the old view stays intact.
#[test]
fn guard_keeps_its_pin_while_the_thread_loads_newer() {
    let name = TestName::new("shared-guard");
    let mut w = Writer::<Checked>::options().slots(4).create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 64)).expect("publish");
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open shared");
    let old = shared.load().expect("load");
    assert_eq!(consistent(&old), Ok(1));
    for g in 2..=20 {
        w.publish(&Checked::new(g, 64)).expect("publish");
        let new = shared.load().expect("load newer");
        assert_eq!(consistent(&new), Ok(g));
        // On the old code path (one pin per thread) the slot of `old` would
        // be released and rewritten by now.
        assert_eq!(consistent(&old), Ok(1), "held view changed after publish {g}");
    }
    drop(old);
    // Swapping guards in a loop uses at most two readers on this thread.
    let mut snap = shared.load().expect("load");
    for g in 21..=40 {
        w.publish(&Checked::new(g, 64)).expect("publish");
        snap = shared.load().expect("load");
        assert_eq!(consistent(&snap), Ok(g));
    }
    drop(snap);
    let live = inspect(name.as_str()).expect("inspect").live_readers();
    assert!(live <= 3, "{live} entries for one thread");
}

/// `wait_newer` while a guard from `load` lives, woken by a writer thread.
#[test]
fn wait_newer_while_a_guard_lives() {
    let name = TestName::new("shared-wait");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = SharedReader::<Checked>::open(name.as_str()).expect("open shared");
    let held = shared.load().expect("load");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w.publish(&Checked::new(2, 4)).expect("publish");
        w
    });
    let g2 = shared.wait_newer(g1, Duration::from_secs(30)).expect("wait_newer");
    assert!(g2 > g1);
    let new = shared.load().expect("load");
    assert_eq!(consistent(&new), Ok(2));
    assert_eq!(consistent(&held), Ok(1));
    let w = writer.join().expect("writer");
    drop(w);
    drop((held, new));
    assert_eq!(
        shared.wait_newer(g2, Duration::from_secs(30)),
        Err(shmstate::WaitError::WriterDead { name: name.as_str().to_string() })
    );
}

/// Dropping the handle releases the entries of threads that are still alive;
/// those threads can then use another handle.
#[test]
fn dropping_the_handle_releases_live_threads_entries() {
    const THREADS: usize = 3;
    let name = TestName::new("shared-drop");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open shared"));
    let loaded = Arc::new(Barrier::new(THREADS + 1));
    let dropped = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (shared, loaded, dropped) = (shared.clone(), loaded.clone(), dropped.clone());
            let n = name.as_str().to_string();
            std::thread::spawn(move || {
                assert_eq!(consistent(&shared.load().expect("load")), Ok(1));
                drop(shared);
                loaded.wait();
                dropped.wait();
                let other = SharedReader::<Checked>::open(&n).expect("open another");
                assert_eq!(consistent(&other.load().expect("load")), Ok(1));
            })
        })
        .collect();
    loaded.wait();
    assert_eq!(shared.threads(), THREADS);
    assert_eq!(inspect(name.as_str()).expect("inspect").live_readers(), THREADS);
    drop(Arc::try_unwrap(shared).expect("last handle"));
    assert_eq!(inspect(name.as_str()).expect("inspect").live_readers(), 0);
    dropped.wait();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(inspect(name.as_str()).expect("inspect").live_readers(), 0);
}

/// More reading threads than reader entries: the extra threads get an error,
/// and a thread that exits makes room for the next.
#[test]
fn more_threads_than_entries_is_an_error_not_a_hang() {
    let name = TestName::new("shared-full");
    let mut w = Writer::<Checked>::options().max_readers(2).create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open shared"));
    let hold = Arc::new(Barrier::new(3));
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (shared, hold) = (shared.clone(), hold.clone());
            std::thread::spawn(move || {
                let _s = shared.load().expect("load");
                hold.wait();
                hold.wait();
            })
        })
        .collect();
    hold.wait();
    match shared.load() {
        Err(ReadError::Open(shmstate::OpenError::ReaderTableFull { capacity: 2, .. })) => {}
        other => panic!("expected ReaderTableFull, got {:?}", other.map(|s| s.generation())),
    }
    hold.wait();
    for h in holders {
        h.join().expect("holder");
    }
    assert_eq!(consistent(&shared.load().expect("load after the others left")), Ok(1));
}

/// Threads exiting while the last handle is dropped elsewhere (the thread-local
/// destructors race the registry's drop): no crash, no entry left behind.
#[test]
fn thread_exit_races_handle_drop() {
    let name = TestName::new("shared-race");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    for round in 0..40 {
        let shared = Arc::new(SharedReader::<Checked>::open(name.as_str()).expect("open shared"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    assert_eq!(consistent(&shared.load().expect("load")), Ok(1));
                    // The last clone may be this thread's: then the handle
                    // drops here, before this thread's own destructor runs.
                    drop(shared);
                })
            })
            .collect();
        if round % 2 == 0 {
            std::thread::yield_now();
        }
        drop(shared);
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(inspect(name.as_str()).expect("inspect").live_readers(), 0, "round {round}");
    }
}

/// An object removed and created again by another writer: a thread that
/// only calls `load()` has nothing to notice it by (its fast path is one
/// load of a publish word that no longer changes). Once a wait on the same
/// handle has followed the name, every thread's next `load` reads the new
/// object: the handle counts the replacements its waits followed, and the
/// fast path compares that count.
#[test]
fn load_only_threads_follow_a_replacement_the_waits_found() {
    let name = TestName::new("shared-replaced");
    let n = name.as_str();
    let mut w = Writer::<Checked>::create(n).unwrap();
    w.publish(&Checked::new(1, 8)).unwrap();
    let opts = shmstate::Reader::<Checked>::options().follow(true).writer_grace(Duration::from_secs(10));
    let shared = Arc::new(opts.open_shared(n).unwrap());
    let (to_loader, from_main) = std::sync::mpsc::channel::<()>();
    let (to_main, from_loader) = std::sync::mpsc::channel::<u64>();
    let loader = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            // Reads, then, at each signal, reports what `load` returns now.
            while from_main.recv().is_ok() {
                let g = consistent(&shared.load().unwrap()).unwrap();
                to_main.send(g).unwrap();
            }
        })
    };
    to_loader.send(()).unwrap();
    assert_eq!(from_loader.recv().unwrap(), 1);

    drop(w);
    shmstate::remove(n).unwrap();
    let mut w = Writer::<Checked>::create(n).unwrap();
    for g in 1..=3 {
        w.publish(&Checked::new(100 + g, 8)).unwrap();
    }
    // The wait follows the name to the new object (its first generation).
    let g = shared.wait_newer(shmstate::Generation::new(1), Duration::from_secs(20)).unwrap();
    assert!(g.get() >= 1, "{g}");
    to_loader.send(()).unwrap();
    assert_eq!(from_loader.recv().unwrap(), 103, "the load-only thread reads the new object");
    drop(to_loader);
    loader.join().unwrap();
}
