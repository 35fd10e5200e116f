//! Async waits for a newer generation (feature `tokio`): [`Changed`] (its
//! docs say how it works, what it guarantees and its limits).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Errno, WaitError};
use crate::os::{self, WaitWord};
use crate::protocol::sync::AtomicU32;
use crate::protocol::sync::Ordering::SeqCst;
use crate::read::watch::{DeadWriter, Watcher, WAIT_SLICE};
use crate::{Generation, Shared, SharedReader};

/// Objects the kernel's `futex_waitv` can wait on besides the helper's word.
const MAX_OBJECTS_PER_WAIT: usize = 127;

impl<T: Shared> SharedReader<T> {
    /// Resolves when a generation newer than `than` is published (to that
    /// generation), or with [`WaitError::WriterDead`] when the writer has been
    /// dead for the grace period
    /// ([`ReaderOptions::writer_grace`](crate::ReaderOptions::writer_grace),
    /// taken now) and nothing newer exists: a new writer that takes over
    /// within it resolves the future with its first generation. Like
    /// [`wait_newer`](SharedReader::wait_newer), a name found to refer to
    /// another object gives [`WaitError::Replaced`], and a removed object
    /// whose writer is dead [`WaitError::Removed`]. Pins nothing; the future
    /// is `'static` and `Send`, and cancellation-safe (drop it at any time).
    /// No timeout: use your runtime's (e.g. `tokio::time::timeout`).
    pub fn changed(&self, than: Generation) -> Changed {
        Changed {
            watcher: self.watcher().clone(),
            than,
            grace: self.writer_grace(),
            dead_writer: DeadWriter::default(),
            key: None,
        }
    }
}

/// The future of [`SharedReader::changed`] (feature `tokio`): the next
/// generation, or `WriterDead`.
///
/// ## How
/// One helper thread per process (started on the first wait) sleeps in
/// `futex_waitv` on the `notify` words of every object some future waits on,
/// plus a word of its own that a new registration bumps. When a word changes
/// it wakes the wakers registered on it; nothing polls. While it waits it
/// counts itself in each object's `waiters`, once per pending future, as a
/// blocking `wait_newer` does, so the writer's publish wakes it (the counts
/// are marked in a reader entry the handle claims at its first wait, so that
/// a writer takes them back if the process dies). Every 100 ms it probes the writers of
/// the watched objects and wakes the futures whose writer died, whose grace
/// period ended, whose writer came back, or whose name was replaced; each
/// future then decides as a blocking `wait_newer` does.
///
/// ## Guarantees and limits
/// - Cancellation-safe: dropping a `Changed` removes its registration; a
///   new future starts afresh. A `Changed` holds no pin and no reader entry.
/// - Runtime-agnostic (only `std::task::Waker`); the feature is named for the
///   runtime it is meant for.
/// - Wake-ups go through the helper thread: one more thread hop than a
///   blocking wait (see BENCHMARKS.md for the latency).
/// - Linux >= 5.16 (`futex_waitv`); on an older kernel every future is
///   woken each 100 ms slice instead (it then checks and sleeps again).
/// - The kernel waits on at most 128 words at once: beyond 127 objects
///   waited on at the same time, the rest are checked every millisecond.
#[must_use = "futures do nothing unless awaited"]
pub struct Changed {
    watcher: Arc<Watcher>,
    than: Generation,
    /// How long a dead writer is waited for.
    grace: Duration,
    /// Kept in the future, not the registration: the helper drops a
    /// registration when it wakes it.
    dead_writer: DeadWriter,
    /// Our registration with the helper, while pending.
    key: Option<u64>,
}

impl std::fmt::Debug for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changed").field("than", &self.than).field("registered", &self.key.is_some()).finish()
    }
}

impl Future for Changed {
    type Output = Result<Generation, WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let helper = match helper() {
            Ok(h) => h,
            Err(errno) => {
                let name = this.watcher.name().to_string();
                return Poll::Ready(Err(WaitError::Os { name, op: "starting the wait helper thread", errno }));
            }
        };
        helper.poll(this, cx.waker())
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let (Some(key), Some(Ok(helper))) = (self.key, HELPER.get()) {
            helper.deregister(key);
        }
    }
}

/// The process's helper thread and its registrations.
struct Helper {
    registrations: Mutex<Registrations>,
    /// Bumped (and woken) when a registration is added, so the helper
    /// rebuilds its list of words.
    changed: AtomicU32,
}

#[derive(Default)]
struct Registrations {
    list: Vec<Registration>,
    next_key: u64,
}

