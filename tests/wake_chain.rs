//! A publish wakes one waiting reader, whatever their number: each reader
//! woken by the change wakes the next ones (docs/PROTOCOL.md, "Wake-ups"), so
//! the writer's cost does not grow with the waiters. One test in this binary:
//! it reads the process-wide count of wake-ups passed on.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::{Checked, TestName};
use shmstate::{inspect, Reader, Writer};

const WAITERS: usize = 32;

/// Whether thread `tid` of this process is asleep (state `S`).
fn asleep(tid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    // "tid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('S'))
}

fn one_publish_wakes_every_waiter_through_the_chain(lock_pins: bool) {
    let name = TestName::new(if lock_pins { "wake-chain-locks" } else { "wake-chain" });
    let mut w = Writer::<Checked>::options().lock_pins(lock_pins).create(name.as_str()).unwrap();
    let first = w.publish(&Checked::new(1, 4)).unwrap();
    let tids = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(Barrier::new(WAITERS + 1));
    // Past the barrier: a thread asleep after this is asleep in its wait, not
    // in the barrier (lock-pin waiters are counted nowhere we could read).
    let waiting = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let r = Reader::<Checked>::open(name.as_str()).unwrap();
            let (tids, ready, waiting) = (tids.clone(), ready.clone(), waiting.clone());
            std::thread::spawn(move || {
                // SAFETY: `gettid` has no preconditions.
                tids.lock().unwrap().push(unsafe { libc::gettid() });
                ready.wait();
                waiting.fetch_add(1, SeqCst);
                r.wait_newer(first, Duration::from_secs(60))
            })
        })
        .collect();
    ready.wait();
    // Every waiter asleep in its futex wait (counted, and its thread
    // sleeping), so that each one needs a wake-up.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = lock_pins || inspect(name.as_str()).unwrap().waiters as usize == WAITERS;
        if counted && waiting.load(SeqCst) == WAITERS && tids.lock().unwrap().iter().all(|&t| asleep(t)) {
            break;
        }
        assert!(Instant::now() < deadline, "the waiters never all went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    let passed_before = shmstate::wakes_passed_on();
    let next = w.publish(&Checked::new(2, 4)).unwrap();
    assert_eq!(w.woken_by_last_publish(), 1, "the publish itself wakes one waiter");
    for t in waiters {
        assert_eq!(t.join().unwrap().unwrap(), next);
    }
    // The others were woken by waiters: all 31 of them, but for any that a
    // slice timeout (100 ms) woke first on a loaded machine.
    let passed = shmstate::wakes_passed_on() - passed_before;
    assert!((WAITERS as u64 / 2..WAITERS as u64).contains(&passed), "{passed} wake-ups passed on");
}

#[test]
#[cfg_attr(miri, ignore = "uses shm")]
fn one_publish_wakes_one_waiter_and_the_waiters_wake_the_rest() {
    one_publish_wakes_every_waiter_through_the_chain(false);
    one_publish_wakes_every_waiter_through_the_chain(true);
}
