//! `serde::Serialize` for [`Value`] (the `serde` feature), following what
//! `#[derive(Serialize)]` on the original type gives in a self-describing
//! format such as JSON:
//! - structs with named fields are maps of field name to value; newtype
//!   structs (`S(x)`) are `x`; other tuple structs and tuples are sequences;
//!   unit structs and `()` are unit (`null`);
//! - enums are externally tagged: `"Unit"`, `{"Newtype": x}`,
//!   `{"Tuple": [a, b]}`, `{"Named": {"f": x}}`;
//! - `None` is unit, `Some(x)` is `x`, `Box<T>` is `T`;
//! - maps whose keys are strings, chars, integers, bools or unit variants (or
//!   newtypes of them) are maps, other maps are sequences of `[key, value]`
//!   (JSON objects need string keys);
//! - a `u128`/`i128` outside the 64-bit range is a decimal string
//!   (serde_json's `Value` cannot hold it as a number).
//!
//! Type and field names are only known at run time, so structs and enums go
//! through serde's map and string forms, not its struct and variant ones: the
//! output is the same in JSON; non-self-describing formats see maps.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Fields, Value};

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Unit => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::U64(n) => s.serialize_u64(*n),
            Value::I64(n) => s.serialize_i64(*n),
            Value::U128(n) => match u64::try_from(*n) {
                Ok(n) => s.serialize_u64(n),
                Err(_) => s.collect_str(n),
            },
            Value::I128(n) => match i64::try_from(*n) {
                Ok(n) => s.serialize_i64(n),
                Err(_) => s.collect_str(n),
            },
            Value::F32(x) => s.serialize_f32(*x),
            Value::F64(x) => s.serialize_f64(*x),
            Value::Char(c) => s.serialize_char(*c),
            Value::String(v) => s.serialize_str(v),
            Value::Seq(items) | Value::Tuple(items) => s.collect_seq(items),
            Value::Option(None) => s.serialize_none(),
            Value::Option(Some(x)) => s.serialize_some(&**x),
            Value::Struct { fields, .. } => fields.serialize(s),
            Value::Enum { variant, fields: Fields::Unit, .. } => s.serialize_str(variant),
            Value::Enum { variant, fields, .. } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(variant, fields)?;
                m.end()
            }
            Value::Map(entries) if entries.iter().all(|(k, _)| is_string_key(k)) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            Value::Map(entries) => {
                let mut seq = s.serialize_seq(Some(entries.len()))?;
                for (k, v) in entries {
                    seq.serialize_element(&(k, v))?;
                }
                seq.end()
            }
        }
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Fields::Unit => s.serialize_unit(),
            Fields::Tuple(items) if items.len() == 1 => items[0].serialize(s),
            Fields::Tuple(items) => s.collect_seq(items),
            Fields::Named(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (name, v) in fields {
                    m.serialize_entry(name, v)?;
                }
                m.end()
            }
        }
    }
}

/// Whether `k` can be a JSON object key (what serde_json's key serializer takes).
fn is_string_key(k: &Value) -> bool {
    match k {
        Value::Bool(_)
        | Value::U64(_)
        | Value::I64(_)
        | Value::U128(_)
        | Value::I128(_)
        | Value::Char(_)
        | Value::String(_) => true,
        Value::Enum { fields: Fields::Unit, .. } => true,
        Value::Struct { fields: Fields::Tuple(items), .. } if items.len() == 1 => is_string_key(&items[0]),
        _ => false,
    }
}
