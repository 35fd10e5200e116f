//! The schema-driven walk over a snapshot's bytes.
//!
//! Archived layouts follow rkyv 0.8 with this crate's format (little-endian,
//! aligned, 32-bit relative pointers and lengths); see the [`Kind`] docs. The
//! map layouts are in `maps.rs`.
//!
//! The walk checks what rkyv's validator (`rkyv::access`) checks, in the same
//! order where the order matters:
//! - **Subtree claims.** Every relative pointer claims the bytes it points to
//!   (`Decoder::claim`, rkyv's `ArchiveContext::in_subtree`): they must lie in
//!   the current *subtree range*, which starts as the whole snapshot. While the
//!   claimed value is checked, the range is the part before the claim (rkyv
//!   writes what a value points to before the value); afterwards it is the part
//!   after the claim. So claims come in address order and never overlap, and no
//!   pointer leads back into a value being checked.
//! - **Shared pointers** (`Arc`, `Rc`): the first pointer to an address claims
//!   it; later ones to the same address, of the same type and length, are not
//!   checked again (rkyv's `SharedValidator`).
//! - **The invariants of rkyv's own types**: out-of-line strings are longer
//!   than 8 bytes, hash tables mirror their first control bytes past the
//!   capacity, B-tree inner nodes are checked children first; and those of std
//!   types the schema describes with the ordinary kinds and names
//!   (`std_rule`): `NonZero*` is not zero, `Duration`'s nanoseconds are below
//!   one billion, `Box<str>` / `Arc<str>` / `Rc<str>` are UTF-8.

use std::collections::HashMap;
use std::ops::Range;

use super::claims::Shared;
use super::cursor::Node;
use super::{DecodeError, Fields, Value};
use crate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex, Variant};

/// Bounds on one decode, so that a hostile snapshot cannot make it run away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting depth: values inside values, pointer hops and B-tree
    /// levels included. Decoding recurses once per level (see the module docs
    /// on stack use).
    pub max_depth: usize,
    /// Maximum number of values decoded, hash-table buckets included. Pointers
    /// may share targets, so without it a small snapshot could decode to an
    /// exponentially large tree.
    pub max_values: u64,
}

impl Default for Limits {
    /// 128 levels (about 1.3 MiB of stack in a debug build), 20 000 000 values.
    fn default() -> Self {
        Limits { max_depth: 128, max_values: 20_000_000 }
    }
}

/// Decodes a snapshot (`bytes`: the whole serialized buffer, as
/// [`RawReader::read`](crate::RawReader::read) returns it; rkyv puts the root at
/// the end) with the schema stored beside it, within [`Limits::default`].
pub fn decode(schema: &SchemaDoc, bytes: &[u8]) -> Result<Value, DecodeError> {
    decode_with(schema, bytes, Limits::default())
}

/// [`decode`] within `limits`.
pub fn decode_with(schema: &SchemaDoc, bytes: &[u8], limits: Limits) -> Result<Value, DecodeError> {
    Decoder::new(schema, bytes, limits, false).root()
}

/// Checks `bytes` as [`decode`] does, every pointer, length, tag and string,
/// without building the value: a vector or array of integers, floats or `()`
/// (no invalid bit patterns) is checked as one range, whatever its length, and
/// is not counted against `limits.max_values`, and a value behind a shared
/// pointer is checked once. For bridges and tools that copy snapshots they do
/// not read.
///
/// Within `limits`, it accepts exactly the snapshots that rkyv's validator
/// (`rkyv::access`, which every typed [`Reader`](crate::Reader) runs) accepts
/// for the type the schema describes: the same bounds, alignment, subtree
/// claims, shared pointers, tags, strings and invariants (listed in
/// `src/dynamic/decode.rs`). Alignment is that of offsets in `bytes`, so the
/// verdict is bytecheck's on the bytes copied to an aligned address, as a
/// slot in shared memory holds them.
pub fn validate(schema: &SchemaDoc, bytes: &[u8], limits: Limits) -> Result<(), DecodeError> {
    Decoder::new(schema, bytes, limits, true).root().map(drop)
}

