//! Rust-like text for a [`Value`]: what `{:?}` would print for the original
//! value. `{}` is one line; `{:#}` wraps at 100 columns with 4-space indentation
//! (a member per line where the one-line form does not fit). Addresses and
//! durations print as their `Debug` does (`127.0.0.1:80`, `[::1]:80`, `1.5s`),
//! always on one line, and so do ranges (`3..17`, `-1..=127`); sets as `{a, b}`.

use core::fmt;

use super::std_types::Std;
use super::{Fields, Value};

/// Where `{:#}` wraps.
const WIDTH: usize = 100;

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        if f.alternate() {
            pretty(self, 0, WIDTH, &mut out);
        } else {
            inline(self, &mut out, usize::MAX);
        }
        f.write_str(&out)
    }
}

/// Appends the one-line form of `v` to `out`; false (stopping early) once
/// `out` is longer than `limit`.
fn inline(v: &Value, out: &mut String, limit: usize) -> bool {
    use fmt::Write as _;
    if out.len() > limit {
        return false;
    }
    if let Some(std) = Std::of(v) {
        let _ = write!(out, "{std:?}");
        return out.len() <= limit;
    }
    if let Some((start, op, end)) = range(v) {
        // As `Range`'s `Debug`: the bounds' forms around the operator.
        return inline(start, out, limit) && {
            out.push_str(op);
            inline(end, out, limit)
        };
    }
    // Writing to a String cannot fail.
    let _ = match v {
        Value::Unit => write!(out, "()"),
        Value::Bool(b) => write!(out, "{b}"),
        Value::U64(n) => write!(out, "{n}"),
        Value::I64(n) => write!(out, "{n}"),
        Value::U128(n) => write!(out, "{n}"),
        Value::I128(n) => write!(out, "{n}"),
        Value::F32(x) => write!(out, "{x:?}"),
        Value::F64(x) => write!(out, "{x:?}"),
        Value::Char(c) => write!(out, "{c:?}"),
        Value::String(s) => write!(out, "{s:?}"),
        Value::Option(None) => write!(out, "None"),
        Value::Option(Some(x)) => return list(out, "Some(", ")", std::iter::once((None, &**x)), limit),
        Value::Seq(items) => return list(out, "[", "]", items.iter().map(|x| (None, x)), limit),
        Value::Set(items) => return list(out, "{", "}", items.iter().map(|x| (None, x)), limit),
        Value::Tuple(items) => {
            let close = if items.len() == 1 { ",)" } else { ")" };
            return list(out, "(", close, items.iter().map(|x| (None, x)), limit);
        }
        Value::Struct { name, fields } | Value::Enum { variant: name, fields, .. } => {
            out.push_str(name);
            return inline_fields(fields, out, limit);
        }
        Value::Map(entries) => {
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
            Ok(())
        }
    };
    out.len() <= limit
}

/// The bounds of a `Range` (`..`) or `RangeInclusive` (`..=`): a struct of
/// that name (with its type argument) and the fields `start` and `end`.
fn range(v: &Value) -> Option<(&Value, &'static str, &Value)> {
    let Value::Struct { name, fields: Fields::Named(fields) } = v else { return None };
    let [(s, start), (e, end)] = fields.as_slice() else { return None };
    if s != "start" || e != "end" {
        return None;
    }
    let op = if name.starts_with("Range<") {
        ".."
    } else if name.starts_with("RangeInclusive<") {
        "..="
    } else {
        return None;
    };
    Some((start, op, end))
}

fn inline_fields(fields: &Fields, out: &mut String, limit: usize) -> bool {
    match fields {
        Fields::Unit => out.len() <= limit,
        Fields::Tuple(items) => list(out, "(", ")", items.iter().map(|x| (None, x)), limit),
        Fields::Named(fs) => list(out, " { ", " }", fs.iter().map(|(n, x)| (Some(n.as_str()), x)), limit),
    }
}

fn list<'a>(
    out: &mut String,
    open: &str,
    close: &str,
    items: impl Iterator<Item = (Option<&'a str>, &'a Value)>,
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
fn pretty(v: &Value, indent: usize, width: usize, out: &mut String) {
    let mut one = String::new();
    if inline(v, &mut one, width.saturating_sub(indent)) {
        out.push_str(&one);
        return;
    }
    if Std::of(v).is_some() || range(v).is_some() {
        // An address, a duration or a range is one token, however deep.
        inline(v, out, usize::MAX);
        return;
    }
    let pad = " ".repeat(indent + 4);
    let block =
        |out: &mut String, open: &str, close: &str, items: &mut dyn Iterator<Item = (Option<String>, &Value)>| {
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
        Value::Option(Some(x)) => block(out, "Some(", ")", &mut std::iter::once((None, &**x))),
        Value::Seq(items) => block(out, "[", "]", &mut items.iter().map(|x| (None, x))),
        Value::Set(items) => block(out, "{", "}", &mut items.iter().map(|x| (None, x))),
        Value::Tuple(items) => block(out, "(", ")", &mut items.iter().map(|x| (None, x))),
        Value::Struct { name, fields } | Value::Enum { variant: name, fields, .. } => {
            out.push_str(name);
            match fields {
                Fields::Unit => {}
                Fields::Tuple(items) => block(out, "(", ")", &mut items.iter().map(|x| (None, x))),
                Fields::Named(fs) => block(out, " {", "}", &mut fs.iter().map(|(n, x)| (Some(format!("{n}: ")), x))),
            }
        }
        Value::Map(entries) => {
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
            inline(other, out, usize::MAX);
        }
    }
}
