//! The schema-driven encoder: a [`Value`] → the bytes of an rkyv archive of
//! the type a [`SchemaDoc`] describes, for writers without the Rust type (the
//! CLI's `publish`, bindings to other languages). The inverse of `decode`.
//!
//! It follows rkyv 0.8's serializer step for step, in this crate's format
//! (little-endian, aligned, 32-bit relative pointers and lengths), so that the
//! bytes are those `rkyv::to_bytes` gives for the Rust value:
//! - every value is written in two steps, as rkyv's `serialize` and `resolve`:
//!   first what it points to, depth first and in field order
//!   ([`Encoder::serialize`], which returns the positions written: a [`Res`]),
//!   then its own inline bytes, zeroed first, with relative pointers to those
//!   positions ([`Encoder::resolve`]);
//! - a pointer's target is aligned for its type first (zero padding, even for
//!   an empty vector), strings of at most 8 bytes are inline, the root comes
//!   last, aligned;
//! - maps are rkyv's SwissTable and B-tree (`encode_maps.rs`).
//!
//! What a value must look like for each type is checked in `encode_shape.rs`.
//!
//! Two differences, both of which readers cannot tell apart from rkyv's own
//! output (the archive validates and reads the same): a `HashMap`'s entries go
//! into the table in key order (rkyv inserts them in the Rust map's iteration
//! order, which depends on its random hasher state, so its bytes differ from
//! run to run anyway), and `Arc`/`Rc` targets are written once per pointer (a
//! [`Value`] does not show which pointers shared a target).

use super::encode_maps;
use super::encode_shape::kind_of;
use super::Value;
use crate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex};
use core::fmt;

/// Why a [`Value`] cannot be encoded under a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    /// What does not fit.
    pub what: String,
    /// Where in the value (`.hosts[3].name`); empty for the root.
    pub path: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.what)
        } else {
            write!(f, "at {}: {}", self.path, self.what)
        }
    }
}

impl std::error::Error for EncodeError {}

/// The most nesting [`encode`] follows (as [`Limits::default`](super::Limits)
/// for decoding): it recurses once per level.
pub const MAX_ENCODE_DEPTH: usize = 128;

/// Encodes `value` as an archive of the type `schema` describes: the bytes
/// [`RawWriter::publish_bytes`](crate::RawWriter::publish_bytes) takes, and
/// that a typed [`Reader`](crate::Reader) of that type reads.
///
/// The value must have the schema's shape, as [`decode`](super::decode) gives
/// it: a [`Value::Struct`] with every field of the struct by name (in any
/// order), a [`Value::Enum`] naming one of the variants, a [`Value::Seq`] of
/// the right length for an array, and so on. Some neighbouring forms are
/// taken too: any integer value for an integer type in its range, `F32`/`F64`
/// and integers for floats, a `Seq` for a tuple, a one-character `String`
/// for a `char`, a `Map` with `()` values for a set. Type names in the value
/// are not checked. What does not fit is an [`EncodeError`] naming the path.
pub fn encode(schema: &SchemaDoc, value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut e = Encoder { doc: schema, out: Vec::new(), path: Vec::new(), depth: 0 };
    let res = e.serialize(schema.root, value)?;
    let root = e.ty(schema.root)?;
    e.pad_to(root.align);
    e.write_inline(schema.root, value, res)?;
    Ok(e.out)
}

/// What [`Encoder::serialize`] wrote for a value: the positions its inline
/// form points to (rkyv's resolver).
#[derive(Debug)]
pub(super) enum Res {
    /// Nothing out of line.
    None,
    /// A pointer target (vector elements, a boxed value, out-of-line string
    /// bytes, a map's control bytes or root node).
    At(usize),
    /// Those of the parts (fields, elements, the `Some` payload).
    Parts(Vec<Res>),
}

pub(super) use super::path::Seg;

pub(super) struct Encoder<'s> {
    pub(super) doc: &'s SchemaDoc,
    /// The archive so far (positions count from its start, as rkyv's).
    pub(super) out: Vec<u8>,
    pub(super) path: Vec<Seg<'s>>,
    depth: usize,
}