impl<'s, 'b> Decoder<'s, 'b> {
    pub(super) fn new(doc: &'s SchemaDoc, bytes: &'b [u8], limits: Limits, checking: bool) -> Self {
        Decoder {
            doc,
            bytes,
            limits,
            values: 0,
            depth: 0,
            path: Vec::new(),
            checking,
            range: 0..bytes.len(),
            shared: HashMap::new(),
            lazy: false,
            children: Vec::new(),
            seq: None,
            text: None,
        }
    }

    /// rkyv puts the root at the end and claims it first: everything else lies
    /// before it.
    fn root(&mut self) -> Result<Value, DecodeError> {
        let root = self.ty(self.doc.root)?;
        let size = root.size as usize;
        let Some(at) = self.bytes.len().checked_sub(size) else {
            return self.fail(format!(
                "the snapshot has {} bytes, too few for its root {} ({size} bytes)",
                self.bytes.len(),
                root.name
            ));
        };
        self.range = 0..at;
        self.value(self.doc.root, at)
    }
}

pub(super) use super::path::Seg;

pub(super) struct Decoder<'s, 'b> {
    pub(super) doc: &'s SchemaDoc,
    pub(super) bytes: &'b [u8],
    pub(super) limits: Limits,
    /// Values decoded so far (against `limits.max_values`).
    pub(super) values: u64,
    /// Current nesting (against `limits.max_depth`).
    pub(super) depth: usize,
    pub(super) path: Vec<Seg<'s>>,
    /// `validate`: plain-number sequences are range-checked, not decoded.
    pub(super) checking: bool,
    /// rkyv's subtree range: where the next claim may lie (see the module docs).
    pub(super) range: Range<usize>,
    /// Targets of the shared pointers met so far, by target byte (which may
    /// lie outside the snapshot: the claim that follows then fails).
    pub(super) shared: HashMap<i128, Shared>,
    /// `Cursor::expand`: the values one level down are not decoded but
    /// recorded in `children`, each standing in the result as `Value::U64`
    /// of its index; a vector or array records its range in `seq`.
    pub(super) lazy: bool,
    pub(super) children: Vec<Node>,
    pub(super) seq: Option<(usize, u64)>,
    /// The last string decoded, in place (`Cursor::text`).
    pub(super) text: Option<&'b str>,
}

pub(super) fn round_up(x: usize, align: usize) -> usize {
    x.next_multiple_of(align.max(1))
}

impl<'s, 'b> Decoder<'s, 'b> {
    pub(super) fn fail<T>(&self, what: String) -> Result<T, DecodeError> {
        Err(DecodeError { what, path: super::path::render(&self.path) })
    }

