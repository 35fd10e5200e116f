//! rkyv's map layouts: the SwissTable behind `HashMap` and the B-tree behind
//! `BTreeMap`, walked with every offset checked.

use super::decode::{round_up, Decoder, Seg};
use super::{DecodeError, Value};
use crate::schema::{TypeDesc, TypeIndex};

/// Entries per B-tree node in rkyv's `ArchivedBTreeMap` (its default `E`).
const BTREE_E: usize = 5;
/// Width of a SwissTable probe group (`MAX_GROUP_WIDTH`): the control bytes run
/// `cap.next_multiple_of(16) + 15` bytes.
const GROUP_WIDTH: usize = 16;
/// A relative pointer with this offset is rkyv's "invalid" (null) pointer.
const INVALID_REL: i32 = 1;

type Entries = Vec<(Value, Value)>;

/// Layout of `repr(C) { key: K, value: V }`: (value offset, size, align).
fn entry_layout(k: &TypeDesc, v: &TypeDesc) -> (usize, usize, usize) {
    let align = k.align.max(v.align).max(1) as usize;
    let value_at = round_up(k.size as usize, v.align as usize);
    (value_at, round_up(value_at + v.size as usize, align), align)
}

impl<'s> Decoder<'s, '_> {
    /// rkyv's SwissTable: `ptr` (rel, to the control bytes), `len`, `cap`; bucket
    /// `i` is full when `ctrl[i] & 0x80 == 0` and lives at `ctrl - (i+1)·entry`.
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
        let ctrl = self.rel(at, at, controls as u128, 1, &t.name)?;
        let Some(buckets) = cap.checked_mul(esize).and_then(|n| ctrl.checked_sub(n)) else {
            return self.fail(format!(
                "the {cap} buckets of {} before its control bytes at byte {ctrl} start before the snapshot",
                t.name
            ));
        };
        if buckets % ealign != 0 {
            return self.fail(format!("the buckets of {} at byte {buckets} are not aligned to {ealign}", t.name));
        }
        self.charge(cap as u64)?;
        let control_bytes = self.slice(ctrl, cap, "hash map control bytes")?;
        let full: Vec<usize> = (0..cap).filter(|&i| control_bytes[i] & 0x80 == 0).collect();
        if full.len() != len {
            return self.fail(format!("{} at byte {at} has length {len} but {} full buckets", t.name, full.len()));
        }
        let mut entries = Vec::with_capacity(len.min(1 << 16));
        for (n, i) in full.into_iter().enumerate() {
            let e = ctrl - (i + 1) * esize;
            let key = self.with(Seg::Key(n as u64), |d| d.value(k, e))?;
            let value = self.with(Seg::Value(n as u64), |d| d.value(v, e + value_at))?;
            entries.push((key, value));
        }
        // Bucket order is an accident of hashing: show keys sorted instead.
        entries.sort_by(|a, b| key_cmp(&a.0, &b.0));
        Ok(Value::Map(entries))
    }

    /// rkyv's B-tree: `root` (rel) and `len`; nodes of up to 5 entries.
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
        let root = self.rel(at, at, 1, 1, &t.name)?;
        let mut entries = Vec::with_capacity(len.min(1 << 16));
        let depth = self.depth;
        let r = self.node(t, &node, (k, v), root, &mut entries, len);
        // A failed walk leaves the depth of the level it failed at.
        self.depth = depth;
        r?;
        if entries.len() != len {
            return self.fail(format!("{} at byte {at} has length {len} but its nodes hold {}", t.name, entries.len()));
        }
        Ok(Value::Map(entries))
    }

    fn node(
        &mut self,
        t: &'s TypeDesc,
        l: &NodeLayout,
        kv: (TypeIndex, TypeIndex),
        at: usize,
        out: &mut Entries,
        len: usize,
    ) -> Result<(), DecodeError> {
        self.enter(&t.name)?;
        self.charge(1)?;
        let kind = self.array::<1>(at, "B-tree node kind")?[0];
        let entry = |d: &mut Self, i: usize, out: &mut Entries| -> Result<(), DecodeError> {
            if out.len() >= len {
                return d.fail(format!("{} has more entries in its nodes than its length {len}", t.name));
            }
            let n = out.len() as u64;
            let key = d.with(Seg::Key(n), |d| d.value(kv.0, at + l.keys + i * l.key_size))?;
            let value = d.with(Seg::Value(n), |d| d.value(kv.1, at + l.values + i * l.value_size))?;
            out.push((key, value));
            Ok(())
        };
        match kind {
            0 => {
                self.slice(at, l.leaf_size, "B-tree leaf node")?;
                if at % l.leaf_align != 0 {
                    return self.fail(format!("B-tree leaf node at byte {at} is not aligned to {}", l.leaf_align));
                }
                let n = self.u32_at(at + l.leaf_len, "B-tree leaf length")? as usize;
                if n > BTREE_E {
                    return self.fail(format!("B-tree leaf node at byte {at} claims {n} entries (at most {BTREE_E})"));
                }
                for i in 0..n {
                    entry(self, i, out)?;
                }
            }
            1 => {
                self.slice(at, l.inner_size, "B-tree inner node")?;
                if at % l.leaf_align != 0 {
                    return self.fail(format!("B-tree inner node at byte {at} is not aligned to {}", l.leaf_align));
                }
                for i in 0..=BTREE_E {
                    let field = at + l.children + 4 * i;
                    let off = i32::from_le_bytes(self.array(field, "B-tree child pointer")?);
                    if off != INVALID_REL {
                        let child = self.rel(field, field, 1, 1, &t.name)?;
                        self.node(t, l, kv, child, out, len)?;
                    }
                    if i < BTREE_E {
                        entry(self, i, out)?;
                    }
                }
            }
            k => return self.fail(format!("B-tree node at byte {at} has invalid kind {k} (expected 0 or 1)")),
        }
        self.depth -= 1;
        Ok(())
    }
}

/// Byte layout of rkyv's B-tree nodes for given key and value types:
/// `Node = repr(C) { kind: u8, keys: [K; 5], values: [V; 5] }`, then either
/// `len: u32` (leaf) or `lesser: [rel; 5], greater: rel` (inner).
struct NodeLayout {
    keys: usize,
    key_size: usize,
    values: usize,
    value_size: usize,
    leaf_len: usize,
    leaf_size: usize,
    leaf_align: usize,
    children: usize,
    inner_size: usize,
}

impl NodeLayout {
    fn new(k: &TypeDesc, v: &TypeDesc) -> Self {
        let node_align = k.align.max(v.align).max(1) as usize;
        let keys = round_up(1, k.align as usize);
        let values = round_up(keys + BTREE_E * k.size as usize, v.align as usize);
        let node_size = round_up(values + BTREE_E * v.size as usize, node_align);
        let outer_align = node_align.max(4);
        let leaf_len = round_up(node_size, 4);
        let children = leaf_len;
        NodeLayout {
            keys,
            key_size: k.size as usize,
            values,
            value_size: v.size as usize,
            leaf_len,
            leaf_size: round_up(leaf_len + 4, outer_align),
            leaf_align: outer_align,
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
