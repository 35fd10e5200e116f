//! JSON to a [`Value`] under a schema (the `serde` feature): the inverse of
//! `Value`'s `Serialize` (serialize.rs), so that what `shmstate dump --json`
//! prints, edited or not, is what `shmstate publish` takes. The JSON forms are
//! serde's, as `#[derive(Deserialize)]` on the original type reads them
//! (docs/CLI.md has the table):
//! - structs are objects of their fields (every field, no others); newtype
//!   structs are their field; tuple structs and tuples are arrays; unit
//!   structs, `()` and `PhantomData` are `null`;
//! - enums are `"Unit"` or `{"Variant": payload}` (payload as for structs);
//! - `None` is `null`, `Some(x)` is `x`; `Box`, `Arc`, `Rc` are their content;
//! - the IP and socket addresses are strings (`"127.0.0.1:80"`), or their
//!   archived fields; `Duration` is `{"secs", "nanos"}`;
//! - maps are objects (keys as serde_json writes them: numbers, bools, chars,
//!   unit variants and addresses as strings) or arrays of `[key, value]`;
//!   sets are arrays;
//! - `u128`/`i128` are numbers or decimal strings; a float that serde_json
//!   wrote as `null` (NaN, infinities) reads back as NaN.
//!
//! A mismatch is an [`EncodeError`] whose path is the JSON path
//! (`.hosts[2].port`, `.limits["max"]`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use serde_json::Value as Json;

use super::{EncodeError, Fields, Value};
use crate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex};

/// The [`Value`] that `json` describes under `schema`, ready for
/// [`encode`](super::encode).
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub fn from_json(schema: &SchemaDoc, json: &Json) -> Result<Value, EncodeError> {
    Reader { doc: schema, path: Vec::new() }.value(schema.root, json)
}

struct Reader<'s> {
    doc: &'s SchemaDoc,
    path: Vec<String>,
}

impl<'s> Reader<'s> {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, EncodeError> {
        Err(EncodeError { what: what.into(), path: self.path.concat() })
    }

