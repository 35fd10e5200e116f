//! The protocol: what lives in shared memory and how the writer and the
//! readers agree on it, on plain atomics and byte-range locks only (no OS
//! call), so that the same code runs on shared memory, on a heap region
//! under Miri (`heap_tests.rs`) and under loom (`loom_tests.rs`).
//!
//! - `layout.rs`: the bytes of the data segment and the reader table.
//! - `words.rs`: the publish word and the pin words.
//! - `slots.rs`: the writer's side (choosing, sealing, publishing, reclaiming).
//! - `waiters.rs`: the waiter count and the entries' waiting marks.
//! - `lock_pins.rs`: the reader's side of lock pins; `locks.rs`: the lock interface.
//! - `publish_lock.rs`: the shared writers' publish lock on one word.
//! - `sync.rs`: std atomics, or loom's under `--cfg loom`.
//! - `generation.rs`: the public generation number.
//!
//! # The publish word
//! One `AtomicU64`, `current = generation << SLOT_BITS | slot`, names the
//! published snapshot; 0 means "nothing published yet". The writer fills and
//! seals a free slot, then publishes it with a single Release store. Because
//! the whole record is one word there is no torn or half-written state: a writer
//! killed at any instruction leaves `current` naming a sealed slot. (The original
//! proposal was a seqlock over a multi-word record; one word makes crash recovery
//! trivial and makes the reader's fast path a single load. See docs/PROTOCOL.md.)
//!
//! # Pins (docs/DESIGN.md, invariants 1 and 2)
//! Each reader handle owns one `pin` word holding the publish word it uses.
//! The writer never writes a slot that is current or named by a pin. The race
//! between "a reader pins slot k" and "the writer picks k" is a store-buffering
//! (Dekker) pattern closed by SeqCst fences on both sides:
//!
//! ```text
//! reader                                writer
//! pin.store(c1)           (P)           current.store(new)            (W)
//! fence(SeqCst)           (F_R)         fence(SeqCst)                 (F_W)
//! c2 = current.load()     (C)           pins: pin.load() for all      (S)
//! ```
//! Either S sees P (k is skipped), or C sees W (so `c2 != c1` and the reader
//! retries). A slot k that is not current was replaced by a publish W that
//! precedes F_W, so a reader holding `c1` naming k sees a change. (On x86-64
//! F_R is the `lock cmpxchg` of the reader's pin count, sequenced between P
//! and C, with no `mfence`: `sync::fence_after_count`, docs/PROTOCOL.md
//! "F_R on x86-64". F_W is always a fence.)
//!
//! # Pin counts (format 3)
//! Scanning every pin costs the writer O(readers) per publish. So a reader
//! also counts its pin in a per-slot word of the reader table, `count[k] =
//! tag << 32 | n` (`tag`: the low 32 bits of the generation the writer last
//! published in slot k; `n`: pins counted). The reader stores its pin, then
//! increments `n` (only if the tag is its word's), then F_R; so the same
//! fence-fence argument holds for the counts: after F_W the writer loads
//! `count[k]` for the slots in use (`scan_counts`, O(slots)), and `n == 0`
//! means free. The pin words stay the ground truth: a dead reader's count is
//! never decremented by anyone else (it cannot be known whether it counted),
//! so it over-counts; when no slot looks free by the counts, the writer scans
//! the pins (`scan_pins`), reclaims dead readers, and clears the counts of
//! slots that no pin names (`clear_stale_count`). Before it publishes a
//! slot again it resets its count to the new tag (`reset_count`), which makes
//! a late decrement for the old generation a no-op. docs/PROTOCOL.md has the
//! proof and the crash cases.

pub(crate) mod generation;
pub(crate) mod layout;
pub(crate) mod lock_pins;
pub(crate) mod locks;
pub(crate) mod publish_lock;
pub(crate) mod slots;
pub(crate) mod sync;
pub(crate) mod waiters;
mod words;

pub(crate) use words::{
    claim_entry, clear_stale_count, count_for, count_of, generation_of, pin_current, pin_uncounted, pinned_region,
    publish, release_entry, reset_count, scan_counts, scan_pins, slot_of, unpin, word, Pinned, MAX_GENERATION,
    MAX_SLOTS,
};

/// Protocol and validation tests on a heap region, runnable under Miri.
#[cfg(all(test, not(loom)))]
pub(crate) mod heap_tests;
/// loom model of the publish / pin / reclaim protocol (`--cfg loom`).
#[cfg(all(test, loom))]
mod loom_tests;
