//! `changed()` (feature `tokio`) in a forked child: the helper thread that
//! serves the futures does not survive `fork()`, so the child must start one
//! of its own for the handles it opens (lib.rs, "fork()").
//!
//! The fork happens in a re-executed child test process (`__child`), not in
//! the multi-threaded test harness: the forking process runs only the libtest
//! main thread (waiting for the test), the test thread and the helper thread.
#![cfg(all(feature = "tokio", not(miri)))]

mod common;

use std::future::Future;
use std::io::Read;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::{child_lines, role, spawn_child, Checked, TestName};
use shmstate::{inspect, SharedReader, Writer};

/// Against hangs only (never an upper bound on speed).
const HANG: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    // Current-thread: no worker threads in the process that forks.
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime")
}

/// Entry point of child processes (ignored in normal runs).
#[test]
#[ignore = "child-process entry point, run by the other tests"]
fn __child() {
    let Some(role) = role() else { return };
    let Some(name) = role.strip_prefix("fork:") else { return };
    fork_and_wait_in_grandchild(name);
}

/// The forking process: uses `changed()` (the helper thread starts), keeps a
/// future registered with that helper across the fork, forks, and publishes
/// until the grandchild exits or `HANG` is over (then it is killed).
fn fork_and_wait_in_grandchild(name: &str) {
    let mut w = Writer::<Checked>::create(name).expect("create");
    let g1 = w.publish(&Checked::new(1, 4)).expect("publish");
    let shared = SharedReader::<Checked>::open(name).expect("open");
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        w.publish(&Checked::new(2, 4)).expect("publish");
        w
    });
    let g2 = runtime().block_on(async { tokio::time::timeout(HANG, shared.changed(g1)).await });
    let g2 = g2.expect("parent: changed() hung").expect("changed");
    let mut w = publisher.join().expect("publisher");
    // Registered with this process's helper when the fork happens (nothing
    // publishes until after it): the grandchild inherits the registration.
    let mut inherited = Box::pin(shared.changed(g2));
    assert!(inherited.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_pending());
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
    println!("forker: {threads} threads at fork");

    // SAFETY: the grandchild uses only its copy of this thread's state, new
    // handles and a new runtime; it never returns (it `_exit`s) and drops
    // nothing inherited but the `Changed` future, which it drops on purpose.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grandchild(name, inherited))).map_or(2, |()| 0);
        // SAFETY: ends the grandchild without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }

    let start = Instant::now();
    let mut g = 3;
    let mut status = 0;
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(20));
        w.publish(&Checked::new(g, 4)).expect("publish");
        g += 1;
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid");
        if r == pid {
            break if libc::WIFEXITED(status) {
                format!("exit {}", libc::WEXITSTATUS(status))
            } else {
                format!("signal {}", libc::WTERMSIG(status))
            };
        }
        if start.elapsed() > HANG {
            // SAFETY: plain syscalls on our own (still unreaped) child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            break format!("killed after {HANG:?} (changed() hung)");
        }
    };
    println!("grandchild: {outcome}");
    // The parent's registration is its own: the grandchild's copy neither
    // served it nor took its count away.
    drop(inherited);
    drop(shared);
    println!("waiters: {}", inspect(name).expect("inspect").waiters);
}

/// In the forked process: drops the inherited future, opens a handle of its
/// own and awaits three newer generations.
fn grandchild(name: &str, inherited: std::pin::Pin<Box<shmstate::Changed>>) {
    drop(inherited);
    let mine = SharedReader::<Checked>::open(name).expect("grandchild: open");
    runtime().block_on(async {
        let mut seen = mine.generation();
        for _ in 0..3 {
            let g = mine.changed(seen).await.expect("grandchild: changed");
            assert!(g > seen);
            seen = g;
        }
    });
}

/// A forked child (of a process whose helper thread runs) opens a new
/// `SharedReader` and `changed().await` resolves there as the parent
/// publishes; dropping a future inherited from the parent in the child
/// leaves the parent's waiter count alone.
#[test]
fn changed_resolves_in_a_forked_child() {
    let name = TestName::new("fork-changed");
    let mut child = spawn_child("__child", &format!("fork:{}", name.as_str()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > 3 * HANG {
            child.kill().expect("kill");
            child.wait().expect("reap");
            panic!("the forking child process hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut stdout).expect("child output");
    let out = std::process::Output { status, stdout, stderr: Vec::new() };
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(status.success(), "forking child failed: {status}");
    assert_eq!(child_lines(&out, "grandchild: "), ["exit 0"]);
    assert_eq!(child_lines(&out, "waiters: "), ["0"]);
}
