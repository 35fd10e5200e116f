//! What one importer may take from the host, whatever the bucket holds: the
//! size of one snapshot, the number of local objects and the shared memory
//! they hold. Every value received is checked against these before anything
//! is allocated, fetched or created for it.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// Limits of one importer. `Default` gives limits that protect the host
/// (see each field); `ImportLimits::unlimited()` none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Largest snapshot accepted, inline or from the object store (default
    /// 64 MiB). A larger one is refused before it is fetched.
    pub max_value_bytes: u64,
    /// Local objects the importer creates or opens at most (default 1,000, or
    /// fewer when the process's open-file limit could not hold them: each
    /// object keeps 3 descriptors).
    pub max_objects: usize,
    /// Shared memory the importer's objects may hold together (default half
    /// of `/dev/shm`'s size, so the host's other users keep the rest). A
    /// publish that could pass it is refused.
    pub max_shm_bytes: u64,
    /// How long one object-store fetch may take (default 60 s); a stalled
    /// or withheld object is then refused and its fetch slot freed.
    pub fetch_timeout: Duration,
}

/// Files of object `N` in /dev/shm: `shmstate.N`, `shmstate.N.readers`,
/// `shmstate.N.lock` (docs/PROTOCOL.md).
const SHM_FILES: [(&str, &str); 3] = [("shmstate.", ""), ("shmstate.", ".readers"), ("shmstate.", ".lock")];
/// Descriptors one open local object keeps (data segment, reader table, lock).
const FDS_PER_OBJECT: u64 = 3;
/// Descriptors left for the NATS connection, the runtime and the rest.
const FDS_SPARE: u64 = 64;

impl Default for ImportLimits {
    fn default() -> Self {
        let by_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map_or(u64::MAX, |n| n.saturating_sub(FDS_SPARE) / FDS_PER_OBJECT);
        let shm = rustix::fs::statvfs("/dev/shm").map_or(u64::MAX, |s| s.f_blocks.saturating_mul(s.f_frsize));
        ImportLimits {
            max_value_bytes: 64 << 20,
            max_objects: by_fds.min(1000) as usize,
            max_shm_bytes: shm / 2,
            fetch_timeout: Duration::from_secs(60),
        }
    }
}

impl ImportLimits {
    /// No limits (for tests and programs that bound their input otherwise).
    pub fn unlimited() -> Self {
        ImportLimits {
            max_value_bytes: u64::MAX,
            max_objects: usize::MAX,
            max_shm_bytes: u64::MAX,
            fetch_timeout: Duration::MAX,
        }
    }
}

/// Bytes of shared memory the object `name` holds now: the blocks of its
/// data segment, reader table and lock (tmpfs allocates them as written, so a
/// segment's size can exceed what it holds). 0 for files that are gone.
pub(crate) fn shm_bytes_of(name: &str) -> u64 {
    SHM_FILES
        .iter()
        .filter_map(|(prefix, suffix)| std::fs::metadata(format!("/dev/shm/{prefix}{name}{suffix}")).ok())
        .map(|m| m.blocks() * 512)
        .sum()
}
