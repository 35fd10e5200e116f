//! Waiting for a name to appear in `/dev/shm`, without a busy loop: inotify
//! on the directory, or, where that is unavailable, a bounded back-off.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;

/// Longest sleep between two looks when inotify is unavailable, and between
/// two looks even with it (an event queue that overflowed loses nothing then).
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Something that wakes up when an entry is created in (or moved into) `/dev/shm`.
#[derive(Debug)]
pub(crate) struct ShmDirWatch {
    /// The inotify descriptor (non-blocking); `None`: back off instead.
    inotify: Option<OwnedFd>,
    backoff: Duration,
}

impl ShmDirWatch {
    /// Starts watching. Set up *before* looking for the name, so a creation in
    /// between is not missed.
    pub(crate) fn new() -> Self {
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).ok().filter(|fd| {
            let events = inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::ONLYDIR;
            inotify::add_watch(fd, "/dev/shm", events).is_ok()
        });
        ShmDirWatch { inotify, backoff: Duration::from_millis(1) }
    }

    /// Blocks until an entry is created in `/dev/shm` (with inotify) or for
    /// the next back-off step (without), at most `timeout`. Callers look again
    /// after any return: an event may be for another name.
    pub(crate) fn wait(&mut self, timeout: Duration) {
        let Some(fd) = &self.inotify else {
            std::thread::sleep(timeout.min(self.backoff));
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            return;
        };
        let slice = timeout.min(MAX_BACKOFF * 10);
        let ts = Timespec { tv_sec: slice.as_secs() as i64, tv_nsec: slice.subsec_nanos() as _ };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        // EINTR: look again, like a wake-up.
        let _ = poll(&mut fds, Some(&ts));
        drain(fd);
    }
}

impl Drop for ShmDirWatch {
    /// Closing an inotify descriptor waits for a kernel grace period (5 to
    /// 20 ms measured here, BENCHMARKS.md "Lanes"): a reader that waited for
    /// its object would return that much after finding it. Close it on a
    /// short-lived thread instead (inline if none can be started).
    fn drop(&mut self) {
        let Some(fd) = self.inotify.take() else { return };
        let _ = std::thread::Builder::new().name("shmstate-close".into()).spawn(move || drop(fd));
    }
}

/// Empties the event queue: the events only say "look again".
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}
