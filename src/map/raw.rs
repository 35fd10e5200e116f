//! [`RawMapReader`]: a map read without its Rust key and value types. The
//! key type is the one the root record names ([`MapKeyKind`]); values are
//! decoded by the dynamic decoder with the value schema the writer stored in
//! the pages segment (docs/MAP.md, "Readers without the type").
#![allow(unsafe_code)]

use std::ops::Bound;
use std::time::Duration;

use crate::dynamic::{decode_with, validate, Limits, Value};
use crate::error::{OpenError, ReadError, WaitError};
use crate::map::format::{BlockRef, MapRoot};
use crate::map::key_kind::MapKeyKind;
use crate::map::pages::Pages;
use crate::map::reader::{check_generation, into_open_error};
use crate::map::validated::{Kind, Validated};
use crate::map::view::View;
use crate::map::walk::Walk;
use crate::schema::SchemaDoc;
use crate::{Generation, Reader};

/// Reads a map of any key and value types, from any process. Not `Sync`:
/// one per thread.
pub struct RawMapReader {
    name: String,
    root: Reader<MapRoot>,
    pages: Pages,
    validated: Validated,
    key_kind: MapKeyKind,
    key_name: String,
    schema: SchemaDoc,
    value_fingerprint: u64,
    checked: u64,
    limits: Limits,
    /// The generation the last `read` pinned (until the next `read` or `release`).
    pinned: Option<Pinned>,
}

/// What a snapshot of the pinned generation needs from its root record.
#[derive(Debug, Clone, Copy)]
struct Pinned {
    generation: u64,
    root: BlockRef,
    height: u32,
    stats: MapStats,
}

impl std::fmt::Debug for RawMapReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMapReader").field("name", &self.name).field("key", &self.key_kind).finish_non_exhaustive()
    }
}

impl RawMapReader {
    /// Opens the map `name`: its root object, its first root record (the key
    /// type) and its pages segment, whose stored value schema must match the
    /// root record's value fingerprint.
    pub fn open(name: &str) -> Result<Self, OpenError> {
        let corrupt = |what: String| OpenError::Corrupt { name: name.into(), what };
        let mut root = Reader::<MapRoot>::open(name)?;
        let (key_name, fingerprint, incarnation, pages_len) = {
            let first = root.read().map_err(|e| into_open_error(name, e))?;
            let f = (first.key_kind.as_str().to_owned(), first.value_fingerprint.to_native());
            (f.0, f.1, first.pages_incarnation.to_native(), first.pages_len.to_native())
        };
        let key_kind = MapKeyKind::from_name(&key_name)
            .ok_or_else(|| corrupt(format!("keys of type {key_name:?}, which this version cannot decode")))?;
        let pages = Pages::open(name, false)?;
        if pages.incarnation() != incarnation {
            return Err(corrupt("the pages segment belongs to another incarnation (the map was replaced)".into()));
        }
        let Some(r) = pages.schema() else {
            return Err(corrupt("no value schema in the pages segment (written by an older version)".into()));
        };
        let schema = read_schema(&pages, r, pages_len).map_err(corrupt)?;
        if schema.fingerprint() != fingerprint {
            return Err(corrupt(format!(
                "the stored value schema (fingerprint {:016x}) is not the root record's ({fingerprint:016x})",
                schema.fingerprint()
            )));
        }
        Ok(RawMapReader {
            name: name.into(),
            root,
            pages,
            validated: Validated::default(),
            key_kind,
            key_name,
            schema,
            value_fingerprint: fingerprint,
            checked: 0,
            limits: Limits::default(),
            pinned: None,
        })
    }

    /// Decodes values within `limits` from now on (default [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key type.
    pub fn key_kind(&self) -> MapKeyKind {
        self.key_kind
    }

    /// The value type's schema, as the writer stored it.
    pub fn schema(&self) -> &SchemaDoc {
        &self.schema
    }

    /// Bytes of the pages segment mapped by this reader.
    pub fn pages_mapped(&self) -> u64 {
        self.pages.mapped()
    }

