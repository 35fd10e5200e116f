//! The bytes of a map: the root record published in the root object, the
//! block references, the tree node, and the size classes of the pages segment
//! (docs/MAP.md, "Pages segment and blocks").

/// Where a block lies in the pages segment, and which block it is: the
/// writer gives every block it writes a serial that never repeats, so a
/// reused offset is a different block (the readers' validation cache keys on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = rkyv, derive(Debug))]
pub(crate) struct BlockRef {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) serial: u64,
}

impl BlockRef {
    /// The reference of "no block" (the root of an empty map).
    pub(crate) const NONE: BlockRef = BlockRef { offset: 0, len: 0, serial: 0 };
}

impl ArchivedBlockRef {
    /// The native form.
    pub(crate) fn get(&self) -> BlockRef {
        BlockRef { offset: self.offset.to_native(), len: self.len.to_native(), serial: self.serial.to_native() }
    }
}

/// One tree node. In a leaf `refs[i]` is the value block of `keys[i]`; in a
/// branch `refs[i]` is the child whose smallest key is `keys[i]`. Keys are
/// `MapKey` encodings, compared as bytes; `prefixes[i]` is `prefix_of(keys[i])`,
/// inline in the node, so a search compares words and reads a key's bytes
/// only on a tie.
#[derive(Debug, Clone, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(crate = rkyv)]
pub(crate) struct Node {
    pub(crate) leaf: bool,
    pub(crate) prefixes: Vec<u64>,
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) refs: Vec<BlockRef>,
}

/// The first 8 bytes of `key`, zero-padded, as a big-endian word: if
/// `prefix_of(a) < prefix_of(b)` then `a < b` (so equal prefixes need the bytes).
#[inline]
pub(crate) fn prefix_of(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(word)
}

impl ArchivedNode {
    /// How key `i` compares with `q` (whose prefix is `qp`); `i` < len.
    #[inline]
    fn cmp_key(&self, i: usize, q: &[u8], qp: u64) -> core::cmp::Ordering {
        match self.prefixes[i].to_native().cmp(&qp) {
            core::cmp::Ordering::Equal => self.keys[i].as_slice().cmp(q),
            other => other,
        }
    }

    /// How many keys are below `q` (`or_equal`: at or below). Needs
    /// `prefixes.len() == keys.len()`, which `View::node` checks.
    #[inline]
    pub(crate) fn count_below(&self, q: &[u8], or_equal: bool) -> usize {
        let qp = prefix_of(q);
        let (mut lo, mut hi) = (0, self.keys.len().min(self.prefixes.len()));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let o = self.cmp_key(mid, q, qp);
            if o.is_lt() || (or_equal && o.is_eq()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of key `q`, if present.
    #[inline]
    pub(crate) fn find(&self, q: &[u8]) -> Option<usize> {
        let i = self.count_below(q, false);
        (i < self.keys.len().min(self.prefixes.len()) && self.cmp_key(i, q, prefix_of(q)).is_eq()).then_some(i)
    }
}

/// The snapshot a map publishes in its root object: where its tree is and
/// what it holds (docs/MAP.md, "Objects").
#[crate::shared(crate = crate)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRoot {
    /// The root node's offset in the pages segment (0: empty map).
    pub root_offset: u64,
    /// The root node's length in bytes.
    pub root_len: u32,
    /// The root node's serial.
    pub root_serial: u64,
    /// Levels of the tree: 0 for an empty map, 1 when the root is a leaf.
    pub height: u32,
    /// Entries.
    pub len: u64,
    /// Random id, also in the pages segment's header: pairs the two files.
    pub pages_incarnation: u64,
    /// Bytes of the pages segment in use: every block of this generation ends below.
    pub pages_len: u64,
    /// The next block serial the writer gives (a takeover continues from it).
    pub next_serial: u64,
    /// `MapKey::KIND` of the key type.
    pub key_kind: String,
    /// `fingerprint_of::<V>()` of the value type.
    pub value_fingerprint: u64,
    /// Bytes (size classes) of the blocks this root reaches.
    pub live_bytes: u64,
    /// Bytes freed by earlier commits and not reusable yet (a reader may hold them).
    pub garbage_bytes: u64,
    /// Bytes free for the next commits.
    pub free_bytes: u64,
}

impl ArchivedMapRoot {
    /// The root node's reference.
    pub(crate) fn root(&self) -> BlockRef {
        BlockRef {
            offset: self.root_offset.to_native(),
            len: self.root_len.to_native(),
            serial: self.root_serial.to_native(),
        }
    }
}

/// Size of the pages segment's header; the first block starts here.
pub(crate) const PAGES_HEADER: u64 = 64;
/// `b"shmsmap\x01"` as a little-endian word.
pub(crate) const PAGES_MAGIC: u64 = u64::from_le_bytes(*b"shmsmap\x01");
/// The pages segment's format version.
pub(crate) const PAGES_VERSION: u32 = 1;
/// Every block starts at a multiple of this (the largest archived alignment accepted).
pub(crate) const BLOCK_ALIGN: u64 = 16;
/// The smallest size class.
pub(crate) const MIN_CLASS: u64 = 32;
/// The largest block (a value or node of more is refused).
pub(crate) const MAX_BLOCK: u64 = u32::MAX as u64;
/// Most keys a node holds; a node with more is split.
pub(crate) const MAX_KEYS: usize = 64;
/// Fewest keys a node other than the root keeps; one with fewer is merged.
pub(crate) const MIN_KEYS: usize = 16;
/// Tallest tree a reader follows (64-key nodes: far above any real map).
pub(crate) const MAX_HEIGHT: u32 = 32;

/// The size class (bytes occupied) of a block of `len` bytes.
pub(crate) fn class_of(len: u64) -> u64 {
    len.max(MIN_CLASS).next_power_of_two()
}

/// The index of size class `class` in the free lists.
pub(crate) fn class_index(class: u64) -> usize {
    (class.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize
}

/// The pages segment's header (readers check magic, version, incarnation).
/// `schema_offset` / `schema_len` locate the block holding the value type's
/// encoded `SchemaDoc`, for readers without the Rust type; both 0 in a map
/// whose writer predates them (the bytes were padding, always zero).
#[repr(C)]
pub(crate) struct PagesHeader {
    pub(crate) magic: core::sync::atomic::AtomicU64,
    pub(crate) version: core::sync::atomic::AtomicU32,
    pub(crate) schema_len: core::sync::atomic::AtomicU32,
    pub(crate) incarnation: core::sync::atomic::AtomicU64,
    pub(crate) schema_offset: core::sync::atomic::AtomicU64,
}

const _: () = assert!(core::mem::size_of::<PagesHeader>() as u64 <= PAGES_HEADER);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_the_byte_order() {
        let keys: [&[u8]; 7] = [b"", b"\0", b"a", b"a\0", b"a\0\0\0\0\0\0\0x", b"ab", b"abcdefghij"];
        for a in keys {
            for b in keys {
                if prefix_of(a) < prefix_of(b) {
                    assert!(a < b, "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn classes_are_powers_of_two_from_32() {
        assert_eq!(class_of(0), 32);
        assert_eq!(class_of(33), 64);
        assert_eq!(class_of(4096), 4096);
        assert_eq!(class_index(32), 0);
        assert_eq!(class_index(1 << 20), 15);
    }
}
