#![doc = include_str!("../README.md")]
//!
//! ## API at a glance
//! - [`shared`] / [`Schema`]: make a type storable, described and fingerprinted
//!   by its archived layout ([`schema::fingerprint_of`]).
//! - [`Writer`] (options: [`WriterOptions`], e.g. [`lock_pins`](WriterOptions::lock_pins)):
//!   create or take over an object, [`publish`](Writer::publish) snapshots.
//! - [`Reader`]: [`read`](Reader::read) the latest [`Snapshot`],
//!   [`wait_newer`](Reader::wait_newer); [`RawReader`] reads bytes without the type.
//! - Changing the type without downtime
//!   ([docs/DEPLOYING.md](https://github.com/shmstate/shmstate/blob/main/docs/DEPLOYING.md)
//!   "Lanes"): a writer
//!   also publishes the previous version ([`WriterOptions::lane`]); readers
//!   find their version under the same name, can wait for it
//!   ([`ReaderOptions::wait_for_layout`]) or read another through a copy
//!   ([`ReaderOptions::convert_from`]).
//! - [`SharedReader`]: one `Sync` handle for many threads:
//!   [`load`](SharedReader::load) through `&self`, a pin per reading thread;
//!   a [`SharedSnapshot`] keeps its thread's pin and cannot leave that thread.
//! - Feature `tokio`: `SharedReader::changed(generation).await`, a
//!   cancellation-safe future of the next generation (one helper thread per
//!   process multiplexes the futex waits; no polling).
//! - [`Receiver`] ([`SharedReader::subscribe`]): what
//!   `tokio::sync::watch::Receiver` users expect on a shared handle: it
//!   remembers the last generation seen; `changed().await` (feature
//!   `tokio`, also a `Stream`) or a blocking `wait`, `borrow` /
//!   `borrow_and_update`, `mark_seen`; follows like its `SharedReader`, and
//!   can report a dead writer once and wait for the next one.
//! - [`remove`], [`list`], [`inspect`]: manage objects; [`removed_users`]:
//!   the processes still reading a removed object of a name.
//! - Errors: [`OpenError`], [`PublishError`], [`ReadError`], [`WaitError`], [`RemoveError`].
//! - [`dynamic`]: read any object without its Rust type, as a [`dynamic::Value`]
//!   decoded with the schema stored in the object; [`RawWriter`] publishes
//!   already-archived bytes under a [`schema::SchemaDoc`]'s fingerprint.
//!
//! The Cargo features (`tokio`, `serde`, `fault-injection`) are listed under
//! "Add it to your project" above; the items they add are marked "Available
//! on crate feature … only" here.
//!
//! The `shmstate` command (list, inspect, watch, dump, rm, gc) is a separate
//! crate, `shmstate-cli` (`cargo install shmstate-cli`), so this library pulls
//! in no argument parser or JSON printer.
//!
//! ## `fork()`
//! A forked child inherits its parent's mappings and open file descriptions,
//! and with them the parent's pins and locks: a `Reader`'s reader-table entry
//! (the same pin word, the same OFD lock), its lock pins and seat, and a
//! `Writer`'s `flock` and liveness lock. The two processes are then one
//! reader (or one writer) twice, and each can unpin what the other reads:
//! - In the child, do not use **or drop** a handle (`Reader`, `RawReader`,
//!   `Writer`, `Snapshot`) that the parent opened: dropping a reader clears
//!   the shared pin under the parent's snapshot. `std::mem::forget` inherited
//!   handles, or `exec` (descriptors are `O_CLOEXEC`; the mappings go away).
//! - Open new handles in the child after the fork: they get their own entry,
//!   locks and pins, and everything above holds for them.
//! - The parent may go on using its handles as before.
//! - `changed().await` (feature `tokio`): the child starts a wait helper
//!   thread of its own on its first wait, so futures on the child's own
//!   handles resolve as in any process. A `Changed` made before the fork may
//!   be dropped in the child (it leaves the parent's registration alone);
//!   do not poll it there.
//! - A child that calls only async-signal-safe functions before `exec` (the
//!   `posix_spawn`/`Command` pattern) needs nothing.
#![deny(unsafe_code)]
// docs.rs (`--cfg docsrs`, nightly): "Available on crate feature … only" on
// the feature-gated items, from their explicit `doc(cfg(..))` only: rustdoc's
// automatic badges would also mark every item "non-loom" and the re-exported
// `Errno`'s methods with rustix's own features.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(docsrs, doc(auto_cfg = false))]
// Under loom only the protocol modules are exercised; the rest is dead there.
#![cfg_attr(loom, allow(dead_code, unused_imports))]
#![warn(missing_docs)]

// The stages, bottom up; each folder's `mod.rs` says what it holds. Only
// `protocol/` (and the errors it returns) is compiled under loom: it is what
// the model checks, with no OS call in it.
#[cfg(not(loom))]
mod archive;
#[cfg(not(loom))]
pub mod dynamic;
mod error;
#[cfg(not(loom))]
pub mod map;
#[cfg(not(loom))]
mod object;
#[cfg(not(loom))]
mod os;
mod protocol;
#[cfg(not(loom))]
mod read;
#[cfg(not(loom))]
pub mod schema;
#[cfg(not(loom))]
mod write;

#[cfg(all(feature = "tokio", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use read::Changed;
#[cfg(not(loom))]
pub use {
    archive::{Shared, SlotWriter},
    error::{Errno, OpenError, PublishError, ReadError, RemoveError, WaitError},
    object::name::MAX_NAME_LEN,
    object::{
        inspect, list, remove, removed_users, LaneInfo, ObjectInfo, Origin, ReaderInfo, RemovedUser, SlotInfo,
        WriterInfo, WriterSeen,
    },
    protocol::generation::Generation,
    read::{
        RawReader, Reader, ReaderOptions, ReaderStats, Receiver, Releasing, SharedReader, SharedSnapshot, Snapshot,
        DEFAULT_WRITER_GRACE,
    },
    schema::Schema,
    write::{RawLaneWriter, RawWriter, Writer, WriterOptions, WriterStats},
};

/// `#[shmstate::shared]`: rkyv `Archive`/`Serialize`/`Deserialize` + [`Schema`].
#[cfg(not(loom))]
pub use shmstate_derive::shared;
/// `#[derive(shmstate::Schema)]`: the [`Schema`] impl alone.
#[cfg(not(loom))]
pub use shmstate_derive::Schema;

/// rkyv, re-exported so user crates need no direct dependency.
pub use rkyv;

#[doc(hidden)]
#[cfg(not(loom))]
pub use read::watch::wakes_passed_on;

/// Paths used by generated code. Not public API.
#[doc(hidden)]
#[cfg(not(loom))]
pub mod __private {
    pub use crate::schema::fp;
    pub use crate::schema::{Field, Kind, Primitive, Schema, SchemaBuilder, TypeDesc, TypeIndex, Variant};
    pub use core;
    pub use rkyv;
    pub use std::format;
    pub use std::string::String;
    pub use std::vec;
    pub use std::vec::Vec;
}
