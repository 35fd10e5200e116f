//! The hand-written header declares exactly what the library exports, with
//! the library's error codes, kinds and number types.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// `shmstate_*` names followed by `(` on lines that declare a function
/// (not `static inline` helpers, not calls inside them).
fn declared(header: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in header.lines().filter(|l| !l.starts_with(' ') && !l.starts_with("static") && !l.starts_with("/*")) {
        // The identifier just before the first `(`: `shmstate_error_t shmstate_read(`.
        let Some(paren) = line.find('(') else { continue };
        let name = line[..paren].rsplit([' ', '*']).next().unwrap_or("");
        if name.starts_with("shmstate_") {
            names.insert(name.to_string());
        }
    }
    names
}

/// `extern "C" fn shmstate_*` and the macros that define them in src/ffi.rs.
fn exported(ffi: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in ffi.lines().map(str::trim) {
        let name = if let Some(at) = line.find("extern \"C\" fn shmstate_") {
            let rest = &line[at + "extern \"C\" fn ".len()..];
            &rest[..rest.find('(').unwrap()]
        } else if let Some(rest) = line.strip_prefix("get_leaf!(").or_else(|| line.strip_prefix("value_leaf!(")) {
            &rest[..rest.find(',').unwrap()]
        } else {
            continue;
        };
        names.insert(name.to_string());
    }
    names
}

#[test]
fn the_header_declares_every_exported_function_and_nothing_else() {
    let header = declared(&read("include/shmstate.h"));
    let exported = exported(&(read("src/ffi.rs") + &read("src/map.rs")));
    assert!(exported.len() > 30, "the parser found the exports: {exported:?}");
    let missing: Vec<_> = exported.difference(&header).collect();
    let extra: Vec<_> = header.difference(&exported).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not declared: {missing:?}; not exported: {extra:?}");
}

/// `NAME = n` pairs with the given prefix in the header.
fn header_values(header: &str, prefix: &str) -> BTreeSet<(String, i64)> {
    header
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_end_matches(',');
            let (name, value) = l.split_once(" = ")?;
            let value = value.split([',', ' ']).next()?;
            name.strip_prefix(prefix).map(|n| (n.to_string(), value.parse().unwrap()))
        })
        .collect()
}

/// `pub const NAME: T = n;` in `source` (inside `module`, if given).
fn rust_values(source: &str, module: Option<&str>) -> BTreeSet<(String, i64)> {
    let body = match module {
        Some(m) => {
            let start = source.find(&format!("pub mod {m} {{")).unwrap();
            &source[start..start + source[start..].find("\n}").unwrap()]
        }
        None => source,
    };
    body.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(':')?;
            let value = rest.split_once('=')?.1.trim().trim_end_matches(';');
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn codes_kinds_and_number_types_agree_with_the_library() {
    let header = read("include/shmstate.h");
    let errors = read("src/error.rs");
    let values = read("src/value.rs");
    let mut header_errors = header_values(&header, "SHMSTATE_ERR_");
    header_errors.extend(header_values(&header, "SHMSTATE_").into_iter().filter(|(n, _)| n == "OK"));
    assert_eq!(header_errors, rust_values(&errors, None));
    assert_eq!(header_values(&header, "SHMSTATE_KIND_"), rust_values(&values, Some("kind")));
    let numbers: BTreeSet<_> =
        header_values(&header, "SHMSTATE_").into_iter().filter(|(n, _)| n.len() <= 3 && n != "OK").collect();
    assert_eq!(numbers, rust_values(&values, Some("number")));
}
