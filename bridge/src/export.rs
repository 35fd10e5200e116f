//! Export: every new generation of a local object goes into the key-value
//! bucket under the object's name (through the object store when it is larger
//! than a message). A fast writer is coalesced: the latest generation wins.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::UpdateErrorKind;
use bytes::Bytes;
use shmstate::{Generation, OpenError, RawReader, ReadError, WaitError};
use tokio::sync::watch;

use crate::connect::{Backoff, Config, Nats};
use crate::envelope::{Body, Envelope};
use crate::{glob, log, owner, Stats};

/// Bytes kept free in a message for NATS and JetStream headers.
const HEADER_ROOM: usize = 4096;

/// Why an export stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// Another live exporter owns the key.
    AlreadyExported {
        /// The key.
        key: String,
        /// Its exporter's host.
        host: String,
    },
    /// Another exporter wrote the key since this one claimed it.
    OwnershipLost {
        /// The key.
        key: String,
        /// The host named in the entry found.
        host: String,
    },
    /// The object's name cannot be a key (keys may not end with '.' or hold '@').
    InvalidKey(String),
    /// `Config::host` is not 1..=255 bytes (the envelope's limit).
    InvalidHost(String),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::AlreadyExported { key, host } => write!(
                f,
                "{key:?} is already exported by a live exporter on host {host}: one writer per object, fleet-wide \
                 (stop that exporter first)"
            ),
            ExportError::OwnershipLost { key, host } => {
                write!(f, "{key:?} was written by another exporter (host {host}): this one stops exporting it")
            }
            ExportError::InvalidHost(host) => write!(f, "host name {host:?} is not 1 to 255 bytes"),
            ExportError::InvalidKey(name) => write!(
                f,
                "{name:?} cannot be a key-value key (it ends with '.', or is a lane: '@'; export the object's plain \
                 name)"
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// One generation read from the local object.
struct Snapshot {
    generation: u64,
    fingerprint: u64,
    schema: Arc<Vec<u8>>,
    bytes: Vec<u8>,
}

/// Exports the objects whose names match `patterns` (names, or globs with `*`
/// and `?`) until an export fails. New objects matching a glob are picked up
/// within a second; an explicit name is exported once it exists.
pub async fn export(config: Config, nats: Nats, patterns: Vec<String>, stats: Arc<Stats>) -> Result<(), ExportError> {
    if config.host.is_empty() || config.host.len() > 255 {
        return Err(ExportError::InvalidHost(config.host));
    }
    let id = owner::new_id();
    let responder = loop {
        match owner::answer(&nats.client, &config.bucket, id).await {
            Ok(task) => break task,
            Err(e) => {
                log!("export: cannot subscribe ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let config = Arc::new(config);
    let mut started = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let result = loop {
        // (name, named explicitly): an explicit name's refusal ends the
        // export; a glob's only skips that object.
        let mut names: Vec<(String, bool)> =
            patterns.iter().filter(|p| !glob::is_glob(p)).map(|p| (p.clone(), true)).collect();
        if patterns.iter().any(|p| glob::is_glob(p)) {
            let listed = tokio::task::spawn_blocking(shmstate::list).await.ok().and_then(Result::ok);
            names.extend(
                listed
                    .into_iter()
                    .flatten()
                    // Mirrors of other hosts' objects are not exported again;
                    // lanes (`name@fingerprint`) are not mirrored.
                    .filter(|(name, info)| !name.contains('@') && info.as_ref().is_ok_and(|i| i.origin.is_none()))
                    .map(|(name, _)| (name, false))
                    .filter(|(n, _)| patterns.iter().any(|p| glob::matches(p, n))),
            );
        }
        for (name, explicit) in names {
            if started.insert(name.clone()) {
                let (config, nats, stats) = (config.clone(), nats.clone(), stats.clone());
                tasks.spawn(async move { (explicit, export_object(&config, &nats, name, id, &stats).await) });
            }
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                match done {
                    Ok((true, Err(e))) => break Err(e),
                    Ok((false, Err(e))) => log!("export: {e}; the other objects go on"),
                    Ok((_, Ok(()))) => {}
                    Err(e) => log!("export: task failed: {e}"),
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    responder.abort();
    result
}

/// Exports one object for as long as it lives (and after: a removed object
/// stays at its last value in the bucket; one created again is exported again).
async fn export_object(config: &Config, nats: &Nats, name: String, id: u64, stats: &Stats) -> Result<(), ExportError> {
    if name.ends_with('.') || name.contains('@') {
        return Err(ExportError::InvalidKey(name));
    }
    let (tx, mut rx) = watch::channel(None::<Arc<Snapshot>>);
    let follow_name = name.clone();
    std::thread::Builder::new()
        .name(format!("export {name}"))
        .spawn(move || follow(&follow_name, &tx))
        .expect("spawn a thread");
    let mut claimed: Option<u64> = None;
    // Object-store names of the latest large snapshots: the one before the
    // latest is kept for importers still fetching it.
    let mut large: VecDeque<String> = VecDeque::new();
    while rx.changed().await.is_ok() {
        let Some(snap) = rx.borrow_and_update().clone() else { continue };
        let mut backoff = Backoff::new();
        loop {
            match put(config, nats, &name, id, &snap, &mut claimed, &mut large).await {
                Ok(()) => {
                    stats.exported.fetch_add(1, Relaxed);
                    break;
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(e)) => {
                    stats.retries.fetch_add(1, Relaxed);
                    let wait = backoff.next();
                    log!("export {name}: generation {} not written ({e}); retrying in {wait:?}", snap.generation);
                    tokio::time::sleep(wait).await;
                    // Coalesce: a newer generation replaces the one being retried.
                    if rx.has_changed().unwrap_or(false) {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

enum Failure {
    Fatal(ExportError),
    Retry(String),
}

/// Writes one snapshot: into the object store first if it is large, then the
/// key-value entry, claiming the key on the first write.
async fn put(
    config: &Config,
    nats: &Nats,
    key: &str,
    id: u64,
    snap: &Snapshot,
    claimed: &mut Option<u64>,
    large: &mut VecDeque<String>,
) -> Result<(), Failure> {
    let envelope = |body| Envelope {
        fingerprint: snap.fingerprint,
        rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
        generation: snap.generation,
        exporter: id,
        host: &config.host,
        schema: &snap.schema,
        len: snap.bytes.len() as u64,
        body,
    };
    let inline = envelope(Body::Inline(&snap.bytes)).encode();
    let mut object = None;
    let value = if inline.len() + HEADER_ROOM <= nats.max_payload() {
        Bytes::from(inline)
    } else {
        let name = format!("{key}/{}/{id:016x}", snap.generation);
        nats.objects
            .put(name.as_str(), &mut snap.bytes.as_slice())
            .await
            .map_err(|e| Failure::Retry(format!("object store: {e}")))?;
        let value = Bytes::from(envelope(Body::Object(&name)).encode());
        object = Some(name);
        value
    };
    let revision = match *claimed {
        None => claim(config, nats, key, id, value).await?,
        Some(last) => match nats.kv.update(key, value.clone(), last).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                // Our own write may have landed before its reply was lost.
                let entry = nats.kv.entry(key).await.map_err(|e| Failure::Retry(e.to_string()))?;
                let found = entry
                    .as_ref()
                    .and_then(|e| Envelope::decode(&e.value).ok().map(|v| (v.exporter, v.host.to_string())));
                match (entry, found) {
                    (Some(entry), Some((exporter, _))) if exporter == id => {
                        *claimed = Some(entry.revision);
                        return Err(Failure::Retry("the previous write landed; writing again".into()));
                    }
                    (_, found) => {
                        let host = found.map_or_else(|| "unknown".into(), |f| f.1);
                        return Err(Failure::Fatal(ExportError::OwnershipLost { key: key.into(), host }));
                    }
                }
            }
            Err(e) => return Err(Failure::Retry(e.to_string())),
        },
    };
    *claimed = Some(revision);
    if let Some(name) = object {
        large.push_back(name);
        while large.len() > 2 {
            let old = large.pop_front().expect("non-empty");
            if let Err(e) = nats.objects.delete(&old).await {
                log!("export {key}: could not delete old object {old:?}: {e}");
            }
        }
    }
    Ok(())
}

/// The first write of a key: free (absent, or its exporter is dead) or refused.
async fn claim(config: &Config, nats: &Nats, key: &str, id: u64, value: Bytes) -> Result<u64, Failure> {
    let retry = |e: &dyn std::fmt::Display| Failure::Retry(e.to_string());
    loop {
        let entry = nats.kv.entry(key).await.map_err(|e| retry(&e))?;
        let written = match &entry {
            None => nats.kv.create(key, value.clone()).await.map_err(|e| e.to_string()),
            Some(entry) => {
                if let Ok(found) = Envelope::decode(&entry.value) {
                    if found.exporter != id
                        && owner::is_alive(&nats.client, &config.bucket, found.exporter).await.map_err(|e| retry(&e))?
                    {
                        return Err(Failure::Fatal(ExportError::AlreadyExported {
                            key: key.into(),
                            host: found.host.into(),
                        }));
                    }
                }
                nats.kv.update(key, value.clone(), entry.revision).await.map_err(|e| e.to_string())
            }
        };
        match written {
            Ok(revision) => {
                log!("export {key}: claimed (revision {revision})");
                return Ok(revision);
            }
            // Someone else wrote it meanwhile: look again at who.
            Err(e) => log!("export {key}: claim raced ({e}); checking the new owner"),
        }
    }
}

/// Reads every new generation of `name` into `tx` (a watch channel: the
/// receiver sees the latest only) until the receiver is gone. Reopens the
/// name when the object is removed or replaced.
fn follow(name: &str, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
    let pause = Duration::from_millis(250);
    let mut said_missing = false;
    while !tx.is_closed() {
        let mut reader = match RawReader::open(name, Duration::from_secs(1)) {
            Ok(reader) => reader,
            Err(e) => {
                if !matches!(e, OpenError::NotFound { .. }) || !said_missing {
                    log!("export {name}: cannot open it ({e}); waiting");
                    said_missing = true;
                }
                std::thread::sleep(pause);
                continue;
            }
        };
        let schema = match reader.schema() {
            Ok(doc) => Arc::new(doc.encode()),
            Err(e) => {
                log!("export {name}: its schema does not decode ({e}); not exported");
                std::thread::sleep(pause);
                continue;
            }
        };
        let fingerprint = reader.fingerprint();
        let mut last = Generation::NONE;
        while !tx.is_closed() {
            match reader.read() {
                Ok((generation, bytes)) if generation > last => {
                    last = generation;
                    let snap = Snapshot {
                        generation: generation.get(),
                        fingerprint,
                        schema: schema.clone(),
                        bytes: bytes.to_vec(),
                    };
                    let _ = tx.send(Some(Arc::new(snap)));
                }
                Ok(_) | Err(ReadError::Empty { .. }) => {}
                Err(ReadError::Replaced { .. }) => break,
                Err(e) => {
                    log!("export {name}: read failed ({e})");
                    std::thread::sleep(pause);
                    break;
                }
            }
            match reader.wait_newer(last, pause) {
                Ok(_) | Err(WaitError::Timeout { .. }) => {}
                // Not replaced yet: a new writer may take over; keep the last.
                Err(WaitError::WriterDead { .. }) => std::thread::sleep(pause),
                Err(_) => break,
            }
        }
    }
}
