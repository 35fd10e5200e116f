//! rkyv's map layouts: the SwissTable behind `HashMap` and the B-tree behind
//! `BTreeMap`, walked with every offset checked.

use super::claims::Ptr;
use super::decode::{round_up, Decoder, Seg};
use super::{DecodeError, Value};
use crate::schema::{TypeDesc, TypeIndex};

/// Entries per B-tree node in rkyv's `ArchivedBTreeMap` (its default `E`).
pub(super) const BTREE_E: usize = 5;
/// Width of a SwissTable probe group (`MAX_GROUP_WIDTH`): the control bytes run
/// `cap.next_multiple_of(16) + 15` bytes.
pub(super) const GROUP_WIDTH: usize = 16;
/// A relative pointer with this offset is rkyv's "invalid" (null) pointer.
pub(super) const INVALID_REL: i32 = 1;

type Entries = Vec<(Value, Value)>;

/// Layout of `repr(C) { key: K, value: V }`: (value offset, size, align).
pub(super) fn entry_layout(k: &TypeDesc, v: &TypeDesc) -> (usize, usize, usize) {
    let align = k.align.max(v.align).max(1) as usize;
    let value_at = round_up(k.size as usize, v.align as usize);
    (value_at, round_up(value_at + v.size as usize, align), align)
}

impl<'s> Decoder<'s, '_> {
    /// rkyv's SwissTable: `ptr` (rel, to the control bytes), `len`, `cap`; bucket
    /// `i` is full when `ctrl[i] & 0x80 == 0` and lives at `ctrl - (i+1)·entry`.
    /// The buckets and control bytes are one claim.
    pub(super) fn hash_map(
        &mut self,
        t: &'s TypeDesc,
        k: TypeIndex,
        v: TypeIndex,
        at: usize,
    ) -> Result<Value, DecodeError> {
        let len = self.u32_at(at + 4, "hash map length")? as usize;
        let cap = self.u32_at(at + 8, "hash map capacity")? as usize;
        if len == 0 && cap == 0 {
            return Ok(Value::Map(Vec::new()));
        }
        if len >= cap {
            return self.fail(format!("{} at byte {at} has length {len} but capacity {cap} (must be larger)", t.name));
        }
        let (kt, vt) = (self.ty(k)?, self.ty(v)?);
        let (value_at, esize, ealign) = entry_layout(kt, vt);
        let controls = cap.next_multiple_of(GROUP_WIDTH) + GROUP_WIDTH - 1;
        let ctrl = self.ptr(at, at, &t.name)?;
        // At most 2^32 buckets of at most 2^32 bytes each: no overflow.
        let buckets_len = cap as u128 * esize as u128;
        let buckets = Ptr { field: ctrl.field, target: ctrl.target - buckets_len as i128 };
        let mut entries =
            self.claim(buckets, buckets_len + controls as u128, ealign as u32, &t.name, |d, buckets| {
                // Inside the claim, which fits the snapshot.
                let ctrl = buckets + cap * esize;
                d.charge(cap as u64)?;
                let control_bytes = d.slice(ctrl, controls, "hash map control bytes")?;
                let full: Vec<usize> = (0..cap).filter(|&i| control_bytes[i] & 0x80 == 0).collect();
                if full.len() != len {
                    return d.fail(format!("{} at byte {at} has length {len} but {} full buckets", t.name, full.len()));
                }
                // The first control bytes are repeated after the last bucket's, as
                // far as the control bytes go.
                for i in cap..(2 * cap).min(controls - cap) {
                    if control_bytes[i] != control_bytes[i - cap] {
                        return d.fail(format!(
                            "{} at byte {at}: control byte {i} ({:#04x}) does not repeat control byte {} ({:#04x})",
                            t.name,
                            control_bytes[i],
                            i - cap,
                            control_bytes[i - cap]
                        ));
                    }
                }
                let mut entries = Vec::with_capacity(len.min(1 << 16));
                for (n, i) in full.into_iter().enumerate() {
                    let e = ctrl - (i + 1) * esize;
                    let key = d.with(Seg::Key(n as u64), |d| d.value(k, e))?;
                    let value = d.with(Seg::Value(n as u64), |d| d.value(v, e + value_at))?;
                    entries.push((key, value));
                }
                Ok(entries)
            })?;
        // Bucket order is an accident of hashing: show keys sorted instead.
        entries.sort_by(|a, b| key_cmp(&a.0, &b.0));
        Ok(Value::Map(entries))
    }

    /// rkyv's B-tree: `root` (rel) and `len`; nodes of up to 5 entries, each a
    /// claim.
    pub(super) fn btree_map(
        &mut self,
        t: &'s TypeDesc,
        k: TypeIndex,
        v: TypeIndex,
        at: usize,
    ) -> Result<Value, DecodeError> {
        let len = self.u32_at(at + 4, "B-tree map length")? as usize;
        if len == 0 {
            return Ok(Value::Map(Vec::new()));
        }
        self.room_for(len as u64, &t.name)?;
        let (kt, vt) = (self.ty(k)?, self.ty(v)?);
        let node = NodeLayout::new(kt, vt);
        let root = self.ptr(at, at, &t.name)?;
        let mut count = 0;
        let entries = self.node(&Tree { t, l: &node, kv: (k, v), len }, root, &mut count)?;
        if count != len {
            return self.fail(format!("{} at byte {at} has length {len} but its nodes hold {count}", t.name));
        }
        Ok(Value::Map(entries))
    }

    /// The node `p` points to and its subtrees, entries in key order. rkyv
    /// checks an inner node's subtrees (lesser 0..5, then greater) before its
    /// own entries, and so claims in that order; `count` counts the entries
    /// checked so far, in that order.
    fn node(&mut self, tree: &Tree<'s, '_>, p: Ptr, count: &mut usize) -> Result<Entries, DecodeError> {
        self.enter(&tree.t.name)?;
        let r = self.node_here(tree, p, count);
        self.depth -= 1;
        r
    }

    fn node_here(&mut self, tree: &Tree<'s, '_>, p: Ptr, count: &mut usize) -> Result<Entries, DecodeError> {
        let (t, l) = (tree.t, tree.l);
        self.charge(1)?;
        // The part every node has (kind, keys, values) must be in range before
        // its kind says how large the node is.
        let at = self.check_claim(p, l.node_size as u128, l.node_align as u32, &t.name)?;
        match self.array::<1>(at, "B-tree node kind")?[0] {
            0 => self.claim(p, l.leaf_size as u128, l.outer_align as u32, "B-tree leaf node", |d, at| {
                let n = d.u32_at(at + l.leaf_len, "B-tree leaf length")? as usize;
                if n > BTREE_E {
                    return d.fail(format!("B-tree leaf node at byte {at} claims {n} entries (at most {BTREE_E})"));
                }
                d.node_entries(tree, at, n, count)
            }),
            1 => self.claim(p, l.inner_size as u128, l.outer_align as u32, "B-tree inner node", |d, at| {
                let mut subtrees = Vec::with_capacity(BTREE_E + 1);
                for i in 0..=BTREE_E {
                    let field = at + l.children + 4 * i;
                    let child = d.ptr(field, field, "B-tree child pointer")?;
                    subtrees.push(if child.target == field as i128 + i128::from(INVALID_REL) {
                        Vec::new()
                    } else {
                        d.node(tree, child, count)?
                    });
                }
                let mine = d.node_entries(tree, at, BTREE_E, count)?;
                // In key order: lesser[0], entry 0, …, lesser[4], entry 4, greater.
                let mut out = Vec::new();
                let mut mine = mine.into_iter();
                for sub in subtrees {
                    out.extend(sub);
                    out.extend(mine.next());
                }
                Ok(out)
            }),
            k => self.fail(format!("B-tree node at byte {at} has invalid kind {k} (expected 0 or 1)")),
        }
    }

    /// Entries `0..n` of the node at `at`.
    fn node_entries(
        &mut self,
        tree: &Tree<'s, '_>,
        at: usize,
        n: usize,
        count: &mut usize,
    ) -> Result<Entries, DecodeError> {
        let (l, (k, v)) = (tree.l, tree.kv);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            if *count >= tree.len {
                return self
                    .fail(format!("{} has more entries in its nodes than its length {}", tree.t.name, tree.len));
            }
            let c = *count as u64;
            *count += 1;
            let key = self.with(Seg::Key(c), |d| d.value(k, at + l.keys + i * l.key_size))?;
            let value = self.with(Seg::Value(c), |d| d.value(v, at + l.values + i * l.value_size))?;
            out.push((key, value));
        }
        Ok(out)
    }
}

