//! [`MapWriter`]: stages changes and commits them as one generation, writing
//! only the changed values, the nodes on their paths and a new root
//! (docs/MAP.md, "A commit").

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use rkyv::util::AlignedVec;

use crate::error::{OpenError, PublishError};
use crate::map::blocks::Blocks;
use crate::map::format::{BlockRef, MapRoot, Node};
use crate::map::key::MapKey;
use crate::map::pages::Pages;
use crate::map::tree::{Op, Tree};
use crate::{Generation, Reader, Shared, Writer, WriterOptions};

/// The single writer of a map of `K` to `V`.
///
/// Holds the root object's writer lock for its life; a writer that dies (even
/// mid-commit) leaves the last committed generation current and intact, and
/// [`open_or_create`](Self::open_or_create) in another process takes over.
pub struct MapWriter<K, V> {
    core: Core,
    /// Staged changes: a value to insert, or `None` to remove.
    staged: BTreeMap<Vec<u8>, Option<V>>,
    _key: PhantomData<fn(K)>,
}

/// What a map writer is without its Rust types (shared by [`MapWriter`] and
/// [`RawMapWriter`](crate::map::RawMapWriter)): the tree, the blocks and
/// the root object.
pub(crate) struct Core {
    pub(crate) name: String,
    root: Writer<MapRoot>,
    pages: Pages,
    blocks: Blocks,
    pub(crate) tree: Tree,
    max_size: u64,
    incarnation: u64,
    key_kind: String,
    value_fingerprint: u64,
    /// Where values are archived before their block is chosen.
    scratch: AlignedVec<16>,
    /// When dead readers were last looked for (`reclaim`).
    last_thorough: Option<Instant>,
}

/// What a map's type is, for [`Core::open`].
pub(crate) struct MapType<'a> {
    pub(crate) key_kind: &'a str,
    pub(crate) value_fingerprint: u64,
    /// The value type's encoded schema (written into a new map's pages).
    pub(crate) schema: &'a [u8],
    /// The value type's name, for a type-mismatch error.
    pub(crate) value_name: &'a str,
}

impl<K, V> std::fmt::Debug for MapWriter<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWriter")
            .field("name", &self.core.name)
            .field("len", &self.core.tree.len)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

/// How often, at most, a commit whose garbage is held looks for dead readers
/// (one lock syscall per reader entry with a pin).
const THOROUGH_EVERY: Duration = Duration::from_millis(100);

impl<K: MapKey, V: Shared> MapWriter<K, V> {
    /// Default options of the root object (`mode`, `max_size` also bound
    /// the pages segment). Lock pins are refused: a map needs table pins.
    pub fn options() -> WriterOptions<MapRoot> {
        Writer::<MapRoot>::options()
    }

