//! [`MapSnapshot::changes_since`]:
//! the keys added, changed and removed between two held generations, in key
//! order, walking both trees together and skipping every subtree whose block
//! both roots reach (docs/MAP.md, "Changes between two generations").

use std::marker::PhantomData;

use crate::error::ReadError;
use crate::map::format::{prefix_of, ArchivedNode, BlockRef};
use crate::map::key::MapKey;
use crate::map::raw::{Parts, RawMapSnapshot};
use crate::map::snapshot::MapSnapshot;
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
        self.check_prefix()
    }

    fn item(&self) -> Option<Item<'a>> {
        let &(node, i) = self.stack.last()?;
        let level = self.view.height - self.stack.len() as u32;
        Some(Item { key: node.keys[i].as_slice(), block: node.refs[i].get(), level })
    }

    fn corrupt(&self, what: String) -> ReadError {
        ReadError::Corrupt { name: self.view.name.into(), what }
    }

    /// Checks the current item's inline prefix against its key (a search
    /// relies on it; a walk that ignored it would miss a corrupt node).
    fn check_prefix(&self) -> Result<(), ReadError> {
        let Some(&(node, i)) = self.stack.last() else { return Ok(()) };
        if node.prefixes[i].to_native() != prefix_of(&node.keys[i]) {
            return Err(
                self.corrupt(format!("generation {}: a node's prefix {i} is not its key's", self.view.generation))
            );
        }
        Ok(())
    }

    /// Steps over the current item (a whole subtree, or one entry). The next
    /// item's key must be above the skipped one's: with `descend`'s check,
    /// the keys a cursor visits strictly increase, so the changes come out
    /// in order even from a corrupt tree.
    fn skip(&mut self) -> Result<(), ReadError> {
        let Some(skipped) = self.item() else { return Ok(()) };
        while let Some((node, i)) = self.stack.last_mut() {
            *i += 1;
            if *i < node.keys.len() {
                break;
            }
            self.stack.pop();
        }
        match self.item() {
            Some(next) if next.key <= skipped.key => Err(self.corrupt(format!(
                "generation {}: keys out of order in the tree ({} bytes after {} bytes)",
                self.view.generation,
                next.key.len(),
                skipped.key.len()
            ))),
            _ => self.check_prefix(),
        }
    }

    /// Steps into the current item, a child subtree (level ≥ 1), whose first
    /// key must be the item's.
    fn descend(&mut self, parent: &Item<'a>) -> Result<(), ReadError> {
        let node = self.view.node(parent.block, self.stack.len() as u32 + 1)?;
        if node.keys[0].as_slice() != parent.key {
            return Err(self.corrupt(format!(
                "generation {}: node at offset {} does not start with its parent's key",
                self.view.generation, parent.block.offset
            )));
        }
        self.stack.push((node, 0));
        self.check_prefix()
    }
}

/// One difference in raw form: the key's encoding and its value blocks
/// (bounds-checked when compared, not validated).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawChange<'o, 'n> {
    /// From the newer tree when the key is there, else from the older one.
    pub(crate) key: KeyBytes<'o, 'n>,
    pub(crate) values: Values,
}

/// The value blocks of one change.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values {
    /// Only in the newer generation.
    Added(BlockRef),
    /// Only in the older one.
    Removed(BlockRef),
    /// In both (old, new), with different bytes.
    Changed(BlockRef, BlockRef),
}

