//! What an importer checks about who wrote a value and whether it is newer:
//! the snapshot's digest, the exporter's signature (when keys are pinned),
//! and that a source's generations only go forward.
//!
//! **Digest.** A version 2 or 3 envelope carries the SHA-256 of its snapshot (in
//! version 3, of every layout's together);
//! bytes that do not match (an object-store object swapped under a signed
//! pointer, say) are refused.
//!
//! **Signature.** An exporter given a signing key (`--signing-key FILE`) seals
//! every envelope with Ed25519 over `CONTEXT`, the key-value key (its length
//! as two little-endian bytes, then the key) and the envelope's bytes up to the
//! signature (its public key included). With trusted keys configured
//! (`--trusted-keys FILE`), an importer refuses every value that is not sealed
//! by one of them: unsigned, version 1, signed by another key, or moved to
//! another key.
//!
//! **Monotonic.** Per key, for each (exporter id, source incarnation) seen
//! lately, the highest source generation published and its digest: a lower
//! generation is refused (a rollback or a replay), the same generation with
//! other bytes is refused, the same generation with the same bytes is a
//! duplicate, published again only if another value has been published since
//! (the exporter restoring its value after a stray write). A new exporter id or
//! a new incarnation (the source object was created again: its generations
//! start again at 1) starts a new sequence. The state is in memory, and in
//! `ImportOptions::state_file` when given (written at most every second):
//! without one, a restarted importer accepts the first value it sees for
//! each key.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::envelope::{Envelope, Seal, SEAL};

/// Domain separation: these signatures mean nothing to any other protocol.
const CONTEXT: &[u8] = b"shmstate-bridge envelope v2\0";

/// Sequences remembered per key (exporter processes and incarnations come
/// and go; the oldest is forgotten first).
const SEQUENCES_PER_KEY: usize = 8;

/// SHA-256 of a snapshot.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn message(key: &str, signed_part: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 2 + key.len() + signed_part.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&(key.len() as u16).to_le_bytes());
    m.extend_from_slice(key.as_bytes());
    m.extend_from_slice(signed_part);
    m
}

/// An exporter's signing key.
pub struct SigningIdentity(SigningKey);

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "SigningIdentity({})", hex(&self.public_key()))
    }
}

impl SigningIdentity {
    /// A new random key (32 bytes from the kernel's random source).
    pub fn generate() -> std::io::Result<Self> {
        let mut seed = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
        Ok(SigningIdentity(SigningKey::from_bytes(&seed)))
    }

    /// Reads a key file: the 32-byte secret as 64 hex digits (`keygen`
    /// writes it). Refused if group or others may read it.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        use std::os::unix::fs::MetadataExt;
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| format!("signing key {shown}: {e}"))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!("signing key {shown}: readable by group or others (chmod 600 it)"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("signing key {shown}: {e}"))?;
        let seed = parse_hex32(text.trim()).ok_or_else(|| format!("signing key {shown}: not 64 hex digits"))?;
        Ok(SigningIdentity(SigningKey::from_bytes(&seed)))
    }

    /// The secret as the key file holds it.
    pub fn secret_hex(&self) -> String {
        hex(&self.0.to_bytes())
    }

    /// The public key, as importers pin it.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// An unsigned seal naming this key, for `Envelope::seal` before
    /// encoding; `sign` fills the signature in.
    pub fn blank_seal(&self) -> Seal {
        Seal { public_key: self.public_key(), signature: [0; 64] }
    }

    /// Signs an encoded envelope (encoded with `blank_seal`) for `key`, in place.
    pub fn sign(&self, key: &str, encoded: &mut [u8]) {
        let at = encoded.len() - 64;
        let signature = self.0.sign(&message(key, &encoded[..at]));
        encoded[at..].copy_from_slice(&signature.to_bytes());
    }
}

/// The exporters' public keys an importer accepts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(HashSet<[u8; 32]>);

impl TrustedKeys {
    /// These keys.
    pub fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> Self {
        TrustedKeys(keys.into_iter().collect())
    }

    /// Reads a file of public keys: one per line, 64 hex digits, then
    /// anything (a name); blank lines and `#` comments are skipped.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("trusted keys {shown}: {e}"))?;
        let mut keys = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let word = line.split_whitespace().next().unwrap_or("");
            let key = parse_hex32(word).ok_or_else(|| format!("trusted keys {shown}:{}: not 64 hex digits", n + 1))?;
            VerifyingKey::from_bytes(&key)
                .map_err(|_| format!("trusted keys {shown}:{}: not an Ed25519 public key", n + 1))?;
            keys.insert(key);
        }
        if keys.is_empty() {
            return Err(format!("trusted keys {shown}: no key in the file"));
        }
        Ok(TrustedKeys(keys))
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// One source's sequence as an exporter sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sequence {
    exporter: u64,
    incarnation: u64,
}

#[derive(Debug, Clone, Copy)]
struct Latest {
    sequence: Sequence,
    generation: u64,
    digest: Option<[u8; 32]>,
}