    /// Creates a new, empty map (committed as generation 1); `AlreadyExists`
    /// if an object of the name exists.
    pub fn create(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, Self::options(), false)
    }

    /// Creates the map, or takes over one whose writer is gone (same key and
    /// value types): its tree is read back and checked, and commits continue.
    pub fn open_or_create(name: &str) -> Result<Self, OpenError> {
        Self::open_with(name, Self::options(), true)
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(name: &str, opts: WriterOptions<MapRoot>) -> Result<Self, OpenError> {
        Self::open_with(name, opts, false)
    }

    /// [`open_or_create`](Self::open_or_create) with options.
    pub fn open_or_create_with(name: &str, opts: WriterOptions<MapRoot>) -> Result<Self, OpenError> {
        Self::open_with(name, opts, true)
    }

    fn open_with(name: &str, opts: WriterOptions<MapRoot>, take_over: bool) -> Result<Self, OpenError> {
        const { assert!(core::mem::align_of::<V::Archived>() <= 16, "archived alignment above 16 is not supported") };
        let schema = crate::schema::schema_of::<V>().encode();
        let ty = MapType {
            key_kind: K::KIND,
            value_fingerprint: crate::schema::fingerprint_of::<V>(),
            schema: &schema,
            value_name: std::any::type_name::<V>(),
        };
        let core = Core::open(name, opts, take_over, &ty)?;
        Ok(MapWriter { core, staged: BTreeMap::new(), _key: PhantomData })
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Entries as of the last commit (staged changes not counted).
    pub fn len(&self) -> u64 {
        self.core.tree.len
    }

    /// Whether the last commit left the map empty.
    pub fn is_empty(&self) -> bool {
        self.core.tree.len == 0
    }

    /// Changes staged for the next commit.
    pub fn staged(&self) -> usize {
        self.staged.len()
    }

    /// The generation the next commit will get.
    pub fn next_generation(&self) -> Generation {
        self.core.root.next_generation()
    }

    /// Stages `key = value` (replacing an earlier staged change of `key`).
    pub fn insert(&mut self, key: K, value: V) {
        self.staged.insert(key.to_key_bytes(), Some(value));
    }

    /// Stages the removal of `key` (nothing if it is absent at commit).
    pub fn remove(&mut self, key: &K) {
        self.staged.insert(key.to_key_bytes(), None);
    }

    /// Stages every pair of `entries`.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = (K, V)>) {
        for (k, v) in entries {
            self.insert(k, v);
        }
    }

    /// Publishes every staged change as one new generation, writing only the
    /// changed values, the nodes on their paths and a new root. Never waits
    /// for readers. On error nothing is published: an error while writing
    /// values keeps the changes staged; a later one (growing the pages,
    /// publishing the root) leaves them applied here, published by the next
    /// commit that succeeds.
    pub fn commit(&mut self) -> Result<Generation, PublishError> {
        self.core.commit(&mut self.staged, &mut |v: &V, scratch| crate::archive::archive_into(v, scratch))
    }
}

impl Core {
    /// Opens or creates the map `name` of type `ty`: a new map gets the
    /// schema block and an empty first commit; an existing one (`take_over`)
    /// must be of `ty` and has its tree read back.
    pub(crate) fn open(
        name: &str,
        mut opts: WriterOptions<MapRoot>,
        take_over: bool,
        ty: &MapType<'_>,
    ) -> Result<Self, OpenError> {
        let refuse = |what: &str| OpenError::InvalidOption { name: name.into(), what: what.into() };
        if opts.lock_pins == Some(true) || !opts.lanes.is_empty() || opts.shared {
            // One writer's mirror of the tree is the map's only free-space map.
            return Err(refuse("a map's root object needs table pins, no lanes and a single writer"));
        }
        opts.lock_pins = Some(false);
        let (max_size, mode) = (opts.max_size, opts.mode);
        let mut root = if take_over { opts.open_or_create(name)? } else { opts.create(name)? };
        if root.oldest_held(false).is_none() {
            return Err(refuse("the object uses lock pins: it is no map"));
        }
        let value_fingerprint = ty.value_fingerprint;
        // Nothing published yet: a new map, or a creator that died before
        // its first commit was published.
        let fresh = root.next_generation().get() == 1 || !has_published(name)?;
        if !fresh {
            return Self::take_over(name, root, max_size, ty);
        }
        let incarnation = crate::os::random_id();
        let mut pages = Pages::create(name, mode, incarnation)?;
        let mut blocks = Blocks::new();
        write_schema(ty.schema, &mut blocks, &mut pages, max_size)
            .map_err(|e| OpenError::Corrupt { name: name.into(), what: format!("writing the value schema: {e}") })?;
        let mut w = Core {
            name: name.into(),
            root,
            pages,
            blocks,
            tree: Tree::empty(),
            max_size,
            incarnation,
            key_kind: ty.key_kind.into(),
            value_fingerprint,
            scratch: AlignedVec::new(),
            last_thorough: None,
        };
        w.commit::<()>(&mut BTreeMap::new(), &mut |_, _| Ok(0))
            .map_err(|e| OpenError::Corrupt { name: name.into(), what: format!("first commit: {e}") })?;
        Ok(w)
    }