/// The bytes an `ArchivedString` holds inline.
const INLINE_STRING: usize = 8;
/// rkyv's `OUT_OF_LINE_CAPACITY` with 32-bit lengths: two bits mark the form.
const MAX_STRING: usize = (1 << 30) - 1;

impl<'s> Encoder<'s> {
    pub(super) fn fail<T>(&self, what: impl Into<String>) -> Result<T, EncodeError> {
        Err(EncodeError { what: what.into(), path: super::path::render(&self.path) })
    }

    pub(super) fn ty(&self, idx: TypeIndex) -> Result<&'s TypeDesc, EncodeError> {
        match self.doc.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => self.fail(format!("the schema refers to type {idx}, past its {} types", self.doc.types.len())),
        }
    }

    pub(super) fn with<T>(
        &mut self,
        seg: Seg<'s>,
        f: impl FnOnce(&mut Self) -> Result<T, EncodeError>,
    ) -> Result<T, EncodeError> {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    /// rkyv's `align_for`: zero padding up to `align`; returns the position.
    pub(super) fn pad_to(&mut self, align: u32) -> usize {
        let to = self.out.len().next_multiple_of(align.max(1) as usize);
        self.out.resize(to, 0);
        to
    }

    /// rkyv's `resolve_aligned`: the inline form of `v` at the current
    /// position (which the caller aligned), zeroed first.
    pub(super) fn write_inline(&mut self, idx: TypeIndex, v: &Value, res: Res) -> Result<(), EncodeError> {
        let t = self.ty(idx)?;
        let pos = self.out.len();
        let mut buf = vec![0u8; t.size as usize];
        self.resolve(idx, v, res, pos, &mut buf)?;
        self.out.extend_from_slice(&buf);
        Ok(())
    }

    /// The end of a pointer target written at `at`: rkyv's `ArchivedRc`
    /// pads one byte after a shared target that took none (an empty `Arc<[T]>`),
    /// so that every shared target has an address of its own.
    fn end_target(&mut self, t: &TypeDesc, at: usize) {
        if is_shared(t) && self.out.len() == at {
            self.out.push(0);
        }
    }

    /// rkyv's `serialize`: writes what `v` (of type `idx`) points to, checking
    /// that it fits the type, and returns where.
    pub(super) fn serialize(&mut self, idx: TypeIndex, v: &Value) -> Result<Res, EncodeError> {
        if self.depth >= MAX_ENCODE_DEPTH {
            return self.fail(format!("the value nests deeper than {MAX_ENCODE_DEPTH} levels"));
        }
        self.depth += 1;
        let r = self.serialize_here(idx, v);
        self.depth -= 1;
        r
    }

    fn serialize_here(&mut self, idx: TypeIndex, v: &Value) -> Result<Res, EncodeError> {
        let t = self.ty(idx)?;
        match &t.kind {
            Kind::Primitive(p) => {
                self.primitive(t, *p, v)?;
                Ok(Res::None)
            }
            Kind::String => {
                let s = self.string(t, v)?;
                if s.len() <= INLINE_STRING {
                    return Ok(Res::None);
                }
                if s.len() > MAX_STRING {
                    return self.fail(format!("a String of {} bytes is longer than {MAX_STRING}", s.len()));
                }
                let at = self.out.len();
                self.out.extend_from_slice(s.as_bytes());
                Ok(Res::At(at))
            }
            Kind::Vec(e) => {
                if let Some(bytes) = self.str_bytes(t, v)? {
                    // `Box<str>` and friends: the bytes, as `str::serialize_unsized`.
                    let at = self.out.len();
                    self.out.extend_from_slice(bytes);
                    self.end_target(t, at);
                    return Ok(Res::At(at));
                }
                let items = self.seq(t, v)?;
                self.length(items.len())?;
                if let Kind::Primitive(p) = self.ty(*e)?.kind {
                    return self.primitive_slice(idx, *e, p, items).map(Res::At);
                }
                self.slice(idx, *e, items).map(Res::At)
            }
            Kind::Box(e) => {
                let r = self.serialize(*e, v)?;
                let inner = self.ty(*e)?;
                let at = self.pad_to(inner.align);
                self.write_inline(*e, v, r)?;
                self.end_target(t, at);
                Ok(Res::At(at))
            }
            Kind::Option(e) => match v {
                Value::Option(None) => Ok(Res::None),
                Value::Option(Some(x)) => Ok(Res::Parts(vec![self.serialize(*e, x)?])),
                other => self.fail(format!("expected an Option for {}, found {}", t.name, kind_of(other))),
            },
            Kind::Array(e, n) => {
                let items = self.seq(t, v)?;
                if items.len() as u64 != *n {
                    return self.fail(format!("{} needs {n} elements, found {}", t.name, items.len()));
                }
                self.parts(items.iter().map(|item| (*e, item)).collect(), Seg::Index)
            }
            Kind::Tuple(fields) => {
                let items = self.tuple(t, v)?;
                if items.len() != fields.len() {
                    return self.fail(format!("{} has {} fields, found {}", t.name, fields.len(), items.len()));
                }
                self.parts(fields.iter().zip(items).map(|(f, item)| (f.ty, item)).collect(), Seg::Index)
            }
            Kind::Struct { fields, tuple } => {
                let Value::Struct { fields: given, .. } = v else {
                    return self.fail(format!("expected the struct {}, found {}", t.name, kind_of(v)));
                };
                let values = self.match_fields(&t.name, fields, *tuple, given)?;
                self.duration_rule(t, fields, &values)?;
                self.field_parts(fields, *tuple, &values)
            }
            Kind::Enum { variants, .. } => {
                let (variant, values) = self.match_variant(t, variants, v)?;
                let seg = Seg::Variant(&variant.name);
                self.with(seg, |e| e.field_parts(&variant.fields, variant.tuple, &values))
            }
            Kind::HashMap(k, val) => {
                let entries = self.entries(t, *val, v)?;
                self.length(entries.len())?;
                encode_maps::hash_table(self, t, *k, *val, &entries).map(Res::At)
            }
            Kind::BTreeMap(k, val) => {
                let entries = self.entries(t, *val, v)?;
                self.length(entries.len())?;
                encode_maps::btree(self, *k, *val, entries).map(Res::At)
            }
        }
    }

    /// rkyv's `[T]::serialize_unsized`: every element's targets, then the
    /// elements, aligned; returns where they start.
    fn slice(&mut self, idx: TypeIndex, e: TypeIndex, items: &[Value]) -> Result<usize, EncodeError> {
        let mut parts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            parts.push(self.with(Seg::Index(i as u64), |enc| enc.serialize(e, item))?);
        }
        let (t, elem) = (self.ty(idx)?, self.ty(e)?);
        let at = self.pad_to(elem.align);
        for (item, r) in items.iter().zip(parts) {
            self.write_inline(e, item, r)?;
        }
        self.end_target(t, at);
        Ok(at)
    }

    /// [`slice`](Self::slice) of numbers, bools or chars: nothing points
    /// out of them, so each element's bytes go straight after the last (no
    /// resolver, no buffer per element, no path step unless one does not fit).
    fn primitive_slice(
        &mut self,
        idx: TypeIndex,
        e: TypeIndex,
        p: Primitive,
        items: &[Value],
    ) -> Result<usize, EncodeError> {
        let (t, elem) = (self.ty(idx)?, self.ty(e)?);
        let size = elem.size as usize;
        let at = self.pad_to(elem.align);
        self.out.reserve(items.len().saturating_mul(size));
        for (i, item) in items.iter().enumerate() {
            match self.primitive(elem, p, item) {
                Ok((bytes, n)) if n <= size => {
                    self.out.extend_from_slice(&bytes[..n]);
                    self.out.resize(self.out.len() + (size - n), 0);
                }
                Ok((_, n)) => {
                    return self.with(Seg::Index(i as u64), |enc| {
                        enc.fail(format!("{} is {size} bytes, its value takes {n}", elem.name))
                    })
                }
                Err(_) => return self.with(Seg::Index(i as u64), |enc| enc.primitive(elem, p, item).map(|_| at)),
            }
        }
        self.end_target(t, at);
        Ok(at)
    }

    fn parts(&mut self, items: Vec<(TypeIndex, &Value)>, seg: fn(u64) -> Seg<'s>) -> Result<Res, EncodeError> {
        let mut parts = Vec::with_capacity(items.len());
        for (i, (ty, item)) in items.into_iter().enumerate() {
            parts.push(self.with(seg(i as u64), |e| e.serialize(ty, item))?);
        }
        Ok(Res::Parts(parts))
    }

    fn field_parts(&mut self, fields: &'s [Field], tuple: bool, values: &[&Value]) -> Result<Res, EncodeError> {
        let mut parts = Vec::with_capacity(fields.len());
        for (i, (f, item)) in fields.iter().zip(values).enumerate() {
            let seg = if tuple { Seg::Index(i as u64) } else { Seg::Field(&f.name) };
            parts.push(self.with(seg, |e| e.serialize(f.ty, item))?);
        }
        Ok(Res::Parts(parts))
    }

    /// rkyv's `resolve`: the inline bytes of `v` at position `pos` into `buf`
    /// (`size_of` the archived type, zeroed). `serialize` has checked `v`.
    pub(super) fn resolve(
        &self,
        idx: TypeIndex,
        v: &Value,
        res: Res,
        pos: usize,
        buf: &mut [u8],
    ) -> Result<(), EncodeError> {
        let t = self.ty(idx)?;
        if buf.len() < t.size as usize {
            return self.fail(format!("{} is {} bytes, its parent has room for {}", t.name, t.size, buf.len()));
        }
        match &t.kind {
            Kind::Primitive(p) => {
                let (bytes, n) = self.primitive(t, *p, v)?;
                buf[..n].copy_from_slice(&bytes[..n]);
            }
            Kind::String => {
                let s = self.string(t, v)?;
                match res {
                    Res::At(target) => {
                        let l = s.len() as u32;
                        // rkyv's out-of-line length word: `10` in bits 6..7.
                        let word = (l & 0x3F) | 0x80 | ((l & !0x3F) << 2);
                        buf[0..4].copy_from_slice(&word.to_le_bytes());
                        // Counted from the start of the string, not from the field.
                        self.rel(buf, 4, pos - 4, target)?;
                    }
                    _ => {
                        buf[..INLINE_STRING].fill(0xFF);
                        buf[..s.len()].copy_from_slice(s.as_bytes());
                    }
                }
            }
            Kind::Vec(_) => {
                let len = match self.str_bytes(t, v)? {
                    Some(bytes) => bytes.len(),
                    None => self.seq(t, v)?.len(),
                };
                self.rel_to(buf, 0, pos, &res)?;
                buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            }
            Kind::Box(_) => self.rel_to(buf, 0, pos, &res)?,
            Kind::Option(e) => {
                if let (Value::Option(Some(x)), Res::Parts(mut parts)) = (v, res) {
                    let inner = self.ty(*e)?;
                    let at = inner.align.max(1) as usize;
                    buf[0] = 1;
                    let r = parts.pop().unwrap_or(Res::None);
                    self.resolve(*e, x, r, pos + at, sub(buf, at))?;
                }
            }
            Kind::Array(e, _) => {
                let items = self.seq(t, v)?;
                let size = self.ty(*e)?.size as usize;
                for (i, (item, r)) in items.iter().zip(parts_of(res)).enumerate() {
                    self.resolve(*e, item, r, pos + i * size, sub(buf, i * size))?;
                }
            }
            Kind::Tuple(fields) => {
                let items = self.tuple(t, v)?;
                let values: Vec<&Value> = items.iter().collect();
                self.resolve_fields(fields, &values, res, pos, buf)?;
            }
            Kind::Struct { fields, tuple } => {
                let Value::Struct { fields: given, .. } = v else {
                    return self.fail(format!("expected the struct {}, found {}", t.name, kind_of(v)));
                };
                let values = self.match_fields(&t.name, fields, *tuple, given)?;
                self.resolve_fields(fields, &values, res, pos, buf)?;
            }
            Kind::Enum { variants, tag_size } => {
                let (variant, values) = self.match_variant(t, variants, v)?;
                let tag = variant.discriminant.to_le_bytes();
                let n = (*tag_size as usize).min(8);
                buf[..n].copy_from_slice(&tag[..n]);
                self.resolve_fields(&variant.fields, &values, res, pos, buf)?;
            }
            Kind::HashMap(_, val) => {
                let len = self.entries(t, *val, v)?.len();
                if len == 0 {
                    // rkyv's invalid pointer: offset 1.
                    buf[0..4].copy_from_slice(&1i32.to_le_bytes());
                } else {
                    self.rel_to(buf, 0, pos, &res)?;
                }
                buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
                let cap = encode_maps::capacity_for(len) as u32;
                buf[8..12].copy_from_slice(&cap.to_le_bytes());
            }
            Kind::BTreeMap(_, val) => {
                let len = self.entries(t, *val, v)?.len();
                if len == 0 {
                    buf[0..4].copy_from_slice(&1i32.to_le_bytes());
                } else {
                    self.rel_to(buf, 0, pos, &res)?;
                }
                buf[4..8].copy_from_slice(&(len as u32).to_le_bytes());
            }
        }
        Ok(())
    }

    fn resolve_fields(
        &self,
        fields: &[Field],
        values: &[&Value],
        res: Res,
        pos: usize,
        buf: &mut [u8],
    ) -> Result<(), EncodeError> {
        for ((f, item), r) in fields.iter().zip(values).zip(parts_of(res)) {
            let at = f.offset as usize;
            if at > buf.len() {
                return self.fail(format!("field {} at offset {at} lies outside its parent", f.name));
            }
            self.resolve(f.ty, item, r, pos + at, sub(buf, at))?;
        }
        Ok(())
    }

    /// A relative pointer at `buf[at..at + 4]` (absolute `pos + at`) to `target`.
    pub(super) fn rel(&self, buf: &mut [u8], at: usize, pos: usize, target: usize) -> Result<(), EncodeError> {
        let off = target as i128 - (pos + at) as i128;
        let Ok(off) = i32::try_from(off) else {
            return self.fail(format!("a relative pointer of {off} bytes does not fit 32 bits"));
        };
        buf[at..at + 4].copy_from_slice(&off.to_le_bytes());
        Ok(())
    }

    fn rel_to(&self, buf: &mut [u8], at: usize, pos: usize, res: &Res) -> Result<(), EncodeError> {
        match res {
            Res::At(target) => self.rel(buf, at, pos, *target),
            _ => self.fail("internal error: a pointer without a target"),
        }
    }
}

/// `Arc<T>`, `Rc<T>`, `Arc<[T]>`, `Rc<[T]>`, `Arc<str>`, `Rc<str>`, as the
/// decoder tells them (claims.rs).
fn is_shared(t: &TypeDesc) -> bool {
    matches!(t.kind, Kind::Box(_) | Kind::Vec(_)) && (t.name.starts_with("Arc<") || t.name.starts_with("Rc<"))
}

/// The part of `buf` from `at` (empty past its end: the sizes were checked).
fn sub(buf: &mut [u8], at: usize) -> &mut [u8] {
    let at = at.min(buf.len());
    &mut buf[at..]
}

fn parts_of(res: Res) -> impl Iterator<Item = Res> {
    let parts = match res {
        Res::Parts(p) => p,
        _ => Vec::new(),
    };
    parts.into_iter().chain(std::iter::repeat_with(|| Res::None))
}
