//! Blocks as a reader takes them: bounds checked against the pinned root's
//! `pages_len`, validated with bytecheck on first touch (then remembered),
//! and nodes checked for shape at every use (docs/MAP.md, "Validation").
#![allow(unsafe_code)]

use rkyv::rancor::BoxedError;

use crate::error::ReadError;
use crate::map::format::{ArchivedNode, BlockRef};
use crate::map::pages::Pages;
use crate::map::validated::{Kind, Validated};
use crate::Shared;

/// One pinned generation's blocks.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) pages: &'a Pages,
    pub(crate) validated: &'a Validated,
    pub(crate) name: &'a str,
    /// The pinned root record's `pages_len` (checked to be mapped).
    pub(crate) limit: u64,
    pub(crate) root: BlockRef,
    pub(crate) height: u32,
    pub(crate) generation: u64,
}

impl<'a> View<'a> {
    fn corrupt(&self, what: String) -> ReadError {
        ReadError::Corrupt { name: self.name.into(), what }
    }

    fn invalid(&self, r: BlockRef, e: impl core::fmt::Display) -> ReadError {
        let reason = format!("block at offset {} (serial {}): {e}", r.offset, r.serial);
        ReadError::Invalid { name: self.name.into(), generation: self.generation, reason }
    }

    pub(crate) fn bytes(&self, r: BlockRef) -> Result<&'a [u8], ReadError> {
        // SAFETY: `r` is reached from the root this reader pinned (the view
        // exists only inside a `MapSnapshot`, which borrows the reader and so
        // its pin), and the writer never writes a block a held generation
        // reaches (docs/MAP.md, "Reclamation"): the bytes stay unchanged for 'a.
        let bytes = unsafe { self.pages.block(r, self.limit) };
        bytes.ok_or_else(|| {
            self.corrupt(format!("block [{}, +{}) outside the pages in use ({})", r.offset, r.len, self.limit))
        })
    }

    /// The node `r` at `depth` (1 = the root), validated and checked for shape.
    pub(crate) fn node(&self, r: BlockRef, depth: u32) -> Result<&'a ArchivedNode, ReadError> {
        let bytes = self.bytes(r)?;
        let node = if self.validated.contains(r, Kind::Node) {
            // SAFETY: these bytes passed `rkyv::access` as an `ArchivedNode`
            // before (same offset, length and serial: the same block, unchanged
            // while reachable, see `Validated`).
            unsafe { rkyv::access_unchecked::<ArchivedNode>(bytes) }
        } else {
            let node = rkyv::access::<ArchivedNode, BoxedError>(bytes).map_err(|e| self.invalid(r, e))?;
            self.validated.insert(r, Kind::Node);
            node
        };
        let bottom = depth == self.height;
        let (keys, refs, prefixes) = (node.keys.len(), node.refs.len(), node.prefixes.len());
        if node.leaf != bottom || keys != refs || keys != prefixes || keys == 0 {
            return Err(self.corrupt(format!(
                "node at offset {}: leaf {} at depth {depth} of {}, {keys} keys, {refs} refs, {prefixes} prefixes",
                r.offset, node.leaf, self.height,
            )));
        }
        Ok(node)
    }

    /// The value in block `r`, validated as `V`'s archive.
    pub(crate) fn value<V: Shared>(&self, r: BlockRef) -> Result<&'a V::Archived, ReadError> {
        let bytes = self.bytes(r)?;
        if self.validated.contains(r, Kind::Value) {
            // SAFETY: these bytes passed `rkyv::access::<V::Archived>` before
            // (same block, unchanged while reachable); the reader checked at
            // open and at each new generation that the map stores `V`.
            return Ok(unsafe { rkyv::access_unchecked::<V::Archived>(bytes) });
        }
        let v = rkyv::access::<V::Archived, BoxedError>(bytes).map_err(|e| self.invalid(r, e))?;
        self.validated.insert(r, Kind::Value);
        Ok(v)
    }
}
