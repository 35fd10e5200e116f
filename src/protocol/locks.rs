//! Byte-range locks as the protocol uses them: non-blocking, owned by one open
//! file description, released by the kernel when the owner dies.
//!
//! The protocol code (`slots.rs`, `lock_pins.rs`, `protocol::claim_entry`) is
//! written against [`ByteLocks`], so it runs unchanged on the real OFD locks of
//! a shm object (`os::ShmObject`) and, under loom, on a model object with the
//! same semantics (`loom_tests.rs`).

use rustix::io::Errno;

/// What a lock probe found on a byte, held by *another* open file description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockProbe {
    /// Someone holds a write lock: the owner is alive.
    WriteLocked,
    /// Someone holds a read lock (and nobody a write lock).
    ReadLocked,
    /// No lock.
    Unlocked,
}

/// Non-blocking locks on single bytes of one object, through one open file
/// description (`F_OFD_SETLK` / `F_OFD_GETLK` semantics: read locks are shared,
/// a write lock is exclusive, a lock of the same description on the same byte
/// is replaced, and nothing ever blocks).
pub(crate) trait ByteLocks {
    /// Takes a write lock on `byte`; `Ok(false)` if another description holds any lock there.
    fn try_write_lock(&self, byte: u64) -> Result<bool, Errno>;
    /// Takes a read lock on `byte`; `Ok(false)` if another description holds a write lock there.
    fn try_read_lock(&self, byte: u64) -> Result<bool, Errno>;
    /// Releases this description's lock on `byte`.
    fn unlock(&self, byte: u64) -> Result<(), Errno>;
    /// The lock another description holds on `byte` (takes nothing).
    fn probe(&self, byte: u64) -> Result<LockProbe, Errno>;
}
