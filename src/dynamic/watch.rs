//! Waiting on an object of any type, following it as the typed readers do.

use std::sync::Arc;
use std::time::Duration;

use crate::read::rewatch::{AnyLayout, Watched};
use crate::read::watch::Watcher;
use crate::{Generation, OpenError, WaitError};

/// Waits for new generations of the object under a name, whatever its type
/// (for bindings to other languages, whose readers have no Rust type): the
/// untyped twin of [`SharedReader::wait_newer`](crate::SharedReader::wait_newer)
/// and `changed()`. `Sync`; pins nothing.
///
/// With `follow`, a layout moved under the name (a lane retired into the
/// plain name) keeps its generation numbers, and an object removed and
/// created again ends the wait with its first generation (numbered from 1
/// again); without, both are `Replaced`.
pub struct Watch {
    watched: Arc<Watched<AnyLayout>>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("name", &self.watched.current_numbered().0.name()).finish()
    }
}

impl Watch {
    /// Watches `name`; a dead writer is waited for `writer_grace` (for one
    /// that takes over) before a wait reports `WriterDead`.
    pub fn open(name: &str, follow: bool, writer_grace: Duration) -> Result<Self, OpenError> {
        crate::object::name::check(name)?;
        let first = Watcher::open(name, Duration::from_secs(1))?;
        let options = AnyLayout { writer_grace, follow };
        Ok(Watch { watched: Arc::new(Watched::new(name, options, first)) })
    }

    /// The latest generation published in the watched object.
    pub fn generation(&self) -> Generation {
        self.watched.watcher_numbered().0.generation()
    }

    /// The incarnation of the object watched now (it changes when a wait
    /// follows a replacement or a moved layout).
    pub fn incarnation(&self) -> u64 {
        self.watched.watcher_numbered().0.incarnation()
    }

    /// Blocks until a generation newer than `than` is published (and returns
    /// it), the writer has been dead for the grace period, or `timeout`
    /// passes (shared futex; no polling).
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        let numbering = self.watched.current_numbered().1;
        let grace = self.watched.options().writer_grace;
        self.watched.wait_newer_in(than, numbering, timeout, grace)
    }

    /// The future of the next generation newer than `than`, as
    /// [`SharedReader::changed`](crate::SharedReader::changed): cancellation-safe,
    /// no thread per waiter, any executor.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn changed(&self, than: Generation) -> crate::Changed {
        let (watcher, _) = self.watched.watcher_numbered();
        let options = self.watched.options();
        let follow = options.follow.then(|| Arc::clone(&self.watched) as Arc<dyn crate::read::rewatch::Rewatch>);
        crate::Changed::new(watcher, than, options.writer_grace, follow)
    }
}
