//! A cursor over a snapshot's bytes: the decoder's walk, stopped one level
//! down, so that a binding can read the one field it is asked for without
//! decoding the rest (the Python package's views).
//!
//! Meant for bytes [`validate`](super::validate) has accepted (once per
//! generation): each step is the decoder's own code on the value it is asked
//! for, so every offset, pointer, tag and string is still checked, and bytes
//! that were not validated give errors, never a wrong read outside the
//! snapshot. Claims are checked within each step (from the whole snapshot),
//! not across steps: that is `validate`'s job.

use super::decode::Decoder;
use super::{DecodeError, Fields, Limits, Value};
use crate::schema::{Kind, SchemaDoc, TypeIndex};

/// A value in a snapshot: its type (an index into the schema's types) and
/// the byte it starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Node {
    /// The value's type.
    pub ty: TypeIndex,
    /// Its first byte in the snapshot.
    pub at: usize,
}

/// What a [`Node`] holds, one level deep: leaves decoded, everything below
/// them as nodes. `Box`, `Arc` and `Rc` are looked through.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Shape {
    /// A value with nothing below it, decoded: numbers, `bool`, `char`,
    /// `()`, strings (`String`, `Box<str>`, …).
    Leaf(Value),
    /// A struct (also a unit struct such as `PhantomData<T>`).
    Struct {
        /// The type's name.
        name: String,
        /// Its fields.
        fields: NodeFields,
    },
    /// A tuple's elements.
    Tuple(Vec<Node>),
    /// A `Vec<T>`, `Box<[T]>` or `[T; N]`: `len` elements of type `elem`
    /// from byte `start` on, one every `elem_size` bytes, all inside the
    /// snapshot.
    Seq {
        /// The element type.
        elem: TypeIndex,
        /// The element size in bytes (the stride).
        elem_size: usize,
        /// The first element's byte.
        start: usize,
        /// The element count.
        len: u64,
    },
    /// `Option<T>`.
    Option(Option<Node>),
    /// An enum value.
    Enum {
        /// The enum's name.
        name: String,
        /// The variant's name.
        variant: String,
        /// The variant's fields.
        fields: NodeFields,
    },
    /// A map's entries: a `BTreeMap`'s in key order, a `HashMap`'s in bucket order.
    Map(Vec<(Node, Node)>),
    /// A set's elements, in the order of [`Shape::Map`].
    Set(Vec<Node>),
}

/// The fields of a struct or a variant, as nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeFields {
    /// None.
    Unit,
    /// Positional.
    Tuple(Vec<Node>),
    /// Named, in declaration order.
    Named(Vec<(String, Node)>),
}

/// A snapshot's bytes with the schema they are read with.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'s, 'b> {
    doc: &'s SchemaDoc,
    bytes: &'b [u8],
    limits: Limits,
}

impl<'s, 'b> Cursor<'s, 'b> {
    /// A cursor over `bytes` (a whole snapshot, root at the end, as
    /// [`RawReader::read`](crate::RawReader::read) returns it), each step
    /// within `limits`.
    pub fn new(doc: &'s SchemaDoc, bytes: &'b [u8], limits: Limits) -> Self {
        Cursor { doc, bytes, limits }
    }

