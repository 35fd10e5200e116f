//! What a [`Value`] must look like for each kind of type the encoder writes
//! (encode.rs): the checks and conversions of primitives (ranges, `NonZero*`,
//! `Duration`), strings, sequences, tuples, struct fields, enum variants and
//! map entries, with the error for a value of another shape.

use super::encode::{Encoder, Seg};
use super::{EncodeError, Value};
use crate::schema::{Field, Kind, Primitive, TypeDesc, TypeIndex, Variant};

impl<'s> Encoder<'s> {
    /// bytecheck's invariant of `Duration` (recognised as the decoder does:
    /// by name and fields): nanoseconds below one billion.
    pub(super) fn duration_rule(
        &mut self,
        t: &TypeDesc,
        fields: &[Field],
        values: &[&Value],
    ) -> Result<(), EncodeError> {
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
            return self.with(Seg::Field("nanos"), |e| {
                e.fail(format!("{nanos} is out of range for Duration nanoseconds (at most 999 999 999)"))
            });
        }
        Ok(())
    }

    pub(super) fn length(&self, n: usize) -> Result<(), EncodeError> {
        if u32::try_from(n).is_err() {
            return self.fail(format!("{n} elements do not fit a 32-bit length"));
        }
        Ok(())
    }

    /// The little-endian bytes of a primitive (and how many), checked against
    /// its type's range and std invariants (`NonZero*`).
    pub(super) fn primitive(&self, t: &TypeDesc, p: Primitive, v: &Value) -> Result<([u8; 16], usize), EncodeError> {
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
                // A `U128` wraps to 0 here only when it is 0.
                if t.name.starts_with("NonZero") && n == 0 {
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
    pub(super) fn integer(&self, t: &TypeDesc, v: &Value) -> Result<i128, EncodeError> {
        match v {
            Value::U64(n) => Ok((*n).into()),
            Value::I64(n) => Ok((*n).into()),
            Value::U128(n) => Ok(*n as i128),
            Value::I128(n) => Ok(*n),
            other => self.fail(format!("expected an integer for {}, found {}", t.name, kind_of(other))),
        }
    }

    pub(super) fn float(&self, t: &TypeDesc, v: &Value) -> Result<f64, EncodeError> {
        match v {
            Value::F64(x) => Ok(*x),
            Value::F32(x) => Ok((*x).into()),
            Value::U64(n) => Ok(*n as f64),
            Value::I64(n) => Ok(*n as f64),
            other => self.fail(format!("expected a number for {}, found {}", t.name, kind_of(other))),
        }
    }

    pub(super) fn string<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v str, EncodeError> {
        match v {
            Value::String(s) => Ok(s),
            other => self.fail(format!("expected a string for {}, found {}", t.name, kind_of(other))),
        }
    }

    /// The UTF-8 bytes of a `Box<str>` / `Arc<str>` / `Rc<str>` given as a
    /// string; `None` for other vectors (and those given as numbers).
    pub(super) fn str_bytes<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<Option<&'v [u8]>, EncodeError> {
        let is_str = matches!(t.name.as_str(), "Box<str>" | "Arc<str>" | "Rc<str>");
        match v {
            Value::String(s) if is_str => Ok(Some(s.as_bytes())),
            Value::String(_) => self.fail(format!("expected a sequence for {}, found a string", t.name)),
            _ if is_str => self.fail(format!("expected a string for {}, found {}", t.name, kind_of(v))),
            _ => Ok(None),
        }
    }

    pub(super) fn seq<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v [Value], EncodeError> {
        match v {
            Value::Seq(items) | Value::Tuple(items) => Ok(items),
            other => self.fail(format!("expected a sequence for {}, found {}", t.name, kind_of(other))),
        }
    }

    pub(super) fn tuple<'v>(&self, t: &TypeDesc, v: &'v Value) -> Result<&'v [Value], EncodeError> {
        match v {
            Value::Tuple(items) | Value::Seq(items) => Ok(items),
            // `PhantomData` decodes to a unit struct.
            Value::Struct { fields: super::Fields::Unit, .. } | Value::Unit => Ok(&[]),
            other => self.fail(format!("expected a tuple for {}, found {}", t.name, kind_of(other))),
        }
    }

    /// The values of `fields`, in the schema's order, from what was given.
    pub(super) fn match_fields<'v>(
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

    pub(super) fn match_variant<'v>(
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
    pub(super) fn entries<'v>(
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
