//! Export of a map object (docs/MAP.md, "Across hosts"): each new generation
//! goes on the map's key as a delta (the entries changed since the
//! generation shipped before, found with `changes_since`, so its size is
//! the change, not the map), and every `FULL_EVERY` generations (and first)
//! as a full state, from which an importer that missed a delta or starts
//! anew re-syncs. Both are map bodies (`map_body.rs`) in an ordinary
//! envelope, so the digest, seal, object store and size limits apply as to
//! any snapshot.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use shmstate::map::RawMapReader;
use shmstate::{Generation, ReadError, WaitError};
use tokio::sync::watch;

use crate::export::Snapshot;
use crate::log;
use crate::map_body::{Entry, Kind, MapBody};

/// Deltas between two full states.
pub(crate) const FULL_EVERY: u64 = 32;

/// Reads every new generation of the map `name` (root object incarnation
/// `incarnation`) into `tx` as a map body, until the receiver is gone or
/// the map must be opened again (replaced, or a read failed).
///
/// A delta's base must be what the importers hold: the generation of the
/// last body the exporter took. A body still in the channel when the next
/// generation comes is retracted, and the next delta is from the one before.
pub(crate) fn follow_map(name: &str, incarnation: u64, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
    let pause = Duration::from_millis(250);
    // Three readers: `base` holds the generation of the last body taken,
    // `sent` the one of the last body sent (maybe not taken), `next` reads.
    let open = || RawMapReader::open(name);
    let (mut base, mut sent, mut next) = match (open(), open(), open()) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            log!("export {name}: cannot open the map ({e}); trying again");
            std::thread::sleep(pause);
            return;
        }
    };
    let schema = Arc::new(base.schema().encode());
    let key_kind = base.key_kind().name();
    let fingerprint = shmstate::schema::fingerprint_of::<shmstate::map::MapRoot>();
    let mut last = Generation::NONE;
    let mut since_full = 0u64;
    let mut have_sent = false;
    while !tx.is_closed() {
        let newer = match next.read() {
            Ok(snap) => snap.generation(),
            Err(ReadError::Replaced { .. }) => return,
            Err(e) => {
                log!("export {name}: map read failed ({e})");
                std::thread::sleep(pause);
                return;
            }
        };
        if newer <= last {
            next.release();
            match next.wait_newer(last, pause) {
                Ok(_) | Err(WaitError::Timeout { .. }) => {}
                Err(WaitError::WriterDead { .. }) => std::thread::sleep(pause),
                Err(_) => return,
            }
            continue;
        }
        if have_sent {
            let mut taken = false;
            tx.send_if_modified(|current| {
                taken = current.as_ref().is_none_or(|s| s.taken.load(Relaxed));
                if !taken {
                    *current = None;
                }
                false
            });
            if taken {
                std::mem::swap(&mut base, &mut sent);
            } else {
                since_full = since_full.saturating_sub(1);
            }
        }
        match body(&base, &next, &key_kind, &mut since_full) {
            Ok(bytes) => {
                last = newer;
                let snap = Snapshot {
                    generation: newer.get(),
                    incarnation,
                    digest: crate::verify::digest(&bytes),
                    fingerprint,
                    schema: schema.clone(),
                    bytes,
                    lanes: Vec::new(),
                    taken: Default::default(),
                };
                let _ = tx.send(Some(Arc::new(snap)));
                std::mem::swap(&mut sent, &mut next);
                have_sent = true;
            }
            Err(e) => {
                log!("export {name}: map read failed ({e})");
                std::thread::sleep(pause);
                return;
            }
        }
    }
}

/// The body of `next`'s pinned generation: a delta from `base`'s pinned
/// generation, or a full state (none pinned, or `FULL_EVERY` deltas since
/// the last full state).
fn body(base: &RawMapReader, next: &RawMapReader, key_kind: &str, since_full: &mut u64) -> Result<Vec<u8>, ReadError> {
    let newer = next.pinned().expect("read just before");
    let older = base.pinned().filter(|_| *since_full < FULL_EVERY);
    let (kind, entries) = match &older {
        Some(older) => {
            let mut entries = Vec::new();
            for c in newer.changes_since(older) {
                let c = c?;
                entries.push((c.key, c.new));
            }
            (Kind::Delta { base: older.generation().get() }, entries)
        }
        None => {
            let mut entries = Vec::with_capacity(newer.len() as usize);
            let mut all = newer.iter();
            while let Some(e) = all.next_bytes() {
                let (k, v) = e?;
                entries.push((k.to_vec(), Some(v)));
            }
            (Kind::Full, entries)
        }
    };
    *since_full = if older.is_some() { *since_full + 1 } else { 0 };
    let entries = entries.iter().map(|(key, value)| Entry { key, value: *value }).collect();
    let body = MapBody { kind, key_kind, entries };
    body.encode().map_err(|e| ReadError::Corrupt { name: base.name().into(), what: e.to_string() })
}
