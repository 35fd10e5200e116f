//! One reader handle for many threads: [`SharedReader`] (its docs say how
//! it works, what it guarantees and its limits).

#![allow(unsafe_code)]

use std::cell::{Cell, UnsafeCell};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

mod threads;

use threads::{free_lanes, lanes_in_use, Erased, Lane, Registered, Registry, ThreadLanes, ENTRIES, LAST, NEXT_ID};

use crate::error::{OpenError, ReadError, WaitError};
use crate::read::rewatch::{Rewatch, Watched};
use crate::read::snapshot::Snapshot;
use crate::read::stats::{ReaderStats, ThreadCounts};
use crate::read::watch::Watcher;
use crate::{Generation, Reader, ReaderOptions, Shared};

/// A reader handle for objects of type `T` that many threads share: it is
/// `Sync`, so a thread pool can share it (`Arc<SharedReader<T>>`, or a
/// `static`) and call [`load`](SharedReader::load) through `&self`.
///
/// ## How
/// Each thread that reads gets its own [`Reader`] (its own reader-table entry
/// and pin), claimed on its first `load` and found again through a thread-local
/// keyed by the handle's unique id. An unchanged read is then a thread-local
/// lookup, one atomic load of the publish word, and a thread-local counter
/// increment: threads never write a cache line another thread reads.
///
/// A thread's readers are closed (their entries released) when the thread
/// exits or when the handle is dropped, whichever comes first, so the handle
/// holds entries only for threads that actually read (plus, until the first
/// thread reads, the one reader `open` made to check the object).
///
/// With the `tokio` feature, `changed(generation)` is a future of the next
/// generation (the `Changed` type documents the async waits).
///
/// ```no_run
/// # #[shmstate::shared] struct Config { port: u16 }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let shared = std::sync::Arc::new(shmstate::SharedReader::<Config>::open("myapp.config")?);
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let shared = shared.clone();
///         std::thread::spawn(move || shared.load().map(|snap| snap.port.to_native()))
///     })
///     .collect();
/// for w in workers {
///     let _port = w.join().unwrap()?;
/// }
/// # Ok(()) }
/// ```
///
/// ## Guarantees and limits
/// - A [`SharedSnapshot`] keeps its thread's pin: the writer does not touch its
///   bytes while it lives. It is neither `Send` nor `Sync`, since the pin
///   belongs to the thread's reader.
/// - `load` always returns the latest generation. While a guard holds the
///   thread's pin and a newer generation is out, `load` pins the new one with a
///   second reader of the same thread, so a thread uses one entry plus one per
///   generation it holds guards on at once (usually one, two while swapping),
///   and keeps at most one idle spare.
/// - [`wait_newer`](SharedReader::wait_newer) pins nothing, so it may be called
///   while guards live, from any thread. With table pins the handle claims
///   one more reader entry at its first wait (blocking or async), where its
///   waits are marked so that the writer can take back the waiter count of a
///   process killed while it waits (docs/PROTOCOL.md, "Waiters that die").
/// - Each thread's reader opens the object by name when the thread first
///   reads: if the object is removed and created anew meanwhile, that thread
///   reads the new one (or gets `load` errors if its type differs).
/// - With [`ReaderOptions::follow`](crate::ReaderOptions::follow), every
///   thread follows as a [`Reader`] does: when the writer moves the layout
///   (a lane retired into the plain name, docs/DEPLOYING.md "Lanes"), each
///   thread's next `load` reads the new home, however long it has only
///   called `load`; waits and `changed()` follow too. A thread that never
///   reads again keeps its mapping of the old object (its memory, not a
///   reader entry anyone counts) until it exits or the handle is dropped;
///   `shmstate inspect` lists such processes among the removed objects'
///   users ([`removed_users`](crate::removed_users)).
/// - More reading threads than the object has reader entries: `load` fails
///   with [`ReadError::Open`] (`ReaderTableFull`) on the extra threads.
/// - A guard leaked with `mem::forget` keeps its pin (and entry) until the
///   handle is dropped.
/// - A thread's first `load` opens its reader (an `open`, tens of µs); threads
///   that come and go (e.g. tokio's blocking pool) pay it each time.
/// - In async code, a guard cannot be held across an `.await` of a task that
///   must be `Send` (the guard is not); load again after the `.await`.
pub struct SharedReader<T: Shared> {
    /// `registry.id`, kept here so the fast path needs no extra load.
    id: u64,
    /// Owns every thread's readers; the thread-locals point into it.
    registry: Arc<Registry>,
    /// Waits and generation checks, from any thread, without pinning; they
    /// follow the name as the readers do (`rewatch.rs`).
    watched: Arc<Watched<ReaderOptions<T>>>,
    name: String,
    options: ReaderOptions<T>,
    /// The reader opened (and type-checked) by `open`, for the first thread.
    spare: Mutex<Option<Reader<T>>>,
    /// Blocking waits begun and those that returned a generation, from any
    /// thread (an atomic add per wait, next to its syscalls).
    waits: AtomicU64,
    wakeups: AtomicU64,
    _type: PhantomData<fn() -> T>,
}