    fn ty(&self, idx: TypeIndex) -> Result<&'s TypeDesc, EncodeError> {
        match self.doc.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => self.fail(format!("the schema refers to type {idx}, past its {} types", self.doc.types.len())),
        }
    }

    fn at<T>(&mut self, seg: String, f: impl FnOnce(&mut Self) -> Result<T, EncodeError>) -> Result<T, EncodeError> {
        if self.path.len() >= super::MAX_ENCODE_DEPTH {
            return self.fail(format!("the JSON nests deeper than {} levels", super::MAX_ENCODE_DEPTH));
        }
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    fn value(&mut self, idx: TypeIndex, j: &Json) -> Result<Value, EncodeError> {
        let t = self.ty(idx)?;
        if let Some(v) = self.address(t, j)? {
            return Ok(v);
        }
        match &t.kind {
            Kind::Primitive(p) => self.primitive(t, *p, j),
            Kind::String => match j {
                Json::String(s) => Ok(Value::String(s.clone())),
                other => self.expected("a string", t, other),
            },
            Kind::Vec(e) => {
                if matches!(t.name.as_str(), "Box<str>" | "Arc<str>" | "Rc<str>") {
                    return match j {
                        Json::String(s) => Ok(Value::String(s.clone())),
                        other => self.expected("a string", t, other),
                    };
                }
                let Json::Array(items) = j else { return self.expected("an array", t, j) };
                self.items(*e, items).map(Value::Seq)
            }
            Kind::Box(e) => self.value(*e, j),
            Kind::Option(e) => match j {
                Json::Null => Ok(Value::Option(None)),
                other => Ok(Value::Option(Some(Box::new(self.value(*e, other)?)))),
            },
            Kind::Array(e, n) => {
                let Json::Array(items) = j else { return self.expected("an array", t, j) };
                if items.len() as u64 != *n {
                    return self.fail(format!("{} needs {n} elements, found {}", t.name, items.len()));
                }
                self.items(*e, items).map(Value::Seq)
            }
            Kind::Tuple(fields) => match j {
                Json::Null if fields.is_empty() && t.name.starts_with("PhantomData<") => {
                    Ok(Value::Struct { name: t.name.clone(), fields: Fields::Unit })
                }
                Json::Null if fields.is_empty() => Ok(Value::Tuple(Vec::new())),
                Json::Array(items) if items.len() == fields.len() => self.positional(fields, items).map(Value::Tuple),
                Json::Array(items) => {
                    self.fail(format!("{} has {} elements, found an array of {}", t.name, fields.len(), items.len()))
                }
                other => self.expected("an array", t, other),
            },
            Kind::Struct { fields, tuple } => {
                let fields = self.fields(&t.name, fields, *tuple, j)?;
                Ok(Value::Struct { name: t.name.clone(), fields })
            }
            Kind::Enum { variants, .. } => {
                let (name, payload) = match j {
                    Json::String(s) => (s.as_str(), None),
                    Json::Object(m) if m.len() == 1 => {
                        let (k, v) = m.iter().next().map(|(k, v)| (k.as_str(), v)).unwrap_or(("", &Json::Null));
                        (k, Some(v))
                    }
                    other => return self.expected("a variant name or a one-key object", t, other),
                };
                let Some(var) = variants.iter().find(|v| v.name == name) else {
                    let known: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
                    return self.fail(format!("{} has no variant {name:?} (variants: {})", t.name, known.join(", ")));
                };
                let owner = format!("{}::{}", t.name, var.name);
                let fields = match payload {
                    None if var.fields.is_empty() => Fields::Unit,
                    None => return self.fail(format!("{owner} has fields: write {{\"{name}\": …}}")),
                    Some(p) => self.at(format!(".{name}"), |r| r.fields(&owner, &var.fields, var.tuple, p))?,
                };
                Ok(Value::Enum { name: t.name.clone(), variant: var.name.clone(), fields })
            }
            Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => self.map(t, *k, *v, j),
        }
    }

    fn expected<T>(&self, what: &str, t: &TypeDesc, found: &Json) -> Result<T, EncodeError> {
        self.fail(format!("expected {what} for {}, found {}", t.name, json_kind(found)))
    }

    fn items(&mut self, e: TypeIndex, items: &[Json]) -> Result<Vec<Value>, EncodeError> {
        let t = self.ty(e)?;
        if let Kind::Primitive(p) = t.kind {
            return self.primitives(t, p, items);
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.at(format!("[{i}]"), |r| r.value(e, item))?);
        }
        Ok(out)
    }

    /// `items` for numbers, bools and chars: no path step per element (a
    /// vector of a million numbers formatted a million of them), only for
    /// the one that does not fit.
    fn primitives(&mut self, t: &TypeDesc, p: Primitive, items: &[Json]) -> Result<Vec<Value>, EncodeError> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.primitive(t, p, item) {
                Ok(v) => out.push(v),
                Err(_) => return self.at(format!("[{i}]"), |r| r.primitive(t, p, item).map(|_| Vec::new())),
            }
        }
        Ok(out)
    }

    fn positional(&mut self, fields: &[Field], items: &[Json]) -> Result<Vec<Value>, EncodeError> {
        let mut out = Vec::with_capacity(items.len());
        for (i, (f, item)) in fields.iter().zip(items).enumerate() {
            out.push(self.at(format!("[{i}]"), |r| r.value(f.ty, item))?);
        }
        Ok(out)
    }

    /// The fields of a struct or variant: `null` (none), the field (newtype),
    /// an array (positional) or an object (named).
    fn fields(&mut self, owner: &str, fields: &[Field], tuple: bool, j: &Json) -> Result<Fields, EncodeError> {
        if fields.is_empty() {
            return match j {
                Json::Null => Ok(Fields::Unit),
                Json::Array(a) if a.is_empty() && tuple => Ok(Fields::Tuple(Vec::new())),
                Json::Object(m) if m.is_empty() && !tuple => Ok(Fields::Named(Vec::new())),
                other => self.fail(format!("{owner} has no fields, found {}", json_kind(other))),
            };
        }
        if tuple {
            if fields.len() == 1 {
                return Ok(Fields::Tuple(vec![self.value(fields[0].ty, j)?]));
            }
            return match j {
                Json::Array(items) if items.len() == fields.len() => self.positional(fields, items).map(Fields::Tuple),
                other => {
                    self.fail(format!("{owner} has {} positional fields, found {}", fields.len(), json_kind(other)))
                }
            };
        }
        let Json::Object(m) = j else {
            return self.fail(format!("expected an object for {owner}, found {}", json_kind(j)));
        };
        if let Some(extra) = m.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
            let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            return self.fail(format!("{owner} has no field {extra:?} (fields: {})", known.join(", ")));
        }
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let Some(v) = m.get(&f.name) else {
                return self.fail(format!("missing field {:?} of {owner}", f.name));
            };
            out.push((f.name.clone(), self.at(format!(".{}", f.name), |r| r.value(f.ty, v))?));
        }
        Ok(Fields::Named(out))
    }

    fn map(&mut self, t: &TypeDesc, k: TypeIndex, v: TypeIndex, j: &Json) -> Result<Value, EncodeError> {
        let is_set = self.ty(v)?.kind == Kind::Primitive(Primitive::Unit)
            && (t.name.starts_with("HashSet<") || t.name.starts_with("BTreeSet<"));
        if is_set {
            let Json::Array(items) = j else { return self.expected("an array", t, j) };
            return self.items(k, items).map(Value::Set);
        }
        let mut entries = Vec::new();
        match j {
            Json::Object(m) => {
                for (key, value) in m {
                    self.at(format!("[{key:?}]"), |r| {
                        let key_json = r.key_json(k, key)?;
                        let key = r.value(k, &key_json)?;
                        entries.push((key, r.value(v, value)?));
                        Ok(())
                    })?;
                }
            }
            Json::Array(pairs) => {
                for (i, pair) in pairs.iter().enumerate() {
                    self.at(format!("[{i}]"), |r| match pair {
                        Json::Array(kv) if kv.len() == 2 => {
                            let key = r.at("[0]".into(), |r| r.value(k, &kv[0]))?;
                            let value = r.at("[1]".into(), |r| r.value(v, &kv[1]))?;
                            entries.push((key, value));
                            Ok(())
                        }
                        other => r.fail(format!("expected a [key, value] pair, found {}", json_kind(other))),
                    })?;
                }
            }
            other => return self.expected("an object or an array of [key, value] pairs", t, other),
        }
        Ok(Value::Map(entries))
    }

    /// The JSON value a JSON object key stands for, for a key of type `k`
    /// (serde_json writes numbers and bools as strings there).
    fn key_json(&self, k: TypeIndex, key: &str) -> Result<Json, EncodeError> {
        let t = self.ty(k)?;
        Ok(match &t.kind {
            Kind::Primitive(Primitive::Bool) => match key {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                _ => return self.fail(format!("the key {key:?} is not a bool")),
            },
            Kind::Primitive(Primitive::F32 | Primitive::F64) => match key.parse::<f64>() {
                Ok(x) => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
                Err(_) => return self.fail(format!("the key {key:?} is not a number")),
            },
            Kind::Primitive(Primitive::Char | Primitive::Unit) => Json::String(key.to_owned()),
            Kind::Primitive(_) => {
                if let Ok(n) = key.parse::<u64>() {
                    Json::from(n)
                } else if let Ok(n) = key.parse::<i64>() {
                    Json::from(n)
                } else {
                    // 128-bit integers are decimal strings anyway.
                    Json::String(key.to_owned())
                }
            }
            Kind::Box(e) => self.key_json(*e, key)?,
            Kind::Struct { fields, tuple: true } if fields.len() == 1 && !is_address(t) => {
                self.key_json(fields[0].ty, key)?
            }
            _ => Json::String(key.to_owned()),
        })
    }

    fn primitive(&self, t: &TypeDesc, p: Primitive, j: &Json) -> Result<Value, EncodeError> {
        let out_of_range = || self.fail(format!("{j} is out of range for {}", t.name));
        match p {
            Primitive::Unit => match j {
                Json::Null => Ok(Value::Unit),
                other => self.expected("null", t, other),
            },
            Primitive::Bool => match j {
                Json::Bool(b) => Ok(Value::Bool(*b)),
                other => self.expected("true or false", t, other),
            },
            Primitive::Char => match j {
                Json::String(s) if s.chars().count() == 1 => Ok(Value::Char(s.chars().next().unwrap_or_default())),
                other => self.expected("a one-character string", t, other),
            },
            Primitive::F32 | Primitive::F64 => {
                let x = match j {
                    Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    Json::Null => f64::NAN,
                    other => return self.expected("a number", t, other),
                };
                Ok(if p == Primitive::F32 { Value::F32(x as f32) } else { Value::F64(x) })
            }
            Primitive::U128 | Primitive::I128 => {
                let n: Option<i128> = match j {
                    Json::Number(n) => n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)),
                    Json::String(s) if p == Primitive::U128 => {
                        return s.parse::<u128>().map(Value::U128).or_else(|_| out_of_range())
                    }
                    Json::String(s) => s.parse::<i128>().ok(),
                    other => return self.expected("an integer (or a decimal string)", t, other),
                };
                match (n, p) {
                    (Some(n), Primitive::U128) if n >= 0 => Ok(Value::U128(n as u128)),
                    (Some(n), Primitive::I128) => Ok(Value::I128(n)),
                    _ if matches!(j, Json::Number(n) if n.is_f64()) => self.fail(format!(
                        "{j} is not an integer for {} (write integers past 64 bits as decimal strings, as dump does)",
                        t.name
                    )),
                    _ => out_of_range(),
                }
            }
            _ => {
                let n: i128 = match j {
                    Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                        (Some(u), _) => u.into(),
                        (None, Some(i)) => i.into(),
                        _ => return self.fail(format!("expected an integer for {}, found {j}", t.name)),
                    },
                    other => return self.expected("an integer", t, other),
                };
                // Checked here too (the encoder checks again) so that the
                // error names the JSON path.
                let (lo, hi): (i128, i128) = match p {
                    Primitive::U8 => (0, u8::MAX.into()),
                    Primitive::U16 => (0, u16::MAX.into()),
                    Primitive::U32 | Primitive::Usize => (0, u32::MAX.into()),
                    Primitive::U64 => (0, u64::MAX.into()),
                    Primitive::I8 => (i8::MIN.into(), i8::MAX.into()),
                    Primitive::I16 => (i16::MIN.into(), i16::MAX.into()),
                    Primitive::I32 | Primitive::Isize => (i32::MIN.into(), i32::MAX.into()),
                    _ => (i64::MIN.into(), i64::MAX.into()),
                };
                if n < lo || n > hi {
                    return out_of_range();
                }
                if n == 0 && t.name.starts_with("NonZero") {
                    return self.fail(format!("{} cannot be zero", t.name));
                }
                Ok(if n >= 0 { Value::U64(n as u64) } else { Value::I64(n as i64) })
            }
        }
    }

    /// An address written as serde writes it: a string, parsed by std and
    /// turned into the archived fields the schema describes.
    fn address(&self, t: &TypeDesc, j: &Json) -> Result<Option<Value>, EncodeError> {
        let Json::String(s) = j else { return Ok(None) };
        if !is_address(t) {
            return Ok(None);
        }
        let bad = |what: &str| self.fail(format!("{s:?} is not {what} (for {})", t.name));
        let v = match t.name.as_str() {
            "Ipv4Addr" => s.parse::<Ipv4Addr>().map(v4).or_else(|_| bad("an IPv4 address"))?,
            "Ipv6Addr" => s.parse::<Ipv6Addr>().map(v6).or_else(|_| bad("an IPv6 address"))?,
            "IpAddr" => s.parse::<IpAddr>().map(ip).or_else(|_| bad("an IP address"))?,
            "SocketAddrV4" => s.parse::<SocketAddrV4>().map(sock4).or_else(|_| bad("an IPv4 socket address"))?,
            "SocketAddrV6" => s.parse::<SocketAddrV6>().map(sock6).or_else(|_| bad("an IPv6 socket address"))?,
            _ => s.parse::<SocketAddr>().map(sock).or_else(|_| bad("a socket address"))?,
        };
        Ok(Some(v))
    }
}