/// A pending future: wake `waker` when `notify` moves off `seen`, the name
/// is replaced, or the writer is found dead (`dead_since` is `None`), has been
/// dead for `grace`, or lives again.
struct Registration {
    key: u64,
    watcher: Arc<Watcher>,
    seen: u32,
    /// The future's copy of when it found the writer dead.
    dead_since: Option<Instant>,
    grace: Duration,
    waker: Waker,
}

impl Registration {
    /// Whether a probe round wakes this registration.
    fn fires_on_probe(&self, probe: Probe, now: Instant) -> bool {
        match (probe, self.dead_since) {
            (Probe::Replaced, _) => true,
            (Probe::Alive, dead_since) => dead_since.is_some(),
            (Probe::Dead, None) => true,
            (Probe::Dead, Some(since)) => now.saturating_duration_since(since) >= self.grace,
        }
    }
}

/// What a probe round found of an object.
#[derive(Clone, Copy)]
enum Probe {
    Alive,
    Dead,
    /// The name refers to another object (or the check failed).
    Replaced,
}

impl Probe {
    fn of(watcher: &Watcher) -> Probe {
        if watcher.replaced().unwrap_or(true) {
            Probe::Replaced
        } else if watcher.writer_alive().unwrap_or(false) {
            Probe::Alive
        } else {
            Probe::Dead
        }
    }
}

static HELPER: OnceLock<Result<&'static Helper, Errno>> = OnceLock::new();

/// The helper, started on first use; it lives as long as the process.
fn helper() -> Result<&'static Helper, Errno> {
    *HELPER.get_or_init(|| {
        let helper: &'static Helper = Box::leak(Box::new(Helper {
            registrations: Mutex::new(Registrations::default()),
            changed: AtomicU32::new(0),
        }));
        std::thread::Builder::new()
            .name("shmstate-wait".into())
            .spawn(move || helper.run())
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::AGAIN))?;
        Ok(helper)
    })
}

/// Removes a registration's count in its object's `waiters` (and its mark in
/// the watcher's entry).
fn uncount(watcher: &Watcher) {
    if let Some(c) = watcher.wait_count() {
        // SYNC(wake): SeqCst (`WaitCount::uncount`); pairs with the SeqCst
        // load of `waiters` in `slots::announce`: we no longer need its
        // wake-ups.
        c.uncount();
    }
}

impl Helper {
    fn poll(&self, changed: &mut Changed, waker: &Waker) -> Poll<Result<Generation, WaitError>> {
        let Changed { watcher, than, grace, dead_writer, key } = changed;
        let (than, grace) = (*than, *grace);
        let mut regs = self.registrations.lock();
        let pos = key.and_then(|k| regs.list.iter().position(|r| r.key == k));
        if pos.is_none() {
            // SYNC(wake): count ourselves (SeqCst, `WaitCount::count`, marked
            // in the watcher's entry) before reading `notify`; pairs with
            // `slots::announce` (store-buffering: either the writer sees
            // the count and wakes the helper, or we see its `notify` bump).
            if let Some(c) = watcher.wait_count() {
                c.count();
            }
        }
        // SYNC(wake): read `notify` before the generation, so a publish after
        // this load makes the helper's wait return at once.
        let seen = watcher.notify().load(SeqCst);
        let outcome = {
            let now = watcher.generation();
            if now > than {
                Some(Ok(now))
            } else {
                match watcher.writer_alive() {
                    // As the blocking wait: the name is checked from the
                    // second poll on, or when the writer is dead.
                    Ok(alive) => watcher.check_writer(dead_writer, than, alive, key.is_some(), grace),
                    Err(errno) => {
                        Some(Err(WaitError::Os { name: watcher.name().into(), op: "probing the writer lock", errno }))
                    }
                }
            }
        };
        let dead_since = dead_writer.dead_since();
        if let Some(result) = outcome {
            let removed = match pos {
                Some(i) => {
                    let r = regs.list.swap_remove(i);
                    uncount(&r.watcher);
                    Some(r)
                }
                None => {
                    uncount(watcher);
                    None
                }
            };
            // Wakers are dropped after the lock: dropping the last one may
            // drop a task holding another `Changed`, whose `Drop` locks again.
            drop(regs);
            drop(removed);
            *key = None;
            return Poll::Ready(result);
        }
        match pos {
            Some(i) => {
                let r = &mut regs.list[i];
                r.seen = seen;
                r.dead_since = dead_since;
                if !r.waker.will_wake(waker) {
                    let old = std::mem::replace(&mut r.waker, waker.clone());
                    drop(regs);
                    drop(old);
                }
            }
            None => {
                let k = regs.next_key;
                regs.next_key += 1;
                regs.list.push(Registration {
                    key: k,
                    watcher: watcher.clone(),
                    seen,
                    dead_since,
                    grace,
                    waker: waker.clone(),
                });
                *key = Some(k);
                drop(regs);
                // SYNC(helper): SeqCst bump after the push (under the lock);
                // pairs with the helper's load of `changed` before it scans:
                // it either sees our registration or its wait returns at once.
                self.changed.fetch_add(1, SeqCst);
                os::futex_wake_private(&self.changed);
            }
        }
        Poll::Pending
    }

