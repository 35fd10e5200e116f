//! One pinned generation of a map: `get`, `len`, ordered `iter` and `range`.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use crate::error::ReadError;
use crate::map::format::ArchivedNode;
use crate::map::key::MapKey;
use crate::map::view::View;
use crate::{Generation, Shared};

/// A consistent view of every key of one generation, for as long as it
/// lives (it borrows its [`MapReader`](crate::map::MapReader), whose pin keeps
/// the generation's blocks unchanged). Each block is validated the first time
/// this reader touches it; an access that meets a bad block returns an error.
pub struct MapSnapshot<'a, K, V> {
    pub(crate) view: View<'a>,
    pub(crate) len: u64,
    pub(crate) scratch: &'a RefCell<Vec<u8>>,
    pub(crate) _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for MapSnapshot<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapSnapshot")
            .field("generation", &self.view.generation)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<'a, K: MapKey, V: Shared> MapSnapshot<'a, K, V> {
    /// The generation (the commit) this snapshot shows.
    pub fn generation(&self) -> Generation {
        Generation(self.view.generation)
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`, if present: the nodes on its path and the value
    /// are validated on this reader's first touch of each.
    pub fn get(&self, key: &K) -> Result<Option<&'a V::Archived>, ReadError> {
        let mut scratch = self.scratch.borrow_mut();
        scratch.clear();
        key.encode(&mut scratch);
        let q = scratch.as_slice();
        if self.view.height == 0 {
            return Ok(None);
        }
        let mut r = self.view.root;
        for depth in 1..=self.view.height {
            let node = self.view.node(r, depth)?;
            if node.leaf {
                return match node.find(q) {
                    Some(i) => self.view.value::<V>(node.refs[i].get()).map(Some),
                    None => Ok(None),
                };
            }
            // The last child whose first key is <= q; none: q is below every key.
            let i = node.count_below(q, true);
            let Some(i) = i.checked_sub(1) else { return Ok(None) };
            r = node.refs[i].get();
        }
        unreachable!("`View::node` refuses a branch at depth `height`")
    }

    /// Every entry in key order.
    pub fn iter(&self) -> MapIter<'a, K, V> {
        self.range(..)
    }

    /// The entries whose keys lie in `range`, in key order.
    pub fn range(&self, range: impl RangeBounds<K>) -> MapIter<'a, K, V> {
        let enc = |b: Bound<&K>| b.map(MapKey::to_key_bytes);
        MapIter {
            view: self.view,
            lower: enc(range.start_bound()),
            upper: enc(range.end_bound()),
            stack: Vec::new(),
            state: IterState::Start,
            _types: PhantomData,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IterState {
    Start,
    Running,
    Done,
}

/// Entries of a [`MapSnapshot`] in key order: `(key, value)`, or the error
/// met at a bad block (then the iteration ends).
pub struct MapIter<'a, K, V> {
    view: View<'a>,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// The path to the current leaf: each node and the index of the entry
    /// (leaf) or child (branch) being visited.
    stack: Vec<(&'a ArchivedNode, usize)>,
    state: IterState,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for MapIter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapIter").field("depth", &self.stack.len()).finish_non_exhaustive()
    }
}

impl<'a, K: MapKey, V: Shared> MapIter<'a, K, V> {
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
    fn descend_leftmost(&mut self, mut r: crate::map::format::BlockRef) -> Result<(), ReadError> {
        loop {
            let node = self.view.node(r, self.stack.len() as u32 + 1)?;
            self.stack.push((node, 0));
            if node.leaf {
                return Ok(());
            }
            r = node.refs[0].get();
        }
    }

    fn next_entry(&mut self) -> Result<Option<(K, &'a V::Archived)>, ReadError> {
        if self.state == IterState::Start {
            self.state = IterState::Running;
            self.seek()?;
        }
        loop {
            let Some((node, i)) = self.stack.last_mut() else { return Ok(None) };
            if *i < node.keys.len() {
                let (k, r) = (node.keys[*i].as_slice(), node.refs[*i].get());
                *i += 1;
                let past = match &self.upper {
                    Bound::Unbounded => false,
                    Bound::Included(u) => k > u.as_slice(),
                    Bound::Excluded(u) => k >= u.as_slice(),
                };
                if past {
                    return Ok(None);
                }
                let key = K::decode(k).ok_or_else(|| ReadError::Invalid {
                    name: self.view.name.into(),
                    generation: self.view.generation,
                    reason: format!("a key of {} bytes is no {}", k.len(), K::KIND),
                })?;
                return Ok(Some((key, self.view.value::<V>(r)?)));
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

impl<'a, K: MapKey, V: Shared> Iterator for MapIter<'a, K, V> {
    type Item = Result<(K, &'a V::Archived), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state == IterState::Done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.state = IterState::Done;
                None
            }
            Err(e) => {
                self.state = IterState::Done;
                Some(Err(e))
            }
        }
    }
}
