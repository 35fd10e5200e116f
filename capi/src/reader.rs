//! The reader behind `shmstate_reader`: a [`RawReader`] (one pin), the stored
//! schema, and the snapshot it holds pinned for C.
//!
//! # Safety
//! The `unsafe` here (besides `hold_value`, whose contract map.rs keeps) rebuilds the pinned snapshot's bytes from the pointer
//! `RawReader::read` returned. That is sound because the pin is kept and the
//! `RawReader` is not used mutably (no re-pin, no remap) until `held` is
//! cleared, which every path that touches `raw` mutably does first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use shmstate_core::dynamic::{validate, Cursor, DecodeError, Limits, Node, Shape};
use shmstate_core::schema::SchemaDoc;
use shmstate_core::{Generation, RawReader};

use crate::error::{self, Error, Result};

/// How often the slow path of `read` checks that the name still refers to
/// the object (two `stat`s): the typed `Reader`'s interval.
const NAME_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How a reader was opened (`shmstate_open_options`).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub follow: bool,
    pub init_timeout: Duration,
    pub writer_grace: Duration,
    pub wait_for_writer: Option<Duration>,
}

/// The pinned snapshot.
#[derive(Debug, Clone, Copy)]
struct Held {
    generation: Generation,
    ptr: *const u8,
    len: usize,
}

/// What `shmstate_reader *` points to (and `shmstate_snapshot *`: a reader
/// holds at most one snapshot, so the snapshot handle is the reader itself).
///
/// Not `Send` (its caches are `Rc`s), yet C may move a reader to another
/// thread between calls: every `Rc` lives inside the reader, so it moves
/// whole, and the caller's hand-over orders the two threads' accesses.
pub struct Reader {
    name: String,
    raw: RawReader,
    schema: SchemaDoc,
    options: Options,
    held: Option<Held>,
    /// Bumped whenever `held` changes: a `shmstate_value` remembers it, so
    /// one taken from an earlier snapshot is refused, not misread.
    epoch: u32,
    /// The last snapshot validated: (incarnation, generation).
    validated: Option<(u64, Generation)>,
    name_checked: Instant,
    /// A wait found the name replaced: the next slow path looks at once.
    check_now: bool,
    /// The object that replaced this one under the name (when following),
    /// until it has published.
    successor: Option<(RawReader, SchemaDoc)>,
    /// Per held snapshot (immutable while held), cleared with it: each
    /// node's expansion (strings handed to C live in them) and each path's
    /// node. A second look at the same value is a hash lookup instead of a
    /// decoding step.
    shapes: RefCell<FastMap<Node, Rc<Shape>>>,
    paths: RefCell<FastMap<Box<[u8]>, Node>>,
    /// The schema as text, made on first request.
    schema_text: Option<String>,
    /// `shmstate_reader_fd`'s helper, started on first request.
    notifier: Option<crate::notify::Notifier>,
}

fn open_raw(name: &str, options: &Options) -> Result<(RawReader, SchemaDoc)> {
    let raw = match options.wait_for_writer {
        Some(timeout) => RawReader::open_when_published(name, timeout, options.writer_grace),
        None => RawReader::open(name, options.init_timeout),
    }
    .map_err(error::from_open)?;
    let schema = raw.schema().map_err(|e| Error::new(error::CORRUPT, format!("{name}: stored schema: {e}")))?;
    Ok((raw, schema))
}

impl Reader {
    pub fn open(name: &str, options: Options) -> Result<Self> {
        let (raw, schema) = open_raw(name, &options)?;
        Ok(Reader {
            name: name.to_string(),
            raw,
            schema,
            options,
            held: None,
            epoch: 0,
            validated: None,
            name_checked: Instant::now(),
            check_now: false,
            successor: None,
            shapes: RefCell::default(),
            paths: RefCell::default(),
            schema_text: None,
            notifier: None,
        })
    }

    /// The holder of a map's values (`map.rs`): `raw` is the map's root
    /// object, opened for its name checks only and never read; the held
    /// bytes are the value blocks the map's owner gives [`hold_value`](Self::hold_value).
    pub fn for_map_values(name: &str, schema: SchemaDoc) -> Result<Self> {
        let options = Options {
            follow: false,
            init_timeout: Duration::from_secs(1),
            writer_grace: Duration::from_secs(3),
            wait_for_writer: None,
        };
        let mut r = Reader::open(name, options)?;
        r.schema = schema;
        Ok(r)
    }

