//! A field-level diff of two [`SchemaDoc`]s: what changed between the type an
//! object stores and the type a process expects, with a path to each change.
//!
//! ```text
//! Config.db[].port: u16 → u32
//! Config.tls: field added (Option<Tls>)
//! Config.mode: variant Mode::Replica added
//! Config: 24 → 32 bytes, align 4 → 8
//! ```
//!
//! Paths start at the root type's name; `.field` for fields, `[]` for the
//! elements of a `Vec`, array or boxed slice, `?` inside an `Option`, `{key}` and
//! `{}` for a map's keys and values, `::Variant` inside an enum variant. A renamed
//! field or variant shows as one removed and one added (the schema cannot tell a
//! rename from a replacement).

use core::fmt;
use std::collections::HashSet;

use super::desc::{Field, Kind, SchemaDoc, TypeIndex, Variant};

/// The differences from one schema (`from`, e.g. the object's) to another (`to`,
/// e.g. this process's). Empty when the structures agree (the fingerprints may
/// still differ, e.g. through the rkyv format).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SchemaDiff {
    /// The changes, in the order a walk from the root meets them.
    pub changes: Vec<Change>,
}

/// One difference, at a path inside the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where: `Config.db[].port`.
    pub path: String,
    /// What.
    pub kind: ChangeKind,
}

/// What changed at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A field only `to` has (its type).
    FieldAdded(String),
    /// A field only `from` has (its type).
    FieldRemoved(String),
    /// A variant only `to` has (`Enum::Variant`).
    VariantAdded(String),
    /// A variant only `from` has (`Enum::Variant`).
    VariantRemoved(String),
    /// Another type at the same place (type names, `from` then `to`).
    Retyped {
        /// The type in `from`.
        from: String,
        /// The type in `to`.
        to: String,
    },
    /// The fields both sides have are in another order (names, `from` then `to`).
    Reordered {
        /// Order in `from`.
        from: Vec<String>,
        /// Order in `to`.
        to: Vec<String>,
    },
    /// A variant's archived tag changed.
    Discriminant {
        /// `Enum::Variant`.
        variant: String,
        /// Tag in `from`.
        from: u64,
        /// Tag in `to`.
        to: u64,
    },
    /// The archived size or alignment changed (reported for the root, and
    /// wherever nothing else explains it).
    Layout {
        /// `(size, align)` in `from`.
        from: (u32, u32),
        /// `(size, align)` in `to`.
        to: (u32, u32),
    },
}

impl SchemaDiff {
    /// The differences from `from` to `to`.
    pub fn between(from: &SchemaDoc, to: &SchemaDoc) -> SchemaDiff {
        let path = to.types.get(to.root as usize).map_or_else(String::new, |t| t.name.clone());
        let mut walk = Walk { from, to, root: path.clone(), ancestors: HashSet::new(), steps: 0, changes: Vec::new() };
        walk.ty(&path, from.root, to.root);
        // The root's layout is always worth a line; nested ones only when
        // nothing else explains them (`Walk::ty`).
        if let (Some(a), Some(b)) = (from.types.get(from.root as usize), to.types.get(to.root as usize)) {
            if (a.size, a.align) != (b.size, b.align) {
                let kind = ChangeKind::Layout { from: (a.size, a.align), to: (b.size, b.align) };
                walk.changes.push(Change { path, kind });
            }
        }
        SchemaDiff { changes: walk.changes }
    }

    /// Whether the structures agree.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Enough to explain any real change.
const MAX_CHANGES: usize = 64;
/// Bounds the walk over a hostile schema (decoded from shared memory) whose
/// types share subtrees many times: a type used twice is walked twice.
const MAX_STEPS: usize = 100_000;
/// Deepest nesting the diff descends (the ancestors on the current path).
const MAX_DEPTH: usize = 64;

/// The walk over both documents at once.
struct Walk<'a> {
    from: &'a SchemaDoc,
    to: &'a SchemaDoc,
    /// The root's path (its layout is reported once, by `SchemaDiff::between`).
    root: String,
    /// Pairs being compared on the way down to here (a recursive type ends
    /// where it meets itself; a type used in two places is diffed in both).
    ancestors: HashSet<(TypeIndex, TypeIndex)>,
    /// Types compared so far.
    steps: usize,
    changes: Vec<Change>,
}