/// One B-tree map being walked: its type, node layout, key and value types and
/// length.
struct Tree<'s, 'l> {
    t: &'s TypeDesc,
    l: &'l NodeLayout,
    kv: (TypeIndex, TypeIndex),
    len: usize,
}

/// Byte layout of rkyv's B-tree nodes for given key and value types:
/// `Node = repr(C) { kind: u8, keys: [K; 5], values: [V; 5] }`, then either
/// `len: u32` (leaf) or `lesser: [rel; 5], greater: rel` (inner).
pub(super) struct NodeLayout {
    /// The common part (`Node`): its size and alignment.
    pub(super) node_size: usize,
    pub(super) node_align: usize,
    pub(super) keys: usize,
    pub(super) key_size: usize,
    pub(super) values: usize,
    pub(super) value_size: usize,
    pub(super) leaf_len: usize,
    pub(super) leaf_size: usize,
    /// Alignment of the leaf and inner nodes.
    pub(super) outer_align: usize,
    pub(super) children: usize,
    pub(super) inner_size: usize,
}

impl NodeLayout {
    pub(super) fn new(k: &TypeDesc, v: &TypeDesc) -> Self {
        let node_align = k.align.max(v.align).max(1) as usize;
        let keys = round_up(1, k.align as usize);
        let values = round_up(keys + BTREE_E * k.size as usize, v.align as usize);
        let node_size = round_up(values + BTREE_E * v.size as usize, node_align);
        let outer_align = node_align.max(4);
        let leaf_len = round_up(node_size, 4);
        let children = leaf_len;
        NodeLayout {
            node_size,
            node_align,
            keys,
            key_size: k.size as usize,
            values,
            value_size: v.size as usize,
            leaf_len,
            leaf_size: round_up(leaf_len + 4, outer_align),
            outer_align,
            children,
            inner_size: round_up(children + 4 * (BTREE_E + 1), outer_align),
        }
    }
}

/// Orders map keys for display: natural order for scalars, else by debug text.
fn key_cmp(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::U64(x), Value::U64(y)) => x.cmp(y),
        (Value::I64(x), Value::I64(y)) => x.cmp(y),
        (Value::U128(x), Value::U128(y)) => x.cmp(y),
        (Value::I128(x), Value::I128(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Char(x), Value::Char(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}
