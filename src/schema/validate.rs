//! Structural validation of a decoded [`SchemaDoc`].
//!
//! The doc comes from shared memory, so bytecheck alone is not enough: a
//! schema-driven decoder (the CLI) indexes `types`, reads fields at `offset`
//! and recurses into inline members. After `validate` succeeds it may rely on:
//! every index in range; every inline member (field, array element, option
//! payload) lying inside its parent's `size` at an offset aligned for it;
//! fixed-layout kinds (primitives, `String`, `Vec`, `Box`, maps) having this
//! build's archived size and alignment; no type containing itself by value
//! (so decoding a value terminates without following a relative pointer).

use std::collections::HashSet;

use super::desc::{Field, Kind, Primitive, SchemaDoc, SchemaError, TypeDesc, TypeIndex};

/// `(size, align)` of the archived form of a fixed-layout kind in this build.
pub(crate) fn fixed_layout(kind: &Kind) -> Option<(u32, u32)> {
    use core::mem::{align_of, size_of};
    use rkyv::Archived;
    use std::collections::{BTreeMap, HashMap};
    fn l<T>() -> Option<(u32, u32)> {
        Some((size_of::<T>() as u32, align_of::<T>() as u32))
    }
    match kind {
        Kind::Primitive(p) => match p {
            Primitive::Unit => l::<Archived<()>>(),
            Primitive::Bool => l::<Archived<bool>>(),
            Primitive::U8 => l::<Archived<u8>>(),
            Primitive::U16 => l::<Archived<u16>>(),
            Primitive::U32 => l::<Archived<u32>>(),
            Primitive::U64 => l::<Archived<u64>>(),
            Primitive::U128 => l::<Archived<u128>>(),
            Primitive::Usize => l::<Archived<usize>>(),
            Primitive::I8 => l::<Archived<i8>>(),
            Primitive::I16 => l::<Archived<i16>>(),
            Primitive::I32 => l::<Archived<i32>>(),
            Primitive::I64 => l::<Archived<i64>>(),
            Primitive::I128 => l::<Archived<i128>>(),
            Primitive::Isize => l::<Archived<isize>>(),
            Primitive::F32 => l::<Archived<f32>>(),
            Primitive::F64 => l::<Archived<f64>>(),
            Primitive::Char => l::<Archived<char>>(),
        },
        Kind::String => l::<Archived<String>>(),
        // `Box<[T]>` is described as `Vec` too; both are (rel offset, len).
        Kind::Vec(_) => l::<Archived<Vec<u8>>>(),
        Kind::Box(_) => l::<Archived<Box<u8>>>(),
        Kind::HashMap(..) => l::<Archived<HashMap<u8, u8>>>(),
        Kind::BTreeMap(..) => l::<Archived<BTreeMap<u8, u8>>>(),
        Kind::Option(_) | Kind::Array(..) | Kind::Tuple(_) | Kind::Struct { .. } => None,
        Kind::Enum { .. } => None,
    }
}

fn err<T>(msg: String) -> Result<T, SchemaError> {
    Err(SchemaError(msg))
}

