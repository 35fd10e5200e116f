//! [`MapReader`]: a `Reader` of the map's root record plus a read-only
//! mapping of its pages segment.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{OpenError, ReadError, WaitError};
use crate::map::format::{ArchivedMapRoot, MapRoot, MAX_HEIGHT};
use crate::map::key::MapKey;
use crate::map::pages::Pages;
use crate::map::snapshot::MapSnapshot;
use crate::map::validated::Validated;
use crate::map::view::View;
use crate::schema::SchemaDiff;
use crate::{Generation, Reader, Shared};

/// Reads a map of `K` to `V` that a [`MapWriter`](crate::map::MapWriter)
/// publishes, from any process. Not `Sync`: one per thread.
pub struct MapReader<K, V> {
    name: String,
    root: Reader<MapRoot>,
    pages: Pages,
    validated: Validated,
    /// `fingerprint_of::<V>()`, looked up once.
    value_fingerprint: u64,
    /// The generation whose root record was last checked (type, pages, height).
    checked: u64,
    /// The encoding of the key being looked up (no allocation per `get`).
    scratch: RefCell<Vec<u8>>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for MapReader<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapReader").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Opens of the root and pages that may pair two incarnations before giving up.
const OPEN_ATTEMPTS: usize = 3;

impl<K: MapKey, V: Shared> MapReader<K, V> {
    /// Opens the map `name`: its root object (checked as any `Reader` checks
    /// it), its first root record (key and value types) and its pages segment.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        const { assert!(core::mem::align_of::<V::Archived>() <= 16, "archived alignment above 16 is not supported") };
        let value_fingerprint = crate::schema::fingerprint_of::<V>();
        for _ in 0..OPEN_ATTEMPTS {
            let mut root = Reader::<MapRoot>::open(name)?;
            let incarnation = {
                let first = root.read().map_err(|e| into_open_error(name, e))?;
                check_types::<K>(name, &first, value_fingerprint, std::any::type_name::<V>())?;
                first.pages_incarnation.to_native()
            };
            let pages = Pages::open(name, false)?;
            if pages.incarnation() != incarnation {
                // The map was removed and created again between the two opens.
                continue;
            }
            return Ok(MapReader {
                name: name.into(),
                root,
                pages,
                validated: Validated::default(),
                value_fingerprint,
                checked: 0,
                scratch: RefCell::new(Vec::new()),
                _types: PhantomData,
            });
        }
        Err(OpenError::Corrupt { name: name.into(), what: "the pages segment belongs to another incarnation".into() })
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The latest committed generation, pinned until the next `read`. An
    /// unchanged generation is one atomic load; a new one validates the root
    /// record (bytecheck) and maps the pages it uses; nodes and values are
    /// validated when a `get` or an iteration first touches them.
    #[inline]
    pub fn read(&mut self) -> Result<MapSnapshot<'_, K, V>, ReadError> {
        let snap = self.root.read()?;
        let generation = snap.generation().get();
        if generation != self.checked {
            check_generation(&self.name, &mut self.pages, &snap, K::KIND, self.value_fingerprint)?;
            self.checked = generation;
        }
        let view = View {
            pages: &self.pages,
            validated: &self.validated,
            name: &self.name,
            limit: snap.pages_len.to_native(),
            root: snap.root(),
            height: snap.height.to_native(),
            generation,
        };
        Ok(MapSnapshot { view, len: snap.len.to_native(), scratch: &self.scratch, _types: PhantomData })
    }

    /// Drops the pin on the generation read last, so that the writer can
    /// reuse what only it reached (a reader that sits idle holds it otherwise).
    pub fn release(&mut self) {
        self.root.release();
    }

    /// Blocks until a generation newer than `than` is committed (see
    /// [`Reader::wait_newer`]).
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        self.root.wait_newer(than, timeout)
    }
}

/// The checks of a root record not seen before: its pages are mapped and
/// of this incarnation, it holds `key_kind` to `value_fingerprint`, its
/// height fits (the typed and the type-erased reader).
pub(crate) fn check_generation(
    name: &str,
    pages: &mut Pages,
    snap: &ArchivedMapRoot,
    key_kind: &str,
    value_fingerprint: u64,
) -> Result<(), ReadError> {
    let limit = snap.pages_len.to_native();
    let corrupt = |what: String| ReadError::Corrupt { name: name.into(), what };
    match pages.ensure_mapped(limit) {
        Ok(true) => {}
        Ok(false) => return Err(corrupt(format!("pages_len {limit} beyond the pages segment"))),
        Err(errno) => return Err(ReadError::Os { name: name.into(), op: "remapping the pages", errno }),
    }
    if snap.pages_incarnation.to_native() != pages.incarnation() {
        return Err(ReadError::Replaced { name: name.into() });
    }
    if snap.value_fingerprint.to_native() != value_fingerprint || snap.key_kind.as_str() != key_kind {
        return Err(corrupt("a root record of another key or value type".into()));
    }
    let height = snap.height.to_native();
    if height > MAX_HEIGHT || (height == 0) != (snap.root_len.to_native() == 0) {
        return Err(corrupt(format!("height {height} with a root of {} bytes", snap.root_len)));
    }
    Ok(())
}

pub(crate) fn into_open_error(name: &str, e: ReadError) -> OpenError {
    match e {
        ReadError::Empty { .. } => OpenError::NotInitialized { name: name.into() },
        ReadError::Open(e) => e,
        e => OpenError::Corrupt { name: name.into(), what: e.to_string() },
    }
}

fn check_types<K: MapKey>(
    name: &str,
    root: &crate::map::format::ArchivedMapRoot,
    value_fingerprint: u64,
    value_name: &str,
) -> Result<(), OpenError> {
    let (kind, fp) = (root.key_kind.as_str(), root.value_fingerprint.to_native());
    if kind == K::KIND && fp == value_fingerprint {
        return Ok(());
    }
    Err(OpenError::TypeMismatch {
        name: name.into(),
        expected: format!("map of {} to {value_name} ({value_fingerprint:016x})", K::KIND),
        found: format!("map of {kind} to a value of fingerprint {fp:016x}"),
        diff: SchemaDiff::default(),
    })
}
