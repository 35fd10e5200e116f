//! Export: every new generation of a local object goes into the key-value
//! bucket under the object's name (through the object store when it is larger
//! than a message). A fast writer is coalesced: the latest generation wins.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::UpdateErrorKind;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

use crate::connect::{Backoff, Config, Nats};
use crate::envelope::{Body, Envelope, Lane};
use crate::verify::SigningIdentity;
use crate::{glob, log, owner, Stats};

/// Bytes kept free in a message for NATS and JetStream headers.
const HEADER_ROOM: usize = 4096;

/// How long one key-value request (read, create, update) may take before it
/// is given up and retried. The client's own request timeout (5 s) is what a
/// request sent just before a lost connection waits out, although the client
/// reconnects in milliseconds; a write that landed all the same is recognised
/// at the retry (the entry names this exporter and generation). Longer than a
/// JetStream acknowledgement under load (milliseconds), short enough that a
/// lost server costs about the reconnect.
const KV_ATTEMPT: Duration = Duration::from_millis(500);

/// The longest wait before a glob-matched object refused because another
/// live exporter owns it is tried again.
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(30);

/// What to export and how.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Object names, or globs with `*` and `?`.
    pub patterns: Vec<String>,
    /// Sign every envelope with this key (importers pin its public key).
    pub signing: Option<Arc<SigningIdentity>>,
}

/// A key-value request bounded by `KV_ATTEMPT`.
async fn bounded<T, E: std::fmt::Display>(
    request: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Attempt<E>> {
    match tokio::time::timeout(KV_ATTEMPT, request).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Attempt::Failed(e)),
        Err(_) => Err(Attempt::TimedOut),
    }
}

/// Why a bounded request did not answer.
enum Attempt<E> {
    Failed(E),
    TimedOut,
}

impl<E: std::fmt::Display> std::fmt::Display for Attempt<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Failed(e) => e.fmt(f),
            Attempt::TimedOut => write!(f, "no answer within {KV_ATTEMPT:?}"),
        }
    }
}

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

/// One generation read from the local object (`source.rs`): the first
/// layout's fields, and the further layouts' (its lanes).
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) incarnation: u64,
    /// Of `bytes`: every layout's snapshot.
    pub(crate) digest: [u8; 32],
    pub(crate) fingerprint: u64,
    pub(crate) schema: Arc<Vec<u8>>,
    /// The first layout's snapshot, then each lane's.
    pub(crate) bytes: Vec<u8>,
    pub(crate) lanes: Vec<LaneSnapshot>,
    /// The exporter took it from the channel. SYNC(taken): set and read
    /// under the watch channel's lock, which orders them.
    pub(crate) taken: std::sync::atomic::AtomicBool,
}

/// A further layout of a [`Snapshot`].
pub(crate) struct LaneSnapshot {
    pub(crate) fingerprint: u64,
    pub(crate) schema: Arc<Vec<u8>>,
    pub(crate) len: u64,
}

