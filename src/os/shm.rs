//! POSIX shared memory objects (`/dev/shm`) and their mappings.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::shm;

/// Opens `/dev/shm/<name>` like `shm_open`, but with `O_NOFOLLOW`: a symlink
/// planted under an object's name is refused (ELOOP) instead of followed.
/// (rustix's `shm::open` is `open("/dev/shm/…")` without it.)
fn open_shm(name: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
    let path = shm_path(name);
    rustix::fs::open(path.as_str(), flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)
}

/// The path of shm object `name`.
fn shm_path(name: &str) -> String {
    format!("/dev/shm/{}", name.trim_start_matches('/'))
}

/// What a name refers to now, compared with an open object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnderName {
    /// This very object (same device and inode).
    This,
    /// Another object: ours was removed and the name created again.
    Another,
    /// Nothing: ours was removed.
    Nothing,
}

/// An open shared memory object.
#[derive(Debug)]
pub(crate) struct ShmObject {
    fd: OwnedFd,
}

impl ShmObject {
    /// Creates `name` exclusively with `mode` (filtered by the umask; fchmod
    /// afterwards so the requested mode holds whatever the umask is).
    pub(crate) fn create_new(name: &str, mode: u32) -> Result<Self, Errno> {
        let fd = open_shm(name, OFlags::CREATE | OFlags::EXCL | OFlags::RDWR, Mode::from_bits_truncate(mode))?;
        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode))?;
        Ok(ShmObject { fd })
    }

    /// Opens `name`, creating it with `mode` if missing.
    pub(crate) fn open_or_create(name: &str, mode: u32) -> Result<Self, Errno> {
        match Self::create_new(name, mode) {
            Err(Errno::EXIST) => Self::open(name, true),
            r => r,
        }
    }

    /// Opens an existing `name`, read-write or read-only.
    pub(crate) fn open(name: &str, writable: bool) -> Result<Self, Errno> {
        let flags = if writable { OFlags::RDWR } else { OFlags::RDONLY };
        Ok(ShmObject { fd: open_shm(name, flags, Mode::empty())? })
    }

    /// Removes the name (mappings and open descriptors stay valid).
    pub(crate) fn unlink(name: &str) -> Result<(), Errno> {
        shm::unlink(name)
    }

    /// Current size, from fstat: the only size that is safe to map and touch.
    pub(crate) fn size(&self) -> Result<u64, Errno> {
        Ok(rustix::fs::fstat(&self.fd)?.st_size.max(0) as u64)
    }

    /// Takes an exclusive `flock` without blocking; `Ok(false)` if another open
    /// file description holds one. The kernel drops it when the holder dies.
    pub(crate) fn try_flock_exclusive(&self) -> Result<bool, Errno> {
        match rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes a shared `flock` without blocking; `Ok(false)` if another open
    /// file description holds an exclusive one.
    pub(crate) fn try_flock_shared(&self) -> Result<bool, Errno> {
        match rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => Ok(true),
            Err(Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Releases the `flock` taken with `try_flock_exclusive`, for every
    /// descriptor of this open file description (a forked child's copies too).
    pub(crate) fn unlock_flock(&self) -> Result<(), Errno> {
        rustix::fs::flock(&self.fd, rustix::fs::FlockOperation::Unlock)
    }

    /// Whether `name` still refers to this object (two `stat`s; an inode
    /// cannot be reused while our descriptor keeps it alive).
    pub(crate) fn under_name(&self, name: &str) -> Result<UnderName, Errno> {
        let ours = rustix::fs::fstat(&self.fd)?;
        let path = shm_path(name);
        match rustix::fs::statat(rustix::fs::CWD, path.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino) => Ok(UnderName::This),
            Ok(_) => Ok(UnderName::Another),
            Err(Errno::NOENT) => Ok(UnderName::Nothing),
            Err(e) => Err(e),
        }
    }

    /// The object's mode bits and owner.
    pub(crate) fn mode_and_owner(&self) -> Result<(u32, u32), Errno> {
        let st = rustix::fs::fstat(&self.fd)?;
        Ok((st.st_mode & 0o7777, st.st_uid))
    }

    /// Grows to at least `len` bytes, allocating the pages now so that a full
    /// tmpfs fails here with ENOSPC instead of SIGBUS at first touch. Never shrinks.
    pub(crate) fn grow_to(&self, len: u64) -> Result<(), Errno> {
        let size = self.size()?;
        if len <= size {
            return Ok(());
        }
        match rustix::fs::fallocate(&self.fd, FallocateFlags::empty(), size, len - size) {
            Ok(()) => Ok(()),
            // Some filesystems lack fallocate; ftruncate still grows (lazily).
            Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => rustix::fs::ftruncate(&self.fd, len),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A shared mapping of the first `len` bytes of an object.
///
/// Only raw pointers leave this type: no `&[u8]` is ever formed over memory that
/// another process may write (memmap2 `MmapRaw`).
#[derive(Debug)]
pub(crate) struct Mapping {
    map: MmapRaw,
}

impl Mapping {
    /// Maps `len` bytes (`len` must not exceed the object's fstat size, checked by
    /// the caller, or touching the tail raises SIGBUS).
    pub(crate) fn new(obj: &ShmObject, len: u64, writable: bool) -> Result<Self, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::NOMEM)?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable { opts.map_raw(&obj.fd) } else { opts.map_raw_read_only(&obj.fd) };
        let map = map.map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        Ok(Mapping { map })
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Makes the mapping reach `needed` bytes of `obj`: remaps to the
    /// object's current size if they lie beyond it; `Ok(false)` if the
    /// object is shorter than `needed` (a reader's view of a grown segment).
    pub(crate) fn cover(&mut self, obj: &ShmObject, needed: u64, writable: bool) -> Result<bool, Errno> {
        if needed <= self.len() {
            return Ok(true);
        }
        let size = obj.size()?;
        if needed > size {
            return Ok(false);
        }
        *self = Mapping::new(obj, size, writable)?;
        Ok(true)
    }
}

/// The object's OFD byte locks, through this descriptor.
impl crate::protocol::locks::ByteLocks for ShmObject {
    fn try_write_lock(&self, byte: u64) -> Result<bool, Errno> {
        super::try_write_lock(self.fd(), byte, 1)
    }

    fn try_read_lock(&self, byte: u64) -> Result<bool, Errno> {
        super::try_read_lock(self.fd(), byte, 1)
    }

    fn unlock(&self, byte: u64) -> Result<(), Errno> {
        super::unlock(self.fd(), byte, 1)
    }

    fn probe(&self, byte: u64) -> Result<crate::protocol::locks::LockProbe, Errno> {
        super::probe_lock(self.fd(), byte, 1)
    }
}