    /// The schema.
    pub fn schema(&self) -> &'s SchemaDoc {
        self.doc
    }

    /// The bytes.
    pub fn bytes(&self) -> &'b [u8] {
        self.bytes
    }

    /// The root value (rkyv puts it at the end).
    pub fn root(&self) -> Result<Node, DecodeError> {
        let d = self.decoder();
        let size = d.ty(self.doc.root)?.size as usize;
        match self.bytes.len().checked_sub(size) {
            Some(at) => Ok(Node { ty: self.doc.root, at }),
            None => d.fail(format!("the snapshot has {} bytes, too few for its root ({size} bytes)", self.bytes.len())),
        }
    }

    /// What `node` holds, one level deep (see [`Shape`]).
    pub fn expand(&self, node: Node) -> Result<Shape, DecodeError> {
        let mut node = node;
        // Pointers are looked through; each hop is one more level, bounded.
        for _ in 0..=self.limits.max_depth {
            let mut d = self.decoder();
            d.lazy = true;
            let value = d.value(node.ty, node.at)?;
            let kind = &d.ty(node.ty)?.kind;
            let children = std::mem::take(&mut d.children);
            let child = |v: &Value| -> Result<Node, DecodeError> {
                match v {
                    Value::U64(i) => match children.get(*i as usize) {
                        Some(n) => Ok(*n),
                        None => d.fail(format!("the cursor lost child {i}")),
                    },
                    _ => d.fail("the cursor expected a child".into()),
                }
            };
            let fields = |f: &Fields| -> Result<NodeFields, DecodeError> {
                Ok(match f {
                    Fields::Unit => NodeFields::Unit,
                    Fields::Tuple(items) => NodeFields::Tuple(items.iter().map(child).collect::<Result<_, _>>()?),
                    Fields::Named(items) => NodeFields::Named(
                        items.iter().map(|(n, v)| Ok((n.clone(), child(v)?))).collect::<Result<_, _>>()?,
                    ),
                })
            };
            return Ok(match (kind, value) {
                (Kind::Box(_), v) => {
                    node = child(&v)?;
                    continue;
                }
                (Kind::Vec(e) | Kind::Array(e, _), Value::Seq(_)) => {
                    let elem = d.ty(*e)?;
                    let Some((start, len)) = d.seq else { return d.fail("the cursor lost a sequence".into()) };
                    let end = u128::from(len) * u128::from(elem.size) + start as u128;
                    if end > self.bytes.len() as u128 {
                        return d.fail(format!("{} at byte {start} runs past the snapshot", elem.name));
                    }
                    Shape::Seq { elem: *e, elem_size: elem.size as usize, start, len }
                }
                (_, Value::Struct { name, fields: f }) => Shape::Struct { name, fields: fields(&f)? },
                (_, Value::Enum { name, variant, fields: f }) => Shape::Enum { name, variant, fields: fields(&f)? },
                (_, Value::Tuple(items)) => Shape::Tuple(items.iter().map(child).collect::<Result<_, _>>()?),
                (_, Value::Option(None)) => Shape::Option(None),
                (_, Value::Option(Some(v))) => Shape::Option(Some(child(&v)?)),
                (_, Value::Map(entries)) => Shape::Map(
                    entries.iter().map(|(k, v)| Ok((child(k)?, child(v)?))).collect::<Result<_, DecodeError>>()?,
                ),
                (_, Value::Set(items)) => Shape::Set(items.iter().map(child).collect::<Result<_, _>>()?),
                (_, leaf) => Shape::Leaf(leaf),
            });
        }
        self.decoder().fail(format!("pointers nest deeper than {} levels", self.limits.max_depth))
    }

    /// The field `name` of a struct or tuple node (`"0"`, `"1"`… for
    /// positional fields), looking through pointers: found in the schema,
    /// nothing decoded and nothing allocated. `None` if `node` is no struct
    /// or tuple, or has no such field. The struct's bytes are checked to lie
    /// in the snapshot; the field's value is checked when it is read.
    pub fn field(&self, node: Node, name: &str) -> Result<Option<Node>, DecodeError> {
        let mut node = node;
        for _ in 0..=self.limits.max_depth {
            let d = self.decoder();
            let t = d.ty(node.ty)?;
            let fields = match &t.kind {
                Kind::Box(_) => {
                    node = match self.expand_box(node)? {
                        Some(n) => n,
                        None => return Ok(None),
                    };
                    continue;
                }
                Kind::Struct { fields, .. } | Kind::Tuple(fields) => fields,
                _ => return Ok(None),
            };
            d.slice(node.at, t.size as usize, &t.name)?;
            if node.at % t.align.max(1) as usize != 0 {
                return d.fail(format!("{} at byte {} is not aligned to {}", t.name, node.at, t.align));
            }
            let Some(f) = fields.iter().find(|f| f.name == name) else { return Ok(None) };
            return match node.at.checked_add(f.offset as usize) {
                Some(at) => Ok(Some(Node { ty: f.ty, at })),
                None => d.fail(format!("field {name} of {} lies beyond the addressable range", t.name)),
            };
        }
        self.decoder().fail(format!("pointers nest deeper than {} levels", self.limits.max_depth))
    }

    /// What the `Box` at `node` points to (the decoder's check of the pointer).
    fn expand_box(&self, node: Node) -> Result<Option<Node>, DecodeError> {
        let mut d = self.decoder();
        d.lazy = true;
        match d.value(node.ty, node.at)? {
            Value::U64(i) => Ok(d.children.get(i as usize).copied()),
            _ => Ok(None),
        }
    }

    /// A string node's UTF-8 in place (a slice of the snapshot, checked as
    /// [`expand`](Self::expand) checks it), looking through pointers;
    /// `None` if `node` is no string.
    pub fn text(&self, node: Node) -> Result<Option<&'b str>, DecodeError> {
        let mut node = node;
        for _ in 0..=self.limits.max_depth {
            let mut d = self.decoder();
            d.lazy = true;
            let value = d.value(node.ty, node.at)?;
            return match (&d.ty(node.ty)?.kind, value) {
                (Kind::Box(_), Value::U64(i)) => match d.children.get(i as usize) {
                    Some(n) => {
                        node = *n;
                        continue;
                    }
                    None => d.fail(format!("the cursor lost child {i}")),
                },
                (_, Value::String(_)) => Ok(d.text),
                _ => Ok(None),
            };
        }
        self.decoder().fail(format!("pointers nest deeper than {} levels", self.limits.max_depth))
    }

    /// Element `i` of a [`Shape::Seq`], if `i < len`.
    pub fn element(&self, seq: &Shape, i: u64) -> Option<Node> {
        match *seq {
            Shape::Seq { elem, elem_size, start, len } if i < len => {
                let at = usize::try_from(i).ok()?.checked_mul(elem_size)?.checked_add(start)?;
                Some(Node { ty: elem, at })
            }
            _ => None,
        }
    }

    /// `node` decoded whole.
    pub fn decode(&self, node: Node) -> Result<Value, DecodeError> {
        self.decoder().value(node.ty, node.at)
    }

    fn decoder(&self) -> Decoder<'s, 'b> {
        Decoder::new(self.doc, self.bytes, self.limits, false)
    }
}
