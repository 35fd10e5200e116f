//! A typed reader handle: validated, cached, zero-copy views of the latest snapshot.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;

use crate::error::{OpenError, ReadError, WaitError};
use crate::lanes::Converter;
use crate::os::UnderName;
use crate::protocol;
use crate::raw_reader::{RawReader, DEFAULT_WRITER_GRACE};
use crate::releasing::Releasing;
use crate::schema::{SchemaDiff, SchemaDoc};
use crate::segment::{DataSegment, Geometry};
use crate::sync::AtomicU64;
use crate::sync::Ordering::Acquire;
use crate::{Generation, Shared};

/// What `Reader::current` points at once the object is known replaced: never
/// equal to a cached publish word (0 is never cached), so `read` goes slow.
static NO_WORD: AtomicU64 = AtomicU64::new(0);

/// What `Reader::current` points at when `wait_newer` found `T`'s layout
/// published while the reader converts another: like [`NO_WORD`] it sends
/// `read` to the slow path, which then looks for `T`'s layout at once.
static CHECK_WORD: AtomicU64 = AtomicU64::new(0);

/// How often the slow path of `read` checks that the name still refers to the
/// object (two `stat`s, about 2 µs)...
const NAME_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// ...looking at the (coarse) clock only every this many slow paths: a
/// new-generation read of 100 bytes takes about 40 ns, a clock read 10 ns.
const SLOW_READS_PER_CLOCK_LOOK: u32 = 8;

