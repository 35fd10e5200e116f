//! Objects of any type, read without their Rust type.
//!
//! Every object stores the [`SchemaDoc`] of its type beside the snapshots. This
//! module walks a snapshot's bytes with it and builds a [`Value`] tree: what
//! the `shmstate dump` command prints, and what a tool, a bridge to another
//! language or a debugger can use without compiling the type in.
//!
//! ```no_run
//! use shmstate::dynamic;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut r = dynamic::Reader::open("myapp.config")?;
//! println!("{} holds a {}", r.name(), r.schema().root().name);
//! let snap = r.read()?;
//! println!("generation {}: {:#}", snap.generation, snap.value); // Rust-like, wrapped
//! # Ok(()) }
//! ```
//!
//! [`Cursor`] reads one value at a time instead, for bytes [`validate`] has
//! accepted (the Python package's views), and [`Watch`] waits for new
//! generations of an object of any type, following it as the typed readers
//! do.
//!
//! [`decode`] / [`decode_with`] do the same for bytes at hand (from
//! [`RawReader::read`](crate::RawReader::read) with its
//! [`schema`](crate::RawReader::schema)).
//!
//! The other way, [`encode`] turns a [`Value`] into the archive rkyv writes
//! for the Rust value, under the schema: what
//! [`RawWriter::publish_value`](crate::RawWriter::publish_value), the
//! `shmstate publish` command and bindings to other languages publish
//! without the Rust type (with the `serde` feature, `from_json` reads the
//! JSON that `shmstate dump --json` prints back into a `Value`).
//!
//! ## Guarantees
//! The bytes come from shared memory and are untrusted: another process may
//! have written anything there. Decoding never panics and never reads outside
//! the snapshot, whatever the bytes:
//! - every offset and length is checked against the snapshot, every relative
//!   pointer target must lie inside it and be aligned for its type;
//! - pointer targets are claimed as rkyv's validator claims them: in order,
//!   without overlap, each before the value that points to it; only `Arc` and
//!   `Rc` pointers may share a target;
//! - tags, `bool` and `char` values and UTF-8 must be valid; map lengths must
//!   match their contents (hash-table control bytes, B-tree nodes); the
//!   invariants of rkyv's strings and hash tables and of `NonZero*`,
//!   `Duration` and `str` hold;
//! - nesting depth and the number of decoded values are bounded by [`Limits`]
//!   (default 128 levels, 20 000 000 values; hash-table buckets count), so
//!   shared pointers cannot make it run away.
//!
//! A failure is a [`DecodeError`] naming the byte position and the path of the
//! value (`at .hosts[3]: relative pointer of String at byte 196 points outside
//! the snapshot …`). Within the limits, a snapshot decodes exactly when
//! bytecheck, in the typed [`Reader`](crate::Reader), accepts it for the
//! described type ([`validate`]); that proves it is read safely, not that it
//! is what the writer meant.
//!
//! ## Stack
//! Decoding, `Display` and `Serialize` recurse once per nesting level, and a
//! debug build takes about 10 KiB of stack per level to decode (measured; far
//! less in release). The default 128 levels fit the 2 MiB stack of a spawned
//! thread with room to spare; raise `max_depth` only on a thread sized for it,
//! as the `shmstate` command does (8 MiB plus 64 KiB per level, 256 levels by
//! default).
//!
//! ## Values
//! Integers up to 64 bits are [`Value::U64`] / [`Value::I64`] (`usize` and
//! `isize` are stored as 32-bit), `Box<T>` decodes to the `T`, `Box<str>` to a
//! [`Value::String`], sets to a [`Value::Set`], and a `HashMap`'s entries and a
//! `HashSet`'s elements come sorted. Addresses and `Duration` are the structs
//! and enums of their archived fields, which `Display` and `Serialize` print
//! as the std type does. With the `serde` feature, `Value` is
//! `serde::Serialize` with `#[derive(Serialize)]`'s conventions and serde's
//! impls for std types, so `serde_json::to_value(&value)` equals it for the
//! original Rust value (see docs/CLI.md for the table).

mod claims;
mod cursor;
mod decode;
mod display;
mod encode;
mod encode_maps;
mod encode_shape;
mod error;
#[cfg(feature = "serde")]
mod from_json;
mod maps;
mod path;
mod reader;
#[cfg(feature = "serde")]
mod serialize;
mod std_types;
mod value;
mod watch;

pub use cursor::{Cursor, Node, NodeFields, Shape};
pub use decode::{decode, decode_with, validate, Limits};
pub use encode::{encode, EncodeError, MAX_ENCODE_DEPTH};
pub use error::{DecodeError, Error};
#[cfg(feature = "serde")]
pub use from_json::from_json;
pub use reader::{Reader, Snapshot};
pub use value::{Fields, Value};
pub use watch::Watch;

#[cfg(doc)]
use crate::schema::SchemaDoc;

#[cfg(test)]
mod tests;