/// Exports the objects whose names match `options.patterns` (names, or globs
/// with `*` and `?`) until the export of an explicit name fails. New objects
/// matching a glob are picked up within a second; an explicit name is
/// exported once it exists. A glob-matched object whose key another live
/// exporter owns is logged, counted in `Stats::not_exported` and tried again
/// with back-off (up to every 30 s).
pub async fn export(config: Config, nats: Nats, options: ExportOptions, stats: Arc<Stats>) -> Result<(), ExportError> {
    let ExportOptions { patterns, signing } = options;
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
    // Glob-matched objects refused for now: when to try again; and the
    // last wait of each refused object, doubled at each refusal.
    let mut retry_at: HashMap<String, Instant> = HashMap::new();
    let mut waited: HashMap<String, Duration> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let result = loop {
        let now = Instant::now();
        retry_at.retain(|name, at| {
            let due = *at <= now;
            if due {
                log!("export {name}: trying again");
                started.remove(name);
                stats.not_exported.fetch_sub(1, Relaxed);
            }
            !due
        });
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
                    // lanes (`name@fingerprint`) go with their plain name
                    // (`source.rs`).
                    .filter(|(name, info)| !name.contains('@') && info.as_ref().is_ok_and(|i| i.origin.is_none()))
                    .map(|(name, _)| (name, false))
                    .filter(|(n, _)| patterns.iter().any(|p| glob::matches(p, n))),
            );
        }
        for (name, explicit) in names {
            if started.insert(name.clone()) {
                stats.objects.store(started.len() as u64, Relaxed);
                let (config, nats, stats, signing) = (config.clone(), nats.clone(), stats.clone(), signing.clone());
                tasks.spawn(async move {
                    let result = export_object(&config, &nats, &name, id, signing.as_deref(), &stats).await;
                    (name, explicit, result)
                });
            }
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                match done {
                    Ok((_, true, Err(e))) => break Err(e),
                    Ok((name, false, Err(e))) => {
                        let wait = waited.get(&name).map_or(Duration::from_secs(1), |w| (*w * 2).min(REFUSED_RETRY_MAX));
                        waited.insert(name.clone(), wait);
                        retry_at.insert(name, Instant::now() + wait);
                        stats.not_exported.fetch_add(1, Relaxed);
                        log!("export: {e}; NOT EXPORTED, trying again in {wait:?} (the other objects go on)");
                    }
                    Ok((_, _, Ok(()))) => {}
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
/// A write on its key by anyone else is answered by writing the current
/// snapshot again: taken back if that writer is not a live exporter.
async fn export_object(
    config: &Config,
    nats: &Nats,
    name: &str,
    id: u64,
    signing: Option<&SigningIdentity>,
    stats: &Stats,
) -> Result<(), ExportError> {
    if name.ends_with('.') || name.contains('@') {
        return Err(ExportError::InvalidKey(name.to_string()));
    }
    let (tx, mut rx) = watch::channel(None::<Arc<Snapshot>>);
    let follow_name = name.to_string();
    std::thread::Builder::new()
        .name(format!("export {name}"))
        .spawn(move || crate::source::follow(&follow_name, &tx))
        .expect("spawn a thread");
    // The key's latest revision, whoever wrote it.
    let (written_tx, mut written) = watch::channel(0u64);
    let watcher = tokio::spawn(watch_key(nats.clone(), name.to_string(), id, written_tx));
    let _stop_watcher = AbortOnDrop(watcher);
    let key = Key { config, nats, name, id, signing, stats };
    let mut claimed: Option<u64> = None;
    // Object-store names of the latest large snapshots: the one before the
    // latest is kept for importers still fetching it.
    let mut large: VecDeque<String> = VecDeque::new();
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Ok(()) },
            _ = written.changed() => {
                // Only a revision past ours is news.
                let revision = *written.borrow_and_update();
                if claimed.is_none_or(|ours| revision <= ours) {
                    continue;
                }
                log!("export {name}: revision {revision} was written by someone else; writing the current snapshot again");
            }
        }
        // Marked taken under the channel's lock (a map's follower retracts
        // an untaken delta under it: map_export.rs).
        let Some(snap) = rx.borrow_and_update().clone().inspect(|s| s.taken.store(true, Relaxed)) else { continue };
        let mut backoff = Backoff::new();
        loop {
            match key.put(&snap, &mut claimed, &mut large).await {
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
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the revision of every write of `key` (puts, deletes, purges) that is
/// not an envelope of exporter `id` to `written`, watching again (from the
/// latest value) after a failure.
async fn watch_key(nats: Nats, key: String, id: u64, written: watch::Sender<u64>) {
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        // The first watch sees new writes only; a later one starts from the
        // latest value, so a write while it was down is seen too.
        let watch = if first { nats.kv.watch(&key).await } else { nats.kv.watch_with_history(&key).await };
        match watch {
            Ok(mut watch) => {
                first = false;
                backoff = Backoff::new();
                while let Some(Ok(entry)) = watch.next().await {
                    // (A write of ours whose reply was lost comes back here too.)
                    if Envelope::decode(&entry.value).is_ok_and(|e| e.exporter == id) {
                        continue;
                    }
                    written.send_modify(|r| *r = (*r).max(entry.revision));
                }
            }
            Err(e) => log!("export {key}: cannot watch the key ({e}); retrying"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

enum Failure {
    Fatal(ExportError),
    Retry(String),
}

/// What writing one key needs.
struct Key<'a> {
    config: &'a Config,
    nats: &'a Nats,
    name: &'a str,
    id: u64,
    signing: Option<&'a SigningIdentity>,
    stats: &'a Stats,
}

impl Key<'_> {
    /// The envelope of `snap` with `body`, signed if this exporter signs.
    fn envelope(&self, snap: &Snapshot, body: Body<'_>) -> Vec<u8> {
        let lanes: Vec<Lane<'_>> =
            snap.lanes.iter().map(|l| Lane { fingerprint: l.fingerprint, schema: &l.schema, len: l.len }).collect();
        let mut bytes = Envelope {
            version: if lanes.is_empty() { crate::envelope::VERSION_ONE_LAYOUT } else { crate::envelope::VERSION },
            fingerprint: snap.fingerprint,
            rkyv_format: shmstate::schema::fp::RKYV_FORMAT,
            generation: snap.generation,
            exporter: self.id,
            incarnation: snap.incarnation,
            digest: Some(snap.digest),
            host: &self.config.host,
            schema: &snap.schema,
            len: snap.bytes.len() as u64,
            lanes,
            body,
            seal: self.signing.map(SigningIdentity::blank_seal),
        }
        .encode();
        if let Some(signing) = self.signing {
            signing.sign(self.name, &mut bytes);
        }
        bytes
    }

    /// Writes one snapshot: into the object store first if it is large, then
    /// the key-value entry, claiming the key on the first write (and again
    /// after a write by an exporter that is not alive).
    async fn put(
        &self,
        snap: &Snapshot,
        claimed: &mut Option<u64>,
        large: &mut VecDeque<String>,
    ) -> Result<(), Failure> {
        let (nats, key, id) = (self.nats, self.name, self.id);
        let inline = self.envelope(snap, Body::Inline(&snap.bytes));
        let mut object = None;
        let value = if inline.len() + HEADER_ROOM <= nats.max_payload() {
            Bytes::from(inline)
        } else {
            let name = format!("{key}/{}/{id:016x}", snap.generation);
            nats.objects
                .put(name.as_str(), &mut snap.bytes.as_slice())
                .await
                .map_err(|e| Failure::Retry(format!("object store: {e}")))?;
            let value = Bytes::from(self.envelope(snap, Body::Object(&name)));
            object = Some(name);
            value
        };
        let revision = match *claimed {
            None => self.claim(value).await?,
            Some(last) => match bounded(nats.kv.update(key, value.clone(), last)).await {
                Ok(revision) => revision,
                Err(Attempt::Failed(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    match self.who_wrote(snap).await? {
                        Writer::ThisWrite(revision) => revision,
                        Writer::Us(revision) => {
                            *claimed = Some(revision);
                            return Err(Failure::Retry("an earlier write landed; writing again".into()));
                        }
                        Writer::Other { exporter, host } => {
                            if exporter.is_some_and(|other| other != id) {
                                let alive = owner::is_alive(&nats.client, &self.config.bucket, exporter.unwrap_or(0))
                                    .await
                                    .map_err(Failure::Retry)?;
                                if alive {
                                    return Err(Failure::Fatal(ExportError::OwnershipLost { key: key.into(), host }));
                                }
                            }
                            log!(
                                "export {key}: written by someone else (host {host}) that is not a live exporter: \
                                 reclaiming the key"
                            );
                            self.stats.reclaimed.fetch_add(1, Relaxed);
                            self.claim(value).await?
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

    /// After a revision-checked write failed: who wrote the key last.
    async fn who_wrote(&self, snap: &Snapshot) -> Result<Writer, Failure> {
        let entry = bounded(self.nats.kv.entry(self.name)).await.map_err(|e| Failure::Retry(e.to_string()))?;
        let Some(entry) = entry else { return Ok(Writer::Other { exporter: None, host: "none (deleted)".into() }) };
        match Envelope::decode(&entry.value) {
            // Our write of this very snapshot landed before its reply was lost.
            Ok(found) if found.exporter == self.id && found.generation == snap.generation => {
                Ok(Writer::ThisWrite(entry.revision))
            }
            Ok(found) if found.exporter == self.id => Ok(Writer::Us(entry.revision)),
            Ok(found) => Ok(Writer::Other { exporter: Some(found.exporter), host: found.host.to_string() }),
            Err(_) => Ok(Writer::Other { exporter: None, host: "unknown (not an envelope)".into() }),
        }
    }

    /// The first write of a key: free (absent, or its exporter is dead) or refused.
    async fn claim(&self, value: Bytes) -> Result<u64, Failure> {
        let (nats, key, id) = (self.nats, self.name, self.id);
        let retry = |e: &dyn std::fmt::Display| Failure::Retry(e.to_string());
        loop {
            let entry = bounded(nats.kv.entry(key)).await.map_err(|e| retry(&e))?;
            let written = match &entry {
                None => bounded(nats.kv.create(key, value.clone())).await.map_err(|e| e.to_string()),
                Some(entry) => {
                    if let Ok(found) = Envelope::decode(&entry.value) {
                        if found.exporter != id
                            && owner::is_alive(&nats.client, &self.config.bucket, found.exporter)
                                .await
                                .map_err(|e| retry(&e))?
                        {
                            return Err(Failure::Fatal(ExportError::AlreadyExported {
                                key: key.into(),
                                host: found.host.into(),
                            }));
                        }
                    }
                    bounded(nats.kv.update(key, value.clone(), entry.revision)).await.map_err(|e| e.to_string())
                }
            };
            match written {
                Ok(revision) => {
                    log!("export {key}: claimed (revision {revision})");
                    return Ok(revision);
                }
                // Someone else wrote it meanwhile (or the write timed out):
                // look again at who.
                Err(e) => log!("export {key}: claim raced ({e}); checking the new owner"),
            }
        }
    }
}

/// Who wrote a key whose revision was not the one expected.
enum Writer {
    /// This exporter, this snapshot: done, at this revision.
    ThisWrite(u64),
    /// This exporter, an earlier snapshot, at this revision.
    Us(u64),
    /// Someone else: the exporter id its envelope names (if it is one) and host.
    Other { exporter: Option<u64>, host: String },
}
