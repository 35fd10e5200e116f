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
//! Two differences, both of which readers cannot tell apart from rkyv's own
//! output (the archive validates and reads the same): a `HashMap`'s entries go
//! into the table in key order (rkyv inserts them in the Rust map's iteration
//! order, which depends on its random hasher state, so its bytes differ from
//! run to run anyway), and `Arc`/`Rc` targets are written once per pointer (a
//! [`Value`] does not show which pointers shared a target).

use super::encode_maps;
use super::Value;
use crate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex, Variant};
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

/// One step of the path to the value being encoded, for error messages.
#[derive(Debug, Clone)]
pub(super) enum Seg {
    Field(String),
    Index(usize),
    Variant(String),
    Key(usize),
    Value(usize),
}

pub(super) struct Encoder<'s> {
    pub(super) doc: &'s SchemaDoc,
    /// The archive so far (positions count from its start, as rkyv's).
    pub(super) out: Vec<u8>,
    pub(super) path: Vec<Seg>,
    depth: usize,
}

/// The bytes an `ArchivedString` holds inline.
const INLINE_STRING: usize = 8;
/// rkyv's `OUT_OF_LINE_CAPACITY` with 32-bit lengths: two bits mark the form.
const MAX_STRING: usize = (1 << 30) - 1;