    /// Holds `bytes` as the snapshot of `generation` (values taken before are stale).
    ///
    /// # Safety
    /// `bytes` passed `validate` under this reader's schema and stay
    /// unchanged until the next `hold_value` or `release`: the caller's own
    /// pin (a map generation) keeps them.
    #[allow(unsafe_code)]
    pub unsafe fn hold_value(&mut self, generation: Generation, bytes: &[u8]) {
        self.release();
        self.held = Some(Held { generation, ptr: bytes.as_ptr(), len: bytes.len() });
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn schema(&self) -> &SchemaDoc {
        &self.schema
    }

    pub fn schema_text(&mut self) -> &str {
        let schema = &self.schema;
        self.schema_text.get_or_insert_with(|| schema.to_string())
    }

    /// The event fd (`shmstate_reader_fd`), the same one on every call.
    pub fn fd(&mut self) -> Result<std::os::fd::RawFd> {
        if self.notifier.is_none() {
            let n = crate::notify::Notifier::start(&self.name, self.options.follow, self.options.writer_grace)?;
            self.notifier = Some(n);
        }
        Ok(self.notifier.as_ref().expect("started above").fd())
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The latest published generation: one atomic load.
    #[inline]
    pub fn latest(&self) -> Generation {
        self.raw.generation()
    }

    /// Whether the snapshot held is the latest (and no replacement is to be
    /// looked at): one load.
    #[inline]
    pub fn holds_latest(&self) -> bool {
        self.held.as_ref().is_some_and(|h| self.raw.generation() == h.generation) && !self.check_now
    }

    /// Pins the latest snapshot (validated once per generation), keeping the
    /// one held if it is still the latest: then one load and nothing else.
    #[inline]
    pub fn read(&mut self) -> Result<()> {
        if self.holds_latest() {
            return Ok(());
        }
        self.read_slow()
    }

    #[cold]
    fn read_slow(&mut self) -> Result<()> {
        self.release();
        let forced = std::mem::take(&mut self.check_now);
        self.notice_replacement(forced)?;
        let incarnation = self.raw.incarnation();
        let (generation, bytes) = self.raw.read().map_err(error::from_read)?;
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        let fresh = self.validated != Some((incarnation, generation));
        let checked = if fresh { validate(&self.schema, bytes, Limits::default()) } else { Ok(()) };
        if let Err(e) = checked {
            self.raw.release();
            return Err(error::from_decode(&self.name, generation.get(), e));
        }
        self.validated = Some((incarnation, generation));
        self.held = Some(Held { generation, ptr, len });
        Ok(())
    }

    /// Lets go of the snapshot (if any): its values and pointers are invalid from now on.
    pub fn release(&mut self) {
        if self.held.take().is_some() {
            self.raw.release();
            self.shapes.get_mut().clear();
            self.paths.get_mut().clear();
        }
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// On a slow path: has the name come to refer to another object (or the
    /// layout moved)? Checked at once when the layout moved or `forced`, else
    /// at most every [`NAME_CHECK_INTERVAL`]. Not following: `REPLACED`.
    /// Following: switches to the new object once it has published (and
    /// until then reads the old one). Call with nothing held.
    fn notice_replacement(&mut self, forced: bool) -> Result<()> {
        if self.successor.is_none() {
            let due = forced || self.raw.moved() || self.name_checked.elapsed() >= NAME_CHECK_INTERVAL;
            if !due {
                return Ok(());
            }
            self.name_checked = Instant::now();
            let superseded = self
                .raw
                .superseded()
                .map_err(|errno| Error::new(error::OS, format!("{}: checking the name: {errno}", self.name)))?;
            if !superseded {
                return Ok(());
            }
            if !self.options.follow {
                return Err(Error::new(
                    error::REPLACED,
                    format!("{}: the name refers to another object now (removed and created again, or its layout moved); open it again", self.name),
                ));
            }
            let quick = Options { wait_for_writer: None, init_timeout: Duration::ZERO, ..self.options };
            match open_raw(&self.name, &quick) {
                Ok(next) => self.successor = Some(next),
                // Not there yet (or still initialising): serve the old one, look again later.
                Err(e) if e.code == error::NOT_FOUND || e.code == error::NOT_INITIALIZED => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.switch_if_published();
        Ok(())
    }

    fn switch_if_published(&mut self) {
        let published = self.successor.as_ref().is_some_and(|(raw, _)| raw.generation() > Generation::NONE);
        if let (true, Some((raw, schema))) = (published, self.successor.take()) {
            debug_assert!(self.held.is_none());
            self.raw = raw;
            self.schema = schema;
            self.schema_text = None;
            self.validated = None;
            self.name_checked = Instant::now();
        }
    }

    /// Blocks until a generation newer than `than` is published and returns
    /// it (futex, no polling). A replaced object is `REPLACED`, or, when
    /// following, ends the wait with the new object's generation once it has
    /// published (the next `read` switches to it).
    pub fn wait_newer(&mut self, than: Generation, timeout: Duration) -> Result<Generation> {
        let deadline = Instant::now() + timeout;
        if let Some((raw, _)) = &self.successor {
            if raw.generation() > Generation::NONE {
                return Ok(raw.generation());
            }
        }
        match self.raw.wait_newer_with_grace(than, timeout, self.options.writer_grace) {
            Ok(g) => Ok(g),
            Err(shmstate_core::WaitError::Replaced { .. }) if self.options.follow => {
                let left = deadline.saturating_duration_since(Instant::now());
                let wait = Options { wait_for_writer: Some(left), ..self.options };
                let next = open_raw(&self.name, &wait).map_err(|e| match e.code {
                    // Removed, and nothing created under the name within the timeout.
                    error::NOT_FOUND => Error::new(error::TIMEOUT, e.message),
                    _ => e,
                })?;
                let g = next.0.generation();
                self.successor = Some(next);
                // The next `read` switches (not the fast path of the old snapshot).
                self.check_now = true;
                if g == Generation::NONE {
                    return Err(Error::new(
                        error::TIMEOUT,
                        format!("{}: the replacing object has not published yet", self.name),
                    ));
                }
                Ok(g)
            }
            Err(e) => {
                self.check_now = matches!(e, shmstate_core::WaitError::Replaced { .. });
                Err(error::from_wait(e))
            }
        }
    }

    /// The held snapshot's generation and bytes.
    pub fn snapshot(&self) -> Result<(Generation, &[u8])> {
        let h = self.held.as_ref().ok_or_else(|| {
            Error::new(error::NO_SNAPSHOT, format!("{}: no snapshot is held (call shmstate_read first)", self.name))
        })?;
        // SAFETY:
        // (for a map's value holder, `hold_value`'s contract gives the same)
        // - `ptr..ptr+len` is the slot `RawReader::read` returned, inside the mapping;
        // - the slot is still pinned: `held` is cleared (and the pin dropped) before
        //   any re-pin, remap or switch of `raw` (`release`, `read_slow`);
        // - a pinned slot is immutable (docs/DESIGN.md invariant 1), so a shared
        //   slice over it is sound for as long as `&self` lives.
        #[allow(unsafe_code)]
        let bytes = unsafe { std::slice::from_raw_parts(h.ptr, h.len) };
        Ok((h.generation, bytes))
    }

    pub fn cursor(&self) -> Result<Cursor<'_, '_>> {
        let (_, bytes) = self.snapshot()?;
        Ok(Cursor::new(&self.schema, bytes, Limits::default()))
    }

    /// `node` one level deep (`Cursor::expand`), once per held snapshot.
    pub fn expand(&self, node: Node) -> Result<Rc<Shape>> {
        if let Some(shape) = self.shapes.borrow().get(&node) {
            return Ok(Rc::clone(shape));
        }
        let shape = Rc::new(self.cursor()?.expand(node).map_err(|e| self.decode_error(e))?);
        self.shapes.borrow_mut().insert(node, Rc::clone(&shape));
        Ok(shape)
    }

    pub fn decode_error(&self, e: DecodeError) -> Error {
        let generation = self.held.map_or(0, |h| h.generation.get());
        error::from_decode(&self.name, generation, e)
    }

    /// The node a path from the root led to in the held snapshot, if walked before.
    pub fn path_node(&self, path: &[u8]) -> Option<Node> {
        self.paths.borrow().get(path).copied()
    }

    pub fn remember_path(&self, path: &[u8], node: Node) {
        self.paths.borrow_mut().insert(path.into(), node);
    }
}

/// The caches' maps. Their keys are byte positions inside one snapshot and
/// the caller's own paths: a fast multiplicative hash will do (the default
/// SipHash costs more than the lookup it serves). Colliding keys could only
/// slow lookups down, never change what they find.
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
