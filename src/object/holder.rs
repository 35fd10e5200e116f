//! Which process, as this process's PID namespace numbers it, holds the
//! writer lock of an object: read from `/proc/locks`.
//!
//! The header's `writer_pid` is the writer's own `getpid()`, a number in *its*
//! PID namespace: a writer in a container records `1` or `7`, which on the
//! host is some other process or none. The kernel lists each `flock` with the
//! holder's pid translated into the namespace of the `/proc` that is read, and
//! leaves out locks whose holder that namespace cannot see. So comparing the
//! two tells "same namespace", "another namespace (pid N here)" and "a
//! namespace we cannot see".

use std::os::unix::fs::MetadataExt as _;

/// Where the writer holding an object's lock runs, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterSeen {
    /// No process holds the writer lock (or `/proc/locks` could not be read).
    Unknown,
    /// The lock's holder has this pid here; it may differ from the header's
    /// `writer_pid` when the writer runs in a child PID namespace.
    Pid(u32),
    /// A live writer holds the lock but no process this namespace can see:
    /// it runs in another PID namespace (a sibling container, or the host).
    Hidden,
}

/// The device and inode of the shm object `file` (`/name`) and inode as `/proc/locks` prints them
/// (`MAJOR:MINOR:INODE`, major and minor in hex).
fn lock_key(file: &str) -> Option<String> {
    let meta = std::fs::metadata(format!("/dev/shm{file}")).ok()?;
    let dev = meta.dev();
    // The kernel's `MAJOR()`/`MINOR()` of a `dev_t` as glibc encodes it.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Some(format!("{major:02x}:{minor:02x}:{}", meta.ino()))
}

/// The pid of the process holding an exclusive `flock` on the file `key`
/// names, from a `/proc/locks` text.
fn flock_holder(locks: &str, key: &str) -> Option<u32> {
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, access, pid, at) = (fields.get(1)?, fields.get(3)?, fields.get(4)?, fields.get(5)?);
        (*kind == "FLOCK" && *access == "WRITE" && *at == key).then(|| pid.parse().ok()).flatten()
    })
}

/// Where the writer of `name` runs, given whether a live writer holds it
/// (its liveness lock, which works across namespaces).
pub(crate) fn writer_seen(name: &str, writer_alive: bool) -> WriterSeen {
    if !writer_alive {
        return WriterSeen::Unknown;
    }
    let Some(key) = lock_key(&crate::object::name::lock(name)) else { return WriterSeen::Unknown };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else { return WriterSeen::Unknown };
    match flock_holder(&locks, &key) {
        Some(pid) => WriterSeen::Pid(pid),
        None => WriterSeen::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_exclusive_flock_on_the_file() {
        let locks = "1: OFDLCK ADVISORY  WRITE -1 00:1a:77 1 1\n\
                     2: FLOCK  ADVISORY  WRITE 4242 00:1a:77 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 99 00:1a:78 0 EOF\n";
        assert_eq!(flock_holder(locks, "00:1a:77"), Some(4242));
        assert_eq!(flock_holder(locks, "00:1a:78"), Some(99));
        assert_eq!(flock_holder(locks, "00:1a:79"), None);
        // The same lock shown a second time as a blocked waiter ("->") is not the holder.
        assert_eq!(flock_holder("4: -> FLOCK  ADVISORY  WRITE 7 00:1a:80 0 EOF\n", "00:1a:80"), None);
    }
}
