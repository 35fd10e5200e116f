//! Writing without the Rust type: [`RawWriter::publish_value`] encodes a
//! [`dynamic::Value`](crate::dynamic::Value) under the writer's schema with
//! the one schema-driven encoder ([`dynamic::encode`](crate::dynamic::encode))
//! and publishes it through [`RawWriter::publish_bytes`], which validates it
//! like every untyped publish; [`open_existing_raw`](WriterOptions::open_existing_raw)
//! takes over an object with the schema stored in it. With a schema file
//! (`SchemaDoc::from_json`, the `serde` feature) or another object's schema
//! ([`SchemaDoc::of_object`]), `create_raw` / `open_or_create_raw` make new ones.

use std::time::Duration;

use crate::dynamic::{self, Value};
use crate::error::{OpenError, PublishError};
use crate::schema::SchemaDoc;
use crate::write::options::WriterOptions;
use crate::{Generation, RawReader, RawWriter};

impl RawWriter {
    /// The schema this writer publishes under (what readers decode with).
    pub fn schema(&self) -> &SchemaDoc {
        &self.schema
    }

    /// Encodes `value` under the writer's schema and publishes it, as
    /// [`publish_bytes`](Self::publish_bytes) does (the encoded bytes are
    /// validated too). A value that does not fit the schema is
    /// [`PublishError::Invalid`], whose reason names the path
    /// (`at .hosts[2].port: 70000 is out of range for u16`); nothing is
    /// published then. Typed readers ([`Reader<T>`](crate::Reader)) of the
    /// type read it zero-copy and validated, as if a [`Writer<T>`](crate::Writer)
    /// had published the Rust value.
    pub fn publish_value(&mut self, value: &Value) -> Result<Generation, PublishError> {
        let bytes = dynamic::encode(self.schema(), value)
            .map_err(|e| PublishError::Invalid { name: self.name().to_owned(), reason: e.to_string() })?;
        self.publish_bytes(&bytes)
    }
}

impl WriterOptions<RawWriter> {
    /// Takes over the existing object `name` with the schema stored in it
    /// (its writer must be gone: [`OpenError::WriterBusy`] otherwise), so
    /// that a tool or a binding can publish into an object of any type.
    /// A stored schema that does not decode is [`OpenError::Corrupt`].
    pub fn open_existing_raw(self, name: &str) -> Result<RawWriter, OpenError> {
        let schema = SchemaDoc::of_object(name)?;
        self.open_or_create_raw(name, &schema)
    }
}

impl SchemaDoc {
    /// The schema stored in the object `name` (waiting up to 1 s for a writer
    /// that is still creating it), to create another object of the same type
    /// or to save it as a schema file.
    pub fn of_object(name: &str) -> Result<SchemaDoc, OpenError> {
        let raw = RawReader::open(name, Duration::from_secs(1))?;
        raw.schema().map_err(|e| OpenError::Corrupt { name: name.into(), what: format!("stored schema: {e}") })
    }
}
