#![doc = include_str!("../README.md")]
//!
//! ## API at a glance
//! - [`shared`] / [`Schema`]: make a type storable, described and fingerprinted
//!   by its archived layout ([`schema::fingerprint_of`]).
//! - [`Writer`] (options: [`WriterOptions`], e.g. [`lock_pins`](WriterOptions::lock_pins)):
//!   create or take over an object, [`publish`](Writer::publish) snapshots.
//! - [`Reader`]: [`read`](Reader::read) the latest [`Snapshot`],
//!   [`wait_newer`](Reader::wait_newer); [`RawReader`] reads bytes without the type.
//! - Changing the type without downtime (docs/DEPLOYING.md "Lanes"): a writer
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
//! - [`remove`], [`list`], [`inspect`]: manage objects.
//! - Errors: [`OpenError`], [`PublishError`], [`ReadError`], [`WaitError`], [`RemoveError`].
//! - [`dynamic`]: read any object without its Rust type, as a [`dynamic::Value`]
//!   decoded with the schema stored in the object; [`RawWriter`] publishes
//!   already-archived bytes under a [`schema::SchemaDoc`]'s fingerprint.
//!
//! ## Cargo features
//! - `serde`: `serde::Serialize` for [`dynamic::Value`] (what `shmstate dump
//!   --json` prints). Off by default.
//! - `tokio`: `SharedReader::changed(generation).await`. Off by default.
//! - `fault-injection`: test-only crash points; never enable it in a build
//!   you ship.
//!
//! The `shmstate` command (list, inspect, watch, dump, rm, gc) is a separate
//! crate, `shmstate-cli` (`cargo install --path cli`), so this library pulls
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
//! - A child that calls only async-signal-safe functions before `exec` (the
//!   `posix_spawn`/`Command` pattern) needs nothing.
#![deny(unsafe_code)]
// Under loom only the protocol modules are exercised; the rest is dead there.
#![cfg_attr(loom, allow(dead_code))]
#![warn(missing_docs)]

#[cfg(not(loom))]
mod await_writer;
#[cfg(all(feature = "tokio", not(loom)))]
mod changed;
#[cfg(not(loom))]
pub mod dynamic;
mod error;
#[cfg(all(feature = "fault-injection", not(loom)))]
mod fault;
#[cfg(not(loom))]
mod generation;
#[cfg(not(loom))]
mod inspect;
#[cfg(not(loom))]
mod lane_set;
#[cfg(not(loom))]
mod lanes;
mod layout;
mod lock_pins;
mod locks;
#[cfg(not(loom))]
mod name;
#[cfg(not(loom))]
mod os;
mod protocol;
#[cfg(not(loom))]
mod raw_reader;
#[cfg(not(loom))]
mod raw_writer;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
mod releasing;
#[cfg(not(loom))]
pub mod schema;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod shared_reader;
#[cfg(not(loom))]
mod slot_writer;
mod slots;
mod sync;
#[cfg(not(loom))]
mod watch;
#[cfg(not(loom))]
mod writer;

#[cfg(all(feature = "tokio", not(loom)))]
pub use changed::Changed;
#[cfg(not(loom))]
pub use {
    error::{Errno, OpenError, PublishError, ReadError, RemoveError, WaitError},
    generation::Generation,
    inspect::{inspect, list, LaneInfo, ObjectInfo, Origin, ReaderInfo, SlotInfo},
    name::MAX_NAME_LEN,
    raw_reader::{RawReader, DEFAULT_WRITER_GRACE},
    raw_writer::RawWriter,
    reader::{Reader, ReaderOptions, Snapshot},
    releasing::Releasing,
    schema::Schema,
    shared_reader::{SharedReader, SharedSnapshot},
    slot_writer::SlotWriter,
    writer::{Writer, WriterOptions},
};

/// `#[shmstate::shared]`: rkyv `Archive`/`Serialize`/`Deserialize` + [`Schema`].
#[cfg(not(loom))]
pub use shmstate_derive::shared;
/// `#[derive(shmstate::Schema)]`: the [`Schema`] impl alone.
#[cfg(not(loom))]
pub use shmstate_derive::Schema;

/// rkyv, re-exported so user crates need no direct dependency.
pub use rkyv;

#[cfg(not(loom))]
use rkyv::{
    api::high::{HighSerializer, HighValidator},
    bytecheck::CheckBytes,
    rancor::BoxedError,
    ser::allocator::ArenaHandle,
};

/// What a type needs to be published and read: [`Schema`], rkyv `Archive` with a
/// checkable archived form, and rkyv `Serialize`. `#[shmstate::shared]` gives all
/// of it; this trait is implemented automatically.
#[cfg(not(loom))]
pub trait Shared:
    Schema
    + rkyv::Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>>>
    + for<'a> rkyv::Serialize<HighSerializer<SlotWriter, ArenaHandle<'a>, BoxedError>>
{
}

#[cfg(not(loom))]
impl<T> Shared for T where
    T: Schema
        + rkyv::Archive<Archived: for<'a> CheckBytes<HighValidator<'a, BoxedError>>>
        + for<'a> rkyv::Serialize<HighSerializer<SlotWriter, ArenaHandle<'a>, BoxedError>>
{
}

/// Removes every shm object of `name` (data segment, reader table, writer
/// lock), and of its lanes (`name@<fingerprint>`, docs/DEPLOYING.md "Lanes").
///
/// Processes that have them open keep working on the old objects; new ones get
/// `NotFound`. `NotFound` if none of them existed.
#[cfg(not(loom))]
pub fn remove(name: &str) -> Result<(), RemoveError> {
    let mut found = remove_object(name)?;
    if name::split_lane(name).is_none() {
        for (lane, _) in name::lanes_in_shm(name) {
            found |= remove_object(&lane)?;
        }
    }
    if found {
        Ok(())
    } else {
        Err(RemoveError::NotFound { name: name.into() })
    }
}

/// Removes the shm objects of `name` alone (not its lanes); whether any existed.
#[cfg(not(loom))]
pub(crate) fn remove_object(name: &str) -> Result<bool, RemoveError> {
    name::validate(name).map_err(|reason| RemoveError::InvalidName { name: name.into(), reason })?;
    let mut found = false;
    for object in [name::data(name), name::readers(name), name::lock(name)] {
        match os::ShmObject::unlink(&object) {
            Ok(()) => found = true,
            Err(Errno::NOENT) => {}
            Err(Errno::ACCESS | Errno::PERM) => return Err(RemoveError::PermissionDenied { name: name.into() }),
            Err(errno) => return Err(RemoveError::Os { name: name.into(), op: "unlinking", errno }),
        }
    }
    Ok(found)
}

#[doc(hidden)]
#[cfg(not(loom))]
pub use watch::wakes_passed_on;

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

/// Protocol and validation tests on a heap region, runnable under Miri.
#[cfg(all(test, not(loom)))]
mod heap_tests;
/// loom model of the publish / pin / reclaim protocol (`--cfg loom`).
#[cfg(all(test, loom))]
mod loom_tests;
