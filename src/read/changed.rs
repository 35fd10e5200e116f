//! Async waits for a newer generation (feature `tokio`): [`Changed`] (its
//! docs say how it works, what it guarantees and its limits).

// The process's helper is published through an `AtomicPtr` (see `helper`).
#![allow(unsafe_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Errno, WaitError};
use crate::os::{self, WaitWord};
use crate::protocol::sync::AtomicU32;
use crate::protocol::sync::Ordering::SeqCst;
use crate::read::rewatch::Rewatch;
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
    /// whose writer is dead [`WaitError::Removed`]. With
    /// [`ReaderOptions::follow`](crate::ReaderOptions::follow) it follows
    /// instead, as `wait_newer` does: a moved layout (a lane retired into the
    /// plain name) keeps its numbers, a replaced object resolves the future
    /// with its first generation; while the name refers to no object yet, it
    /// looks again every 100 ms. Pins nothing; the future is `'static` and
    /// `Send`, and cancellation-safe (drop it at any time). No timeout: use
    /// your runtime's (e.g. `tokio::time::timeout`).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn changed(&self, than: Generation) -> Changed {
        let (watcher, follow) = self.watched();
        Changed::new(watcher, than, self.writer_grace(), follow)
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
/// - After `fork()` the child starts a helper of its own on its first wait
///   (the parent's thread does not exist there): futures on handles the child
///   opens work as in any process. A `Changed` made before the fork may be
///   dropped in the child; that leaves the parent's registration (and its
///   waiter count) alone. Like the handle it came from, do not poll it there.
#[must_use = "futures do nothing unless awaited"]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub struct Changed {
    watcher: Arc<Watcher>,
    than: Generation,
    /// How long a dead writer is waited for.
    grace: Duration,
    /// Kept in the future, not the registration: the helper drops a
    /// registration when it wakes it.
    dead_writer: DeadWriter,
    /// Our registration, while pending: the helper it is with (that of the
    /// process that polled us; a forked child has another) and its key.
    key: Option<(&'static Helper, u64)>,
    /// With `follow`: finds the object the name refers to now.
    follow: Option<Arc<dyn Rewatch>>,
    /// Following, and nothing under the name succeeds the watched object
    /// yet: each wake-up (a probe round at the latest) looks again.
    awaiting_successor: bool,
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
        let helper = helper();
        loop {
            if this.awaiting_successor {
                let next = this.follow.as_ref().and_then(|f| f.rewatch(&this.watcher));
                match next {
                    Some(next) => this.switch_to(next),
                    None => return helper.park(this, cx.waker()),
                }
            }
            match helper.poll(this, cx.waker()) {
                // The moved object's last publish is no generation of the
                // layout's new home: never returned.
                Poll::Ready(Ok(_)) if this.watcher.moved() && this.follow.is_none() => {
                    return Poll::Ready(Err(WaitError::Replaced { name: this.watcher.name().into() }))
                }
                Poll::Ready(Ok(_)) if this.watcher.moved() => this.awaiting_successor = true,
                Poll::Ready(Err(WaitError::Replaced { .. })) if this.follow.is_some() => {
                    // A new object: its generations start again from 1.
                    this.than = Generation::NONE;
                    this.awaiting_successor = true;
                }
                other => return other,
            }
        }
    }
}

impl Changed {
    /// The future of a generation newer than `than` in `watcher`'s object,
    /// following with `follow`.
    pub(crate) fn new(
        watcher: Arc<Watcher>,
        than: Generation,
        grace: Duration,
        follow: Option<Arc<dyn Rewatch>>,
    ) -> Self {
        Changed {
            watcher,
            than,
            grace,
            dead_writer: DeadWriter::default(),
            key: None,
            follow,
            awaiting_successor: false,
        }
    }

    /// Waits `grace` for a dead writer instead (before the first poll).
    pub(crate) fn with_grace(mut self, grace: Duration) -> Changed {
        self.grace = grace;
        self
    }

    /// Waits on `next` from now on.
    fn switch_to(&mut self, next: Arc<Watcher>) {
        if let Some((helper, key)) = self.key.take() {
            if helper.pid == std::process::id() {
                helper.deregister(key);
            }
        }
        self.watcher = next;
        self.dead_writer = DeadWriter::default();
        self.awaiting_successor = false;
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        // Only with our own process's helper: in a forked child the parent's
        // helper has no thread, its lock may have been held at the fork, and
        // the registration (with its waiter count) is the parent's to remove.
        if let Some((helper, key)) = self.key {
            if helper.pid == std::process::id() {
                helper.deregister(key);
            }
        }
    }
}

/// A process's helper thread and its registrations.
struct Helper {
    /// The process whose helper this is (a forked child inherits the
    /// parent's, without its thread).
    pid: u32,
    registrations: Mutex<Registrations>,
    /// Bumped (and woken) when a registration is added, so the helper
    /// rebuilds its list of words.
    changed: AtomicU32,
}

