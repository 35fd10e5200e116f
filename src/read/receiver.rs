//! A receiver in the manner of `tokio::sync::watch::Receiver` on a
//! [`SharedReader`]: [`Receiver`] (its docs say how it works, what it
//! guarantees and its limits).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ReadError, WaitError};
#[cfg(feature = "tokio")]
use crate::read::changed::Changed;
use crate::{Generation, Shared, SharedReader, SharedSnapshot};

/// The grace period of the waits that follow a reported `WriterDead`, with
/// [`Receiver::keep_waiting_after_writer_dead`]: for ever.
const FOREVER: Duration = Duration::MAX;

/// Where the handle's waits are: the object they watch and its latest
/// generation.
#[derive(Clone, Copy, Debug)]
struct Position {
    /// Renumberings followed so far (`Watched::current_numbered`):
    /// generations compare only within one numbering.
    numbering: u64,
    /// The watched object's incarnation.
    object: u64,
    generation: Generation,
    /// The watched object is moved and its layout's new home was not found
    /// yet (or is not followed): its last generation belongs to no layout.
    moved: bool,
}

impl<T: Shared> SharedReader<T> {
    /// A [`Receiver`] on this handle, which has seen the generation published
    /// now (as `tokio::sync::watch::Sender::subscribe`): its `changed` and
    /// `wait` wait for the next one.
    pub fn subscribe(self: &Arc<Self>) -> Receiver<T> {
        let at = self.position();
        Receiver {
            shared: Arc::clone(self),
            seen: at.generation,
            numbering: at.numbering,
            object: at.object,
            keep_waiting: false,
            dead_at: None,
            #[cfg(feature = "tokio")]
            pending: None,
            #[cfg(feature = "tokio")]
            ended: false,
        }
    }

    fn position(&self) -> Position {
        let (watcher, numbering) = self.watcher_numbered();
        Position { numbering, object: watcher.incarnation(), generation: watcher.generation(), moved: watcher.moved() }
    }
}

