//! The encoder's maps: rkyv 0.8's SwissTable (`HashMap`, `HashSet`) and
//! B-tree (`BTreeMap`, `BTreeSet`), built as its serializers build them
//! (`ArchivedHashTable::serialize_from_iter`,
//! `ArchivedBTreeMap::serialize_from_ordered_iter`), so that typed readers
//! find every key. The layouts are those `maps.rs` decodes.
//!
//! A hash table places each key by its hash, which rkyv computes with its
//! `FxHasher64` over the *Rust* key's `Hash`. The encoder computes it for the
//! key types whose `Hash` it knows: integers (also `NonZero*`), `bool`,
//! `char`, `()`, `String` and `Box<str>`, and tuples, `Option`s and structs of
//! those (structs as `#[derive(Hash)]` hashes them: the fields in order).
//! Other key types (enums, vectors, floats…) are an error, not a table in
//! which lookups would miss.
//!
//! A B-tree needs its entries in the key type's order: the encoder sorts them
//! as `#[derive(Ord)]` and std order them (numbers by value, strings by
//! bytes, sequences, tuples and structs lexicographically, enum variants by
//! discriminant, `None` first).

use std::cmp::Ordering;

use super::encode::{Encoder, Res, Seg};
use super::encode_shape::kind_of;
use super::maps::{entry_layout, NodeLayout, BTREE_E, GROUP_WIDTH, INVALID_REL};
use super::{EncodeError, Fields, Value};
use crate::schema::{Kind, Primitive, TypeDesc, TypeIndex};

type Entries<'v> = [(&'v Value, &'v Value)];

/// rkyv's `capacity_from_len` with the std maps' load factor 7/8.
pub(super) fn capacity_for(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len * 8 / 7).max(len + 1)
    }
}

/// Writes the buckets and control bytes of a SwissTable holding `entries`;
/// returns the position of the control bytes (0 for an empty map, which
/// writes nothing).
pub(super) fn hash_table(
    enc: &mut Encoder<'_>,
    t: &TypeDesc,
    k: TypeIndex,
    v: TypeIndex,
    entries: &Entries<'_>,
) -> Result<usize, EncodeError> {
    let len = entries.len();
    if len == 0 {
        return Ok(0);
    }
    let mut hashes = Vec::with_capacity(len);
    for (i, (key, _)) in entries.iter().enumerate() {
        let mut h = FxHasher64::default();
        enc.with(Seg::Key(i as u64), |enc| hash_key(enc, k, key, &mut h))?;
        hashes.push(h.0);
    }
    check_unique(enc, t, k, entries)?;
    let cap = capacity_for(len);
    let probe_cap = cap.next_multiple_of(GROUP_WIDTH);
    let controls = probe_cap + GROUP_WIDTH - 1;
    let bucket_mask = controls.next_power_of_two() - 1;
    let mut ctrl = vec![0xFFu8; controls];
    let mut buckets: Vec<Option<usize>> = vec![None; cap];
    for (i, &hash) in hashes.iter().enumerate() {
        let h2 = (hash >> 57) as u8;
        let mut pos = (hash % cap as u64) as usize;
        let mut stride = 0;
        loop {
            // The first empty control byte of the probe group at `pos`.
            if let Some(bit) = ctrl[pos..pos + GROUP_WIDTH].iter().position(|&c| c == 0xFF) {
                let index = (pos + bit) % cap;
                ctrl[index] = h2;
                if index < controls - cap {
                    ctrl[cap + index] = h2;
                }
                buckets[index] = Some(i);
                break;
            }
            loop {
                stride += GROUP_WIDTH;
                pos = (pos + stride) & bucket_mask;
                if pos < probe_cap {
                    break;
                }
            }
        }
    }
    let (kt, vt) = (enc.ty(k)?, enc.ty(v)?);
    let (value_at, esize, ealign) = entry_layout(kt, vt);
    // The entries' targets in bucket order, then the buckets from the last.
    let mut parts = Vec::with_capacity(len);
    for &i in buckets.iter().flatten() {
        let (key, value) = entries[i];
        let kr = enc.with(Seg::Key(i as u64), |enc| enc.serialize(k, key))?;
        let vr = enc.with(Seg::Value(i as u64), |enc| enc.serialize(v, value))?;
        parts.push((kr, vr));
    }
    enc.pad_to(ealign as u32);
    let mut parts = parts.into_iter().rev();
    for bucket in buckets.iter().rev() {
        let pos = enc.out.len();
        let mut buf = vec![0u8; esize];
        if let (Some(i), Some((kr, vr))) = (bucket, bucket.and_then(|_| parts.next())) {
            let (key, value) = entries[*i];
            enc.resolve(k, key, kr, pos, &mut buf)?;
            enc.resolve(v, value, vr, pos + value_at, &mut buf[value_at..])?;
        }
        enc.out.extend_from_slice(&buf);
    }
    let at = enc.out.len();
    enc.out.extend_from_slice(&ctrl);
    Ok(at)
}

