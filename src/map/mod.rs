//! The map object: a keyed object for large state whose commit and first
//! read cost what changed, not the whole snapshot (docs/MAP.md).
//!
//! A [`MapWriter`] stages `insert` / `remove` / `extend` and
//! [`commit`](MapWriter::commit)s them as one generation: a copy-on-write
//! B+tree of archived nodes in the map's pages segment, whose new root is
//! published like any snapshot. A [`MapReader`] pins one root per
//! [`read`](MapReader::read) and returns a [`MapSnapshot`]: `get`, `len`,
//! ordered `iter` and `range`, consistent across keys, each node and value
//! validated with bytecheck on this reader's first touch.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmstate::map::{MapReader, MapWriter};
//! let name = format!("doc.map.{}", std::process::id());
//! let mut w = MapWriter::<u64, String>::create(&name)?;
//! w.extend((0..1000).map(|k| (k, format!("value {k}"))));
//! w.commit()?;
//!
//! let mut r = MapReader::<u64, String>::open(&name)?;
//! let snap = r.read()?;
//! assert_eq!(snap.get(&7)?.map(|v| v.as_str()), Some("value 7"));
//! assert_eq!(snap.range(10..13).count(), 3);
//! # drop(snap);
//! w.remove(&7);
//! w.commit()?; // writes one value-less leaf, its path and a root
//! assert_eq!(r.read()?.get(&7)?, None);
//! # shmstate::remove(&name)?;
//! # Ok(()) }
//! ```
//!
//! - `format.rs`: the root record, block refs, nodes, size classes.
//! - `pages.rs`: the pages segment (the writer's and readers' mappings).
//! - `blocks.rs`: the writer's allocator: free lists and pending blocks.
//! - `tree.rs`: the writer's mirror of the tree and the copy-on-write batch.
//! - `validated.rs`, `view.rs`: a reader's per-block validation.
//! - `diff.rs`: the changes between two generations (`changes_since`).
//! - `key.rs`: order-preserving key encodings.
//! - `walk.rs`: lookup and in-order walk, whatever the types.
//! - `raw.rs`, `key_kind.rs`: [`RawMapReader`], a map read without its
//!   Rust types (values through the dynamic decoder and the stored schema).
//! - `raw_writer.rs`: [`RawMapWriter`], a map written without its Rust
//!   types (keys and values checked before they are staged).

mod blocks;
mod diff;
mod format;
mod key;
mod key_kind;
mod pages;
mod raw;
mod raw_writer;
mod reader;
mod snapshot;
mod tree;
mod validated;
mod view;
mod walk;
mod writer;

pub use diff::{Change, Changes, RawMapChange, RawMapChanges};
pub use format::{ArchivedMapRoot, MapRoot};
pub use key::MapKey;
pub use key_kind::MapKeyKind;
pub use raw::{MapStats, RawEntry, RawMapIter, RawMapReader, RawMapSnapshot};
pub use raw_writer::RawMapWriter;
pub use reader::MapReader;
pub use snapshot::{MapIter, MapSnapshot};
pub use writer::MapWriter;
