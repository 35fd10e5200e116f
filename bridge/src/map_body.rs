//! The body a map object's envelope carries instead of a snapshot: the
//! entries that changed since a base generation (a delta), or every entry (a
//! full state). It rides in an ordinary envelope (`envelope.rs`) as its
//! snapshot bytes, so the envelope's rules hold unchanged: version, SHA-256
//! digest and optional seal over these bytes, `--max-value-bytes` on their
//! length, the object store above a message's size.
//!
//! ```text
//! offset size
//!  0      8  magic b"shmsmapb"
//!  8      1  kind: 0 = delta, 1 = full state
//!  9      1  key kind length k (1..=32: `MapKey::KIND`, e.g. "u64")
//! 10      6  0
//! 16      8  base generation (a delta applies to a map at exactly this
//!            source generation; 0 in a full state)
//! 24      8  entries n
//! 32      k  key kind (UTF-8)
//!  then n entries, keys strictly increasing (byte order):
//!         1  op: 0 = put, 1 = remove
//!         4  key length
//!         4  value length (0 for a remove)
//!            key bytes, value bytes (the value's rkyv archive)
//! ```
//! All integers little-endian. Decoding checks every field and length
//! before it allocates, and bounds the entries by the caller's limit.

use std::fmt;

/// First bytes of every map body.
pub const MAGIC: [u8; 8] = *b"shmsmapb";
/// Size of the fixed fields.
const FIXED: usize = 32;
/// Size of an entry's fixed fields (op, key length, value length).
const ENTRY_FIXED: usize = 9;
/// Longest key kind name.
const MAX_KEY_KIND: usize = 32;

/// What a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The changes from `base` to the envelope's generation.
    Delta {
        /// The source generation the changes apply to.
        base: u64,
    },
    /// Every entry of the envelope's generation.
    Full,
}

/// One entry: a key and its new value, or its removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key's `MapKey` encoding.
    pub key: &'a [u8],
    /// The value's archive; `None`: the key is removed.
    pub value: Option<&'a [u8]>,
}

/// A decoded map body, borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapBody<'a> {
    /// Delta or full state.
    pub kind: Kind,
    /// `MapKey::KIND` of the map's keys.
    pub key_kind: &'a str,
    /// In strictly increasing key order; a full state has no removals.
    pub entries: Vec<Entry<'a>>,
}

/// Why bytes are not a map body this build can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapBodyError {
    /// Shorter than its fields say.
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the fields need.
        need: usize,
    },
    /// Not a map body.
    BadMagic,
    /// More entries than the importer takes.
    TooManyEntries {
        /// Entries the body declares.
        entries: u64,
        /// The importer's limit.
        max: u64,
    },
    /// A field with a value no exporter writes.
    Invalid(&'static str),
}

impl fmt::Display for MapBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapBodyError::Truncated { len, need } => {
                write!(f, "truncated map body: {len} bytes, its fields need {need}")
            }
            MapBodyError::BadMagic => write!(f, "not a map body (wrong magic)"),
            MapBodyError::TooManyEntries { entries, max } => {
                write!(f, "a map body of {entries} entries, above the limit of {max}")
            }
            MapBodyError::Invalid(what) => write!(f, "invalid map body: {what}"),
        }
    }
}

impl std::error::Error for MapBodyError {}

