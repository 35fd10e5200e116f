//! rkyv's subtree range discipline, as its validator enforces it: every
//! relative pointer claims its target inside the current subtree range,
//! after the claims before it and before the value that holds it, and the
//! target of a shared pointer (`Arc`, `Rc`) is claimed once, by the first
//! pointer to it (the module docs of `dynamic`, "Guarantees").

use std::ops::Range;

use super::decode::Decoder;
use super::{DecodeError, Value};
use crate::schema::{Kind, TypeDesc, TypeIndex};

/// A relative pointer read from the snapshot: the byte it is stored at, and
/// the byte it points to (not yet checked).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ptr {
    pub(super) field: usize,
    pub(super) target: i128,
}

/// A shared pointer's target, as rkyv's `SharedValidator` records it.
pub(super) struct Shared {
    /// The pointer type (`Arc<T>` and `Rc<T>` may not share a target, nor
    /// pointers of two types).
    pub(super) ty: TypeIndex,
    /// The element count of a shared slice or `str`.
    pub(super) len: Option<u64>,
    /// `None` while the target is being checked (a pointer to it then is a
    /// cycle); then the decoded value and the number of values it counted
    /// (a unit value when validating: nothing reads it).
    pub(super) done: Option<(Value, u64)>,
}

impl<'s> Decoder<'s, '_> {
    /// Reads the relative pointer stored at `field` (an `i32` counted from `base`).
    pub(super) fn ptr(&self, field: usize, base: usize, what: &str) -> Result<Ptr, DecodeError> {
        let off = i32::from_le_bytes(self.array(field, what)?);
        Ok(Ptr { field, target: base as i128 + i128::from(off) })
    }

    /// rkyv's `check_subtree_ptr`: `len` bytes at `p.target`, aligned to
    /// `align`, must lie inside the current subtree range. Returns the target.
    pub(super) fn check_claim(&self, p: Ptr, len: u128, align: u32, what: &str) -> Result<usize, DecodeError> {
        let (start, end) = (p.target, p.target + len as i128);
        let field = p.field;
        if start < 0 || end > self.bytes.len() as i128 {
            return self.fail(format!(
                "relative pointer of {what} at byte {field} points outside the snapshot \
                 (to bytes {start}..{end}, snapshot is {} bytes)",
                self.bytes.len()
            ));
        }
        let Range { start: lo, end: hi } = self.range;
        if start < lo as i128 || end > hi as i128 {
            return self.fail(format!(
                "relative pointer of {what} at byte {field} points to bytes {start}..{end}, outside bytes {lo}..{hi} \
                 (a target must lie before the value holding its pointer and after the targets \
                 of the pointers checked before it: no overlap, as rkyv writes them)"
            ));
        }
        let target = start as usize;
        if target % align.max(1) as usize != 0 {
            return self.fail(format!(
                "relative pointer of {what} at byte {field} points to byte {target}, \
                 which is not aligned to {align}"
            ));
        }
        Ok(target)
    }

    /// rkyv's `in_subtree`: claims the `len` bytes at `p.target` (see
    /// [`check_claim`](Self::check_claim)) and checks them with `f`, given the
    /// target. While `f` runs, further claims must lie before the target;
    /// afterwards, after its end.
    pub(super) fn claim<T>(
        &mut self,
        p: Ptr,
        len: u128,
        align: u32,
        what: &str,
        f: impl FnOnce(&mut Self, usize) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let at = self.check_claim(p, len, align, what)?;
        // In range, so `at + len` fits the snapshot.
        let after = at + len as usize..self.range.end;
        self.range.end = at;
        let r = f(self, at)?;
        // rkyv's `pop_subtree_range` check (popped in order) holds by
        // construction: claims inside `f` end at or before `at`.
        self.range = after;
        Ok(r)
    }

    /// Follows `p` to what a pointer of type `idx` owns: a claim of `len` bytes
    /// aligned to `align`, checked by `f`; or, for a shared pointer (`Arc`,
    /// `Rc`), a target that earlier pointers of the same type and `count` may
    /// already have claimed and checked.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pointee(
        &mut self,
        idx: TypeIndex,
        t: &TypeDesc,
        p: Ptr,
        len: u128,
        align: u32,
        count: Option<u64>,
        f: impl FnOnce(&mut Self, usize) -> Result<Value, DecodeError>,
    ) -> Result<Value, DecodeError> {
        if !is_shared(t) {
            return self.claim(p, len, align, &t.name, f);
        }
        let key = p.target;
        if let Some(seen) = self.shared.get(&key) {
            let field = p.field;
            if seen.ty != idx {
                let other = self.doc.types.get(seen.ty as usize).map_or("?", |o| o.name.as_str());
                return self.fail(format!(
                    "shared pointer {} at byte {field} points to byte {key}, which a {other} points to",
                    t.name
                ));
            }
            if seen.len != count {
                return self.fail(format!(
                    "shared pointer {} at byte {field} points to byte {key} with length {}, \
                     which another points to with length {}",
                    t.name,
                    count.unwrap_or(0),
                    seen.len.unwrap_or(0)
                ));
            }
            let Some((_, n)) = seen.done else {
                return self
                    .fail(format!("shared pointer {} at byte {field} points back to byte {key}, a cycle", t.name));
            };
            // Checked already: `validate` is done; `decode` repeats the value.
            if self.checking {
                return Ok(Value::Unit);
            }
            self.charge(n)?;
            return Ok(self.shared.get(&key).and_then(|s| s.done.as_ref()).map_or(Value::Unit, |(v, _)| v.clone()));
        }
        self.shared.insert(key, Shared { ty: idx, len: count, done: None });
        let before = self.values;
        let value = self.claim(p, len, align, &t.name, f)?;
        let kept = if self.checking { Value::Unit } else { value.clone() };
        let n = self.values - before;
        if let Some(s) = self.shared.get_mut(&key) {
            s.done = Some((kept, n));
        }
        Ok(value)
    }
}

/// `Arc<T>`, `Rc<T>` (a `Box` layout), `Arc<[T]>`, `Rc<[T]>`, `Arc<str>`,
/// `Rc<str>` (a `Vec` layout): shared pointers, which rkyv stores once and
/// checks once (its `SharedValidator`).
fn is_shared(t: &TypeDesc) -> bool {
    matches!(t.kind, Kind::Box(_) | Kind::Vec(_)) && (t.name.starts_with("Arc<") || t.name.starts_with("Rc<"))
}