/// Options for opening a reader. Start with [`Reader::options`].
pub struct ReaderOptions<T> {
    init_timeout: Duration,
    owner: Option<u32>,
    wait_spin: Duration,
    writer_grace: Duration,
    follow: bool,
    wait_for_writer: Option<Duration>,
    wait_for_layout: Option<Duration>,
    converter: Option<Arc<Converter<T>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ReaderOptions<T> {
    fn clone(&self) -> Self {
        ReaderOptions {
            init_timeout: self.init_timeout,
            owner: self.owner,
            wait_spin: self.wait_spin,
            writer_grace: self.writer_grace,
            follow: self.follow,
            wait_for_writer: self.wait_for_writer,
            wait_for_layout: self.wait_for_layout,
            converter: self.converter.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ReaderOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderOptions")
            .field("init_timeout", &self.init_timeout)
            .field("owner", &self.owner)
            .field("wait_spin", &self.wait_spin)
            .field("writer_grace", &self.writer_grace)
            .field("follow", &self.follow)
            .field("wait_for_writer", &self.wait_for_writer)
            .field("wait_for_layout", &self.wait_for_layout)
            .field("convert_from", &self.converter.as_ref().map(|c| format!("{:#018x}", c.fingerprint)))
            .finish()
    }
}

impl<T> Default for ReaderOptions<T> {
    fn default() -> Self {
        ReaderOptions {
            init_timeout: Duration::from_secs(1),
            owner: None,
            wait_spin: Duration::ZERO,
            writer_grace: DEFAULT_WRITER_GRACE,
            follow: false,
            wait_for_writer: None,
            wait_for_layout: None,
            converter: None,
            _type: PhantomData,
        }
    }
}

impl<T: Shared> ReaderOptions<T> {
    /// How long `open` waits for a writer that is still initialising the object
    /// (default 1 s). A missing object is reported at once (see
    /// [`wait_for_writer`](Self::wait_for_writer)).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Only accept an object whose data segment belongs to user `uid` (e.g. the
    /// service account of the publisher): `NotOwner` otherwise. Without it, any
    /// user who can create the name first could feed this reader a snapshot.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// Before sleeping in the kernel, `wait_newer` spins this long watching the
    /// publish word (default 0). Spinning costs a core while it lasts, and
    /// saves the wake-up latency of the futex (several µs on a VM whose idle
    /// CPUs halt) when publishes come faster than the spin.
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.wait_spin = spin;
        self
    }

    /// How long `wait_newer` keeps waiting once the writer is found dead, for
    /// a new writer to take over (a restart or a deployment: its first publish
    /// ends the wait), before it returns `WriterDead` (default 3 s,
    /// [`DEFAULT_WRITER_GRACE`]). `Duration::ZERO` returns `WriterDead` as soon
    /// as the writer is dead.
    pub fn writer_grace(mut self, grace: Duration) -> Self {
        self.writer_grace = grace;
        self
    }

    /// Follow the name when the object is replaced (removed and created again,
    /// e.g. by a redeployment): `read` then opens the new object and serves it
    /// from its first publish on, and the last snapshot of the old one until
    /// then. Off by default: a replaced object is then `ReadError::Replaced` /
    /// `WaitError::Replaced`. Either way the reader notices on `wait_newer`,
    /// and on a `read` that finds a new generation or follows `release`
    /// (checked at most every 100 ms there); a `read` of an unchanged
    /// generation stays one atomic load and checks nothing.
    pub fn follow(mut self, yes: bool) -> Self {
        self.follow = yes;
        self
    }

    /// Lets `open` wait up to `timeout` for a writer that has not created the
    /// object yet (a reader started before its writer): it sleeps until the
    /// object appears (inotify on `/dev/shm`; a bounded back-off where inotify
    /// is unavailable) and has published its first snapshot, so the first
    /// `read` succeeds. At the timeout: the object if it exists (possibly with
    /// nothing published yet), else `NotFound`. Without it (the default) a
    /// missing object is `NotFound` at once. Other errors (`TypeMismatch`, …)
    /// are returned at once either way.
    pub fn wait_for_writer(mut self, timeout: Duration) -> Self {
        self.wait_for_writer = Some(timeout);
        self
    }

    /// Lets `open` wait up to `timeout` for a writer to publish `T`'s layout
    /// under `name` (in the plain name or in a lane, docs/DEPLOYING.md
    /// "Lanes"): a reader of a new version started before its writer, while
    /// the previous version's writer runs. Implies
    /// [`wait_for_writer`](Self::wait_for_writer) for as long. At the
    /// timeout: what `open` without waiting gives (`TypeMismatch`, listing
    /// the layouts the object carries, or `NotFound`). Without it (the
    /// default), an object of other layouts only is `TypeMismatch` at once.
    pub fn wait_for_layout(mut self, timeout: Duration) -> Self {
        self.wait_for_layout = Some(timeout);
        self
    }

    /// While `name` carries no layout of `T`, read the layout of `U` and
    /// convert each new generation with `convert` (a reader of a new version
    /// started while only the previous version is published). **A copy**:
    /// the first `read` of each generation converts, then archives the `T`
    /// into a buffer of the reader's own (unchanged reads stay one load).
    /// Once a writer publishes `T` (plain name or lane), the next check of
    /// the name moves the reader there (zero-copy from then on; checked on
    /// the slow path of `read` at most every 100 ms). Generations keep
    /// their numbers: one writer publishes all layouts under one number.
    pub fn convert_from<U: Shared>(mut self, convert: impl Fn(&U::Archived) -> T + Send + Sync + 'static) -> Self {
        self.converter = Some(Arc::new(Converter::from::<U>(convert)));
        self
    }

    /// Opens the object `name` for reading `T`.
    pub fn open(self, name: &str) -> Result<Reader<T>, OpenError> {
        Reader::open_with(name, &self)
    }

    /// Opens the object `name` as a [`SharedReader`](crate::SharedReader):
    /// one handle for many threads.
    pub fn open_shared(self, name: &str) -> Result<crate::SharedReader<T>, OpenError> {
        crate::SharedReader::open_with(name, self)
    }

    pub(crate) fn get_writer_grace(&self) -> Duration {
        self.writer_grace
    }

    pub(crate) fn get_init_timeout(&self) -> Duration {
        self.init_timeout
    }

    pub(crate) fn get_wait_spin(&self) -> Duration {
        self.wait_spin
    }
}

/// The view of the pinned snapshot, with the publish word it belongs to.
/// (`Copy`, to live in a `Cell`: a [`Releasing`] snapshot clears it through
/// a shared borrow of the reader.)
struct Cached<T: Shared> {
    word: u64,
    root: *const T::Archived,
    /// bytecheck ran on it (`false` after `read_unchecked`): `read` only
    /// returns a cached view that was validated.
    validated: bool,
}

impl<T: Shared> Clone for Cached<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Shared> Copy for Cached<T> {}

/// A reader handle for objects of type `T`.
///
/// One handle serves one thread at a time (`read` takes `&mut self`); open one
/// handle per thread for parallel reads. Each handle owns one reader-table entry.
pub struct Reader<T: Shared> {
    /// The name the reader was opened with (`raw` may be one of its lanes).
    base: String,
    wait_spin: Duration,
    writer_grace: Duration,
    /// The publish word in `raw`'s mapping, refreshed whenever it remaps: the
    /// fast path reads it without walking the header accessors. Once `raw`'s
    /// object is known to be replaced it points at [`NO_WORD`] instead, so
    /// every `read` takes the slow path, which reports or follows the change.
    current: Cell<*const AtomicU64>,
    raw: RawReader,
    cached: Cell<Option<Cached<T>>>,
    /// The incarnation and publish word of the last snapshot bytecheck
    /// passed, kept across `release`: pinning the same word again needs no
    /// second check (see `read_slow`).
    validated: (u64, u64),
    /// Reopen the name when the object is replaced ([`ReaderOptions::follow`]).
    follow: bool,
    /// The owner required at open, required again when following.
    owner: Option<u32>,
    /// When the slow path of `read` last checked the name, on the coarse
    /// clock (`None`: never).
    name_checked: Option<Duration>,
    /// Slow paths of `read` since the last look at the clock.
    slow_reads: u32,
    /// With `follow`: the object now under the name, until it has published.
    successor: Option<RawReader>,
    /// Reads another layout through a conversion ([`ReaderOptions::convert_from`]).
    converter: Option<Arc<Converter<T>>>,
    /// `raw` carries the converter's layout, not `T`'s.
    converting: bool,
    /// While converting: the archived `T` of the cached view.
    converted: AlignedVec<16>,
    /// Following a replaced object: the last generation of the new object
    /// that `wait_newer` returned (before `read` moves to it).
    followed: Cell<Generation>,
    _type: PhantomData<fn() -> T>,
}

// SAFETY: `RawReader` is `Send`; the cached pointer points into its mapping,
// which moves with it.
#[allow(unsafe_code)]
unsafe impl<T: Shared> Send for Reader<T> {}

impl<T: Shared> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("raw", &self.raw).finish()
    }
}

