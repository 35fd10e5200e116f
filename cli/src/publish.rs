//! `schema` and `publish`: an object's schema as a schema file, and a JSON
//! value published into an object without its Rust type, through the
//! library's schema-driven encoder (`dynamic::from_json`, `dynamic::encode`)
//! and `RawWriter::publish_bytes`.

use std::io::Read as _;

use shmstate::dynamic;
use shmstate::schema::SchemaDoc;
use shmstate::RawWriter;

use crate::errors::{code, open_failure, Failure};
use crate::out;

/// `shmstate schema NAME [--text]`.
pub fn schema(name: &str, text: bool) -> Result<(), Failure> {
    let doc = SchemaDoc::of_object(name).map_err(|e| open_failure(name, &e))?;
    if text {
        out(&format!("{doc}\n"))
    } else {
        out(&format!("{}\n", doc.to_json()))
    }
}

/// A file's text, `-` for stdin.
fn read_text(path: &str) -> Result<String, Failure> {
    let mut s = String::new();
    let r = if path == "-" {
        std::io::stdin().read_to_string(&mut s).map(drop)
    } else {
        std::fs::read_to_string(path).map(|t| s = t)
    };
    r.map_err(|e| Failure::new(code::OTHER, format!("reading {path}: {e}")))?;
    Ok(s)
}

/// `shmstate publish NAME FILE [--schema SCHEMA_FILE]`.
pub fn publish(name: &str, file: &str, schema_file: Option<&str>) -> Result<(), Failure> {
    let schema = match schema_file {
        Some(path) => {
            SchemaDoc::from_json(&read_text(path)?).map_err(|e| Failure::new(code::USAGE, format!("{path}: {e}")))?
        }
        None => SchemaDoc::of_object(name).map_err(|e| open_failure(name, &e))?,
    };
    // The whole input is checked and encoded before the writer is opened: a
    // bad file takes nothing over.
    let json: serde_json::Value = serde_json::from_str(&read_text(file)?)
        .map_err(|e| Failure::new(code::USAGE, format!("{file}: not JSON ({e})")))?;
    let value = dynamic::from_json(&schema, &json)
        .map_err(|e| Failure::new(code::USAGE, format!("{file}: {e} (the object holds a {})", schema.root().name)))?;
    let bytes = dynamic::encode(&schema, &value)
        .map_err(|e| Failure::new(code::USAGE, format!("{file}: {e} (the object holds a {})", schema.root().name)))?;
    let mut w = RawWriter::options().open_or_create_raw(name, &schema).map_err(|e| open_failure(name, &e))?;
    let generation = w.publish_bytes(&bytes).map_err(|e| Failure::new(code::OTHER, e.to_string()))?;
    out(&format!("{name}: published generation {} ({} bytes)\n", generation.get(), bytes.len()))
}
