//! Following: what a [`Reader`] does when the name it was opened with comes
//! to refer to another object (removed and created again, a lane retired
//! when its layout moves, `T`'s own layout published while it converts
//! another), on the slow path of `read` and while it waits.

use std::time::{Duration, Instant};

use super::{Reader, CHECK_WORD, NO_WORD};
use crate::error::{OpenError, ReadError, WaitError};
use crate::os::UnderName;
use crate::protocol;
use crate::read::raw_reader::RawReader;
use crate::read::resolve::{open_checked, open_resolved};
use crate::{Generation, Shared};

/// How often the slow path of `read` checks that the name still refers to the
/// object (two `stat`s, about 2 µs)...
const NAME_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// ...looking at the (coarse) clock only every this many slow paths: a
/// new-generation read of 100 bytes takes about 40 ns, a clock read 10 ns.
const SLOW_READS_PER_CLOCK_LOOK: u32 = 8;

impl<T: Shared> Reader<T> {
    pub(super) fn known_replaced(&self) -> bool {
        core::ptr::eq(self.current.get(), &NO_WORD)
    }

    /// Sends the next `read` to the slow path, which then looks at the name
    /// at once (the rate limit does not apply), as after a `wait_newer`
    /// that found it replaced.
    pub(crate) fn check_name_next_read(&self) {
        if !self.known_replaced() {
            self.current.set(&CHECK_WORD);
        }
    }

    /// On the slow path of `read`: checks whether the name now refers to
    /// another object (on the first slow path, then at most every
    /// [`NAME_CHECK_INTERVAL`], or at once after `wait_newer` found it). Not
    /// following: `Replaced`. Following: switches to the new object once it
    /// has published; until then returns `true` (serve the old snapshot).
    ///
    /// Inline, the case of 7 new generations in 8: nothing to look at but
    /// the `moved` mark (one load) and the count of slow paths.
    #[inline]
    pub(super) fn notice_replacement(&mut self) -> Result<bool, ReadError> {
        let word = self.current.get();
        let plain = !core::ptr::eq(word, &NO_WORD) && !core::ptr::eq(word, &CHECK_WORD);
        if plain && self.name_checked.is_some() && self.slow_reads + 1 < SLOW_READS_PER_CLOCK_LOOK && !self.raw.moved()
        {
            self.slow_reads += 1;
            return Ok(false);
        }
        self.look_at_the_name()
    }

    /// The rest of `notice_replacement`: the clock, the name, following.
    #[cold]
    fn look_at_the_name(&mut self) -> Result<bool, ReadError> {
        let forced = core::ptr::eq(self.current.get(), &CHECK_WORD);
        if !self.known_replaced() && self.raw.moved() {
            // The writer publishes this layout elsewhere under the name now:
            // follow at once, whatever the clock says (one load).
            self.current.set(&NO_WORD);
        }
        if !self.known_replaced() {
            if let Some(checked) = self.name_checked.filter(|_| !forced) {
                self.slow_reads += 1;
                if self.slow_reads < SLOW_READS_PER_CLOCK_LOOK {
                    return Ok(false);
                }
                self.slow_reads = 0;
                let now = crate::os::coarse_now();
                if now.saturating_sub(checked) < NAME_CHECK_INTERVAL {
                    return Ok(false);
                }
            }
            self.name_checked = Some(crate::os::coarse_now());
            let fp = crate::schema::fingerprint_of::<T>();
            if self.converting && crate::object::layouts::published_generation(&self.base, fp).is_some() {
                // A writer of `T` has come: read its layout, no copy.
                if let Ok(next) = open_checked::<T>(&self.base, Duration::ZERO, self.owner) {
                    if next.generation() > Generation::NONE {
                        self.switch_to(next);
                        return Ok(false);
                    }
                }
            }
            let on_lane = self.raw.name() != self.base;
            match self.raw.under_name() {
                Ok(UnderName::Another) => self.current.set(&NO_WORD),
                // A lane is removed when its layout moves (to the plain name).
                Ok(UnderName::Nothing) if on_lane => self.current.set(&NO_WORD),
                Ok(UnderName::This | UnderName::Nothing) => return Ok(false),
                Err(errno) => {
                    return Err(ReadError::Os { name: self.raw.name().to_string(), op: "checking the name", errno })
                }
            }
        }
        let replaced = || ReadError::Replaced { name: self.raw.name().to_string() };
        if !self.follow {
            return Err(replaced());
        }
        if self.successor.is_none() {
            // No waiting here: a creator still initialising is retried next read.
            match open_resolved::<T>(&self.base, Duration::ZERO, self.owner, self.converter.as_deref()) {
                Ok(next) => self.successor = Some(next),
                Err(OpenError::NotFound { .. } | OpenError::NotInitialized { .. }) => return Ok(true),
                Err(_) => return Err(replaced()),
            }
        }
        match self.successor.take() {
            // The name resolves to a moved object still (the layout's new
            // home is not there yet): keep the last snapshot, look again.
            Some(next) if next.moved() => Ok(true),
            Some(next) if next.generation() > Generation::NONE => {
                self.switch_to(next);
                Ok(false)
            }
            Some(next) if matches!(next.under_name(), Ok(UnderName::Another | UnderName::Nothing)) => {
                // Its creator died before publishing and the name moved on
                // again: forget it, the next slow path opens what is there now.
                drop(next);
                Ok(true)
            }
            unpublished => {
                self.successor = unpublished;
                Ok(true)
            }
        }
    }

