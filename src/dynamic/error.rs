//! Why a snapshot could not be decoded or read.

use core::fmt;

use crate::{Generation, ReadError};

/// Why a snapshot's bytes do not decode with its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong, with byte positions.
    pub what: String,
    /// Where in the value (`.hosts[3].name`); empty for the root.
    pub path: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "at {}: {}", self.path, self.what)
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why [`dynamic::Reader::read`](super::Reader::read) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No snapshot could be had: nothing published yet, inconsistent shared
    /// bookkeeping, or an OS error.
    Read(ReadError),
    /// The snapshot of `generation` does not decode with the stored schema.
    Decode {
        /// The generation that failed.
        generation: Generation,
        /// Why.
        error: DecodeError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read(e) => e.fmt(f),
            Error::Decode { generation, error } => write!(f, "cannot decode generation {}: {error}", generation.get()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Read(e) => Some(e),
            Error::Decode { error, .. } => Some(error),
        }
    }
}