/// Writes the nodes of a B-tree holding `entries` (sorted here); returns the
/// position of the root node (0 for an empty map, which writes nothing).
pub(super) fn btree(
    enc: &mut Encoder<'_>,
    k: TypeIndex,
    v: TypeIndex,
    mut entries: Vec<(&Value, &Value)>,
) -> Result<usize, EncodeError> {
    let len = entries.len();
    if len == 0 {
        return Ok(0);
    }
    for (i, (key, _)) in entries.iter().enumerate() {
        enc.with(Seg::Key(i as u64), |enc| orderable(enc, k, key))?;
    }
    entries.sort_by(|a, b| key_cmp(enc, k, a.0, b.0));
    if let Some(w) = entries.windows(2).find(|w| key_cmp(enc, k, w[0].0, w[1].0) == Ordering::Equal) {
        return enc.fail(format!("the key {} appears twice", short(w[0].0)));
    }
    let layout = NodeLayout::new(enc.ty(k)?, enc.ty(v)?);
    let mut b = Builder { enc, k, v, l: &layout, entries: &entries };
    b.build()
}

/// rkyv's B-tree construction, step for step: leaves of up to 5 entries, the
/// last level filled first (`ll_entries`), inner nodes of exactly 5.
struct Builder<'e, 's, 'v> {
    enc: &'e mut Encoder<'s>,
    k: TypeIndex,
    v: TypeIndex,
    l: &'e NodeLayout,
    entries: &'e [(&'v Value, &'v Value)],
}

