//! Errors: one enum per operation, each variant says what to do about it and
//! names the object. `Debug` prints the same text as `Display` (plus the
//! variant), so `?` in `main` shows a readable message, not escaped strings.

use core::fmt;

pub use rustix::io::Errno;

#[cfg(not(loom))]
use crate::schema::SchemaDiff;

/// Under loom no schema is built; `TypeMismatch` keeps its shape.
#[cfg(loom)]
#[derive(Default)]
pub struct SchemaDiff {
    changes: Vec<String>,
}

#[cfg(loom)]
impl SchemaDiff {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// How full `/dev/shm` was (statvfs) when an object could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmSpace {
    /// Bytes available to this process.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

impl ShmSpace {
    /// `/dev/shm` now, if statvfs answers.
    pub(crate) fn now() -> Option<Self> {
        #[cfg(not(loom))]
        return crate::os::shm_space().map(|(free, total)| ShmSpace { free, total });
        #[cfg(loom)]
        None
    }
}

/// Why a [`Writer`](crate::Writer) or [`Reader`](crate::Reader) could not open an object.
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
        diff: SchemaDiff,
    },
    /// The object was written by an incompatible version of shmstate.
    FormatVersion {
        /// The object name.
        name: String,
        /// Version found in the object.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The object is not a shmstate object, or its bytes are inconsistent.
    Corrupt {
        /// The object name.
        name: String,
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
        /// The object name.
        name: String,
        /// Entries in the table.
        capacity: u32,
    },
    /// `/dev/shm` is full: creating the object needed more than it has free.
    NoSpace {
        /// The object name.
        name: String,
        /// Bytes the object needed.
        needed: u64,
        /// `/dev/shm` at the time, if statvfs answered.
        shm: Option<ShmSpace>,
    },
    /// An option is out of range.
    InvalidOption {
        /// The object name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// An operating-system call failed.
    Os {
        /// The object name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`Writer::publish`](crate::Writer::publish) failed. The previous snapshot
/// stays published and readable.
#[non_exhaustive]
pub enum PublishError {
    /// The value needs more room than `max_size` allows.
    TooLarge {
        /// The object name.
        name: String,
        /// Serialized size of the value.
        needed: u64,
        /// Configured segment limit.
        limit: u64,
    },
    /// Every slot is held by readers and the slot table is full. Honest readers
    /// (at most `max_readers`, one slot each) never cause this; readers that
    /// write garbage pins or hold slot locks on purpose can.
    AllSlotsPinned {
        /// The object name.
        name: String,
        /// Slots in the table.
        slots: u32,
    },
    /// rkyv failed to serialize the value.
    Serialize {
        /// The object name.
        name: String,
        /// rkyv's message.
        message: String,
    },
    /// [`RawWriter::publish_bytes`](crate::RawWriter::publish_bytes): the
    /// bytes are not a valid archive of the object's type (the schema it was
    /// opened with); nothing was published.
    Invalid {
        /// The object name.
        name: String,
        /// What the schema-driven check found.
        reason: String,
    },
    /// The 52-bit generation counter is exhausted.
    GenerationsExhausted {
        /// The object name.
        name: String,
    },
    /// `/dev/shm` is full: growing the data segment needed more than it has free.
    NoSpace {
        /// The object name.
        name: String,
        /// Bytes the segment needed beyond its current size.
        needed: u64,
        /// `/dev/shm` at the time, if statvfs answered.
        shm: Option<ShmSpace>,
    },
    /// An operating-system call failed.
    Os {
        /// The object name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
    /// `try_publish` / `try_update` of a shared writer: another writer
    /// holds the publish lock right now; nothing was published.
    Busy {
        /// The object name.
        name: String,
    },
    /// The slot table a shared writer took over from another writer is
    /// inconsistent (as `OpenError::Corrupt` for a writer taking over).
    Corrupt {
        /// The object name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// Why [`Reader::read`](crate::Reader::read) failed.
#[non_exhaustive]
pub enum ReadError {
    /// Nothing has been published yet.
    Empty {
        /// The object name.
        name: String,
    },
    /// The snapshot failed bytecheck validation (it is never handed out).
    Invalid {
        /// The object name.
        name: String,
        /// Generation of the bad snapshot.
        generation: u64,
        /// What bytecheck reported.
        reason: String,
    },
    /// The shared bookkeeping is inconsistent.
    Corrupt {
        /// The object name.
        name: String,
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
        /// The object name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
    /// A [`SharedReader`](crate::SharedReader) could not open the reader of
    /// this thread (e.g. `ReaderTableFull`: more threads read than the object
    /// has reader entries).
    Open(OpenError),
    /// A [`SharedReader`](crate::SharedReader) was read from a thread-local
    /// destructor after shmstate's own had run on that thread.
    ThreadExiting {
        /// The object name.
        name: String,
    },
}

/// Why [`Reader::wait_newer`](crate::Reader::wait_newer) returned without a newer generation.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing newer was published before the timeout; the writer is alive (or
    /// dead for less than the grace period: a new one may still take over).
    Timeout {
        /// The object name.
        name: String,
    },
    /// The writer is gone (its lock is free), no new writer took over within
    /// the grace period, and nothing newer exists.
    WriterDead {
        /// The object name.
        name: String,
    },
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
        /// The object name.
        name: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        errno: Errno,
    },
}

/// Why [`remove`](crate::remove) failed.
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
        /// The object name.
        name: String,
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
                    "\n  a reader and its writer must use the same type: let the new writer publish the old \
                     type too (`WriterOptions::lane`), or roll readers and writer together (see docs/DEPLOYING.md)"
                )
            }
            OpenError::FormatVersion { name, found, supported } => {
                write!(f, "object {name:?} has shm format version {found}; this build of shmstate reads version {supported}: ")?;
                if found > supported {
                    write!(f, "its writer uses a newer shmstate, so upgrade this program's (docs/COMPATIBILITY.md)")
                } else {
                    write!(
                        f,
                        "its writer uses an older shmstate: upgrade the writer, or remove the object so that \
                         an upgraded writer creates it anew (docs/COMPATIBILITY.md)"
                    )
                }
            }
            OpenError::Corrupt { name, what } => write!(f, "corrupt object {name:?}: {what}"),
            OpenError::NotInitialized { name } => {
                write!(f, "object {name:?} exists but was never fully initialised (its creator may have died; remove it)")
            }
            OpenError::ReaderTableFull { name, capacity } => {
                write!(f, "all {capacity} reader entries of {name:?} are in use by live readers (raise max_readers)")
            }
            OpenError::NoSpace { name, needed, shm } => no_space(f, name, "creating it needs", *needed, *shm),
            OpenError::InvalidOption { name, what } => write!(f, "invalid option for {name:?}: {what}"),
            OpenError::Os { name, op, errno } => write!(f, "{op} for {name:?}: {errno}"),
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::TooLarge { name, needed, limit } => write!(
                f,
                "value needs {needed} bytes; the data segment of {name:?} may grow to {limit} bytes (raise max_size)"
            ),
            PublishError::AllSlotsPinned { name, slots } => {
                write!(
                    f,
                    "all {slots} slots of {name:?} are held by readers (a reader pinning slots it does not read?)"
                )
            }
            PublishError::Serialize { name, message } => {
                write!(f, "serializing a value for {name:?} failed: {message}")
            }
            PublishError::Invalid { name, reason } => {
                write!(f, "not published into {name:?}: the bytes are no valid archive of its type ({reason})")
            }
            PublishError::GenerationsExhausted { name } => write!(f, "the generation counter of {name:?} is exhausted"),
            PublishError::NoSpace { name, needed, shm } => no_space(f, name, "growing it needs another", *needed, *shm),
            PublishError::Os { name, op, errno } => write!(f, "{op} for {name:?}: {errno}"),
            PublishError::Busy { name } => write!(f, "another writer is publishing {name:?}: nothing published"),
            PublishError::Corrupt { name, what } => write!(f, "corrupt object {name:?}: {what}"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Empty { name } => write!(f, "nothing has been published to {name:?} yet"),
            ReadError::Invalid { name, generation, reason } => {
                write!(f, "snapshot of generation {generation} of {name:?} failed validation: {reason}")
            }
            ReadError::Corrupt { name, what } => write!(f, "corrupt object {name:?}: {what}"),
            ReadError::Replaced { name } => {
                write!(f, "object {name:?} was removed and created again since this reader opened it: open it again")
            }
            ReadError::Os { name, op, errno } => write!(f, "{op} for {name:?}: {errno}"),
            ReadError::Open(e) => write!(f, "opening this thread's reader: {e}"),
            ReadError::ThreadExiting { name } => write!(f, "read of {name:?} from a thread that is exiting"),
        }
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Timeout { name } => write!(f, "timed out waiting for a newer generation of {name:?}"),
            WaitError::WriterDead { name } => {
                write!(f, "the writer of {name:?} is dead and nothing newer was published")
            }
            WaitError::Replaced { name } => {
                write!(f, "object {name:?} was removed and created again since this reader opened it: open it again")
            }
            WaitError::Removed { name } => {
                write!(f, "object {name:?} was removed and its writer is dead: nothing will be published to it")
            }
            WaitError::Os { name, op, errno } => write!(f, "{op} for {name:?}: {errno}"),
        }
    }
}