/// Per key: the sequences seen lately (newest last) and which one is current.
#[derive(Debug, Default)]
struct History {
    seen: Vec<Latest>,
    current: Option<Sequence>,
}

/// A value `check` let through, to `record` once it is published.
#[must_use = "record it once published"]
#[derive(Debug)]
pub struct Admitted {
    key: String,
    latest: Latest,
}

/// What `check` decided.
#[derive(Debug)]
pub enum Verdict {
    /// Publish it, then `record` it.
    Publish(Admitted),
    /// The current value again: nothing to publish.
    Duplicate,
}

/// The importer's checks; one per importer.
#[derive(Debug, Default)]
pub struct Verifier {
    trusted: Option<TrustedKeys>,
    keys: HashMap<String, History>,
}

impl Verifier {
    /// Checks signatures against `trusted` if given (else signatures are not
    /// required, and not checked).
    pub fn new(trusted: Option<TrustedKeys>) -> Self {
        Verifier { trusted, keys: HashMap::new() }
    }

    /// Checks `env` (decoded from `raw`, the entry's value under `key`) and its
    /// snapshot `bytes`.
    pub fn check(&self, key: &str, raw: &[u8], env: &Envelope<'_>, bytes: &[u8]) -> Result<Verdict, String> {
        if let Some(trusted) = &self.trusted {
            let Some(seal) = env.seal else {
                return Err(format!(
                    "unsigned (envelope version {}), and this importer accepts only values signed by its trusted keys",
                    env.version
                ));
            };
            if !trusted.0.contains(&seal.public_key) {
                return Err(format!("signed by key {}, which is not among the trusted keys", hex(&seal.public_key)));
            }
            let public = VerifyingKey::from_bytes(&seal.public_key).map_err(|_| "invalid public key".to_string())?;
            let signed_part = &raw[..raw.len() - 64];
            debug_assert_eq!(&raw[raw.len() - SEAL..raw.len() - 64], &seal.public_key);
            public
                .verify(&message(key, signed_part), &Signature::from_bytes(&seal.signature))
                .map_err(|_| format!("bad signature (key {}) for key {key:?}", hex(&seal.public_key)))?;
        }
        if let Some(want) = env.digest {
            if digest(bytes) != want {
                return Err("the snapshot's SHA-256 is not the envelope's".into());
            }
        }
        let sequence = Sequence { exporter: env.exporter, incarnation: env.incarnation };
        let latest = Latest { sequence, generation: env.generation, digest: env.digest };
        let history = self.keys.get(key);
        if let Some(last) = history.and_then(|h| h.seen.iter().find(|l| l.sequence == sequence)) {
            let what = format!(
                "exporter {:016x}, source incarnation {:016x}: generation {}",
                sequence.exporter, sequence.incarnation, env.generation
            );
            if env.generation < last.generation {
                return Err(format!(
                    "{what} goes back (generation {} was published): rollback or replay",
                    last.generation
                ));
            }
            if env.generation == last.generation {
                // (Version 1 has no digest: its bytes cannot be compared.)
                if env.digest.is_some() && env.digest != last.digest {
                    return Err(format!("{what} again, with other bytes"));
                }
                if history.and_then(|h| h.current) == Some(sequence) {
                    return Ok(Verdict::Duplicate);
                }
            }
        }
        Ok(Verdict::Publish(Admitted { key: key.to_string(), latest }))
    }

    /// Records a published value.
    pub fn record(&mut self, admitted: Admitted) {
        let history = self.keys.entry(admitted.key).or_default();
        history.seen.retain(|l| l.sequence != admitted.latest.sequence);
        history.seen.push(admitted.latest);
        if history.seen.len() > SEQUENCES_PER_KEY {
            history.seen.remove(0);
        }
        history.current = Some(admitted.latest.sequence);
    }

    /// The generation memory as text, for `ImportOptions::state_file`: one
    /// line per (key, sequence): key, exporter id, incarnation (hex),
    /// generation, digest (hex or `-`), 1 if the key's current sequence.
    pub fn save_text(&self) -> String {
        let mut out = String::from("# shmstate-bridge importer state v1\n");
        for (key, history) in &self.keys {
            for l in &history.seen {
                let digest = l.digest.map_or("-".to_string(), |d| hex(&d));
                let current = u8::from(history.current == Some(l.sequence));
                let (e, i, g) = (l.sequence.exporter, l.sequence.incarnation, l.generation);
                out.push_str(&format!("{key} {e:016x} {i:016x} {g} {digest} {current}\n"));
            }
        }
        out
    }

