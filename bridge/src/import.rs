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
use shmstate::{Generation, OpenError, RawLaneWriter, RawWriter};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, JoinSet};

use crate::connect::{Backoff, Nats};
use crate::envelope::{Body, Envelope};
use crate::limits::{shm_bytes_of, ImportLimits};
use crate::verify::{Verdict, Verifier};
use crate::{glob, log, Stats};

/// What to import and where.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// What the importer may take from this host (`Default`: protective).
    pub limits: ImportLimits,
    /// Keys to import: names or globs (`*`, `?`); empty = every key.
    pub patterns: Vec<String>,
    /// Prepended to each key to make the local name (e.g. `"mirror."`).
    pub prefix: String,
    /// Accept only values signed by these exporter keys (`verify`).
    pub trusted_keys: Option<crate::verify::TrustedKeys>,
    /// Also publish into existing local objects that are not mirrors (no
    /// origin: a local program wrote them). Off by default: a key put by
    /// anyone with write access to the bucket must not replace a local
    /// program's state.
    pub into_local_objects: bool,
    /// Where the generation order seen (`verify`) is kept across restarts
    /// (written atomically at most every second after a publish), so that a
    /// restarted importer refuses rollbacks too. Check it first with
    /// [`load_state`].
    pub state_file: Option<std::path::PathBuf>,
}

/// Reads a state file (`ImportOptions::state_file`) into `verifier`; a
/// missing file is an empty state.
pub fn load_state(path: &std::path::Path, verifier: &mut Verifier) -> Result<(), String> {
    match std::fs::read_to_string(path) {
        Ok(text) => verifier.load_text(&text).map_err(|e| format!("state file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("state file {}: {e}", path.display())),
    }
}

fn save_state(path: &std::path::Path, verifier: &Verifier) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, verifier.save_text()).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The local side of one key.
struct Local {
    /// The object and its lanes: the source's layouts, the first one's
    /// under the plain name when the source's is.
    writer: RawLaneWriter,
    /// Key-value revision of the latest publish: the same entry delivered
    /// again after a re-watch is not published twice. (Not the source
    /// generation: a source object created again starts at 1 again.)
    revision: u64,
    /// Shared memory the object held after its latest publish.
    shm_bytes: u64,
    /// This importer created the object.
    created: bool,
}

/// Object-store fetches at once: a large snapshot of one key does not delay
/// the others, and memory for fetches stays below this many times
/// `max_value_bytes`.
const MAX_FETCHES: usize = 4;

/// What became of one entry.
pub(crate) enum Received {
    /// Published into the local object.
    Published,
    /// Already published (the same entry seen again, or a duplicate).
    Duplicate,
    /// Checked so far; the snapshot must be fetched from the object store.
    Fetch { object: String, len: u64 },
}

/// A fetch finished (or failed) for this entry.
type Fetched = (Entry, Result<Vec<u8>, String>);

/// Imports until the task is dropped: each key's latest value first (no replay
/// of history), then every change. A lost connection or a failed watch is
/// logged and the watch starts again from the latest values. Object-store
/// snapshots are fetched concurrently (at most `MAX_FETCHES`), so one large
/// value does not hold up the other keys; a newer value of a key cancels the
/// fetch of the older one.
pub async fn import(nats: Nats, options: ImportOptions, stats: Arc<Stats>) {
    let mut verifier = Verifier::new(options.trusted_keys.clone());
    if let Some(path) = &options.state_file {
        if let Err(e) = load_state(path, &mut verifier) {
            log!("import: {e}; starting without it");
        }
    }
    let mut state = State {
        dirty: false,
        locals: HashMap::new(),
        maps: Default::default(),
        verifier,
        pending: HashMap::new(),
        fetching: JoinSet::new(),
        permits: Arc::new(Semaphore::new(MAX_FETCHES)),
    };
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
        let mut save = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = save.tick() => if let (true, Some(path)) = (state.dirty, &options.state_file) {
                    state.dirty = false;
                    if let Err(e) = save_state(path, &state.verifier) {
                        log!("import: cannot write the state file {} ({e})", path.display());
                    }
                },
                next = watch.next() => match next {
                    Some(Ok(entry)) => {
                        if entry.operation != Operation::Put
                            || !(options.patterns.is_empty()
                                || options.patterns.iter().any(|p| glob::matches(p, &entry.key)))
                        {
                            continue;
                        }
                        // A newer value supersedes a fetch still running for the key
                        // (a map's delta does not: it follows the full state fetched).
                        if !crate::map_import::is_inline_delta(&entry.value) {
                            if let Some((_, fetch)) = state.pending.remove(&entry.key) {
                                fetch.abort();
                            }
                        }
                        state.handle(&nats, &options, &stats, entry, None);
                    }
                    Some(Err(e)) => {
                        log!("import: watch failed ({e}); watching again from the latest values");
                        break;
                    }
                    None => break,
                },
                Some(done) = state.fetching.join_next() => {
                    // A cancelled fetch (superseded) has nothing to say.
                    let Ok((entry, fetched)) = done else { continue };
                    if state.pending.get(&entry.key).is_none_or(|(revision, _)| *revision != entry.revision) {
                        continue;
                    }
                    state.pending.remove(&entry.key);
                    match fetched {
                        Ok(bytes) => state.handle(&nats, &options, &stats, entry, Some(bytes)),
                        Err(why) => state.refuse(&stats, &entry, &why),
                    }
                }
            }
        }
        // The new watch delivers every key's latest value again.
        state.fetching.abort_all();
        state.pending.clear();
        stats.rewatches.fetch_add(1, Relaxed);
        tokio::time::sleep(backoff.next()).await;
    }
}