impl SchemaDoc {
    /// Checks the invariants listed in this module's documentation.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let n = self.types.len();
        if self.root as usize >= n {
            return err(format!("root index {} out of {n} types", self.root));
        }
        // Sizes and alignments of every type first: member checks divide by
        // the member's alignment, which may come later in the list.
        for (i, t) in self.types.iter().enumerate() {
            if !t.align.is_power_of_two() || t.size % t.align != 0 {
                return err(format!("type {i} ({}) has size {} and alignment {}", t.name, t.size, t.align));
            }
        }
        for (i, t) in self.types.iter().enumerate() {
            self.check_type(i, t)?;
        }
        self.check_acyclic()
    }

    fn get(&self, parent: usize, idx: TypeIndex) -> Result<&TypeDesc, SchemaError> {
        match self.types.get(idx as usize) {
            Some(t) => Ok(t),
            None => err(format!(
                "type {parent} ({}) refers to type {idx}, past {} types",
                self.types[parent].name,
                self.types.len()
            )),
        }
    }

    /// An inline member of type `idx` at `offset` must fit inside `t` and be aligned.
    fn check_member(&self, i: usize, t: &TypeDesc, what: &str, idx: TypeIndex, offset: u64) -> Result<(), SchemaError> {
        let m = self.get(i, idx)?;
        if offset + u64::from(m.size) > u64::from(t.size) {
            return err(format!(
                "{what} of {} at offset {offset} (size {}) overruns its size {}",
                t.name, m.size, t.size
            ));
        }
        if offset % u64::from(m.align) != 0 {
            return err(format!("{what} of {} at offset {offset} is not aligned to {}", t.name, m.align));
        }
        Ok(())
    }

    fn check_fields(&self, i: usize, t: &TypeDesc, fields: &[Field], min_offset: u64) -> Result<(), SchemaError> {
        for f in fields {
            if u64::from(f.offset) < min_offset {
                return err(format!("field {} of {} overlaps the enum tag", f.name, t.name));
            }
            self.check_member(i, t, &format!("field {}", f.name), f.ty, u64::from(f.offset))?;
        }
        Ok(())
    }

    fn check_type(&self, i: usize, t: &TypeDesc) -> Result<(), SchemaError> {
        if let Some((size, align)) = fixed_layout(&t.kind) {
            if (t.size, t.align) != (size, align) {
                return err(format!(
                    "type {i} ({}) has size {} align {}, but this build archives it as \
                     size {size} align {align} (different rkyv format?)",
                    t.name, t.size, t.align
                ));
            }
        }
        match &t.kind {
            Kind::Primitive(_) | Kind::String => Ok(()),
            Kind::Vec(e) | Kind::Box(e) => self.get(i, *e).map(drop),
            Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => {
                self.get(i, *k)?;
                self.get(i, *v).map(drop)
            }
            Kind::Option(e) => {
                let payload = u64::from(self.get(i, *e)?.align);
                self.check_member(i, t, "payload", *e, payload)
            }
            Kind::Array(e, len) => {
                let elem = self.get(i, *e)?;
                // The length cap keeps arrays of zero-sized elements from asking
                // a decoder for billions of iterations.
                match u64::from(elem.size).checked_mul(*len) {
                    Some(total)
                        if total == u64::from(t.size) && elem.align <= t.align && *len <= u64::from(u32::MAX) =>
                    {
                        Ok(())
                    }
                    _ => err(format!("array {} of {len} × {} bytes has size {}", t.name, elem.size, t.size)),
                }
            }
            Kind::Tuple(fields) | Kind::Struct { fields, .. } => self.check_fields(i, t, fields, 0),
            Kind::Enum { variants, tag_size } => {
                if !matches!(tag_size, 1 | 2 | 4 | 8) || *tag_size > t.size {
                    return err(format!("enum {} has tag size {tag_size}", t.name));
                }
                let max = u64::MAX >> (64 - 8 * tag_size);
                let mut discs = HashSet::new();
                for v in variants {
                    if v.discriminant > max || !discs.insert(v.discriminant) {
                        return err(format!(
                            "variant {}::{} has bad or duplicate discriminant {}",
                            t.name, v.name, v.discriminant
                        ));
                    }
                    self.check_fields(i, t, &v.fields, u64::from(*tag_size))?;
                }
                Ok(())
            }
        }
    }

    /// Types that live inside `kind` by value (not behind a relative pointer).
    fn inline_children(kind: &Kind) -> Vec<TypeIndex> {
        match kind {
            Kind::Option(e) | Kind::Array(e, _) => vec![*e],
            Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fs.iter().map(|f| f.ty).collect(),
            Kind::Enum { variants, .. } => variants.iter().flat_map(|v| v.fields.iter().map(|f| f.ty)).collect(),
            _ => Vec::new(),
        }
    }

    /// Rejects a type that contains itself by value (iterative DFS, no recursion
    /// on untrusted depth).
    fn check_acyclic(&self) -> Result<(), SchemaError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; self.types.len()];
        for start in 0..self.types.len() {
            if mark[start] != Mark::New {
                continue;
            }
            mark[start] = Mark::Open;
            let mut stack = vec![(start, Self::inline_children(&self.types[start].kind), 0usize)];
            while let Some((node, children, next)) = stack.last_mut() {
                let Some(&child) = children.get(*next) else {
                    mark[*node] = Mark::Done;
                    stack.pop();
                    continue;
                };
                *next += 1;
                let child = child as usize;
                match mark[child] {
                    Mark::Open => return err(format!("type {} contains itself by value", self.types[child].name)),
                    Mark::Done => {}
                    Mark::New => {
                        mark[child] = Mark::Open;
                        stack.push((child, Self::inline_children(&self.types[child].kind), 0));
                    }
                }
            }
        }
        Ok(())
    }
}
