//! The writer's mirror of the tree: every node's keys and refs in the
//! writer's own memory (no pointer into shared memory), with the block each
//! node was last written to. A commit applies its changes in one batch,
//! copying exactly the nodes on the changed paths (their old blocks are
//! retired), then writes the copies bottom-up (docs/MAP.md, "A commit").
#![allow(unsafe_code)]

use crate::error::PublishError;
use crate::map::format::{
    class_of, prefix_of, ArchivedNode, BlockRef, Node, MAX_HEIGHT, MAX_KEYS, MIN_CLASS, MIN_KEYS,
};
use crate::map::pages::Pages;

/// One staged change, its value already written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// Insert or replace with the value in this block.
    Put(BlockRef),
    /// Remove the key (nothing if absent).
    Delete,
}

/// A node of the mirror.
#[derive(Debug)]
pub(crate) struct MemNode {
    /// What is (or will be) written: keys and refs (a branch's refs are its
    /// kids' blocks, filled in when they are written).
    node: Node,
    /// A branch's children, one per key.
    kids: Vec<MemNode>,
    /// The block holding `node`; `None` once changed (not written yet).
    block: Option<BlockRef>,
}

impl MemNode {
    fn leaf() -> Self {
        MemNode { node: Node { leaf: true, ..Node::default() }, kids: Vec::new(), block: None }
    }

    fn branch(kids: Vec<MemNode>) -> Self {
        let mut n = MemNode { node: Node::default(), kids, block: None };
        n.refresh();
        n
    }

    /// A branch's keys and refs from its kids.
    fn refresh(&mut self) {
        self.node.keys = self.kids.iter().map(|k| k.node.keys[0].clone()).collect();
        self.node.refs = self.kids.iter().map(|k| k.block.unwrap_or(BlockRef::NONE)).collect();
    }

    fn keys(&self) -> usize {
        self.node.keys.len()
    }
}

/// The whole tree as the writer sees it.
#[derive(Debug)]
pub(crate) struct Tree {
    root: Option<MemNode>,
    pub(crate) height: u32,
    pub(crate) len: u64,
}

impl Tree {
    pub(crate) fn empty() -> Self {
        Tree { root: None, height: 0, len: 0 }
    }

    /// Applies `ops` (sorted by key, each key once), handing every block the
    /// new tree no longer reaches to `retire`.
    pub(crate) fn apply(&mut self, ops: &[(Vec<u8>, Op)], retire: &mut dyn FnMut(BlockRef)) {
        if ops.is_empty() {
            return;
        }
        let (root, mut height) = match self.root.take() {
            Some(r) => (r, self.height),
            None => (MemNode::leaf(), 1),
        };
        let mut nodes = apply_node(root, ops, &mut self.len, retire);
        while nodes.len() > 1 {
            nodes = split(MemNode::branch(nodes));
            height += 1;
        }
        let Some(mut root) = nodes.pop() else {
            *self = Tree::empty();
            return;
        };
        while !root.node.leaf && root.kids.len() == 1 {
            if let Some(b) = root.block.take() {
                retire(b);
            }
            root = root.kids.pop().expect("one kid");
            height -= 1;
        }
        self.root = Some(root);
        self.height = height;
    }

    /// Calls `f` with every key, in order.
    pub(crate) fn for_each_key(&self, f: &mut dyn FnMut(&[u8])) {
        fn walk(n: &MemNode, f: &mut dyn FnMut(&[u8])) {
            if n.node.leaf {
                n.node.keys.iter().for_each(|k| f(k));
            } else {
                n.kids.iter().for_each(|k| walk(k, f));
            }
        }
        if let Some(root) = &self.root {
            walk(root, f);
        }
    }

    /// Writes every changed node (kids before parents) with `write`; the root's block.
    pub(crate) fn write_out(
        &mut self,
        write: &mut dyn FnMut(&Node) -> Result<BlockRef, PublishError>,
    ) -> Result<BlockRef, PublishError> {
        match &mut self.root {
            None => Ok(BlockRef::NONE),
            Some(root) => write_node(root, write),
        }
    }

