//! `shmstate_reader_fd`: an eventfd that a helper thread signals when a new
//! generation is published (or a wait would end with an error), for C event
//! loops (poll, epoll, libuv, …).
//!
//! # Safety
//! Two libc calls: `eventfd`, whose result is owned at once, and `write` of
//! 8 bytes from a local `u64` to that descriptor.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use shmstate_core::dynamic::Watch;
use shmstate_core::WaitError;

use crate::error::{self, Error, Result};

/// How long one futex wait of the helper lasts: a closed reader's helper
/// ends within it.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// After a wait ended with an error (writer dead, replaced), how long the
/// helper rests before it waits again (a writer that takes over later is
/// then seen): once a second, not a spin.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

struct Shared {
    fd: OwnedFd,
    stop: AtomicBool,
    rest: (Mutex<()>, Condvar),
}

/// The reader's side: the fd, and the flag that ends the helper.
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    pub fn start(name: &str, follow: bool, writer_grace: Duration) -> Result<Self> {
        let watch = Watch::open(name, follow, writer_grace).map_err(error::from_open)?;
        #[allow(unsafe_code)]
        // SAFETY: `eventfd` takes no pointers; a non-negative result is a new
        // descriptor that nothing else owns, so `OwnedFd` may take it.
        let fd = unsafe {
            let raw = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if raw < 0 {
                let errno = std::io::Error::last_os_error();
                return Err(Error::new(error::OS, format!("{name}: eventfd: {errno}")));
            }
            OwnedFd::from_raw_fd(raw)
        };
        let shared = Arc::new(Shared { fd, stop: AtomicBool::new(false), rest: (Mutex::new(()), Condvar::new()) });
        let helper = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("shmstate-fd".into())
            .spawn(move || run(&watch, &helper))
            .map_err(|e| Error::new(error::OS, format!("{name}: starting the fd helper thread: {e}")))?;
        Ok(Notifier { shared })
    }

    pub fn fd(&self) -> RawFd {
        self.shared.fd.as_raw_fd()
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SYNC(stop): Release pairs with the Acquire loads in `run`; the
        // helper ends within a wait slice (or at once if resting).
        self.shared.stop.store(true, Ordering::Release);
        self.shared.rest.1.notify_all();
    }
}

fn signal(shared: &Shared) {
    let one: u64 = 1;
    #[allow(unsafe_code)]
    // SAFETY: 8 readable bytes from a local to a descriptor `shared` owns
    // (it stays open while this thread holds `shared`). A full counter
    // (EAGAIN) already means "readable": nothing to do then.
    let _ = unsafe { libc::write(shared.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// The helper: signals once at start (the caller may have missed a publish
/// before it polled), then after every newer generation and every wait error.
fn run(watch: &Watch, shared: &Shared) {
    // The generation first, then the start signal: a publish the caller's
    // read after the start signal does not see is newer than `seen`.
    let mut seen = watch.generation();
    signal(shared);
    // SYNC(stop): pairs with the Release store in `Notifier::drop`.
    while !shared.stop.load(Ordering::Acquire) {
        match watch.wait_newer(seen, WAIT_SLICE) {
            Ok(g) => {
                seen = g;
                signal(shared);
            }
            Err(WaitError::Timeout { .. }) => {}
            Err(_) => {
                signal(shared);
                let guard = shared.rest.0.lock().unwrap_or_else(|p| p.into_inner());
                let _ = shared
                    .rest
                    .1
                    .wait_timeout_while(guard, RETRY_AFTER_ERROR, |_| !shared.stop.load(Ordering::Acquire));
            }
        }
    }
}