impl<T: Shared> std::fmt::Debug for SharedReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReader").field("name", &self.name).field("threads", &self.threads()).finish()
    }
}

/// A validated, pinned snapshot from [`SharedReader::load`]: derefs to the
/// archived value in shared memory. It keeps its thread's pin, so it stays on
/// the thread that loaded it (neither `Send` nor `Sync`).
#[must_use]
pub struct SharedSnapshot<'a, T: Shared> {
    snapshot: Snapshot<'a, T>,
    lane: &'a Lane<T>,
    /// From `load_releasing`: unpin the lane if this is its last guard.
    release_when_last: bool,
    /// The pin belongs to this thread's reader.
    _this_thread: PhantomData<*const ()>,
}

/// A guard is a [`Snapshot`] (generation, `to_value`, and through it the
/// archived value) that also keeps its thread's pin.
impl<'a, T: Shared> Deref for SharedSnapshot<'a, T> {
    type Target = Snapshot<'a, T>;
    #[inline]
    fn deref(&self) -> &Snapshot<'a, T> {
        &self.snapshot
    }
}

impl<T: Shared> SharedSnapshot<'_, T> {
    /// The incarnation of the object this snapshot was read from.
    pub(crate) fn incarnation(&self) -> u64 {
        // SAFETY: this thread's lane (guards are not `Send`); `load_slow`
        // takes a `&mut` only to readers of lanes without guards, and this
        // guard counts on its lane.
        unsafe { &*self.lane.reader.get() }.incarnation()
    }
}

impl<T: Shared> Drop for SharedSnapshot<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // The guard never left the thread that owns the lane (not `Send`).
        let guards = self.lane.guards.get() - 1;
        self.lane.guards.set(guards);
        if guards == 0 && self.release_when_last {
            // SAFETY: this thread's lane (guards are not `Send`), and no other
            // guard refers to its pin; `load_slow` holds its `&mut` to a lane's
            // reader only while it runs, and drops no guard meanwhile.
            unsafe { &mut *self.lane.reader.get() }.release();
        }
    }
}

impl<T: Shared> std::fmt::Debug for SharedSnapshot<'_, T>
where
    T::Archived: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot.fmt(f)
    }
}

impl<T: Shared> ReaderOptions<T> {
    /// Opens the object `name` as a [`SharedReader`]: one handle for many
    /// threads.
    pub fn open_shared(self, name: &str) -> Result<SharedReader<T>, OpenError> {
        SharedReader::open_with(name, self)
    }
}

