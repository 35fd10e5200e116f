//! # shmstate: a typed shared-state object store
//!
//! One process publishes snapshots of its own Rust type; every other process on
//! the machine reads the latest snapshot as a validated `&Archived<T>` that points
//! straight into POSIX shared memory: no copy, no deserialization, and on the
//! read of an unchanged snapshot, nothing but one atomic load.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! #[shmstate::shared]
//! #[derive(Debug, Clone)]
//! struct Config {
//!     port: u16,
//!     hosts: Vec<String>,
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Publisher process
//! let mut w = shmstate::Writer::<Config>::create("myapp.config")?;
//! let g = w.publish(&Config { port: 8080, hosts: vec!["a".into()] })?;
//!
//! // Any other process
//! let mut r = shmstate::Reader::<Config>::open("myapp.config")?;
//! let snap = r.read()?; // validated once per generation, then pure loads
//! assert_eq!(snap.port, 8080);
//! assert_eq!(snap.generation(), g);
//! let g = snap.generation();
//! let _ = r.wait_newer(g, Duration::from_secs(1)); // blocks on a shared futex
//! # Ok(()) }
//! ```
//!
//! ## Contents
//! - [`shared`] / [`Schema`]: make a type storable, with a structural fingerprint.
//! - [`Writer`]: create an object, [`publish`](Writer::publish) snapshots.
//! - [`Reader`]: [`read`](Reader::read) the latest snapshot, [`wait_newer`](Reader::wait_newer).
//! - [`remove`], [`list`]: manage objects.
//!
//! ## How it works
//! An object `N` is up to three files in `/dev/shm`: the data segment
//! `shmstate.N` (header, slot table, schema, slots; readers map it
//! **read-only**), the owner-only writer lock `shmstate.N.lock`, and, for
//! owner-only objects, the reader table `shmstate.N.readers` (one pin per reader
//! handle). The writer serializes each snapshot straight into a
//! slot that is neither current nor pinned, then publishes it with one atomic
//! store of `generation << 12 | slot`. A reader pins the current slot, re-checks
//! it (a store-buffering handshake through SeqCst fences), validates it once with
//! bytecheck, and keeps the pin until it reads a newer one, so repeated reads are
//! one load. See `docs/PROTOCOL.md`.
//!
//! ## Guarantees
//! - A `Snapshot` is never written while it lives (its slot is pinned).
//! - A snapshot is validated (bytecheck) before first use; failures are errors.
//! - Opening with a different type is `TypeMismatch`, with a field-level diff.
//! - The writer never waits for readers; readers never wait for the writer.
//! - A writer killed at any instruction leaves the last published snapshot
//!   readable; a dead reader's pin is reclaimed (OFD-lock liveness, no PIDs).
//!
//! Objects other users may read pin with OFD read locks on the data segment
//! instead of the shared reader table, so their readers need no write access at
//! all ([`WriterOptions::lock_pins`]).
//!
//! ## Limitations
//! - Linux only (OFD locks, shared futexes, `/dev/shm`).
//! - One writer per object. Processes with write access to the data segment are
//!   trusted (they could write anything). Readers of an owner-only object share
//!   its reader table and so trust one another; readers of an object others may
//!   read (lock pins) cannot harm the writer or each other, only make it grow to
//!   `max_slots` by holding slots.
//! - The segment grows and never shrinks while it exists.
//! - Archived alignment above 16 is rejected at compile time (rkyv limitation).
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
#![warn(missing_docs)]

#[cfg(not(loom))]
mod await_writer;
#[cfg(not(loom))]
mod error;
#[cfg(all(feature = "fault-injection", not(loom)))]
mod fault;
#[cfg(not(loom))]
mod generation;
#[cfg(not(loom))]
mod inspect;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod name;
#[cfg(not(loom))]
mod os;
mod protocol;
#[cfg(not(loom))]
mod raw_reader;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
pub mod schema;
#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
mod slot_writer;
mod sync;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub use {
    error::{Errno, OpenError, PublishError, ReadError, RemoveError, WaitError},
    generation::Generation,
    inspect::{inspect, list, ObjectInfo, ReaderInfo, SlotInfo},
    name::MAX_NAME_LEN,
    raw_reader::{RawReader, DEFAULT_WRITER_GRACE},
    reader::{Reader, ReaderOptions, Snapshot},
    schema::Schema,
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

/// Removes every shm object of `name` (data segment, reader table, writer lock).
///
/// Processes that have them open keep working on the old objects; new ones get
/// `NotFound`. `NotFound` if none of them existed.
#[cfg(not(loom))]
pub fn remove(name: &str) -> Result<(), RemoveError> {
    name::validate(name).map_err(|reason| RemoveError::InvalidName { name: name.into(), reason })?;
    let mut found = false;
    for object in [name::data(name), name::readers(name), name::lock(name)] {
        match os::ShmObject::unlink(&object) {
            Ok(()) => found = true,
            Err(Errno::NOENT) => {}
            Err(Errno::ACCESS | Errno::PERM) => return Err(RemoveError::PermissionDenied { name: name.into() }),
            Err(errno) => return Err(RemoveError::Os { op: "unlinking", errno }),
        }
    }
    if found {
        Ok(())
    } else {
        Err(RemoveError::NotFound { name: name.into() })
    }
}

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
