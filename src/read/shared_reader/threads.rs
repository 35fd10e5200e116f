//! Each thread's readers of a [`SharedReader`](super::SharedReader): its
//! lanes (one reader each, with the guards on its pin), the registry that
//! owns every thread's lanes of a handle, and the thread-locals through which
//! a thread finds its own.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::sync::atomic::AtomicU64 as IdCounter;
use std::sync::Weak;

use parking_lot::Mutex;

use crate::read::stats::{ReaderStats, ThreadCounts};
use crate::{Reader, Shared};

/// One reader of one thread, with the number of live guards on its pin.
/// Aligned to two cache lines so two threads' lanes never share one.
#[repr(align(128))]
pub(super) struct Lane<T: Shared> {
    pub(super) reader: UnsafeCell<Reader<T>>,
    pub(super) guards: Cell<usize>,
}

/// One thread's readers of one handle. Only that thread touches it (until the
/// handle's registry frees it, when no thread can use the handle any more).
/// Aligned like `Lane`: the fast path reads it, the slow path writes it.
#[repr(align(128))]
pub(super) struct ThreadLanes<T: Shared> {
    /// `Box::into_raw` lanes; raw so that guards' references into them stay
    /// valid while the list itself changes.
    pub(super) lanes: UnsafeCell<Vec<*mut Lane<T>>>,
    /// The lane holding the newest view (null before the first read).
    pub(super) latest: Cell<*const Lane<T>>,
    /// Inside `load_slow` (a `&mut` to a reader lives): refuse re-entry.
    pub(super) busy: Cell<bool>,
    /// The handle's count of replacements followed (`Watched::numbering`)
    /// that these readers have caught up with: when another thread or a wait
    /// has followed the name to a new object, the fast path sees the count
    /// move and sends every reader of this thread to look at the name.
    pub(super) renumbered: Cell<u64>,
    /// What this thread's loads did (`SharedReader::stats`): written by
    /// this thread only, read by any under the registry's lock.
    pub(super) counts: ThreadCounts,
}

impl<T: Shared> ThreadLanes<T> {
    /// Whether a guard still refers to one of these lanes.
    fn in_use(&self) -> bool {
        // SAFETY: called on the owning thread (its thread-local destructor),
        // where no `&mut` to the list lives unless `busy`, checked first.
        self.busy.get()
            || unsafe { &*self.lanes.get() }.iter().any(|&l| {
                // SAFETY: the list holds live `Box::into_raw` lanes.
                unsafe { &*l }.guards.get() > 0
            })
    }
}

impl<T: Shared> Drop for ThreadLanes<T> {
    fn drop(&mut self) {
        for &lane in self.lanes.get_mut().iter() {
            // SAFETY: each pointer came from `Box::into_raw` and is freed once,
            // here; no guard refers to it (`in_use` was false, or the handle is
            // gone and with it every borrow a guard could hold).
            drop(unsafe { Box::from_raw(lane) });
        }
    }
}

/// Every thread's lanes of one handle, type-erased so the thread-locals (which
/// cannot be generic) can release them.
pub(super) struct Registry {
    /// Unique in the process, never reused: a stale thread-local entry of a
    /// dropped handle can never match a live one.
    pub(super) id: u64,
    pub(super) threads: Mutex<Vec<Erased>>,
    /// The counts of threads whose lanes were released (locked after
    /// `threads`, when both are).
    pub(super) retired: Mutex<ReaderStats>,
}

/// A `Box<ThreadLanes<T>>` with its type's operations.
pub(super) struct Erased {
    pub(super) lanes: *mut (),
    pub(super) in_use: unsafe fn(*mut ()) -> bool,
    pub(super) free: unsafe fn(*mut ()),
    /// The lanes' `counts`, alive while the entry is in the registry.
    pub(super) counts: *const ThreadCounts,
}

/// # Safety
/// `p` is a live `Box::into_raw(Box<ThreadLanes<T>>)`, on its own thread.
pub(super) unsafe fn lanes_in_use<T: Shared>(p: *mut ()) -> bool {
    // SAFETY: the caller's contract.
    unsafe { &*(p as *const ThreadLanes<T>) }.in_use()
}