/// Waits for new generations of a [`SharedReader`]'s object the way
/// `tokio::sync::watch::Receiver` waits for new values: it remembers the last
/// generation it has **seen**, `changed().await` (feature `tokio`) and
/// [`wait`](Receiver::wait) (blocking) return once a newer one
/// is published and mark it seen, [`borrow`](Receiver::borrow) gives the
/// latest snapshot without marking it, and
/// [`borrow_and_update`](Receiver::borrow_and_update) marks what it gives.
/// With the `tokio` feature it is also a `futures_core::Stream` of the
/// generations it sees.
///
/// Make one with [`SharedReader::subscribe`]. It is `Send` (move it into a
/// task) and `Clone`: clones share the `SharedReader` (its readers and its
/// pins) and each remembers its own seen generation, as watch receivers do.
///
/// ```no_run
/// # #[shmstate::shared] struct Config { port: u16 }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// let shared = std::sync::Arc::new(shmstate::SharedReader::<Config>::open("myapp.config")?);
/// let mut rx = shared.subscribe();
/// loop {
///     match rx.wait(Duration::from_secs(60)) {
///         Ok(_) => println!("port {}", rx.borrow_and_update()?.port.to_native()),
///         Err(shmstate::WaitError::Timeout { .. }) => continue,
///         Err(e) => return Err(e.into()),
///     }
/// }
/// # }
/// ```
///
/// ## Following, and what "seen" means there
/// The receiver follows as its `SharedReader` does
/// ([`ReaderOptions::follow`](crate::ReaderOptions::follow)): a layout that
/// moves (a lane retired into the plain name) keeps its generation numbers,
/// and the receiver goes on comparing them; an object **replaced** (removed
/// and created again) numbers its generations from 1 again. The receiver
/// knows which numbering its seen generation belongs to: once its waits (or
/// another thread's waits on the same `SharedReader`) have followed to a
/// new object, [`has_changed`](Receiver::has_changed) is `true` and
/// `changed`/`wait` return at once with the new object's latest generation,
/// whatever its number; from then on [`seen`](Receiver::seen) counts in the
/// new object's numbers. So `seen()` may go down across a replacement:
/// compare generations you kept only while no replacement came between
/// them, and ask the receiver whether something changed.
///
/// Like the `SharedReader`'s, its waits find a replacement (looking at the
/// name once per 100 ms wait slice); `has_changed` looks at no name. Without
/// `follow`, a replaced object is `WaitError::Replaced` (and
/// `ReadError::Replaced` from `borrow`) from then on.
///
/// ## A dead writer
/// A writer dead for longer than the grace period
/// ([`ReaderOptions::writer_grace`](crate::ReaderOptions::writer_grace)) is
/// `WaitError::WriterDead`, as from the `SharedReader`'s waits; each later
/// wait waits the grace period out again and returns it again. With
/// [`keep_waiting_after_writer_dead`](Receiver::keep_waiting_after_writer_dead)
/// it is reported once: the waits that follow go on waiting, with no grace
/// period, until a writer publishes again (a takeover with
/// `Writer::open_or_create`, or with `follow` a new object under the name),
/// or their timeout.
///
/// ## Guarantees and limits
/// - Nothing newer than the seen generation is ever missed: `changed` and
///   `wait` return at once if one exists already. Generations published
///   between two waits are not each returned, only the latest (as watch
///   returns only the latest value).
/// - `changed` is cancellation-safe: dropped before it resolves, it has
///   marked nothing, and the next call starts afresh.
/// - A [`SharedSnapshot`] from `borrow` is not `Send`: do not hold it across
///   an `.await` of a task that must be `Send`; borrow again after it.
/// - `borrow` is the `SharedReader`'s `load` plus one atomic load and a
///   compare. When the snapshot comes from another object than the one the
///   waits watch (a replacement this thread's readers had not noticed: their
///   fast path checks nothing), it makes this thread's readers look at the
///   name and loads again, so after `changed` reports a replaced object,
///   `borrow` gives the new object's snapshot.
#[must_use = "a receiver does nothing unless its waits are called"]
pub struct Receiver<T: Shared> {
    shared: Arc<SharedReader<T>>,
    /// The last generation marked seen, in the numbering `numbering`.
    seen: Generation,
    numbering: u64,
    /// The incarnation of the object the waits watched when `seen` was
    /// marked: `borrow` looks further when a snapshot comes from another.
    object: u64,
    /// Report `WriterDead` once, then wait for a new writer.
    keep_waiting: bool,
    /// With `keep_waiting`: `(numbering, seen)` when `WriterDead` was
    /// reported; waits from there on wait for ever for a writer.
    dead_at: Option<(u64, Generation)>,
    /// The `Stream`'s wait in progress.
    #[cfg(feature = "tokio")]
    pending: Option<Changed>,
    /// The `Stream` yielded an error that every wait returns at once.
    #[cfg(feature = "tokio")]
    ended: bool,
}

/// A clone shares the `SharedReader` and starts with this receiver's seen
/// generation and policy (as a `Stream`, afresh: no wait in progress, not
/// ended).
impl<T: Shared> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver {
            shared: Arc::clone(&self.shared),
            seen: self.seen,
            numbering: self.numbering,
            object: self.object,
            keep_waiting: self.keep_waiting,
            dead_at: self.dead_at,
            #[cfg(feature = "tokio")]
            pending: None,
            #[cfg(feature = "tokio")]
            ended: false,
        }
    }
}

impl<T: Shared> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("name", &self.shared.name())
            .field("seen", &self.seen)
            .field("keep_waiting_after_writer_dead", &self.keep_waiting)
            .finish()
    }
}

/// What a wait finds before it sleeps.
#[cfg(feature = "tokio")]
enum Start {
    /// Something unseen exists already (now marked seen).
    Now(Generation),
    Wait(Changed),
}

impl<T: Shared> Receiver<T> {
    /// With `true`, a writer dead for the grace period is reported
    /// (`WaitError::WriterDead`) once: the waits that follow go on waiting,
    /// with no grace period, until a writer publishes again or their own
    /// timeout. Once something new is published the next writer death is
    /// reported again. Off by default: every wait that waits a grace period
    /// out returns `WriterDead`, as the `SharedReader`'s own waits do.
    pub fn keep_waiting_after_writer_dead(mut self, yes: bool) -> Self {
        self.keep_waiting = yes;
        self
    }

    /// The `SharedReader` this receiver waits on.
    pub fn shared(&self) -> &Arc<SharedReader<T>> {
        &self.shared
    }

    /// The last generation marked seen (`Generation::NONE` after
    /// [`mark_unseen`](Self::mark_unseen)), in the numbers of the object it
    /// was marked on: after a replacement it may be lower than before (see
    /// "Following" on [`Receiver`]).
    pub fn seen(&self) -> Generation {
        self.seen
    }

