//! Waiters killed while they wait (docs/PROTOCOL.md, "Wake-ups"): a waiter
//! process SIGKILLed in its futex sleep leaves its count in the reader
//! table's `waiters`; the writer takes it back at the first publish whose
//! wake-up wakes nobody (the waiter's entry marks the count). And a publish's
//! wake-up whose one woken waiter dies before passing it on still reaches the
//! other waiters, within their 100 ms wait slice.
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{role, spawn_child, Checked, TestName};
use shmstate::{inspect, Reader, SharedReader, Writer};

/// Against hangs only (never an upper bound on speed).
const HANG: Duration = Duration::from_secs(30);

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let (kind, rest) = role.split_once(':').expect("role kind:args");
    match kind {
        // One blocking wait through a `Reader` (its own entry).
        "reader" => {
            let r = Reader::<Checked>::open(rest).expect("open");
            let g = r.generation();
            println!("waiting");
            let _ = r.wait_newer(g, Duration::from_secs(120));
        }
        // One blocking wait through a `SharedReader` (its watcher's entry).
        "shared" => {
            let r = SharedReader::<Checked>::open(rest).expect("open");
            let g = r.generation();
            println!("waiting");
            let _ = r.wait_newer(g, Duration::from_secs(120));
        }
        // One pending future (the async helper thread counts it).
        #[cfg(feature = "tokio")]
        "async" => {
            let r = SharedReader::<Checked>::open(rest).expect("open");
            let g = r.generation();
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
            println!("waiting");
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(120), r.changed(g)).await });
        }
        // `n` threads, each waiting through its own `Reader`; each prints
        // when its wait returns.
        "threads" => {
            let (name, n) = rest.rsplit_once(':').expect("name:n");
            let n: usize = n.parse().expect("n");
            let readers: Vec<_> = (0..n).map(|_| Reader::<Checked>::open(name).expect("open")).collect();
            let g = readers[0].generation();
            let threads: Vec<_> = readers
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    std::thread::spawn(move || {
                        let got = r.wait_newer(g, Duration::from_secs(120)).expect("wait");
                        println!("returned {i} {}", got.get());
                    })
                })
                .collect();
            println!("waiting");
            for t in threads {
                t.join().expect("waiter thread");
            }
        }
        // A waiter that sleeps on the object's futex word (at byte `offset`
        // of the data segment) without counting itself and, once woken,
        // never passes the wake-up on: it stands for a woken waiter killed
        // before it could (the test kills it then).
        "fake" => {
            let (name, offset) = rest.rsplit_once(':').expect("name:offset");
            fake_waiter(name, offset.parse().expect("offset"));
        }
        _ => panic!("unknown role {role}"),
    }
}

/// The data segment's file (the name scheme of `shmstate::remove`).
fn data_path(name: &str) -> String {
    format!("/dev/shm/shmstate.{name}")
}

#[allow(unsafe_code)]
fn fake_waiter(name: &str, offset: usize) {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU32, Ordering};
    let file = std::fs::File::open(data_path(name)).expect("open data segment");
    let len = file.metadata().expect("fstat").len() as usize;
    // SAFETY: a read-only shared mapping of a file we opened; it is never
    // unmapped (the process exits or is killed first).
    let base = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    assert_ne!(base, libc::MAP_FAILED, "mmap");
    assert!(offset + 4 <= len && offset % 4 == 0);
    // SAFETY: inside the mapping, 4-aligned; others write it only atomically.
    let word = unsafe { &*(base.cast::<u8>().add(offset) as *const AtomicU32) };
    loop {
        let seen = word.load(Ordering::SeqCst);
        println!("sleeping");
        let timeout = libc::timespec { tv_sec: 120, tv_nsec: 0 };
        // SAFETY: FUTEX_WAIT (shared) on a valid, aligned u32 of the mapping.
        let r = unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &timeout as *const libc::timespec)
        };
        if r == 0 {
            println!("woken");
            // Never passes the wake-up on; the test kills us.
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
    }
}