    /// The tree whose root is `root` (`height` levels), read back from the
    /// pages segment by a writer taking over: every node validated with
    /// bytecheck and checked for shape and order; pushes the extent
    /// (offset, class) of every node and value block to `extents`.
    pub(crate) fn load(
        pages: &Pages,
        root: BlockRef,
        height: u32,
        limit: u64,
        extents: &mut Vec<(u64, u64)>,
    ) -> Result<Tree, String> {
        if height == 0 {
            return if root.len == 0 { Ok(Tree::empty()) } else { Err("a root node with height 0".into()) };
        }
        if height > MAX_HEIGHT {
            return Err(format!("height {height} above {MAX_HEIGHT}"));
        }
        let mut load = Load { pages, height, limit, extents, len: 0, budget: limit / MIN_CLASS };
        let node = load.node(root, 1)?;
        let len = load.len;
        Ok(Tree { root: Some(node), height, len })
    }
}

/// The state of one `Tree::load`.
struct Load<'a> {
    pages: &'a Pages,
    height: u32,
    limit: u64,
    extents: &'a mut Vec<(u64, u64)>,
    len: u64,
    /// Blocks left to visit: distinct blocks occupy 32 bytes at least, so a
    /// tree that needs more visits shares blocks (corrupt); without this, a
    /// node referenced many times over would make the walk exponential.
    budget: u64,
}

impl Load<'_> {
    fn block_ok(&self, r: BlockRef) -> Result<(), String> {
        if self.pages.in_bounds(r, self.limit) {
            Ok(())
        } else {
            Err(format!("block [{}, +{}) outside the pages in use ({})", r.offset, r.len, self.limit))
        }
    }

    fn node(&mut self, r: BlockRef, depth: u32) -> Result<MemNode, String> {
        self.budget = self.budget.checked_sub(1).ok_or("the tree reaches more blocks than fit the pages")?;
        self.block_ok(r)?;
        // SAFETY: `r` is reached from the current root; the only writer of the
        // pages is this process, which writes only unreachable blocks.
        let bytes = unsafe { self.pages.block(r, self.limit) }.ok_or("block outside the mapping")?;
        let archived = rkyv::access::<ArchivedNode, rkyv::rancor::BoxedError>(bytes)
            .map_err(|e| format!("node at {}: {e}", r.offset))?;
        let node: Node = rkyv::deserialize::<Node, rkyv::rancor::BoxedError>(archived)
            .map_err(|e| format!("node at {}: {e}", r.offset))?;
        check_shape(&node, depth == self.height).map_err(|e| format!("node at {}: {e}", r.offset))?;
        let prefixes_ok = node.prefixes.len() == node.keys.len()
            && node.keys.iter().zip(&node.prefixes).all(|(k, &p)| prefix_of(k) == p);
        if !prefixes_ok {
            return Err(format!("node at {}: prefixes that are not its keys'", r.offset));
        }
        self.extents.push((r.offset, class_of(r.len as u64)));
        if node.leaf {
            for &v in &node.refs {
                self.block_ok(v)?;
                self.extents.push((v.offset, class_of(v.len as u64)));
            }
            self.len += node.keys.len() as u64;
            return Ok(MemNode { node, kids: Vec::new(), block: Some(r) });
        }
        let mut kids = Vec::with_capacity(node.refs.len());
        for (i, &child) in node.refs.iter().enumerate() {
            let kid = self.node(child, depth + 1)?;
            if kid.node.keys[0] != node.keys[i] {
                return Err(format!("node at {}: key {i} is not its child's first key", r.offset));
            }
            kids.push(kid);
        }
        Ok(MemNode { node, kids, block: Some(r) })
    }
}

