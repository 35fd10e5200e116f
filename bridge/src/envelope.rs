//! The value of one key-value entry: a snapshot and what a receiver needs to
//! check it, or a pointer to a snapshot in the object store.
//!
//! ```text
//! offset size (version 2 and 3; version 1 stops at offset 64, see below)
//!  0      8  magic  b"shmsbrg\0"
//!  8      2  envelope version (2)
//! 10      1  kind: 0 = snapshot inline, 1 = snapshot in the object store
//! 11      1  flags: bit 0 = signed (a seal follows the body); other bits 0
//! 12      2  host name length (1..=255)
//! 14      2  0
//! 16      8  fingerprint of the stored type
//! 24      8  rkyv format (shmstate::schema::fp::RKYV_FORMAT of the source)
//! 32      8  source generation
//! 40      8  exporter id (random per exporter process)
//! 48      4  schema length (SchemaDoc::encode)
//! 52      4  0 (version 3: number of further layouts, 1..=MAX_LANES)
//! 56      8  snapshot length (version 3: of every layout's together)
//! 64      8  source incarnation (random per creation of the source object)
//! 72     32  SHA-256 of the snapshot (version 3: of every layout's together)
//! 104        host name, schema, then the body: the snapshot (kind 0, exactly
//!            "snapshot length" bytes) or the object's name (kind 1), then,
//!            if signed, the seal: Ed25519 public key (32), signature (64)
//! ```
//!
//! **Version 3: lanes.** A source object with lanes (docs/DEPLOYING.md
//! "Lanes") is sent with every layout it publishes at that generation. The
//! fields above describe the first layout (the plain name's, when it is
//! published); after the schema come, per further layout, 20 bytes
//! (fingerprint 8, schema length 4, snapshot length 8), then their schemas in
//! the same order, then the body. The snapshot is every layout's snapshot one
//! after the other, the first layout's first: its length is the total minus
//! the others'. So the digest, the seal and the object store cover all
//! layouts as one snapshot. An exporter writes version 3 only for an object
//! with lanes, version 2 otherwise; a version 2 bridge refuses version 3
//! ("upgrade it").
//! All integers little-endian. Every field of a received envelope is checked
//! before use: it may be garbage, truncated or from another version.
//!
//! Version 1 (bridges before the incarnation, digest and seal) has the same
//! first 64 bytes with flags 0, then host name, schema and body. It is still
//! decoded (incarnation 0, no digest, never signed), so importers can be
//! upgraded before exporters; `verify` refuses it when keys are pinned.

use std::fmt;

/// First bytes of every envelope.
pub const MAGIC: [u8; 8] = *b"shmsbrg\0";
/// The newest version this build writes (for objects with lanes; version 2
/// for the others).
pub const VERSION: u16 = 3;
/// The version written for an object without lanes.
pub const VERSION_ONE_LAYOUT: u16 = 2;
/// Most layouts besides the first one an envelope may carry.
pub const MAX_LANES: usize = 15;
/// Bytes of the table entry of one further layout.
const LANE_ENTRY: usize = 20;
/// The oldest version this build reads.
pub const OLDEST_READ: u16 = 1;
/// Size of the fixed fields of the version this build writes.
pub const FIXED: usize = 104;
/// Size of the fixed fields of version 1.
const FIXED_V1: usize = 64;
/// Size of a seal: public key and signature.
pub const SEAL: usize = 32 + 64;
/// Longest object-store name a pointer may carry.
const MAX_OBJECT_NAME: usize = 1024;

/// Where the snapshot bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// In the envelope.
    Inline(&'a [u8]),
    /// In the JetStream object store under this name (too big for one message).
    Object(&'a str),
}

/// An exporter's Ed25519 public key and its signature of the envelope
/// (`verify` says over which bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    /// The signer's public key.
    pub public_key: [u8; 32],
    /// The signature.
    pub signature: [u8; 64],
}

/// One more layout of the snapshot (version 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane<'a> {
    /// Fingerprint of the layout.
    pub fingerprint: u64,
    /// Its encoded schema.
    pub schema: &'a [u8],
    /// Length of its snapshot, inside the body.
    pub len: u64,
}

