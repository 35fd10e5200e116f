//! The pages segment `shmstate.N.pages`: the blocks of a map's tree and
//! values. The writer maps it read-write and only ever writes blocks that no
//! published root reaches; readers map it read-only and take a block's bytes
//! only after pinning a root that reaches it (docs/MAP.md).
#![allow(unsafe_code)]

use crate::error::{Errno, OpenError, PublishError};
use crate::map::format::{BlockRef, PagesHeader, BLOCK_ALIGN, PAGES_HEADER, PAGES_MAGIC, PAGES_VERSION};
use crate::os::{Mapping, ShmObject};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// One process's mapping of a pages segment.
pub(crate) struct Pages {
    name: String,
    obj: ShmObject,
    map: Mapping,
    writable: bool,
}

// SAFETY: the mapping is only reached through raw pointers; the writer's
// writes go to blocks no reader can reach (docs/MAP.md), and moving the
// handle to another thread changes nothing about that.
unsafe impl Send for Pages {}

use crate::object::name::pages as shm_name;

const PAGE: u64 = 4096;

impl Pages {
    /// Creates the pages segment of a new map (replacing one left by an
    /// earlier, removed object of the name): header with `incarnation`.
    pub(crate) fn create(name: &str, mode: u32, incarnation: u64) -> Result<Pages, OpenError> {
        let path = shm_name(name);
        let os = |op| move |errno| OpenError::Os { name: name.into(), op, errno };
        let obj = match ShmObject::create_new(&path, mode) {
            Err(Errno::EXIST) => {
                let _ = ShmObject::unlink(&path);
                ShmObject::create_new(&path, mode)
            }
            r => r,
        }
        .map_err(os("creating the pages segment"))?;
        obj.grow_to(PAGE).map_err(|e| OpenError::allocating(name, "allocating the pages segment", PAGE, e))?;
        let map = Mapping::new(&obj, PAGE, true).map_err(os("mmap"))?;
        let pages = Pages { name: name.into(), obj, map, writable: true };
        let h = pages.header();
        // SYNC(init): Relaxed, published by the Release magic store below.
        h.version.store(PAGES_VERSION, Relaxed);
        h.incarnation.store(incarnation, Relaxed);
        // SYNC(init): Release pairs with the Acquire load in `open`.
        h.magic.store(PAGES_MAGIC, Release);
        Ok(pages)
    }

    /// Opens an existing pages segment (the writer taking over: `writable`;
    /// a reader: read-only) and checks its header.
    pub(crate) fn open(name: &str, writable: bool) -> Result<Pages, OpenError> {
        let obj = ShmObject::open(&shm_name(name), writable).map_err(|errno| match errno {
            Errno::NOENT => OpenError::NotFound { name: name.into() },
            Errno::ACCESS | Errno::PERM => OpenError::PermissionDenied { name: name.into(), object: "pages segment" },
            errno => OpenError::Os { name: name.into(), op: "opening the pages segment", errno },
        })?;
        let size = obj.size().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
        if size < PAGES_HEADER {
            return Err(OpenError::Corrupt { name: name.into(), what: format!("pages segment of {size} bytes") });
        }
        let map = Mapping::new(&obj, size, writable).map_err(|errno| OpenError::Os {
            name: name.into(),
            op: "mmap",
            errno,
        })?;
        let pages = Pages { name: name.into(), obj, map, writable };
        let h = pages.header();
        // SYNC(init): Acquire pairs with the Release store in `create`.
        if h.magic.load(Acquire) != PAGES_MAGIC {
            return Err(OpenError::Corrupt { name: name.into(), what: "pages segment without its magic".into() });
        }
        let version = h.version.load(Relaxed);
        if version != PAGES_VERSION {
            return Err(OpenError::FormatVersion { name: name.into(), found: version, supported: PAGES_VERSION });
        }
        Ok(pages)
    }

    fn header(&self) -> &PagesHeader {
        // SAFETY: the mapping is at least PAGES_HEADER bytes (checked at open,
        // or allocated at create), page-aligned (so aligned for the atomics),
        // and the header is only ever accessed through atomics.
        unsafe { &*(self.map.ptr() as *const PagesHeader) }
    }

    /// The incarnation written at creation (the root record names it too).
    pub(crate) fn incarnation(&self) -> u64 {
        // SYNC(init): Relaxed; ordered by the magic's Acquire at open.
        self.header().incarnation.load(Relaxed)
    }