    /// Pins the latest committed generation until the next `read` or
    /// [`release`](Self::release) (the same checks as the typed reader).
    pub fn read(&mut self) -> Result<RawMapSnapshot<'_>, ReadError> {
        self.pinned = None;
        let snap = self.root.read()?;
        let generation = snap.generation().get();
        if generation != self.checked {
            check_generation(&self.name, &mut self.pages, &snap, &self.key_name, self.value_fingerprint)?;
            self.checked = generation;
        }
        let stats = MapStats {
            len: snap.len.to_native(),
            pages_len: snap.pages_len.to_native(),
            live_bytes: snap.live_bytes.to_native(),
            garbage_bytes: snap.garbage_bytes.to_native(),
            free_bytes: snap.free_bytes.to_native(),
            height: snap.height.to_native(),
        };
        let pinned = Pinned { generation, root: snap.root(), height: stats.height, stats };
        self.pinned = Some(pinned);
        Ok(self.snapshot(pinned))
    }

    /// The generation the last [`read`](Self::read) pinned, again (no new
    /// pin, no newer generation); `None` after [`release`](Self::release)
    /// or before the first read.
    pub fn pinned(&self) -> Option<RawMapSnapshot<'_>> {
        self.pinned.map(|p| self.snapshot(p))
    }

    fn snapshot(&self, p: Pinned) -> RawMapSnapshot<'_> {
        // The root object's pin on `p.generation` lasts until the next
        // `read` or `release`, which both take `&mut self`.
        let view = View {
            pages: &self.pages,
            validated: &self.validated,
            name: &self.name,
            limit: p.stats.pages_len,
            root: p.root,
            height: p.height,
            generation: p.generation,
        };
        RawMapSnapshot { view, stats: p.stats, key_kind: self.key_kind, schema: &self.schema, limits: self.limits }
    }

    /// Drops the pin on the generation read last.
    pub fn release(&mut self) {
        self.pinned = None;
        self.root.release();
    }

    /// Blocks until a generation newer than `than` is committed.
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        self.root.wait_newer(than, timeout)
    }
}

/// The value schema's bytes, decoded.
fn read_schema(pages: &Pages, r: BlockRef, pages_len: u64) -> Result<SchemaDoc, String> {
    // SAFETY: the schema block is written once, before the first root is
    // published, and never freed or rewritten (a takeover keeps it live).
    let bytes = unsafe { pages.block(r, pages_len) }
        .ok_or_else(|| format!("a value schema block [{}, +{}) outside the pages in use", r.offset, r.len))?;
    SchemaDoc::decode(bytes).map_err(|e| format!("the stored value schema: {e}"))
}

/// What a generation's root record says of the map's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MapStats {
    /// Entries.
    pub len: u64,
    /// Bytes of the pages segment in use.
    pub pages_len: u64,
    /// Bytes of the blocks this generation reaches.
    pub live_bytes: u64,
    /// Bytes freed by earlier commits, awaiting reuse (a reader may hold them).
    pub garbage_bytes: u64,
    /// Bytes free for the next commits.
    pub free_bytes: u64,
    /// Levels of the tree.
    pub height: u32,
}

/// One pinned generation of a [`RawMapReader`].
pub struct RawMapSnapshot<'a> {
    pub(crate) view: View<'a>,
    stats: MapStats,
    key_kind: MapKeyKind,
    schema: &'a SchemaDoc,
    limits: Limits,
}

impl std::fmt::Debug for RawMapSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMapSnapshot").field("generation", &self.view.generation).field("stats", &self.stats).finish()
    }
}

impl<'a> RawMapSnapshot<'a> {
    /// The generation shown.
    pub fn generation(&self) -> Generation {
        Generation(self.view.generation)
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        self.stats.len
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.stats.len == 0
    }

    /// The root record's figures.
    pub fn stats(&self) -> MapStats {
        self.stats
    }

    /// The key type.
    pub fn key_kind(&self) -> MapKeyKind {
        self.key_kind
    }