/// What a node must be: a leaf exactly at the bottom, as many refs as keys,
/// not empty, keys strictly increasing.
pub(crate) fn check_shape(node: &Node, bottom: bool) -> Result<(), String> {
    if node.leaf != bottom {
        return Err(if bottom { "a branch at the leaf level".into() } else { "a leaf above the leaf level".into() });
    }
    if node.keys.len() != node.refs.len() || node.keys.is_empty() {
        return Err(format!("{} keys and {} refs", node.keys.len(), node.refs.len()));
    }
    if node.keys.windows(2).any(|w| w[0] >= w[1]) {
        return Err("keys out of order".into());
    }
    Ok(())
}

fn write_node(
    n: &mut MemNode,
    write: &mut dyn FnMut(&Node) -> Result<BlockRef, PublishError>,
) -> Result<BlockRef, PublishError> {
    if let Some(b) = n.block {
        // Unchanged: so is everything below it.
        return Ok(b);
    }
    for i in 0..n.kids.len() {
        n.node.refs[i] = write_node(&mut n.kids[i], write)?;
    }
    // Only written nodes carry prefixes (the mirror's edits leave them stale).
    n.node.prefixes = n.node.keys.iter().map(|k| prefix_of(k)).collect();
    let b = write(&n.node)?;
    n.block = Some(b);
    Ok(b)
}

/// Applies `ops` (all within this node's key range) to `node`; returns what
/// replaces it: nothing (emptied), itself, or the pieces it was split into.
fn apply_node(
    mut node: MemNode,
    ops: &[(Vec<u8>, Op)],
    len: &mut u64,
    retire: &mut dyn FnMut(BlockRef),
) -> Vec<MemNode> {
    if ops.is_empty() {
        return vec![node];
    }
    if let Some(b) = node.block.take() {
        retire(b);
    }
    if node.node.leaf {
        apply_leaf(&mut node.node, ops, len, retire);
        return if node.node.keys.is_empty() { Vec::new() } else { split(node) };
    }
    let keys = std::mem::take(&mut node.node.keys);
    let old_kids = std::mem::take(&mut node.kids);
    let n = old_kids.len();
    let mut kids = Vec::with_capacity(n + 1);
    let mut rest = ops;
    for (i, kid) in old_kids.into_iter().enumerate() {
        // Kid i holds the keys below kid i + 1's first key (kid 0 also those
        // below its own first key).
        let cut = match keys.get(i + 1) {
            Some(next) => rest.partition_point(|(k, _)| k < next),
            None => rest.len(),
        };
        let (mine, after) = rest.split_at(cut);
        kids.extend(apply_node(kid, mine, len, retire));
        rest = after;
    }
    if kids.is_empty() {
        return Vec::new();
    }
    rebalance(&mut kids, retire);
    node.kids = kids;
    node.refresh();
    split(node)
}

/// Merges the sorted `ops` into a leaf's keys and value refs.
fn apply_leaf(leaf: &mut Node, ops: &[(Vec<u8>, Op)], len: &mut u64, retire: &mut dyn FnMut(BlockRef)) {
    let old_keys = std::mem::take(&mut leaf.keys);
    let old_refs = std::mem::take(&mut leaf.refs);
    let mut keys = Vec::with_capacity(old_keys.len() + ops.len());
    let mut refs = Vec::with_capacity(keys.capacity());
    let mut old = old_keys.into_iter().zip(old_refs).peekable();
    for (k, op) in ops {
        while let Some((ok, or)) = old.next_if(|(ok, _)| ok < k) {
            keys.push(ok);
            refs.push(or);
        }
        let existing = old.next_if(|(ok, _)| ok == k).map(|(_, r)| r);
        if let Some(r) = existing {
            retire(r);
        }
        match (existing.is_some(), op) {
            (_, Op::Put(r)) => {
                keys.push(k.clone());
                refs.push(*r);
                *len += u64::from(existing.is_none());
            }
            (true, Op::Delete) => *len -= 1,
            (false, Op::Delete) => {}
        }
    }
    for (ok, or) in old {
        keys.push(ok);
        refs.push(or);
    }
    leaf.keys = keys;
    leaf.refs = refs;
}