impl Builder<'_, '_, '_> {
    fn build(&mut self) -> Result<usize, EncodeError> {
        let len = self.entries.len();
        let height = 1 + len.ilog(BTREE_E + 1);
        let full_above = (BTREE_E + 1).pow(height - 1) - 1;
        let ll_entries = len - full_above;
        let mut next = 0..len;
        let mut open_inners: Vec<Vec<(usize, Option<usize>)>> = (0..height - 1).map(|_| Vec::new()).collect();
        let mut open_leaf: Vec<usize> = Vec::new();
        let mut child: Option<usize> = None;
        let mut leaf_entries = 0;
        while let Some(i) = next.next() {
            open_leaf.push(i);
            leaf_entries += 1;
            if leaf_entries == ll_entries || open_leaf.len() == BTREE_E {
                child = Some(self.close_leaf(&open_leaf)?);
                open_leaf.clear();
                if leaf_entries == ll_entries {
                    if let Some(mut inner) = open_inners.pop() {
                        while inner.len() < BTREE_E {
                            let Some(i) = next.next() else { break };
                            inner.push((i, child.take()));
                        }
                        child = Some(self.close_inner(&inner, child)?);
                    }
                }
                let mut popped = 0;
                while let Some(last) = open_inners.last_mut() {
                    if last.len() == BTREE_E {
                        let full = std::mem::take(last);
                        child = Some(self.close_inner(&full, child)?);
                        open_inners.pop();
                        popped += 1;
                    } else {
                        let Some(i) = next.next() else {
                            return self.enc.fail("internal error: the B-tree ran out of entries");
                        };
                        last.push((i, child.take()));
                        open_inners.extend((0..popped).map(|_| Vec::new()));
                        break;
                    }
                }
            }
        }
        if !open_leaf.is_empty() {
            child = Some(self.close_leaf(&open_leaf)?);
        }
        while let Some(inner) = open_inners.pop() {
            child = Some(self.close_inner(&inner, child)?);
        }
        match child {
            Some(root) => Ok(root),
            None => self.enc.fail("internal error: a B-tree without a root"),
        }
    }

    /// The targets of the entries `items`, in order.
    fn serialize_entries(&mut self, items: impl Iterator<Item = usize>) -> Result<Vec<(usize, Res, Res)>, EncodeError> {
        let (k, v) = (self.k, self.v);
        let mut out = Vec::new();
        for i in items {
            let (key, value) = self.entries[i];
            let kr = self.enc.with(Seg::Key(i as u64), |enc| enc.serialize(k, key))?;
            let vr = self.enc.with(Seg::Value(i as u64), |enc| enc.serialize(v, value))?;
            out.push((i, kr, vr));
        }
        Ok(out)
    }

    /// Keys and values of a node at `pos` into `buf`.
    fn resolve_entries(&self, parts: Vec<(usize, Res, Res)>, pos: usize, buf: &mut [u8]) -> Result<(), EncodeError> {
        let l = self.l;
        for (slot, (i, kr, vr)) in parts.into_iter().enumerate() {
            let (key, value) = self.entries[i];
            let ka = l.keys + slot * l.key_size;
            let va = l.values + slot * l.value_size;
            self.enc.resolve(self.k, key, kr, pos + ka, &mut buf[ka..])?;
            self.enc.resolve(self.v, value, vr, pos + va, &mut buf[va..])?;
        }
        Ok(())
    }

    fn close_leaf(&mut self, items: &[usize]) -> Result<usize, EncodeError> {
        let parts = self.serialize_entries(items.iter().copied())?;
        let l = self.l;
        let pos = self.enc.pad_to(l.outer_align as u32);
        let mut buf = vec![0u8; l.leaf_size];
        buf[0] = 0;
        buf[l.leaf_len..l.leaf_len + 4].copy_from_slice(&(items.len() as u32).to_le_bytes());
        self.resolve_entries(parts, pos, &mut buf)?;
        self.enc.out.extend_from_slice(&buf);
        Ok(pos)
    }

    fn close_inner(&mut self, items: &[(usize, Option<usize>)], greater: Option<usize>) -> Result<usize, EncodeError> {
        let parts = self.serialize_entries(items.iter().map(|&(i, _)| i))?;
        let l = self.l;
        let pos = self.enc.pad_to(l.outer_align as u32);
        let mut buf = vec![0u8; l.inner_size];
        buf[0] = 1;
        self.resolve_entries(parts, pos, &mut buf)?;
        let lessers = items.iter().map(|&(_, c)| c);
        for (slot, c) in lessers.chain([greater]).enumerate() {
            let at = l.children + 4 * slot;
            match c {
                Some(c) => self.enc.rel(&mut buf, at, pos, c)?,
                None => buf[at..at + 4].copy_from_slice(&INVALID_REL.to_le_bytes()),
            }
        }
        self.enc.out.extend_from_slice(&buf);
        Ok(pos)
    }
}

/// rkyv's `FxHasher64` (its `hash.rs`), with the `Hasher` methods std's
/// `Hash` impls call.
#[derive(Default)]
struct FxHasher64(u64);

impl FxHasher64 {
    fn word(&mut self, word: u64) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        let mut at = 0;
        if rest.len() & 4 != 0 {
            self.word(u32::from_le_bytes(rest[at..at + 4].try_into().unwrap_or_default()).into());
            at += 4;
        }
        if rest.len() & 2 != 0 {
            self.word(u16::from_le_bytes(rest[at..at + 2].try_into().unwrap_or_default()).into());
            at += 2;
        }
        if rest.len() & 1 != 0 {
            self.word(rest[at].into());
        }
    }

    fn u128(&mut self, n: u128) {
        self.word(n as u64);
        self.word((n >> 64) as u64);
    }
}