/// The std addresses, as std_structs.rs describes them.
fn is_address(t: &TypeDesc) -> bool {
    let name = t.name.as_str();
    match &t.kind {
        Kind::Struct { fields, tuple: false } => match name {
            "Ipv4Addr" | "Ipv6Addr" => fields.len() == 1 && fields[0].name == "octets",
            "SocketAddrV4" => fields.len() == 2 && fields[0].name == "ip",
            "SocketAddrV6" => fields.len() == 4 && fields[0].name == "ip",
            _ => false,
        },
        Kind::Enum { variants, .. } => {
            matches!(name, "IpAddr" | "SocketAddr")
                && variants.len() == 2
                && variants[0].name == "V4"
                && variants[1].name == "V6"
        }
        _ => false,
    }
}

fn named(name: &str, fields: Vec<(&str, Value)>) -> Value {
    let fields = fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
    Value::Struct { name: name.to_owned(), fields: Fields::Named(fields) }
}

fn octets(o: &[u8]) -> Value {
    Value::Seq(o.iter().map(|&b| Value::U64(b.into())).collect())
}

fn v4(a: Ipv4Addr) -> Value {
    named("Ipv4Addr", vec![("octets", octets(&a.octets()))])
}

fn v6(a: Ipv6Addr) -> Value {
    named("Ipv6Addr", vec![("octets", octets(&a.octets()))])
}

