//! `serde::Serialize` for [`Value`] (the `serde` feature): what
//! `#[derive(Serialize)]` on the original type, and serde's own impls for the
//! std types, give in a self-describing format such as JSON, so that
//! `serde_json::to_value(&value)` equals `serde_json::to_value(&original)`:
//! - structs with named fields are maps of field name to value; newtype
//!   structs (`S(x)`) are `x`; other tuple structs and tuples are sequences;
//!   unit structs, `()` and `PhantomData` are unit (`null`);
//! - enums are externally tagged: `"Unit"`, `{"Newtype": x}`,
//!   `{"Tuple": [a, b]}`, `{"Named": {"f": x}}` (so `Result` is `{"Ok": x}` /
//!   `{"Err": e}`);
//! - `None` is unit, `Some(x)` is `x`, `Box<T>`, `Arc<T>`, `Rc<T>` are `T`;
//!   `Box<str>`, `Arc<str>`, `Rc<str>` are strings;
//! - the IP and socket addresses are serde's: strings such as `"::1"`,
//!   `"127.0.0.1:80"` in human-readable formats, its compact forms otherwise;
//!   `Duration` is serde's `{"secs", "nanos"}` struct;
//! - `HashSet` / `BTreeSet` are sequences (a `HashSet`'s sorted, see
//!   [`Value::Set`]);
//! - maps whose keys serde_json can write as object keys are maps: strings,
//!   chars, integers, bools, finite floats, unit variants, addresses (or
//!   newtypes and boxes of them). Maps with other keys, which serde_json
//!   refuses ("key must be a string"), are sequences of `[key, value]`
//!   instead, so that a dump of them still succeeds;
//! - a `u128`/`i128` outside the 64-bit range is a decimal string
//!   (serde_json's `Value` cannot hold it as a number, and fails).
//!
//! Type and field names are only known at run time, so structs and enums go
//! through serde's map and string forms, not its struct and variant ones: the
//! output is the same in JSON; non-self-describing formats see maps.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::std_types::Std;
use super::{Fields, Value};

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(std) = Std::of(self) {
            return std.serialize(s);
        }
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
            Value::Seq(items) | Value::Tuple(items) | Value::Set(items) => s.collect_seq(items),
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

/// Whether `k` can be a JSON object key: whether serde_json's key serializer
/// takes what `k` serializes as (a string, a char, an integer, a bool, a
/// finite float, a unit variant, or a newtype of one of them).
fn is_string_key(k: &Value) -> bool {
    if let Some(std) = Std::of(k) {
        return std.is_string();
    }
    match k {
        Value::Bool(_)
        | Value::U64(_)
        | Value::I64(_)
        | Value::U128(_)
        | Value::I128(_)
        | Value::Char(_)
        | Value::String(_) => true,
        Value::F32(x) => x.is_finite(),
        Value::F64(x) => x.is_finite(),
        Value::Enum { fields: Fields::Unit, .. } => true,
        Value::Struct { fields: Fields::Tuple(items), .. } if items.len() == 1 => is_string_key(&items[0]),
        _ => false,
    }
}
