//! What every view holds: the pin of one generation and the mapping it
//! points into (`Pin`), and the object it belongs to (`Object`: its schema
//! and the pool of idle reader handles).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use shmstate::dynamic::{Cursor, Limits};
use shmstate::schema::SchemaDoc;
use shmstate::{OpenError, RawReader};

use crate::errors::raise;

/// Idle handles a `Reader` keeps for its next pins.
const MAX_IDLE: usize = 8;

/// Forks this process has gone through as a child: a pin or reader made
/// before is not used (or unpinned) after.
// SYNC(forks): Relaxed: written in the child right after `fork()`, when it has
// one thread; read by that thread and the ones it starts afterwards.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn forked() {
    FORKS.fetch_add(1, Relaxed);
}

/// Counts forks from now on (once, at import).
pub(crate) fn watch_forks() {
    // SAFETY: `forked` is an `extern "C" fn()` that only does an atomic add,
    // which is async-signal-safe, as a child handler of `fork()` must be.
    unsafe {
        libc::pthread_atfork(None, None, Some(forked));
    }
}

pub(crate) fn forks() -> u64 {
    FORKS.load(Relaxed)
}

/// One incarnation of an object: its schema and the idle handles of it.
pub(crate) struct Object {
    pub(crate) name: String,
    pub(crate) schema: SchemaDoc,
    pub(crate) incarnation: u64,
    idle: Mutex<Vec<RawReader>>,
    /// False once the `Reader` is gone: handles are closed, not pooled.
    pooling: AtomicBool,
    forks: u64,
}

impl Object {
    pub(crate) fn new(name: &str, schema: SchemaDoc, incarnation: u64) -> Arc<Self> {
        Arc::new(Object {
            name: name.into(),
            schema,
            incarnation,
            idle: Mutex::new(Vec::new()),
            pooling: AtomicBool::new(true),
            forks: forks(),
        })
    }

    /// An idle handle of this incarnation, or a new one; `None` if the name
    /// refers to another incarnation now.
    pub(crate) fn take(&self) -> Result<Option<RawReader>, OpenError> {
        if let Some(raw) = self.idle.lock().pop() {
            return Ok(Some(raw));
        }
        let raw = RawReader::open(&self.name, Duration::from_secs(1))?;
        Ok((raw.incarnation() == self.incarnation).then_some(raw))
    }

    /// Unpins `raw` and keeps it for the next pin (or closes it).
    pub(crate) fn give_back(&self, mut raw: RawReader) {
        raw.release();
        // SYNC(pooling): Relaxed: a handle pooled just after `close` is
        // closed with the object.
        if self.pooling.load(Relaxed) {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(raw);
                return;
            }
        }
        drop(raw);
    }

    /// Closes the idle handles; pins released later close theirs.
    pub(crate) fn close(&self) {
        self.pooling.store(false, Relaxed);
        let idle = std::mem::take(&mut *self.idle.lock());
        if forks_changed_since(self.forks) {
            // Inherited across a fork: the parent's entries, not ours to touch.
            std::mem::forget(idle);
        }
    }
}

fn forks_changed_since(seen: u64) -> bool {
    forks() != seen
}

/// One pinned generation: the handle whose pin it is, and its bytes.
pub(crate) struct Pin {
    raw: Option<RawReader>,
    bytes: *const u8,
    len: usize,
    pub(crate) generation: u64,
    pub(crate) object: Arc<Object>,
    forks: u64,
}

// SAFETY: `bytes` points into `raw`'s mapping, immutable while pinned, and
// `raw` is only used when the pin is dropped (`&mut self`); `RawReader` is `Send`.
unsafe impl Send for Pin {}
// SAFETY: through `&Pin` only the immutable pinned bytes are read.
unsafe impl Sync for Pin {}

impl Pin {
    /// Pins the latest snapshot with `raw` (a handle of `object`; given
    /// back to it if that fails).
    pub(crate) fn new(mut raw: RawReader, object: Arc<Object>) -> Result<Self, shmstate::ReadError> {
        let (generation, bytes) = match raw.read() {
            Ok((g, b)) => (g.get(), (b.as_ptr(), b.len())),
            Err(e) => {
                object.give_back(raw);
                return Err(e);
            }
        };
        Ok(Pin { raw: Some(raw), bytes: bytes.0, len: bytes.1, generation, object, forks: forks() })
    }

    /// The pinned bytes (refused in a forked child: the parent's pin).
    pub(crate) fn bytes(&self) -> PyResult<&[u8]> {
        if forks_changed_since(self.forks) {
            return Err(raise(
                "Error",
                "this snapshot belongs to the parent process (fork): open a Reader here".into(),
            ));
        }
        // SAFETY: `raw` pinned these bytes and holds the pin until this
        // `Pin` drops; it is never used to pin again (which could remap), so
        // its mapping, which it owns, stays where `read` found them.
        Ok(unsafe { std::slice::from_raw_parts(self.bytes, self.len) })
    }

    pub(crate) fn cursor(&self) -> PyResult<Cursor<'_, '_>> {
        Ok(Cursor::new(&self.object.schema, self.bytes()?, Limits::default()))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The validation of these bytes failed: unpin and give the handle back.
    pub(crate) fn abandon(mut self) {
        if let Some(raw) = self.raw.take() {
            self.object.give_back(raw);
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            if forks_changed_since(self.forks) {
                // The parent's pin: unpinning it here would let its writer
                // reuse a slot the parent reads.
                std::mem::forget(raw);
            } else {
                self.object.give_back(raw);
            }
        }
    }
}
