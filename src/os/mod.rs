//! The OS boundary: POSIX shared memory objects, mappings, locks and futexes.
//!
//! Nothing outside this module calls rustix, libc or memmap2. Everything here is
//! Linux-specific (OFD locks, shared futexes) and documented as such.
#![allow(unsafe_code)]
//! # Safety
//! The only `unsafe` is the `fcntl` call for open-file-description locks, which
//! passes a pointer to a local, fully initialised `struct flock`.

#[cfg(feature = "fault-injection")]
pub(crate) mod fault;
mod lock;
mod shm;
mod watch;

pub(crate) use crate::protocol::locks::LockProbe;
pub(crate) use lock::{probe_lock, try_read_lock, try_write_lock, unlock, write_lock_wait};
pub(crate) use shm::{Mapping, ShmObject, UnderName};
pub(crate) use watch::ShmDirWatch;

use std::time::Duration;

/// Wall-clock time in nanoseconds since the Unix epoch (for publish times);
/// 0 before the epoch. The C library's `clock_gettime` (its vDSO call),
/// without `SystemTime`'s `Duration` arithmetic (a publish reads it once per
/// object). Not rustix's own vDSO lookup: that one reads the auxiliary
/// vector in a way valgrind does not emulate, and crashed C programs run
/// under memcheck (scripts/test-all.sh).
pub(crate) fn now_unix_ns() -> u64 {
    let ts = clock(libc::CLOCK_REALTIME);
    if ts.tv_sec < 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// A monotonic clock with a resolution of a few milliseconds (vDSO, about
/// 10 ns here against 50 ns for `Instant::now` on this VM): for rate limits
/// on hot slow paths.
pub(crate) fn coarse_now() -> Duration {
    let ts = clock(libc::CLOCK_MONOTONIC_COARSE);
    Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// `clock_gettime(id)`; the clocks asked for always exist on Linux, so a
/// failure (which cannot happen) reads as time 0.
fn clock(id: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` for the call's duration.
    if unsafe { libc::clock_gettime(id, &mut ts) } != 0 {
        return libc::timespec { tv_sec: 0, tv_nsec: 0 };
    }
    ts
}

/// A random, non-zero 64-bit id (an object's incarnation). From the kernel's
/// CSPRNG; if that fails (it does not on Linux ≥ 3.17), from the clock, the pid
/// and a stack address, which still differ between two creations.
pub(crate) fn random_id() -> u64 {
    let mut buf = [0u8; 8];
    let id = match rustix::rand::getrandom(&mut buf[..], rustix::rand::GetRandomFlags::empty()) {
        Ok(8) => u64::from_le_bytes(buf),
        _ => now_unix_ns() ^ (pid() as u64).rotate_left(32) ^ (&buf as *const _ as u64).rotate_left(17),
    };
    id.max(1)
}

/// Stops this process (SIGSTOP) until someone sends SIGCONT (fault injection).
#[cfg(feature = "fault-injection")]
pub(crate) fn stop_self() {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
}

/// Bytes of `/dev/shm` available to this process and its total size
/// (statvfs), for the "no space" errors. `None` if the query fails.
pub(crate) fn shm_space() -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs("/dev/shm").ok()?;
    let block = st.f_frsize.max(1);
    Some((st.f_bavail.saturating_mul(block), st.f_blocks.saturating_mul(block)))
}

/// This process's effective user id.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's id (diagnostics only: liveness never relies on it).
pub(crate) fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// Blocks while `*word == expected`, at most `timeout`. Shared (not PRIVATE):
/// the word lives in memory other processes map.
pub(crate) fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::thread::futex::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // EAGAIN (value changed), EINTR and ETIMEDOUT all mean "go and look again".
    let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), expected, Some(&ts));
}

/// Wakes at most `n` processes waiting on `word` (shared, as `futex_wait`);
/// returns how many it woke. The kernel wakes waiters of one priority in the
/// order they started waiting.
pub(crate) fn futex_wake(word: &core::sync::atomic::AtomicU32, n: u32) -> u32 {
    rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), n).map_or(0, |woken| woken as u32)
}

/// One word for [`futex_waitv`]: wait while it holds `expected`. `private`:
/// the word is in this process's own memory (not shared with others).
#[cfg(feature = "tokio")]
pub(crate) struct WaitWord<'a> {
    pub word: &'a core::sync::atomic::AtomicU32,
    pub expected: u32,
    pub private: bool,
}

/// Blocks until one of `words` no longer holds its expected value or is woken,
/// at most `timeout` (forever with `None`). `futex_waitv`, Linux >= 5.16; at
/// most 128 words (the kernel's limit). Returns false on errors other than
/// "a value differed", a wake-up, a signal or the timeout (e.g. ENOSYS).
#[cfg(feature = "tokio")]
pub(crate) fn futex_waitv(words: &[WaitWord<'_>], timeout: Option<Duration>) -> bool {
    use rustix::thread::futex::{Wait, WaitFlags, WaitPtr, WaitvFlags};
    use rustix::time::{ClockId, Timespec};
    let waits: Vec<Wait> = words
        .iter()
        .map(|w| {
            let mut wait = Wait::new();
            wait.val = w.expected as u64;
            // The kernel only reads the word; the pointer is valid for the
            // call (borrowed), and rustix's `waitv` is a safe wrapper.
            wait.uaddr = WaitPtr::new(w.word.as_ptr().cast());
            wait.flags = if w.private { WaitFlags::SIZE_U32 | WaitFlags::PRIVATE } else { WaitFlags::SIZE_U32 };
            wait
        })
        .collect();
    // futex_waitv takes an absolute deadline on the given clock.
    let deadline = timeout.map(|t| {
        let now = clock(libc::CLOCK_MONOTONIC);
        let ns = now.tv_nsec as u64 + t.subsec_nanos() as u64;
        Timespec {
            tv_sec: now.tv_sec.saturating_add(t.as_secs().min(i64::MAX as u64) as i64) + (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        }
    });
    match rustix::thread::futex::waitv(&waits, WaitvFlags::empty(), deadline.as_ref(), ClockId::Monotonic) {
        Ok(_) => true,
        Err(e) => matches!(e, rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::TIMEDOUT),
    }
}

/// Wakes every thread of this process waiting on the private futex `word`.
#[cfg(feature = "tokio")]
pub(crate) fn futex_wake_private(word: &core::sync::atomic::AtomicU32) {
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::PRIVATE, i32::MAX as u32);
}
