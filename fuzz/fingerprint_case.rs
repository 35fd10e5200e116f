//! Target `fingerprint` (fuzz/fuzz_targets/fingerprint.rs), replayed by
//! tests/bad_bytes.rs like the cases in fuzz/harness.rs: bytes drive a random
//! valid `SchemaDoc`, then
//! - relabeling its types (a permutation of the indices) keeps the fingerprint;
//! - one layout-changing edit to a type reachable from the root changes it;
//! - the same kind of edit to an unreachable type does not.
//!
//! A panic is a fingerprint bug (or a generator bug: the doc must validate).
#![allow(dead_code)]

use shmstate::rkyv::Archived;
use shmstate::schema::{Field, Kind, Primitive, SchemaDoc, TypeDesc, TypeIndex, Variant};

/// Reads the input a byte at a time; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }
}

const PRIMITIVES: [Primitive; 17] = [
    Primitive::Unit,
    Primitive::Bool,
    Primitive::U8,
    Primitive::U16,
    Primitive::U32,
    Primitive::U64,
    Primitive::U128,
    Primitive::Usize,
    Primitive::I8,
    Primitive::I16,
    Primitive::I32,
    Primitive::I64,
    Primitive::I128,
    Primitive::Isize,
    Primitive::F32,
    Primitive::F64,
    Primitive::Char,
];

fn layout<T>() -> (u32, u32) {
    (core::mem::size_of::<T>() as u32, core::mem::align_of::<T>() as u32)
}

/// Archived `(size, align)` of a primitive in this build.
fn primitive_layout(p: Primitive) -> (u32, u32) {
    match p {
        Primitive::Unit => layout::<Archived<()>>(),
        Primitive::Bool => layout::<Archived<bool>>(),
        Primitive::U8 => layout::<Archived<u8>>(),
        Primitive::U16 => layout::<Archived<u16>>(),
        Primitive::U32 => layout::<Archived<u32>>(),
        Primitive::U64 => layout::<Archived<u64>>(),
        Primitive::U128 => layout::<Archived<u128>>(),
        Primitive::Usize => layout::<Archived<usize>>(),
        Primitive::I8 => layout::<Archived<i8>>(),
        Primitive::I16 => layout::<Archived<i16>>(),
        Primitive::I32 => layout::<Archived<i32>>(),
        Primitive::I64 => layout::<Archived<i64>>(),
        Primitive::I128 => layout::<Archived<i128>>(),
        Primitive::Isize => layout::<Archived<isize>>(),
        Primitive::F32 => layout::<Archived<f32>>(),
        Primitive::F64 => layout::<Archived<f64>>(),
        Primitive::Char => layout::<Archived<char>>(),
    }
}

fn round_up(x: u32, align: u32) -> u32 {
    x.next_multiple_of(align.max(1))
}

/// `repr(C)` fields after `start` bytes: the fields and the end offset.
fn place(types: &[TypeDesc], start: u32, tys: &[TypeIndex]) -> (Vec<Field>, u32, u32) {
    let (mut end, mut align) = (start, 1);
    let fields = tys
        .iter()
        .enumerate()
        .map(|(i, &ty)| {
            let t = &types[ty as usize];
            let offset = round_up(end, t.align);
            end = offset + t.size;
            align = align.max(t.align);
            Field { name: ["a", "b", "c", "0", "1"][i % 5].to_owned(), ty, offset }
        })
        .collect();
    (fields, end, align)
}