impl fmt::Display for RemoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveError::NotFound { name } => write!(f, "no shmstate object named {name:?}"),
            RemoveError::InvalidName { name, reason } => write!(f, "invalid object name {name:?}: {reason}"),
            RemoveError::PermissionDenied { name } => write!(f, "permission denied removing {name:?}"),
            RemoveError::Os { name, op, errno } => write!(f, "{op} {name:?}: {errno}"),
        }
    }
}

impl std::error::Error for OpenError {}
impl std::error::Error for PublishError {}
impl std::error::Error for ReadError {}
impl std::error::Error for WaitError {}
impl std::error::Error for RemoveError {}

/// `Debug` is `Display` plus the variant: `?` in `main` prints it, and a
/// schema diff with escaped newlines on one line helps nobody.
macro_rules! debug_as_display {
    ($($ty:ident { $($variant:ident)* })*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let variant = match self {
                    $($ty::$variant { .. } => stringify!($variant),)*
                };
                write!(f, "{self} ({}::{variant})", stringify!($ty))
            }
        }
    )*};
}

debug_as_display! {
    OpenError {
        NotFound AlreadyExists PermissionDenied InvalidName NotOwner WriterBusy TypeMismatch
        FormatVersion Corrupt NotInitialized ReaderTableFull NoSpace InvalidOption Os
    }
    PublishError { TooLarge AllSlotsPinned Serialize Invalid GenerationsExhausted NoSpace Os Busy Corrupt }
    ReadError { Empty Invalid Corrupt Replaced Os Open ThreadExiting }
    WaitError { Timeout WriterDead Replaced Removed Os }
    RemoveError { NotFound InvalidName PermissionDenied Os }
}

