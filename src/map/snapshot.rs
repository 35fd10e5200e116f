//! One pinned generation of a map: `get`, `len`, ordered `iter` and `range`.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use crate::error::ReadError;
use crate::map::key::MapKey;
use crate::map::view::View;
use crate::map::walk::Walk;
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
        match self.view.lookup(scratch.as_slice())? {
            Some(r) => self.view.value::<V>(r).map(Some),
            None => Ok(None),
        }
    }

    /// Every entry in key order.
    pub fn iter(&self) -> MapIter<'a, K, V> {
        self.range(..)
    }

    /// The entries whose keys lie in `range`, in key order.
    pub fn range(&self, range: impl RangeBounds<K>) -> MapIter<'a, K, V> {
        let enc = |b: Bound<&K>| b.map(MapKey::to_key_bytes);
        let walk = Walk::new(self.view, enc(range.start_bound()), enc(range.end_bound()));
        MapIter { view: self.view, walk, done: false, _types: PhantomData }
    }
}

/// Entries of a [`MapSnapshot`] in key order: `(key, value)`, or the error
/// met at a bad block (then the iteration ends).
pub struct MapIter<'a, K, V> {
    view: View<'a>,
    walk: Walk<'a>,
    done: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for MapIter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapIter").field("depth", &self.walk.depth()).finish_non_exhaustive()
    }
}

impl<'a, K: MapKey, V: Shared> MapIter<'a, K, V> {
    fn next_entry(&mut self) -> Result<Option<(K, &'a V::Archived)>, ReadError> {
        let Some((k, r)) = self.walk.next_entry()? else { return Ok(None) };
        let key = K::decode(k).ok_or_else(|| ReadError::Invalid {
            name: self.view.name.into(),
            generation: self.view.generation,
            reason: format!("a key of {} bytes is no {}", k.len(), K::KIND),
        })?;
        Ok(Some((key, self.view.value::<V>(r)?)))
    }
}

impl<'a, K: MapKey, V: Shared> Iterator for MapIter<'a, K, V> {
    type Item = Result<(K, &'a V::Archived), ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
