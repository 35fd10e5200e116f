//! Schema-driven decoder: walks a snapshot's bytes with the [`SchemaDoc`] stored
//! in the object, with no Rust type compiled in.
//!
//! The bytes come from shared memory and are untrusted. Every offset and length
//! is bounds-checked against the snapshot, every relative pointer target must be
//! inside it and aligned for its type, nesting depth is bounded and so is the
//! number of decoded values (a malicious snapshot can make pointers share
//! targets, which would otherwise blow up exponentially). Errors name the byte
//! position and the path of the value being decoded; nothing here panics.
//!
//! Archived layouts follow rkyv 0.8 with this crate's format (little-endian,
//! aligned, 32-bit relative pointers and lengths); see the `Kind` docs.

use std::fmt;

use shmstate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex, Variant};

/// Entries per B-tree node in rkyv's `ArchivedBTreeMap` (its default `E`).
const BTREE_E: usize = 5;
/// Width of a SwissTable probe group (`MAX_GROUP_WIDTH`): the control bytes run
/// `cap.next_multiple_of(16) + 15` bytes.
const GROUP_WIDTH: usize = 16;
/// A relative pointer with this offset is rkyv's "invalid" (null) pointer.
const INVALID_REL: i32 = 1;

/// A decoded value, still carrying the shape needed to render it either as
/// Rust-debug-like text or as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'s> {
    /// `()`.
    Unit,
    /// `bool`.
    Bool(bool),
    /// Any unsigned integer.
    U(u128),
    /// Any signed integer.
    I(i128),
    /// `f32`.
    F32(f32),
    /// `f64`.
    F64(f64),
    /// `char`.
    Char(char),
    /// `String`.
    Str(String),
    /// `Vec<T>`, `Box<[T]>`, `[T; N]`.
    Seq(Vec<Val<'s>>),
    /// `(A, B, …)`.
    Tuple(Vec<Val<'s>>),
    /// `Option<T>`.
    Opt(Option<Box<Val<'s>>>),
    /// `Box<T>`.
    Boxed(Box<Val<'s>>),
    /// A struct.
    Struct {
        /// Type name.
        name: &'s str,
        /// Fields.
        fields: Fields<'s>,
    },
    /// An enum value.
    Variant {
        /// Enum type name.
        ty: &'s str,
        /// Variant name.
        name: &'s str,
        /// Fields.
        fields: Fields<'s>,
    },
    /// `HashMap` / `BTreeMap` entries (a `HashMap`'s in bucket order).
    Map {
        /// Key-value pairs.
        entries: Vec<(Val<'s>, Val<'s>)>,
        /// Whether every key renders as a JSON string (string, char, integer,
        /// bool, unit-only enum, or a newtype/box around one).
        string_keys: bool,
    },
}

/// The fields of a struct or variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields<'s> {
    /// No fields.
    Unit,
    /// Positional fields.
    Tuple(Vec<Val<'s>>),
    /// Named fields.
    Named(Vec<(&'s str, Val<'s>)>),
}

/// Limits for one decode.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Maximum nesting depth (values inside values, pointer hops included).
    pub max_depth: usize,
    /// Maximum number of values decoded (hash-table buckets count too).
    pub max_values: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 256, max_values: 20_000_000 }
    }
}

/// Why a snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What is wrong, with byte positions.
    pub what: String,
    /// Where in the value (`.hosts[3].name`), empty for the root.
    pub path: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "at {}: {}", self.path, self.what)
        }
    }
}

impl std::error::Error for DecodeError {}