impl<T: Shared> SharedReader<T> {
    /// Opens the object `name` for reading `T` from many threads, with default
    /// options. Checks the object as [`Reader::open`] does.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, ReaderOptions::default())
    }

    pub(crate) fn open_with(name: &str, options: ReaderOptions<T>) -> Result<Self, OpenError> {
        let first = Reader::open_with(name, &options)?;
        let watcher = Watcher::open(first.object_name(), options.get_init_timeout())?;
        let watched = Arc::new(Watched::new(name, options.clone(), watcher));
        // SYNC(id): Relaxed: only uniqueness matters.
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(SharedReader {
            id,
            registry: Arc::new(Registry { id, threads: Mutex::new(Vec::new()), retired: Mutex::default() }),
            watched,
            name: name.to_string(),
            options,
            spare: Mutex::new(Some(first)),
            waits: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            _type: PhantomData,
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the loads and waits of every thread did through this handle since
    /// it opened (threads that exited included), as [`Reader::stats`].
    ///
    /// Each thread counts its own loads where only it writes (an unchanged
    /// load adds one increment of a thread-local field, no atomic
    /// read-modify-write); this call adds them up under the handle's lock,
    /// so it costs a lock and a few loads per reading thread: call it when
    /// a metrics scrape asks, not per load. A thread's count may lag its
    /// last few loads (no ordering with them). Async waits (`changed`) are
    /// not counted in `waits`.
    ///
    /// ```
    /// # #[shmstate::shared] #[derive(Debug, Clone)] struct Flags { on: bool }
    /// # let name = format!("doc-srstats-{}", std::process::id());
    /// let mut w = shmstate::Writer::<Flags>::create(&name)?;
    /// w.publish(&Flags { on: true })?;
    /// let shared = shmstate::SharedReader::<Flags>::open(&name)?;
    /// std::thread::scope(|s| {
    ///     for _ in 0..2 {
    ///         s.spawn(|| (0..5).for_each(|_| drop(shared.load().unwrap())));
    ///     }
    /// });
    /// let stats = shared.stats();
    /// // Each thread pinned and validated the generation once.
    /// assert_eq!((stats.slow_reads, stats.validations), (2, 2));
    /// # drop(w); shmstate::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> ReaderStats {
        let mut total = self.registry.counts();
        // SYNC(stats): Relaxed: statistics, paired with nothing.
        total.waits = self.waits.load(Relaxed);
        total.wakeups = self.wakeups.load(Relaxed);
        total
    }

    /// Threads that currently hold readers of this handle.
    pub fn threads(&self) -> usize {
        self.registry.threads.lock().len()
    }

    /// The latest published generation (`Generation::NONE` before the first
    /// publish), without pinning anything.
    pub fn generation(&self) -> Generation {
        self.watcher().generation()
    }

    /// Whether a live writer holds the object (an OFD-lock probe: one syscall).
    pub fn writer_alive(&self) -> bool {
        self.watcher().writer_alive().unwrap_or(false)
    }

    /// The watcher of the object the name resolves to, found again first if
    /// the one watched is moved (and following).
    fn watcher(&self) -> Arc<Watcher> {
        self.watcher_numbered().0
    }

    /// [`watcher`](Self::watcher), with the numbering it belongs to
    /// (`Watched::current_numbered`).
    pub(crate) fn watcher_numbered(&self) -> (Arc<Watcher>, u64) {
        self.watched.watcher_numbered()
    }

    /// How many times the waits followed to an object numbered anew
    /// (`Watched::current_numbered`), without locking: one load.
    pub(crate) fn numbering(&self) -> u64 {
        self.watched.numbering()
    }

    /// Makes each of this thread's readers look at the name on its next read,
    /// whatever the rate limit says: a reader's fast path checks nothing, so
    /// one that read an object since replaced (its writer gone) would serve
    /// that object's last snapshot for ever, while the waits follow to the
    /// new one (the `Receiver` calls it when the two disagree).
    pub(crate) fn check_name_on_this_thread(&self) {
        let Ok(lanes) = self.thread_lanes() else { return };
        if lanes.busy.get() {
            return;
        }
        // SAFETY: this thread's lanes, and no `&mut` to the list lives
        // (`busy` is false); shared references only, as the fast path takes.
        for &lane in unsafe { &*lanes.lanes.get() } {
            // SAFETY: a live lane of this thread whose reader no `&mut` refers
            // to (`busy` is false); the call only sets a `Cell`.
            unsafe { &*(*lane).reader.get() }.check_name_next_read();
        }
    }

    /// The latest snapshot, validated with bytecheck on this thread's first
    /// read of each generation. Reading an unchanged generation again is a
    /// thread-local lookup and one atomic load.
    #[inline(always)]
    pub fn load(&self) -> Result<SharedSnapshot<'_, T>, ReadError> {
        let lanes = self.thread_lanes()?;
        if lanes.busy.get() {
            return Err(ReadError::Corrupt {
                name: self.name.clone(),
                what: "SharedReader::load re-entered from inside a load".into(),
            });
        }
        let lane = lanes.latest.get();
        // The one load the fast path adds: has anyone followed the name to a
        // new object since this thread's readers last looked?
        let renumbered = self.watched.numbering();
        if !lane.is_null() && lanes.renumbered.get() == renumbered {
            // SAFETY: `latest` is one of this thread's live lanes (freed only
            // with the thread's entry or the registry, both after `&self` ends).
            let lane = unsafe { &*lane };
            // SAFETY: only this thread touches the lane's reader, and no `&mut`
            // to it lives (`busy` is false).
            let reader = unsafe { &*lane.reader.get() };
            if let Some((root, generation)) = reader.current_view() {
                return Ok(Self::guard(lane, root, generation));
            }
        }
        if lanes.renumbered.get() != renumbered {
            lanes.renumbered.set(renumbered);
            self.check_name_on_this_thread();
        }
        self.load_slow(lanes)
    }

    /// Like [`load`](Self::load), but when this guard is the last one of its
    /// thread to drop, the thread's pin is released
    /// ([`Reader::read_releasing`]): a thread that goes idle then holds no
    /// slot. Its next load pins again.
    pub fn load_releasing(&self) -> Result<SharedSnapshot<'_, T>, ReadError> {
        let mut guard = self.load()?;
        guard.release_when_last = true;
        Ok(guard)
    }

    #[inline(always)]
    fn guard<'a>(lane: &'a Lane<T>, root: *const T::Archived, generation: Generation) -> SharedSnapshot<'a, T> {
        lane.guards.set(lane.guards.get() + 1);
        // SAFETY: `root` is the lane reader's validated view of its pinned slot.
        // The pin does not move while `guards > 0` (`load_slow` repins only
        // lanes without guards), and the lane with its mapping lives as long as
        // the handle, which `'a` borrows.
        let archived = unsafe { &*root };
        SharedSnapshot {
            snapshot: Snapshot::new(archived, generation),
            lane,
            release_when_last: false,
            _this_thread: PhantomData,
        }
    }

    /// This thread's lanes of this handle, created on first use.
    #[inline(always)]
    fn thread_lanes(&self) -> Result<&ThreadLanes<T>, ReadError> {
        let (id, lanes) = LAST.get();
        if id == self.id {
            // SAFETY: ids are unique, so `lanes` is this handle's
            // `ThreadLanes<T>` of this thread, alive while the handle is.
            return Ok(unsafe { &*(lanes as *const ThreadLanes<T>) });
        }
        self.thread_lanes_slow()
    }

    #[cold]
    #[inline(never)]
    fn thread_lanes_slow(&self) -> Result<&ThreadLanes<T>, ReadError> {
        let id = self.registry.id;
        let lanes = ENTRIES
            .try_with(|entries| {
                let mut entries = entries.borrow_mut();
                if let Some(r) = entries.0.iter().find(|r| r.id == id) {
                    return r.lanes;
                }
                // Forget entries of dropped handles (their lanes are freed).
                entries.0.retain(|r| r.registry.strong_count() > 0);
                let lanes = Box::into_raw(Box::new(ThreadLanes::<T> {
                    lanes: UnsafeCell::new(Vec::new()),
                    latest: Cell::new(std::ptr::null()),
                    busy: Cell::new(false),
                    renumbered: Cell::new(self.watched.numbering()),
                    counts: ThreadCounts::default(),
                }));
                // SAFETY: just boxed; the registry frees it after dropping
                // the entry that points at its counts.
                let counts = unsafe { std::ptr::addr_of!((*lanes).counts) };
                let lanes = lanes as *mut ();
                let erased = Erased { lanes, in_use: lanes_in_use::<T>, free: free_lanes::<T>, counts };
                self.registry.threads.lock().push(erased);
                entries.0.push(Registered { id, lanes, registry: Arc::downgrade(&self.registry) });
                lanes
            })
            .map_err(|_| ReadError::ThreadExiting { name: self.name.clone() })?;
        LAST.set((id, lanes));
        // SAFETY: this thread's `ThreadLanes<T>` of this handle, owned by the
        // registry, which lives as long as `self`.
        Ok(unsafe { &*(lanes as *const ThreadLanes<T>) })
    }

    #[cold]
    #[inline(never)]
    fn load_slow<'a>(&'a self, lanes: &'a ThreadLanes<T>) -> Result<SharedSnapshot<'a, T>, ReadError> {
        struct Busy<'b>(&'b Cell<bool>);
        impl Drop for Busy<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        lanes.busy.set(true);
        let _busy = Busy(&lanes.busy);
        // SAFETY: only this thread touches its lanes, and `busy` keeps any
        // other reference to the list from being made while this one lives.
        let list = unsafe { &mut *lanes.lanes.get() };
        let idle = |l: *mut Lane<T>| {
            // SAFETY: every pointer in `list` (and `latest`) is a live
            // `Box::into_raw` lane of this thread.
            unsafe { &*l }.guards.get() == 0
        };
        // Prefer the lane with the newest pin, then any lane without guards.
        let latest = lanes.latest.get() as *mut Lane<T>;
        let pick =
            if !latest.is_null() && idle(latest) { Some(latest) } else { list.iter().copied().find(|&l| idle(l)) };
        let lane_ptr = match pick {
            Some(l) => l,
            None => {
                let reader =
                    self.claim_reader().map_err(ReadError::Open).inspect_err(|_| lanes.counts.errors.add(1))?;
                let lane = Box::into_raw(Box::new(Lane { reader: UnsafeCell::new(reader), guards: Cell::new(0) }));
                list.push(lane);
                lane
            }
        };
        // SAFETY: a live lane of this thread.
        let lane = unsafe { &*lane_ptr };
        // SAFETY: this thread's lane, without guards (none refers to its pin,
        // which `read` may move), and no other reference to its reader lives.
        let reader = unsafe { &mut *lane.reader.get() };
        let before = reader.incarnation();
        let counted = reader.stats();
        let read = reader.read().map(|snap| (&*snap as *const T::Archived, snap.generation()));
        lanes.counts.add(&reader.stats().since(&counted));
        let (root, generation) = read?;
        if reader.incarnation() != before {
            // This thread's reader followed the name on its own: have the
            // waits follow too, which moves the count every thread's fast
            // path looks at (a replacement), so the others look at the name.
            let watched = self.watched.current();
            if watched.name() != reader.object_name() || watched.incarnation() != reader.incarnation() {
                let _ = self.watched.rewatch(&watched);
            }
        }
        lanes.latest.set(lane_ptr);
        // Unpin idle lanes (the writer may reuse their slots); keep one spare.
        let mut spare_kept = false;
        list.retain(|&l| {
            if l == lane_ptr || !idle(l) {
                return true;
            }
            if !spare_kept {
                spare_kept = true;
                // SAFETY: an idle lane of this thread: nothing refers to its pin.
                unsafe { &mut *(*l).reader.get() }.release();
                return true;
            }
            // SAFETY: an idle lane of this thread, removed from the list: freed once.
            drop(unsafe { Box::from_raw(l) });
            false
        });
        Ok(Self::guard(lane, root, generation))
    }

    /// A reader for a new lane: the one `open` made, or a new one.
    fn claim_reader(&self) -> Result<Reader<T>, OpenError> {
        match self.spare.lock().take() {
            Some(r) => Ok(r),
            None => Reader::open_with(&self.name, &self.options),
        }
    }

    /// Blocks until a generation newer than `than` is published, the writer
    /// has been dead for the grace period
    /// ([`ReaderOptions::writer_grace`](crate::ReaderOptions::writer_grace)),
    /// or `timeout` passes (shared futex; no polling). Pins nothing: guards
    /// from [`load`](Self::load) may live meanwhile.
    ///
    /// A name found to refer to another object is `Replaced`; with
    /// [`ReaderOptions::follow`](crate::ReaderOptions::follow) the wait goes
    /// on there as [`Reader::wait_newer`]'s does: a moved layout (a lane
    /// retired into the plain name) keeps its generation numbers, a replaced
    /// object returns its first generation.
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        let numbering = self.watched.current_numbered().1;
        self.wait_newer_in(than, numbering, timeout, None)
    }

    /// [`wait_newer`](Self::wait_newer) for a `than` of the given numbering
    /// (`watcher_numbered`): on an object numbered anew since, anything
    /// published is newer. A dead writer is waited for `grace` (`None`: the
    /// options' grace period).
    pub(crate) fn wait_newer_in(
        &self,
        than: Generation,
        numbering: u64,
        timeout: Duration,
        grace: Option<Duration>,
    ) -> Result<Generation, WaitError> {
        let grace = grace.unwrap_or(self.options.get_writer_grace());
        // SYNC(stats): Relaxed: statistics, paired with nothing.
        self.waits.fetch_add(1, Relaxed);
        let woke = self.watched.wait_newer_in(than, numbering, timeout, grace);
        if woke.is_ok() {
            self.wakeups.fetch_add(1, Relaxed);
        }
        woke
    }

    /// What the async waits watch, and how they follow (`None` without
    /// [`ReaderOptions::follow`](crate::ReaderOptions::follow)).
    #[cfg(feature = "tokio")]
    pub(crate) fn watched(&self) -> (Arc<Watcher>, Option<Arc<dyn Rewatch>>) {
        let follow = self.options.follow.then(|| Arc::clone(&self.watched) as Arc<dyn Rewatch>);
        (self.watcher(), follow)
    }

    /// How long the async waits wait for a dead writer.
    #[cfg(feature = "tokio")]
    pub(crate) fn writer_grace(&self) -> Duration {
        self.options.get_writer_grace()
    }
}
