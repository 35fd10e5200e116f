//! A typed reader handle: validated, cached, zero-copy views of the latest
//! snapshot. The fast path and the pin are here; following a replaced
//! object or a moved lane (and waiting) is in `reader/follow.rs`, resolving
//! a name to the object of `T`'s layout in `resolve.rs`.

mod follow;

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rkyv::rancor::BoxedError;
use rkyv::util::AlignedVec;

use crate::error::{OpenError, ReadError};
use crate::protocol;
use crate::protocol::sync::AtomicU64;
use crate::protocol::sync::Ordering::Acquire;
use crate::read::convert::Converter;
use crate::read::options::ReaderOptions;
use crate::read::raw_reader::RawReader;
use crate::read::resolve::open_resolved;
use crate::read::snapshot::{Cached, Releasing, Snapshot};
use crate::read::stats::{ReadCounts, ReaderStats};
use crate::{Generation, Shared};

/// What `Reader::current` points at once the object is known replaced: never
/// equal to a cached publish word (0 is never cached), so `read` goes slow.
static NO_WORD: AtomicU64 = AtomicU64::new(0);

/// What `Reader::current` points at when `wait_newer` found `T`'s layout
/// published while the reader converts another, or when the name is to be
/// looked at at once (`check_name_next_read`): like [`NO_WORD`] it sends
/// `read` to the slow path, which then looks for `T`'s layout at once.
static CHECK_WORD: AtomicU64 = AtomicU64::new(0);

impl<T: Shared> ReaderOptions<T> {
    /// Opens the object `name` for reading `T`.
    pub fn open(self, name: &str) -> Result<Reader<T>, OpenError> {
        Reader::open_with(name, &self)
    }
}

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
    /// What [`stats`](Reader::stats) reports: the handle's own counters.
    counts: ReadCounts,
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
            (Some(timeout), None) => crate::read::await_writer::open_when_published(timeout, opts.writer_grace, open)?,
            (for_writer, Some(timeout)) => {
                // Another layout only is "not there yet" too.
                let timeout = timeout.max(for_writer.unwrap_or_default());
                let not_yet = || match open() {
                    Err(OpenError::TypeMismatch { .. }) => Err(OpenError::NotFound { name: name.into() }),
                    other => other,
                };
                match crate::read::await_writer::open_when_published(timeout, opts.writer_grace, not_yet) {
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
            counts: ReadCounts::default(),
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

    /// The incarnation of the object this reader reads now.
    pub(crate) fn incarnation(&self) -> u64 {
        self.raw.incarnation()
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

    /// What this handle has done since it opened: reads, slow paths,
    /// validations and their failures, conversions, waits, follows. Plain
    /// numbers, kept in the handle (no shared memory, no atomics), to export
    /// with a service's own metrics library (docs/OPERATING.md, "Stats from
    /// inside a service"). The object's own counters, which every process
    /// adds to, are in [`inspect`](crate::inspect).
    ///
    /// ```
    /// # #[shmstate::shared] #[derive(Debug, Clone)] struct Flags { on: bool }
    /// # let name = format!("doc-rstats-{}", std::process::id());
    /// let mut w = shmstate::Writer::<Flags>::create(&name)?;
    /// w.publish(&Flags { on: true })?;
    /// let mut r = shmstate::Reader::<Flags>::open(&name)?;
    /// for _ in 0..3 {
    ///     r.read()?;
    /// }
    /// let stats = r.stats();
    /// // The first read pinned and validated; the other two were one load
    /// // each, which counts nothing.
    /// assert_eq!((stats.slow_reads, stats.validations), (1, 1));
    /// # drop(w); shmstate::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> ReaderStats {
        self.counts.get()
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
        Snapshot::new(archived, Generation(protocol::generation_of(word)))
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
        self.counts.slow_reads.bump();
        match self.pin_view(validate) {
            Ok((root, word)) => Ok(self.cached_snapshot(root, word)),
            Err(e) => {
                self.counts.errors.bump();
                Err(e)
            }
        }
    }

    /// The slow path of `read`: pins the current snapshot, validates it (once
    /// per generation) or converts it, and caches the view, which it returns
    /// with its publish word.
    #[inline(always)]
    fn pin_view(&mut self, validate: bool) -> Result<(*const T::Archived, u64), ReadError> {
        if self.notice_replacement()? {
            // Following, and the new object has nothing yet: the old snapshot.
            if let Some(Cached { word, root, validated }) = self.cached.get() {
                if validated || !validate {
                    return Ok((root, word));
                }
            }
        }
        self.cached.set(None);
        let pin = self.raw.pin_latest()?;
        if pin.remapped && !self.known_replaced() {
            // The publish word moved with the mapping.
            self.current.set(self.raw.current_ptr());
        }
        let word = pin.word;
        let bytes = self.raw.pinned_bytes(&pin)?;
        // A publish word names one snapshot for the life of an incarnation
        // (generations only grow, and the writer never writes the published
        // slot), so bytes that passed bytecheck under this word and are pinned
        // under it again are the same bytes: after `release`, re-reading the
        // same generation costs a pin, not a second validation.
        let seen = (self.raw.incarnation(), word);
        let root: *const T::Archived = if self.converting {
            self.counts.conversions.bump();
            // A copy: the other layout, converted and archived as a `T`.
            let converter = self.converter.as_ref().expect("a converting reader has a converter");
            let converted = converter
                .convert(bytes, &mut self.converted)
                .and_then(|n| rkyv::access::<T::Archived, BoxedError>(&self.converted[..n]).map_err(|e| e.to_string()));
            match converted {
                Ok(a) => a,
                Err(reason) => return Err(self.invalid(word, reason)),
            }
        } else if validate && self.validated != seen {
            self.counts.validations.bump();
            match rkyv::access::<T::Archived, BoxedError>(bytes) {
                Ok(a) => {
                    self.validated = seen;
                    a
                }
                Err(e) => return Err(self.invalid(word, e.to_string())),
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
        Ok((root, word))
    }

    /// The snapshot of `word` failed bytecheck (or its conversion failed).
    #[cold]
    fn invalid(&self, word: u64, reason: String) -> ReadError {
        self.counts.validation_failures.bump();
        self.raw.count_validation_failure();
        ReadError::Invalid { name: self.raw.name().into(), generation: protocol::generation_of(word), reason }
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
        Ok(Releasing::new(Snapshot::new(archived, generation), &self.cached, &self.raw))
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
}