#[derive(Debug, Clone, Copy)]
enum Seg<'s> {
    Field(&'s str),
    Index(u64),
    Variant(&'s str),
    Key(u64),
    Value(u64),
    Some,
    Deref,
}

/// Decodes the root value of a snapshot (`bytes`: the whole serialized buffer;
/// rkyv puts the root at the end).
pub fn decode<'s>(doc: &'s SchemaDoc, bytes: &[u8], limits: Limits) -> Result<Val<'s>, DecodeError> {
    let mut d = Decoder { doc, bytes, limits, values: 0, depth: 0, path: Vec::new() };
    let root = d.ty(doc.root)?;
    let size = root.size as usize;
    let Some(at) = bytes.len().checked_sub(size) else {
        return d.fail(format!(
            "the snapshot has {} bytes, too few for its root {} ({size} bytes)",
            bytes.len(),
            root.name
        ));
    };
    d.value(doc.root, at)
}

struct Decoder<'s, 'b> {
    doc: &'s SchemaDoc,
    bytes: &'b [u8],
    limits: Limits,
    values: u64,
    depth: usize,
    path: Vec<Seg<'s>>,
}

fn round_up(x: usize, align: usize) -> usize {
    x.next_multiple_of(align.max(1))
}

impl<'s> Decoder<'s, '_> {
    fn fail<T>(&self, what: String) -> Result<T, DecodeError> {
        let mut path = String::new();
        for seg in &self.path {
            match seg {
                Seg::Field(n) => {
                    path.push('.');
                    path.push_str(n);
                }
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
                Seg::Variant(v) => path.push_str(&format!("::{v}")),
                Seg::Key(i) => path.push_str(&format!("<key {i}>")),
                Seg::Value(i) => path.push_str(&format!("<value {i}>")),
                Seg::Some => path.push_str("<Some>"),
                Seg::Deref => path.push_str("<*>"),
            }
        }
        Err(DecodeError { what, path })
    }

    fn ty(&self, idx: TypeIndex) -> Result<&'s TypeDesc, DecodeError> {
        match self.doc.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => self.fail(format!("the schema refers to type {idx}, past its {} types", self.doc.types.len())),
        }
    }

    /// `len` bytes at `at`, or a precise error naming `what`.
    fn slice(&self, at: usize, len: usize, what: &str) -> Result<&[u8], DecodeError> {
        match at.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(&self.bytes[at..end]),
            _ => self.fail(format!(
                "{what} at bytes {at}..{} lies outside the snapshot ({} bytes)",
                at as u128 + len as u128,
                self.bytes.len()
            )),
        }
    }

    fn array<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.slice(at, N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32_at(&self, at: usize, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(at, what)?))
    }

    /// Follows the relative pointer stored at `field` (an `i32` counted from
    /// `base`) to a target that must hold `len` bytes aligned to `align`.
    fn rel(&self, field: usize, base: usize, len: u128, align: u32, what: &str) -> Result<usize, DecodeError> {
        let off = i32::from_le_bytes(self.array(field, what)?);
        let target = base as i128 + i128::from(off);
        if target < 0 || target as u128 + len > self.bytes.len() as u128 {
            return self.fail(format!(
                "relative pointer of {what} at byte {field} points outside the snapshot \
                 (to bytes {target}..{}, snapshot is {} bytes)",
                target + len as i128,
                self.bytes.len()
            ));
        }
        let target = target as usize;
        if target % align.max(1) as usize != 0 {
            return self.fail(format!(
                "relative pointer of {what} at byte {field} points to byte {target}, \
                 which is not aligned to {align}"
            ));
        }
        Ok(target)
    }

    fn charge(&mut self, n: u64) -> Result<(), DecodeError> {
        self.values = self.values.saturating_add(n);
        if self.values > self.limits.max_values {
            return self
                .fail(format!("the snapshot holds more than {} values (raise --max-values)", self.limits.max_values));
        }
        Ok(())
    }

    /// Fails early when `n` more values cannot fit in the budget (without
    /// charging them: each is charged when decoded).
    fn room_for(&self, n: u64, what: &str) -> Result<(), DecodeError> {
        if self.values.saturating_add(n) > self.limits.max_values {
            return self.fail(format!(
                "decoding {what} ({n} elements) would pass the limit of {} values (raise --max-values)",
                self.limits.max_values
            ));
        }
        Ok(())
    }

    fn with<T>(&mut self, seg: Seg<'s>, f: impl FnOnce(&mut Self) -> Result<T, DecodeError>) -> Result<T, DecodeError> {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    /// Decodes the value of type `idx` stored at byte `at`.
    fn value(&mut self, idx: TypeIndex, at: usize) -> Result<Val<'s>, DecodeError> {
        if self.depth >= self.limits.max_depth {
            return self.fail(format!("values nest deeper than {} levels (raise --max-depth)", self.limits.max_depth));
        }
        self.charge(1)?;
        let t = self.ty(idx)?;
        self.slice(at, t.size as usize, &t.name)?;
        if at % t.align.max(1) as usize != 0 {
            return self.fail(format!("{} at byte {at} is not aligned to {}", t.name, t.align));
        }
        self.depth += 1;
        let r = self.kind(t, at);
        self.depth -= 1;
        r
    }

    fn kind(&mut self, t: &'s TypeDesc, at: usize) -> Result<Val<'s>, DecodeError> {
        match &t.kind {
            Kind::Primitive(p) => self.primitive(*p, at),
            Kind::String => self.string(at).map(Val::Str),
            Kind::Vec(e) => {
                let len = self.u32_at(at + 4, "vector length")?;
                let elem = self.ty(*e)?;
                self.room_for(u64::from(len), &t.name)?;
                let start = self.rel(at, at, u128::from(len) * u128::from(elem.size), elem.align, &t.name)?;
                self.elements(*e, elem, start, u64::from(len)).map(Val::Seq)
            }
            Kind::Array(e, n) => {
                let elem = self.ty(*e)?;
                self.room_for(*n, &t.name)?;
                self.elements(*e, elem, at, *n).map(Val::Seq)
            }
            Kind::Option(e) => {
                let inner = self.ty(*e)?;
                match self.array::<1>(at, "option tag")?[0] {
                    0 => Ok(Val::Opt(None)),
                    1 => {
                        let payload = at + inner.align.max(1) as usize;
                        self.with(Seg::Some, |d| d.value(*e, payload)).map(|v| Val::Opt(Some(Box::new(v))))
                    }
                    tag => self.fail(format!("invalid tag {tag} for {} at byte {at} (expected 0 or 1)", t.name)),
                }
            }
            Kind::Box(e) => {
                let inner = self.ty(*e)?;
                let target = self.rel(at, at, u128::from(inner.size), inner.align, &t.name)?;
                self.with(Seg::Deref, |d| d.value(*e, target)).map(|v| Val::Boxed(Box::new(v)))
            }
            Kind::Tuple(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    out.push(self.with(Seg::Index(i as u64), |d| d.field(f, at))?);
                }
                Ok(Val::Tuple(out))
            }
            Kind::Struct { fields, tuple } => {
                let fields = self.fields(fields, *tuple, at)?;
                Ok(Val::Struct { name: &t.name, fields })
            }
            Kind::Enum { variants, tag_size } => self.variant(t, variants, *tag_size, at),
            Kind::HashMap(k, v) => self.hash_map(t, *k, *v, at),
            Kind::BTreeMap(k, v) => self.btree_map(t, *k, *v, at),
        }
    }

    fn field(&mut self, f: &Field, at: usize) -> Result<Val<'s>, DecodeError> {
        self.value(f.ty, at + f.offset as usize)
    }

    fn fields(&mut self, fields: &'s [Field], tuple: bool, at: usize) -> Result<Fields<'s>, DecodeError> {
        if fields.is_empty() {
            return Ok(Fields::Unit);
        }
        if tuple {
            let mut out = Vec::with_capacity(fields.len());
            for (i, f) in fields.iter().enumerate() {
                out.push(self.with(Seg::Index(i as u64), |d| d.field(f, at))?);
            }
            Ok(Fields::Tuple(out))
        } else {
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                out.push((f.name.as_str(), self.with(Seg::Field(&f.name), |d| d.field(f, at))?));
            }
            Ok(Fields::Named(out))
        }
    }

    fn elements(&mut self, e: TypeIndex, elem: &TypeDesc, start: usize, n: u64) -> Result<Vec<Val<'s>>, DecodeError> {
        let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
        for i in 0..n {
            let at = start as u128 + u128::from(i) * u128::from(elem.size);
            let Ok(at) = usize::try_from(at) else {
                return self.fail(format!("element {i} of {} lies beyond the addressable range", elem.name));
            };
            out.push(self.with(Seg::Index(i), |d| d.value(e, at))?);
        }
        Ok(out)
    }

    fn primitive(&self, p: Primitive, at: usize) -> Result<Val<'s>, DecodeError> {
        macro_rules! le {
            ($t:ty) => {
                <$t>::from_le_bytes(self.array(at, stringify!($t))?)
            };
        }
        Ok(match p {
            Primitive::Unit => Val::Unit,
            Primitive::Bool => match self.array::<1>(at, "bool")?[0] {
                0 => Val::Bool(false),
                1 => Val::Bool(true),
                b => return self.fail(format!("invalid bool byte {b:#04x} at byte {at}")),
            },
            Primitive::U8 => Val::U(le!(u8).into()),
            Primitive::U16 => Val::U(le!(u16).into()),
            Primitive::U32 => Val::U(le!(u32).into()),
            Primitive::U64 => Val::U(le!(u64).into()),
            Primitive::U128 => Val::U(le!(u128)),
            Primitive::Usize => Val::U(le!(u32).into()),
            Primitive::I8 => Val::I(le!(i8).into()),
            Primitive::I16 => Val::I(le!(i16).into()),
            Primitive::I32 => Val::I(le!(i32).into()),
            Primitive::I64 => Val::I(le!(i64).into()),
            Primitive::I128 => Val::I(le!(i128)),
            Primitive::Isize => Val::I(le!(i32).into()),
            Primitive::F32 => Val::F32(le!(f32)),
            Primitive::F64 => Val::F64(le!(f64)),
            Primitive::Char => {
                let c = le!(u32);
                match char::from_u32(c) {
                    Some(c) => Val::Char(c),
                    None => return self.fail(format!("invalid char {c:#x} at byte {at}")),
                }
            }
        })
    }

    /// rkyv's `ArchivedString`: inline (≤ 8 bytes, `0xFF`-padded) unless the
    /// first byte is `0b10xx_xxxx`; then a length word and a relative offset
    /// counted from the start of the string.
    fn string(&self, at: usize) -> Result<String, DecodeError> {
        let repr: [u8; 8] = self.array(at, "String")?;
        let bytes = if repr[0] & 0xC0 != 0x80 {
            let len = repr.iter().position(|&b| b == 0xFF).unwrap_or(8);
            &self.bytes[at..at + len]
        } else {
            let w = u32::from_le_bytes([repr[0], repr[1], repr[2], repr[3]]);
            let len = (w & 0x3F) | ((w & !0xFF) >> 2);
            let start = self.rel(at + 4, at, u128::from(len), 1, "String")?;
            &self.bytes[start..start + len as usize]
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => self.fail(format!("the String at byte {at} is not valid UTF-8 ({e})")),
        }
    }

    fn variant(
        &mut self,
        t: &'s TypeDesc,
        variants: &'s [Variant],
        tag_size: u32,
        at: usize,
    ) -> Result<Val<'s>, DecodeError> {
        let raw = self.slice(at, tag_size as usize, "enum tag")?;
        if raw.len() > 8 {
            return self.fail(format!("enum {} has a {tag_size}-byte tag", t.name));
        }
        let mut buf = [0u8; 8];
        buf[..raw.len()].copy_from_slice(raw);
        let tag = u64::from_le_bytes(buf);
        let Some(v) = variants.iter().find(|v| v.discriminant == tag) else {
            let known: Vec<String> = variants.iter().map(|v| format!("{}={}", v.name, v.discriminant)).collect();
            return self.fail(format!(
                "invalid tag {tag} for enum {} at byte {at} (variants: {})",
                t.name,
                known.join(", ")
            ));
        };
        let fields = self.with(Seg::Variant(&v.name), |d| d.fields(&v.fields, v.tuple, at))?;
        Ok(Val::Variant { ty: &t.name, name: &v.name, fields })
    }

    /// Layout of `repr(C) { key: K, value: V }`: (value offset, size, align).
    fn entry_layout(k: &TypeDesc, v: &TypeDesc) -> (usize, usize, usize) {
        let align = k.align.max(v.align).max(1) as usize;
        let value_at = round_up(k.size as usize, v.align as usize);
        (value_at, round_up(value_at + v.size as usize, align), align)
    }

    /// rkyv's SwissTable: `ptr` (rel, to the control bytes), `len`, `cap`; bucket
    /// `i` is full when `ctrl[i] & 0x80 == 0` and lives at `ctrl - (i+1)·entry`.
    fn hash_map(&mut self, t: &'s TypeDesc, k: TypeIndex, v: TypeIndex, at: usize) -> Result<Val<'s>, DecodeError> {
        let len = self.u32_at(at + 4, "hash map length")? as usize;
        let cap = self.u32_at(at + 8, "hash map capacity")? as usize;
        let string_keys = self.string_key(k, 0);
        if len == 0 && cap == 0 {
            return Ok(Val::Map { entries: Vec::new(), string_keys });
        }
        if len >= cap {
            return self.fail(format!("{} at byte {at} has length {len} but capacity {cap} (must be larger)", t.name));
        }
        let (kt, vt) = (self.ty(k)?, self.ty(v)?);
        let (value_at, esize, ealign) = Self::entry_layout(kt, vt);
        let controls = cap.next_multiple_of(GROUP_WIDTH) + GROUP_WIDTH - 1;
        let ctrl = self.rel(at, at, controls as u128, 1, &t.name)?;
        let Some(buckets) = ctrl.checked_sub(cap * esize) else {
            return self.fail(format!(
                "the {cap} buckets of {} before its control bytes at byte {ctrl} start before the snapshot",
                t.name
            ));
        };
        if buckets % ealign != 0 {
            return self.fail(format!("the buckets of {} at byte {buckets} are not aligned to {ealign}", t.name));
        }
        self.charge(cap as u64)?;
        let mut entries = Vec::with_capacity(len.min(1 << 16));
        for i in 0..cap {
            if self.bytes[ctrl + i] & 0x80 != 0 {
                continue;
            }
            if entries.len() == len {
                return self.fail(format!("{} at byte {at} has more full buckets than its length {len}", t.name));
            }
            let e = ctrl - (i + 1) * esize;
            let n = entries.len() as u64;
            let key = self.with(Seg::Key(n), |d| d.value(k, e))?;
            let value = self.with(Seg::Value(n), |d| d.value(v, e + value_at))?;
            entries.push((key, value));
        }
        if entries.len() != len {
            return self.fail(format!("{} at byte {at} has length {len} but {} full buckets", t.name, entries.len()));
        }
        // Bucket order is an accident of hashing: show keys sorted instead.
        entries.sort_by(|a, b| key_cmp(&a.0, &b.0));
        Ok(Val::Map { entries, string_keys })
    }

    /// rkyv's B-tree: `root` (rel) and `len`; nodes of up to 5 entries.
    fn btree_map(&mut self, t: &'s TypeDesc, k: TypeIndex, v: TypeIndex, at: usize) -> Result<Val<'s>, DecodeError> {
        let len = self.u32_at(at + 4, "B-tree map length")? as usize;
        let string_keys = self.string_key(k, 0);
        if len == 0 {
            return Ok(Val::Map { entries: Vec::new(), string_keys });
        }
        self.room_for(len as u64, &t.name)?;
        let (kt, vt) = (self.ty(k)?, self.ty(v)?);
        let node = NodeLayout::new(kt, vt);
        let root = self.rel(at, at, 1, 1, &t.name)?;
        let mut entries = Vec::with_capacity(len.min(1 << 16));
        let depth = self.depth;
        let r = self.node(t, &node, (k, v), root, &mut entries, len);
        self.depth = depth;
        r?;
        if entries.len() != len {
            return self.fail(format!("{} at byte {at} has length {len} but its nodes hold {}", t.name, entries.len()));
        }
        Ok(Val::Map { entries, string_keys })
    }

    fn node(
        &mut self,
        t: &'s TypeDesc,
        l: &NodeLayout,
        kv: (TypeIndex, TypeIndex),
        at: usize,
        out: &mut Vec<(Val<'s>, Val<'s>)>,
        len: usize,
    ) -> Result<(), DecodeError> {
        if self.depth >= self.limits.max_depth {
            return self
                .fail(format!("{} nests deeper than {} levels (raise --max-depth)", t.name, self.limits.max_depth));
        }
        self.depth += 1;
        self.charge(1)?;
        let kind = self.array::<1>(at, "B-tree node kind")?[0];
        let entry = |d: &mut Self, i: usize, out: &mut Vec<(Val<'s>, Val<'s>)>| -> Result<(), DecodeError> {
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

    /// Whether keys of type `idx` render as JSON strings (serde_json's rules).
    fn string_key(&self, idx: TypeIndex, depth: usize) -> bool {
        let Some(t) = self.doc.types.get(idx as usize) else { return false };
        if depth > 32 {
            return false;
        }
        match &t.kind {
            Kind::Primitive(p) => !matches!(p, Primitive::Unit | Primitive::F32 | Primitive::F64),
            Kind::String => true,
            Kind::Box(e) => self.string_key(*e, depth + 1),
            Kind::Struct { fields, tuple: true } if fields.len() == 1 => self.string_key(fields[0].ty, depth + 1),
            Kind::Enum { variants, .. } => variants.iter().all(|v| v.fields.is_empty()),
            _ => false,
        }
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
fn key_cmp(a: &Val<'_>, b: &Val<'_>) -> std::cmp::Ordering {
    match (a, b) {
        (Val::U(x), Val::U(y)) => x.cmp(y),
        (Val::I(x), Val::I(y)) => x.cmp(y),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        (Val::Char(x), Val::Char(y)) => x.cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        _ => format!("{a:?}").cmp(&format!("{b:?}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use proptest::prelude::*;
    use shmstate::rkyv;
    use shmstate::schema::schema_of;

    use super::*;
    use crate::render::to_json;

    #[shmstate::shared]
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    #[repr(u16)]
    #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
    #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
    #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
    enum Wide {
        A = 3,
        B {
            #[rkyv(omit_bounds)]
            x: Option<Box<Wide>>,
            y: [u8; 4],
        },
        C(HashMap<u32, BTreeMap<u16, (u8, i64)>>),
    }

    #[shmstate::shared]
    #[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
    #[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
    #[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    struct Node {
        label: String,
        #[rkyv(omit_bounds)]
        children: Vec<Node>,
        keyed: BTreeMap<Side, String>,
    }

    #[shmstate::shared]
    #[rkyv(derive(PartialEq, Eq, PartialOrd, Ord))]
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
    enum Side {
        Left,
        Right,
    }

    fn bytes<T>(v: &T) -> rkyv::util::AlignedVec
    where
        T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
    {
        rkyv::to_bytes::<rkyv::rancor::Error>(v).unwrap()
    }

    fn sample() -> Node {
        let leaf = |s: &str| Node { label: s.into(), children: vec![], keyed: BTreeMap::new() };
        Node {
            label: "root node with a long label".into(),
            children: vec![leaf("a"), Node { label: "b".into(), children: vec![leaf("c")], keyed: BTreeMap::new() }],
            keyed: BTreeMap::from([(Side::Left, "l".into()), (Side::Right, "r".into())]),
        }
    }

    #[test]
    fn round_trips_recursive_and_wide_tag_types() {
        let v = sample();
        let doc = schema_of::<Node>();
        let b = bytes(&v);
        let got = decode(&doc, &b, Limits::default()).unwrap();
        assert_eq!(to_json(&got), serde_json::to_value(&v).unwrap());

        let w = Wide::B {
            x: Some(Box::new(Wide::C(HashMap::from([(7, BTreeMap::from([(1, (2, -3))]))])))),
            y: [1, 2, 3, 4],
        };
        let doc = schema_of::<Wide>();
        let b = bytes(&w);
        let got = decode(&doc, &b, Limits::default()).unwrap();
        assert_eq!(to_json(&got), serde_json::to_value(&w).unwrap());
        let b = bytes(&Wide::A);
        assert_eq!(to_json(&decode(&doc, &b, Limits::default()).unwrap()), serde_json::json!("A"));
    }

    #[test]
    fn depth_and_value_limits_are_errors() {
        let mut v = sample();
        for _ in 0..50 {
            v = Node { label: "x".into(), children: vec![v], keyed: BTreeMap::new() };
        }
        let doc = schema_of::<Node>();
        let b = bytes(&v);
        let e = decode(&doc, &b, Limits { max_depth: 20, max_values: 1 << 20 }).unwrap_err();
        assert!(e.what.contains("deeper than 20"), "{e}");
        assert!(e.path.starts_with(".children[0].children[0]"), "{e}");
        let e = decode(&doc, &b, Limits { max_depth: 1000, max_values: 30 }).unwrap_err();
        assert!(e.what.contains("limit of 30 values") || e.what.contains("more than 30 values"), "{e}");
        assert!(decode(&doc, &b, Limits::default()).is_ok());
    }

    #[test]
    fn errors_are_specific() {
        let doc = schema_of::<Option<bool>>();
        assert!(decode(&doc, &[7, 1], Limits::default()).unwrap_err().what.contains("invalid tag 7 for Option<bool>"));
        assert!(decode(&doc, &[1, 9], Limits::default()).unwrap_err().what.contains("invalid bool byte 0x09"));
        assert!(decode(&doc, &[1], Limits::default()).unwrap_err().what.contains("too few for its root"));
        let doc = schema_of::<Vec<u32>>();
        let mut b = bytes(&vec![1u32, 2, 3]).to_vec();
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&(-1000i32).to_le_bytes());
        let e = decode(&doc, &b, Limits::default()).unwrap_err();
        assert!(e.what.contains("points outside the snapshot"), "{e}");
        b[n - 8..n - 4].copy_from_slice(&(-(n as i32) + 9).to_le_bytes());
        let e = decode(&doc, &b, Limits::default()).unwrap_err();
        assert!(e.what.contains("not aligned to 4") || e.what.contains("outside"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the bytes, decoding returns (an error or a value) without
        /// panicking, within the limits.
        #[test]
        fn corrupted_snapshots_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in 0usize..64) {
            let mut v = sample();
            v.keyed = BTreeMap::from([(Side::Left, "left side".into())]);
            let w = Wide::B { x: Some(Box::new(Wide::C((0..20).map(|i| (i, BTreeMap::from([(i as u16, (1, 2))]))).collect()))), y: [0; 4] };
            for (doc, mut b) in [(schema_of::<Node>(), bytes(&v).to_vec()), (schema_of::<Wide>(), bytes(&w).to_vec())] {
                for (i, x) in &flips {
                    let at = i.index(b.len());
                    b[at] = *x;
                }
                b.truncate(b.len().saturating_sub(cut % 3 * (cut / 3)));
                let _ = decode(&doc, &b, Limits { max_depth: 64, max_values: 100_000 });
            }
        }
    }
}