impl PublishError {
    /// The error for a failed grow of `name`'s data segment by `needed` bytes.
    pub(crate) fn growing(name: &str, needed: u64, errno: Errno) -> Self {
        match errno {
            Errno::NOSPC => PublishError::NoSpace { name: name.into(), needed, shm: ShmSpace::now() },
            errno => PublishError::Os { name: name.into(), op: "growing the data segment", errno },
        }
    }
}

impl OpenError {
    /// The error for a failed allocation of `needed` bytes for `name`.
    pub(crate) fn allocating(name: &str, op: &'static str, needed: u64, errno: Errno) -> Self {
        match errno {
            Errno::NOSPC => OpenError::NoSpace { name: name.into(), needed, shm: ShmSpace::now() },
            errno => OpenError::Os { name: name.into(), op, errno },
        }
    }
}

/// The ENOSPC message: what was needed, what `/dev/shm` has, how to raise it.
fn no_space(f: &mut fmt::Formatter<'_>, name: &str, doing: &str, needed: u64, shm: Option<ShmSpace>) -> fmt::Result {
    write!(f, "no space left in /dev/shm for {name:?}: {doing} {}", Bytes(needed))?;
    let Some(ShmSpace { free, total }) = shm else {
        return write!(f, " (statvfs on /dev/shm failed, so its size is unknown); free space or enlarge /dev/shm");
    };
    // The smallest size that fits, rounded up to whole GiB.
    const GIB: u64 = 1 << 30;
    let fits = total.saturating_sub(free).saturating_add(needed);
    let suggest = fits.div_ceil(GIB).max(total.div_ceil(GIB) + 1);
    write!(
        f,
        ", and /dev/shm has {} free of {}. Remove objects no longer used (`shmstate gc`), or enlarge \
         /dev/shm: as root `mount -o remount,size={suggest}G /dev/shm`; for a container, \
         `docker run --shm-size={suggest}g` (Kubernetes: a memory-backed emptyDir on /dev/shm)",
        Bytes(free),
        Bytes(total)
    )
}