fn variant(name: &str, v: &str, inner: Value) -> Value {
    Value::Enum { name: name.to_owned(), variant: v.to_owned(), fields: Fields::Tuple(vec![inner]) }
}

fn ip(a: IpAddr) -> Value {
    match a {
        IpAddr::V4(a) => variant("IpAddr", "V4", v4(a)),
        IpAddr::V6(a) => variant("IpAddr", "V6", v6(a)),
    }
}

fn sock4(a: SocketAddrV4) -> Value {
    named("SocketAddrV4", vec![("ip", v4(*a.ip())), ("port", Value::U64(a.port().into()))])
}

fn sock6(a: SocketAddrV6) -> Value {
    named(
        "SocketAddrV6",
        vec![
            ("ip", v6(*a.ip())),
            ("port", Value::U64(a.port().into())),
            ("flowinfo", Value::U64(a.flowinfo().into())),
            ("scope_id", Value::U64(a.scope_id().into())),
        ],
    )
}

fn sock(a: SocketAddr) -> Value {
    match a {
        SocketAddr::V4(a) => variant("SocketAddr", "V4", sock4(a)),
        SocketAddr::V6(a) => variant("SocketAddr", "V6", sock6(a)),
    }
}

fn json_kind(j: &Json) -> String {
    match j {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Json::String(_) => "a string".into(),
        Json::Array(a) => format!("an array of {}", a.len()),
        Json::Object(m) => format!("an object of {} keys", m.len()),
    }
}