/// A key's bytes, borrowed from the tree it was found in.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyBytes<'o, 'n> {
    Old(&'o [u8]),
    New(&'n [u8]),
}

impl KeyBytes<'_, '_> {
    pub(crate) fn get(&self) -> &[u8] {
        match *self {
            KeyBytes::Old(k) => k,
            KeyBytes::New(k) => k,
        }
    }
}

/// The walk itself, whatever the key and value types: both trees in key
/// order, skipping what both roots reach.
pub(crate) struct RawChanges<'o, 'n> {
    old: Cursor<'o>,
    new: Cursor<'n>,
    /// Whether a block both trees reach may be skipped: both generations
    /// come from the same pages segment (same incarnation).
    share: bool,
    /// Whether the cursors stand at their roots' first items yet.
    started: bool,
    done: bool,
}

impl<'o, 'n> RawChanges<'o, 'n> {
    pub(crate) fn new(old: View<'o>, new: View<'n>) -> Self {
        let share = old.pages.incarnation() == new.pages.incarnation();
        // The same root: nothing changed (an empty map's root is `NONE` at height 0).
        let same_root = share && old.height == new.height && old.root == new.root;
        RawChanges {
            old: Cursor { view: old, stack: Vec::new() },
            new: Cursor { view: new, stack: Vec::new() },
            share,
            started: false,
            done: same_root,
        }
    }

    pub(crate) fn old_view(&self) -> &View<'o> {
        &self.old.view
    }

    pub(crate) fn new_view(&self) -> &View<'n> {
        &self.new.view
    }

    /// The next difference; `None` at the end (and after an error).
    pub(crate) fn next_change(&mut self) -> Option<Result<RawChange<'o, 'n>, ReadError>> {
        if self.done {
            return None;
        }
        let r = self.step().transpose();
        if !matches!(r, Some(Ok(_))) {
            self.done = true;
        }
        r
    }

    fn step(&mut self) -> Result<Option<RawChange<'o, 'n>>, ReadError> {
        if !self.started {
            self.started = true;
            self.old.start()?;
            self.new.start()?;
        }
        loop {
            let found = match (self.old.item(), self.new.item()) {
                (None, None) => return Ok(None),
                (Some(a), None) => self.removed(a)?,
                (None, Some(b)) => self.added(b)?,
                (Some(a), Some(b)) => match a.key.cmp(b.key) {
                    core::cmp::Ordering::Less => self.removed(a)?,
                    core::cmp::Ordering::Greater => self.added(b)?,
                    core::cmp::Ordering::Equal => self.both(a, b)?,
                },
            };
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// The old tree's item comes first: an entry only there (in a subtree:
    /// opened, to be looked at entry by entry).
    fn removed(&mut self, a: Item<'o>) -> Result<Option<RawChange<'o, 'n>>, ReadError> {
        if a.level > 0 {
            self.old.descend(&a)?;
            return Ok(None);
        }
        self.old.skip()?;
        Ok(Some(RawChange { key: KeyBytes::Old(a.key), values: Values::Removed(a.block) }))
    }

    /// The new tree's item comes first: an entry only there.
    fn added(&mut self, b: Item<'n>) -> Result<Option<RawChange<'o, 'n>>, ReadError> {
        if b.level > 0 {
            self.new.descend(&b)?;
            return Ok(None);
        }
        self.new.skip()?;
        Ok(Some(RawChange { key: KeyBytes::New(b.key), values: Values::Added(b.block) }))
    }

    /// Both trees stand at the same key, everything before it compared.
    fn both(&mut self, a: Item<'o>, b: Item<'n>) -> Result<Option<RawChange<'o, 'n>>, ReadError> {
        // The same block at the same level is the same subtree (or value) in
        // both: skipped (docs/MAP.md for why a reused offset cannot pass for
        // a shared block).
        if self.share && a.block == b.block && a.level == b.level {
            self.old.skip()?;
            self.new.skip()?;
            return Ok(None);
        }
        if a.level > 0 || b.level > 0 {
            // Open the taller side (both when level with each other).
            if a.level >= b.level && a.level > 0 {
                self.old.descend(&a)?;
            }
            if b.level >= a.level && b.level > 0 {
                self.new.descend(&b)?;
            }
            return Ok(None);
        }
        self.old.skip()?;
        self.new.skip()?;
        // Two value blocks: equal bytes are an unchanged value (a rewrite of
        // an equal value is no change).
        if self.old.view.bytes(a.block)? == self.new.view.bytes(b.block)? {
            return Ok(None);
        }
        Ok(Some(RawChange { key: KeyBytes::New(b.key), values: Values::Changed(a.block, b.block) }))
    }
}

/// The changes from an older to a newer generation, in key order (see
/// [`MapSnapshot::changes_since`]). After an error the iteration ends.
pub struct Changes<'o, 'n, K, V> {
    raw: RawChanges<'o, 'n>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for Changes<'_, '_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("older", &self.raw.old.view.generation)
            .field("newer", &self.raw.new.view.generation)
            .field("shared_blocks_skipped", &self.raw.share)
            .finish_non_exhaustive()
    }
}

impl<'a, K: MapKey, V: Shared> MapSnapshot<'a, K, V> {
    /// The keys added, changed (old and new value) and removed from
    /// `older` to this snapshot, in key order. Both generations stay pinned
    /// while the iteration lives (hold `older` with a second
    /// [`MapReader`](crate::map::MapReader): a reader pins one generation).
    /// The walk skips every subtree whose block both roots reach, so it costs
    /// the nodes on the changed paths, not the map; blocks are validated on
    /// first touch as by `get`. A value is changed when its archived bytes
    /// differ (a rewrite of an equal value is no change). `older` may be
    /// newer than `self` (the changes then go backwards) or the same
    /// generation (no change). Snapshots of two incarnations of the map (it
    /// was removed and created again between them) share no block: the walk
    /// then compares every entry (docs/MAP.md, "Changes between two generations").
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmstate::map::{Change, MapReader, MapWriter};
    /// let name = format!("doc.changes.{}", std::process::id());
    /// let mut w = MapWriter::<u64, String>::create(&name)?;
    /// w.extend((0..1000).map(|k| (k, format!("v{k}"))));
    /// w.commit()?;
    /// let mut held = MapReader::<u64, String>::open(&name)?;
    /// let old = held.read()?; // pins this generation
    /// w.insert(5, "five".into());
    /// w.remove(&6);
    /// w.insert(2000, "new".into());
    /// w.commit()?;
    /// let mut current = MapReader::<u64, String>::open(&name)?;
    /// let new = current.read()?;
    /// let mut seen = Vec::new();
    /// for change in new.changes_since(&old) {
    ///     seen.push(match change? {
    ///         Change::Changed { key, old, new } => format!("{key}: {old} -> {new}"),
    ///         Change::Removed { key, old } => format!("{key}: {old} removed"),
    ///         Change::Added { key, new } => format!("{key}: {new} added"),
    ///     });
    /// }
    /// assert_eq!(seen, ["5: v5 -> five", "6: v6 removed", "2000: new added"]);
    /// # drop((old, new));
    /// # shmstate::remove(&name)?;
    /// # Ok(()) }
    /// ```
    pub fn changes_since<'o>(&self, older: &MapSnapshot<'o, K, V>) -> Changes<'o, 'a, K, V> {
        Changes { raw: RawChanges::new(older.view, self.view), _types: PhantomData }
    }
}

