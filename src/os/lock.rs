//! Open-file-description (OFD) byte-range locks.
//!
//! Why OFD locks: they belong to an open file description, not to a process, so
//! they are released by the kernel when the holder dies (even by SIGKILL), they do
//! not depend on PIDs (which are reused and differ between PID namespaces), and two
//! handles in one process do not share them. A write lock needs an fd opened for
//! writing, so a process with read-only access cannot take one.

use std::os::fd::{AsFd, AsRawFd};

use rustix::io::Errno;

use crate::protocol::locks::LockProbe;

fn flock_struct(kind: libc::c_short, start: u64, len: u64) -> libc::flock {
    // SAFETY: `libc::flock` is a plain C struct for which all-zeroes is valid.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    fl.l_pid = 0; // required to be 0 for OFD locks
    fl
}

fn fcntl(fd: impl AsFd, cmd: libc::c_int, fl: &mut libc::flock) -> Result<(), Errno> {
    // SAFETY:
    // - `fd` is a live descriptor borrowed for the duration of the call;
    // - `fl` points to an initialised `struct flock` that outlives the call;
    // - F_OFD_SETLK / F_OFD_GETLK take exactly such a pointer.
    let r = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), cmd, fl as *mut libc::flock) };
    if r == -1 {
        Err(Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)))
    } else {
        Ok(())
    }
}

/// Takes a write lock on `[start, start + len)` without blocking.
/// `Ok(false)` when another open file description holds a conflicting lock.
pub(crate) fn try_write_lock(fd: impl AsFd, start: u64, len: u64) -> Result<bool, Errno> {
    let mut fl = flock_struct(libc::F_WRLCK as libc::c_short, start, len);
    match fcntl(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::AGAIN || e == Errno::ACCESS => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes a write lock on `[start, start + len)`, sleeping in the kernel until
/// no other open file description holds a conflicting lock (`F_OFD_SETLKW`;
/// a holder that dies releases at once). Retried when a signal interrupts it.
pub(crate) fn write_lock_wait(fd: impl AsFd, start: u64, len: u64) -> Result<(), Errno> {
    let fd = fd.as_fd();
    loop {
        let mut fl = flock_struct(libc::F_WRLCK as libc::c_short, start, len);
        match fcntl(fd, libc::F_OFD_SETLKW, &mut fl) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Takes a read lock on `[start, start + len)` without blocking (a read-only
/// descriptor may). `Ok(false)` when a write lock is held there.
pub(crate) fn try_read_lock(fd: impl AsFd, start: u64, len: u64) -> Result<bool, Errno> {
    let mut fl = flock_struct(libc::F_RDLCK as libc::c_short, start, len);
    match fcntl(fd, libc::F_OFD_SETLK, &mut fl) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::AGAIN || e == Errno::ACCESS => Ok(false),
        Err(e) => Err(e),
    }
}

/// Asks which lock another open file description holds on the range (a write
/// lock is reported over read locks), without taking anything, so probing never
/// disturbs the owner. Works on a read-only fd.
pub(crate) fn probe_lock(fd: impl AsFd, start: u64, len: u64) -> Result<LockProbe, Errno> {
    let mut fl = flock_struct(libc::F_WRLCK as libc::c_short, start, len);
    fcntl(fd, libc::F_OFD_GETLK, &mut fl)?;
    Ok(if fl.l_type == libc::F_WRLCK as libc::c_short {
        LockProbe::WriteLocked
    } else if fl.l_type == libc::F_RDLCK as libc::c_short {
        LockProbe::ReadLocked
    } else {
        LockProbe::Unlocked
    })
}

/// Releases a lock taken with `try_write_lock` on the same open file description.
pub(crate) fn unlock(fd: impl AsFd, start: u64, len: u64) -> Result<(), Errno> {
    let mut fl = flock_struct(libc::F_UNLCK as libc::c_short, start, len);
    fcntl(fd, libc::F_OFD_SETLK, &mut fl)
}