/// A valid doc: types that hold others by value (option, array, tuple, struct,
/// enum) only hold earlier ones, so nothing contains itself; pointer kinds
/// (vec, box, maps) point anywhere, so cycles go through them.
fn generate(b: &mut Bytes<'_>) -> SchemaDoc {
    let n = 1 + b.below(12);
    let mut types: Vec<TypeDesc> = Vec::with_capacity(n);
    for i in 0..n {
        // Few names, so equal names with different layouts are common.
        let name = ["A", "B", "Node", "u8"][b.below(4)].to_owned();
        let any = |b: &mut Bytes<'_>| b.below(n) as TypeIndex;
        let earlier = |b: &mut Bytes<'_>| b.below(i) as TypeIndex;
        let choice = b.below(10);
        let (kind, size, align) = match choice {
            6..=9 if i == 0 => {
                let (s, a) = primitive_layout(Primitive::U8);
                (Kind::Primitive(Primitive::U8), s, a)
            }
            0 => {
                let p = PRIMITIVES[b.below(PRIMITIVES.len())];
                let (s, a) = primitive_layout(p);
                (Kind::Primitive(p), s, a)
            }
            1 => (Kind::String, layout::<Archived<String>>().0, layout::<Archived<String>>().1),
            2 => (Kind::Vec(any(b)), layout::<Archived<Vec<u8>>>().0, layout::<Archived<Vec<u8>>>().1),
            3 => (Kind::Box(any(b)), layout::<Archived<Box<u8>>>().0, layout::<Archived<Box<u8>>>().1),
            4 => {
                let (s, a) = layout::<Archived<std::collections::HashMap<u8, u8>>>();
                (Kind::HashMap(any(b), any(b)), s, a)
            }
            5 => {
                let (s, a) = layout::<Archived<std::collections::BTreeMap<u8, u8>>>();
                (Kind::BTreeMap(any(b), any(b)), s, a)
            }
            6 => {
                let e = earlier(b);
                let t = &types[e as usize];
                let align = t.align.max(1);
                (Kind::Option(e), round_up(align + t.size, align), align)
            }
            7 => {
                let e = earlier(b);
                let len = b.below(4) as u64;
                let t = &types[e as usize];
                (Kind::Array(e, len), t.size * len as u32, t.align)
            }
            8 => {
                let tys: Vec<TypeIndex> = (0..b.below(4)).map(|_| earlier(b)).collect();
                let (fields, end, align) = place(&types, 0, &tys);
                let kind = match b.below(3) {
                    0 => Kind::Tuple(fields),
                    k => Kind::Struct { fields, tuple: k == 1 },
                };
                (kind, round_up(end, align), align)
            }
            _ => {
                let (mut size, mut align, mut disc) = (1, 1, 0u64);
                let variants = (0..1 + b.below(4))
                    .map(|v| {
                        let tys: Vec<TypeIndex> = (0..b.below(3)).map(|_| earlier(b)).collect();
                        let (fields, end, a) = place(&types, 1, &tys);
                        (size, align) = (size.max(end), align.max(a));
                        disc += b.below(3) as u64 + u64::from(v > 0);
                        Variant {
                            name: ["X", "Y", "Z"][v % 3].to_owned(),
                            discriminant: disc,
                            fields,
                            tuple: b.byte() & 1 == 1,
                        }
                    })
                    .collect();
                (Kind::Enum { variants, tag_size: 1 }, round_up(size, align), align)
            }
        };
        types.push(TypeDesc { name, size, align, kind });
    }
    SchemaDoc { root: b.below(n) as TypeIndex, types }
}

/// Every type index a kind refers to, in order.
fn refs(kind: &Kind) -> Vec<TypeIndex> {
    match kind {
        Kind::Primitive(_) | Kind::String => Vec::new(),
        Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) => vec![*e],
        Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => vec![*k, *v],
        Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fs.iter().map(|f| f.ty).collect(),
        Kind::Enum { variants, .. } => variants.iter().flat_map(|v| v.fields.iter().map(|f| f.ty)).collect(),
    }
}

fn reachable(doc: &SchemaDoc) -> Vec<bool> {
    let mut seen = vec![false; doc.types.len()];
    let mut stack = vec![doc.root];
    while let Some(i) = stack.pop() {
        if !std::mem::replace(&mut seen[i as usize], true) {
            stack.extend(refs(&doc.types[i as usize].kind));
        }
    }
    seen
}

/// `doc` with type `i` moved to `perm[i]` and every reference renamed.
fn relabel(doc: &SchemaDoc, perm: &[TypeIndex]) -> SchemaDoc {
    let mut types = doc.types.clone();
    for (i, t) in doc.types.iter().enumerate() {
        let mut t = t.clone();
        let p = |x: &mut TypeIndex| *x = perm[*x as usize];
        match &mut t.kind {
            Kind::Primitive(_) | Kind::String => {}
            Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) => p(e),
            Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => {
                p(k);
                p(v);
            }
            Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fs.iter_mut().for_each(|f| p(&mut f.ty)),
            Kind::Enum { variants, .. } => variants.iter_mut().flat_map(|v| &mut v.fields).for_each(|f| p(&mut f.ty)),
        }
        types[perm[i] as usize] = t;
    }
    SchemaDoc { root: perm[doc.root as usize], types }
}

/// What a type looks like without following references: two types that
/// differ here have different layouts.
fn local(t: &TypeDesc) -> (String, u32, u32, std::mem::Discriminant<Kind>) {
    (t.name.clone(), t.size, t.align, std::mem::discriminant(&t.kind))
}

