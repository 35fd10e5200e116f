//! A reader's memory of the blocks it has validated, so that each block is
//! checked once, on first touch, and not once per generation
//! (docs/MAP.md, "Validation"). Keyed by offset, length, serial and kind: a
//! block is immutable while any held generation reaches it, and a reused
//! offset carries a new serial, so a hit always names bytes that were checked.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::map::format::BlockRef;

/// What a block was validated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Node,
    Value,
}

/// Entries kept before the cache starts over (forgetting only costs checks).
const MAX_ENTRIES: usize = 1 << 20;

/// A block's identity: offset, length, serial, and what it was checked as.
type BlockId = (u64, u32, u64, Kind);

#[derive(Debug, Default)]
pub(crate) struct Validated {
    seen: RefCell<HashSet<BlockId, BuildHasherDefault<MixHasher>>>,
}

impl Validated {
    /// Whether `r` was validated as `kind` before.
    #[inline]
    pub(crate) fn contains(&self, r: BlockRef, kind: Kind) -> bool {
        self.seen.borrow().contains(&(r.offset, r.len, r.serial, kind))
    }

    /// Records that `r` passed validation as `kind`.
    pub(crate) fn insert(&self, r: BlockRef, kind: Kind) {
        let mut seen = self.seen.borrow_mut();
        if seen.len() >= MAX_ENTRIES {
            seen.clear();
        }
        seen.insert((r.offset, r.len, r.serial, kind));
    }
}

/// A multiply-xorshift hasher: the keys are offsets and serials the writer
/// chose (no hash flooding to fear from a trusted writer; a hostile one
/// could only slow its own readers down).
#[derive(Debug, Default)]
pub(crate) struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        let x = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(23);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}