/// A byte count for people: `1.5 GiB`, `512 KiB`, `100 B`.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_while_publishing_says_what_was_needed_and_how_to_enlarge() {
        const GIB: u64 = 1 << 30;
        let e = PublishError::NoSpace {
            name: "app.config".into(),
            needed: 3 * GIB / 2,
            shm: Some(ShmSpace { free: GIB / 2, total: 2 * GIB }),
        };
        assert_eq!(
            e.to_string(),
            "no space left in /dev/shm for \"app.config\": growing it needs another 1.5 GiB, and /dev/shm \
             has 512.0 MiB free of 2.0 GiB. Remove objects no longer used (`shmstate gc`), or enlarge \
             /dev/shm: as root `mount -o remount,size=3G /dev/shm`; for a container, \
             `docker run --shm-size=3g` (Kubernetes: a memory-backed emptyDir on /dev/shm)"
        );
        assert_eq!(format!("{e:?}"), format!("{e} (PublishError::NoSpace)"));
        let unknown = PublishError::NoSpace { name: "x".into(), needed: 100, shm: None };
        assert!(unknown.to_string().contains("needs another 100 B (statvfs on /dev/shm failed"), "{unknown}");
    }

    #[test]
    fn a_format_version_mismatch_names_both_versions_and_which_side_to_upgrade() {
        let newer = OpenError::FormatVersion { name: "a".into(), found: 4, supported: 3 }.to_string();
        assert!(newer.contains("format version 4; this build of shmstate reads version 3"), "{newer}");
        assert!(newer.contains("upgrade this program's"), "{newer}");
        let older = OpenError::FormatVersion { name: "a".into(), found: 2, supported: 3 }.to_string();
        assert!(older.contains("its writer uses an older shmstate: upgrade the writer"), "{older}");
    }

    #[test]
    fn only_enospc_becomes_no_space() {
        assert!(matches!(PublishError::growing("x", 1, Errno::NOSPC), PublishError::NoSpace { .. }));
        assert!(matches!(PublishError::growing("x", 1, Errno::IO), PublishError::Os { errno: Errno::IO, .. }));
        assert!(matches!(OpenError::allocating("x", "a", 1, Errno::NOSPC), OpenError::NoSpace { .. }));
        assert!(matches!(OpenError::allocating("x", "a", 1, Errno::PERM), OpenError::Os { op: "a", .. }));
    }

    #[test]
    fn statvfs_reports_dev_shm() {
        let shm = ShmSpace::now().expect("statvfs /dev/shm");
        assert!(shm.free <= shm.total, "{shm:?}");
    }

    #[test]
    fn byte_counts_read_well() {
        let shown: Vec<String> = [0, 1023, 1024, 1536 << 10, 5 << 40].iter().map(|&n| Bytes(n).to_string()).collect();
        assert_eq!(shown, ["0 B", "1023 B", "1.0 KiB", "1.5 MiB", "5.0 TiB"]);
    }
}
