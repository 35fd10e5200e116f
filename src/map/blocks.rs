//! The writer's allocator of blocks in the pages segment: free lists per size
//! class, and the pending list of blocks freed at a generation that readers
//! may still hold (reused only once every held generation is at or past it,
//! docs/MAP.md "Reclamation").

use std::collections::VecDeque;

use crate::error::PublishError;
use crate::map::format::{class_index, class_of, BlockRef, BLOCK_ALIGN, MAX_BLOCK, PAGES_HEADER};
use crate::map::pages::Pages;

/// A block freed at generation `freed_at`: reachable from `freed_at - 1`, not from `freed_at`.
#[derive(Debug, Clone, Copy)]
struct Pending {
    freed_at: u64,
    offset: u64,
    class: u64,
}

/// Where the writer's blocks are.
#[derive(Debug)]
pub(crate) struct Blocks {
    /// Reusable offsets, by size class index.
    free: Vec<Vec<u64>>,
    /// Freed blocks in `freed_at` order (commits only go up).
    pending: VecDeque<Pending>,
    /// First byte past the last block ever allocated: the root's `pages_len`.
    end: u64,
    next_serial: u64,
    pub(crate) live_bytes: u64,
    pub(crate) garbage_bytes: u64,
    pub(crate) free_bytes: u64,
}

impl Blocks {
    /// An empty pages segment.
    pub(crate) fn new() -> Self {
        Blocks {
            free: Vec::new(),
            pending: VecDeque::new(),
            end: PAGES_HEADER,
            next_serial: 1,
            live_bytes: 0,
            garbage_bytes: 0,
            free_bytes: 0,
        }
    }

    /// The allocator of a taken-over map: `reachable` are the extents
    /// (offset, class) the current root (generation `current`) reaches; every
    /// other extent below `end` is pending, freed at `current` (older
    /// generations readers hold may reach it). Overlaps or extents outside
    /// `[PAGES_HEADER, end)` are corruption.
    pub(crate) fn rebuild(
        mut reachable: Vec<(u64, u64)>,
        end: u64,
        next_serial: u64,
        current: u64,
    ) -> Result<Self, String> {
        reachable.sort_unstable();
        let mut b = Blocks { end, next_serial, ..Blocks::new() };
        let mut at = PAGES_HEADER;
        for &(offset, class) in &reachable {
            if offset < at {
                return Err(format!("block at {offset} overlaps the one before it (which ends at {at})"));
            }
            let stop = offset.checked_add(class).filter(|&e| e <= end);
            let Some(stop) = stop else { return Err(format!("block at {offset} ends past pages_len {end}")) };
            b.carve(at, offset, current);
            b.live_bytes += class;
            at = stop;
        }
        b.carve(at, end, current);
        Ok(b)
    }

    /// Marks `[from, to)` pending at `freed_at`, cut into aligned size classes.
    fn carve(&mut self, mut from: u64, to: u64, freed_at: u64) {
        from = from.div_ceil(BLOCK_ALIGN) * BLOCK_ALIGN;
        while to.saturating_sub(from) >= class_of(0) {
            let class = 1u64 << (63 - (to - from).leading_zeros());
            let class = class.min(1 << 40);
            self.pending.push_back(Pending { freed_at, offset: from, class });
            self.garbage_bytes += class;
            from += class;
        }
    }

    /// First byte past the last block: what the next root records as `pages_len`.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// The serial the next block gets.
    pub(crate) fn next_serial(&self) -> u64 {
        self.next_serial
    }

    /// The oldest generation a pending block was freed at, if any.
    pub(crate) fn oldest_pending(&self) -> Option<u64> {
        self.pending.front().map(|p| p.freed_at)
    }

    /// Makes reusable every pending block freed at or before `oldest`, the
    /// oldest generation any reader may hold.
    pub(crate) fn reclaim(&mut self, oldest: u64) {
        while let Some(p) = self.pending.front().copied().filter(|p| p.freed_at <= oldest) {
            self.pending.pop_front();
            self.push_free(p.offset, p.class);
            self.garbage_bytes -= p.class;
        }
    }

    fn push_free(&mut self, offset: u64, class: u64) {
        let i = class_index(class);
        if self.free.len() <= i {
            self.free.resize_with(i + 1, Vec::new);
        }
        self.free[i].push(offset);
        self.free_bytes += class;
    }

    /// A block for `len` bytes: a free one of its class, or a new one at the
    /// end (growing the segment first).
    pub(crate) fn alloc(&mut self, len: u64, pages: &mut Pages, max_size: u64) -> Result<BlockRef, PublishError> {
        if len == 0 || len > MAX_BLOCK {
            return Err(PublishError::TooLarge { name: pages.name().into(), needed: len, limit: MAX_BLOCK });
        }
        let class = class_of(len);
        let reused = self.free.get_mut(class_index(class)).and_then(Vec::pop);
        let offset = match reused {
            Some(offset) => {
                self.free_bytes -= class;
                offset
            }
            None => {
                let offset = self.end;
                let end = offset.saturating_add(class);
                pages.grow_for(end, max_size)?;
                self.end = end;
                offset
            }
        };
        self.live_bytes += class;
        let serial = self.next_serial;
        self.next_serial += 1;
        Ok(BlockRef { offset, len: len as u32, serial })
    }

    /// A block allocated by a commit that failed before any root reached it:
    /// free again at once.
    pub(crate) fn give_back(&mut self, r: BlockRef) {
        let class = class_of(r.len as u64);
        self.live_bytes -= class;
        self.push_free(r.offset, class);
    }

    /// A block the commit of generation `freed_at` no longer reaches.
    pub(crate) fn retire(&mut self, r: BlockRef, freed_at: u64) {
        let class = class_of(r.len as u64);
        self.live_bytes = self.live_bytes.saturating_sub(class);
        self.garbage_bytes += class;
        self.pending.push_back(Pending { freed_at, offset: r.offset, class });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_blocks_wait_for_the_oldest_holder() {
        let mut b = Blocks::new();
        b.retire(BlockRef { offset: 64, len: 40, serial: 1 }, 5);
        b.reclaim(4);
        assert_eq!(b.free_bytes, 0, "a reader holds generation 4, which reaches the block");
        b.reclaim(5);
        assert_eq!(b.free_bytes, 64);
    }

    #[test]
    fn rebuild_marks_the_gaps_pending_and_refuses_overlaps() {
        let b = Blocks::rebuild(vec![(64, 32), (128, 64)], 320, 9, 7).unwrap();
        assert_eq!(b.live_bytes, 96);
        // [96, 128) and [192, 320): 32 + 128 bytes.
        assert_eq!(b.garbage_bytes, 160);
        assert_eq!(b.oldest_pending(), Some(7));
        assert!(Blocks::rebuild(vec![(64, 64), (96, 32)], 320, 9, 7).is_err());
        assert!(Blocks::rebuild(vec![(256, 128)], 320, 9, 7).is_err());
    }
}