/// A decoded envelope, borrowing from the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The envelope version these fields came from (or are written as).
    pub version: u16,
    /// Fingerprint of the stored type.
    pub fingerprint: u64,
    /// The rkyv format the bytes were archived in.
    pub rkyv_format: u64,
    /// The source object's generation.
    pub generation: u64,
    /// The random id of the exporter process that wrote the entry.
    pub exporter: u64,
    /// The source object's incarnation (0 in version 1).
    pub incarnation: u64,
    /// SHA-256 of the snapshot (`None` in version 1).
    pub digest: Option<[u8; 32]>,
    /// The source host's name.
    pub host: &'a str,
    /// The encoded schema (`SchemaDoc::encode`).
    pub schema: &'a [u8],
    /// Length of the snapshot (every layout's, in version 3).
    pub len: u64,
    /// The layouts after the first (version 3; empty before).
    pub lanes: Vec<Lane<'a>>,
    /// The snapshot, or where it is.
    pub body: Body<'a>,
    /// The signature, if the exporter signs.
    pub seal: Option<Seal>,
}

/// Why received bytes are not an envelope this build can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than its fixed fields or than the lengths they give.
    Truncated { len: usize, need: usize },
    /// Not an envelope at all.
    BadMagic,
    /// From a newer (or unknown) version of the bridge.
    UnknownVersion(u16),
    /// A field with a value no version writes.
    Invalid(&'static str),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated { len, need } => {
                write!(f, "truncated envelope: {len} bytes, its fields need {need}")
            }
            EnvelopeError::BadMagic => write!(f, "not a shmstate-bridge envelope (wrong magic)"),
            EnvelopeError::UnknownVersion(v) => {
                write!(f, "envelope version {v}, this bridge reads versions {OLDEST_READ} to {VERSION}: upgrade it")
            }
            EnvelopeError::Invalid(what) => write!(f, "invalid envelope: {what}"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl Envelope<'_> {
    /// The envelope's bytes, in `self.version`'s layout. A seal is written as
    /// given (`verify::seal` fills its signature in afterwards).
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, &[u8]) = match self.body {
            Body::Inline(bytes) => (0, bytes),
            Body::Object(name) => (1, name.as_bytes()),
        };
        let v2 = self.version >= 2;
        let lanes = if self.version >= 3 { &self.lanes[..] } else { &[] };
        let mut out = Vec::with_capacity(FIXED + self.host.len() + self.schema.len() + body.len() + SEAL);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.push(kind);
        out.push(u8::from(v2 && self.seal.is_some()));
        out.extend_from_slice(&(self.host.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        for word in [self.fingerprint, self.rkyv_format, self.generation, self.exporter] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&(self.schema.len() as u32).to_le_bytes());
        out.extend_from_slice(&(lanes.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        if v2 {
            out.extend_from_slice(&self.incarnation.to_le_bytes());
            out.extend_from_slice(&self.digest.unwrap_or([0; 32]));
        }
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(self.schema);
        for lane in lanes {
            out.extend_from_slice(&lane.fingerprint.to_le_bytes());
            out.extend_from_slice(&(lane.schema.len() as u32).to_le_bytes());
            out.extend_from_slice(&lane.len.to_le_bytes());
        }
        for lane in lanes {
            out.extend_from_slice(lane.schema);
        }
        out.extend_from_slice(body);
        if let (true, Some(seal)) = (v2, &self.seal) {
            out.extend_from_slice(&seal.public_key);
            out.extend_from_slice(&seal.signature);
        }
        out
    }

    /// Parses `bytes`, checking every field.
    pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        if bytes.len() < 10 {
            return Err(if bytes.len() >= 8 && bytes[..8] != MAGIC {
                EnvelopeError::BadMagic
            } else {
                EnvelopeError::Truncated { len: bytes.len(), need: FIXED }
            });
        }
        if bytes[..8] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let version = u16_at(8);
        let fixed = match version {
            1 => FIXED_V1,
            2 | 3 => FIXED,
            v => return Err(EnvelopeError::UnknownVersion(v)),
        };
        if bytes.len() < fixed {
            return Err(EnvelopeError::Truncated { len: bytes.len(), need: fixed });
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let signed = match (version, bytes[11]) {
            (_, 0) => false,
            (2 | 3, 1) => true,
            _ => return Err(EnvelopeError::Invalid("unknown flags")),
        };
        let lane_count = if version >= 3 { u32_at(52) as usize } else { 0 };
        if u16_at(14) != 0 || (version < 3 && u32_at(52) != 0) {
            return Err(EnvelopeError::Invalid("reserved bytes are not zero"));
        }
        if version >= 3 && !(1..=MAX_LANES).contains(&lane_count) {
            return Err(EnvelopeError::Invalid("a version 3 envelope carries 1 to 15 further layouts"));
        }
        let host_len = u16_at(12) as usize;
        let schema_len = u32_at(48) as usize;
        let len = u64_at(56);
        let table_at = fixed + host_len + schema_len;
        let schemas_at = table_at + lane_count * LANE_ENTRY;
        if bytes.len() < schemas_at {
            return Err(EnvelopeError::Truncated { len: bytes.len(), need: schemas_at });
        }
        let mut lanes = Vec::with_capacity(lane_count);
        let (mut at, mut lanes_len) = (schemas_at, 0u64);
        for i in 0..lane_count {
            let entry = table_at + i * LANE_ENTRY;
            let schema_len = u32_at(entry + 8) as usize;
            let Some(end) = at.checked_add(schema_len).filter(|end| *end <= bytes.len()) else {
                return Err(EnvelopeError::Truncated { len: bytes.len(), need: at.saturating_add(schema_len) });
            };
            let lane = Lane { fingerprint: u64_at(entry), schema: &bytes[at..end], len: u64_at(entry + 12) };
            lanes_len = lanes_len.checked_add(lane.len).ok_or(EnvelopeError::Invalid("lane lengths overflow"))?;
            lanes.push(lane);
            at = end;
        }
        if lanes_len > len {
            return Err(EnvelopeError::Invalid("the lanes' snapshots are longer than the whole snapshot"));
        }
        let body_at = at;
        let seal_len = if signed { SEAL } else { 0 };
        if bytes.len() < body_at + seal_len {
            return Err(EnvelopeError::Truncated { len: bytes.len(), need: body_at + seal_len });
        }
        let host = std::str::from_utf8(&bytes[fixed..fixed + host_len])
            .map_err(|_| EnvelopeError::Invalid("host name is not UTF-8"))?;
        if host.is_empty() || host.len() > 255 {
            return Err(EnvelopeError::Invalid("host name length is not 1..=255"));
        }
        let schema = &bytes[fixed + host_len..table_at];
        let (rest, seal_bytes) = bytes[body_at..].split_at(bytes.len() - body_at - seal_len);
        let seal = signed.then(|| Seal {
            public_key: seal_bytes[..32].try_into().expect("32 bytes"),
            signature: seal_bytes[32..].try_into().expect("64 bytes"),
        });
        let body = match bytes[10] {
            0 => {
                if rest.len() as u64 != len {
                    let need = (body_at + seal_len).saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
                    return Err(if (rest.len() as u64) < len {
                        EnvelopeError::Truncated { len: bytes.len(), need }
                    } else {
                        EnvelopeError::Invalid("bytes after the snapshot")
                    });
                }
                Body::Inline(rest)
            }
            1 => {
                let name = std::str::from_utf8(rest).map_err(|_| EnvelopeError::Invalid("object name is not UTF-8"))?;
                if name.is_empty() || name.len() > MAX_OBJECT_NAME {
                    return Err(EnvelopeError::Invalid("object name length is not 1..=1024"));
                }
                Body::Object(name)
            }
            _ => return Err(EnvelopeError::Invalid("unknown kind")),
        };
        Ok(Envelope {
            version,
            fingerprint: u64_at(16),
            rkyv_format: u64_at(24),
            generation: u64_at(32),
            exporter: u64_at(40),
            incarnation: if version >= 2 { u64_at(64) } else { 0 },
            digest: (version >= 2).then(|| bytes[72..104].try_into().expect("32 bytes")),
            host,
            schema,
            len,
            lanes,
            body,
            seal,
        })
    }

    /// Splits the whole snapshot `bytes` (`len` bytes: checked by the
    /// caller against the body or the fetched object) into one snapshot per
    /// layout, the first layout's first.
    pub fn split<'b>(&self, bytes: &'b [u8]) -> Result<Vec<&'b [u8]>, EnvelopeError> {
        if bytes.len() as u64 != self.len {
            return Err(EnvelopeError::Invalid("the snapshot's length is not the envelope's"));
        }
        let others: u64 = self.lanes.iter().map(|l| l.len).sum();
        let mut rest = bytes;
        let mut out = Vec::with_capacity(1 + self.lanes.len());
        for len in std::iter::once(self.len - others).chain(self.lanes.iter().map(|l| l.len)) {
            // Each length is at most the total (checked at decode).
            let (part, after) = rest.split_at(len as usize);
            out.push(part);
            rest = after;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_split_the_snapshot_and_malformed_tables_are_refused() {
        let env = with_lanes(sample(Body::Inline(b"abcdef"), 6));
        let bytes = env.encode();
        let decoded = Envelope::decode(&bytes).unwrap();
        assert_eq!(decoded.split(b"abcdef").unwrap(), [&b"abc"[..], b"de", b"f"]);
        assert!(decoded.split(b"abcde").is_err());
        // Lanes longer than the whole snapshot; no lanes in version 3; too many.
        let long = with_lanes(sample(Body::Inline(b"ab"), 2)).encode();
        let lanes_too_long = Err(EnvelopeError::Invalid("the lanes' snapshots are longer than the whole snapshot"));
        assert_eq!(Envelope::decode(&long), lanes_too_long);
        let mut none = bytes.clone();
        none[52..56].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(Envelope::decode(&none), Err(EnvelopeError::Invalid(_))));
        let mut many = bytes.clone();
        many[52..56].copy_from_slice(&16u32.to_le_bytes());
        assert!(matches!(Envelope::decode(&many), Err(EnvelopeError::Invalid(_))));
        // Version 2 has no lane table: the word must be 0.
        let mut v2 = sample(Body::Inline(b"abc"), 3);
        v2.version = 2;
        let mut v2 = v2.encode();
        v2[52] = 1;
        assert_eq!(Envelope::decode(&v2), Err(EnvelopeError::Invalid("reserved bytes are not zero")));
    }

    fn sample(body: Body<'static>, len: u64) -> Envelope<'static> {
        Envelope {
            version: VERSION_ONE_LAYOUT,
            fingerprint: 0x1122_3344_5566_7788,
            rkyv_format: 7,
            generation: 42,
            exporter: 9,
            incarnation: 0xabcd,
            digest: Some([7; 32]),
            host: "host-a",
            schema: b"schema bytes",
            len,
            lanes: Vec::new(),
            body,
            seal: None,
        }
    }

    fn with_lanes(env: Envelope<'static>) -> Envelope<'static> {
        let lanes = vec![
            Lane { fingerprint: 0x99, schema: b"lane schema", len: 2 },
            Lane { fingerprint: 0x98, schema: b"", len: 1 },
        ];
        Envelope { version: 3, lanes, ..env }
    }

    #[test]
    fn round_trips_both_kinds() {
        let seal = Some(Seal { public_key: [3; 32], signature: [4; 64] });
        for env in [sample(Body::Inline(b"snapshot"), 8), sample(Body::Object("cfg/42"), 1 << 20)] {
            let signed = Envelope { seal, ..env.clone() };
            let v1 = Envelope { version: 1, incarnation: 0, digest: None, ..env.clone() };
            let v2 = Envelope { version: 2, ..env.clone() };
            let laned = with_lanes(signed.clone());
            for env in [env, signed, v1, v2, laned] {
                let bytes = env.encode();
                assert_eq!(Envelope::decode(&bytes).unwrap(), env);
            }
        }
    }

    #[test]
    fn refuses_every_truncation_and_bad_magic_or_version() {
        let bytes = sample(Body::Inline(b"snapshot"), 8).encode();
        for cut in 0..bytes.len() {
            assert!(Envelope::decode(&bytes[..cut]).is_err(), "a {cut}-byte prefix was accepted");
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::BadMagic));
        let mut newer = bytes.clone();
        newer[8] = 4;
        assert_eq!(Envelope::decode(&newer), Err(EnvelopeError::UnknownVersion(4)));
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(Envelope::decode(&longer), Err(EnvelopeError::Invalid("bytes after the snapshot")));
    }

    #[test]
    fn a_changed_byte_is_refused_or_decodes_to_exactly_those_bytes() {
        // Every byte set in turn to values that make lengths overflow, kinds
        // unknown, text invalid: decoding never panics, and whatever it accepts
        // encodes back to the same bytes (no field is silently dropped).
        let seal = Some(Seal { public_key: [3; 32], signature: [4; 64] });
        for base in [
            sample(Body::Object("cfg/1"), 3).encode(),
            sample(Body::Inline(b"abc"), 3).encode(),
            Envelope { seal, ..sample(Body::Inline(b"abc"), 3) }.encode(),
            with_lanes(sample(Body::Inline(b"abcd"), 4)).encode(),
        ] {
            let mut accepted = 0;
            for i in 0..base.len() {
                for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                    let mut b = base.clone();
                    b[i] = v;
                    if let Ok(env) = Envelope::decode(&b) {
                        assert_eq!(env.encode(), b, "byte {i} = {v:#x}");
                        accepted += 1;
                    }
                }
            }
            // Changes of the free fields (fingerprint, host, schema...) decode.
            assert!(accepted > 0);
        }
    }
}
