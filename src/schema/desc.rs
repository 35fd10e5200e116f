//! The structured schema description: kinds, names, archived sizes, alignments
//! and field offsets. Stored (rkyv-encoded) in the segment; decoded by readers
//! for error messages and by the CLI to print snapshots without the Rust type.

use core::fmt;

/// Index of a type inside [`SchemaDoc::types`].
pub type TypeIndex = u32;

/// A whole schema: every type reachable from `root`.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SchemaDoc {
    /// The type stored in the segment.
    pub root: TypeIndex,
    /// All types, referenced by index.
    pub types: Vec<TypeDesc>,
}

/// One type: its Rust name, the size and alignment of its archived form, its shape.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TypeDesc {
    /// Rust spelling, e.g. `Config`, `Vec<u64>`.
    pub name: String,
    /// `size_of` of the archived type.
    pub size: u32,
    /// `align_of` of the archived type.
    pub align: u32,
    /// The shape.
    pub kind: Kind,
}

impl TypeDesc {
    pub(crate) fn placeholder() -> Self {
        TypeDesc { name: String::new(), size: 0, align: 1, kind: Kind::Primitive(Primitive::Unit) }
    }
}

/// Primitive types (archived little-endian, aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[allow(missing_docs)]
pub enum Primitive {
    Unit,
    Bool,
    U8,
    U16,
    U32,
    U64,
    U128,
    Usize,
    I8,
    I16,
    I32,
    I64,
    I128,
    Isize,
    F32,
    F64,
    Char,
}

/// A named (or positional) field at a byte offset inside its archived parent.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Field {
    /// Field name; `"0"`, `"1"`… for tuple fields.
    pub name: String,
    /// The field's type.
    pub ty: TypeIndex,
    /// Byte offset inside the archived parent (for enum variants: inside the
    /// variant's archived struct, which starts with the tag).
    pub offset: u32,
}

/// One enum variant.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Variant {
    /// Variant name.
    pub name: String,
    /// The archived tag value of this variant.
    pub discriminant: u64,
    /// Named or positional fields (empty for a unit variant).
    pub fields: Vec<Field>,
    /// Whether the fields are positional (`A(u8)`) rather than named.
    pub tuple: bool,
}

/// The shape of a type.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Kind {
    /// A primitive.
    Primitive(Primitive),
    /// `String` (rkyv `ArchivedString`).
    String,
    /// `Vec<T>` / `Box<[T]>` (rkyv `ArchivedVec`).
    Vec(TypeIndex),
    /// `Option<T>` (rkyv `ArchivedOption`).
    Option(TypeIndex),
    /// `Box<T>` (rkyv `ArchivedBox`).
    Box(TypeIndex),
    /// `[T; N]`.
    Array(TypeIndex, u64),
    /// `(A, B, …)`: fields named `"0"`, `"1"`….
    Tuple(Vec<Field>),
    /// A struct with named fields, positional fields (`tuple`), or none (unit).
    Struct {
        /// Fields in declaration order.
        fields: Vec<Field>,
        /// Positional fields.
        tuple: bool,
    },
    /// An enum; `tag_size` is the byte width of the archived tag.
    Enum {
        /// Variants in declaration order.
        variants: Vec<Variant>,
        /// Width of the archived tag in bytes.
        tag_size: u32,
    },
    /// `HashMap<K, V>` (rkyv `ArchivedHashMap`).
    HashMap(TypeIndex, TypeIndex),
    /// `BTreeMap<K, V>` (rkyv `ArchivedBTreeMap`).
    BTreeMap(TypeIndex, TypeIndex),
}

/// Why stored schema bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid schema description: {}", self.0)
    }
}

impl std::error::Error for SchemaError {}

impl SchemaDoc {
    /// The root type's description.
    pub fn root(&self) -> &TypeDesc {
        &self.types[self.root as usize]
    }

    /// Bytes to store in a segment.
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map(|v| v.into_vec())
            .unwrap_or_default()
    }

    /// Decodes and fully validates stored bytes (untrusted input).
    pub fn decode(bytes: &[u8]) -> Result<SchemaDoc, SchemaError> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let doc = rkyv::from_bytes::<SchemaDoc, rkyv::rancor::Error>(&aligned)
            .map_err(|e| SchemaError(format!("undecodable bytes ({e})")))?;
        doc.check()?;
        Ok(doc)
    }

    /// Checks that every index is in range.
    fn check(&self) -> Result<(), SchemaError> {
        let n = self.types.len() as u64;
        let ok = |i: TypeIndex| (i as u64) < n;
        if !ok(self.root) {
            return Err(SchemaError(format!("root index {} out of {} types", self.root, n)));
        }
        for (i, t) in self.types.iter().enumerate() {
            let bad = match &t.kind {
                Kind::Primitive(_) | Kind::String => false,
                Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) => !ok(*e),
                Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fs.iter().any(|f| !ok(f.ty)),
                Kind::Enum { variants, .. } => {
                    variants.iter().any(|v| v.fields.iter().any(|f| !ok(f.ty)))
                }
                Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => !ok(*k) || !ok(*v),
            };
            if bad {
                return Err(SchemaError(format!("type {i} ({}) refers past {n} types", t.name)));
            }
            if !t.align.is_power_of_two() {
                return Err(SchemaError(format!("type {i} has alignment {}", t.align)));
            }
        }
        Ok(())
    }
}

impl fmt::Display for SchemaDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rust-like listing of every named (struct/enum) type, root first.
        let mut order: Vec<usize> = vec![self.root as usize];
        order.extend((0..self.types.len()).filter(|&i| i != self.root as usize));
        let name = |i: TypeIndex| self.types.get(i as usize).map_or("?", |t| t.name.as_str());
        let mut first = true;
        for i in order {
            let t = &self.types[i];
            let fields = |f: &mut fmt::Formatter<'_>, fs: &[Field], tuple: bool| -> fmt::Result {
                if tuple {
                    let tys: Vec<&str> = fs.iter().map(|x| name(x.ty)).collect();
                    write!(f, "({})", tys.join(", "))
                } else {
                    let fs: Vec<String> =
                        fs.iter().map(|x| format!("{}: {}", x.name, name(x.ty))).collect();
                    write!(f, " {{ {} }}", fs.join(", "))
                }
            };
            match &t.kind {
                Kind::Struct { fields: fs, tuple } => {
                    if !first {
                        writeln!(f)?;
                    }
                    write!(f, "struct {}", t.name)?;
                    if !fs.is_empty() || !*tuple {
                        fields(f, fs, *tuple)?;
                    }
                }
                Kind::Enum { variants, .. } => {
                    if !first {
                        writeln!(f)?;
                    }
                    write!(f, "enum {} {{ ", t.name)?;
                    for (n, v) in variants.iter().enumerate() {
                        if n > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{}", v.name)?;
                        if !v.fields.is_empty() {
                            fields(f, &v.fields, v.tuple)?;
                        }
                    }
                    write!(f, " }}")?;
                }
                _ if i == self.root as usize => write!(f, "{}", t.name)?,
                _ => continue,
            }
            first = false;
        }
        Ok(())
    }
}
