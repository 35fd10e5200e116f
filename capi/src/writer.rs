//! The writer behind `shmstate_writer`: a [`RawWriter`] that publishes JSON
//! values under its schema with the library's one schema-driven encoder
//! (`dynamic::from_json`, `RawWriter::publish_value`, which validates the
//! bytes before they become current).

use shmstate_core::dynamic::from_json;
use shmstate_core::schema::SchemaDoc;
use shmstate_core::RawWriter;

use crate::error::{self, Error, Result};

pub struct Writer {
    raw: RawWriter,
}

impl Writer {
    /// Creates `name` (or takes it over) under the schema file's schema, or,
    /// without one, takes over the existing object with its stored schema.
    pub fn open(name: &str, schema_json: Option<&str>) -> Result<Self> {
        let raw = match schema_json {
            Some(text) => {
                let schema = SchemaDoc::from_json(text)
                    .map_err(|e| Error::new(error::INVALID_ARGUMENT, format!("{name}: the schema: {e}")))?;
                RawWriter::options().open_or_create_raw(name, &schema)
            }
            None => RawWriter::options().open_existing_raw(name),
        }
        .map_err(error::from_open)?;
        Ok(Writer { raw })
    }

    /// Publishes `json` (as `shmstate dump --json` prints values) and
    /// returns its generation; nothing is published on any error.
    pub fn publish_json(&mut self, json: &str) -> Result<u64> {
        let name = self.raw.name().to_string();
        let parsed: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::new(error::INVALID_ARGUMENT, format!("{name}: not JSON: {e}")))?;
        let value = from_json(self.raw.schema(), &parsed)
            .map_err(|e| Error::new(error::INVALID_DATA, format!("{name}: the JSON does not fit the schema: {e}")))?;
        Ok(self.raw.publish_value(&value).map_err(error::from_publish)?.get())
    }
}
