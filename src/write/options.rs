//! Options for creating or taking over an object: [`WriterOptions`], for
//! the typed [`Writer`](crate::Writer) and the untyped
//! [`RawWriter`](crate::RawWriter) alike (each adds its own constructors).

use std::marker::PhantomData;

use crate::error::OpenError;
use crate::object::segment::MAX_READERS;
use crate::protocol::layout::{FORMAT_VERSION, PREVIOUS_FORMAT};
use crate::protocol::MAX_SLOTS;
use crate::write::lane_spec::LaneSpec;
use crate::Shared;

/// Default reader limit: enough for a large host (hundreds of worker processes).
pub(crate) const DEFAULT_MAX_READERS: u32 = 1024;

/// Options for creating or taking over an object. Start with [`Writer::options`](crate::Writer::options).
pub struct WriterOptions<T> {
    pub(crate) slots: u32,
    pub(crate) capacity: u64,
    pub(crate) mode: u32,
    pub(crate) max_readers: u32,
    pub(crate) max_size: u64,
    pub(crate) remove_on_drop: bool,
    pub(crate) lock_pins: Option<bool>,
    /// The shm format to write, if chosen (`format_version`).
    format: Option<u32>,
    /// Several writer processes share the object (`shared`).
    pub(crate) shared: bool,
    /// How long to wait for another writer to let go (`wait_for_lock`).
    pub(crate) wait_for_lock: Option<std::time::Duration>,
    /// Layouts published besides `T`'s own (`lane`).
    pub(crate) lanes: Vec<LaneSpec<T>>,
    _type: PhantomData<fn(&T)>,
}

impl<T> Clone for WriterOptions<T> {
    fn clone(&self) -> Self {
        WriterOptions {
            slots: self.slots,
            capacity: self.capacity,
            mode: self.mode,
            max_readers: self.max_readers,
            max_size: self.max_size,
            remove_on_drop: self.remove_on_drop,
            lock_pins: self.lock_pins,
            format: self.format,
            shared: self.shared,
            wait_for_lock: self.wait_for_lock,
            lanes: self.lanes.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for WriterOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("slots", &self.slots)
            .field("capacity", &self.capacity)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("max_readers", &self.max_readers)
            .field("max_size", &self.max_size)
            .field("remove_on_drop", &self.remove_on_drop)
            .field("lock_pins", &self.lock_pins)
            .field("format", &self.format)
            .field("shared", &self.shared)
            .field("wait_for_lock", &self.wait_for_lock)
            .field("lanes", &self.lanes.iter().map(|l| l.schema.root().name.clone()).collect::<Vec<_>>())
            .finish()
    }
}

impl<T> Default for WriterOptions<T> {
    fn default() -> Self {
        WriterOptions {
            slots: 3,
            capacity: 4096,
            mode: 0o600,
            max_readers: DEFAULT_MAX_READERS,
            max_size: 1 << 34,
            remove_on_drop: false,
            lock_pins: None,
            format: None,
            shared: false,
            wait_for_lock: None,
            lanes: Vec::new(),
            _type: PhantomData,
        }
    }
}

impl<T> WriterOptions<T> {
    /// Slots allocated at creation (default 3; more are added when readers pin them).
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = n;
        self
    }

    /// Initial capacity of each slot in bytes (default 4096; slots grow as needed).
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// File mode of the data segment (default `0o600`, owner only). Read bits let
    /// others read, and then make lock pins the default ([`Self::lock_pins`]);
    /// with table pins the reader table gets matching write bits (readers write
    /// their pins). The writer lock is always owner-only.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Reader handles that may be open at once (default 1024: a host with
    /// hundreds of worker processes). The limit costs only memory (a 64-byte
    /// reader entry and a 64-byte slot entry each); the writer's pin scan
    /// covers the entries ever claimed, not the limit.
    pub fn max_readers(mut self, n: u32) -> Self {
        self.max_readers = n;
        self
    }

    /// Largest size the data segment may grow to (default 16 GiB).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Remove the object's names when the writer is dropped (default false:
    /// readers keep reading the last snapshot after the writer exits).
    pub fn remove_on_drop(mut self, yes: bool) -> Self {
        self.remove_on_drop = yes;
        self
    }

