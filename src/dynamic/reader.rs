//! A reader for objects of any type: [`RawReader`] plus the stored schema.

use std::time::Duration;

use super::{decode_with, Error, Limits, Value};
use crate::read::stats::Count;
use crate::schema::SchemaDoc;
use crate::{Generation, OpenError, RawReader, ReaderStats, WaitError};

/// A reader that needs no Rust type: it decodes each snapshot into a [`Value`]
/// with the schema stored in the object.
///
/// Like [`crate::Reader`], it owns one reader pin of the object; unlike it, it
/// holds the pin only while [`read`](Self::read) decodes, so an idle handle
/// keeps no old snapshot alive.
#[derive(Debug)]
pub struct Reader {
    raw: RawReader,
    schema: SchemaDoc,
    limits: Limits,
    /// Snapshots decoded, and those that did not decode (`stats`).
    decodes: Count,
    decode_failures: Count,
}

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Its generation.
    pub generation: Generation,
    /// Its serialized size in bytes.
    pub size: usize,
    /// The value.
    pub value: Value,
}

impl Reader {
    /// Opens the object `name`, waiting up to 1 s for a writer that is still
    /// initialising it (a missing object is reported at once).
    pub fn open(name: &str) -> Result<Self, OpenError> {
        Self::open_with_timeout(name, Duration::from_secs(1))
    }

    /// Opens `name`, waiting up to `init_timeout` for a writer that is still
    /// initialising it. A stored schema that does not decode is `Corrupt`.
    pub fn open_with_timeout(name: &str, init_timeout: Duration) -> Result<Self, OpenError> {
        let raw = RawReader::open(name, init_timeout)?;
        let schema =
            raw.schema().map_err(|e| OpenError::Corrupt { name: name.into(), what: format!("stored schema: {e}") })?;
        Ok(Reader {
            raw,
            schema,
            limits: Limits::default(),
            decodes: Count::default(),
            decode_failures: Count::default(),
        })
    }

    /// Decodes within `limits` from now on (default [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// The schema stored in the object (`schema().root()` is the stored type).
    pub fn schema(&self) -> &SchemaDoc {
        &self.schema
    }

    /// The latest published generation (`Generation::NONE` before the first
    /// publish), without pinning anything.
    pub fn generation(&self) -> Generation {
        self.raw.generation()
    }

    /// Whether a live writer holds the object.
    pub fn writer_alive(&self) -> bool {
        self.raw.writer_alive()
    }

    /// Pins the latest snapshot, decodes it and releases the pin.
    ///
    /// Decoding recurses once per nesting level: see the module docs on stack.
    pub fn read(&mut self) -> Result<Snapshot, Error> {
        let (generation, bytes) = self.raw.read().map_err(Error::Read)?;
        let size = bytes.len();
        let value = decode_with(&self.schema, bytes, self.limits);
        self.raw.release();
        self.decodes.bump();
        if value.is_err() {
            self.decode_failures.bump();
        }
        match value {
            Ok(value) => Ok(Snapshot { generation, size, value }),
            Err(error) => Err(Error::Decode { generation, error }),
        }
    }

    /// What this handle's reads and waits have done since it opened, as
    /// [`crate::Reader::stats`]: every read pins (`slow_reads`), and each
    /// decode counts as a validation (a snapshot that does not decode is a
    /// validation failure and an error, not a read).
    pub fn stats(&self) -> ReaderStats {
        let mut s = self.raw.stats();
        let failed = self.decode_failures.get();
        s.validations = self.decodes.get();
        s.validation_failures = failed;
        s.errors += failed;
        s
    }

    /// Blocks until a generation newer than `than` is published (and returns
    /// it), the writer is found dead, or `timeout` passes (shared futex; no polling).
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        self.raw.wait_newer(than, timeout)
    }
}
