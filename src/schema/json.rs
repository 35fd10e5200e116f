//! Schema files: a [`SchemaDoc`] as JSON (the `serde` feature), what
//! `shmstate schema NAME` prints, so that a writer without the Rust type
//! (`shmstate publish --schema`, Python, C) can create an object of a type
//! that exists nowhere yet. The JSON is serde's form of the description
//! (`{"root": 0, "types": [{"name": "Config", "size": 24, "align": 8,
//! "kind": {"Struct": {…}}}, …]}`); it carries the layout, so the fingerprint
//! of a loaded file is that of the type it was saved from. A Rust program
//! exports its type's with `schema_of::<T>().to_json()`.

use super::{SchemaDoc, SchemaError};

impl SchemaDoc {
    /// The schema file's text: pretty-printed JSON.
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn to_json(&self) -> String {
        // Plain structs, enums, strings and numbers: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a schema file, with every check [`SchemaDoc::decode`] makes on
    /// a schema from shared memory (an object created with it would
    /// otherwise be one its readers refuse).
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    pub fn from_json(text: &str) -> Result<SchemaDoc, SchemaError> {
        let doc: SchemaDoc = serde_json::from_str(text).map_err(|e| SchemaError(format!("not a schema file ({e})")))?;
        doc.validate()?;
        Ok(doc)
    }
}
