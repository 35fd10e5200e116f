//! shmstate: a typed shared-state object store.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod schema;

pub use schema::Schema;
/// `#[shmstate::shared]`: rkyv `Archive`/`Serialize`/`Deserialize` + [`Schema`].
pub use shmstate_derive::shared;
/// `#[derive(shmstate::Schema)]`: the [`Schema`] impl alone.
pub use shmstate_derive::Schema;

/// rkyv, re-exported so user crates need no direct dependency.
pub use rkyv;

/// Paths used by generated code. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::schema::fp;
    pub use crate::schema::{
        Field, Kind, Primitive, Schema, SchemaBuilder, TypeDesc, TypeIndex, Variant,
    };
    pub use core;
    pub use rkyv;
    pub use std::string::String;
    pub use std::vec::Vec;
}