/// A validated, pinned snapshot: derefs to the archived value in shared memory.
///
/// While it lives, the writer does not touch its bytes (docs/DESIGN.md, invariant 1).
/// It borrows the reader, so the pin cannot move under it.
#[must_use]
pub struct Snapshot<'a, T: Shared> {
    archived: &'a T::Archived,
    generation: Generation,
}

impl<'a, T: Shared> Snapshot<'a, T> {
    pub(crate) fn new(archived: &'a T::Archived, generation: Generation) -> Self {
        Snapshot { archived, generation }
    }

    /// The generation of this snapshot.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// Deserializes a copy of the value.
    pub fn to_value(&self) -> Result<T, BoxedError>
    where
        T::Archived: rkyv::Deserialize<T, rkyv::rancor::Strategy<rkyv::de::Pool, BoxedError>>,
    {
        rkyv::deserialize::<T, BoxedError>(self.archived)
    }
}

impl<T: Shared> Deref for Snapshot<'_, T> {
    type Target = T::Archived;
    #[inline]
    fn deref(&self) -> &T::Archived {
        self.archived
    }
}

impl<T: Shared> std::fmt::Debug for Snapshot<'_, T>
where
    T::Archived: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("generation", &self.generation).field("value", self.archived).finish()
    }
}

impl<T: Shared> Reader<T> {
    /// Default options.
    pub fn options() -> ReaderOptions<T> {
        ReaderOptions::default()
    }