impl Walk<'_> {
    fn push(&mut self, path: &str, kind: ChangeKind) {
        self.changes.push(Change { path: path.to_owned(), kind });
    }

    fn name_from(&self, i: TypeIndex) -> String {
        self.from.types.get(i as usize).map_or_else(|| "?".into(), |t| t.name.clone())
    }

    fn name_to(&self, i: TypeIndex) -> String {
        self.to.types.get(i as usize).map_or_else(|| "?".into(), |t| t.name.clone())
    }

    /// Compares type `a` of `from` with type `b` of `to` at `path`; reports a
    /// layout change there only if nothing under `path` explains it.
    fn ty(&mut self, path: &str, a: TypeIndex, b: TypeIndex) {
        self.steps += 1;
        // Depth is bounded too: the stored schema comes from shared memory, and
        // a chain of distinct types paired with one recursive type has no cycle
        // for `ancestors` to stop, only depth (12 000 levels overflowed an
        // 8 MiB stack). Below `MAX_DEPTH` the diff stops looking.
        if self.steps > MAX_STEPS
            || self.changes.len() >= MAX_CHANGES
            || self.ancestors.len() >= MAX_DEPTH
            || !self.ancestors.insert((a, b))
        {
            return;
        }
        self.compare(path, a, b);
        self.ancestors.remove(&(a, b));
    }

    fn compare(&mut self, path: &str, a: TypeIndex, b: TypeIndex) {
        let (Some(ta), Some(tb)) = (self.from.types.get(a as usize), self.to.types.get(b as usize)) else {
            return;
        };
        let before = self.changes.len();
        match (&ta.kind, &tb.kind) {
            (Kind::Primitive(x), Kind::Primitive(y)) if x == y => {}
            (Kind::String, Kind::String) => {}
            (Kind::Vec(x), Kind::Vec(y)) => self.ty(&format!("{path}[]"), *x, *y),
            (Kind::Option(x), Kind::Option(y)) => self.ty(&format!("{path}?"), *x, *y),
            (Kind::Box(x), Kind::Box(y)) => self.ty(path, *x, *y),
            (Kind::Array(x, n), Kind::Array(y, m)) => {
                if n != m {
                    self.push(path, ChangeKind::Retyped { from: ta.name.clone(), to: tb.name.clone() });
                }
                self.ty(&format!("{path}[]"), *x, *y);
            }
            (Kind::HashMap(k1, v1), Kind::HashMap(k2, v2)) | (Kind::BTreeMap(k1, v1), Kind::BTreeMap(k2, v2)) => {
                self.ty(&format!("{path}{{key}}"), *k1, *k2);
                self.ty(&format!("{path}{{}}"), *v1, *v2);
            }
            (Kind::Tuple(x), Kind::Tuple(y)) => self.fields(path, x, y),
            (Kind::Struct { fields: x, .. }, Kind::Struct { fields: y, .. }) => {
                if ta.name != tb.name {
                    self.push(path, ChangeKind::Retyped { from: ta.name.clone(), to: tb.name.clone() });
                }
                self.fields(path, x, y);
            }
            (Kind::Enum { variants: x, .. }, Kind::Enum { variants: y, .. }) => {
                if ta.name != tb.name {
                    self.push(path, ChangeKind::Retyped { from: ta.name.clone(), to: tb.name.clone() });
                }
                self.variants(path, &ta.name, &tb.name, x, y);
            }
            // Different shapes (or primitives): report the types, do not descend.
            _ => self.push(path, ChangeKind::Retyped { from: ta.name.clone(), to: tb.name.clone() }),
        }
        let explained = self.changes.len() > before;
        if !explained && path != self.root && (ta.size, ta.align) != (tb.size, tb.align) {
            self.push(path, ChangeKind::Layout { from: (ta.size, ta.align), to: (tb.size, tb.align) });
        }
    }

    /// Fields by name: removed, added, retyped (recursively), reordered.
    fn fields(&mut self, path: &str, a: &[Field], b: &[Field]) {
        for f in a.iter().filter(|f| !b.iter().any(|g| g.name == f.name)) {
            self.push(&format!("{path}.{}", f.name), ChangeKind::FieldRemoved(self.name_from(f.ty)));
        }
        for g in b {
            let at = format!("{path}.{}", g.name);
            match a.iter().find(|f| f.name == g.name) {
                Some(f) => self.ty(&at, f.ty, g.ty),
                None => self.push(&at, ChangeKind::FieldAdded(self.name_to(g.ty))),
            }
        }
        let common_a: Vec<String> =
            a.iter().filter(|f| b.iter().any(|g| g.name == f.name)).map(|f| f.name.clone()).collect();
        let common_b: Vec<String> =
            b.iter().filter(|g| a.iter().any(|f| f.name == g.name)).map(|g| g.name.clone()).collect();
        if common_a != common_b {
            self.push(path, ChangeKind::Reordered { from: common_a, to: common_b });
        }
    }

    /// Variants by name: removed, added, tags, and their fields.
    fn variants(&mut self, path: &str, enum_a: &str, enum_b: &str, a: &[Variant], b: &[Variant]) {
        for v in a.iter().filter(|v| !b.iter().any(|w| w.name == v.name)) {
            self.push(path, ChangeKind::VariantRemoved(format!("{enum_a}::{}", v.name)));
        }
        for w in b {
            match a.iter().find(|v| v.name == w.name) {
                Some(v) => {
                    if v.discriminant != w.discriminant {
                        let kind = ChangeKind::Discriminant {
                            variant: format!("{enum_b}::{}", w.name),
                            from: v.discriminant,
                            to: w.discriminant,
                        };
                        self.push(path, kind);
                    }
                    self.fields(&format!("{path}::{}", w.name), &v.fields, &w.fields);
                }
                None => self.push(path, ChangeKind::VariantAdded(format!("{enum_b}::{}", w.name))),
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        match &self.kind {
            ChangeKind::FieldAdded(ty) => write!(f, "{path}: field added ({ty})"),
            ChangeKind::FieldRemoved(ty) => write!(f, "{path}: field removed ({ty})"),
            ChangeKind::VariantAdded(v) => write!(f, "{path}: variant {v} added"),
            ChangeKind::VariantRemoved(v) => write!(f, "{path}: variant {v} removed"),
            ChangeKind::Retyped { from, to } => write!(f, "{path}: {from} → {to}"),
            ChangeKind::Reordered { from, to } => {
                write!(f, "{path}: fields reordered ({} → {})", from.join(", "), to.join(", "))
            }
            ChangeKind::Discriminant { variant, from, to } => write!(f, "{path}: tag of {variant} {from} → {to}"),
            ChangeKind::Layout { from: (s1, a1), to: (s2, a2) } => {
                write!(f, "{path}: ")?;
                if s1 == s2 {
                    write!(f, "{s1} bytes")?;
                } else {
                    write!(f, "{s1} → {s2} bytes")?;
                }
                if a1 == a2 {
                    write!(f, ", align {a1}")
                } else {
                    write!(f, ", align {a1} → {a2}")
                }
            }
        }
    }
}

/// One change per line.
impl fmt::Display for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// As short as `Display`: the changes, one string each.
impl fmt::Debug for SchemaDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.changes.iter().map(|c| c.to_string())).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::super::schema_of;
    use super::*;

    /// Two versions of one type, as an old writer and a new reader build them.
    mod v1 {
        use super::*;

        #[crate::shared(crate = crate)]
        pub struct Db {
            pub host: String,
            pub port: u16,
        }

        #[crate::shared(crate = crate)]
        pub enum Mode {
            Primary,
            Standby { lag_ms: u32 },
        }

        #[crate::shared(crate = crate)]
        pub struct Config {
            pub db: Vec<Db>,
            pub mode: Mode,
            pub tls: Option<Vec<u8>>,
            pub limits: HashMap<String, u32>,
            pub weights: BTreeMap<u8, f32>,
            pub name: String,
            pub retries: u8,
        }
    }

    mod v2 {
        use super::*;

        #[crate::shared(crate = crate)]
        pub struct Db {
            pub host: String,
            pub port: u32,
        }

        #[crate::shared(crate = crate)]
        pub enum Mode {
            Primary,
            Standby { lag_ms: u64 },
            Replica { of: String },
        }

        #[crate::shared(crate = crate)]
        pub struct Config {
            pub db: Vec<Db>,
            pub mode: Mode,
            pub tls: Option<Vec<u16>>,
            pub limits: HashMap<String, u64>,
            pub weights: BTreeMap<u16, f32>,
            pub title: String,
            pub retries: u8,
        }
    }

    fn lines(from: &SchemaDoc, to: &SchemaDoc) -> Vec<String> {
        SchemaDiff::between(from, to).changes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn equal_schemas_have_no_diff() {
        let doc = schema_of::<v1::Config>();
        assert!(SchemaDiff::between(&doc, &doc).is_empty());
    }

    #[test]
    fn nested_structs_enums_and_containers_are_diffed_with_paths() {
        let got = lines(&schema_of::<v1::Config>(), &schema_of::<v2::Config>());
        for want in [
            "Config.db[].port: u16 → u32",
            "Config.mode: variant Mode::Replica added",
            "Config.mode::Standby.lag_ms: u32 → u64",
            "Config.tls?[]: u8 → u16",
            "Config.limits{}: u32 → u64",
            "Config.weights{key}: u8 → u16",
        ] {
            assert!(got.iter().any(|l| l == want), "missing {want:?} in {got:#?}");
        }
        // Nothing reported twice, nothing about the unchanged fields.
        assert!(!got.iter().any(|l| l.starts_with("Config.retries") || l.starts_with("Config.db[].host")), "{got:#?}");
    }

    #[test]
    fn a_renamed_field_is_one_removed_and_one_added() {
        let got = lines(&schema_of::<v1::Config>(), &schema_of::<v2::Config>());
        assert!(got.contains(&"Config.name: field removed (String)".to_string()), "{got:#?}");
        assert!(got.contains(&"Config.title: field added (String)".to_string()), "{got:#?}");
    }

    #[test]
    fn removed_variants_and_the_reverse_direction() {
        let got = lines(&schema_of::<v2::Config>(), &schema_of::<v1::Config>());
        assert!(got.contains(&"Config.mode: variant Mode::Replica removed".to_string()), "{got:#?}");
        assert!(got.contains(&"Config.db[].port: u32 → u16".to_string()), "{got:#?}");
    }

    mod order {
        #[crate::shared(crate = crate)]
        pub struct A {
            pub x: u32,
            pub y: u64,
        }
        pub mod swapped {
            #[crate::shared(crate = crate)]
            pub struct A {
                pub y: u64,
                pub x: u32,
            }
        }
        pub mod wider {
            #[crate::shared(crate = crate)]
            pub struct A {
                pub x: u32,
                pub y: u64,
                pub z: u64,
            }
        }
        #[crate::shared(crate = crate)]
        #[repr(u8)]
        pub enum E {
            P = 1,
            Q,
        }
        pub mod retagged {
            #[crate::shared(crate = crate)]
            #[repr(u8)]
            pub enum E {
                P = 2,
                Q,
            }
        }
    }

    #[test]
    fn reordered_fields_layout_and_tags() {
        let got = lines(&schema_of::<order::A>(), &schema_of::<order::swapped::A>());
        assert_eq!(got, ["A: fields reordered (x, y → y, x)"]);
        let got = lines(&schema_of::<order::A>(), &schema_of::<order::wider::A>());
        assert_eq!(got, ["A.z: field added (u64)", "A: 16 → 24 bytes, align 8"]);
        let got = lines(&schema_of::<order::E>(), &schema_of::<order::retagged::E>());
        assert_eq!(got, ["E: tag of E::P 1 → 2", "E: tag of E::Q 2 → 3"]);
    }

    #[test]
    fn another_shape_is_retyped_without_descending() {
        let got = lines(&schema_of::<Vec<u32>>(), &schema_of::<Option<u32>>());
        assert_eq!(got, ["Option<u32>: Vec<u32> → Option<u32>"]);
    }

    /// `struct Node { children: Vec<Node>, v: <leaf> }`, by hand (a recursive
    /// `#[shared]` type needs rkyv bounds this test does not care about).
    fn node(leaf: crate::schema::Primitive, leaf_name: &str) -> SchemaDoc {
        use crate::schema::TypeDesc;
        let field = |name: &str, ty, offset| Field { name: name.into(), ty, offset };
        let kind = Kind::Struct { fields: vec![field("children", 1, 0), field("v", 2, 8)], tuple: false };
        let types = vec![
            TypeDesc { name: "Node".into(), size: 12, align: 4, kind },
            TypeDesc { name: "Vec<Node>".into(), size: 8, align: 4, kind: Kind::Vec(0) },
            TypeDesc { name: leaf_name.into(), size: 1, align: 1, kind: Kind::Primitive(leaf) },
        ];
        SchemaDoc { root: 0, types }
    }

    #[test]
    fn recursive_types_terminate() {
        use crate::schema::Primitive;
        let a = node(Primitive::U8, "u8");
        assert!(SchemaDiff::between(&a, &a).is_empty());
        let b = node(Primitive::I8, "i8");
        assert_eq!(lines(&a, &b), ["Node.v: u8 → i8"]);
    }

    #[test]
    fn debug_is_as_short_as_display() {
        let d = SchemaDiff::between(&schema_of::<order::A>(), &schema_of::<order::swapped::A>());
        assert_eq!(format!("{d:?}"), "[\"A: fields reordered (x, y → y, x)\"]");
        assert_eq!(d.to_string(), "A: fields reordered (x, y → y, x)");
    }

    /// A stored schema is untrusted: a chain of 20 000 distinct struct types
    /// compared with one recursive type used to recurse once per level and
    /// overflow the stack (the process aborted instead of `TypeMismatch`).
    #[test]
    fn a_deep_stored_chain_does_not_overflow_the_stack() {
        use crate::schema::{Field, Kind, TypeDesc};
        let strukt = |name: String, ty| TypeDesc {
            name,
            size: 8,
            align: 4,
            kind: Kind::Struct { fields: vec![Field { name: "next".into(), ty, offset: 0 }], tuple: false },
        };
        let vec_of = |ty| TypeDesc { name: "Vec".into(), size: 8, align: 4, kind: Kind::Vec(ty) };
        let n = 20_000u32;
        let mut types = Vec::new();
        // All named `R`, like the recursive type, so no level reports a
        // change and stops the walk early; the last one holds a `u8` instead.
        for i in 0..n {
            types.push(strukt("R".into(), 2 * i + 1));
            types.push(vec_of(if i + 1 < n { 2 * (i + 1) } else { 2 * n }));
        }
        types.push(TypeDesc {
            name: "u8".into(),
            size: 1,
            align: 1,
            kind: Kind::Primitive(crate::schema::Primitive::U8),
        });
        let chain = SchemaDoc { root: 0, types };
        let recursive = SchemaDoc { root: 0, types: vec![strukt("R".into(), 1), vec_of(0)] };
        // Run on a small stack, as a reader thread may have.
        let diff = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || SchemaDiff::between(&chain, &recursive))
            .unwrap()
            .join()
            .expect("the diff overflowed its stack");
        // The difference lies 20 000 levels down, past what the diff looks at.
        assert!(diff.changes.len() <= MAX_CHANGES);
    }
}
