//! Rendering decoded values: JSON with serde's conventions, or Rust-debug-like text.
//!
//! JSON follows what `serde_json::to_value` gives for the original Rust value
//! with `#[derive(Serialize)]` defaults:
//! - structs with named fields are objects; newtype structs (`S(x)`) are `x`;
//!   other tuple structs and tuples are arrays; unit structs and `()` are `null`;
//! - enums are externally tagged: `"Unit"`, `{"Newtype": x}`,
//!   `{"Tuple": [a, b]}`, `{"Named": {"f": x}}`;
//! - `None` is `null`, `Some(x)` is `x`, `Box<T>` is `T`, `char` is a string;
//! - maps whose keys are strings, chars, integers, bools or unit-only enums are
//!   objects with stringified keys, other maps are arrays of `[key, value]`;
//! - integers are numbers (a `u128`/`i128` outside the 64-bit range becomes a
//!   decimal string); non-finite floats are `null`.

use serde_json::{Map, Value};

use crate::dump::{Fields, Val};

/// The JSON form of a decoded value.
pub fn to_json(v: &Val<'_>) -> Value {
    match v {
        Val::Unit => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::U(n) => u64::try_from(*n).map_or_else(|_| Value::String(n.to_string()), Value::from),
        Val::I(n) => i64::try_from(*n).map_or_else(|_| Value::String(n.to_string()), Value::from),
        Val::F32(x) => serde_json::to_value(x).unwrap_or(Value::Null),
        Val::F64(x) => serde_json::to_value(x).unwrap_or(Value::Null),
        Val::Char(c) => Value::String(c.to_string()),
        Val::Str(s) => Value::String(s.clone()),
        Val::Seq(items) | Val::Tuple(items) => Value::Array(items.iter().map(to_json).collect()),
        Val::Opt(None) => Value::Null,
        Val::Opt(Some(x)) | Val::Boxed(x) => to_json(x),
        Val::Struct { fields, .. } => fields_json(fields),
        Val::Variant { name, fields: Fields::Unit, .. } => Value::String((*name).to_owned()),
        Val::Variant { name, fields, .. } => {
            let mut m = Map::new();
            m.insert((*name).to_owned(), fields_json(fields));
            Value::Object(m)
        }
        Val::Map { entries, string_keys: true } => {
            let mut m = Map::new();
            for (k, v) in entries {
                m.insert(key_string(k), to_json(v));
            }
            Value::Object(m)
        }
        Val::Map { entries, string_keys: false } => {
            Value::Array(entries.iter().map(|(k, v)| Value::Array(vec![to_json(k), to_json(v)])).collect())
        }
    }
}

fn fields_json(fields: &Fields<'_>) -> Value {
    match fields {
        Fields::Unit => Value::Null,
        Fields::Tuple(items) if items.len() == 1 => to_json(&items[0]),
        Fields::Tuple(items) => Value::Array(items.iter().map(to_json).collect()),
        Fields::Named(fs) => Value::Object(fs.iter().map(|(n, v)| ((*n).to_owned(), to_json(v))).collect()),
    }
}

