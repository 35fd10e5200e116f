//! [`MapSnapshot::changes_since`](crate::map::MapSnapshot::changes_since):
//! the keys added, changed and removed between two held generations, in key
//! order, walking both trees together and skipping every subtree whose block
//! both roots reach (docs/MAP.md, "Changes between two generations").

use std::marker::PhantomData;

use crate::error::ReadError;
use crate::map::format::{ArchivedNode, BlockRef};
use crate::map::key::MapKey;
use crate::map::view::View;
use crate::Shared;

/// One difference between an older and a newer generation of a map.
pub enum Change<'o, 'n, K, V: Shared> {
    /// `key` is in the newer generation only.
    Added {
        /// The key.
        key: K,
        /// Its value in the newer generation.
        new: &'n V::Archived,
    },
    /// `key` is in the older generation only.
    Removed {
        /// The key.
        key: K,
        /// Its value in the older generation.
        old: &'o V::Archived,
    },
    /// `key` is in both, with values whose archived bytes differ.
    Changed {
        /// The key.
        key: K,
        /// Its value in the older generation.
        old: &'o V::Archived,
        /// Its value in the newer generation.
        new: &'n V::Archived,
    },
}

impl<K, V: Shared> Change<'_, '_, K, V> {
    /// The key that changed.
    pub fn key(&self) -> &K {
        match self {
            Change::Added { key, .. } | Change::Removed { key, .. } | Change::Changed { key, .. } => key,
        }
    }
}

impl<K: std::fmt::Debug, V: Shared> std::fmt::Debug for Change<'_, '_, K, V>
where
    V::Archived: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { key, new } => f.debug_struct("Added").field("key", key).field("new", new).finish(),
            Change::Removed { key, old } => f.debug_struct("Removed").field("key", key).field("old", old).finish(),
            Change::Changed { key, old, new } => {
                f.debug_struct("Changed").field("key", key).field("old", old).field("new", new).finish()
            }
        }
    }
}

/// A position in one tree: the path from the root to the item being
/// visited, each node with the index of its current key. The item is the
/// top node's key `i`: a child subtree in a branch, an entry in a leaf.
struct Cursor<'a> {
    view: View<'a>,
    stack: Vec<(&'a ArchivedNode, usize)>,
}

/// The item a cursor is at.
struct Item<'a> {
    /// The subtree's smallest key (a branch's key is its child's first key)
    /// or the entry's key.
    key: &'a [u8],
    block: BlockRef,
    /// 0 for an entry of a leaf, 1 for a leaf below a branch, and so on.
    level: u32,
}

impl<'a> Cursor<'a> {
    /// Steps to the first item of the root (none for an empty map).
    fn start(&mut self) -> Result<(), ReadError> {
        if self.view.height > 0 {
            self.stack.push((self.view.node(self.view.root, 1)?, 0));
        }
        Ok(())
    }

    fn item(&self) -> Option<Item<'a>> {
        let &(node, i) = self.stack.last()?;
        let level = self.view.height - self.stack.len() as u32;
        Some(Item { key: node.keys[i].as_slice(), block: node.refs[i].get(), level })
    }

    /// Steps over the current item (a whole subtree, or one entry).
    fn skip(&mut self) {
        while let Some((node, i)) = self.stack.last_mut() {
            *i += 1;
            if *i < node.keys.len() {
                return;
            }
            self.stack.pop();
        }
    }

    /// Steps into the current item, a child subtree (level ≥ 1).
    fn descend(&mut self, child: BlockRef) -> Result<(), ReadError> {
        let node = self.view.node(child, self.stack.len() as u32 + 1)?;
        self.stack.push((node, 0));
        Ok(())
    }
}

/// The changes from an older to a newer generation, in key order (see
/// [`MapSnapshot::changes_since`](crate::map::MapSnapshot::changes_since)).
/// After an error the iteration ends.
pub struct Changes<'o, 'n, K, V> {
    old: Cursor<'o>,
    new: Cursor<'n>,
    /// Whether a block both trees reach may be skipped: both generations
    /// come from the same pages segment (same incarnation).
    share: bool,
    /// Whether the cursors stand at their roots' first items yet.
    started: bool,
    done: bool,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for Changes<'_, '_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("older", &self.old.view.generation)
            .field("newer", &self.new.view.generation)
            .field("shared_blocks_skipped", &self.share)
            .finish_non_exhaustive()
    }
}