    /// Reads the current root back (through a reader of our own object) and
    /// rebuilds the tree mirror and the free space from it.
    fn take_over(name: &str, root: Writer<MapRoot>, max_size: u64, ty: &MapType<'_>) -> Result<Self, OpenError> {
        let value_fingerprint = ty.value_fingerprint;
        let corrupt = |what: String| OpenError::Corrupt { name: name.into(), what };
        let mut reader = Reader::<MapRoot>::open(name)?;
        let snap = reader.read().map_err(|e| corrupt(format!("reading the root record: {e}")))?;
        let current = snap.generation().get();
        if snap.key_kind.as_str() != ty.key_kind || snap.value_fingerprint.to_native() != value_fingerprint {
            return Err(OpenError::TypeMismatch {
                name: name.into(),
                expected: format!("map of {} to {} ({value_fingerprint:016x})", ty.key_kind, ty.value_name),
                found: format!("map of {} to a value of fingerprint {:016x}", snap.key_kind, snap.value_fingerprint),
                diff: Default::default(),
            });
        }
        let pages = Pages::open(name, true)?;
        let incarnation = snap.pages_incarnation.to_native();
        if pages.incarnation() != incarnation {
            return Err(corrupt("the pages segment belongs to another incarnation".into()));
        }
        let pages_len = snap.pages_len.to_native();
        if pages_len > pages.mapped() {
            return Err(corrupt(format!("pages_len {pages_len} beyond the pages segment")));
        }
        let mut extents = Vec::new();
        let tree = Tree::load(&pages, snap.root(), snap.height.to_native(), pages_len, &mut extents)
            .map_err(|e| corrupt(format!("the current tree: {e}")))?;
        if let Some(schema) = pages.schema() {
            if !pages.in_bounds(schema, pages_len) {
                return Err(corrupt(format!(
                    "a value schema block [{}, +{}) outside the pages",
                    schema.offset, schema.len
                )));
            }
            extents.push((schema.offset, crate::map::format::class_of(schema.len as u64)));
        }
        let blocks = Blocks::rebuild(extents, pages_len, snap.next_serial.to_native(), current).map_err(corrupt)?;
        drop(reader);
        Ok(Core {
            name: name.into(),
            root,
            pages,
            blocks,
            tree,
            max_size,
            incarnation,
            key_kind: ty.key_kind.into(),
            value_fingerprint,
            scratch: AlignedVec::new(),
            last_thorough: None,
        })
    }

    /// [`RawWriter::set_origin`](crate::RawWriter::set_origin) of the root object.
    pub(crate) fn set_origin(&mut self, host: &str, generation: Generation) {
        self.root.set_origin(host, generation);
    }

    /// Publishes every change of `staged` (taken; given back if a value
    /// cannot be written) as one new generation; `encode` archives a value
    /// into the scratch buffer and says its length.
    pub(crate) fn commit<T>(
        &mut self,
        staged: &mut BTreeMap<Vec<u8>, Option<T>>,
        encode: &mut dyn FnMut(&T, &mut AlignedVec<16>) -> Result<usize, String>,
    ) -> Result<Generation, PublishError> {
        let gen = self.root.next_generation().get();
        self.reclaim(gen - 1);
        let taken = std::mem::take(staged);
        let mut ops = Vec::with_capacity(staged.len());
        for (k, v) in &taken {
            let op = match v {
                None => Op::Delete,
                Some(v) => match self.write_value(v, encode) {
                    Ok(r) => Op::Put(r),
                    Err(e) => {
                        for (_, op) in &ops {
                            if let Op::Put(r) = op {
                                self.blocks.give_back(*r);
                            }
                        }
                        *staged = taken;
                        return Err(e);
                    }
                },
            };
            ops.push((k.clone(), op));
        }
        drop(taken);
        let blocks = &mut self.blocks;
        self.tree.apply(&ops, &mut |b| blocks.retire(b, gen));
        let (blocks, pages, max_size) = (&mut self.blocks, &mut self.pages, self.max_size);
        let root = self.tree.write_out(&mut |node| write_node(node, blocks, pages, max_size))?;
        #[cfg(feature = "fault-injection")]
        crate::os::fault::point("map-before-publish");
        let record = MapRoot {
            root_offset: root.offset,
            root_len: root.len,
            root_serial: root.serial,
            height: self.tree.height,
            len: self.tree.len,
            pages_incarnation: self.incarnation,
            pages_len: self.blocks.end(),
            next_serial: self.blocks.next_serial(),
            key_kind: self.key_kind.as_str().into(),
            value_fingerprint: self.value_fingerprint,
            live_bytes: self.blocks.live_bytes,
            garbage_bytes: self.blocks.garbage_bytes,
            free_bytes: self.blocks.free_bytes,
        };
        self.root.publish(&record)
    }