    /// Opens the object `name` for reading `T`, with default options.
    ///
    /// Checks the header before touching any payload: magic, format version,
    /// sizes against fstat, and the type fingerprint.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, &ReaderOptions::default())
    }

    pub(crate) fn open_with(name: &str, opts: &ReaderOptions<T>) -> Result<Self, OpenError> {
        const { assert!(core::mem::align_of::<T::Archived>() <= 16, "archived alignment above 16 is not supported") };
        let converter = opts.converter.as_deref();
        let open = || open_resolved::<T>(name, opts.init_timeout, opts.owner, converter);
        let raw = match (opts.wait_for_writer, opts.wait_for_layout) {
            (None, None) => open()?,
            (Some(timeout), None) => crate::await_writer::open_when_published(timeout, opts.writer_grace, open)?,
            (for_writer, Some(timeout)) => {
                // Another layout only is "not there yet" too.
                let timeout = timeout.max(for_writer.unwrap_or_default());
                let not_yet = || match open() {
                    Err(OpenError::TypeMismatch { .. }) => Err(OpenError::NotFound { name: name.into() }),
                    other => other,
                };
                match crate::await_writer::open_when_published(timeout, opts.writer_grace, not_yet) {
                    Err(OpenError::NotFound { .. }) => open()?,
                    other => other?,
                }
            }
        };
        let converting = raw.fingerprint() != crate::schema::fingerprint_of::<T>();
        Ok(Reader {
            base: name.to_string(),
            wait_spin: opts.wait_spin,
            writer_grace: opts.writer_grace,
            current: Cell::new(raw.current_ptr()),
            raw,
            cached: Cell::new(None),
            validated: (0, 0),
            follow: opts.follow,
            owner: opts.owner,
            name_checked: None,
            slow_reads: 0,
            successor: None,
            converter: opts.converter.clone(),
            converting,
            converted: AlignedVec::new(),
            followed: Cell::new(Generation::NONE),
            _type: PhantomData,
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.base
    }

    /// The object this reader reads now: the name, or one of its lanes
    /// (`name@<fingerprint>`, docs/DEPLOYING.md "Lanes").
    pub fn object_name(&self) -> &str {
        self.raw.name()
    }

    /// Whether reads convert another layout ([`ReaderOptions::convert_from`])
    /// because no writer publishes `T`'s yet.
    pub fn is_converting(&self) -> bool {
        self.converting
    }

    /// The latest published generation (`Generation::NONE` before the first
    /// publish), without pinning anything.
    pub fn generation(&self) -> Generation {
        self.raw.generation()
    }

    /// Whether a live writer holds the object (an OFD-lock probe: one syscall).
    pub fn writer_alive(&self) -> bool {
        self.raw.writer_alive()
    }

    /// The latest snapshot, validated with bytecheck on the first read of each
    /// generation. Reading an unchanged generation again is a single atomic load.
    #[inline]
    pub fn read(&mut self) -> Result<Snapshot<'_, T>, ReadError> {
        let word = self.load_current();
        if let Some(Cached { word: w, root, validated: true }) = self.cached.get() {
            if w == word {
                return Ok(self.cached_snapshot(root, word));
            }
        }
        self.read_slow(true)
    }

    /// The cached validated view and its generation if the publish word still
    /// names it (one atomic load); `None` otherwise. Never pins or remaps.
    #[inline(always)]
    pub(crate) fn current_view(&self) -> Option<(*const T::Archived, Generation)> {
        let word = self.load_current();
        match self.cached.get() {
            Some(Cached { word: w, root, validated: true }) if w == word => {
                Some((root, Generation(protocol::generation_of(word))))
            }
            _ => None,
        }
    }

    /// Like [`read`](Self::read) but skips bytecheck validation.
    ///
    /// # Safety
    /// The caller guarantees the object's writer is trusted to have written a
    /// valid `T` (the fingerprint was checked at open; bytecheck was not).
    /// Bytes that are not a valid `T::Archived` cause undefined behaviour.
    #[allow(unsafe_code)]
    pub unsafe fn read_unchecked(&mut self) -> Result<Snapshot<'_, T>, ReadError> {
        let word = self.load_current();
        if let Some(Cached { word: w, root, .. }) = self.cached.get() {
            if w == word {
                return Ok(self.cached_snapshot(root, word));
            }
        }
        self.read_slow(false)
    }

    /// The snapshot of the cached view (the fast path: no load beyond the
    /// caller's one of the publish word).
    #[inline]
    fn cached_snapshot(&self, root: *const T::Archived, word: u64) -> Snapshot<'_, T> {
        // SAFETY: `root` is the cached view, built (validated, or vouched for by
        // the caller of `read_unchecked`) for the publish word `word`, which our
        // pin still names, so the writer has not touched its slot; the mapping it
        // points into lives as long as `self`, which the snapshot borrows.
        #[allow(unsafe_code)]
        let archived = unsafe { &*root };
        Snapshot { archived, generation: Generation(protocol::generation_of(word)) }
    }

    #[inline]
    fn load_current(&self) -> u64 {
        // SAFETY: `current` points at the publish word inside `raw`'s mapping,
        // which lives as long as `self`; it is refreshed after every remap (only
        // `read_slow` remaps), and the word is an aligned atomic. Or it points
        // at the static `NO_WORD` or `CHECK_WORD`.
        #[allow(unsafe_code)]
        let current = unsafe { &*self.current.get() };
        // SYNC(publish): Acquire pairs with the Release in `protocol::publish`.
        current.load(Acquire)
    }

    #[cold]
    fn read_slow(&mut self, validate: bool) -> Result<Snapshot<'_, T>, ReadError> {
        if self.notice_replacement()? {
            // Following, and the new object has nothing yet: the old snapshot.
            if let Some(Cached { word, root, validated }) = self.cached.get() {
                if validated || !validate {
                    return Ok(self.cached_snapshot(root, word));
                }
            }
        }
        self.cached.set(None);
        let pinned = self.raw.pin_latest();
        // `pin_latest` may have remapped a grown segment.
        if !self.known_replaced() {
            self.current.set(self.raw.current_ptr());
        }
        let (word, offset, len) = pinned?;
        let generation = protocol::generation_of(word);
        let bytes = self.raw.pinned_bytes(offset, len)?;
        let invalid = |reason: String| ReadError::Invalid { name: self.raw.name().into(), generation, reason };
        // A publish word names one snapshot for the life of an incarnation
        // (generations only grow, and the writer never writes the published
        // slot), so bytes that passed bytecheck under this word and are pinned
        // under it again are the same bytes: after `release`, re-reading the
        // same generation costs a pin, not a second validation.
        let seen = (self.raw.incarnation(), word);
        let root: *const T::Archived = if self.converting {
            // A copy: the other layout, converted and archived as a `T`.
            let converter = self.converter.as_ref().expect("a converting reader has a converter");
            let converted = converter
                .convert(bytes, &mut self.converted)
                .and_then(|n| rkyv::access::<T::Archived, BoxedError>(&self.converted[..n]).map_err(|e| e.to_string()));
            match converted {
                Ok(a) => a,
                Err(reason) => {
                    self.raw.count_validation_failure();
                    return Err(invalid(reason));
                }
            }
        } else if validate && self.validated != seen {
            match rkyv::access::<T::Archived, BoxedError>(bytes) {
                Ok(a) => {
                    self.validated = seen;
                    a
                }
                Err(e) => {
                    self.raw.count_validation_failure();
                    return Err(invalid(e.to_string()));
                }
            }
        } else {
            // SAFETY: the caller of `read_unchecked` vouches for the bytes, or
            // they passed bytecheck under this same word and incarnation (above);
            // the slice is 64-aligned, pinned and mapped (`pin_latest`).
            #[allow(unsafe_code)]
            unsafe {
                rkyv::access_unchecked::<T::Archived>(bytes)
            }
        };
        self.cached.set(Some(Cached { word, root, validated: validate || self.converting }));
        // SAFETY: `root` points into the pinned, mapped slot (validated or vouched
        // for); the snapshot borrows `self`, so neither pin nor mapping can change.
        #[allow(unsafe_code)]
        let archived = unsafe { &*root };
        Ok(Snapshot { archived, generation: Generation(generation) })
    }

    fn known_replaced(&self) -> bool {
        core::ptr::eq(self.current.get(), &NO_WORD)
    }

    /// On the slow path of `read`: checks whether the name now refers to
    /// another object (on the first slow path, then at most every
    /// [`NAME_CHECK_INTERVAL`], or at once after `wait_newer` found it). Not
    /// following: `Replaced`. Following: switches to the new object once it
    /// has published; until then returns `true` (serve the old snapshot).
    fn notice_replacement(&mut self) -> Result<bool, ReadError> {
        let forced = core::ptr::eq(self.current.get(), &CHECK_WORD);
        if !self.known_replaced() {
            if let Some(checked) = self.name_checked.filter(|_| !forced) {
                self.slow_reads += 1;
                if self.slow_reads < SLOW_READS_PER_CLOCK_LOOK {
                    return Ok(false);
                }
                self.slow_reads = 0;
                let now = crate::os::coarse_now();
                if now.saturating_sub(checked) < NAME_CHECK_INTERVAL {
                    return Ok(false);
                }
            }
            self.name_checked = Some(crate::os::coarse_now());
            let fp = crate::schema::fingerprint_of::<T>();
            if self.converting && crate::lanes::published_generation(&self.base, fp).is_some() {
                // A writer of `T` has come: read its layout, no copy.
                if let Ok(next) = open_checked::<T>(&self.base, Duration::ZERO, self.owner) {
                    if next.generation() > Generation::NONE {
                        self.switch_to(next);
                        return Ok(false);
                    }
                }
            }
            let on_lane = self.raw.name() != self.base;
            match self.raw.under_name() {
                Ok(UnderName::Another) => self.current.set(&NO_WORD),
                // A lane is removed when its layout moves (to the plain name).
                Ok(UnderName::Nothing) if on_lane => self.current.set(&NO_WORD),
                Ok(UnderName::This | UnderName::Nothing) => return Ok(false),
                Err(errno) => {
                    return Err(ReadError::Os { name: self.raw.name().to_string(), op: "checking the name", errno })
                }
            }
        }
        let replaced = || ReadError::Replaced { name: self.raw.name().to_string() };
        if !self.follow {
            return Err(replaced());
        }
        if self.successor.is_none() {
            // No waiting here: a creator still initialising is retried next read.
            match open_resolved::<T>(&self.base, Duration::ZERO, self.owner, self.converter.as_deref()) {
                Ok(next) => self.successor = Some(next),
                Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => return Ok(true),
                Err(_) => return Err(replaced()),
            }
        }
        match self.successor.take() {
            Some(next) if next.generation() > Generation::NONE => {
                self.switch_to(next);
                Ok(false)
            }
            Some(next) if matches!(next.under_name(), Ok(UnderName::Another | UnderName::Nothing)) => {
                // Its creator died before publishing and the name moved on
                // again: forget it, the next slow path opens what is there now.
                drop(next);
                Ok(true)
            }
            unpublished => {
                self.successor = unpublished;
                Ok(true)
            }
        }
    }

    /// Reads `next` from now on (a replacement, a lane, or `T`'s layout
    /// found while converting).
    fn switch_to(&mut self, next: RawReader) {
        // The old view points into the old mapping, which goes now.
        self.cached.set(None);
        self.converting = next.fingerprint() != crate::schema::fingerprint_of::<T>();
        self.raw = next;
        self.followed.set(Generation::NONE);
        self.current.set(self.raw.current_ptr());
        self.name_checked = Some(crate::os::coarse_now());
    }

    /// Like [`read`](Self::read), but the snapshot releases the pin when it is
    /// dropped, so this reader holds no slot while it is not reading
    /// ([`Releasing`]). Use it in readers that go idle between reads, on large
    /// snapshots: the writer can then reuse every slot but the ones being read.
    /// The next read pins again (no second validation of the same generation).
    pub fn read_releasing(&mut self) -> Result<Releasing<'_, T>, ReadError> {
        let (root, generation) = {
            let snapshot = self.read()?;
            (std::ptr::from_ref::<T::Archived>(&snapshot), snapshot.generation())
        };
        // SAFETY: `root` is the view `read` just returned: validated, in the
        // slot our pin holds, inside `raw`'s mapping. The pin moves and the
        // mapping changes only through `&mut self`, which the `Releasing`
        // borrows (as `&self`) until it drops, unpinning last.
        #[allow(unsafe_code)]
        let archived = unsafe { &*root };
        let this = &*self;
        Ok(Releasing::new(Snapshot::new(archived, generation), this))
    }

    /// [`release`](Self::release) through a shared borrow, for a dropped
    /// [`Releasing`]: forget the view first, so that no read can return it
    /// without pinning it again; then unpin.
    pub(crate) fn release_pin(&self) {
        self.cached.set(None);
        self.raw.unpin();
    }

    /// For benchmarks: [`release`](Self::release), and forget which snapshot
    /// passed bytecheck, so the next `read` of the same generation validates
    /// it again: what a new generation costs, without a publish in the loop.
    #[doc(hidden)]
    pub fn release_and_forget_validation(&mut self) {
        self.validated = (0, 0);
        self.release();
    }

    /// Drops the pin, letting the writer reuse the slot. The next `read` pins again.
    pub fn release(&mut self) {
        self.cached.set(None);
        self.raw.release();
    }

    /// Blocks until a generation newer than `than` is published, the writer has
    /// been dead for the grace period ([`ReaderOptions::writer_grace`]; a new
    /// writer that takes over within it ends the wait with its first
    /// generation), or `timeout` passes (shared futex; no polling). An object
    /// removed and created again is `Replaced`; with
    /// [`ReaderOptions::follow`] the wait goes on in the new object, and
    /// returns its first generation (numbered from 1 again; the next `read`
    /// moves to it).
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        if !self.wait_spin.is_zero() {
            let start = std::time::Instant::now();
            let spin = self.wait_spin.min(timeout);
            loop {
                let now = Generation(protocol::generation_of(self.load_current()));
                if now > than {
                    return Ok(now);
                }
                if start.elapsed() >= spin {
                    break;
                }
                core::hint::spin_loop();
            }
            return self.wait_raw(than, timeout.saturating_sub(start.elapsed()));
        }
        self.wait_raw(than, timeout)
    }

    /// The kernel wait, and what a replaced object means for it.
    fn wait_raw(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        let start = Instant::now();
        if !self.known_replaced() {
            match self.raw.wait_newer_with_grace(than, timeout, self.writer_grace) {
                Err(WaitError::Replaced { name }) => {
                    // The next `read` takes the slow path and reports or follows it.
                    self.current.set(&NO_WORD);
                    if !self.follow {
                        return Err(WaitError::Replaced { name });
                    }
                }
                // Converting, with no new generation of the converted layout:
                // its writer may be gone for one that publishes `T` only.
                Err(e @ (WaitError::Timeout { .. } | WaitError::WriterDead { .. })) if self.converting => {
                    let fp = crate::schema::fingerprint_of::<T>();
                    return match crate::lanes::published_generation(&self.base, fp) {
                        Some(g) if g > than => {
                            // The next `read` moves there.
                            self.current.set(&CHECK_WORD);
                            Ok(g)
                        }
                        _ => Err(e),
                    };
                }
                other => return other,
            }
        } else if !self.follow {
            return Err(WaitError::Replaced { name: self.raw.name().to_string() });
        }
        // Following: wait for the new object's first publish; its generations
        // start again from 1.
        let left = timeout.saturating_sub(start.elapsed());
        let opened;
        // A kept successor the name has moved on from (its creator died
        // before publishing) is not waited on: open what is there now.
        let kept = self.successor.as_ref().filter(|next| matches!(next.under_name(), Ok(UnderName::This)));
        let next = match kept {
            Some(next) => next,
            None => {
                // The name may stay empty for a while (removed, not created
                // again yet): wait for it (inotify), not return at once, or a
                // caller's wait loop would spin.
                let name = self.base.as_str();
                let open = || open_resolved::<T>(name, Duration::ZERO, self.owner, self.converter.as_deref());
                opened =
                    crate::await_writer::open_when_published(left, self.writer_grace, open).map_err(|e| match e {
                        OpenError::NotFound { .. } | OpenError::NotInitialized { .. } => {
                            WaitError::Timeout { name: name.to_string() }
                        }
                        _ => WaitError::Replaced { name: name.to_string() },
                    })?;
                &opened
            }
        };
        // The caller's `than` counts on the new object only if it is what
        // this wait returned from it before (its numbers start again from 1):
        // then `g = r.wait_newer(g)?` blocks until a newer one, as on any object.
        let floor = if than == self.followed.get() { than } else { Generation::NONE };
        let g = next.wait_newer_with_grace(floor, timeout.saturating_sub(start.elapsed()), self.writer_grace)?;
        self.followed.set(g);
        Ok(g)
    }
}

