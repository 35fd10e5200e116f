//! The value of one key-value entry: a snapshot and what a receiver needs to
//! check it, or a pointer to a snapshot in the object store.
//!
//! ```text
//! offset size (version 2; version 1 stops at offset 64, see below)
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
//! 52      4  0
//! 56      8  snapshot length
//! 64      8  source incarnation (random per creation of the source object)
//! 72     32  SHA-256 of the snapshot
//! 104        host name, schema, then the body: the snapshot (kind 0, exactly
//!            "snapshot length" bytes) or the object's name (kind 1), then,
//!            if signed, the seal: Ed25519 public key (32), signature (64)
//! ```
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
/// The version this build writes.
pub const VERSION: u16 = 2;
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
    /// Length of the snapshot.
    pub len: u64,
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
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&self.len.to_le_bytes());
        if v2 {
            out.extend_from_slice(&self.incarnation.to_le_bytes());
            out.extend_from_slice(&self.digest.unwrap_or([0; 32]));
        }
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(self.schema);
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
            VERSION => FIXED,
            v => return Err(EnvelopeError::UnknownVersion(v)),
        };
        if bytes.len() < fixed {
            return Err(EnvelopeError::Truncated { len: bytes.len(), need: fixed });
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let signed = match (version, bytes[11]) {
            (_, 0) => false,
            (VERSION, 1) => true,
            _ => return Err(EnvelopeError::Invalid("unknown flags")),
        };
        if u16_at(14) != 0 || u32_at(52) != 0 {
            return Err(EnvelopeError::Invalid("reserved bytes are not zero"));
        }
        let host_len = u16_at(12) as usize;
        let schema_len = u32_at(48) as usize;
        let len = u64_at(56);
        let body_at = fixed + host_len + schema_len;
        let seal_len = if signed { SEAL } else { 0 };
        if bytes.len() < body_at + seal_len {
            return Err(EnvelopeError::Truncated { len: bytes.len(), need: body_at + seal_len });
        }
        let host = std::str::from_utf8(&bytes[fixed..fixed + host_len])
            .map_err(|_| EnvelopeError::Invalid("host name is not UTF-8"))?;
        if host.is_empty() || host.len() > 255 {
            return Err(EnvelopeError::Invalid("host name length is not 1..=255"));
        }
        let schema = &bytes[fixed + host_len..body_at];
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
            body,
            seal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(body: Body<'static>, len: u64) -> Envelope<'static> {
        Envelope {
            version: VERSION,
            fingerprint: 0x1122_3344_5566_7788,
            rkyv_format: 7,
            generation: 42,
            exporter: 9,
            incarnation: 0xabcd,
            digest: Some([7; 32]),
            host: "host-a",
            schema: b"schema bytes",
            len,
            body,
            seal: None,
        }
    }

    #[test]
    fn round_trips_both_kinds() {
        let seal = Some(Seal { public_key: [3; 32], signature: [4; 64] });
        for env in [sample(Body::Inline(b"snapshot"), 8), sample(Body::Object("cfg/42"), 1 << 20)] {
            let signed = Envelope { seal, ..env.clone() };
            let v1 = Envelope { version: 1, incarnation: 0, digest: None, ..env.clone() };
            for env in [env, signed, v1] {
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
        newer[8] = 3;
        assert_eq!(Envelope::decode(&newer), Err(EnvelopeError::UnknownVersion(3)));
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