    /// Moves to the free lists the pending blocks no reader can reach any
    /// more (`Blocks::reclaim` with the oldest held generation). When some
    /// stay held, at most every `THOROUGH_EVERY` it also reclaims dead
    /// readers' pins, so a dead reader does not hold memory for good.
    fn reclaim(&mut self, current: u64) {
        let Some(oldest) = self.root.oldest_held(false) else { return };
        self.blocks.reclaim(oldest);
        let held = self.blocks.oldest_pending().is_some_and(|f| f <= current);
        if held && self.last_thorough.is_none_or(|t| t.elapsed() >= THOROUGH_EVERY) {
            self.last_thorough = Some(Instant::now());
            if let Some(oldest) = self.root.oldest_held(true) {
                self.blocks.reclaim(oldest);
            }
        }
    }

    /// Archives `value` into a new block.
    fn write_value<T>(
        &mut self,
        value: &T,
        encode: &mut dyn FnMut(&T, &mut AlignedVec<16>) -> Result<usize, String>,
    ) -> Result<BlockRef, PublishError> {
        let len = encode(value, &mut self.scratch)
            .map_err(|message| PublishError::Serialize { name: self.name.clone(), message })?;
        // A value whose archive is empty (`()`, a unit struct, `[T; 0]`) is
        // stored as `ZERO_SIZED_VALUE` zero bytes: blocks are never empty, and
        // the root (at the end) stays aligned for any archive alignment up to
        // 16; rkyv and the dynamic decoder ignore the bytes before a root.
        let bytes: &[u8] = if len == 0 { &[0; ZERO_SIZED_VALUE] } else { &self.scratch[..len] };
        let r = self.blocks.alloc(bytes.len() as u64, &mut self.pages, self.max_size)?;
        self.pages.write(r.offset, bytes);
        Ok(r)
    }
}

/// The block length of a value whose archive is empty (`BLOCK_ALIGN`).
const ZERO_SIZED_VALUE: usize = crate::map::format::BLOCK_ALIGN as usize;

/// Whether the root object `name` has a published generation.
fn has_published(name: &str) -> Result<bool, OpenError> {
    match Reader::<MapRoot>::open(name)?.read() {
        Ok(_) => Ok(true),
        Err(crate::ReadError::Empty { .. }) => Ok(false),
        Err(e) => Err(OpenError::Corrupt { name: name.into(), what: format!("reading the root record: {e}") }),
    }
}

/// Writes the value type's encoded schema into a block of a new map and records it in
/// the pages header (docs/MAP.md, "Pages segment and blocks").
fn write_schema(bytes: &[u8], blocks: &mut Blocks, pages: &mut Pages, max_size: u64) -> Result<(), PublishError> {
    let r = blocks.alloc(bytes.len() as u64, pages, max_size)?;
    pages.write(r.offset, bytes);
    pages.set_schema(r);
    Ok(())
}

/// Archives a node into a new block.
fn write_node(node: &Node, blocks: &mut Blocks, pages: &mut Pages, max_size: u64) -> Result<BlockRef, PublishError> {
    let bytes = rkyv::to_bytes::<rkyv::rancor::BoxedError>(node)
        .map_err(|e| PublishError::Serialize { name: pages.name().into(), message: e.to_string() })?;
    let r = blocks.alloc(bytes.len() as u64, pages, max_size)?;
    pages.write(r.offset, &bytes);
    Ok(r)
}