/// Merges underfull kids (below `MIN_KEYS`) with a neighbour, splitting the
/// pair again if it is too big, until every kid is full enough or alone.
fn rebalance(kids: &mut Vec<MemNode>, retire: &mut dyn FnMut(BlockRef)) {
    let mut i = 0;
    while i < kids.len() {
        if kids.len() > 1 && kids[i].keys() < MIN_KEYS {
            let a = if i + 1 < kids.len() { i } else { i - 1 };
            let right = kids.remove(a + 1);
            let left = kids.remove(a);
            for (j, part) in split(merge(left, right, retire)).into_iter().enumerate() {
                kids.insert(a + j, part);
            }
            // Look at the result again: a merge of two small nodes may still be small.
            i = a;
        } else {
            i += 1;
        }
    }
}

/// `right` appended to `left` (neighbours of one level).
fn merge(mut left: MemNode, right: MemNode, retire: &mut dyn FnMut(BlockRef)) -> MemNode {
    for b in [left.block.take(), right.block].into_iter().flatten() {
        retire(b);
    }
    left.node.keys.extend(right.node.keys);
    left.node.refs.extend(right.node.refs);
    left.kids.extend(right.kids);
    left
}

/// `node` cut into pieces of at most `MAX_KEYS` keys, of even sizes.
fn split(mut node: MemNode) -> Vec<MemNode> {
    let n = node.keys();
    if n <= MAX_KEYS {
        return vec![node];
    }
    let parts = n.div_ceil(MAX_KEYS);
    let mut out = Vec::with_capacity(parts);
    for p in (1..parts).rev() {
        let at = n * p / parts;
        let kids = if node.node.leaf { Vec::new() } else { node.kids.split_off(at) };
        let keys = node.node.keys.split_off(at);
        let refs = node.node.refs.split_off(at);
        out.push(MemNode { node: Node { leaf: node.node.leaf, prefixes: Vec::new(), keys, refs }, kids, block: None });
    }
    node.block = None;
    out.push(node);
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: u32, serial: u64) -> (Vec<u8>, Op) {
        (k.to_be_bytes().to_vec(), Op::Put(BlockRef { offset: 64, len: 8, serial }))
    }

    fn check(n: &MemNode, depth: u32, height: u32, root: bool) -> u64 {
        check_shape(&n.node, depth == height).unwrap();
        assert!(root || n.keys() >= MIN_KEYS || n.node.leaf && n.keys() >= 1);
        assert!(n.keys() <= MAX_KEYS);
        if n.node.leaf {
            return n.keys() as u64;
        }
        let mut total = 0;
        for (i, k) in n.kids.iter().enumerate() {
            assert_eq!(k.node.keys[0], n.node.keys[i]);
            total += check(k, depth + 1, height, false);
        }
        total
    }

    #[test]
    fn batches_split_merge_and_collapse() {
        let mut t = Tree::empty();
        let mut retired = 0;
        let ops: Vec<_> = (0..10_000).map(|k| put(k, 1)).collect();
        t.apply(&ops, &mut |_| retired += 1);
        assert_eq!(t.len, 10_000);
        assert!(t.height >= 3, "height {}", t.height);
        assert_eq!(check(t.root.as_ref().unwrap(), 1, t.height, true), 10_000);
        let dels: Vec<_> = (0..9_990u32).map(|k| (k.to_be_bytes().to_vec(), Op::Delete)).collect();
        t.apply(&dels, &mut |_| retired += 1);
        assert_eq!(t.len, 10);
        assert_eq!(t.height, 1, "collapsed to one leaf");
        assert_eq!(check(t.root.as_ref().unwrap(), 1, t.height, true), 10);
        let rest: Vec<_> = (9_990..10_000u32).map(|k| (k.to_be_bytes().to_vec(), Op::Delete)).collect();
        t.apply(&rest, &mut |_| {});
        assert!(t.root.is_none() && t.len == 0 && t.height == 0);
    }
}