    /// Reads `next` from now on (a replacement, a lane, or `T`'s layout
    /// found while converting).
    fn switch_to(&mut self, next: RawReader) {
        // The old view points into the old mapping, which goes now.
        self.cached.set(None);
        self.counts.follows.bump();
        self.converting = next.fingerprint() != crate::schema::fingerprint_of::<T>();
        self.raw = next;
        self.followed.set(Generation::NONE);
        self.current.set(self.raw.current_ptr());
        self.name_checked = Some(crate::os::coarse_now());
    }

    /// Blocks until a generation newer than `than` is published, the writer has
    /// been dead for the grace period ([`ReaderOptions::writer_grace`](crate::ReaderOptions::writer_grace); a new
    /// writer that takes over within it ends the wait with its first
    /// generation), or `timeout` passes (shared futex; no polling). An object
    /// removed and created again is `Replaced`; with
    /// [`ReaderOptions::follow`](crate::ReaderOptions::follow) the wait goes on in the new object, and
    /// returns its first generation (numbered from 1 again; the next `read`
    /// moves to it).
    pub fn wait_newer(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        self.counts.waits.bump();
        let woke = self.wait_spun(than, timeout);
        if woke.is_ok() {
            self.counts.wakeups.bump();
        }
        woke
    }

    /// `wait_newer`: spinning first if the options say so, then the kernel wait.
    fn wait_spun(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        if !self.wait_spin.is_zero() {
            let start = std::time::Instant::now();
            let spin = self.wait_spin.min(timeout);
            loop {
                let now = Generation(protocol::generation_of(self.load_current()));
                if now > than {
                    return Ok(now);
                }
                if start.elapsed() >= spin {
                    break;
                }
                core::hint::spin_loop();
            }
            return self.wait_raw(than, timeout.saturating_sub(start.elapsed()));
        }
        self.wait_raw(than, timeout)
    }

    /// The kernel wait, and what a replaced object means for it.
    fn wait_raw(&self, than: Generation, timeout: Duration) -> Result<Generation, WaitError> {
        let start = Instant::now();
        if !self.known_replaced() && !self.raw.moved() {
            match self.raw.wait_newer_with_grace(than, timeout, self.writer_grace) {
                // The object's last publish, which moved its layout (never
                // returned: it is no generation of the layout's new home).
                Ok(_) if self.raw.moved() => {
                    self.current.set(&NO_WORD);
                    if !self.follow {
                        return Err(WaitError::Replaced { name: self.raw.name().to_string() });
                    }
                }
                Err(WaitError::Replaced { name }) => {
                    // The next `read` takes the slow path and reports or follows it.
                    self.current.set(&NO_WORD);
                    if !self.follow {
                        return Err(WaitError::Replaced { name });
                    }
                }
                // Converting, with no new generation of the converted layout:
                // its writer may be gone for one that publishes `T` only.
                Err(e @ (WaitError::Timeout { .. } | WaitError::WriterDead { .. })) if self.converting => {
                    let fp = crate::schema::fingerprint_of::<T>();
                    return match crate::object::layouts::published_generation(&self.base, fp) {
                        Some(g) if g > than => {
                            // The next `read` moves there.
                            self.current.set(&CHECK_WORD);
                            Ok(g)
                        }
                        _ => Err(e),
                    };
                }
                other => return other,
            }
        } else {
            // Known replaced, or moved before this wait began.
            self.current.set(&NO_WORD);
            if !self.follow {
                return Err(WaitError::Replaced { name: self.raw.name().to_string() });
            }
        }
        // A moved layout keeps its numbering (one writer publishes every
        // layout under one number); a replaced object starts again from 1.
        let continuous = self.raw.moved();
        // Following: wait for the new object's first publish.
        let left = timeout.saturating_sub(start.elapsed());
        let opened;
        // A kept successor the name has moved on from (its creator died
        // before publishing) is not waited on: open what is there now.
        let kept = self.successor.as_ref().filter(|next| matches!(next.under_name(), Ok(UnderName::This)));
        let next = match kept {
            Some(next) => next,
            None => {
                // The name may stay empty for a while (removed, not created
                // again yet): wait for it (inotify), not return at once, or a
                // caller's wait loop would spin.
                let name = self.base.as_str();
                let open = || open_resolved::<T>(name, Duration::ZERO, self.owner, self.converter.as_deref());
                opened = crate::read::await_writer::open_when_published(left, self.writer_grace, open).map_err(
                    |e| match e {
                        OpenError::NotFound { .. } | OpenError::NotInitialized { .. } => {
                            WaitError::Timeout { name: name.to_string() }
                        }
                        _ => WaitError::Replaced { name: name.to_string() },
                    },
                )?;
                &opened
            }
        };
        // The caller's `than` counts on the new object only if it is what
        // this wait returned from it before (its numbers start again from 1):
        // then `g = r.wait_newer(g)?` blocks until a newer one, as on any object.
        let floor = if than == self.followed.get() || continuous { than } else { Generation::NONE };
        let g = next.wait_newer_with_grace(floor, timeout.saturating_sub(start.elapsed()), self.writer_grace)?;
        self.followed.set(g);
        Ok(g)
    }
}
