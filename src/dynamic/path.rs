//! Where in a value the decoder or the encoder is, for their error messages:
//! the steps from the root, written as `.hosts[3].name`.

/// One step of the path to the value being decoded or encoded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'s> {
    Field(&'s str),
    Index(u64),
    Variant(&'s str),
    Key(u64),
    Value(u64),
    Some,
    Deref,
}

/// The path as error messages show it (empty for the root).
pub(super) fn render(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(n) => {
                out.push('.');
                out.push_str(n);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Variant(v) => out.push_str(&format!("::{v}")),
            Seg::Key(i) => out.push_str(&format!("<key {i}>")),
            Seg::Value(i) => out.push_str(&format!("<value {i}>")),
            Seg::Some => out.push_str("<Some>"),
            Seg::Deref => out.push_str("<*>"),
        }
    }
    out
}
