//! The native half of `Reader.changed()`: the library's `Changed` future,
//! whose waker writes an eventfd that the asyncio loop watches
//! (`loop.add_reader`); the loop then polls it. Dropping it (a cancelled
//! task closes it) removes its registration.

use std::future::Future;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use pyo3::prelude::*;
use rustix::event::{eventfd, EventfdFlags};
use shmstate::Changed;

use crate::errors::{raise, to_py};

/// Wakes the loop: one write to the eventfd.
struct FdWaker(OwnedFd);

impl Wake for FdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // A full counter (never, at 2^64 - 2) would mean it is readable anyway.
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }
}

#[pyclass(module = "shmstate")]
pub(crate) struct AsyncWait {
    future: Option<Pin<Box<Changed>>>,
    waker: Waker,
    fd: Arc<FdWaker>,
}

impl AsyncWait {
    pub(crate) fn new(future: Changed) -> PyResult<Self> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| raise("Os", format!("eventfd: {e}")))?;
        let fd = Arc::new(FdWaker(fd));
        Ok(AsyncWait { future: Some(Box::pin(future)), waker: Waker::from(Arc::clone(&fd)), fd })
    }
}

#[pymethods]
impl AsyncWait {
    /// The eventfd to watch for readability.
    fn fileno(&self) -> i32 {
        self.fd.0.as_raw_fd()
    }

    /// The generation if the future is ready (then it is done), else `None`.
    fn poll(&mut self) -> PyResult<Option<u64>> {
        let mut buf = [0u8; 8];
        // Drain the wake-ups so far (EAGAIN when there were none).
        let _ = rustix::io::read(&self.fd.0, &mut buf);
        let Some(future) = self.future.as_mut() else { return Err(raise("Error", "already resolved".into())) };
        match future.as_mut().poll(&mut Context::from_waker(&self.waker)) {
            Poll::Pending => Ok(None),
            Poll::Ready(r) => {
                self.future = None;
                r.map(|g| Some(g.get())).map_err(to_py)
            }
        }
    }

    /// Drops the future (its registration goes with it).
    fn close(&mut self) {
        self.future = None;
    }
}