/// Opens the object of `name` that holds a `T` (the plain name, or the lane
/// of `T`'s fingerprint) and checks it belongs to `owner`, if given.
fn open_checked<T: Shared>(name: &str, init_timeout: Duration, owner: Option<u32>) -> Result<RawReader, OpenError> {
    let fp = crate::schema::fingerprint_of::<T>();
    let raw =
        crate::lanes::open_layout(name, fp, init_timeout, |plain| type_mismatch::<T>(name, &plain.data, &plain.geo))?;
    check_owner(name, &raw, owner)?;
    Ok(raw)
}

/// [`open_checked`]; where `name` carries no `T` and a `converter` is
/// given, the object of the converter's layout instead.
fn open_resolved<T: Shared>(
    name: &str,
    init_timeout: Duration,
    owner: Option<u32>,
    converter: Option<&Converter<T>>,
) -> Result<RawReader, OpenError> {
    match (open_checked::<T>(name, init_timeout, owner), converter) {
        (Err(e @ (OpenError::TypeMismatch { .. } | OpenError::NotFound { .. })), Some(c)) => {
            let not_there = |_: &RawReader| OpenError::NotFound { name: name.into() };
            match crate::lanes::open_layout(name, c.fingerprint, init_timeout, not_there) {
                Ok(raw) => {
                    check_owner(name, &raw, owner)?;
                    Ok(raw)
                }
                Err(_) => Err(e),
            }
        }
        (opened, _) => opened,
    }
}