/// A child's stdout lines, with the time each arrived.
fn lines_of(child: &mut Child) -> mpsc::Receiver<(String, Instant)> {
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line equal to `want` (other lines are returned too).
fn expect_line(rx: &mpsc::Receiver<(String, Instant)>, want: &str) -> Instant {
    let deadline = Instant::now() + HANG;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (line, at) = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no {want:?} from the child"));
        if line.trim() == want {
            return at;
        }
    }
}

/// Whether every thread of process `pid` is asleep (state `S`).
fn all_asleep(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.filter_map(Result::ok).all(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
    })
}

/// Waits until `name` counts `n` waiters and the processes `pids` are asleep.
fn until_asleep(name: &str, n: u32, pids: &[u32]) {
    let deadline = Instant::now() + HANG;
    loop {
        if inspect(name).expect("inspect").waiters == n && pids.iter().all(|&p| all_asleep(p)) {
            // Into the futex wait itself, not just the state.
            std::thread::sleep(Duration::from_millis(50));
            return;
        }
        assert!(Instant::now() < deadline, "the waiters never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

/// A child killed if the test fails before it is done with it.
struct Guard(Option<Child>);

impl Guard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    fn take(mut self) -> Child {
        self.0.take().expect("child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The waits the dead entries of `name` still mark (diagnostics).
fn dead_marks(name: &str) -> u32 {
    inspect(name).expect("inspect").readers.iter().filter(|r| !r.alive).map(|r| r.waiting).sum()
}

/// Item (a): a child waiting with `kind` ("reader", "shared", "async") is
/// SIGKILLed in its sleep; the writer's next publish wakes nobody, takes the
/// dead waiter's count back, and `waiters` is 0 again. A live waiter then
/// still gets its wake-up (nothing was taken from it).
fn killed_waiter_is_taken_back(kind: &str) {
    let name = TestName::new(&format!("waiters-{kind}"));
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    w.publish(&Checked::new(1, 4)).expect("publish");
    let mut child = Guard(Some(spawn_child("__child", &format!("{kind}:{}", name.as_str()))));
    let lines = lines_of(child.child());
    expect_line(&lines, "waiting");
    until_asleep(name.as_str(), 1, &[child.child().id()]);
    kill(child.take());
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 1, "{kind}: the dead waiter's count is left");
    assert_eq!(dead_marks(name.as_str()), 1, "{kind}: and marked in its entry");
    let mut publishes = 0;
    let mut g = 2;
    while inspect(name.as_str()).expect("inspect").waiters != 0 && publishes < 5 {
        w.publish(&Checked::new(g, 4)).expect("publish");
        println!("{kind}: publish {g} woke {}", w.woken_by_last_publish());
        publishes += 1;
        g += 1;
        // Scans are at most one per 100 ms wait slice.
        std::thread::sleep(Duration::from_millis(150));
    }
    let left = inspect(name.as_str()).expect("inspect").waiters;
    println!("{kind}: waiters {left} after {publishes} publish(es) since the SIGKILL");
    assert_eq!(left, 0, "{kind}: waiters = {left} with no waiter alive after {publishes} publishes");
    assert_eq!(publishes, 1, "{kind}: the first publish that woke nobody took the count back");
    assert_eq!(dead_marks(name.as_str()), 0, "{kind}: no mark left");
    // Publishes now skip the wake-up syscall...
    w.publish(&Checked::new(g, 4)).expect("publish");
    assert_eq!(w.woken_by_last_publish(), 0);
    // ...and a live waiter is still counted and woken.
    let r = Reader::<Checked>::open(name.as_str()).expect("open");
    let since = r.generation();
    let waiter = std::thread::spawn(move || r.wait_newer(since, HANG));
    let deadline = Instant::now() + HANG;
    while inspect(name.as_str()).expect("inspect").waiters != 1 {
        assert!(Instant::now() < deadline, "the live waiter never counted itself");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let next = w.publish(&Checked::new(g + 1, 4)).expect("publish");
    assert_eq!(waiter.join().expect("waiter").expect("wait"), next);
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}

#[test]
fn killed_reader_waiter_count_is_taken_back() {
    killed_waiter_is_taken_back("reader");
}

#[test]
fn killed_shared_reader_waiter_count_is_taken_back() {
    killed_waiter_is_taken_back("shared");
}

#[test]
#[cfg(feature = "tokio")]
fn killed_async_waiter_count_is_taken_back() {
    killed_waiter_is_taken_back("async");
}

/// The offset of the `notify` futex word in the data segment of `name`: the
/// only 32-bit word of the header's second cache line (what readers poll)
/// that each publish raises by exactly 1. Found, not assumed, so that this
/// test does not depend on the header's exact layout.
fn notify_offset(name: &str, w: &mut Writer<Checked>, g: &mut u64) -> usize {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(data_path(name)).expect("open data segment");
    let line = |file: &std::fs::File| {
        let mut b = [0u8; 64];
        file.read_exact_at(&mut b, 128).expect("read header");
        b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()
    };
    let mut candidates: Vec<usize> = (0..16).collect();
    for _ in 0..3 {
        let before = line(&file);
        w.publish(&Checked::new(*g, 4)).expect("publish");
        *g += 1;
        let after = line(&file);
        candidates.retain(|&i| after[i] == before[i].wrapping_add(1));
    }
    assert_eq!(candidates.len(), 1, "the notify word is not unique: {candidates:?}");
    128 + 4 * candidates[0]
}

/// Item (b): the one waiter a publish wakes dies before passing the wake-up
/// on. Here it is a stand-in (a process asleep on the futex word first, so
/// the kernel wakes it first, that never passes anything on and is then
/// SIGKILLed). The other waiters still return: each one's futex sleep lasts
/// at most one 100 ms slice, after which it sees the publish and passes the
/// wake-up on. The delay is measured and printed, and only a generous
/// deadline is asserted.
#[test]
fn waiters_return_when_the_woken_waiter_dies_before_passing_on() {
    const WAITERS: usize = 6;
    let name = TestName::new("waiters-chain");
    let mut w = Writer::<Checked>::create(name.as_str()).expect("create");
    let mut g = 1;
    let offset = notify_offset(name.as_str(), &mut w, &mut g);
    let mut fake = Guard(Some(spawn_child("__child", &format!("fake:{}:{offset}", name.as_str()))));
    let fake_lines = lines_of(fake.child());
    expect_line(&fake_lines, "sleeping");
    until_asleep(name.as_str(), 0, &[fake.child().id()]);
    let mut waiters = Guard(Some(spawn_child("__child", &format!("threads:{}:{WAITERS}", name.as_str()))));
    let lines = lines_of(waiters.child());
    expect_line(&lines, "waiting");
    until_asleep(name.as_str(), WAITERS as u32, &[waiters.child().id(), fake.child().id()]);
    let published = Instant::now();
    let next = w.publish(&Checked::new(g, 4)).expect("publish");
    assert_eq!(w.woken_by_last_publish(), 1, "the publish wakes one waiter");
    // It was the stand-in (first in the futex queue): it says so, and dies
    // without passing the wake-up on.
    let woken = expect_line(&fake_lines, "woken");
    kill(fake.take());
    let mut returned = Vec::new();
    let deadline = Instant::now() + HANG;
    while returned.len() < WAITERS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((line, at)) = lines.recv_timeout(left) else {
            panic!("only {} of {WAITERS} waiters returned within {HANG:?}", returned.len())
        };
        if let Some(rest) = line.strip_prefix("returned ") {
            let got: u64 = rest.split(' ').nth(1).expect("generation").parse().expect("generation");
            assert_eq!(got, next.get());
            returned.push(at.duration_since(published));
        }
    }
    let out = waiters.take().wait_with_output().expect("waiters exit");
    assert!(out.status.success(), "the waiter process failed");
    returned.sort();
    println!(
        "stand-in woken after {:?}; the {WAITERS} other waiters returned after {:?} (first) .. {:?} (last) \
         (bound: one 100 ms wait slice, plus scheduling)",
        woken.duration_since(published),
        returned[0],
        returned[WAITERS - 1],
    );
    // The stand-in never counted itself: nothing is left counted.
    assert_eq!(inspect(name.as_str()).expect("inspect").waiters, 0);
}
