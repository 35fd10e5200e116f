//! Errors: one enum per operation, each variant says what to do about it.

use core::fmt;

pub use rustix::io::Errno;

/// Why a [`Writer`](crate::Writer) or [`Reader`](crate::Reader) could not open an object.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// No object of this name exists (no writer has created it yet, or it was removed).
    NotFound {
        /// The object name.
        name: String,
    },
    /// `Writer::create` found an existing object; use `open_or_create` to take it over.
    AlreadyExists {
        /// The object name.
        name: String,
    },
    /// The object's file mode does not allow this access.
    PermissionDenied {
        /// The object name.
        name: String,
        /// What was being opened.
        object: &'static str,
    },
    /// The name cannot be used for an object.
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An object of this name belongs to another user (a stale object, or one
    /// planted to capture the writer): shmstate does not take it over.
    NotOwner {
        /// The object name.
        name: String,
        /// Which object.
        object: &'static str,
        /// Its owner's uid.
        owner: u32,
    },
    /// Another live writer holds this object.
    WriterBusy {
        /// The object name.
        name: String,
    },
    /// The object stores a different type (or another version of this one).
    TypeMismatch {
        /// The object name.
        name: String,
        /// This process's type: its name and fingerprint.
        expected: String,
        /// The object's type: its name and fingerprint (and the rkyv format, or
        /// why its schema is unreadable, when that is the cause).
        found: String,
        /// What changed from the object's type to this process's, field by
        /// field (empty when only the rkyv format differs).
        diff: crate::schema::SchemaDiff,
    },
    /// The object was written by an incompatible version of shmstate.
    FormatVersion {
        /// Version found in the object.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The object is not a shmstate object, or its bytes are inconsistent.
    Corrupt {
        /// What is wrong.
        what: String,
    },
    /// The object exists but its creator has not finished initialising it.
    NotInitialized {
        /// The object name.
        name: String,
    },
    /// Every reader entry is taken by a live reader.
    ReaderTableFull {
        /// Entries in the table.
        capacity: u32,
    },
    /// An option is out of range.
    InvalidOption {
        /// What is wrong.
        what: String,
    },
    /// An operating-system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`Writer::publish`](crate::Writer::publish) failed. The previous snapshot
/// stays published and readable.
#[derive(Debug)]
#[non_exhaustive]
pub enum PublishError {
    /// The value needs more room than `max_size` allows.
    TooLarge {
        /// Serialized size of the value.
        needed: u64,
        /// Configured segment limit.
        limit: u64,
    },
    /// Every slot is held by readers and the slot table is full. Honest readers
    /// (at most `max_readers`, one slot each) never cause this; readers that
    /// write garbage pins or hold slot locks on purpose can.
    AllSlotsPinned {
        /// Slots in the table.
        slots: u32,
    },
    /// rkyv failed to serialize the value.
    Serialize {
        /// rkyv's message.
        message: String,
    },
    /// The 52-bit generation counter is exhausted.
    GenerationsExhausted,
    /// An operating-system call failed (e.g. ENOSPC growing the segment).
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`Reader::read`](crate::Reader::read) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing has been published yet.
    Empty,
    /// The snapshot failed bytecheck validation (it is never handed out).
    Invalid {
        /// Generation of the bad snapshot.
        generation: u64,
        /// What bytecheck reported.
        reason: String,
    },
    /// The shared bookkeeping is inconsistent.
    Corrupt {
        /// What is wrong.
        what: String,
    },
    /// The object this reader opened was removed and another one created under
    /// its name (a redeployment): open the name again (or use
    /// [`ReaderOptions::follow`](crate::ReaderOptions::follow)). With `follow`:
    /// the new object could not be opened as this type (open it to see why).
    Replaced {
        /// The object name.
        name: String,
    },
    /// An operating-system call failed (remapping a grown segment).
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`Reader::wait_newer`](crate::Reader::wait_newer) returned without a newer generation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing newer was published before the timeout; the writer is alive (or
    /// dead for less than the grace period: a new one may still take over).
    Timeout,
    /// The writer is gone (its lock is free), no new writer took over within
    /// the grace period, and nothing newer exists.
    WriterDead,
    /// The object was removed and another one created under its name: open
    /// the name again (or use [`ReaderOptions::follow`](crate::ReaderOptions::follow)).
    Replaced {
        /// The object name.
        name: String,
    },
    /// The object was removed, its writer is dead, and nothing was created
    /// under its name within the grace period: nothing will be published again.
    Removed {
        /// The object name.
        name: String,
    },
    /// An operating-system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`remove`](crate::remove) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RemoveError {
    /// No object of this name exists.
    NotFound {
        /// The object name.
        name: String,
    },
    /// The name cannot be used for an object.
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Not allowed to remove it.
    PermissionDenied {
        /// The object name.
        name: String,
    },
    /// An operating-system call failed.
    Os {
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotFound { name } => {
                write!(f, "no shmstate object named {name:?} (no writer has created it, or it was removed)")
            }
            OpenError::AlreadyExists { name } => write!(
                f,
                "object {name:?} already exists; use open_or_create to take it over, or remove it"
            ),
            OpenError::PermissionDenied { name, object } => {
                write!(f, "permission denied opening the {object} of {name:?} (check its file mode and owner)")
            }
            OpenError::InvalidName { name, reason } => write!(f, "invalid object name {name:?}: {reason}"),
            OpenError::NotOwner { name, object, owner } => write!(
                f,
                "the {object} of {name:?} belongs to uid {owner}, not to this user; refusing to use it (remove it if it is stale)"
            ),
            OpenError::WriterBusy { name } => write!(f, "another live writer holds {name:?}"),
            OpenError::TypeMismatch { name, expected, found, diff } => {
                write!(f, "object {name:?} holds another type\n  in the object:   {found}\n  in this process: {expected}")?;
                if diff.is_empty() {
                    write!(f, "\n  no field differs")?;
                } else {
                    write!(f, "\n  changes from the object's type to this process's:")?;
                    for change in &diff.changes {
                        write!(f, "\n    {change}")?;
                    }
                }
                write!(
                    f,
                    "\n  a reader and its writer must use the same type: roll readers and writer together, \
                     or publish both versions under two names during the rollout (see docs/DEPLOYING.md)"
                )
            }
            OpenError::FormatVersion { found, supported } => write!(
                f,
                "object format version {found} is not supported by this build (it reads version {supported})"
            ),
            OpenError::Corrupt { what } => write!(f, "corrupt object: {what}"),
            OpenError::NotInitialized { name } => {
                write!(f, "object {name:?} exists but was never fully initialised (its creator may have died; remove it)")
            }
            OpenError::ReaderTableFull { capacity } => {
                write!(f, "all {capacity} reader entries are in use by live readers (raise max_readers)")
            }
            OpenError::InvalidOption { what } => write!(f, "invalid option: {what}"),
            OpenError::Os { op, errno } => write!(f, "{op}: {errno}"),
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::TooLarge { needed, limit } => {
                write!(f, "value needs {needed} bytes; the segment may grow to {limit} bytes (raise max_size)")
            }
            PublishError::AllSlotsPinned { slots } => {
                write!(f, "all {slots} slots are held by readers (a reader pinning slots it does not read?)")
            }
            PublishError::Serialize { message } => write!(f, "serialization failed: {message}"),
            PublishError::GenerationsExhausted => write!(f, "the generation counter is exhausted"),
            PublishError::Os { op, errno } => write!(f, "{op}: {errno}"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Empty => write!(f, "nothing has been published yet"),
            ReadError::Invalid { generation, reason } => {
                write!(f, "snapshot of generation {generation} failed validation: {reason}")
            }
            ReadError::Corrupt { what } => write!(f, "corrupt object: {what}"),
            ReadError::Replaced { name } => {
                write!(f, "object {name:?} was removed and created again since this reader opened it: open it again")
            }
            ReadError::Os { op, errno } => write!(f, "{op}: {errno}"),
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout => write!(f, "timed out waiting for a newer generation"),
            WaitError::WriterDead => write!(f, "the writer is dead and nothing newer was published"),
            WaitError::Replaced { name } => {
                write!(f, "object {name:?} was removed and created again since this reader opened it: open it again")
            }
            WaitError::Removed { name } => {
                write!(f, "object {name:?} was removed and its writer is dead: nothing will be published to it")
            }
            WaitError::Os { op, errno } => write!(f, "{op}: {errno}"),
        }
    }
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::NotFound { name } => write!(f, "no shmstate object named {name:?}"),
            RemoveError::InvalidName { name, reason } => write!(f, "invalid object name {name:?}: {reason}"),
            RemoveError::PermissionDenied { name } => write!(f, "permission denied removing {name:?}"),
            RemoveError::Os { op, errno } => write!(f, "{op}: {errno}"),
        }
    }
}

impl std::error::Error for OpenError {}
impl std::error::Error for PublishError {}
impl std::error::Error for ReadError {}
impl std::error::Error for WaitError {}
impl std::error::Error for RemoveError {}
