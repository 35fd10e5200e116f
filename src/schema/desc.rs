//! The structured schema description: kinds, names, archived sizes, alignments
//! and field offsets. Stored (rkyv-encoded) in the segment; decoded by readers
//! for error messages and by the CLI to print snapshots without the Rust type.

use core::fmt;

/// Index of a type inside [`SchemaDoc::types`].
pub type TypeIndex = u32;

/// A whole schema: every type reachable from `root`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SchemaDoc {
    /// The type stored in the segment.
    pub root: TypeIndex,
    /// All types, referenced by index.
    pub types: Vec<TypeDesc>,
}

/// One type: its Rust name, the size and alignment of its archived form, its shape.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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

/// The shape of a type, with the archived layout a decoder must follow.
///
/// Offsets written "rel" are little-endian `i32`s counted from the address of
/// the field that holds them; lengths are little-endian `u32`s (the crate pins
/// `pointer_width_32`). Element types are described by their own [`TypeDesc`].
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Kind {
    /// A primitive, little-endian; `bool` is one byte 0/1, `char` a `u32` scalar,
    /// `usize`/`isize` are 32-bit.
    Primitive(Primitive),
    /// `String` (rkyv `ArchivedString`, 8 bytes, align 4). Inline when
    /// `byte[0] & 0xC0 != 0x80`: up to 8 UTF-8 bytes, padded with `0xFF` (length =
    /// index of the first `0xFF`, else 8). Otherwise out of line: `u32` length
    /// word at +0 whose bits 6..7 are `10` (len = `(w & 0x3F) | ((w & !0xFF) >> 2)`),
    /// then a rel `i32` at +4 counted from the start of the string.
    String,
    /// `Vec<T>` / `Box<[T]>` (rkyv `ArchivedVec` / `ArchivedBox<[T]>`, 8 bytes):
    /// rel `i32` at +0 (from +0) to `len` contiguous elements, `u32` len at +4.
    Vec(TypeIndex),
    /// `Option<T>` (rkyv `ArchivedOption`, a `repr(u8)` enum): tag byte 0 = None,
    /// 1 = Some; the payload follows at offset `align_of(T)` (`repr(C)` after a `u8`).
    Option(TypeIndex),
    /// `Box<T>` for sized `T` (rkyv `ArchivedBox`, 4 bytes): rel `i32` to one `T`.
    Box(TypeIndex),
    /// `[T; N]`: `N` elements inline, stride `size_of(T)`.
    Array(TypeIndex, u64),
    /// `(A, B, …)` (rkyv `ArchivedTupleN`, `repr(C)`): fields named `"0"`, `"1"`….
    Tuple(Vec<Field>),
    /// A struct with named fields, positional fields (`tuple`), or none (unit).
    /// Archived structs are `repr(C)` with fields in declaration order.
    Struct {
        /// Fields in declaration order.
        fields: Vec<Field>,
        /// Positional fields.
        tuple: bool,
    },
    /// An enum; rkyv archives it as `repr(u8)`: the first byte is the tag, whose
    /// value is the variant's Rust discriminant (explicit `= n` values are kept,
    /// otherwise previous + 1 from 0). Each variant's fields follow the tag with
    /// `repr(C)` rules, as in `#[repr(C)] struct { tag: u8, fields… }`.
    Enum {
        /// Variants in declaration order.
        variants: Vec<Variant>,
        /// Width of the archived tag in bytes (always 1 with rkyv 0.8).
        tag_size: u32,
    },
    /// `HashMap<K, V>` (rkyv `ArchivedHashMap`, a SwissTable, 12 bytes): rel `i32`
    /// at +0 to the control bytes, `u32` len at +4, `u32` capacity at +8. With
    /// `len == 0` nothing is allocated: do not follow the pointer. Bucket `i`
    /// (only `i < cap`; later control bytes mirror the first ones) is full when
    /// `ctrl[i] & 0x80 == 0`; its entry `repr(C) { key: K, value: V }` is at
    /// `ctrl - (i + 1) * size_of(entry)`.
    HashMap(TypeIndex, TypeIndex),
    /// `BTreeMap<K, V>` (rkyv `ArchivedBTreeMap`, 8 bytes): rel `i32` at +0 to the
    /// root node (absent when `len`, the `u32` at +4, is 0). A rel pointer whose
    /// offset is 1 means "no node". Nodes hold up to 5 entries: `repr(C) { kind:
    /// u8 (0 leaf, 1 inner), keys: [K; 5], values: [V; 5] }`, followed by
    /// `len: u32` in a leaf (entries `0..len` used), or by `lesser: [rel; 5],
    /// greater: rel` in an inner node (all 5 entries used). Rel pointers count
    /// from their own address. In order: inner = `for i in 0..5 { lesser[i],
    /// entry i }`, then `greater`.
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
    ///
    /// # Panics
    /// If `root` is out of range, which [`SchemaDoc::decode`] and
    /// [`schema_of`](super::schema_of) never produce.
    pub fn root(&self) -> &TypeDesc {
        &self.types[self.root as usize]
    }

    /// Bytes to store in a segment.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing owned strings and vectors into a Vec cannot fail.
        rkyv::to_bytes::<rkyv::rancor::Error>(self).map(|v| v.into_vec()).unwrap_or_default()
    }

    /// Decodes and fully validates stored bytes (untrusted input): bytecheck
    /// first, then the structural checks of [`SchemaDoc::validate`]. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<SchemaDoc, SchemaError> {
        // rkyv needs the root aligned; shared memory gives no such promise.
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let doc = rkyv::from_bytes::<SchemaDoc, rkyv::rancor::Error>(&aligned)
            .map_err(|e| SchemaError(format!("undecodable bytes ({e})")))?;
        doc.validate()?;
        Ok(doc)
    }
}