impl MapBody<'_> {
    /// The body's bytes. Entries must be in strictly increasing key order
    /// (as `changes_since` gives them); `decode` refuses any other. A key
    /// kind longer than 32 bytes, or a key or value of 4 GiB or more (a map
    /// block holds less), is an error.
    pub fn encode(&self) -> Result<Vec<u8>, MapBodyError> {
        let len32 = |n: usize| u32::try_from(n).map_err(|_| MapBodyError::Invalid("a key or value of 4 GiB or more"));
        if self.key_kind.is_empty() || self.key_kind.len() > MAX_KEY_KIND {
            return Err(MapBodyError::Invalid("key kind length is not 1..=32"));
        }
        let data: usize = self.entries.iter().map(|e| ENTRY_FIXED + e.key.len() + e.value.map_or(0, <[u8]>::len)).sum();
        let mut out = Vec::with_capacity(FIXED + self.key_kind.len() + data);
        out.extend_from_slice(&MAGIC);
        let (kind, base) = match self.kind {
            Kind::Delta { base } => (0u8, base),
            Kind::Full => (1, 0),
        };
        out.push(kind);
        out.push(self.key_kind.len() as u8);
        out.extend_from_slice(&[0; 6]);
        out.extend_from_slice(&base.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.extend_from_slice(self.key_kind.as_bytes());
        for e in &self.entries {
            out.push(u8::from(e.value.is_none()));
            out.extend_from_slice(&len32(e.key.len())?.to_le_bytes());
            out.extend_from_slice(&len32(e.value.map_or(0, <[u8]>::len))?.to_le_bytes());
            out.extend_from_slice(e.key);
            out.extend_from_slice(e.value.unwrap_or_default());
        }
        Ok(out)
    }

    /// Parses `bytes`, checking every field, with at most `max_entries` entries.
    pub fn decode(bytes: &[u8], max_entries: u64) -> Result<MapBody<'_>, MapBodyError> {
        if bytes.len() >= MAGIC.len() && bytes[..MAGIC.len()] != MAGIC {
            return Err(MapBodyError::BadMagic);
        }
        if bytes.len() < FIXED {
            return Err(MapBodyError::Truncated { len: bytes.len(), need: FIXED });
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        if bytes[10..16] != [0; 6] {
            return Err(MapBodyError::Invalid("reserved bytes are not zero"));
        }
        let (base, entries) = (u64_at(16), u64_at(24));
        let kind = match bytes[8] {
            0 => Kind::Delta { base },
            1 if base == 0 => Kind::Full,
            1 => return Err(MapBodyError::Invalid("a full state with a base generation")),
            _ => return Err(MapBodyError::Invalid("unknown kind")),
        };
        let kind_len = bytes[9] as usize;
        if kind_len == 0 || kind_len > MAX_KEY_KIND {
            return Err(MapBodyError::Invalid("key kind length is not 1..=32"));
        }
        if bytes.len() < FIXED + kind_len {
            return Err(MapBodyError::Truncated { len: bytes.len(), need: FIXED + kind_len });
        }
        let key_kind = std::str::from_utf8(&bytes[FIXED..FIXED + kind_len])
            .map_err(|_| MapBodyError::Invalid("key kind is not UTF-8"))?;
        if entries > max_entries {
            return Err(MapBodyError::TooManyEntries { entries, max: max_entries });
        }
        let mut at = FIXED + kind_len;
        // Every entry takes ENTRY_FIXED bytes at least: a count the bytes
        // cannot hold is refused before anything is reserved for it.
        let room = (bytes.len() - at) / ENTRY_FIXED;
        if entries > room as u64 {
            let need = at.saturating_add(usize::try_from(entries).unwrap_or(usize::MAX).saturating_mul(ENTRY_FIXED));
            return Err(MapBodyError::Truncated { len: bytes.len(), need });
        }
        let mut out = Vec::with_capacity(entries as usize);
        let mut last: Option<&[u8]> = None;
        for _ in 0..entries {
            if bytes.len() - at < ENTRY_FIXED {
                return Err(MapBodyError::Truncated { len: bytes.len(), need: at + ENTRY_FIXED });
            }
            let op = bytes[at];
            let key_len = u32::from_le_bytes(bytes[at + 1..at + 5].try_into().expect("4 bytes")) as usize;
            let value_len = u32::from_le_bytes(bytes[at + 5..at + 9].try_into().expect("4 bytes")) as usize;
            at += ENTRY_FIXED;
            let need = at.saturating_add(key_len).saturating_add(value_len);
            if bytes.len() < need {
                return Err(MapBodyError::Truncated { len: bytes.len(), need });
            }
            let key = &bytes[at..at + key_len];
            let value = &bytes[at + key_len..need];
            at = need;
            let value = match (op, value_len) {
                (0, 0) => return Err(MapBodyError::Invalid("a put of an empty value")),
                (0, _) => Some(value),
                (1, 0) if kind == Kind::Full => return Err(MapBodyError::Invalid("a removal in a full state")),
                (1, 0) => None,
                (1, _) => return Err(MapBodyError::Invalid("a removal with a value")),
                _ => return Err(MapBodyError::Invalid("unknown entry op")),
            };
            if last.is_some_and(|l| l >= key) {
                return Err(MapBodyError::Invalid("keys not in strictly increasing order"));
            }
            last = Some(key);
            out.push(Entry { key, value });
        }
        if at != bytes.len() {
            return Err(MapBodyError::Invalid("bytes after the last entry"));
        }
        Ok(MapBody { kind, key_kind, entries: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind) -> MapBody<'static> {
        let removal = if kind == Kind::Full { Some(&b"z"[..]) } else { None };
        MapBody {
            kind,
            key_kind: "u64",
            entries: vec![
                Entry { key: b"\x00\x01", value: Some(b"value one") },
                Entry { key: b"\x00\x02", value: removal },
                Entry { key: b"\x05", value: Some(b"v") },
            ],
        }
    }

    #[test]
    fn round_trips_deltas_and_full_states() {
        for body in
            [sample(Kind::Delta { base: 41 }), sample(Kind::Full), MapBody { entries: vec![], ..sample(Kind::Full) }]
        {
            let bytes = body.encode().unwrap();
            assert_eq!(MapBody::decode(&bytes, 3).unwrap(), body);
        }
    }

    #[test]
    fn refuses_truncations_disorder_and_too_many_entries() {
        let bytes = sample(Kind::Delta { base: 1 }).encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(MapBody::decode(&bytes[..cut], 3).is_err(), "a {cut}-byte prefix was accepted");
        }
        assert_eq!(MapBody::decode(&bytes, 2), Err(MapBodyError::TooManyEntries { entries: 3, max: 2 }));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(MapBody::decode(&longer, 3), Err(MapBodyError::Invalid("bytes after the last entry")));
        let mut disordered = sample(Kind::Delta { base: 1 });
        disordered.entries.swap(0, 2);
        assert_eq!(
            MapBody::decode(&disordered.encode().unwrap(), 3),
            Err(MapBodyError::Invalid("keys not in strictly increasing order"))
        );
        let mut repeated = sample(Kind::Delta { base: 1 });
        repeated.entries[1].key = repeated.entries[0].key;
        assert!(MapBody::decode(&repeated.encode().unwrap(), 3).is_err());
        // A declared count the bytes cannot hold reserves nothing.
        let mut huge = bytes;
        huge[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(MapBody::decode(&huge, u64::MAX), Err(MapBodyError::Truncated { .. })));
    }

    #[test]
    fn a_changed_byte_is_refused_or_decodes_to_exactly_those_bytes() {
        for base in [sample(Kind::Delta { base: 7 }).encode().unwrap(), sample(Kind::Full).encode().unwrap()] {
            let mut accepted = 0;
            for i in 0..base.len() {
                for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                    let mut b = base.clone();
                    b[i] = v;
                    if let Ok(body) = MapBody::decode(&b, 16) {
                        assert_eq!(body.encode().unwrap(), b, "byte {i} = {v:#x}");
                        accepted += 1;
                    }
                }
            }
            // Changes of free fields (base, key and value bytes) decode.
            assert!(accepted > 0);
        }
    }
}
