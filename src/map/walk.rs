//! A reader's descent of one pinned generation, whatever the key and value
//! types: the lookup of one key's value block, and the in-order walk of a key
//! range. The typed snapshot and the type-erased one (`raw.rs`) share it.

use std::ops::Bound;

use crate::error::ReadError;
use crate::map::format::{ArchivedNode, BlockRef};
use crate::map::view::View;

impl<'a> View<'a> {
    /// The value block of the key whose encoding is `q`, if present; the
    /// nodes on its path are validated on this reader's first touch.
    pub(crate) fn lookup(&self, q: &[u8]) -> Result<Option<BlockRef>, ReadError> {
        if self.height == 0 {
            return Ok(None);
        }
        let mut r = self.root;
        for depth in 1..=self.height {
            let node = self.node(r, depth)?;
            if node.leaf {
                return Ok(node.find(q).map(|i| node.refs[i].get()));
            }
            // The last child whose first key is <= q; none: q is below every key.
            let i = node.count_below(q, true);
            let Some(i) = i.checked_sub(1) else { return Ok(None) };
            r = node.refs[i].get();
        }
        unreachable!("`View::node` refuses a branch at depth `height`")
    }
}

/// The entries of a key range in key order: (key encoding, value block).
pub(crate) struct Walk<'a> {
    view: View<'a>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// The path to the current leaf: each node and the index of the entry
    /// (leaf) or child (branch) being visited.
    stack: Vec<(&'a ArchivedNode, usize)>,
    started: bool,
}

impl<'a> Walk<'a> {
    /// The walk of the keys (encodings) between `lower` and `upper`.
    pub(crate) fn new(view: View<'a>, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Self {
        Walk { view, lower, upper, stack: Vec::new(), started: false }
    }

    /// The nodes on the current path (for `Debug`).
    pub(crate) fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Descends from the root to the first entry at or after `lower`.
    fn seek(&mut self) -> Result<(), ReadError> {
        if self.view.height == 0 {
            return Ok(());
        }
        let mut r = self.view.root;
        for depth in 1..=self.view.height {
            let node = self.view.node(r, depth)?;
            let i = match (&self.lower, node.leaf) {
                (Bound::Unbounded, _) => 0,
                (Bound::Included(q), true) => node.count_below(q, false),
                (Bound::Excluded(q), true) => node.count_below(q, true),
                (Bound::Included(q) | Bound::Excluded(q), false) => node.count_below(q, true).saturating_sub(1),
            };
            self.stack.push((node, i));
            if node.leaf {
                break;
            }
            r = node.refs[i].get();
        }
        Ok(())
    }

    /// Pushes the leftmost path below child block `r` of the stack's top.
    fn descend_leftmost(&mut self, mut r: BlockRef) -> Result<(), ReadError> {
        loop {
            let node = self.view.node(r, self.stack.len() as u32 + 1)?;
            self.stack.push((node, 0));
            if node.leaf {
                return Ok(());
            }
            r = node.refs[0].get();
        }
    }

    /// The next entry, `None` past the range. After an error the caller stops.
    pub(crate) fn next_entry(&mut self) -> Result<Option<(&'a [u8], BlockRef)>, ReadError> {
        if !self.started {
            self.started = true;
            self.seek()?;
        }
        loop {
            let Some((node, i)) = self.stack.last_mut() else { return Ok(None) };
            let node: &'a ArchivedNode = node;
            if *i < node.keys.len() {
                let (k, r) = (node.keys[*i].as_slice(), node.refs[*i].get());
                *i += 1;
                let past = match &self.upper {
                    Bound::Unbounded => false,
                    Bound::Included(u) => k > u.as_slice(),
                    Bound::Excluded(u) => k >= u.as_slice(),
                };
                return Ok((!past).then_some((k, r)));
            }
            // This leaf is done: on to the next child of the nearest branch that has one.
            self.stack.pop();
            loop {
                let Some((parent, j)) = self.stack.last_mut() else { return Ok(None) };
                *j += 1;
                if *j < parent.refs.len() {
                    let child = parent.refs[*j].get();
                    self.descend_leftmost(child)?;
                    break;
                }
                self.stack.pop();
            }
        }
    }
}
