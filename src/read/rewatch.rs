//! Following for the waits that have no reader of their own
//! ([`SharedReader::wait_newer`], `changed()`, [`SharedReader::generation`]):
//! they watch the object the name resolves to, and when that one is moved
//! (its layout now published elsewhere under the name) or replaced (removed
//! and created again), they resolve the name again as a [`Reader`] does.
//! The readers of each thread follow on their own (`reader/follow.rs`).
//!
//! [`SharedReader::wait_newer`]: crate::SharedReader::wait_newer
//! [`SharedReader::generation`]: crate::SharedReader::generation
//! [`Reader`]: crate::Reader

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{OpenError, WaitError};
use crate::read::options::ReaderOptions;
use crate::read::raw_reader::RawReader;
use crate::read::resolve::open_resolved;
use crate::read::watch::Watcher;
use crate::{Generation, Shared};

/// How a wait finds the object to watch next, without knowing the type.
pub(crate) trait Rewatch: Send + Sync {
    /// The watcher of the object the name resolved to last.
    fn current(&self) -> Arc<Watcher>;

    /// Without waiting: the watcher of the object that carries the layout
    /// under the name now, if it is another one than `old`, not moved
    /// itself, and has published; it becomes [`current`](Self::current).
    fn rewatch(&self, old: &Arc<Watcher>) -> Option<Arc<Watcher>>;

    /// Like [`rewatch`](Self::rewatch), but waits up to `timeout` for such an
    /// object to be created and publish (inotify on `/dev/shm`, no polling).
    fn wait_for_successor(&self, old: &Arc<Watcher>, timeout: Duration) -> Result<Arc<Watcher>, WaitError>;
}

/// How a name is resolved to the object to watch, and how waits on it behave.
pub(crate) trait Resolve: Send + Sync + 'static {
    /// Opens the object that carries the layout under `name` now.
    fn resolve(&self, name: &str) -> Result<RawReader, OpenError>;
    /// How long a dead writer is waited for.
    fn writer_grace(&self) -> Duration;
    /// Whether waits follow a moved layout or a replaced object.
    fn follow(&self) -> bool;
    /// How long a wait spins before it blocks.
    fn wait_spin(&self) -> Duration;
}

/// A typed reader's resolution: `T`'s layout, the plain name or its lane.
impl<T: Shared> Resolve for ReaderOptions<T> {
    fn resolve(&self, name: &str) -> Result<RawReader, OpenError> {
        open_resolved::<T>(name, Duration::ZERO, self.owner, self.converter.as_deref())
    }
    fn writer_grace(&self) -> Duration {
        self.writer_grace
    }
    fn follow(&self) -> bool {
        self.follow
    }
    fn wait_spin(&self) -> Duration {
        self.get_wait_spin()
    }
}

/// An untyped reader's resolution (`dynamic::Watch`): whatever object is
/// under the name.
pub(crate) struct AnyLayout {
    pub(crate) writer_grace: Duration,
    pub(crate) follow: bool,
}

impl Resolve for AnyLayout {
    fn resolve(&self, name: &str) -> Result<RawReader, OpenError> {
        RawReader::open(name, Duration::ZERO)
    }
    fn writer_grace(&self) -> Duration {
        self.writer_grace
    }
    fn follow(&self) -> bool {
        self.follow
    }
    fn wait_spin(&self) -> Duration {
        Duration::ZERO
    }
}

/// The watched object of one `SharedReader` (or `dynamic::Watch`), and what
/// resolving its name needs: the name and the resolution (owner, converter).
pub(crate) struct Watched<R> {
    name: String,
    options: R,
    current: Mutex<Arc<Watcher>>,
    /// How many times `current` moved on to an object that numbers its
    /// generations anew (a replacement; not a moved layout, which keeps its
    /// numbers). Changed under `current`'s lock only.
    renumbered: AtomicU64,
}

impl<R: Resolve> Watched<R> {
    pub(crate) fn new(name: &str, options: R, first: Watcher) -> Self {
        Watched { name: name.into(), options, current: Mutex::new(Arc::new(first)), renumbered: AtomicU64::new(0) }
    }

    /// The current watcher and how many times the numbering changed before
    /// it (`renumbered`), read together: a `Receiver` compares generations
    /// only within one numbering.
    pub(crate) fn current_numbered(&self) -> (Arc<Watcher>, u64) {
        let current = self.current.lock();
        // SYNC(renumbered): Relaxed: written under this lock only.
        (Arc::clone(&current), self.renumbered.load(Relaxed))
    }

    fn open(&self) -> Result<RawReader, OpenError> {
        self.options.resolve(&self.name)
    }

    /// The resolution.
    pub(crate) fn options(&self) -> &R {
        &self.options
    }

    /// The watcher of the object the name resolves to, found again first if
    /// the one watched is moved (and following), with the numbering it
    /// belongs to (`current_numbered`).
    pub(crate) fn watcher_numbered(&self) -> (Arc<Watcher>, u64) {
        let (now, numbering) = self.current_numbered();
        if self.options.follow() && now.moved() && self.rewatch(&now).is_some() {
            return self.current_numbered();
        }
        (now, numbering)
    }

