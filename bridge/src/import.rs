//! Import: watches the bucket and publishes each received snapshot into a
//! local object of the same name (after an optional prefix), through the
//! type-agnostic writer. Nothing becomes current here that the schema-driven
//! decoder rejects; readers validate every generation anyway.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_nats::jetstream::kv::{Entry, Operation};
use futures::StreamExt;
use shmstate::schema::SchemaDoc;
use shmstate::{Generation, OpenError, RawWriter};
use tokio::io::AsyncReadExt;

use crate::connect::{Backoff, Nats};
use crate::envelope::{Body, Envelope};
use crate::verify::{Verdict, Verifier};
use crate::{glob, log, Stats};

/// What to import and where.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Keys to import: names or globs (`*`, `?`); empty = every key.
    pub patterns: Vec<String>,
    /// Prepended to each key to make the local name (e.g. `"mirror."`).
    pub prefix: String,
    /// Accept only values signed by these exporter keys (`verify`).
    pub trusted_keys: Option<crate::verify::TrustedKeys>,
}

/// The local side of one key.
struct Local {
    writer: RawWriter,
    /// Key-value revision of the latest publish: the same entry delivered
    /// again after a re-watch is not published twice. (Not the source
    /// generation: a source object created again starts at 1 again.)
    revision: u64,
}

/// Imports until the task is dropped: each key's latest value first (no replay
/// of history), then every change. A lost connection or a failed watch is
/// logged and the watch starts again from the latest values.
pub async fn import(nats: Nats, options: ImportOptions, stats: Arc<Stats>) {
    let mut locals: HashMap<String, Local> = HashMap::new();
    let mut verifier = Verifier::new(options.trusted_keys.clone());
    let mut backoff = Backoff::new();
    loop {
        let mut watch = match nats.kv.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                let wait = backoff.next();
                log!("import: cannot watch the bucket ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        backoff = Backoff::new();
        while let Some(entry) = watch.next().await {
            match entry {
                Ok(entry) => {
                    if entry.operation != Operation::Put
                        || !(options.patterns.is_empty()
                            || options.patterns.iter().any(|p| glob::matches(p, &entry.key)))
                    {
                        continue;
                    }
                    let local = format!("{}{}", options.prefix, entry.key);
                    match receive(&nats, &entry, &local, &mut locals, &mut verifier).await {
                        Ok(true) => {
                            stats.imported.fetch_add(1, Relaxed);
                        }
                        Ok(false) => {}
                        Err(why) => {
                            stats.refused.fetch_add(1, Relaxed);
                            log!("import {}: revision {} refused: {why}", entry.key, entry.revision);
                        }
                    }
                }
                Err(e) => {
                    log!("import: watch failed ({e}); watching again from the latest values");
                    break;
                }
            }
        }
        stats.rewatches.fetch_add(1, Relaxed);
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Checks one entry and publishes it into `local`. `Ok(false)`: already
/// published (the same entry seen again).
async fn receive(
    nats: &Nats,
    entry: &Entry,
    local: &str,
    locals: &mut HashMap<String, Local>,
    verifier: &mut Verifier,
) -> Result<bool, String> {
    if locals.get(local).is_some_and(|l| l.revision == entry.revision) {
        return Ok(false);
    }
    let env = Envelope::decode(&entry.value).map_err(|e| e.to_string())?;
    if env.rkyv_format != shmstate::schema::fp::RKYV_FORMAT {
        return Err(format!(
            "rkyv format {:#x}, this build uses {:#x} (another rkyv version or features)",
            env.rkyv_format,
            shmstate::schema::fp::RKYV_FORMAT
        ));
    }
    let schema = SchemaDoc::decode(env.schema).map_err(|e| format!("schema: {e}"))?;
    if schema.fingerprint() != env.fingerprint {
        return Err(format!(
            "fingerprint {:#018x} does not match its schema's {:#018x}",
            env.fingerprint,
            schema.fingerprint()
        ));
    }
    if let Some(l) = locals.get(local) {
        if l.writer.fingerprint() != env.fingerprint {
            return Err(format!(
                "fingerprint {:#018x}, the local object {local:?} holds {:#018x} (the source's type changed: \
                 remove the local object to import the new type)",
                env.fingerprint,
                l.writer.fingerprint()
            ));
        }
    }
    // The decoder needs no alignment (it reads bytes; offsets are checked
    // against the buffer's start) and `publish_bytes` copies into an aligned slot.
    let fetched;
    let bytes: &[u8] = match env.body {
        Body::Inline(bytes) => bytes,
        Body::Object(name) => {
            fetched = fetch(nats, name, env.len).await?;
            &fetched
        }
    };
    // Signature, digest, generation order (bridge/src/verify.rs).
    let admitted = match verifier.check(&entry.key, &entry.value, &env, bytes)? {
        Verdict::Publish(admitted) => admitted,
        Verdict::Duplicate => return Ok(false),
    };
    shmstate::dynamic::validate(&schema, bytes, shmstate::dynamic::Limits::default())
        .map_err(|e| format!("the snapshot does not decode: {e}"))?;
    let l = match locals.entry(local.to_string()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let writer = RawWriter::options().open_or_create_raw(local, &schema).map_err(|e| match e {
                OpenError::WriterBusy { .. } => format!("a local writer owns {local:?}: refusing to import over it"),
                e => format!("cannot open the local object: {e}"),
            })?;
            log!("import {}: publishing into local object {local:?}", entry.key);
            v.insert(Local { writer, revision: 0 })
        }
    };
    l.writer.set_origin(env.host, Generation::new(env.generation));
    // `publish_bytes` checks the bytes against the schema (the same
    // decoder as above) before anything becomes current.
    l.writer.publish_bytes(bytes).map_err(|e| match e {
        shmstate::PublishError::Invalid { reason, .. } => format!("the snapshot does not decode: {reason}"),
        e => format!("publish: {e}"),
    })?;
    l.revision = entry.revision;
    verifier.record(admitted);
    Ok(true)
}

/// Reads a large snapshot from the object store.
async fn fetch(nats: &Nats, name: &str, len: u64) -> Result<Vec<u8>, String> {
    let mut object = nats.objects.get(name).await.map_err(|e| format!("object {name:?}: {e}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 30));
    object.read_to_end(&mut bytes).await.map_err(|e| format!("object {name:?}: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!("object {name:?} has {} bytes, its envelope says {len}", bytes.len()));
    }
    Ok(bytes)
}