impl<'s> Encoder<'s> {
    pub(super) fn fail<T>(&self, what: impl Into<String>) -> Result<T, EncodeError> {
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
            }
        }
        Err(EncodeError { what: what.into(), path })
    }

    pub(super) fn ty(&self, idx: TypeIndex) -> Result<&'s TypeDesc, EncodeError> {
        match self.doc.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => self.fail(format!("the schema refers to type {idx}, past its {} types", self.doc.types.len())),
        }
    }

    pub(super) fn with<T>(
        &mut self,
        seg: Seg,
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
                let seg = Seg::Variant(variant.name.clone());
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
            parts.push(self.with(Seg::Index(i), |enc| enc.serialize(e, item))?);
        }
        let (t, elem) = (self.ty(idx)?, self.ty(e)?);
        let at = self.pad_to(elem.align);
        for (item, r) in items.iter().zip(parts) {
            self.write_inline(e, item, r)?;
        }
        self.end_target(t, at);
        Ok(at)
    }

    fn parts(&mut self, items: Vec<(TypeIndex, &Value)>, seg: fn(usize) -> Seg) -> Result<Res, EncodeError> {
        let mut parts = Vec::with_capacity(items.len());
        for (i, (ty, item)) in items.into_iter().enumerate() {
            parts.push(self.with(seg(i), |e| e.serialize(ty, item))?);
        }
        Ok(Res::Parts(parts))
    }

    fn field_parts(&mut self, fields: &[Field], tuple: bool, values: &[&Value]) -> Result<Res, EncodeError> {
        let mut parts = Vec::with_capacity(fields.len());
        for (i, (f, item)) in fields.iter().zip(values).enumerate() {
            let seg = if tuple { Seg::Index(i) } else { Seg::Field(f.name.clone()) };
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

    /// bytecheck's invariant of `Duration` (recognised as the decoder does:
    /// by name and fields): nanoseconds below one billion.
    fn duration_rule(&mut self, t: &TypeDesc, fields: &[Field], values: &[&Value]) -> Result<(), EncodeError> {
        let is = |i: usize, n: &str| fields.get(i).is_some_and(|f| f.name == n);
        if t.name != "Duration" || fields.len() != 2 || !is(0, "secs") || !is(1, "nanos") {
            return Ok(());
        }
        let nanos = match values[1] {
            Value::U64(n) => i128::from(*n),
            Value::I64(n) => i128::from(*n),
            Value::U128(n) => i128::try_from(*n).unwrap_or(i128::MAX),
            Value::I128(n) => *n,
            _ => return Ok(()),
        };
        if nanos >= 1_000_000_000 {
            return self.with(Seg::Field("nanos".into()), |e| {
                e.fail(format!("{nanos} is out of range for Duration nanoseconds (at most 999 999 999)"))
            });
        }
        Ok(())
    }

    fn length(&self, n: usize) -> Result<(), EncodeError> {
        if u32::try_from(n).is_err() {
            return self.fail(format!("{n} elements do not fit a 32-bit length"));
        }
        Ok(())
    }

    /// The little-endian bytes of a primitive (and how many), checked against
    /// its type's range and std invariants (`NonZero*`).
    fn primitive(&self, t: &TypeDesc, p: Primitive, v: &Value) -> Result<([u8; 16], usize), EncodeError> {
        let mut out = [0u8; 16];
        let mut put = |bytes: &[u8]| {
            out[..bytes.len()].copy_from_slice(bytes);
            bytes.len()
        };
        let n = match p {
            Primitive::Unit => match v {
                Value::Unit => 0,
                Value::Tuple(items) if items.is_empty() => 0,
                other => return self.fail(format!("expected () for {}, found {}", t.name, kind_of(other))),
            },
            Primitive::Bool => match v {
                Value::Bool(b) => put(&[u8::from(*b)]),
                other => return self.fail(format!("expected a bool for {}, found {}", t.name, kind_of(other))),
            },
            Primitive::Char => match v {
                Value::Char(c) => put(&u32::from(*c).to_le_bytes()),
                Value::String(s) if s.chars().count() == 1 => {
                    put(&u32::from(s.chars().next().unwrap_or_default()).to_le_bytes())
                }
                other => return self.fail(format!("expected a char for {}, found {}", t.name, kind_of(other))),
            },
            Primitive::F32 => put(&(self.float(t, v)? as f32).to_le_bytes()),
            Primitive::F64 => put(&self.float(t, v)?.to_le_bytes()),
            _ => {
                let n = self.integer(t, v)?;
                let fits = |lo: i128, hi: i128| n >= lo && n <= hi;
                let (ok, width) = match p {
                    Primitive::U8 => (fits(0, u8::MAX.into()), 1),
                    Primitive::U16 => (fits(0, u16::MAX.into()), 2),
                    Primitive::U32 | Primitive::Usize => (fits(0, u32::MAX.into()), 4),
                    Primitive::U64 => (fits(0, u64::MAX.into()), 8),
                    Primitive::U128 => (n >= 0 || matches!(v, Value::U128(_)), 16),
                    Primitive::I8 => (fits(i8::MIN.into(), i8::MAX.into()), 1),
                    Primitive::I16 => (fits(i16::MIN.into(), i16::MAX.into()), 2),
                    Primitive::I32 | Primitive::Isize => (fits(i32::MIN.into(), i32::MAX.into()), 4),
                    Primitive::I64 => (fits(i64::MIN.into(), i64::MAX.into()), 8),
                    _ => (!matches!(v, Value::U128(x) if *x > i128::MAX as u128), 16),
                };
                if !ok {
                    return self.fail(format!("{} is out of range for {}", show_int(v), t.name));
                }
                if t.name.starts_with("NonZero") && n == 0 && !matches!(v, Value::U128(x) if *x != 0) {
                    return self.fail(format!("{} cannot be zero", t.name));
                }
                let bytes = match v {
                    Value::U128(x) => x.to_le_bytes(),
                    _ => n.to_le_bytes(),
                };
                put(&bytes[..width])
            }
        };
        Ok((out, n))
    }

    /// An integer value as `i128`; a `U128` past `i128::MAX` wraps (the
    /// range checks look at the value itself).
    fn integer(&self, t: &TypeDesc, v: &Value) -> Result<i128, EncodeError> {
        match v {
            Value::U64(n) => Ok((*n).into()),
            Value::I64(n) => Ok((*n).into()),
            Value::U128(n) => Ok(*n as i128),
            Value::I128(n) => Ok(*n),
            other => self.fail(format!("expected an integer for {}, found {}", t.name, kind_of(other))),
        }
    }

    fn float(&self, t: &TypeDesc, v: &Value) -> Result<f64, EncodeError> {
        match v {
            Value::F64(x) => Ok(*x),
            Value::F32(x) => Ok((*x).into()),
            Value::U64(n) => Ok(*n as f64),
            Value::I64(n) => Ok(*n as f64),
            other => self.fail(format!("expected a number for {}, found {}", t.name, kind_of(other))),
        }
    }

    fn string<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v str, EncodeError> {
        match v {
            Value::String(s) => Ok(s),
            other => self.fail(format!("expected a string for {}, found {}", t.name, kind_of(other))),
        }
    }

    /// The UTF-8 bytes of a `Box<str>` / `Arc<str>` / `Rc<str>` given as a
    /// string; `None` for other vectors (and those given as numbers).
    fn str_bytes<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<Option<&'v [u8]>, EncodeError> {
        let is_str = matches!(t.name.as_str(), "Box<str>" | "Arc<str>" | "Rc<str>");
        match v {
            Value::String(s) if is_str => Ok(Some(s.as_bytes())),
            Value::String(_) => self.fail(format!("expected a sequence for {}, found a string", t.name)),
            _ if is_str => self.fail(format!("expected a string for {}, found {}", t.name, kind_of(v))),
            _ => Ok(None),
        }
    }

    fn seq<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v [Value], EncodeError> {
        match v {
            Value::Seq(items) | Value::Tuple(items) => Ok(items),
            other => self.fail(format!("expected a sequence for {}, found {}", t.name, kind_of(other))),
        }
    }

    fn tuple<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v [Value], EncodeError> {
        match v {
            Value::Tuple(items) | Value::Seq(items) => Ok(items),
            // `PhantomData` decodes to a unit struct.
            Value::Struct { fields: super::Fields::Unit, .. } | Value::Unit => Ok(&[]),
            other => self.fail(format!("expected a tuple for {}, found {}", t.name, kind_of(other))),
        }
    }

    /// The values of `fields`, in the schema's order, from what was given.
    fn match_fields<'v>(
        &self,
        owner: &str,
        fields: &[Field],
        tuple: bool,
        given: &'v super::Fields,
    ) -> Result<Vec<&'v Value>, EncodeError> {
        use super::Fields;
        match given {
            Fields::Unit if fields.is_empty() => Ok(Vec::new()),
            Fields::Named(named) if named.is_empty() && fields.is_empty() => Ok(Vec::new()),
            Fields::Tuple(items) if tuple || fields.is_empty() => {
                if items.len() != fields.len() {
                    return self.fail(format!("{owner} has {} fields, found {}", fields.len(), items.len()));
                }
                Ok(items.iter().collect())
            }
            Fields::Named(named) if !tuple => {
                if let Some((extra, _)) = named.iter().find(|(n, _)| !fields.iter().any(|f| &f.name == n)) {
                    let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                    return self.fail(format!("{owner} has no field {extra:?} (fields: {})", known.join(", ")));
                }
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    let mut found = named.iter().filter(|(n, _)| *n == f.name);
                    match (found.next(), found.next()) {
                        (Some((_, v)), None) => out.push(v),
                        (None, _) => return self.fail(format!("missing field {:?} of {owner}", f.name)),
                        (Some(_), Some(_)) => return self.fail(format!("field {:?} of {owner} given twice", f.name)),
                    }
                }
                Ok(out)
            }
            _ => {
                let want = if fields.is_empty() {
                    "no fields"
                } else if tuple {
                    "positional fields"
                } else {
                    "named fields"
                };
                self.fail(format!("{owner} has {want}, found {}", fields_kind(given)))
            }
        }
    }

    fn match_variant<'v>(
        &self,
        t: &'s TypeDesc,
        variants: &'s [Variant],
        v: &'v Value,
    ) -> Result<(&'s Variant, Vec<&'v Value>), EncodeError> {
        let Value::Enum { variant, fields, .. } = v else {
            return self.fail(format!("expected a variant of the enum {}, found {}", t.name, kind_of(v)));
        };
        let Some(var) = variants.iter().find(|x| &x.name == variant) else {
            let known: Vec<&str> = variants.iter().map(|x| x.name.as_str()).collect();
            return self.fail(format!("{} has no variant {variant:?} (variants: {})", t.name, known.join(", ")));
        };
        let owner = format!("{}::{}", t.name, var.name);
        let values = self.match_fields(&owner, &var.fields, var.tuple, fields)?;
        Ok((var, values))
    }

    /// A map's or set's entries (a set's with `()` values).
    fn entries<'v>(
        &self,
        t: &TypeDesc,
        val: TypeIndex,
        v: &'v Value,
    ) -> Result<Vec<(&'v Value, &'v Value)>, EncodeError> {
        const UNIT: &Value = &Value::Unit;
        let unit_values = self.doc.types.get(val as usize).is_some_and(|x| x.kind == Kind::Primitive(Primitive::Unit));
        match v {
            Value::Map(entries) => Ok(entries.iter().map(|(k, v)| (k, v)).collect()),
            Value::Set(items) | Value::Seq(items) if unit_values => Ok(items.iter().map(|k| (k, UNIT)).collect()),
            other => self.fail(format!("expected a map for {}, found {}", t.name, kind_of(other))),
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

fn show_int(v: &Value) -> String {
    match v {
        Value::U64(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U128(n) => n.to_string(),
        Value::I128(n) => n.to_string(),
        _ => "the value".to_owned(),
    }
}

/// A short description of what a value is, for errors.
pub(super) fn kind_of(v: &Value) -> String {
    match v {
        Value::Unit => "()".into(),
        Value::Bool(b) => format!("the bool {b}"),
        Value::U64(_) | Value::I64(_) | Value::U128(_) | Value::I128(_) => format!("the integer {}", show_int(v)),
        Value::F32(x) => format!("the number {x}"),
        Value::F64(x) => format!("the number {x}"),
        Value::Char(c) => format!("the char {c:?}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Seq(items) => format!("a sequence of {}", items.len()),
        Value::Tuple(items) => format!("a tuple of {}", items.len()),
        Value::Option(None) => "None".into(),
        Value::Option(Some(_)) => "Some(..)".into(),
        Value::Map(entries) => format!("a map of {}", entries.len()),
        Value::Set(items) => format!("a set of {}", items.len()),
        Value::Struct { name, .. } => format!("the struct {name}"),
        Value::Enum { name, variant, .. } => format!("{name}::{variant}"),
    }
}

fn fields_kind(f: &super::Fields) -> &'static str {
    match f {
        super::Fields::Unit => "no fields",
        super::Fields::Tuple(_) => "positional fields",
        super::Fields::Named(_) => "named fields",
    }
}