    /// Whether a generation newer than the seen one exists (or the waits
    /// have followed to a new object since it was marked). Marks nothing.
    /// It looks at no name (the waits find replacements) and makes no
    /// syscall, unless it follows a layout that moved.
    pub fn has_changed(&self) -> bool {
        self.is_new(&self.shared.position())
    }

    /// Marks the latest generation seen: the next wait waits for a newer one.
    pub fn mark_seen(&mut self) {
        let at = self.shared.position();
        if !at.moved {
            self.mark(&at, at.generation);
        }
    }

    /// Forgets what was seen (`tokio`'s `mark_changed`): once anything is
    /// published, [`has_changed`](Self::has_changed) is `true` and the next
    /// wait returns at once.
    pub fn mark_unseen(&mut self) {
        self.seen = Generation::NONE;
        #[cfg(feature = "tokio")]
        {
            self.pending = None;
        }
    }

    /// The latest snapshot, as [`SharedReader::load`] gives it, of the
    /// object the waits follow (see "Guarantees and limits" on
    /// [`Receiver`]); does not mark it seen, so a wait may still return its
    /// generation at once. The snapshot keeps this thread's pin and is not
    /// `Send`.
    pub fn borrow(&self) -> Result<SharedSnapshot<'_, T>, ReadError> {
        load_watched(&self.shared, self.object, self.numbering).map(|(snapshot, _)| snapshot)
    }

    /// The latest snapshot, marked seen: the next wait waits for a newer
    /// generation than this one.
    pub fn borrow_and_update(&mut self) -> Result<SharedSnapshot<'_, T>, ReadError> {
        let (snapshot, at) = load_watched(&self.shared, self.object, self.numbering)?;
        // Fields set one by one: the snapshot borrows `self.shared`.
        match at {
            // From the object the waits watch, in the numbering we know.
            None => self.seen = snapshot.generation(),
            // From the object the waits watch now.
            Some(at) if snapshot.incarnation() == at.object => {
                (self.seen, self.numbering, self.object) = (snapshot.generation(), at.numbering, at.object);
            }
            // This thread's readers could not get there (yet): the waits'
            // latest is what was shown.
            Some(at) if !at.moved => {
                (self.seen, self.numbering, self.object) = (at.generation, at.numbering, at.object)
            }
            Some(_) => {}
        }
        #[cfg(feature = "tokio")]
        {
            self.pending = None;
        }
        Ok(snapshot)
    }

    /// Blocks until a generation newer than the seen one is published (at
    /// once if one exists), marks it seen and returns it; or the error of
    /// [`SharedReader::wait_newer`] (`Timeout` after `timeout`;
    /// `WriterDead` as "A dead writer" on [`Receiver`] says). Pins nothing.
    pub fn wait(&mut self, timeout: Duration) -> Result<Generation, WaitError> {
        #[cfg(feature = "tokio")]
        {
            self.pending = None;
        }
        let at = self.shared.position();
        if self.is_new(&at) {
            self.mark(&at, at.generation);
            return Ok(at.generation);
        }
        let result = self.shared.wait_newer_in(self.seen, self.numbering, timeout, self.grace());
        self.finish(result)
    }

    /// Resolves once a generation newer than the seen one is published (at
    /// once if one exists), marks it seen and returns it; or with the error
    /// of [`SharedReader::changed`] (`WriterDead` as "A dead writer" on
    /// [`Receiver`] says). Cancellation-safe; no timeout (use your
    /// runtime's). Feature `tokio`.
    ///
    /// ```no_run
    /// # #[shmstate::shared] struct Config { port: u16 }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let shared = std::sync::Arc::new(shmstate::SharedReader::<Config>::open("myapp.config")?);
    /// let mut rx = shared.subscribe();
    /// let runtime = tokio::runtime::Runtime::new()?;
    /// let task = runtime.spawn(async move {
    ///     while rx.changed().await.is_ok() {
    ///         // The snapshot is not `Send`: done with it before the next `.await`.
    ///         let port = rx.borrow_and_update()?.port.to_native();
    ///         println!("port is now {port}");
    ///     }
    ///     Ok::<(), shmstate::ReadError>(())
    /// });
    /// runtime.block_on(task)??;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn changed(&mut self) -> Result<Generation, WaitError> {
        self.pending = None;
        let wait = match self.start() {
            Start::Now(generation) => return Ok(generation),
            Start::Wait(wait) => wait,
        };
        let result = wait.await;
        self.finish(result)
    }

    /// Returns at once with what is unseen, or the future of the next one.
    #[cfg(feature = "tokio")]
    fn start(&mut self) -> Start {
        let at = self.shared.position();
        if self.is_new(&at) {
            self.mark(&at, at.generation);
            return Start::Now(at.generation);
        }
        let mut wait = self.shared.changed(self.seen);
        if let Some(grace) = self.grace() {
            wait = wait.with_grace(grace);
        }
        // The future watches the object the name had when it was made: if
        // the waits followed to a new object since `at`, its numbers are not
        // ours, and anything in it is new.
        let at = self.shared.position();
        if self.is_new(&at) {
            self.mark(&at, at.generation);
            return Start::Now(at.generation);
        }
        Start::Wait(wait)
    }

    /// Whether `at` holds a generation this receiver has not seen.
    fn is_new(&self, at: &Position) -> bool {
        !at.moved && (at.numbering != self.numbering || at.generation > self.seen)
    }

    fn mark(&mut self, at: &Position, generation: Generation) {
        (self.seen, self.numbering, self.object) = (generation, at.numbering, at.object);
        #[cfg(feature = "tokio")]
        {
            self.pending = None;
        }
    }

    /// The grace period of the next wait (`None`: the options').
    fn grace(&self) -> Option<Duration> {
        (self.keep_waiting && self.dead_at == Some((self.numbering, self.seen))).then_some(FOREVER)
    }

    /// Marks what a wait returned; notes a reported dead writer.
    fn finish(&mut self, result: Result<Generation, WaitError>) -> Result<Generation, WaitError> {
        match result {
            Ok(generation) => {
                // The wait may have followed to a new object: its numbering.
                let at = self.shared.position();
                self.mark(&at, generation);
                self.dead_at = None;
                Ok(generation)
            }
            Err(e @ WaitError::WriterDead { .. }) => {
                if self.keep_waiting {
                    self.dead_at = Some((self.numbering, self.seen));
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}

/// `shared.load()`, from the object the waits watch if this thread's readers
/// can get there. `object` and `numbering` are what the caller last knew of
/// the waits: while both hold (one load) the snapshot is returned at once.
/// Otherwise the waits' position is looked up (and returned with the
/// snapshot), and a snapshot of another object makes this thread's readers
/// look at the name and load again.
fn load_watched<T: Shared>(
    shared: &SharedReader<T>,
    object: u64,
    numbering: u64,
) -> Result<(SharedSnapshot<'_, T>, Option<Position>), ReadError> {
    let snapshot = shared.load()?;
    if snapshot.incarnation() == object && shared.numbering() == numbering {
        return Ok((snapshot, None));
    }
    let at = shared.position();
    if snapshot.incarnation() == at.object {
        return Ok((snapshot, Some(at)));
    }
    drop(snapshot);
    shared.check_name_on_this_thread();
    Ok((shared.load()?, Some(at)))
}

/// The generations this receiver sees, as [`Receiver::changed`] returns
/// them (each marked seen). It ends after an item that every later wait
/// would return again at once: `Err(Replaced)` (a replaced object it cannot
/// follow) and `Err(Os)`; other errors (`WriterDead`, `Removed`) come at
/// most once per grace period, and the stream goes on. Polling it and
/// calling the other methods mix as expected: marking drops the stream's
/// wait in progress. Feature `tokio`.
#[cfg(feature = "tokio")]
impl<T: Shared> futures_core::Stream for Receiver<T> {
    type Item = Result<Generation, WaitError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let wait = match this.pending.take() {
            Some(wait) => wait,
            None => match this.start() {
                Start::Now(generation) => return Poll::Ready(Some(Ok(generation))),
                Start::Wait(wait) => wait,
            },
        };
        let wait = this.pending.insert(wait);
        let Poll::Ready(result) = std::pin::Pin::new(wait).poll(cx) else { return Poll::Pending };
        this.pending = None;
        let result = this.finish(result);
        if matches!(result, Err(WaitError::Replaced { .. } | WaitError::Os { .. })) {
            this.ended = true;
        }
        Poll::Ready(Some(result))
    }
}
