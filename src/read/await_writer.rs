//! Opening a name whose writer has not created it yet
//! ([`ReaderOptions::wait_for_writer`](crate::ReaderOptions::wait_for_writer)):
//! wait for the object to appear (inotify on `/dev/shm`, no busy loop) and for
//! its first publish (the object's futex), then hand the handle over.

use std::time::{Duration, Instant};

use crate::error::{OpenError, WaitError};
use crate::os::ShmDirWatch;
use crate::read::raw_reader::RawReader;
use crate::Generation;

/// After a writer died before its first publish, how long to wait before
/// looking again (a new writer may take over).
const DEAD_CREATOR_PAUSE: Duration = Duration::from_millis(100);

/// Calls `open` until it finds the object and the object has a published
/// generation, or `timeout` passes. `NotFound` (and `NotInitialized`) mean
/// "wait and try again"; other errors are returned. At the timeout: the
/// object if it exists (it may have published nothing yet), else `NotFound`.
pub(crate) fn open_when_published(
    timeout: Duration,
    grace: Duration,
    mut open: impl FnMut() -> Result<RawReader, OpenError>,
) -> Result<RawReader, OpenError> {
    let deadline = Instant::now() + timeout;
    // Watch before the first look: a creation in between wakes the first wait.
    let mut watch = ShmDirWatch::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match open() {
            Ok(raw) => {
                if raw.generation() > Generation::NONE {
                    return Ok(raw);
                }
                match raw.wait_newer_with_grace(Generation::NONE, left, grace) {
                    Ok(_) | Err(WaitError::Timeout { .. }) => return Ok(raw),
                    // Its creator died before publishing, or it was replaced:
                    // look again (a new writer may take over or create it).
                    Err(WaitError::WriterDead { .. } | WaitError::Removed { .. } | WaitError::Replaced { .. }) => {
                        if left.is_zero() {
                            return Ok(raw);
                        }
                        std::thread::sleep(left.min(DEAD_CREATOR_PAUSE));
                    }
                    Err(WaitError::Os { name, op, errno }) => return Err(OpenError::Os { name, op, errno }),
                }
            }
            Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) if !left.is_zero() => {
                watch.wait(left);
            }
            Err(e) => return Err(e),
        }
    }
}