    /// Blocks until a generation newer than `than` (of the given numbering:
    /// on an object numbered anew since, anything published is newer), a
    /// writer dead for `grace`, or `timeout`; following as the resolution says.
    pub(crate) fn wait_newer_in(
        &self,
        than: Generation,
        numbering: u64,
        timeout: Duration,
        grace: Duration,
    ) -> Result<Generation, WaitError> {
        let follow = self.options.follow();
        let spin = self.options.wait_spin().min(timeout);
        let start = Instant::now();
        while !spin.is_zero() {
            let now = self.watcher_numbered().0.generation();
            if now > than {
                return Ok(now);
            }
            if start.elapsed() >= spin {
                break;
            }
            core::hint::spin_loop();
        }
        let (mut than, mut numbering) = (than, numbering);
        loop {
            let (watcher, numbered) = self.watcher_numbered();
            if numbered != numbering {
                // Followed (maybe by another thread) to a new object.
                (than, numbering) = (Generation::NONE, numbered);
            }
            let left = timeout.saturating_sub(start.elapsed());
            let outcome = watcher.wait_newer(than, left, grace);
            match outcome {
                // The moved object's last publish is no generation of the
                // layout's new home: never returned.
                Ok(_) if watcher.moved() && !follow => {
                    return Err(WaitError::Replaced { name: watcher.name().to_string() })
                }
                Ok(_) if watcher.moved() => {}
                Err(WaitError::Replaced { .. }) if follow => {
                    // A new object: its generations start again from 1.
                    than = Generation::NONE;
                }
                other => return other,
            }
            let left = timeout.saturating_sub(start.elapsed());
            self.wait_for_successor(&watcher, left)?;
        }
    }

    /// The numbering of [`current_numbered`](Self::current_numbered), without
    /// the watcher (one load, no lock).
    pub(crate) fn numbering(&self) -> u64 {
        // SYNC(renumbered): Relaxed: a hint; a caller that acts on it reads
        // both under the lock (`current_numbered`).
        self.renumbered.load(Relaxed)
    }

    /// The watcher of `raw`'s object if it can succeed `old`.
    fn successor(&self, old: &Watcher, raw: &RawReader) -> Option<Arc<Watcher>> {
        let same = raw.name() == old.name() && raw.incarnation() == old.incarnation();
        if same || raw.moved() || raw.generation() == crate::Generation::NONE {
            return None;
        }
        let next = Arc::new(Watcher::open(raw.name(), Duration::ZERO).ok()?);
        let mut current = self.current.lock();
        // Another thread may have followed to this object already; a moved
        // layout's new home goes on with its numbers.
        let same = current.name() == next.name() && current.incarnation() == next.incarnation();
        if !same && !current.moved() {
            // SYNC(renumbered): Relaxed: under the lock, read under it.
            self.renumbered.fetch_add(1, Relaxed);
        }
        *current = Arc::clone(&next);
        Some(next)
    }

    /// Another thread may have followed already.
    fn followed_since(&self, old: &Arc<Watcher>) -> Option<Arc<Watcher>> {
        let now = self.current.lock().clone();
        (!Arc::ptr_eq(&now, old) && !now.moved()).then_some(now)
    }
}

impl<R: Resolve> Rewatch for Watched<R> {
    fn current(&self) -> Arc<Watcher> {
        self.current.lock().clone()
    }

    fn rewatch(&self, old: &Arc<Watcher>) -> Option<Arc<Watcher>> {
        if let Some(now) = self.followed_since(old) {
            return Some(now);
        }
        let raw = self.open().ok()?;
        self.successor(old, &raw)
    }

    fn wait_for_successor(&self, old: &Arc<Watcher>, timeout: Duration) -> Result<Arc<Watcher>, WaitError> {
        if let Some(now) = self.rewatch(old) {
            return Ok(now);
        }
        let timed_out = || WaitError::Timeout { name: self.name.clone() };
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // What is under the name now may be `old` itself, or moved still:
            // that counts as "not there yet".
            let open = || match self.open() {
                Ok(raw) if raw.moved() || (raw.name() == old.name() && raw.incarnation() == old.incarnation()) => {
                    Err(OpenError::NotFound { name: self.name.clone() })
                }
                other => other,
            };
            let raw = crate::read::await_writer::open_when_published(left, self.options.writer_grace(), open).map_err(
                |e| match e {
                    OpenError::NotFound { .. } | OpenError::NotInitialized { .. } => timed_out(),
                    _ => WaitError::Replaced { name: self.name.clone() },
                },
            )?;
            if let Some(next) = self.successor(old, &raw) {
                return Ok(next);
            }
            if left.is_zero() {
                return Err(timed_out());
            }
            // Found but not published yet (its creator may have died): the
            // wait above returned at the timeout or after a pause; look again.
            std::thread::sleep(left.min(Duration::from_millis(10)));
        }
    }
}