/// Feeds `key` to `h` as the Rust key type's `Hash` would.
fn hash_key(enc: &Encoder<'_>, idx: TypeIndex, key: &Value, h: &mut FxHasher64) -> Result<(), EncodeError> {
    let t = enc.ty(idx)?;
    let int = |v: &Value| -> Option<i128> {
        match v {
            Value::U64(n) => Some((*n).into()),
            Value::I64(n) => Some((*n).into()),
            Value::U128(n) => Some(*n as i128),
            Value::I128(n) => Some(*n),
            _ => None,
        }
    };
    match (&t.kind, key) {
        (Kind::Primitive(Primitive::Unit), _) => {}
        (Kind::Primitive(Primitive::Bool), Value::Bool(b)) => h.word(u64::from(*b)),
        (Kind::Primitive(Primitive::Char), Value::Char(c)) => h.word(u32::from(*c).into()),
        (Kind::Primitive(Primitive::Char), Value::String(s)) => {
            h.word(s.chars().next().map_or(0, u32::from).into());
        }
        (Kind::Primitive(p), v) if int(v).is_some() => {
            let n = int(v).unwrap_or_default();
            // The `write_*` call of each integer's `Hash` (signed ones pass
            // through their unsigned twin; rkyv's `write_isize` and
            // `write_usize` use the 32-bit archived width, sign-extended).
            match p {
                Primitive::U8 | Primitive::I8 => h.word(u64::from(n as u8)),
                Primitive::U16 | Primitive::I16 => h.word(u64::from(n as u16)),
                Primitive::U32 | Primitive::I32 | Primitive::Usize => h.word(u64::from(n as u32)),
                Primitive::U64 | Primitive::I64 => h.word(n as u64),
                Primitive::Isize => h.word(n as i32 as i64 as u64),
                Primitive::U128 | Primitive::I128 => h.u128(match key {
                    Value::U128(x) => *x,
                    _ => n as u128,
                }),
                _ => return enc.fail(format!("expected a {} key, found {}", t.name, kind_of(v))),
            }
        }
        (Kind::String, Value::String(s)) | (Kind::Vec(_), Value::String(s)) => {
            // `str`'s `Hash`: `write(bytes)` then `write_u8(0xff)`.
            h.bytes(s.as_bytes());
            h.word(0xFF);
        }
        (Kind::Tuple(fields), Value::Tuple(items) | Value::Seq(items)) if fields.len() == items.len() => {
            for (f, item) in fields.iter().zip(items) {
                hash_key(enc, f.ty, item, h)?;
            }
        }
        (Kind::Option(e), Value::Option(o)) => {
            // `#[derive(Hash)]`: the discriminant as an `isize`, then the payload.
            h.word(u64::from(o.is_some()));
            if let Some(x) = o {
                hash_key(enc, *e, x, h)?;
            }
        }
        (Kind::Struct { .. }, Value::Struct { .. }) if std_octets(key).is_some() => {
            // `Ipv4Addr`/`Ipv6Addr` hash their octets as one native-endian
            // `u32`/`u128` (std's `Hash` impls).
            let octets = std_octets(key).unwrap_or_default();
            let mut word = [0u8; 16];
            word[..octets.len()].copy_from_slice(&octets);
            if octets.len() == 4 {
                h.word(u32::from_le_bytes([word[0], word[1], word[2], word[3]]).into());
            } else {
                h.u128(u128::from_le_bytes(word));
            }
        }
        (Kind::Enum { variants, .. }, Value::Enum { variant, fields: given, .. }) => {
            // `#[derive(Hash)]`: the discriminant (when there are two
            // variants or more), then the fields.
            let Some(var) = variants.iter().find(|v| &v.name == variant) else {
                return enc.fail(format!("{} has no variant {variant:?}", t.name));
            };
            if variants.len() > 1 {
                h.word(var.discriminant);
            }
            let tys: Vec<TypeIndex> = var.fields.iter().map(|f| f.ty).collect();
            hash_fields(enc, &t.name, &var.fields, &tys, given, h)?;
        }
        (Kind::Struct { fields, .. }, Value::Struct { fields: given, .. }) => {
            let tys: Vec<TypeIndex> = fields.iter().map(|f| f.ty).collect();
            hash_fields(enc, &t.name, fields, &tys, given, h)?;
        }
        (
            Kind::Primitive(_)
            | Kind::String
            | Kind::Tuple(_)
            | Kind::Option(_)
            | Kind::Struct { .. }
            | Kind::Enum { .. },
            v,
        ) => {
            return enc.fail(format!("expected a {} key, found {}", t.name, kind_of(v)));
        }
        _ => {
            return enc.fail(format!(
                "hash map keys of type {} are not supported by the encoder yet (its hash is not known: \
                 integers, bool, char, strings, addresses and tuples, options, structs and enums of them are)",
                t.name
            ))
        }
    }
    Ok(())
}