    pub(super) fn ty(&self, idx: TypeIndex) -> Result<&'s TypeDesc, DecodeError> {
        match self.doc.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => self.fail(format!("the schema refers to type {idx}, past its {} types", self.doc.types.len())),
        }
    }

    /// `len` bytes at `at`, or a precise error naming `what`.
    pub(super) fn slice(&self, at: usize, len: usize, what: &str) -> Result<&'b [u8], DecodeError> {
        match at.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(&self.bytes[at..end]),
            _ => self.fail(format!(
                "{what} at bytes {at}..{} lies outside the snapshot ({} bytes)",
                at as u128 + len as u128,
                self.bytes.len()
            )),
        }
    }

    pub(super) fn array<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N], DecodeError> {
        let s = self.slice(at, N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(super) fn u32_at(&self, at: usize, what: &str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(at, what)?))
    }

    pub(super) fn charge(&mut self, n: u64) -> Result<(), DecodeError> {
        self.values = self.values.saturating_add(n);
        if self.values > self.limits.max_values {
            return self.fail(format!(
                "the snapshot holds more than {} values (raise the max_values limit)",
                self.limits.max_values
            ));
        }
        Ok(())
    }

    /// Fails early when `n` more values cannot fit in the budget (without
    /// charging them: each is charged when decoded).
    pub(super) fn room_for(&self, n: u64, what: &str) -> Result<(), DecodeError> {
        if self.values.saturating_add(n) > self.limits.max_values {
            return self.fail(format!(
                "decoding {what} ({n} elements) would pass the limit of {} values (raise the max_values limit)",
                self.limits.max_values
            ));
        }
        Ok(())
    }

    /// One level deeper, failing past `limits.max_depth`.
    pub(super) fn enter(&mut self, what: &str) -> Result<(), DecodeError> {
        if self.depth >= self.limits.max_depth {
            return self.fail(format!(
                "{what} nests deeper than {} levels (raise the max_depth limit)",
                self.limits.max_depth
            ));
        }
        self.depth += 1;
        Ok(())
    }

    pub(super) fn with<T>(
        &mut self,
        seg: Seg<'s>,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    /// Decodes the value of type `idx` stored at byte `at`.
    pub(super) fn value(&mut self, idx: TypeIndex, at: usize) -> Result<Value, DecodeError> {
        if self.lazy && self.depth > 0 {
            self.children.push(Node { ty: idx, at });
            return Ok(Value::U64(self.children.len() as u64 - 1));
        }
        self.enter("the value")?;
        let r = self.value_here(idx, at);
        self.depth -= 1;
        r
    }

    fn value_here(&mut self, idx: TypeIndex, at: usize) -> Result<Value, DecodeError> {
        self.charge(1)?;
        let t = self.ty(idx)?;
        self.slice(at, t.size as usize, &t.name)?;
        if at % t.align.max(1) as usize != 0 {
            return self.fail(format!("{} at byte {at} is not aligned to {}", t.name, t.align));
        }
        // Sets, `Box<str>`… are archived with the kind of another shape.
        self.kind(idx, t, at).map(|v| super::std_types::refine(self.doc, t, v))
    }

    fn kind(&mut self, idx: TypeIndex, t: &'s TypeDesc, at: usize) -> Result<Value, DecodeError> {
        match &t.kind {
            Kind::Primitive(p) => {
                if std_rule(self.doc, t) == StdRule::NonZero
                    && self.slice(at, t.size as usize, &t.name)?.iter().all(|&b| b == 0)
                {
                    return self.fail(format!("{} at byte {at} is zero", t.name));
                }
                self.primitive(*p, at)
            }
            Kind::String => self.string(at).map(Value::String),
            Kind::Vec(e) => {
                let len = self.u32_at(at + 4, "vector length")?;
                let elem = self.ty(*e)?;
                let p = self.ptr(at, at, &t.name)?;
                let size = u128::from(len) * u128::from(elem.size);
                self.pointee(idx, t, p, size, elem.align, Some(u64::from(len)), |d, start| {
                    if std_rule(d.doc, t) == StdRule::Str {
                        let bytes = d.slice(start, len as usize, &t.name)?;
                        match std::str::from_utf8(bytes) {
                            Err(e) => {
                                return d.fail(format!("the {} at byte {start} is not valid UTF-8 ({e})", t.name))
                            }
                            // A leaf to a cursor (`refine` keeps a string as it is).
                            Ok(s) if d.lazy => {
                                d.text = Some(s);
                                return Ok(Value::String(s.to_owned()));
                            }
                            Ok(_) => {}
                        }
                    }
                    if d.lazy {
                        d.seq = Some((start, u64::from(len)));
                        return Ok(Value::Seq(Vec::new()));
                    }
                    if d.checking && is_plain(d.doc, elem) {
                        return Ok(Value::Seq(Vec::new()));
                    }
                    d.room_for(u64::from(len), &t.name)?;
                    d.elements(*e, elem, start, u64::from(len)).map(Value::Seq)
                })
            }
            Kind::Array(e, n) => {
                let elem = self.ty(*e)?;
                if self.lazy {
                    self.seq = Some((at, *n));
                    return Ok(Value::Seq(Vec::new()));
                }
                if self.checking && is_plain(self.doc, elem) {
                    let len = u128::from(*n) * u128::from(elem.size);
                    self.slice(at, usize::try_from(len).unwrap_or(usize::MAX), &t.name)?;
                    return Ok(Value::Seq(Vec::new()));
                }
                self.room_for(*n, &t.name)?;
                self.elements(*e, elem, at, *n).map(Value::Seq)
            }
            Kind::Option(e) => {
                let inner = self.ty(*e)?;
                match self.array::<1>(at, "option tag")?[0] {
                    0 => Ok(Value::Option(None)),
                    1 => {
                        let payload = at + inner.align.max(1) as usize;
                        self.with(Seg::Some, |d| d.value(*e, payload)).map(|v| Value::Option(Some(Box::new(v))))
                    }
                    tag => self.fail(format!("invalid tag {tag} for {} at byte {at} (expected 0 or 1)", t.name)),
                }
            }
            Kind::Box(e) => {
                let inner = self.ty(*e)?;
                let p = self.ptr(at, at, &t.name)?;
                self.pointee(idx, t, p, u128::from(inner.size), inner.align, None, |d, target| {
                    d.with(Seg::Deref, |d| d.value(*e, target))
                })
            }
            Kind::Tuple(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    out.push(self.with(Seg::Index(i as u64), |d| d.field(f, at))?);
                }
                Ok(Value::Tuple(out))
            }
            Kind::Struct { fields, tuple } => {
                let value = self.fields(fields, *tuple, at)?;
                if std_rule(self.doc, t) == StdRule::Duration {
                    // `std_rule` checked the layout: `nanos` is the `u32` field.
                    let nanos_at = at + fields[1].offset as usize;
                    let nanos = self.u32_at(nanos_at, "Duration nanoseconds")?;
                    if nanos >= 1_000_000_000 {
                        return self
                            .fail(format!("Duration at byte {at} has {nanos} nanoseconds (at most 999 999 999)"));
                    }
                }
                Ok(Value::Struct { name: t.name.clone(), fields: value })
            }
            Kind::Enum { variants, tag_size } => self.variant(t, variants, *tag_size, at),
            Kind::HashMap(k, v) => self.hash_map(t, *k, *v, at),
            Kind::BTreeMap(k, v) => self.btree_map(t, *k, *v, at),
        }
    }

    fn field(&mut self, f: &Field, at: usize) -> Result<Value, DecodeError> {
        self.value(f.ty, at + f.offset as usize)
    }

    fn fields(&mut self, fields: &'s [Field], tuple: bool, at: usize) -> Result<Fields, DecodeError> {
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
                out.push((f.name.clone(), self.with(Seg::Field(&f.name), |d| d.field(f, at))?));
            }
            Ok(Fields::Named(out))
        }
    }

    fn elements(&mut self, e: TypeIndex, elem: &TypeDesc, start: usize, n: u64) -> Result<Vec<Value>, DecodeError> {
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

    fn primitive(&self, p: Primitive, at: usize) -> Result<Value, DecodeError> {
        macro_rules! le {
            ($t:ty) => {
                <$t>::from_le_bytes(self.array(at, stringify!($t))?)
            };
        }
        Ok(match p {
            Primitive::Unit => Value::Unit,
            Primitive::Bool => match self.array::<1>(at, "bool")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return self.fail(format!("invalid bool byte {b:#04x} at byte {at}")),
            },
            Primitive::U8 => Value::U64(le!(u8).into()),
            Primitive::U16 => Value::U64(le!(u16).into()),
            Primitive::U32 => Value::U64(le!(u32).into()),
            Primitive::U64 => Value::U64(le!(u64)),
            Primitive::U128 => Value::U128(le!(u128)),
            // Archived `usize`/`isize` are 32-bit in this crate's format.
            Primitive::Usize => Value::U64(le!(u32).into()),
            Primitive::I8 => Value::I64(le!(i8).into()),
            Primitive::I16 => Value::I64(le!(i16).into()),
            Primitive::I32 => Value::I64(le!(i32).into()),
            Primitive::I64 => Value::I64(le!(i64)),
            Primitive::I128 => Value::I128(le!(i128)),
            Primitive::Isize => Value::I64(le!(i32).into()),
            Primitive::F32 => Value::F32(le!(f32)),
            Primitive::F64 => Value::F64(le!(f64)),
            Primitive::Char => {
                let c = le!(u32);
                match char::from_u32(c) {
                    Some(c) => Value::Char(c),
                    None => return self.fail(format!("invalid char {c:#x} at byte {at}")),
                }
            }
        })
    }

    /// rkyv's `ArchivedString`: inline (≤ 8 bytes, `0xFF`-padded) unless the
    /// first byte is `0b10xx_xxxx`; then a length word (more than 8 bytes: rkyv
    /// refuses an out-of-line string that would fit inline) and a relative
    /// offset counted from the start of the string, which claims the bytes.
    fn string(&mut self, at: usize) -> Result<String, DecodeError> {
        let repr: [u8; 8] = self.array(at, "String")?;
        let utf8 = |d: &mut Self, bytes: &'b [u8]| match std::str::from_utf8(bytes) {
            Ok(s) => {
                d.text = Some(s);
                Ok(s.to_owned())
            }
            Err(e) => d.fail(format!("the String at byte {at} is not valid UTF-8 ({e})")),
        };
        if repr[0] & 0xC0 != 0x80 {
            // Inline: the bytes are the representation's own (`repr` is their copy).
            let len = repr.iter().position(|&b| b == 0xFF).unwrap_or(INLINE_STRING);
            let bytes = self.slice(at, len, "String")?;
            return utf8(self, bytes);
        }
        let w = u32::from_le_bytes([repr[0], repr[1], repr[2], repr[3]]);
        let len = (w & 0x3F) | ((w & !0xFF) >> 2);
        if len as usize <= INLINE_STRING {
            return self.fail(format!(
                "the String at byte {at} is stored out of line with {len} bytes (at most {INLINE_STRING} are stored inline)"
            ));
        }
        let p = self.ptr(at + 4, at, "String")?;
        self.claim(p, u128::from(len), 1, "String", |d, start| {
            let bytes = d.slice(start, len as usize, "String")?;
            utf8(d, bytes)
        })
    }

    fn variant(
        &mut self,
        t: &'s TypeDesc,
        variants: &'s [Variant],
        tag_size: u32,
        at: usize,
    ) -> Result<Value, DecodeError> {
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
        Ok(Value::Enum { name: t.name.clone(), variant: v.name.clone(), fields })
    }
}