    /// How readers pin the slots they use (fixed when the object is created).
    ///
    /// `false`: pins are words in the reader table, which every reader can
    /// write: no syscall on any path, but the readers of the object must trust
    /// one another (a hostile one could clear another's pin or truncate the
    /// table). `true`: pins are OFD read locks on the data segment, taken with a
    /// read-only descriptor: readers need no write access at all and cannot
    /// disturb each other or the writer, for syscalls: per publish a probe of
    /// the chosen slot's lock byte (one more per candidate slot a reader holds)
    /// plus a futex wake (readers cannot register as waiters), per
    /// new-generation read an unlock of the old slot and a lock of the new one.
    /// That is microseconds where table pins take tens of nanoseconds at small
    /// sizes (BENCHMARKS.md, "Side by side", has the figures of its 2-vCPU VM);
    /// unchanged reads stay one load. Default: `true` exactly when `mode` lets
    /// other users read the object.
    pub fn lock_pins(mut self, yes: bool) -> Self {
        self.lock_pins = Some(yes);
        self
    }

    /// The shm format the writer writes (docs/COMPATIBILITY.md, "Upgrading
    /// the library across a fleet"): 3, this build's (the default), or 2,
    /// the previous one, which the builds that know only format 2 read and
    /// write. A format 2 object is format 3 without the per-slot pin counts,
    /// and its readers do not pass wake-ups on: each publish then loads every
    /// reader's pin (O(readers), as format 2 builds do) instead of one count
    /// per slot, and wakes every waiting reader instead of one. Readers of
    /// this build read both formats.
    ///
    /// Without this option a writer creates objects in format 3, takes over
    /// one in format 3, and refuses one in format 2 with
    /// [`OpenError::FormatVersion`] (which says to choose). With it,
    /// `open_or_create` creates the object in `version`, takes it over if it
    /// is in `version`, and otherwise (no live writer holds it) **replaces**
    /// it by a new object in `version` under the same name, whose
    /// generations continue above the old one's: readers that follow
    /// ([`ReaderOptions::follow`](crate::ReaderOptions::follow)) move to it
    /// at its first publish and read the old one until then; readers that do
    /// not follow get `Replaced`. `create` creates in `version`. Shared
    /// writers ([`shared`](Self::shared)) never replace: an object of
    /// another format is `FormatVersion` to them. Other versions are
    /// `InvalidOption`.
    ///
    /// ```
    /// # #[shmstate::shared] struct Config { port: u16 }
    /// # let name = format!("doc.format2.{}", std::process::id());
    /// // While programs built with a format 2 shmstate still share the object:
    /// let mut w = shmstate::Writer::<Config>::options().format_version(2).open_or_create(&name)?;
    /// w.publish(&Config { port: 80 })?;
    /// assert_eq!(shmstate::inspect(&name)?.format_version, 2);
    /// drop(w);
    /// // Once every program is upgraded: the object anew, in format 3 (the
    /// // old one's last publish, generation 2, repeated value 80 to tell its
    /// // readers to leave).
    /// let mut w = shmstate::Writer::<Config>::options().format_version(3).open_or_create(&name)?;
    /// let g = w.publish(&Config { port: 81 })?;
    /// assert_eq!((shmstate::inspect(&name)?.format_version, g.get()), (3, 3));
    /// # shmstate::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn format_version(mut self, version: u32) -> Self {
        self.format = Some(version);
        self
    }

    /// The format this writer writes, and whether it was chosen.
    pub(crate) fn format(&self) -> (u32, bool) {
        (self.format.unwrap_or(FORMAT_VERSION), self.format.is_some())
    }

    /// Lets several processes write the object (docs/SEVERAL_WRITERS.md).
    ///
    /// Every process that opens it with `shared(true)` gets a writer; their
    /// publishes (and [`Writer::update`](crate::Writer::update)s) are
    /// serialized by a lock the kernel releases when its holder dies, and each
    /// continues the generations of the others: readers see nothing new.
    /// A writer that opens without it gets `WriterBusy` while shared writers
    /// live, and the other way round. Not with lanes (yet). Default `false`.
    pub fn shared(mut self, yes: bool) -> Self {
        self.shared = yes;
        self
    }

    /// Waits up to `timeout` for the writer that holds the object to go away
    /// (`open_or_create` only), instead of failing at once with `WriterBusy`:
    /// a standby process becomes the writer as soon as the active one exits
    /// or dies (the kernel releases its lock), and continues its generations.
    /// It looks for the lock every millisecond.
    pub fn wait_for_lock(mut self, timeout: std::time::Duration) -> Self {
        self.wait_for_lock = Some(timeout);
        self
    }

    pub(crate) fn uses_lock_pins(&self) -> bool {
        self.lock_pins.unwrap_or(self.mode & 0o077 != 0)
    }

    pub(crate) fn check(&self, name: &str) -> Result<(), OpenError> {
        let bad = |what: String| Err(OpenError::InvalidOption { name: name.into(), what });
        if self.slots < 2 {
            return bad(format!("slots = {} (at least 2)", self.slots));
        }
        if self.max_readers == 0 || self.max_readers > MAX_READERS {
            return bad(format!("max_readers = {} (1..={MAX_READERS})", self.max_readers));
        }
        if self.max_slots() > MAX_SLOTS {
            return bad(format!("slots + max_readers too large ({} slots, limit {MAX_SLOTS})", self.max_slots()));
        }
        if let Some(v) = self.format.filter(|&v| v != FORMAT_VERSION && v != PREVIOUS_FORMAT) {
            return bad(format!("format_version = {v} (this build writes {PREVIOUS_FORMAT} and {FORMAT_VERSION})"));
        }
        if self.mode & !0o777 != 0 {
            return bad(format!("mode {:#o} has bits outside 0o777", self.mode));
        }
        if self.mode & 0o600 != 0o600 {
            return bad(format!("mode {:#o} must let the owner read and write", self.mode));
        }
        if self.shared && self.remove_on_drop {
            return bad("remove_on_drop with shared writers (the first to go would remove the others' object)".into());
        }
        if self.shared && !self.lanes.is_empty() {
            return bad("lanes with shared writers (not supported yet: docs/SEVERAL_WRITERS.md)".into());
        }
        Ok(())
    }

    /// Live readers pin at most one slot each; with two more (current and the one
    /// being written) the writer never runs out while readers behave.
    pub(crate) fn max_slots(&self) -> u32 {
        self.slots.max(self.max_readers.saturating_add(2)).min(MAX_SLOTS + 1)
    }
}

