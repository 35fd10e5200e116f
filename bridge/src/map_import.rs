//! Import of a map object (docs/MAP.md, "Across hosts"): a full state
//! replaces the local map's entries; a delta is applied only when its base
//! is the source generation the local map holds, else it is refused and the
//! map waits for the next full state (the exporter sends one every
//! `map_export::FULL_EVERY` generations). Each body becomes one commit of a
//! `RawMapWriter`, which checks every key against the key kind and every
//! value against the schema before it is staged, so local readers only see
//! whole source generations of values a typed writer could have written.

use std::collections::{HashMap, VecDeque};

use async_nats::jetstream::kv::Entry;
use shmstate::map::{MapKeyKind, RawMapWriter};
use shmstate::schema::SchemaDoc;
use shmstate::Generation;

use crate::envelope::{Body, Envelope};
use crate::import::{ImportOptions, Received};
use crate::log;
use crate::map_body::{Kind, MapBody};
use crate::verify::{Verdict, Verifier};

/// Entries a map body may hold (each costs at least 9 bytes of the body,
/// which `--max-value-bytes` bounds too).
pub(crate) const MAX_ENTRIES: u64 = 1 << 27;

/// The local maps of the keys imported so far.
#[derive(Default)]
pub(crate) struct Mirrors {
    maps: HashMap<String, Mirror>,
}

struct Mirror {
    writer: RawMapWriter,
    /// The source generation the local map holds; `None` until a full state
    /// (a restarted importer does not know what an existing mirror holds).
    source: Option<u64>,
    /// The source map's incarnation (a map created again counts its
    /// generations from 1 again: a delta must be of the same one).
    incarnation: u64,
    revision: u64,
    /// Deltas received while the map waits for a full state (most recent
    /// `WAITING` kept), applied after it when they follow it.
    waiting: VecDeque<Entry>,
}

/// Deltas kept while a map waits for a full state.
const WAITING: usize = 2 * crate::map_export::FULL_EVERY as usize;

/// Whether a bucket value is a map delta in the message itself (it does not
/// cancel the fetch of a full state still running for its key).
pub(crate) fn is_inline_delta(value: &[u8]) -> bool {
    Envelope::decode(value).is_ok_and(|env| {
        crate::maps::is_map_root(env.fingerprint)
            && matches!(env.body, Body::Inline(b) if b.len() > 8 && b[..8] == crate::map_body::MAGIC && b[8] == 0)
    })
}

/// Checks one map envelope and applies it to the local map `local`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receive(
    entry: &Entry,
    local: &str,
    env: &Envelope<'_>,
    fetched: Option<Vec<u8>>,
    verifier: &mut Verifier,
    options: &ImportOptions,
    mirrors: &mut Mirrors,
    other_objects: usize,
) -> Result<Received, String> {
    let limits = &options.limits;
    if mirrors.maps.get(local).is_some_and(|m| m.revision == entry.revision) {
        return Ok(Received::Duplicate);
    }
    let schema = SchemaDoc::decode(env.schema).map_err(|e| format!("value schema: {e}"))?;
    if env.len > limits.max_value_bytes {
        return Err(format!("a map body of {} bytes, above --max-value-bytes {}", env.len, limits.max_value_bytes));
    }
    if !mirrors.maps.contains_key(local) && other_objects + mirrors.maps.len() >= limits.max_objects {
        return Err(format!(
            "the importer has --max-objects {} local objects: not creating another",
            limits.max_objects
        ));
    }
    let bytes: &[u8] = match (&env.body, &fetched) {
        (Body::Inline(bytes), _) => bytes,
        (Body::Object(_), Some(fetched)) => fetched,
        (Body::Object(name), None) => return Ok(Received::Fetch { object: name.to_string(), len: env.len }),
    };
    let admitted = match verifier.check(&entry.key, &entry.value, env, bytes)? {
        Verdict::Publish(admitted) => admitted,
        Verdict::Duplicate => return Ok(Received::Duplicate),
    };
    let body = MapBody::decode(bytes, MAX_ENTRIES).map_err(|e| e.to_string())?;
    let key_kind = MapKeyKind::from_name(body.key_kind)
        .ok_or_else(|| format!("keys of type {:?}, which this build cannot check", body.key_kind))?;
    let m = match mirrors.maps.entry(local.to_string()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let writer = open_local(local, key_kind, &schema, options.into_local_objects)?;
            log!("import {}: applying into the local map {local:?}", entry.key);
            v.insert(Mirror { writer, source: None, incarnation: 0, revision: 0, waiting: VecDeque::new() })
        }
    };
    match body.kind {
        Kind::Delta { base } if m.source != Some(base) || m.incarnation != env.incarnation => {
            m.waiting.push_back(entry.clone());
            if m.waiting.len() > WAITING {
                m.waiting.pop_front();
            }
            return Err(match m.source {
                Some(at) => {
                    format!("a delta from generation {base}, the local map holds {at}: waiting for a full state")
                }
                None => format!("a delta from generation {base} before any full state: waiting for a full state"),
            });
        }
        Kind::Delta { .. } => {}
        Kind::Full => {
            // Keys the full state lacks are removed (both lists are in order).
            let keys = m.writer.keys();
            let mut incoming = body.entries.iter().map(|e| e.key).peekable();
            for k in &keys {
                while incoming.next_if(|i| *i < k.as_slice()).is_some() {}
                if incoming.peek() != Some(&k.as_slice()) {
                    m.writer.remove(k).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    for e in &body.entries {
        let staged = match e.value {
            Some(v) => m.writer.insert(e.key, v),
            None => m.writer.remove(e.key),
        };
        if let Err(e) = staged {
            m.writer.discard();
            m.source = None;
            return Err(format!("an entry does not check: {e}"));
        }
    }
    m.writer.set_origin(env.host, Generation::new(env.generation));
    if let Err(e) = m.writer.commit() {
        // What was applied of it is unknown to the next delta: re-sync.
        m.source = None;
        return Err(format!("commit: {e}"));
    }
    m.source = Some(env.generation);
    m.incarnation = env.incarnation;
    m.revision = entry.revision;
    verifier.record(admitted);
    if body.kind == Kind::Full {
        // The deltas that came while the full state was on its way.
        let waiting = std::mem::take(&mut m.waiting);
        for delta in waiting {
            if let Err(why) =
                receive(&delta, local, &delta_env(&delta)?, None, verifier, options, mirrors, other_objects)
            {
                log!("import {}: revision {} not applied after the full state: {why}", delta.key, delta.revision);
            }
        }
    }
    Ok(Received::Published)
}

fn delta_env(entry: &Entry) -> Result<Envelope<'_>, String> {
    Envelope::decode(&entry.value).map_err(|e| e.to_string())
}

/// Opens the local map for a key: creates it, or takes over an existing one
/// only when it is a mirror (it has an origin) or `into_local_objects`.
fn open_local(
    local: &str,
    key_kind: MapKeyKind,
    schema: &SchemaDoc,
    into_local_objects: bool,
) -> Result<RawMapWriter, String> {
    match shmstate::inspect(local) {
        Ok(info) if info.writer_alive => {
            return Err(format!("a local writer owns {local:?}: refusing to import over it"))
        }
        Ok(info) if info.origin.is_none() && !into_local_objects => {
            return Err(format!(
                "{local:?} is a local object, not a mirror (no origin): refusing to import into it \
                 (--into-local-objects allows it)"
            ))
        }
        _ => {}
    }
    RawMapWriter::open_or_create(local, key_kind, schema).map_err(|e| format!("cannot open the local map: {e}"))
}