impl<'o, 'n, K: MapKey, V: Shared> Changes<'o, 'n, K, V> {
    pub(crate) fn new(old: View<'o>, new: View<'n>) -> Self {
        let share = old.pages.incarnation() == new.pages.incarnation();
        // The same root: nothing changed (an empty map's root is `NONE` at height 0).
        let same_root = share && old.height == new.height && old.root == new.root;
        Changes {
            old: Cursor { view: old, stack: Vec::new() },
            new: Cursor { view: new, stack: Vec::new() },
            share,
            started: false,
            done: same_root,
            _types: PhantomData,
        }
    }

    fn key(view: &View<'_>, k: &[u8]) -> Result<K, ReadError> {
        K::decode(k).ok_or_else(|| ReadError::Invalid {
            name: view.name.into(),
            generation: view.generation,
            reason: format!("a key of {} bytes is no {}", k.len(), K::KIND),
        })
    }

    fn next_change(&mut self) -> Result<Option<Change<'o, 'n, K, V>>, ReadError> {
        if !self.started {
            self.started = true;
            self.old.start()?;
            self.new.start()?;
        }
        loop {
            let (a, b) = match (self.old.item(), self.new.item()) {
                (None, None) => return Ok(None),
                (Some(a), None) if a.level > 0 => {
                    self.old.descend(a.block)?;
                    continue;
                }
                (Some(a), None) => {
                    self.old.skip();
                    let old = self.old.view.value::<V>(a.block)?;
                    return Ok(Some(Change::Removed { key: Self::key(&self.old.view, a.key)?, old }));
                }
                (None, Some(b)) if b.level > 0 => {
                    self.new.descend(b.block)?;
                    continue;
                }
                (None, Some(b)) => {
                    self.new.skip();
                    let new = self.new.view.value::<V>(b.block)?;
                    return Ok(Some(Change::Added { key: Self::key(&self.new.view, b.key)?, new }));
                }
                (Some(a), Some(b)) => (a, b),
            };
            match a.key.cmp(b.key) {
                // Old keys below everything left of the new tree: removed
                // (or, in a subtree, to be looked at entry by entry).
                core::cmp::Ordering::Less if a.level > 0 => self.old.descend(a.block)?,
                core::cmp::Ordering::Less => {
                    self.old.skip();
                    let old = self.old.view.value::<V>(a.block)?;
                    return Ok(Some(Change::Removed { key: Self::key(&self.old.view, a.key)?, old }));
                }
                core::cmp::Ordering::Greater if b.level > 0 => self.new.descend(b.block)?,
                core::cmp::Ordering::Greater => {
                    self.new.skip();
                    let new = self.new.view.value::<V>(b.block)?;
                    return Ok(Some(Change::Added { key: Self::key(&self.new.view, b.key)?, new }));
                }
                core::cmp::Ordering::Equal => {
                    // Both at the same key, everything before it compared.
                    // The same block at the same level is the same subtree
                    // (or value) in both: skip it (docs/MAP.md for why a
                    // reused offset cannot pass for a shared block).
                    if self.share && a.block == b.block && a.level == b.level {
                        self.old.skip();
                        self.new.skip();
                        continue;
                    }
                    if a.level > 0 || b.level > 0 {
                        // Open the taller side first (both when level with each other).
                        if a.level >= b.level && a.level > 0 {
                            self.old.descend(a.block)?;
                        }
                        if b.level >= a.level && b.level > 0 {
                            self.new.descend(b.block)?;
                        }
                        continue;
                    }
                    self.old.skip();
                    self.new.skip();
                    // Two value blocks: equal bytes are an unchanged value
                    // (a rewrite of the same value is no change).
                    if self.old.view.bytes(a.block)? == self.new.view.bytes(b.block)? {
                        continue;
                    }
                    let old = self.old.view.value::<V>(a.block)?;
                    let new = self.new.view.value::<V>(b.block)?;
                    return Ok(Some(Change::Changed { key: Self::key(&self.new.view, b.key)?, old, new }));
                }
            }
        }
    }
}

impl<'o, 'n, K: MapKey, V: Shared> Iterator for Changes<'o, 'n, K, V> {
    type Item = Result<Change<'o, 'n, K, V>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = self.next_change().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }
}