/// The octets of an `Ipv4Addr` / `Ipv6Addr` value.
fn std_octets(v: &Value) -> Option<Vec<u8>> {
    let Value::Struct { name, fields: Fields::Named(fields) } = v else { return None };
    let want = match name.as_str() {
        "Ipv4Addr" => 4,
        "Ipv6Addr" => 16,
        _ => return None,
    };
    let [(field, Value::Seq(items))] = fields.as_slice() else { return None };
    let octets: Option<Vec<u8>> =
        items.iter().map(|i| if let Value::U64(b) = i { u8::try_from(*b).ok() } else { None }).collect();
    octets.filter(|o| field == "octets" && o.len() == want)
}

/// The fields of a struct or variant, hashed in order.
fn hash_fields(
    enc: &Encoder<'_>,
    owner: &str,
    fields: &[crate::schema::Field],
    tys: &[TypeIndex],
    given: &Fields,
    h: &mut FxHasher64,
) -> Result<(), EncodeError> {
    let items: Vec<&Value> = match given {
        Fields::Unit => Vec::new(),
        Fields::Tuple(items) => items.iter().collect(),
        Fields::Named(named) => {
            let mut out = Vec::new();
            for f in fields {
                match named.iter().find(|(n, _)| *n == f.name) {
                    Some((_, v)) => out.push(v),
                    None => return enc.fail(format!("missing field {:?} of {owner}", f.name)),
                }
            }
            out
        }
    };
    if items.len() != tys.len() {
        return enc.fail(format!("{owner} has {} fields, found {}", tys.len(), items.len()));
    }
    for (ty, item) in tys.iter().zip(items) {
        hash_key(enc, *ty, item, h)?;
    }
    Ok(())
}

/// Hash-table keys must be distinct (a typed reader would see one of two).
fn check_unique(enc: &Encoder<'_>, t: &TypeDesc, k: TypeIndex, entries: &Entries<'_>) -> Result<(), EncodeError> {
    let mut keys: Vec<&Value> = entries.iter().map(|(key, _)| *key).collect();
    keys.sort_by(|a, b| key_cmp(enc, k, a, b));
    if let Some(w) = keys.windows(2).find(|w| key_cmp(enc, k, w[0], w[1]) == Ordering::Equal) {
        return enc.fail(format!("the key {} appears twice in {}", short(w[0]), t.name));
    }
    Ok(())
}

/// Fails for key types with no total order the encoder knows (floats).
fn orderable(enc: &Encoder<'_>, idx: TypeIndex, key: &Value) -> Result<(), EncodeError> {
    match key {
        Value::F32(_) | Value::F64(_) => {
            let name = enc.ty(idx).map(|t| t.name.clone()).unwrap_or_default();
            enc.fail(format!("B-tree keys of type {name} (floats) are not supported by the encoder"))
        }
        _ => Ok(()),
    }
}

