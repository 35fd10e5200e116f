//! Walking a held snapshot one step at a time, with the library's
//! [`Cursor`](shmstate_core::dynamic::Cursor): each step decodes only the
//! value it is asked for (checked as the decoder checks everything), the
//! snapshot having been validated whole once for its generation.

use std::rc::Rc;

use shmstate_core::dynamic::{Node, NodeFields, Shape, Value};
use shmstate_core::schema::{Kind, Primitive, TypeDesc};

use crate::error::{self, Error, Result};
use crate::reader::{MapIndex, Reader};

/// `shmstate_kind_t`. Part of the ABI: only appended to.
pub mod kind {
    pub const UNIT: i32 = 0;
    pub const BOOL: i32 = 1;
    pub const UINT: i32 = 2;
    pub const INT: i32 = 3;
    pub const FLOAT: i32 = 4;
    pub const CHAR: i32 = 5;
    pub const STRING: i32 = 6;
    pub const SEQ: i32 = 7;
    pub const TUPLE: i32 = 8;
    pub const OPTION: i32 = 9;
    pub const STRUCT: i32 = 10;
    pub const ENUM: i32 = 11;
    pub const MAP: i32 = 12;
    pub const SET: i32 = 13;
}

/// `shmstate_number_t`: the element types a numeric vector can be viewed as.
pub mod number {
    pub const U8: i32 = 1;
    pub const I8: i32 = 2;
    pub const U16: i32 = 3;
    pub const I16: i32 = 4;
    pub const U32: i32 = 5;
    pub const I32: i32 = 6;
    pub const U64: i32 = 7;
    pub const I64: i32 = 8;
    pub const F32: i32 = 9;
    pub const F64: i32 = 10;
}

/// A node of the held snapshot, with the reader it belongs to.
pub struct At<'r> {
    pub reader: &'r Reader,
    pub node: Node,
}

fn wrong(r: &Reader, ty: &TypeDesc, wanted: &str) -> Error {
    Error::new(error::WRONG_TYPE, format!("{}: the value is a {}, not {wanted}", r.name(), ty.name))
}

impl<'r> At<'r> {
    pub fn root(reader: &'r Reader) -> Result<Self> {
        let node = reader.cursor()?.root().map_err(|e| reader.decode_error(e))?;
        Ok(At { reader, node })
    }