/// # Safety
/// `p` is a live `Box::into_raw(Box<ThreadLanes<T>>)` nobody uses any more.
pub(super) unsafe fn free_lanes<T: Shared>(p: *mut ()) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(p as *mut ThreadLanes<T>) });
}

// SAFETY: the raw pointers are `ThreadLanes<T>`, which are `Send` (a `Reader`
// is `Send`, the rest is plain data). Each is used only by the thread that
// created it, through its thread-local; the registry only frees them, either
// from that thread's thread-local destructor or when the last `Arc` goes, when
// the handle (and so every borrow of it) is gone.
#[allow(unsafe_code)]
unsafe impl Send for Registry {}
// SAFETY: as for `Send`; the list itself is behind a mutex.
#[allow(unsafe_code)]
unsafe impl Sync for Registry {}

impl Registry {
    /// The counts of every thread that read through the handle, released
    /// or not.
    pub(super) fn counts(&self) -> ReaderStats {
        let threads = self.threads.lock();
        let mut total = *self.retired.lock();
        for e in threads.iter() {
            // SAFETY: an entry's lanes live until it leaves the list, which
            // needs the lock we hold; `ThreadCounts` is atomics only.
            total = total.plus(&unsafe { &*e.counts }.get());
        }
        total
    }

    /// Called by thread-local destructors: frees that thread's lanes unless a
    /// guard still refers to them (a guard kept in another thread-local); those
    /// are freed with the registry.
    fn release_thread(&self, lanes: *mut ()) {
        let entry = {
            let mut threads = self.threads.lock();
            let Some(i) = threads.iter().position(|e| e.lanes == lanes) else { return };
            // SAFETY: we run on the lanes' own thread (its thread-local destructor).
            if unsafe { (threads[i].in_use)(lanes) } {
                return;
            }
            let entry = threads.swap_remove(i);
            // SAFETY: the lanes (and their counts) are freed only below.
            let counts = unsafe { &*entry.counts }.get();
            let mut retired = self.retired.lock();
            *retired = retired.plus(&counts);
            entry
        };
        // SAFETY: removed from the registry, on its own thread, no guard: nobody
        // uses it any more. Freed outside the lock (closing descriptors).
        unsafe { (entry.free)(entry.lanes) };
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for e in self.threads.get_mut().drain(..) {
            // SAFETY: the handle is gone, and with it every borrow a guard or a
            // thread's `load` could hold; thread-locals only reach the lanes
            // through a live handle (id match) or `release_thread` (which needs
            // the registry alive).
            unsafe { (e.free)(e.lanes) };
        }
    }
}

/// A thread's entry for one handle, releasing the lanes when the thread exits.
pub(super) struct Registered {
    pub(super) id: u64,
    pub(super) lanes: *mut (),
    pub(super) registry: Weak<Registry>,
}

/// This thread's entries; dropped when the thread exits.
pub(super) struct ThreadEntries(pub(super) Vec<Registered>);

impl Drop for ThreadEntries {
    fn drop(&mut self) {
        // The fast path must not find lanes that are about to be freed.
        LAST.set((0, std::ptr::null_mut()));
        for r in self.0.drain(..) {
            if let Some(registry) = r.registry.upgrade() {
                registry.release_thread(r.lanes);
            }
        }
    }
}

thread_local! {
    /// The fast path: the last handle used on this thread (id, its lanes).
    /// Plain data without a destructor, so it is always accessible.
    pub(super) static LAST: Cell<(u64, *mut ())> = const { Cell::new((0, std::ptr::null_mut())) };
    /// Every handle this thread read from.
    pub(super) static ENTRIES: RefCell<ThreadEntries> = const { RefCell::new(ThreadEntries(Vec::new())) };
}

/// Handle ids; 0 is never used (the empty `LAST`).
pub(super) static NEXT_ID: IdCounter = IdCounter::new(1);