fn check_owner(name: &str, raw: &RawReader, owner: Option<u32>) -> Result<(), OpenError> {
    if let Some(want) = owner {
        let (_, owner) =
            raw.data.obj.mode_and_owner().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
        if owner != want {
            return Err(OpenError::NotOwner { name: name.into(), object: "data segment", owner });
        }
    }
    Ok(())
}

/// The `TypeMismatch` error for `T` against what `seg` stores.
pub(crate) fn type_mismatch<T: Shared>(name: &str, seg: &DataSegment, geo: &Geometry) -> OpenError {
    type_mismatch_doc(name, &crate::schema::schema_of::<T>(), seg, geo)
}

/// The `TypeMismatch` error for the type `expected` describes against what
/// `seg` stores: both type names and fingerprints, and the field-level diff
/// from the stored schema.
pub(crate) fn type_mismatch_doc(name: &str, expected: &SchemaDoc, seg: &DataSegment, geo: &Geometry) -> OpenError {
    let (mut found, diff) = match SchemaDoc::decode(&seg.schema_bytes(geo)) {
        Ok(doc) => (
            format!("{} (fingerprint {:#018x})", doc.root().name, geo.fingerprint),
            SchemaDiff::between(&doc, expected),
        ),
        Err(e) => (format!("fingerprint {:#018x}; {e}", geo.fingerprint), SchemaDiff::default()),
    };
    // The other versions the object carries, if any (lanes).
    if crate::name::split_lane(name).is_none() {
        found.push_str(&crate::lanes::lanes_note(name));
    }
    // The fingerprint covers the rkyv format too; say so when that is the cause.
    let format = seg.header().rkyv_format.load(crate::sync::Ordering::Relaxed);
    if format != crate::schema::fp::RKYV_FORMAT {
        found.push_str(&format!(
            "; written with another rkyv format: {format:#018x}, this build uses {:#018x} \
             (check rkyv's endianness, alignment and pointer-width features)",
            crate::schema::fp::RKYV_FORMAT
        ));
    }
    OpenError::TypeMismatch {
        name: name.to_string(),
        expected: format!("{} (fingerprint {:#018x})", expected.root().name, expected.fingerprint()),
        found,
        diff,
    }
}
