//! The CLI's failures: exit codes, [`Failure`], and how the library's errors
//! map to them (exit code, message, and the JSON `error` kind). The subcommands
//! and the JSON forms both use it; it uses neither.

use shmstate::{OpenError, ReadError, RemoveError};

/// A failure with its exit code and message.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
}

pub mod code {
    pub const OTHER: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const PERMISSION: u8 = 4;
    pub const CORRUPT: u8 = 5;
    pub const WRITER_DEAD: u8 = 6;
    /// `rm` refused: live readers use the object (`--force` overrides).
    pub const IN_USE: u8 = 7;
    /// `doctor` found at least one problem.
    pub const PROBLEM: u8 = 8;
}

/// A stable machine-readable name for an open failure (JSON `error` field).
pub fn error_kind(e: &OpenError) -> &'static str {
    match e {
        OpenError::NotFound { .. } => "not_found",
        OpenError::PermissionDenied { .. } => "permission_denied",
        OpenError::InvalidName { .. } => "invalid_name",
        OpenError::FormatVersion { .. } => "unknown_format_version",
        OpenError::Corrupt { .. } => "corrupt",
        OpenError::NotInitialized { .. } => "not_initialized",
        OpenError::TypeMismatch { .. } => "type_mismatch",
        OpenError::ReaderTableFull { .. } => "reader_table_full",
        OpenError::Os { .. } => "os",
        _ => "other",
    }
}

/// The exit code and message for failing to open `name`.
pub fn open_failure(name: &str, e: &OpenError) -> Failure {
    let c = match e {
        OpenError::NotFound { .. } => code::NOT_FOUND,
        OpenError::PermissionDenied { .. } => code::PERMISSION,
        OpenError::InvalidName { .. } => code::USAGE,
        OpenError::FormatVersion { .. }
        | OpenError::Corrupt { .. }
        | OpenError::NotInitialized { .. }
        | OpenError::TypeMismatch { .. } => code::CORRUPT,
        _ => code::OTHER,
    };
    let message = match e {
        // These already name the object.
        OpenError::NotFound { .. }
        | OpenError::PermissionDenied { .. }
        | OpenError::InvalidName { .. }
        | OpenError::NotInitialized { .. } => e.to_string(),
        OpenError::FormatVersion { .. } => {
            format!("{name}: {e}; it was written by a different shmstate release")
        }
        _ => format!("{name}: {e}"),
    };
    Failure::new(c, message)
}

/// The exit code and message for failing to read `name`.
pub fn read_failure(name: &str, e: &ReadError) -> Failure {
    let c = match e {
        ReadError::Invalid { .. } | ReadError::Corrupt { .. } => code::CORRUPT,
        _ => code::OTHER,
    };
    Failure::new(c, format!("{name}: {e}"))
}

/// The exit code and message for failing to remove an object.
pub fn remove_failure(e: &RemoveError) -> Failure {
    let c = match e {
        RemoveError::NotFound { .. } => code::NOT_FOUND,
        RemoveError::PermissionDenied { .. } => code::PERMISSION,
        RemoveError::InvalidName { .. } => code::USAGE,
        _ => code::OTHER,
    };
    Failure::new(c, e.to_string())
}