/// The fields of a kind, mutable (struct, tuple, or one enum variant's).
fn fields_mut<'a>(kind: &'a mut Kind, b: &mut Bytes<'_>) -> Option<&'a mut Vec<Field>> {
    match kind {
        Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => Some(fs),
        Kind::Enum { variants, .. } => {
            let n = variants.len();
            Some(&mut variants[b.below(n)].fields)
        }
        _ => None,
    }
}

/// Applies one layout-changing edit to type `t`; returns its name, or `None`
/// when `t` has nothing of that sort to change.
fn mutate(doc: &mut SchemaDoc, t: usize, b: &mut Bytes<'_>) -> Option<&'static str> {
    let n = doc.types.len();
    let locals: Vec<_> = doc.types.iter().map(local).collect();
    let bump = u32::from(b.byte()) + 1;
    let ty = &mut doc.types[t];
    match b.below(9) {
        0 => ty.size = ty.size.wrapping_add(bump),
        1 => ty.align = ty.align.wrapping_mul(2),
        2 => ty.name.push('\''),
        3 => {
            let f = fields_mut(&mut ty.kind, b)?.first_mut()?;
            f.offset = f.offset.wrapping_add(bump);
            return Some("field offset");
        }
        4 => {
            // Another field type whose own record differs.
            let start = b.below(n);
            let fs = fields_mut(&mut ty.kind, b)?;
            let k = b.below(fs.len().max(1));
            let f = fs.get_mut(k)?;
            let other = (0..n).map(|j| (start + j) % n).find(|&j| locals[j] != locals[f.ty as usize])?;
            f.ty = other as TypeIndex;
            return Some("field type");
        }
        5 => {
            let fs = fields_mut(&mut ty.kind, b)?;
            let (x, y) = (b.below(fs.len().max(1)), b.below(fs.len().max(1)));
            if locals[fs.get(x)?.ty as usize] == locals[fs.get(y)?.ty as usize] {
                return None;
            }
            let (tx, ty2) = (fs[x].ty, fs[y].ty);
            (fs[x].ty, fs[y].ty) = (ty2, tx);
            return Some("swapped field types");
        }
        6 => match &mut ty.kind {
            Kind::Enum { variants, tag_size } => {
                if b.byte() & 1 == 0 {
                    let v = b.below(variants.len());
                    variants[v].discriminant = variants[v].discriminant.wrapping_add(u64::from(bump));
                    return Some("discriminant");
                }
                *tag_size *= 2;
                return Some("tag size");
            }
            _ => return None,
        },
        7 => match &mut ty.kind {
            Kind::Array(_, len) => *len += u64::from(bump),
            _ => return None,
        },
        _ => {
            // Another element/key/value type whose own record differs.
            let start = b.below(n);
            let other = |e: &TypeIndex| (0..n).map(|j| (start + j) % n).find(|&j| locals[j] != locals[*e as usize]);
            match &mut ty.kind {
                Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) | Kind::HashMap(e, _) => {
                    *e = other(e)? as TypeIndex
                }
                Kind::BTreeMap(_, v) => *v = other(v)? as TypeIndex,
                _ => return None,
            }
            return Some("element type");
        }
    }
    Some("size, align, name or length")
}

/// Returns `None` when the chosen edit did not apply, else whether the edited
/// type was reachable (so a sweep can tell that it checked something).
pub fn fingerprint_case(data: &[u8]) -> Option<bool> {
    let mut b = Bytes(data);
    let doc = generate(&mut b);
    if let Err(e) = doc.validate() {
        panic!("generator made an invalid doc ({e}):\n{doc:?}");
    }
    let fp = doc.fingerprint();

    // Relabeling: a Fisher-Yates shuffle of the indices.
    let n = doc.types.len();
    let mut perm: Vec<TypeIndex> = (0..n as TypeIndex).collect();
    for i in (1..n).rev() {
        perm.swap(i, b.below(i + 1));
    }
    let moved = relabel(&doc, &perm);
    assert_eq!(moved.fingerprint(), fp, "relabeling {perm:?} changed the fingerprint of\n{doc:?}");
    assert_eq!(SchemaDoc::decode(&moved.encode()).map(|d| d.fingerprint()), Ok(fp));

    // One edit to a reachable type changes it; to an unreachable one, not.
    let live = reachable(&doc);
    let t = b.below(n);
    let mut edited = doc.clone();
    let what = mutate(&mut edited, t, &mut b)?;
    if live[t] {
        assert_ne!(
            edited.fingerprint(),
            fp,
            "{what} of type {t} kept the fingerprint of\n{doc:?}\nedited:\n{edited:?}"
        );
    } else {
        assert_eq!(edited.fingerprint(), fp, "{what} of unreachable type {t} changed the fingerprint");
    }
    Some(live[t])
}