/// A map key as serde_json spells it in an object.
fn key_string(k: &Val<'_>) -> String {
    match to_json(k) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Rust-debug-like text, wrapped at `width` columns with 4-space indentation.
pub fn to_text(v: &Val<'_>, width: usize) -> String {
    let mut out = String::new();
    pretty(v, 0, width, &mut out);
    out
}

/// Appends the one-line form of `v` to `out`; false (stopping early) once
/// `out` is longer than `limit`.
fn inline(v: &Val<'_>, out: &mut String, limit: usize) -> bool {
    if out.len() > limit {
        return false;
    }
    match v {
        Val::Unit => out.push_str("()"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::U(n) => out.push_str(&n.to_string()),
        Val::I(n) => out.push_str(&n.to_string()),
        Val::F32(x) => out.push_str(&format!("{x:?}")),
        Val::F64(x) => out.push_str(&format!("{x:?}")),
        Val::Char(c) => out.push_str(&format!("{c:?}")),
        Val::Str(s) => out.push_str(&format!("{s:?}")),
        Val::Opt(None) => out.push_str("None"),
        Val::Opt(Some(x)) => return list(out, "Some(", ")", std::iter::once((None, &**x)), limit),
        Val::Boxed(x) => return inline(x, out, limit),
        Val::Seq(items) => return list(out, "[", "]", items.iter().map(|x| (None, x)), limit),
        Val::Tuple(items) => {
            let close = if items.len() == 1 { ",)" } else { ")" };
            return list(out, "(", close, items.iter().map(|x| (None, x)), limit);
        }
        Val::Struct { name, fields } | Val::Variant { name, fields, .. } => {
            out.push_str(name);
            return inline_fields(fields, out, limit);
        }
        Val::Map { entries, .. } => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if !inline(k, out, limit) {
                    return false;
                }
                out.push_str(": ");
                if !inline(v, out, limit) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    out.len() <= limit
}

fn inline_fields(fields: &Fields<'_>, out: &mut String, limit: usize) -> bool {
    match fields {
        Fields::Unit => out.len() <= limit,
        Fields::Tuple(items) => list(out, "(", ")", items.iter().map(|x| (None, x)), limit),
        Fields::Named(fs) => list(out, " { ", " }", fs.iter().map(|(n, x)| (Some(*n), x)), limit),
    }
}

fn list<'a, 's: 'a>(
    out: &mut String,
    open: &str,
    close: &str,
    items: impl Iterator<Item = (Option<&'a str>, &'a Val<'s>)>,
    limit: usize,
) -> bool {
    out.push_str(open);
    for (i, (name, x)) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if let Some(n) = name {
            out.push_str(n);
            out.push_str(": ");
        }
        if !inline(x, out, limit) {
            return false;
        }
    }
    out.push_str(close);
    out.len() <= limit
}

/// Writes `v` at the current position (column `indent`): inline if it fits in
/// `width`, otherwise one member per line.
fn pretty(v: &Val<'_>, indent: usize, width: usize, out: &mut String) {
    let mut one = String::new();
    if inline(v, &mut one, width.saturating_sub(indent)) {
        out.push_str(&one);
        return;
    }
    let pad = " ".repeat(indent + 4);
    let block =
        |out: &mut String, open: &str, close: &str, items: &mut dyn Iterator<Item = (Option<String>, &Val<'_>)>| {
            out.push_str(open);
            out.push('\n');
            for (label, x) in items {
                out.push_str(&pad);
                if let Some(l) = label {
                    out.push_str(&l);
                }
                pretty(x, indent + 4, width, out);
                out.push_str(",\n");
            }
            out.push_str(&" ".repeat(indent));
            out.push_str(close);
        };
    match v {
        Val::Opt(Some(x)) => block(out, "Some(", ")", &mut std::iter::once((None, &**x))),
        Val::Boxed(x) => pretty(x, indent, width, out),
        Val::Seq(items) => block(out, "[", "]", &mut items.iter().map(|x| (None, x))),
        Val::Tuple(items) => block(out, "(", ")", &mut items.iter().map(|x| (None, x))),
        Val::Struct { name, fields } | Val::Variant { name, fields, .. } => {
            out.push_str(name);
            match fields {
                Fields::Unit => {}
                Fields::Tuple(items) => block(out, "(", ")", &mut items.iter().map(|x| (None, x))),
                Fields::Named(fs) => block(out, " {", "}", &mut fs.iter().map(|(n, x)| (Some(format!("{n}: ")), x))),
            }
        }
        Val::Map { entries, .. } => {
            out.push_str("{\n");
            for (k, x) in entries {
                out.push_str(&pad);
                pretty(k, indent + 4, width, out);
                out.push_str(": ");
                pretty(x, indent + 4, width, out);
                out.push_str(",\n");
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        // Scalars always fit on their line (long strings just overflow it).
        other => {
            let mut s = String::new();
            inline(other, &mut s, usize::MAX);
            out.push_str(&s);
        }
    }
}