/// The bytes an `ArchivedString` holds inline.
const INLINE_STRING: usize = 8;

/// Integers, floats, `()` and empty tuples and structs: every bit pattern is a
/// value, so a range of them needs no check past its bounds and alignment.
fn is_plain(doc: &SchemaDoc, t: &TypeDesc) -> bool {
    match &t.kind {
        Kind::Primitive(p) => !matches!(p, Primitive::Bool | Primitive::Char) && std_rule(doc, t) != StdRule::NonZero,
        Kind::Tuple(fields) | Kind::Struct { fields, .. } => fields.is_empty(),
        _ => false,
    }
}

/// An invariant that bytecheck checks for a std type the schema describes with
/// an ordinary kind, recognized by kind and name (and fields for `Duration`:
/// a user struct of that name and shape is held to it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdRule {
    None,
    /// `NonZero*` (a primitive): not zero.
    NonZero,
    /// `Duration` (`secs: u64, nanos: u32`): `nanos < 1_000_000_000`.
    Duration,
    /// `Box<str>`, `Arc<str>`, `Rc<str>` (a `Vec<u8>` layout): UTF-8.
    Str,
}

fn std_rule(doc: &SchemaDoc, t: &TypeDesc) -> StdRule {
    let name = t.name.as_str();
    let is = |f: &Field, want: Primitive| {
        doc.types.get(f.ty as usize).is_some_and(|t| matches!(t.kind, Kind::Primitive(p) if p == want))
    };
    match &t.kind {
        Kind::Primitive(_) if name.starts_with("NonZero") => StdRule::NonZero,
        Kind::Vec(_) if matches!(name, "Box<str>" | "Arc<str>" | "Rc<str>") => StdRule::Str,
        Kind::Struct { fields, tuple: false }
            if name == "Duration"
                && fields.len() == 2
                && fields[0].name == "secs"
                && fields[1].name == "nanos"
                && is(&fields[0], Primitive::U64)
                && is(&fields[1], Primitive::U32) =>
        {
            StdRule::Duration
        }
        _ => StdRule::None,
    }
}
