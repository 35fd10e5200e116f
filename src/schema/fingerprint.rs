//! [`SchemaDoc::fingerprint`]: a canonical hash of the type graph reachable
//! from the root.
//!
//! Types are numbered in breadth-first discovery order from the root, children
//! taken in the order their record lists them; every reference is hashed as
//! the number of the type it points to. So the hash follows the graph, not the
//! order of `types` nor the Rust spelling: a recursive reference is a number
//! like any other, and a change anywhere below the root changes the record of
//! that type and thus the hash. Unreachable types are ignored.
//!
//! Per type the record holds its name (no module path: moving a type keeps it
//! compatible), archived size and alignment, and its kind with every field
//! (name, offset, type), variant (name, discriminant, style, fields), tag size,
//! array length and element/key/value type. Counts and lengths come before
//! what they count, so two different graphs never give the same byte stream.
//!
//! FNV-1a detects mistakes, not adversaries; bytecheck guards memory safety.

use std::collections::VecDeque;

use super::desc::{Field, Kind, SchemaDoc, TypeDesc, TypeIndex};
use super::fp::{fnv1a64, mix, mix_str, RKYV_FORMAT};

/// Hashed in place of a reference that points past `types` (only an invalid,
/// undecodable doc has one).
const DANGLING: u64 = u64::MAX;

/// The type indices a record refers to, in record order.
fn refs(kind: &Kind) -> Vec<TypeIndex> {
    let fields = |fs: &[Field]| fs.iter().map(|f| f.ty).collect::<Vec<_>>();
    match kind {
        Kind::Primitive(_) | Kind::String => Vec::new(),
        Kind::Vec(e) | Kind::Option(e) | Kind::Box(e) | Kind::Array(e, _) => vec![*e],
        Kind::HashMap(k, v) | Kind::BTreeMap(k, v) => vec![*k, *v],
        Kind::Tuple(fs) | Kind::Struct { fields: fs, .. } => fields(fs),
        Kind::Enum { variants, .. } => variants.iter().flat_map(|v| fields(&v.fields)).collect(),
    }
}

/// A running FNV-1a hash fed with words and length-prefixed strings.
struct Hash(u64);

impl Hash {
    fn word(&mut self, x: u64) {
        self.0 = mix(self.0, x);
    }

    fn str(&mut self, s: &str) {
        self.0 = mix_str(self.0, s);
    }
}

impl SchemaDoc {
    /// The fingerprint stored in a segment header and compared by readers:
    /// equal for two docs whose graphs reachable from the root are the same
    /// (whatever the order of `types`), different (up to 64-bit hash
    /// collisions) when any reachable layout, name or the rkyv format differs.
    ///
    /// Conservative: two distinct types with equal layouts count as two, so a
    /// doc that uses one type twice and a doc that uses two look-alikes there
    /// differ.
    pub fn fingerprint(&self) -> u64 {
        // Breadth-first numbering from the root.
        let mut number: Vec<Option<u64>> = vec![None; self.types.len()];
        let mut order = Vec::new();
        let mut queue = VecDeque::new();
        if (self.root as usize) < self.types.len() {
            number[self.root as usize] = Some(0);
            queue.push_back(self.root as usize);
        }
        while let Some(i) = queue.pop_front() {
            order.push(i);
            for child in refs(&self.types[i].kind) {
                if let Some(slot @ None) = number.get_mut(child as usize) {
                    *slot = Some((order.len() + queue.len()) as u64);
                    queue.push_back(child as usize);
                }
            }
        }

        let mut h = Hash(fnv1a64(b"shmstate-schema-v2"));
        h.word(RKYV_FORMAT);
        h.word(order.len() as u64);
        let num = |i: TypeIndex| number.get(i as usize).copied().flatten().unwrap_or(DANGLING);
        for &i in &order {
            hash_type(&mut h, &self.types[i], &num);
        }
        h.0
    }
}

fn hash_type(h: &mut Hash, t: &TypeDesc, num: &impl Fn(TypeIndex) -> u64) {
    let fields = |h: &mut Hash, fs: &[Field]| {
        h.word(fs.len() as u64);
        for f in fs {
            h.str(&f.name);
            h.word(u64::from(f.offset));
            h.word(num(f.ty));
        }
    };
    h.str(&t.name);
    h.word(u64::from(t.size));
    h.word(u64::from(t.align));
    match &t.kind {
        Kind::Primitive(p) => {
            h.word(0);
            h.word(*p as u64);
        }
        Kind::String => h.word(1),
        Kind::Vec(e) => {
            h.word(2);
            h.word(num(*e));
        }
        Kind::Option(e) => {
            h.word(3);
            h.word(num(*e));
        }
        Kind::Box(e) => {
            h.word(4);
            h.word(num(*e));
        }
        Kind::Array(e, len) => {
            h.word(5);
            h.word(num(*e));
            h.word(*len);
        }
        Kind::Tuple(fs) => {
            h.word(6);
            fields(h, fs);
        }
        Kind::Struct { fields: fs, tuple } => {
            h.word(7);
            h.word(u64::from(*tuple));
            fields(h, fs);
        }
        Kind::Enum { variants, tag_size } => {
            h.word(8);
            h.word(u64::from(*tag_size));
            h.word(variants.len() as u64);
            for v in variants {
                h.str(&v.name);
                h.word(v.discriminant);
                h.word(u64::from(v.tuple));
                fields(h, &v.fields);
            }
        }
        Kind::HashMap(k, v) => {
            h.word(9);
            h.word(num(*k));
            h.word(num(*v));
        }
        Kind::BTreeMap(k, v) => {
            h.word(10);
            h.word(num(*k));
            h.word(num(*v));
        }
    }
}