impl<'o, 'n, K: MapKey, V: Shared> Changes<'o, 'n, K, V> {
    fn typed(&self, c: RawChange<'o, 'n>) -> Result<Change<'o, 'n, K, V>, ReadError> {
        let view = match c.key {
            KeyBytes::Old(_) => self.raw.old_view(),
            KeyBytes::New(_) => self.raw.new_view(),
        };
        let k = c.key.get();
        let key = K::decode(k).ok_or_else(|| ReadError::Invalid {
            name: view.name.into(),
            generation: view.generation,
            reason: format!("a key of {} bytes is no {}", k.len(), K::KIND),
        })?;
        let (old, new) = (self.raw.old_view(), self.raw.new_view());
        Ok(match c.values {
            Values::Added(n) => Change::Added { key, new: new.value::<V>(n)? },
            Values::Removed(o) => Change::Removed { key, old: old.value::<V>(o)? },
            Values::Changed(o, n) => Change::Changed { key, old: old.value::<V>(o)?, new: new.value::<V>(n)? },
        })
    }
}

impl<'o, 'n, K: MapKey, V: Shared> Iterator for Changes<'o, 'n, K, V> {
    type Item = Result<Change<'o, 'n, K, V>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.raw.next_change()?.and_then(|c| self.typed(c));
        if r.is_err() {
            self.raw.done = true;
        }
        Some(r)
    }
}

/// One difference between two generations of a map read without its types
/// ([`RawMapSnapshot::changes_since`]): the key's encoding and the value's
/// archived bytes (validated against the schema) on each side it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMapChange<'o, 'n> {
    /// The key's encoding.
    pub key: Vec<u8>,
    /// The value in the older generation (`None`: the key was added).
    pub old: Option<&'o [u8]>,
    /// The value in the newer generation (`None`: the key was removed).
    pub new: Option<&'n [u8]>,
}

/// The changes between two [`RawMapSnapshot`]s, in key order; an error (a
/// corrupt or invalid block) ends the iteration.
pub struct RawMapChanges<'o, 'n> {
    raw: RawChanges<'o, 'n>,
    old: Parts<'o>,
    new: Parts<'n>,
}

impl std::fmt::Debug for RawMapChanges<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMapChanges")
            .field("older", &self.raw.old.view.generation)
            .field("newer", &self.raw.new.view.generation)
            .finish_non_exhaustive()
    }
}

impl<'a> RawMapSnapshot<'a> {
    /// The keys added, changed and removed since `older` (another
    /// generation of the same map, held by another reader), in key order, as
    /// [`MapSnapshot::changes_since`] finds them: subtrees both roots reach
    /// are skipped, so the cost is the changed paths.
    pub fn changes_since<'o>(&self, older: &RawMapSnapshot<'o>) -> RawMapChanges<'o, 'a> {
        RawMapChanges { raw: RawChanges::new(older.view, self.view), old: older.parts(), new: self.parts() }
    }
}

impl<'o, 'n> RawMapChanges<'o, 'n> {
    fn change(&self, c: RawChange<'o, 'n>) -> Result<RawMapChange<'o, 'n>, ReadError> {
        let (old, new) = match c.values {
            Values::Added(n) => (None, Some(self.new.value_bytes(n)?)),
            Values::Removed(o) => (Some(self.old.value_bytes(o)?), None),
            Values::Changed(o, n) => (Some(self.old.value_bytes(o)?), Some(self.new.value_bytes(n)?)),
        };
        Ok(RawMapChange { key: c.key.get().to_vec(), old, new })
    }
}

impl<'o, 'n> Iterator for RawMapChanges<'o, 'n> {
    type Item = Result<RawMapChange<'o, 'n>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.raw.next_change()?.and_then(|c| self.change(c));
        if r.is_err() {
            self.raw.done = true;
        }
        Some(r)
    }
}