    fn deregister(&self, key: u64) {
        let mut regs = self.registrations.lock();
        let removed = regs.list.iter().position(|r| r.key == key).map(|i| regs.list.swap_remove(i));
        if let Some(r) = &removed {
            uncount(&r.watcher);
        }
        // The waker is dropped after the lock (see `poll`).
        drop(regs);
        drop(removed);
    }

    /// The helper thread: wake the futures whose object changed, then sleep on
    /// every watched `notify` word and our own `changed` word.
    fn run(&self) {
        let mut watched: Vec<(Arc<Watcher>, u32)> = Vec::new();
        let mut to_wake: Vec<Waker> = Vec::new();
        // What the last sleep waited on: the writer of each object woke one
        // waiter, maybe this thread, so we pass on the wake-ups of those
        // that moved.
        let mut slept_on: Vec<(Arc<Watcher>, u32)> = Vec::new();
        let mut last_probe = Instant::now();
        loop {
            // SYNC(helper): pairs with the bump in `poll`: read before the scan.
            let own = self.changed.load(SeqCst);
            let probe = last_probe.elapsed() >= WAIT_SLICE;
            if probe {
                last_probe = Instant::now();
            }
            std::mem::swap(&mut watched, &mut slept_on);
            watched.clear();
            {
                let mut regs = self.registrations.lock();
                let mut probed: Vec<(*const Watcher, Probe)> = Vec::new();
                let now = Instant::now();
                let mut i = 0;
                while i < regs.list.len() {
                    let r = &regs.list[i];
                    // SYNC(wake): pairs with the SeqCst bump in `slots::announce`.
                    let mut fire = r.watcher.notify().load(SeqCst) != r.seen;
                    if !fire && probe {
                        // One probe per object and round.
                        let p = Arc::as_ptr(&r.watcher);
                        let found = match probed.iter().find(|(q, _)| *q == p) {
                            Some(&(_, found)) => found,
                            None => {
                                let found = Probe::of(&r.watcher);
                                probed.push((p, found));
                                found
                            }
                        };
                        fire = r.fires_on_probe(found, now);
                    }
                    if fire {
                        let r = regs.list.swap_remove(i);
                        uncount(&r.watcher);
                        to_wake.push(r.waker);
                    } else {
                        if !watched.iter().any(|(w, _)| Arc::ptr_eq(w, &r.watcher)) {
                            watched.push((r.watcher.clone(), r.seen));
                        }
                        i += 1;
                    }
                }
            }
            // After the scan's `uncount`s, as a blocking waiter passes on
            // after its own.
            for (watcher, seen) in slept_on.drain(..) {
                crate::read::watch::pass_on_wake(watcher.notify(), seen, watcher.waiters());
            }
            // Wake outside the lock: a waker may run the future's code.
            for w in to_wake.drain(..) {
                w.wake();
            }
            let mut words = vec![WaitWord { word: &self.changed, expected: own, private: true }];
            words.extend(watched.iter().take(MAX_OBJECTS_PER_WAIT).map(|(w, seen)| WaitWord {
                word: w.notify(),
                expected: *seen,
                private: false,
            }));
            let timeout = if watched.is_empty() {
                None
            } else if watched.len() > MAX_OBJECTS_PER_WAIT {
                Some(Duration::from_millis(1))
            } else {
                Some(WAIT_SLICE.saturating_sub(last_probe.elapsed()))
            };
            if !os::futex_waitv(&words, timeout) {
                // No futex_waitv (kernel < 5.16): sleep out the slice.
                std::thread::sleep(timeout.unwrap_or(WAIT_SLICE));
                for r in self.registrations.lock().list.drain(..) {
                    uncount(&r.watcher);
                    to_wake.push(r.waker);
                }
            }
        }
    }
}
