//! Watching an object for new generations without pinning anything: the
//! blocking wait loop shared by every reader handle, and [`Watcher`], a
//! thread-safe view of an object's header that a [`SharedReader`] (and the
//! async helper thread) waits on from any thread.
//!
//! [`SharedReader`]: crate::SharedReader

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{OpenError, WaitError};
use crate::object::segment::{DataSegment, ReaderTable};
use crate::os::{self, UnderName};
use crate::protocol;
use crate::protocol::layout;
use crate::protocol::sync::AtomicU32;
use crate::protocol::sync::Ordering::{Acquire, Relaxed, SeqCst};
use crate::protocol::waiters::WaitCount;
use crate::Generation;

pub(crate) use crate::protocol::waiters::WAIT_SLICE;

/// A publish wakes one waiter; each waiter that wakes to a change wakes this
/// many more while others wait. The wake-ups spread as a tree (N waiters are
/// up after about log2(N) hops), and no thread pays a wake-up per waiter
/// (docs/PROTOCOL.md, "Wake-ups").
const WAKE_FANOUT: u32 = 2;

/// A waiter that slept on `notify == seen` and woke: if `notify` moved on (a
/// publish), wake the next waiters, as the writer woke only one. `waiters` is
/// the table's count without us (table pins); lock-pin readers count nowhere,
/// so there we always wake.
pub(crate) fn pass_on_wake(notify: &AtomicU32, seen: u32, waiters: Option<&AtomicU32>) {
    // SYNC(wake): SeqCst, as every access to `notify` and `waiters`. A waiter
    // still asleep on `seen` counted itself and then read `seen` from
    // `notify`, so both come before the bump we see here in the single total
    // order, and our load of `waiters` after it counts that waiter.
    if notify.load(SeqCst) != seen && waiters.is_none_or(|w| w.load(SeqCst) > 0) {
        let woken = os::futex_wake(notify, WAKE_FANOUT);
        // SYNC(stats): Relaxed, a statistic.
        PASSED_ON.fetch_add(woken as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waiters this process woke by passing a wake-up on (`pass_on_wake`).
static PASSED_ON: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// For tests: how many waiters this process's waiters have woken by passing
/// a publish's wake-up on.
#[doc(hidden)]
pub fn wakes_passed_on() -> u64 {
    // SYNC(stats): Relaxed, a statistic.
    PASSED_ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// An object's header and waiter count, mapped once, shared between threads.
/// It pins nothing. Table pins: at its first wait it claims a reader entry of
/// its own, where its waits (blocking, and the async helper's registrations)
/// are marked, so that the writer takes them back if the process dies while
/// they wait (`protocol/waiters.rs`).
#[derive(Debug)]
pub(crate) struct Watcher {
    name: String,
    data: DataSegment,
    /// The reader table (table pins), where waiters count themselves; `None`
    /// with lock pins (the writer then always wakes).
    readers: Option<ReaderTable>,
    /// The entry our waits are marked in, claimed at the first wait; `None`
    /// inside if none could be claimed (a full table): the waits are then
    /// counted without a mark, and not taken back if the process dies.
    entry: OnceLock<Option<u32>>,
    /// The process that opened the watcher (see `RawReader`'s `opener`).
    opener: u32,
}

impl Watcher {
    /// The object's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The object's incarnation (docs/PROTOCOL.md "Incarnations").
    pub(crate) fn incarnation(&self) -> u64 {
        // SYNC(init): Relaxed: fixed before the object's magic, which the
        // open checked with Acquire.
        self.data.header().incarnation.load(Relaxed)
    }

    /// Whether the writer publishes this object's layout elsewhere under the
    /// name now (`DataSegment::moved`).
    pub(crate) fn moved(&self) -> bool {
        self.data.moved()
    }

    /// Opens `name`'s data segment and reader table for watching.
    pub(crate) fn open(name: &str, init_timeout: Duration) -> Result<Self, OpenError> {
        let mut attempt = 0;
        loop {
            let (data, geo) = DataSegment::open(name, false, init_timeout)?;
            if geo.pin_mode == layout::pin_mode::LOCKS {
                return Ok(Watcher::new(name, data, None));
            }
            // Count ourselves as a waiter in this data segment's own table
            // (docs/PROTOCOL.md "Incarnations"), as `RawReader::open` pins there.
            match ReaderTable::open_paired(name, geo.incarnation, true) {
                Ok(t) => return Ok(Watcher::new(name, data, Some(t))),
                Err(e) if e.retry() && attempt < 8 => attempt += 1,
                Err(e) => return Err(e.into_open_error(name)),
            }
        }
    }

    /// The futex word the writer bumps after every publish.
    #[cfg(feature = "tokio")]
    pub(crate) fn notify(&self) -> &AtomicU32 {
        &self.data.header().notify
    }

    fn new(name: &str, data: DataSegment, readers: Option<ReaderTable>) -> Self {
        Watcher { name: name.into(), data, readers, entry: OnceLock::new(), opener: os::pid() }
    }

    /// The reader table's waiter count, if the object has a table (for the
    /// async helper, which passes wake-ups on).
    #[cfg(feature = "tokio")]
    pub(crate) fn waiters(&self) -> Option<&AtomicU32> {
        self.readers.as_ref().and_then(|t| t.region().readers_header()).map(|h| &h.waiters)
    }

    /// Where a wait counts itself (table pins): the table's count and our
    /// entry's mark (the entry is claimed on the first call).
    pub(crate) fn wait_count(&self) -> Option<WaitCount<'_>> {
        let t = self.readers.as_ref()?;
        let waiters = &t.region().readers_header()?.waiters;
        let entry = *self.entry.get_or_init(|| crate::read::raw_reader::claim_entry(&self.name, t).ok());
        let mark = entry.and_then(|i| t.region().reader(i)).map(|e| &e.waiting);
        Some(WaitCount { waiters, mark })
    }

    /// The latest published generation.
    pub(crate) fn generation(&self) -> Generation {
        generation_in(&self.data)
    }

    /// Whether a live writer holds the object (one syscall).
    pub(crate) fn writer_alive(&self) -> Result<bool, crate::Errno> {
        self.data.writer_alive()
    }

    /// Blocks until a generation newer than `than`, a writer dead for longer
    /// than `grace`, a replaced object, or `timeout`.
    pub(crate) fn wait_newer(
        &self,
        than: Generation,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Generation, WaitError> {
        wait_for_newer(&self.name, &self.data, self.wait_count(), than, timeout, grace)
    }

    /// [`DeadWriter::check`] on this object.
    #[cfg(feature = "tokio")]
    pub(crate) fn check_writer(
        &self,
        dead_writer: &mut DeadWriter,
        than: Generation,
        alive: bool,
        check_name: bool,
        grace: Duration,
    ) -> Option<Result<Generation, WaitError>> {
        dead_writer.check(&self.name, &self.data, than, alive, check_name, grace)
    }

    /// Whether the name still refers to another object than this one (one
    /// `stat` and one `fstat`).
    #[cfg(feature = "tokio")]
    pub(crate) fn replaced(&self) -> Result<bool, crate::Errno> {
        Ok(self.data.obj.under_name(&crate::object::name::data(&self.name))? == UnderName::Another)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // No wait is in progress (they borrow the watcher), so the entry's
        // mark is 0. Unlocked explicitly, as `RawReader` does: a child forked
        // meanwhile shares the lock until it execs.
        if let (Some(t), Some(Some(i))) = (&self.readers, self.entry.get()) {
            if os::pid() == self.opener {
                let _ = os::unlock(t.obj.fd(), layout::READER_LOCK_BASE + *i as u64, 1);
            }
            if let Some(h) = t.region().readers_header() {
                protocol::release_entry(h, *i);
            }
        }
    }
}

/// The latest generation published in `data`.
fn generation_in(data: &DataSegment) -> Generation {
    // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
    Generation(protocol::generation_of(data.header().current.load(Acquire)))
}

/// What a wait for a generation newer than `than` makes of the writer and the
/// name once nothing newer is published; shared by the blocking loop and the
/// async `Changed`. A writer dead for the grace period ends the wait (a new
/// writer taking over within it resets it), as does a name that refers to
/// another object.
#[derive(Debug, Default)]
pub(crate) struct DeadWriter {
    /// When the writer was first found dead (reset while one lives).
    since: Option<Instant>,
    /// What the name referred to at the last check.
    under_name: Option<UnderName>,
}

impl DeadWriter {
    /// `alive` is the writer probe; `check_name` asks to look at the name
    /// even though the writer lives (it is always looked at when it is dead).
    /// `None`: keep waiting; `Some(end)`: the wait ends with `end` (also an
    /// OS error while checking the name).
    fn check(
        &mut self,
        name: &str,
        data: &DataSegment,
        than: Generation,
        alive: bool,
        check_name: bool,
        grace: Duration,
    ) -> Option<Result<Generation, WaitError>> {
        if check_name || !alive {
            let under_name = match data.obj.under_name(&crate::object::name::data(name)) {
                Ok(under_name) => under_name,
                Err(errno) => return Some(Err(WaitError::Os { name: name.into(), op: "checking the name", errno })),
            };
            self.under_name = Some(under_name);
            // A lane is removed when its layout moves (to the plain name):
            // for its readers that is a replacement.
            let lane_moved = under_name == UnderName::Nothing && crate::object::name::split_lane(name).is_some();
            if under_name == UnderName::Another || lane_moved {
                return Some(Err(WaitError::Replaced { name: name.into() }));
            }
        }
        if alive {
            self.since = None;
            return None;
        }
        if self.since.get_or_insert_with(Instant::now).elapsed() < grace {
            return None;
        }
        // It may have published just before dying.
        let now = generation_in(data);
        Some(match () {
            _ if now > than => Ok(now),
            _ if self.under_name == Some(UnderName::Nothing) => Err(WaitError::Removed { name: name.into() }),
            _ => Err(WaitError::WriterDead { name: name.into() }),
        })
    }

    /// When the writer was first found dead, while it is.
    #[cfg(feature = "tokio")]
    pub(crate) fn dead_since(&self) -> Option<Instant> {
        self.since
    }
}

/// Blocks until a generation newer than `than` is published in `data`, its
/// writer has been dead for `grace` (a new writer that takes over within it
/// ends the wait with its first generation), `name` is found to refer to
/// another object, or `timeout` passes. Uses the shared futex `notify` in the
/// header: no polling, and no wake-up syscall for the writer when nobody waits
/// (`count`, when the object has a reader table, counts us there, marked in
/// our entry if we have one).
pub(crate) fn wait_for_newer(
    name: &str,
    data: &DataSegment,
    count: Option<WaitCount<'_>>,
    than: Generation,
    timeout: Duration,
    grace: Duration,
) -> Result<Generation, WaitError> {
    let deadline = Instant::now() + timeout;
    let h = data.header();
    let os_error = |op, errno| WaitError::Os { name: name.into(), op, errno };
    let mut dead_writer = DeadWriter::default();
    let mut slept = false;
    loop {
        // SYNC(wake): read `notify` before checking, so a publish in between
        // makes the futex wait return at once (EAGAIN).
        let seen = h.notify.load(SeqCst);
        let now = generation_in(data);
        if now > than {
            return Ok(now);
        }
        let alive = data.writer_alive().map_err(|errno| os_error("probing the writer lock", errno))?;
        // Not before the first sleep (a waiter woken by each publish pays
        // nothing), then once per slice: has the name moved to another object?
        if let Some(end) = dead_writer.check(name, data, than, alive, slept, grace) {
            return end;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WaitError::Timeout { name: name.into() });
        }
        // SYNC(wake): pairs with `slots::announce` (store-buffering): counted
        // (SeqCst, `WaitCount::count`) before the SeqCst load of `notify`.
        if let Some(c) = &count {
            c.count();
        }
        let mut woke = false;
        if h.notify.load(SeqCst) == seen {
            // Bounded slices: a writer that dies (or a new one that takes
            // over) without publishing is noticed.
            os::futex_wait(&h.notify, seen, left.min(WAIT_SLICE));
            (slept, woke) = (true, true);
        }
        if let Some(c) = &count {
            c.uncount();
        }
        if woke {
            pass_on_wake(&h.notify, seen, count.map(|c| c.waiters));
        }
    }
}