/// The importer's state across watches.
struct State {
    /// The verifier's memory changed since the state file was written.
    dirty: bool,
    locals: HashMap<String, Local>,
    maps: crate::map_import::Mirrors,
    verifier: Verifier,
    /// Keys whose snapshot is being fetched: the entry's revision and the task.
    pending: HashMap<String, (u64, AbortHandle)>,
    fetching: JoinSet<Fetched>,
    permits: Arc<Semaphore>,
}

impl State {
    /// Checks and publishes one entry; `fetched`: its object-store snapshot,
    /// once fetched. An entry that needs one starts its fetch.
    fn handle(&mut self, nats: &Nats, options: &ImportOptions, stats: &Stats, entry: Entry, fetched: Option<Vec<u8>>) {
        let local = format!("{}{}", options.prefix, entry.key);
        match receive(&entry, &local, &mut self.locals, &mut self.maps, &mut self.verifier, options, fetched) {
            Ok(Received::Published) => {
                self.dirty = true;
                stats.imported.fetch_add(1, Relaxed);
                stats.objects.store(self.locals.len() as u64, Relaxed);
                // From the server's timestamp of the write (clock skew
                // between the hosts adds to it).
                let written = entry.created.unix_timestamp_nanos();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let lag = i128::try_from(now.as_nanos()).unwrap_or(i128::MAX).saturating_sub(written);
                stats.record_lag(std::time::Duration::from_nanos(u64::try_from(lag).unwrap_or(0)));
            }
            Ok(Received::Duplicate) => {}
            Ok(Received::Fetch { object, len }) => {
                let (nats, permits, key, revision) =
                    (nats.clone(), self.permits.clone(), entry.key.clone(), entry.revision);
                let within = options.limits.fetch_timeout;
                let task = self.fetching.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    // The time limit starts once a slot is free.
                    let fetched = match tokio::time::timeout(within, fetch(&nats, &object, len)).await {
                        Ok(fetched) => fetched,
                        Err(_) => Err(format!("object {object:?}: not fetched within {within:?}")),
                    };
                    (entry, fetched)
                });
                self.pending.insert(key, (revision, task));
            }
            Err(why) => self.refuse(stats, &entry, &why),
        }
    }

    fn refuse(&self, stats: &Stats, entry: &Entry, why: &str) {
        stats.refuse(why);
        log!("import {}: revision {} refused: {why}", entry.key, entry.revision);
    }
}