    fn at(&self, node: Node) -> At<'r> {
        At { reader: self.reader, node }
    }

    /// The type, `Box`es looked through (by the schema alone).
    pub fn ty(&self) -> Result<&'r TypeDesc> {
        let types = &self.reader.schema().types;
        let mut idx = self.node.ty;
        for _ in 0..=types.len() {
            let t = types.get(idx as usize).ok_or_else(|| {
                Error::new(error::CORRUPT, format!("{}: type index {idx} outside the schema", self.reader.name()))
            })?;
            match t.kind {
                Kind::Box(inner) => idx = inner,
                _ => return Ok(t),
            }
        }
        Err(Error::new(error::CORRUPT, format!("{}: the schema's boxes form a cycle", self.reader.name())))
    }

    pub fn expand(&self) -> Result<Rc<Shape>> {
        self.reader.expand(self.node)
    }

    pub fn kind(&self) -> Result<i32> {
        let t = self.ty()?;
        let types = &self.reader.schema().types;
        let is_unit = |i: u32| types.get(i as usize).is_some_and(|e| e.kind == Kind::Primitive(Primitive::Unit));
        let is_u8 = |i: u32| types.get(i as usize).is_some_and(|e| e.kind == Kind::Primitive(Primitive::U8));
        Ok(match &t.kind {
            Kind::Primitive(p) => match p {
                Primitive::Unit => kind::UNIT,
                Primitive::Bool => kind::BOOL,
                Primitive::U8
                | Primitive::U16
                | Primitive::U32
                | Primitive::U64
                | Primitive::U128
                | Primitive::Usize => kind::UINT,
                Primitive::F32 | Primitive::F64 => kind::FLOAT,
                Primitive::Char => kind::CHAR,
                _ => kind::INT,
            },
            Kind::String => kind::STRING,
            // `Box<str>` and friends: the decoder's rule (dynamic/std_types.rs).
            Kind::Vec(e) if matches!(t.name.as_str(), "Box<str>" | "Arc<str>" | "Rc<str>") && is_u8(*e) => kind::STRING,
            Kind::Vec(_) | Kind::Array(..) => kind::SEQ,
            Kind::Tuple(f) if f.is_empty() && t.name.starts_with("PhantomData<") => kind::STRUCT,
            Kind::Tuple(_) => kind::TUPLE,
            Kind::Option(_) => kind::OPTION,
            Kind::Struct { .. } => kind::STRUCT,
            Kind::Enum { .. } => kind::ENUM,
            Kind::HashMap(_, v) if t.name.starts_with("HashSet<") && is_unit(*v) => kind::SET,
            Kind::BTreeMap(_, v) if t.name.starts_with("BTreeSet<") && is_unit(*v) => kind::SET,
            Kind::HashMap(..) | Kind::BTreeMap(..) => kind::MAP,
            // Unreachable (`ty` looks through boxes); kept total.
            Kind::Box(_) => kind::UNIT,
        })
    }

    fn no_such(&self, what: String) -> Error {
        Error::new(error::NO_SUCH_FIELD, format!("{}: {what}", self.reader.name()))
    }

    /// A named field of a struct or of an enum's variant (`"0"`, `"1"`… for
    /// positional ones).
    pub fn field(&self, name: &str) -> Result<At<'r>> {
        // Structs and tuples: by the schema, nothing decoded or allocated.
        let cursor = self.reader.cursor()?;
        if let Some(node) = cursor.field(self.node, name).map_err(|e| self.reader.decode_error(e))? {
            return Ok(self.at(node));
        }
        let ty = self.ty()?;
        match &*self.expand()? {
            Shape::Struct { fields, .. } | Shape::Enum { fields, .. } => {
                let found = match &fields {
                    NodeFields::Named(f) => f.iter().find(|(n, _)| n == name).map(|(_, n)| *n),
                    NodeFields::Tuple(f) => name.parse::<usize>().ok().and_then(|i| f.get(i)).copied(),
                    NodeFields::Unit => None,
                };
                found.map(|n| self.at(n)).ok_or_else(|| self.no_such(format!("{} has no field `{name}`", ty.name)))
            }
            Shape::Tuple(items) => name
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .map(|n| self.at(*n))
                .ok_or_else(|| self.no_such(format!("{} has no field `{name}`", ty.name))),
            Shape::Option(Some(inner)) => self.at(*inner).field(name),
            Shape::Option(None) => Err(self.no_such(format!("{} is None (looking for `{name}`)", ty.name))),
            _ => Err(wrong(self.reader, ty, "a struct, an enum or a tuple")),
        }
    }

    /// Element `i` of a sequence, tuple, set, or the `i`-th field of a struct
    /// or variant.
    pub fn index(&self, i: u64) -> Result<At<'r>> {
        let ty = self.ty()?;
        let shape = self.expand()?;
        let out_of = |len: usize| self.no_such(format!("index {i} is out of range: {} has {len}", ty.name));
        let pick = |items: &[Node]| usize::try_from(i).ok().and_then(|i| items.get(i)).copied();
        match &*shape {
            Shape::Seq { len, .. } => {
                let cursor = self.reader.cursor()?;
                cursor.element(&shape, i).map(|n| self.at(n)).ok_or_else(|| out_of(*len as usize))
            }
            Shape::Tuple(items) | Shape::Set(items) => {
                pick(items).map(|n| self.at(n)).ok_or_else(|| out_of(items.len()))
            }
            Shape::Struct { fields, .. } | Shape::Enum { fields, .. } => {
                let nodes: Vec<Node> = match fields {
                    NodeFields::Named(f) => f.iter().map(|(_, n)| *n).collect(),
                    NodeFields::Tuple(f) => f.clone(),
                    NodeFields::Unit => Vec::new(),
                };
                pick(&nodes).map(|n| self.at(n)).ok_or_else(|| out_of(nodes.len()))
            }
            Shape::Option(Some(inner)) => self.at(*inner).index(i),
            Shape::Option(None) => Err(self.no_such(format!("{} is None (looking for [{i}])", ty.name))),
            _ => Err(wrong(self.reader, ty, "a sequence, a tuple, a set, a struct or an enum")),
        }
    }

    /// Element, field or entry count.
    pub fn len(&self) -> Result<u64> {
        let ty = self.ty()?;
        Ok(match &*self.expand()? {
            Shape::Seq { len, .. } => *len,
            Shape::Tuple(items) | Shape::Set(items) => items.len() as u64,
            Shape::Map(entries) => entries.len() as u64,
            Shape::Struct { fields, .. } | Shape::Enum { fields, .. } => match fields {
                NodeFields::Named(f) => f.len() as u64,
                NodeFields::Tuple(f) => f.len() as u64,
                NodeFields::Unit => 0,
            },
            Shape::Option(o) => u64::from(o.is_some()),
            _ => return Err(wrong(self.reader, ty, "a sequence, a tuple, a map, a set, a struct or an enum")),
        })
    }

    /// The name of field `i` of a struct or of the active variant, as the
    /// schema spells it (the returned text lives in the schema).
    pub fn field_name(&self, i: u64) -> Result<&'r str> {
        let ty = self.ty()?;
        let fields = match &ty.kind {
            Kind::Struct { fields, .. } | Kind::Tuple(fields) => fields,
            Kind::Enum { variants, .. } => {
                let v = self.variant_name()?;
                &variants.iter().find(|x| x.name == v).expect("the active variant is in the schema").fields
            }
            _ => return Err(wrong(self.reader, ty, "a struct, an enum or a tuple")),
        };
        let field = usize::try_from(i).ok().and_then(|i| fields.get(i));
        field
            .map(|f| f.name.as_str())
            .ok_or_else(|| self.no_such(format!("field {i} is out of range: {} has {}", ty.name, fields.len())))
    }

    /// The active variant's name (the text lives in the schema).
    pub fn variant_name(&self) -> Result<&'r str> {
        let ty = self.ty()?;
        let Kind::Enum { variants, .. } = &ty.kind else { return Err(wrong(self.reader, ty, "an enum")) };
        match &*self.expand()? {
            Shape::Enum { variant, .. } => variants
                .iter()
                .find(|v| v.name == *variant)
                .map(|v| v.name.as_str())
                .ok_or_else(|| Error::new(error::CORRUPT, format!("variant {variant} not in the schema"))),
            _ => Err(wrong(self.reader, ty, "an enum")),
        }
    }

    /// `Some`'s value, or `None`.
    pub fn option(&self) -> Result<Option<At<'r>>> {
        let ty = self.ty()?;
        match &*self.expand()? {
            Shape::Option(o) => Ok(o.map(|n| self.at(n))),
            _ => Err(wrong(self.reader, ty, "an Option")),
        }
    }

    /// Entry `i` of a map (key, value).
    pub fn entry(&self, i: u64) -> Result<(At<'r>, At<'r>)> {
        let ty = self.ty()?;
        match &*self.expand()? {
            Shape::Map(entries) => {
                let len = entries.len();
                let e = usize::try_from(i).ok().and_then(|i| entries.get(i)).copied();
                e.map(|(k, v)| (self.at(k), self.at(v)))
                    .ok_or_else(|| self.no_such(format!("entry {i} is out of range: {} has {len}", ty.name)))
            }
            _ => Err(wrong(self.reader, ty, "a map")),
        }
    }

    /// The value under `key` in a map: a hash lookup in the map's index,
    /// which the first lookup per held snapshot builds from its entries
    /// (one pass, as expanding the map already is).
    pub fn lookup(&self, key: &Key) -> Result<At<'r>> {
        let ty = self.ty()?;
        let shape = self.expand()?;
        let entries = match &*shape {
            Shape::Option(Some(inner)) => return self.at(*inner).lookup(key),
            Shape::Map(entries) => entries,
            _ => return Err(wrong(self.reader, ty, "a map")),
        };
        let index = self.reader.map_index(self.node, || {
            let mut index = MapIndex::with_capacity(entries.len());
            for (k, v) in entries {
                match self.at(*k).index_key()? {
                    Some(IndexKey::Str(s)) => index.strs.insert(s.into(), *v),
                    Some(IndexKey::Int(i)) => index.ints.insert(i, *v),
                    None => None,
                };
            }
            Ok(index)
        })?;
        let found = match key {
            Key::Str(s) => index.strs.get(*s),
            Key::U64(x) => index.ints.get(&i128::from(*x)),
            Key::I64(x) => index.ints.get(&i128::from(*x)),
        };
        match found {
            Some(v) => Ok(self.at(*v)),
            None => Err(self.no_such(format!("{} has no key {key}", ty.name))),
        }
    }

    /// This value as a map key C can ask for, if it is a string or an integer.
    fn index_key(&self) -> Result<Option<IndexKey<'r>>> {
        if let Some(s) = self.reader.cursor()?.text(self.node).map_err(|e| self.reader.decode_error(e))? {
            return Ok(Some(IndexKey::Str(s)));
        }
        Ok(match &*self.expand()? {
            Shape::Leaf(Value::U64(x)) => Some(IndexKey::Int(i128::from(*x))),
            Shape::Leaf(Value::I64(x)) => Some(IndexKey::Int(i128::from(*x))),
            Shape::Leaf(Value::I128(x)) => Some(IndexKey::Int(*x)),
            // Above `i128::MAX`: no `u64`/`i64` asked for can match it.
            Shape::Leaf(Value::U128(x)) => i128::try_from(*x).ok().map(IndexKey::Int),
            _ => None,
        })
    }

    /// Runs `f` on the leaf value (decoded once per snapshot, then cached).
    fn leaf<T>(&self, f: impl FnOnce(&'r TypeDesc, &Value) -> Result<T>) -> Result<T> {
        let ty = self.ty()?;
        match &*self.expand()? {
            Shape::Leaf(v) => f(ty, v),
            _ => Err(wrong(self.reader, ty, "a number, bool, char or string")),
        }
    }

    fn out_of_range(&self, v: &Value, what: &str) -> Error {
        Error::new(error::OUT_OF_RANGE, format!("{}: {v:?} does not fit {what}", self.reader.name()))
    }

    pub fn u64(&self) -> Result<u64> {
        self.leaf(|ty, v| match v {
            Value::U64(x) => Ok(*x),
            Value::I64(x) => u64::try_from(*x).map_err(|_| self.out_of_range(v, "a u64")),
            Value::U128(x) => u64::try_from(*x).map_err(|_| self.out_of_range(v, "a u64")),
            Value::I128(x) => u64::try_from(*x).map_err(|_| self.out_of_range(v, "a u64")),
            _ => Err(wrong(self.reader, ty, "an integer")),
        })
    }

    pub fn i64(&self) -> Result<i64> {
        self.leaf(|ty, v| match v {
            Value::I64(x) => Ok(*x),
            Value::U64(x) => i64::try_from(*x).map_err(|_| self.out_of_range(v, "an i64")),
            Value::U128(x) => i64::try_from(*x).map_err(|_| self.out_of_range(v, "an i64")),
            Value::I128(x) => i64::try_from(*x).map_err(|_| self.out_of_range(v, "an i64")),
            _ => Err(wrong(self.reader, ty, "an integer")),
        })
    }

    pub fn f64(&self) -> Result<f64> {
        self.leaf(|ty, v| match v {
            Value::F64(x) => Ok(*x),
            Value::F32(x) => Ok(f64::from(*x)),
            _ => Err(wrong(self.reader, ty, "a float")),
        })
    }

    pub fn bool(&self) -> Result<bool> {
        self.leaf(|ty, v| match v {
            Value::Bool(x) => Ok(*x),
            _ => Err(wrong(self.reader, ty, "a bool")),
        })
    }

    pub fn char(&self) -> Result<u32> {
        self.leaf(|ty, v| match v {
            Value::Char(x) => Ok(u32::from(*x)),
            _ => Err(wrong(self.reader, ty, "a char")),
        })
    }

    /// A string's UTF-8 bytes in place: a slice of the held snapshot (its
    /// bounds and UTF-8 checked by the decoder), no copy.
    pub fn str(&self) -> Result<(*const u8, usize)> {
        let ty = self.ty()?;
        self.reader.text(self.node)?.ok_or_else(|| wrong(self.reader, ty, "a string"))
    }

    /// A vector or array of numbers, in place: the first element and the count.
    pub fn numbers(&self, want: i32) -> Result<(*const u8, u64)> {
        let ty = self.ty()?;
        let shape = self.expand()?;
        let Shape::Seq { elem, start, len, .. } = *shape else {
            return Err(wrong(self.reader, ty, "a vector or array of numbers"));
        };
        // As stored, boxes not looked through (a `Vec<Box<f64>>` is no vector of numbers).
        let elem_ty = self.reader.schema().types.get(elem as usize).ok_or_else(|| {
            Error::new(error::CORRUPT, format!("{}: type index {elem} outside the schema", self.reader.name()))
        })?;
        let is = match &elem_ty.kind {
            Kind::Primitive(p) => match p {
                Primitive::U8 => number::U8,
                Primitive::I8 => number::I8,
                Primitive::U16 => number::U16,
                Primitive::I16 => number::I16,
                Primitive::U32 | Primitive::Usize => number::U32,
                Primitive::I32 | Primitive::Isize => number::I32,
                Primitive::U64 => number::U64,
                Primitive::I64 => number::I64,
                Primitive::F32 => number::F32,
                Primitive::F64 => number::F64,
                _ => 0,
            },
            _ => 0,
        };
        if is == 0 || is != want {
            return Err(Error::new(
                error::WRONG_TYPE,
                format!(
                    "{}: the value is a {} (of {}), not a vector of the requested number type",
                    self.reader.name(),
                    ty.name,
                    elem_ty.name
                ),
            ));
        }
        let (_, bytes) = self.reader.snapshot()?;
        // `Cursor::expand` checked that the elements lie inside the snapshot,
        // and validation that they are aligned; both checked again here.
        let size = u64::from(elem_ty.size);
        let end = len.checked_mul(size).and_then(|n| n.checked_add(start as u64));
        let inside = end.is_some_and(|end| end <= bytes.len() as u64);
        let ptr = bytes.get(start..).map(<[u8]>::as_ptr);
        match ptr {
            Some(p) if inside && (p as usize) % (elem_ty.align as usize).max(1) == 0 => Ok((p, len)),
            _ => Err(Error::new(
                error::INVALID_DATA,
                format!("{}: a vector at byte {start} is misplaced", self.reader.name()),
            )),
        }
    }
}

/// A map key asked for from C.
#[derive(Debug)]
pub enum Key<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
}

/// A map key found in a snapshot, as C can ask for it.
enum IndexKey<'r> {
    Str(&'r str),
    Int(i128),
}

impl std::fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Str(s) => write!(f, "{s:?}"),
            Key::U64(x) => write!(f, "{x}"),
            Key::I64(x) => write!(f, "{x}"),
        }
    }
}