impl<T: Shared> WriterOptions<T> {
    /// Also publishes every value as a `U`, made by `convert`, for readers
    /// of `U` (a lane; docs/DEPLOYING.md "Lanes"). Each publish then
    /// serializes once more per lane, under the same generation number.
    ///
    /// With a lane of `U`, `open_or_create` takes over an object that holds
    /// `U` under the plain name (the previous version's writer): its readers
    /// keep reading, now the converted values, and `T` goes into the lane
    /// `name@<fingerprint of T>`, where readers of `T` find it.
    pub fn lane<U: Shared>(mut self, convert: impl Fn(&T) -> U + Send + Sync + 'static) -> Self {
        self.lanes.push(LaneSpec::of(convert));
        self
    }

    /// [`lane`](Self::lane) for a `U` that every `T` contains (a new version
    /// that wraps the old one): `project` borrows it, so a publish serializes
    /// it in place, with no conversion (for a 10 KB value, the clone a
    /// `lane(|v| v.old.clone())` makes costs about as much as a publish;
    /// BENCHMARKS.md "Lanes").
    ///
    /// ```
    /// # let name = format!("doc-lane-ref-{}", std::process::id());
    /// #[shmstate::shared]
    /// struct V1 { port: u16 }
    /// #[shmstate::shared]
    /// struct V2 { v1: V1, zone: String }
    ///
    /// let mut w = shmstate::Writer::<V2>::options().lane_ref(|v: &V2| &v.v1).create(&name)?;
    /// w.publish(&V2 { v1: V1 { port: 8080 }, zone: "eu".into() })?;
    /// let mut r = shmstate::Reader::<V1>::open(&name)?;
    /// assert_eq!(r.read()?.port, 8080);
    /// # drop(r); drop(w); shmstate::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lane_ref<U: Shared>(mut self, project: impl Fn(&T) -> &U + Send + Sync + 'static) -> Self {
        self.lanes.push(LaneSpec::of_ref(project));
        self
    }
}