/// Checks one entry and publishes it into `local`, or says which snapshot
/// to fetch first (everything that can be checked without it is, so a value
/// that would be refused is not fetched).
fn receive(
    entry: &Entry,
    local: &str,
    locals: &mut HashMap<String, Local>,
    maps: &mut crate::map_import::Mirrors,
    verifier: &mut Verifier,
    options: &ImportOptions,
    fetched: Option<Vec<u8>>,
) -> Result<Received, String> {
    let limits = &options.limits;
    if let Some(c) = entry.key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        // `@` names a lane, which only a local writer makes; exporters send
        // object names only ([A-Za-z0-9._-]).
        return Err(format!("a key with {c:?}: no exporter sends one (object names are [A-Za-z0-9._-])"));
    }
    if locals.get(local).is_some_and(|l| l.revision == entry.revision) {
        return Ok(Received::Duplicate);
    }
    let env = Envelope::decode(&entry.value).map_err(|e| e.to_string())?;
    if env.rkyv_format != shmstate::schema::fp::RKYV_FORMAT {
        return Err(format!(
            "rkyv format {:#x}, this build uses {:#x} (another rkyv version or features)",
            env.rkyv_format,
            shmstate::schema::fp::RKYV_FORMAT
        ));
    }
    if crate::maps::is_map_root(env.fingerprint) {
        return crate::map_import::receive(entry, local, &env, fetched, verifier, options, maps, locals.len());
    }
    let layouts = layouts_of(&env)?;
    let fingerprints: Vec<u64> = layouts.iter().map(SchemaDoc::fingerprint).collect();
    // Another set of layouts: the source's writer rolled to another type
    // with lanes. The local writer is opened again with the new set (as a
    // local writer redeployed with other lanes), which keeps every layout
    // still published and retires the others once unread. A change that
    // keeps no layout is a type change without lanes: refused, as a local
    // writer of another type is.
    let relayout = match locals.get(local) {
        Some(l) if l.writer.fingerprints() != fingerprints => {
            let held = l.writer.fingerprints();
            if !fingerprints.iter().any(|fp| held.contains(fp)) {
                return Err(format!(
                    "fingerprint {:#018x}, the local object {local:?} holds {:#018x} (the source's type changed \
                     without a lane of the old type: remove the local object to import the new type)",
                    env.fingerprint, held[0]
                ));
            }
            true
        }
        _ => false,
    };
    if env.len > limits.max_value_bytes {
        return Err(format!("a snapshot of {} bytes, above --max-value-bytes {}", env.len, limits.max_value_bytes));
    }
    let held: u64 = locals.values().map(|l| l.shm_bytes).sum();
    let objects: usize = locals.values().map(|l| l.writer.fingerprints().len()).sum();
    let more = layouts.len().saturating_sub(locals.get(local).map_or(0, |l| l.writer.fingerprints().len()));
    // A publish may add a slot of the snapshot's size to what the object holds.
    if held.saturating_add(env.len) > limits.max_shm_bytes {
        return Err(format!(
            "the importer's objects hold {held} bytes of shared memory; this snapshot of {} bytes could pass \
             --max-shm-bytes {}",
            env.len, limits.max_shm_bytes
        ));
    }
    if more > 0 && objects + more > limits.max_objects {
        return Err(format!(
            "the importer has {objects} local objects (lanes counted), --max-objects {}: not creating another \
             ({more} more layouts)",
            limits.max_objects
        ));
    }
    // The decoder needs no alignment (it reads bytes; offsets are checked
    // against the buffer's start) and `publish_bytes` copies into an aligned slot.
    let bytes: &[u8] = match (&env.body, &fetched) {
        (Body::Inline(bytes), _) => bytes,
        (Body::Object(_), Some(fetched)) => fetched,
        (Body::Object(name), None) => return Ok(Received::Fetch { object: name.to_string(), len: env.len }),
    };
    // Signature, digest, generation order (bridge/src/verify.rs).
    let admitted = match verifier.check(&entry.key, &entry.value, &env, bytes)? {
        Verdict::Publish(admitted) => admitted,
        Verdict::Duplicate => return Ok(Received::Duplicate),
    };
    let snapshots = env.split(bytes).map_err(|e| e.to_string())?;
    if relayout {
        // Our own writer lets go first: the new one takes the objects over.
        let old = locals.remove(local).expect("checked above");
        drop(old.writer);
        let (writer, _) = open_local(local, &layouts, options.into_local_objects)?;
        log!("import {}: the source's layouts are now {}", entry.key, hex_list(&fingerprints));
        locals.insert(local.to_string(), Local { writer, revision: old.revision, shm_bytes: 0, created: old.created });
    }
    let l = match locals.entry(local.to_string()) {
        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            let (writer, created) = open_local(local, &layouts, options.into_local_objects)?;
            log!(
                "import {}: publishing into {} local object {local:?}",
                entry.key,
                if created { "new" } else { "the mirrored" }
            );
            v.insert(Local { writer, revision: 0, shm_bytes: 0, created })
        }
    };
    l.writer.set_origin(env.host, Generation::new(env.generation));
    // `publish_lanes` checks every layout's bytes against its schema
    // (`dynamic::validate`) before anything becomes current: the only
    // validation on this path (the snapshot may be large).
    if let Err(e) = l.writer.publish_lanes(&snapshots) {
        // An object created for this value and never published would be
        // left without an origin: a later importer would take it for a
        // local program's. Remove it.
        if l.created && l.revision == 0 {
            locals.remove(local);
            let _ = shmstate::remove(local);
        }
        return Err(match e {
            shmstate::PublishError::Invalid { reason, .. } => format!("the snapshot does not decode: {reason}"),
            e => format!("publish: {e}"),
        });
    }
    l.revision = entry.revision;
    l.shm_bytes =
        shm_bytes_of(local) + fingerprints.iter().map(|fp| shm_bytes_of(&format!("{local}@{fp:016x}"))).sum::<u64>();
    verifier.record(admitted);
    Ok(Received::Published)
}

