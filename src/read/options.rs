//! Options for opening a reader: [`ReaderOptions`].

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::read::convert::Converter;
use crate::read::raw_reader::DEFAULT_WRITER_GRACE;
use crate::Shared;

/// Options for opening a reader. Start with [`Reader::options`](crate::Reader::options).
pub struct ReaderOptions<T> {
    pub(crate) init_timeout: Duration,
    pub(crate) owner: Option<u32>,
    pub(crate) wait_spin: Duration,
    pub(crate) writer_grace: Duration,
    pub(crate) follow: bool,
    pub(crate) wait_for_writer: Option<Duration>,
    pub(crate) wait_for_layout: Option<Duration>,
    pub(crate) converter: Option<Arc<Converter<T>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ReaderOptions<T> {
    fn clone(&self) -> Self {
        ReaderOptions {
            init_timeout: self.init_timeout,
            owner: self.owner,
            wait_spin: self.wait_spin,
            writer_grace: self.writer_grace,
            follow: self.follow,
            wait_for_writer: self.wait_for_writer,
            wait_for_layout: self.wait_for_layout,
            converter: self.converter.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ReaderOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderOptions")
            .field("init_timeout", &self.init_timeout)
            .field("owner", &self.owner)
            .field("wait_spin", &self.wait_spin)
            .field("writer_grace", &self.writer_grace)
            .field("follow", &self.follow)
            .field("wait_for_writer", &self.wait_for_writer)
            .field("wait_for_layout", &self.wait_for_layout)
            .field("convert_from", &self.converter.as_ref().map(|c| format!("{:#018x}", c.fingerprint)))
            .finish()
    }
}

impl<T> Default for ReaderOptions<T> {
    fn default() -> Self {
        ReaderOptions {
            init_timeout: Duration::from_secs(1),
            owner: None,
            wait_spin: Duration::ZERO,
            writer_grace: DEFAULT_WRITER_GRACE,
            follow: false,
            wait_for_writer: None,
            wait_for_layout: None,
            converter: None,
            _type: PhantomData,
        }
    }
}

impl<T: Shared> ReaderOptions<T> {
    /// How long `open` waits for a writer that is still initialising the object
    /// (default 1 s). A missing object is reported at once (see
    /// [`wait_for_writer`](Self::wait_for_writer)).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Only accept an object whose data segment belongs to user `uid` (e.g. the
    /// service account of the publisher): `NotOwner` otherwise. Without it, any
    /// user who can create the name first could feed this reader a snapshot.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// Before sleeping in the kernel, `wait_newer` spins this long watching the
    /// publish word (default 0). Spinning costs a core while it lasts, and
    /// saves the wake-up latency of the futex (several µs on a VM whose idle
    /// CPUs halt) when publishes come faster than the spin.
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.wait_spin = spin;
        self
    }

    /// How long `wait_newer` keeps waiting once the writer is found dead, for
    /// a new writer to take over (a restart or a deployment: its first publish
    /// ends the wait), before it returns `WriterDead` (default 3 s,
    /// [`DEFAULT_WRITER_GRACE`]). `Duration::ZERO` returns `WriterDead` as soon
    /// as the writer is dead.
    pub fn writer_grace(mut self, grace: Duration) -> Self {
        self.writer_grace = grace;
        self
    }

    /// Follow the name when the object is replaced (removed and created again,
    /// e.g. by a redeployment): `read` then opens the new object and serves it
    /// from its first publish on, and the last snapshot of the old one until
    /// then. Off by default: a replaced object is then `ReadError::Replaced` /
    /// `WaitError::Replaced`. Either way the reader notices on `wait_newer`,
    /// and on a `read` that finds a new generation or follows `release`
    /// (checked at most every 100 ms there); a `read` of an unchanged
    /// generation stays one atomic load and checks nothing.
    pub fn follow(mut self, yes: bool) -> Self {
        self.follow = yes;
        self
    }

    /// Lets `open` wait up to `timeout` for a writer that has not created the
    /// object yet (a reader started before its writer): it sleeps until the
    /// object appears (inotify on `/dev/shm`; a bounded back-off where inotify
    /// is unavailable) and has published its first snapshot, so the first
    /// `read` succeeds. At the timeout: the object if it exists (possibly with
    /// nothing published yet), else `NotFound`. Without it (the default) a
    /// missing object is `NotFound` at once. Other errors (`TypeMismatch`, …)
    /// are returned at once either way.
    pub fn wait_for_writer(mut self, timeout: Duration) -> Self {
        self.wait_for_writer = Some(timeout);
        self
    }

    /// Lets `open` wait up to `timeout` for a writer to publish `T`'s layout
    /// under `name` (in the plain name or in a lane, docs/DEPLOYING.md
    /// "Lanes"): a reader of a new version started before its writer, while
    /// the previous version's writer runs. Implies
    /// [`wait_for_writer`](Self::wait_for_writer) for as long. At the
    /// timeout: what `open` without waiting gives (`TypeMismatch`, listing
    /// the layouts the object carries, or `NotFound`). Without it (the
    /// default), an object of other layouts only is `TypeMismatch` at once.
    pub fn wait_for_layout(mut self, timeout: Duration) -> Self {
        self.wait_for_layout = Some(timeout);
        self
    }

    /// While `name` carries no layout of `T`, read the layout of `U` and
    /// convert each new generation with `convert` (a reader of a new version
    /// started while only the previous version is published). **A copy**:
    /// the first `read` of each generation converts, then archives the `T`
    /// into a buffer of the reader's own (unchanged reads stay one load).
    /// Once a writer publishes `T` (plain name or lane), the next check of
    /// the name moves the reader there (zero-copy from then on; checked on
    /// the slow path of `read` at most every 100 ms). Generations keep
    /// their numbers: one writer publishes all layouts under one number.
    pub fn convert_from<U: Shared>(mut self, convert: impl Fn(&U::Archived) -> T + Send + Sync + 'static) -> Self {
        self.converter = Some(Arc::new(Converter::from::<U>(convert)));
        self
    }

    pub(crate) fn get_writer_grace(&self) -> Duration {
        self.writer_grace
    }

    pub(crate) fn get_init_timeout(&self) -> Duration {
        self.init_timeout
    }

    pub(crate) fn get_wait_spin(&self) -> Duration {
        self.wait_spin
    }
}
