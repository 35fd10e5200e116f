//! [`RawMapWriter`]: a map written without its Rust types, for a process
//! that only has the key kind, the value schema and archived value bytes (the
//! bridge's importer). Every key is checked to be of the key kind and every
//! value against the schema (the dynamic decoder) before it is staged, so
//! what readers find is what a typed writer could have written.

use std::collections::BTreeMap;

use rkyv::util::AlignedVec;

use crate::dynamic::{validate, Limits};
use crate::error::{OpenError, PublishError};
use crate::map::format::MapRoot;
use crate::map::key_kind::MapKeyKind;
use crate::map::writer::{Core, MapType};
use crate::schema::SchemaDoc;
use crate::{Generation, WriterOptions};

/// The single writer of a map whose key kind and value schema are given at
/// run time. Readers (typed or raw) see the same map a [`MapWriter`] of the
/// same types would have written.
///
/// [`MapWriter`]: crate::map::MapWriter
pub struct RawMapWriter {
    core: Core,
    key_kind: MapKeyKind,
    schema: SchemaDoc,
    limits: Limits,
    /// Staged changes: a value's archived bytes, or `None` to remove.
    staged: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl std::fmt::Debug for RawMapWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMapWriter")
            .field("name", &self.core.name)
            .field("key", &self.key_kind)
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl RawMapWriter {
    /// Creates the map `name` of keys `key_kind` and values of `schema`, or
    /// takes over one of the same types whose writer is gone
    /// ([`MapWriter::open_or_create`](crate::map::MapWriter::open_or_create)).
    pub fn open_or_create(name: &str, key_kind: MapKeyKind, schema: &SchemaDoc) -> Result<Self, OpenError> {
        Self::open_with(name, Self::options(), key_kind, schema)
    }

    /// [`open_or_create`](Self::open_or_create) with options.
    pub fn open_with(
        name: &str,
        opts: WriterOptions<MapRoot>,
        key_kind: MapKeyKind,
        schema: &SchemaDoc,
    ) -> Result<Self, OpenError> {
        let kind = key_kind.name();
        let encoded = schema.encode();
        let ty = MapType {
            key_kind: &kind,
            value_fingerprint: schema.fingerprint(),
            schema: &encoded,
            value_name: "the schema's type",
        };
        let core = Core::open(name, opts, true, &ty)?;
        Ok(RawMapWriter { core, key_kind, schema: schema.clone(), limits: Limits::default(), staged: BTreeMap::new() })
    }

    /// Default options of the root object (as [`MapWriter::options`](crate::map::MapWriter::options)).
    pub fn options() -> WriterOptions<MapRoot> {
        crate::Writer::<MapRoot>::options()
    }

    /// Checks values within `limits` from now on (default [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The map's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Entries as of the last commit.
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

    /// Every key of the last commit (encodings), in order.
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::with_capacity(self.core.tree.len as usize);
        self.core.tree.for_each_key(&mut |k| keys.push(k.to_vec()));
        keys
    }

    fn invalid(&self, reason: String) -> PublishError {
        PublishError::Invalid { name: self.core.name.clone(), reason }
    }

    fn check_key(&self, key: &[u8]) -> Result<(), PublishError> {
        match self.key_kind.decode(key) {
            Some(_) => Ok(()),
            None => Err(self.invalid(format!("a key of {} bytes is no {}", key.len(), self.key_kind.name()))),
        }
    }

    /// Stages `key = value`: `key` an encoding of the key kind, `value` an
    /// archive of the schema's type; `Invalid` (nothing staged) otherwise.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), PublishError> {
        self.check_key(key)?;
        // The dynamic decoder reads at any alignment, rkyv does not: check
        // a 16-aligned copy, the alignment a block gets.
        let mut aligned = AlignedVec::<16>::with_capacity(value.len());
        aligned.extend_from_slice(value);
        validate(&self.schema, &aligned, self.limits)
            .map_err(|e| self.invalid(format!("the value of a key of {} bytes: {e}", key.len())))?;
        self.staged.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    /// Stages the removal of `key` (nothing if it is absent at commit).
    pub fn remove(&mut self, key: &[u8]) -> Result<(), PublishError> {
        self.check_key(key)?;
        self.staged.insert(key.to_vec(), None);
        Ok(())
    }

    /// Records where the next commits come from, for `inspect` (a mirror
    /// calls it before each commit), as
    /// [`RawWriter::set_origin`](crate::RawWriter::set_origin) does.
    pub fn set_origin(&mut self, host: &str, generation: Generation) {
        self.core.set_origin(host, generation);
    }

    /// Drops every staged change.
    pub fn discard(&mut self) {
        self.staged.clear();
    }

    /// Publishes every staged change as one generation
    /// ([`MapWriter::commit`](crate::map::MapWriter::commit)).
    pub fn commit(&mut self) -> Result<Generation, PublishError> {
        self.core.commit(&mut self.staged, &mut |v: &Vec<u8>, scratch| {
            scratch.clear();
            scratch.extend_from_slice(v);
            Ok(v.len())
        })
    }
}