/// The envelope's layouts, the first one first: each schema decoded and
/// matching its fingerprint, no layout twice.
fn layouts_of(env: &Envelope<'_>) -> Result<Vec<SchemaDoc>, String> {
    let all = std::iter::once((env.fingerprint, env.schema)).chain(env.lanes.iter().map(|l| (l.fingerprint, l.schema)));
    let mut layouts: Vec<SchemaDoc> = Vec::with_capacity(1 + env.lanes.len());
    for (i, (fingerprint, bytes)) in all.enumerate() {
        let what = if i == 0 { "schema".to_string() } else { format!("lane {i}'s schema") };
        let schema = SchemaDoc::decode(bytes).map_err(|e| format!("{what}: {e}"))?;
        if schema.fingerprint() != fingerprint {
            return Err(format!(
                "fingerprint {fingerprint:#018x} does not match its {what}'s {:#018x}",
                schema.fingerprint()
            ));
        }
        if layouts.iter().any(|l| l.fingerprint() == fingerprint) {
            return Err(format!("the layout {fingerprint:#018x} twice"));
        }
        layouts.push(schema);
    }
    Ok(layouts)
}

fn hex_list(fps: &[u64]) -> String {
    fps.iter().map(|fp| format!("{fp:#018x}")).collect::<Vec<_>>().join(", ")
}

/// Opens the local object `local` for a key: creates it, or opens an
/// existing one only when it is a mirror (it has an origin: some importer
/// published into it), or when `into_local_objects`. Whether it was created.
fn open_local(local: &str, layouts: &[SchemaDoc], into_local_objects: bool) -> Result<(RawLaneWriter, bool), String> {
    let busy = |e: OpenError| match e {
        OpenError::WriterBusy { .. } => format!("a local writer owns {local:?}: refusing to import over it"),
        e => format!("cannot open the local object: {e}"),
    };
    match RawWriter::options().create_raw_lanes(local, layouts) {
        Ok(writer) => return Ok((writer, true)),
        Err(OpenError::AlreadyExists { .. }) => {}
        Err(e) => return Err(busy(e)),
    }
    if !into_local_objects {
        match shmstate::inspect(local) {
            Ok(info) if info.writer_alive => return Err(busy(OpenError::WriterBusy { name: local.into() })),
            Ok(info) if info.origin.is_none() => {
                return Err(format!(
                    "{local:?} is a local object, not a mirror (no origin): refusing to import into it \
                     (--into-local-objects allows it)"
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("cannot inspect the local object: {e}")),
        }
    }
    RawWriter::options().open_or_create_raw_lanes(local, layouts).map(|w| (w, false)).map_err(busy)
}

/// Reads a large snapshot of `len` bytes (already checked against the
/// limit) from the object store: its size in the store's info must be `len`
/// before a byte is read, and the read stops after `len + 1` bytes whatever
/// the chunks hold, so a lying envelope or object costs at most `len`.
async fn fetch(nats: &Nats, name: &str, len: u64) -> Result<Vec<u8>, String> {
    let object = nats.objects.get(name).await.map_err(|e| format!("object {name:?}: {e}"))?;
    let size = object.info().size as u64;
    if size != len {
        return Err(format!("object {name:?} has {size} bytes, its envelope says {len}"));
    }
    // Nothing reserved from a declared length beyond one chunk's worth: the
    // buffer grows with the bytes that actually arrive.
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(1 << 20)).unwrap_or(0));
    object.take(len + 1).read_to_end(&mut bytes).await.map_err(|e| format!("object {name:?}: {e}"))?;
    if bytes.len() as u64 != len {
        return Err(format!("object {name:?} has {} bytes, its envelope says {len}", bytes.len()));
    }
    Ok(bytes)
}