    /// Takes the generation memory back from `save_text`'s text; every line
    /// is checked (a state file is input like any other).
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
            let bad =
                || format!("line {}: {line:?} is not `key exporter incarnation generation digest current`", n + 1);
            let f: Vec<&str> = line.split(' ').collect();
            let [key, exporter, incarnation, generation, digest, current] = f[..] else { return Err(bad()) };
            let hex64 = |s: &str| u64::from_str_radix(s, 16).ok().filter(|_| s.len() == 16);
            let sequence = Sequence {
                exporter: hex64(exporter).ok_or_else(bad)?,
                incarnation: hex64(incarnation).ok_or_else(bad)?,
            };
            let digest = match digest {
                "-" => None,
                d => Some(parse_hex32(d).ok_or_else(bad)?),
            };
            let latest = Latest { sequence, generation: generation.parse().map_err(|_| bad())?, digest };
            let history = self.keys.entry(key.to_string()).or_default();
            history.seen.push(latest);
            match current {
                "1" => history.current = Some(sequence),
                "0" => {}
                _ => return Err(bad()),
            }
        }
        Ok(())
    }

    /// Forgets a key (its local object was removed or replaced).
    pub fn forget(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Body, VERSION_ONE_LAYOUT};

    fn env(generation: u64, incarnation: u64, bytes: &[u8]) -> Envelope<'_> {
        Envelope {
            version: VERSION_ONE_LAYOUT,
            fingerprint: 1,
            rkyv_format: 2,
            generation,
            exporter: 7,
            incarnation,
            digest: Some(digest(bytes)),
            host: "a",
            schema: b"s",
            len: bytes.len() as u64,
            lanes: Vec::new(),
            body: Body::Inline(bytes),
            seal: None,
        }
    }

    fn admit(v: &mut Verifier, key: &str, e: &Envelope<'_>, bytes: &[u8]) -> Result<bool, String> {
        match v.check(key, &e.encode(), e, bytes)? {
            Verdict::Publish(a) => {
                v.record(a);
                Ok(true)
            }
            Verdict::Duplicate => Ok(false),
        }
    }

    #[test]
    fn generations_go_forward_per_exporter_and_incarnation() {
        let mut v = Verifier::new(None);
        assert_eq!(admit(&mut v, "k", &env(5, 1, b"five"), b"five"), Ok(true));
        assert!(admit(&mut v, "k", &env(4, 1, b"four"), b"four").unwrap_err().contains("goes back"));
        assert!(admit(&mut v, "k", &env(5, 1, b"FIVE"), b"FIVE").unwrap_err().contains("other bytes"));
        assert_eq!(admit(&mut v, "k", &env(5, 1, b"five"), b"five"), Ok(false), "a duplicate");
        // The source created again: its generations start again.
        assert_eq!(admit(&mut v, "k", &env(1, 2, b"one"), b"one"), Ok(true));
        // The old incarnation's latest again, after another was published: restored.
        assert_eq!(admit(&mut v, "k", &env(5, 1, b"five"), b"five"), Ok(true));
        assert!(admit(&mut v, "k", &env(3, 1, b"three"), b"three").unwrap_err().contains("goes back"));
        // Another key is another sequence.
        assert_eq!(admit(&mut v, "j", &env(3, 1, b"three"), b"three"), Ok(true));
        // Bytes that are not the digest's.
        assert!(admit(&mut v, "k", &env(9, 1, b"nine"), b"NINE").unwrap_err().contains("SHA-256"));
    }

    #[test]
    fn with_trusted_keys_only_their_signatures_for_this_key_pass() {
        let (good, other) = (SigningIdentity::generate().unwrap(), SigningIdentity::generate().unwrap());
        let v = Verifier::new(Some(TrustedKeys::new([good.public_key()])));
        let sealed = |who: &SigningIdentity, key: &str| {
            let mut raw = Envelope { seal: Some(who.blank_seal()), ..env(1, 1, b"x") }.encode();
            who.sign(key, &mut raw);
            raw
        };
        let check = |key: &str, raw: &[u8]| {
            let e = Envelope::decode(raw).unwrap();
            v.check(key, raw, &e, b"x").map(|_| ())
        };
        assert_eq!(check("k", &sealed(&good, "k")), Ok(()));
        assert!(check("k", &sealed(&other, "k")).unwrap_err().contains("not among the trusted keys"));
        assert!(check("j", &sealed(&good, "k")).unwrap_err().contains("bad signature"), "moved to another key");
        assert!(check("k", &env(1, 1, b"x").encode()).unwrap_err().contains("unsigned"));
        let mut tampered = sealed(&good, "k");
        tampered[32] ^= 1; // the generation
        assert!(check("k", &tampered).unwrap_err().contains("bad signature"));
    }

    #[test]
    fn key_files_parse_and_a_readable_secret_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let id = SigningIdentity::generate().unwrap();
        let secret = dir.path().join("key");
        std::fs::write(&secret, id.secret_hex()).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SigningIdentity::from_file(&secret).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SigningIdentity::from_file(&secret).unwrap().public_key(), id.public_key());
        let trusted = dir.path().join("trusted");
        std::fs::write(&trusted, format!("# exporters\n{} host-a\n\n", hex(&id.public_key()))).unwrap();
        assert!(TrustedKeys::from_file(&trusted).unwrap().0.contains(&id.public_key()));
        std::fs::write(&trusted, "zz\n").unwrap();
        assert!(TrustedKeys::from_file(&trusted).is_err());
    }
}
