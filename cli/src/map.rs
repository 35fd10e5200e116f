//! Map objects (docs/MAP.md) in `dump`, `list` and `inspect`: a map is an
//! object whose snapshots are `MapRoot` records; its entries are read with
//! [`RawMapReader`] (keys by their recorded kind, values with the stored schema).

use std::fmt::Write as _;

use serde_json::{json, Value};
use shmstate::dynamic::{self, Limits};
use shmstate::map::{MapRoot, RawMapReader};
use shmstate::{ObjectInfo, ReadError};

use crate::errors::{code, open_failure, read_failure, Failure};
use crate::table::human_size;

/// Whether `info` is a map's root object.
pub fn is_map(info: &ObjectInfo) -> bool {
    info.fingerprint == shmstate::schema::fingerprint_of::<MapRoot>()
}

/// What `list` and `inspect` say of a map: its types and figures.
pub struct Summary {
    pub types: String,
    pub generation: u64,
    pub entries: u64,
    pub height: u32,
    pub pages_file: u64,
    pub pages_len: u64,
    pub live: u64,
    pub garbage: u64,
    pub free: u64,
}

/// The summary of map `name` (an error if it cannot be read).
pub fn summary(name: &str) -> Result<Summary, String> {
    let mut r = RawMapReader::open(name).map_err(|e| e.to_string())?;
    let types = format!("map<{}, {}>", r.key_kind().name(), r.schema().root().name);
    let pages_file = std::fs::metadata(format!("/dev/shm/shmstate.{name}.pages")).map_or(0, |m| m.len());
    let snap = r.read().map_err(|e| e.to_string())?;
    let s = snap.stats();
    Ok(Summary {
        types,
        generation: snap.generation().get(),
        entries: s.len,
        height: s.height,
        pages_file,
        pages_len: s.pages_len,
        live: s.live_bytes,
        garbage: s.garbage_bytes,
        free: s.free_bytes,
    })
}

/// `list`'s TYPE cell for a map.
pub fn type_cell(name: &str) -> String {
    match summary(name) {
        Ok(s) => format!("{} ({} entries, pages {})", s.types, s.entries, human_size(s.pages_file)),
        Err(e) => format!("map (! {e})"),
    }
}

/// `inspect`'s section on a map.
pub fn inspect_text(name: &str, info: &ObjectInfo) -> String {
    let s = match summary(name) {
        Ok(s) => s,
        Err(e) => return format!("\nmap: cannot be read: {e}\n"),
    };
    let mut t = format!(
        "\nmap: {} (generation {}), {} entries, tree height {}\n  \
         pages file shmstate.{name}.pages: {} ({} in use)\n  \
         live blocks {}, garbage awaiting reuse {}, free {}\n",
        s.types,
        s.generation,
        s.entries,
        s.height,
        human_size(s.pages_file),
        human_size(s.pages_len),
        human_size(s.live),
        human_size(s.garbage),
        human_size(s.free),
    );
    let held: Vec<u64> = info.readers.iter().filter(|r| r.alive).filter_map(|r| r.pinned.map(|(g, _)| g)).collect();
    if !held.is_empty() && s.garbage > 0 {
        let oldest = held.iter().min().copied().unwrap_or(s.generation);
        let _ = writeln!(
            t,
            "  held generations: {held:?}; the garbage is kept for the oldest ({oldest}) and reused once it is released"
        );
    }
    t
}

/// `inspect --json`'s `map` field.
pub fn inspect_json(name: &str) -> Value {
    match summary(name) {
        Ok(s) => json!({
            "types": s.types,
            "generation": s.generation,
            "entries": s.entries,
            "height": s.height,
            "pages_file_bytes": s.pages_file,
            "pages_len": s.pages_len,
            "live_bytes": s.live,
            "garbage_bytes": s.garbage,
            "free_bytes": s.free,
        }),
        Err(e) => json!({ "error": e }),
    }
}

/// What `dump` prints of a map.
pub enum Select {
    All,
    Key(String),
    Prefix(String),
}

/// `dump` of a map: every entry, one key's value, or the entries under a prefix.
pub fn dump(name: &str, select: &Select, json: bool, compact: bool, limits: Limits) -> Result<String, Failure> {
    let r = RawMapReader::open(name).map_err(|e| open_failure(name, &e))?;
    let mut r = r.with_limits(limits);
    let types = format!("map<{}, {}>", r.key_kind().name(), r.schema().root().name);
    let snap = r.read().map_err(|e| read_failure(name, &e))?;
    let kind = snap.key_kind();
    let usage = |e: String| Failure::new(code::USAGE, format!("{name}: {e}"));
    let (value, what) = match select {
        Select::Key(k) => {
            let key = kind.parse(k).map_err(usage)?;
            match snap.get(&key).map_err(|e| read_failure(name, &e))? {
                Some(v) => (v, format!("key {k:?}")),
                None => return Err(Failure::new(code::NOT_FOUND, format!("{name}: no key {k:?}"))),
            }
        }
        Select::Prefix(p) => {
            let prefix = kind.parse_prefix(p).map_err(usage)?;
            let entries = collect(name, snap.prefix(&prefix))?;
            let n = entries.len();
            (dynamic::Value::Map(entries), format!("{n} entries under prefix {p:?}"))
        }
        Select::All => {
            let entries = collect(name, snap.iter())?;
            (dynamic::Value::Map(entries), format!("{} entries", snap.len()))
        }
    };
    if json {
        let v = serde_json::to_value(&value).map_err(|e| Failure::new(code::OTHER, format!("rendering JSON: {e}")))?;
        let mut t = if compact { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() };
        t.push('\n');
        return Ok(t);
    }
    Ok(format!("// {name}: {types}, generation {}, {what}\n{value:#}\n", snap.generation().get()))
}

fn collect(
    name: &str,
    iter: impl Iterator<Item = Result<(dynamic::Value, dynamic::Value), ReadError>>,
) -> Result<Vec<(dynamic::Value, dynamic::Value)>, Failure> {
    iter.collect::<Result<_, _>>().map_err(|e| read_failure(name, &e))
}