    /// Writer: records where the value schema's block is (before the first
    /// root is published: readers read it only after pinning a root).
    pub(crate) fn set_schema(&self, r: BlockRef) {
        let h = self.header();
        // SYNC(publish): Relaxed; readers load these only after the Acquire of
        // a root record whose Release publish follows this store.
        h.schema_offset.store(r.offset, Relaxed);
        h.schema_len.store(r.len, Relaxed);
    }

    /// The value schema's block (serial 0), `None` if the writer recorded none.
    pub(crate) fn schema(&self) -> Option<BlockRef> {
        let h = self.header();
        // SYNC(publish): Relaxed; ordered by the Acquire of a root record (`set_schema`).
        let (offset, len) = (h.schema_offset.load(Relaxed), h.schema_len.load(Relaxed));
        (len != 0).then_some(BlockRef { offset, len, serial: 0 })
    }

    /// The map's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Bytes mapped.
    pub(crate) fn mapped(&self) -> u64 {
        self.map.len()
    }

    /// Reader: maps at least `needed` bytes (remapping to the object's size
    /// if it grew); `Ok(false)` if the object is shorter than that.
    pub(crate) fn ensure_mapped(&mut self, needed: u64) -> Result<bool, Errno> {
        if needed <= self.map.len() {
            return Ok(true);
        }
        let size = self.obj.size()?;
        if needed > size {
            return Ok(false);
        }
        self.map = Mapping::new(&self.obj, size, self.writable)?;
        Ok(true)
    }

    /// Writer: grows the object to hold `end` bytes (at least doubling, within
    /// `max_size`), allocating its pages now (`fallocate`: a full tmpfs is
    /// `ENOSPC` here, not SIGBUS later), and maps it all.
    pub(crate) fn grow_for(&mut self, end: u64, max_size: u64) -> Result<(), PublishError> {
        if end <= self.map.len() {
            return Ok(());
        }
        if end > max_size {
            return Err(PublishError::TooLarge { name: self.name.clone(), needed: end, limit: max_size });
        }
        let want = end.max(self.map.len().saturating_mul(2)).min(max_size);
        let want = want.div_ceil(PAGE).saturating_mul(PAGE).min(max_size).max(end);
        self.obj.grow_to(want).map_err(|errno| PublishError::growing(&self.name, want - self.map.len(), errno))?;
        self.map = Mapping::new(&self.obj, want, true).map_err(|errno| PublishError::Os {
            name: self.name.clone(),
            op: "mmap",
            errno,
        })?;
        Ok(())
    }

    /// Whether `r` lies inside `[PAGES_HEADER, limit)` at an aligned offset
    /// (`limit`: the root record's `pages_len`, at most what is mapped).
    pub(crate) fn in_bounds(&self, r: BlockRef, limit: u64) -> bool {
        let end = r.offset.checked_add(r.len as u64);
        r.offset >= PAGES_HEADER
            && r.offset % BLOCK_ALIGN == 0
            && r.len > 0
            && end.is_some_and(|e| e <= limit && e <= self.map.len())
    }

    /// The bytes of block `r`, if inside the mapping and aligned.
    ///
    /// # Safety
    /// Nobody writes these bytes while the returned borrow lives: a root
    /// reaching `r` is pinned for that long (readers), or `r` is a block of the writer's own current
    /// tree (the writer, which only writes unreachable blocks).
    pub(crate) unsafe fn block(&self, r: BlockRef, limit: u64) -> Option<&[u8]> {
        if !self.in_bounds(r, limit) {
            return None;
        }
        let p = self.map.ptr().wrapping_add(r.offset as usize);
        // SAFETY:
        // - inside the mapping (`in_bounds`), which outlives the borrow of `self`;
        // - nobody writes the bytes while the borrow lives (this function's contract);
        // - shared memory is always initialised (zero-filled), and `u8` has
        //   no other validity or alignment requirement.
        Some(unsafe { core::slice::from_raw_parts(p, r.len as usize) })
    }

    /// Writer: copies `bytes` to `offset` (a block no published root reaches,
    /// inside the mapping: the allocator grew it first).
    pub(crate) fn write(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset.checked_add(bytes.len() as u64).expect("block end fits u64");
        assert!(self.writable && offset >= PAGES_HEADER && end <= self.map.len(), "block outside the pages mapping");
        // SAFETY: in bounds (asserted) of our writable mapping; the block is
        // reachable from no published root (the allocator hands out only free
        // blocks, docs/MAP.md "Reclamation"), so no reader reads it, and we
        // hold the writer lock, so nobody else writes it; raw copy, no `&mut [u8]`.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.ptr().add(offset as usize), bytes.len()) };
    }
}