/// The order of the Rust key type (see the module docs); enum variants by the
/// discriminant the schema gives them.
fn key_cmp(enc: &Encoder<'_>, idx: TypeIndex, a: &Value, b: &Value) -> Ordering {
    let t = enc.doc.types.get(idx as usize);
    let elem = |i: usize| -> Option<TypeIndex> {
        match t.map(|t| &t.kind) {
            Some(Kind::Vec(e) | Kind::Array(e, _) | Kind::Option(e) | Kind::Box(e)) => Some(*e),
            Some(Kind::Tuple(fields) | Kind::Struct { fields, .. }) => fields.get(i).map(|f| f.ty),
            _ => None,
        }
    };
    let seq = |x: &[Value], y: &[Value]| -> Ordering {
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            let o = key_cmp(enc, elem(i).unwrap_or(idx), p, q);
            if o != Ordering::Equal {
                return o;
            }
        }
        x.len().cmp(&y.len())
    };
    let int = |v: &Value| -> Option<i128> {
        match v {
            Value::U64(n) => Some((*n).into()),
            Value::I64(n) => Some((*n).into()),
            Value::I128(n) => Some(*n),
            Value::U128(n) => i128::try_from(*n).ok(),
            _ => None,
        }
    };
    match (a, b) {
        (Value::U128(x), Value::U128(y)) => x.cmp(y),
        (x, y) if int(x).is_some() && int(y).is_some() => int(x).cmp(&int(y)),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Char(x), Value::Char(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::F32(x), Value::F32(y)) => x.total_cmp(y),
        (Value::F64(x), Value::F64(y)) => x.total_cmp(y),
        (Value::Seq(x) | Value::Tuple(x) | Value::Set(x), Value::Seq(y) | Value::Tuple(y) | Value::Set(y)) => seq(x, y),
        (Value::Option(x), Value::Option(y)) => match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(p), Some(q)) => key_cmp(enc, elem(0).unwrap_or(idx), p, q),
        },
        (Value::Struct { fields: x, .. }, Value::Struct { fields: y, .. }) => fields_cmp(enc, t, x, y),
        (Value::Enum { variant: vx, fields: x, .. }, Value::Enum { variant: vy, fields: y, .. }) => {
            let Some(Kind::Enum { variants, .. }) = t.map(|t| &t.kind) else {
                return vx.cmp(vy);
            };
            let find = |n: &str| variants.iter().find(|v| v.name == n);
            match (find(vx), find(vy)) {
                (Some(p), Some(q)) if p.name == q.name => {
                    let tys: Vec<TypeIndex> = p.fields.iter().map(|f| f.ty).collect();
                    fields_cmp_with(enc, &tys, x, y)
                }
                (Some(p), Some(q)) => p.discriminant.cmp(&q.discriminant),
                _ => vx.cmp(vy),
            }
        }
        // Of two kinds: no order, but a stable one (the encoder fails on them
        // later anyway).
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

fn fields_cmp(enc: &Encoder<'_>, t: Option<&TypeDesc>, x: &Fields, y: &Fields) -> Ordering {
    let tys: Vec<TypeIndex> = match t.map(|t| &t.kind) {
        Some(Kind::Struct { fields, .. }) => fields.iter().map(|f| f.ty).collect(),
        _ => Vec::new(),
    };
    fields_cmp_with(enc, &tys, x, y)
}

fn fields_cmp_with(enc: &Encoder<'_>, tys: &[TypeIndex], x: &Fields, y: &Fields) -> Ordering {
    let items = |f: &Fields| -> Vec<Value> {
        match f {
            Fields::Unit => Vec::new(),
            Fields::Tuple(items) => items.clone(),
            Fields::Named(named) => named.iter().map(|(_, v)| v.clone()).collect(),
        }
    };
    let (x, y) = (items(x), items(y));
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let o = key_cmp(enc, tys.get(i).copied().unwrap_or(u32::MAX), p, q);
        if o != Ordering::Equal {
            return o;
        }
    }
    x.len().cmp(&y.len())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}