    /// The value schema.
    pub fn schema(&self) -> &'a SchemaDoc {
        self.schema
    }

    /// The archived bytes of the value of the key whose encoding is `key`
    /// (see [`MapKeyKind::parse`] / [`MapKeyKind::encode`]), validated
    /// against the schema on this reader's first touch; valid while the
    /// snapshot lives.
    pub fn get_bytes(&self, key: &[u8]) -> Result<Option<&'a [u8]>, ReadError> {
        match self.view.lookup(key)? {
            Some(r) => self.value_bytes(r).map(Some),
            None => Ok(None),
        }
    }

    /// The value of the key whose encoding is `key`, decoded.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, ReadError> {
        match self.view.lookup(key)? {
            Some(r) => self.decode(r).map(Some),
            None => Ok(None),
        }
    }

    /// Every entry in key order, keys and values decoded.
    pub fn iter(&self) -> RawMapIter<'a> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    /// The entries whose key encodings lie between `lower` and `upper`.
    pub fn range(&self, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> RawMapIter<'a> {
        RawMapIter { snap: self.parts(), walk: Walk::new(self.view, lower, upper), done: false }
    }

    /// The entries whose key encodings start with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> RawMapIter<'a> {
        let upper = match prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.range(Bound::Included(prefix.to_vec()), upper)
    }

    pub(crate) fn parts(&self) -> Parts<'a> {
        Parts { view: self.view, key_kind: self.key_kind, schema: self.schema, limits: self.limits }
    }

    fn value_bytes(&self, r: BlockRef) -> Result<&'a [u8], ReadError> {
        self.parts().value_bytes(r)
    }

    fn decode(&self, r: BlockRef) -> Result<Value, ReadError> {
        self.parts().decode(r)
    }
}

/// What decoding an entry needs (copied into iterators).
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    view: View<'a>,
    key_kind: MapKeyKind,
    schema: &'a SchemaDoc,
    limits: Limits,
}

impl<'a> Parts<'a> {
    fn invalid(&self, r: BlockRef, e: impl std::fmt::Display) -> ReadError {
        ReadError::Invalid {
            name: self.view.name.into(),
            generation: self.view.generation,
            reason: format!("value block at offset {} (serial {}): {e}", r.offset, r.serial),
        }
    }

    pub(crate) fn value_bytes(&self, r: BlockRef) -> Result<&'a [u8], ReadError> {
        let bytes = self.view.bytes(r)?;
        if !self.view.validated.contains(r, Kind::Value) {
            validate(self.schema, bytes, self.limits).map_err(|e| self.invalid(r, e))?;
            self.view.validated.insert(r, Kind::Value);
        }
        Ok(bytes)
    }

    fn decode(&self, r: BlockRef) -> Result<Value, ReadError> {
        let bytes = self.view.bytes(r)?;
        let value = decode_with(self.schema, bytes, self.limits).map_err(|e| self.invalid(r, e))?;
        self.view.validated.insert(r, Kind::Value);
        Ok(value)
    }
}

/// The first byte string above every string starting with `prefix` (`None`:
/// there is none, the prefix is empty or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An entry undecoded: the key's encoding and the value's archived bytes.
pub type RawEntry<'a> = (&'a [u8], &'a [u8]);

/// Entries of a [`RawMapSnapshot`] in key order, decoded: `(key, value)`, or
/// the error met at a bad block (then the iteration ends).
pub struct RawMapIter<'a> {
    snap: Parts<'a>,
    walk: Walk<'a>,
    done: bool,
}

impl std::fmt::Debug for RawMapIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMapIter").field("depth", &self.walk.depth()).finish_non_exhaustive()
    }
}

impl<'a> RawMapIter<'a> {
    /// The next entry with its value undecoded: the key's encoding and the
    /// value's archived bytes (validated against the schema).
    pub fn next_bytes(&mut self) -> Option<Result<RawEntry<'a>, ReadError>> {
        self.step(|p, k, r| Ok((k, p.value_bytes(r)?)))
    }

    fn step<T>(
        &mut self,
        f: impl FnOnce(&Parts<'a>, &'a [u8], BlockRef) -> Result<T, ReadError>,
    ) -> Option<Result<T, ReadError>> {
        if self.done {
            return None;
        }
        let out = match self.walk.next_entry() {
            Ok(Some((k, r))) => f(&self.snap, k, r),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Err(e) => Err(e),
        };
        self.done = out.is_err();
        Some(out)
    }
}

impl Iterator for RawMapIter<'_> {
    type Item = Result<(Value, Value), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(|p, k, r| {
            let key = p.key_kind.decode(k).ok_or_else(|| ReadError::Invalid {
                name: p.view.name.into(),
                generation: p.view.generation,
                reason: format!("a key of {} bytes is no {}", k.len(), p.key_kind.name()),
            })?;
            Ok((key, p.decode(r)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
