//! The path syntax of `shmstate_get`: `limits.max_conns`, `hosts[3]`,
//! `by_name["eu-1"]`, `by_id[42]`, `pair.0`; the empty path is the root.

use crate::error::{self, Error, Result};
use crate::value::Key;

/// One step of a path.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// `.name` (or the first segment): a field, or a tuple's `0`, `1`…
    Field(String),
    /// `[n]` / `[-n]`: an element or field index, or an integer map key.
    Index(i128),
    /// `["key"]`: a string map key (`\"` and `\\` escape).
    Key(String),
}

pub fn parse(path: &str) -> Result<Vec<Step>> {
    let bad = |what: &str| Error::new(error::INVALID_ARGUMENT, format!("path {path:?}: {what}"));
    let mut steps = Vec::new();
    let mut rest = path;
    let mut first = true;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            if let Some(r) = r.strip_prefix('"') {
                let mut key = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c @ ('"' | '\\'))) => key.push(c),
                            _ => return Err(bad("only \\\" and \\\\ are escapes in a key")),
                        },
                        Some((_, c)) => key.push(c),
                        None => return Err(bad("unterminated key")),
                    }
                };
                rest = r[end + 1..].strip_prefix(']').ok_or_else(|| bad("expected ] after a key"))?;
                steps.push(Step::Key(key));
            } else {
                let close = r.find(']').ok_or_else(|| bad("expected ]"))?;
                let n = r[..close].trim().parse::<i128>().map_err(|_| bad("expected an integer in [ ]"))?;
                steps.push(Step::Index(n));
                rest = &r[close + 1..];
            }
        } else {
            let r = if first { rest } else { rest.strip_prefix('.').ok_or_else(|| bad("expected . or ["))? };
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad("empty field name"));
            }
            if !r[..end].chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(bad("a field name is letters, digits and _"));
            }
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        }
        first = false;
    }
    Ok(steps)
}

impl Step {
    /// As a map key (`[n]` on a map is an integer key).
    pub fn key(&self) -> Option<Key<'_>> {
        match self {
            Step::Key(s) => Some(Key::Str(s)),
            Step::Index(n) => u64::try_from(*n).map(Key::U64).ok().or_else(|| i64::try_from(*n).ok().map(Key::I64)),
            Step::Field(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_kind() {
        let steps = parse(r#"limits.max_conns[3]["a\"b"].0[-2]"#).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Field("limits".into()),
                Step::Field("max_conns".into()),
                Step::Index(3),
                Step::Key("a\"b".into()),
                Step::Field("0".into()),
                Step::Index(-2),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn refuses_malformed_paths() {
        for bad in ["a..b", "a[", "a[x]", "a[\"k", "a[\"k\"", ".a", "a]", "a[\"\\n\"]"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, error::INVALID_ARGUMENT, "{bad}: {}", e.message);
        }
    }
}