#[derive(Default)]
struct Registrations {
    list: Vec<Registration>,
    next_key: u64,
    /// The helper thread could not be started: every future gets this error.
    failed: Option<Errno>,
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

/// The helper of this process, or null before the first wait. Every pointer
/// stored comes from `Box::into_raw` and, once stored, is never freed. After
/// `fork()` the child's copy points at the parent's helper (another `pid`),
/// which the child leaves alone (leaked: one per fork, never served).
///
/// Lock-free, not a `OnceLock` or mutex: a child forked while another thread
/// of the parent was starting the helper would find that lock held forever.
static HELPER: AtomicPtr<Helper> = AtomicPtr::new(std::ptr::null_mut());

/// This process's helper, started on first use (and again, once, in each
/// forked child); it lives as long as the process. One `getpid` per call:
/// called once per poll, never on the read path.
fn helper() -> &'static Helper {
    let pid = std::process::id();
    // SYNC(helper-start): Acquire pairs with the AcqRel exchange below, so
    // the helper's fields are seen initialised.
    let mut current = HELPER.load(Ordering::Acquire);
    loop {
        // SAFETY: non-null pointers in `HELPER` come from `Box::into_raw` and
        // are never freed (see `HELPER`), so they are valid for `'static`.
        if let Some(helper) = unsafe { current.as_ref() } {
            if helper.pid == pid {
                return helper;
            }
        }
        // None yet, or the parent's (we are a forked child): start ours.
        let fresh = Box::into_raw(Box::new(Helper {
            pid,
            registrations: Mutex::new(Registrations::default()),
            changed: AtomicU32::new(0),
        }));
        // SYNC(helper-start): Release publishes the fresh helper to the
        // Acquire loads above; Acquire on failure, for the one another thread
        // of this process installed first.
        match HELPER.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                // SAFETY: just stored in `HELPER`, so never freed from now on.
                let helper: &'static Helper = unsafe { &*fresh };
                helper.start();
                return helper;
            }
            Err(installed) => {
                // SAFETY: `fresh` was never published: we still own it.
                drop(unsafe { Box::from_raw(fresh) });
                current = installed;
            }
        }
    }
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
    /// Starts the helper thread (once, by whoever installed this helper).
    /// On failure every future registered meanwhile is woken, and each poll
    /// from now on gets the error.
    fn start(&'static self) {
        let spawned = std::thread::Builder::new().name("shmstate-wait".into()).spawn(move || self.run());
        if let Err(e) = spawned {
            let mut regs = self.registrations.lock();
            regs.failed = Some(Errno::from_io_error(&e).unwrap_or(Errno::AGAIN));
            let woken: Vec<Registration> = regs.list.drain(..).collect();
            for r in &woken {
                uncount(&r.watcher);
            }
            // Wakers are woken (and dropped) after the lock (see `poll`).
            drop(regs);
            for r in woken {
                r.waker.wake();
            }
        }
    }

    fn poll(&'static self, changed: &mut Changed, waker: &Waker) -> Poll<Result<Generation, WaitError>> {
        let Changed { watcher, than, grace, dead_writer, key, .. } = changed;
        let (than, grace) = (*than, *grace);
        let mut regs = self.registrations.lock();
        if let Some(errno) = regs.failed {
            *key = None;
            let name = watcher.name().to_string();
            return Poll::Ready(Err(WaitError::Os { name, op: "starting the wait helper thread", errno }));
        }
        // Polled before: with this helper, or (a future made before a fork,
        // polled in the child) with the parent's, which it is not in this one.
        let polled_before = key.is_some();
        let pos = key
            .filter(|(helper, _)| std::ptr::eq(*helper, self))
            .and_then(|(_, k)| regs.list.iter().position(|r| r.key == k));
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
                    Ok(alive) => watcher.check_writer(dead_writer, than, alive, polled_before, grace),
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
                let registration =
                    Registration { key: 0, watcher: watcher.clone(), seen, dead_since, grace, waker: waker.clone() };
                *key = Some(self.register(regs, registration));
            }
        }
        Poll::Pending
    }

    /// Adds `r` (under a fresh key, which it returns) and tells the helper
    /// thread, which rebuilds its list of words.
    fn register(&'static self, mut regs: MutexGuard<'_, Registrations>, mut r: Registration) -> (&'static Helper, u64) {
        let k = regs.next_key;
        regs.next_key += 1;
        r.key = k;
        regs.list.push(r);
        drop(regs);
        // SYNC(helper): SeqCst bump after the push (under the lock); pairs
        // with the helper's load of `changed` before it scans: it either sees
        // our registration or its wait returns at once.
        self.changed.fetch_add(1, SeqCst);
        os::futex_wake_private(&self.changed);
        (self, k)
    }

    /// Registers `changed` to be woken at the next change of its object or
    /// the next probe round (at most `WAIT_SLICE`), with no outcome checked:
    /// for a future that looks for its object's successor.
    fn park(&'static self, changed: &mut Changed, waker: &Waker) -> Poll<Result<Generation, WaitError>> {
        if let Some((helper, key)) = changed.key.take() {
            if helper.pid == std::process::id() {
                helper.deregister(key);
            }
        }
        let watcher = &changed.watcher;
        let regs = self.registrations.lock();
        if let Some(errno) = regs.failed {
            let name = watcher.name().to_string();
            return Poll::Ready(Err(WaitError::Os { name, op: "starting the wait helper thread", errno }));
        }
        // SYNC(wake): counted (and marked) before `notify` is read, as in
        // `poll`; the helper's `uncount` takes both back when it fires.
        if let Some(c) = watcher.wait_count() {
            c.count();
        }
        let seen = watcher.notify().load(SeqCst);
        // `dead_since: None` with a dead or moved-away writer fires at the
        // next probe round; a replaced name fires there too.
        let registration = Registration {
            key: 0,
            watcher: watcher.clone(),
            seen,
            dead_since: None,
            grace: changed.grace,
            waker: waker.clone(),
        };
        changed.key = Some(self.register(regs, registration));
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
