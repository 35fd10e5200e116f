//! The exporter's side of a source object: every new generation of it, in
//! every layout it is published in (its lanes, docs/DEPLOYING.md "Lanes"),
//! read together into one [`Snapshot`].
//!
//! A writer with lanes publishes each value under one generation, its own
//! layout first, then each lane; so a generation is read from every layout
//! that is at the highest one. A layout that was in step with the others
//! and lags is being published: it is waited for (briefly). A layout that
//! stays behind is no longer published (a retiring one, which its writer
//! removes once unread) and is left out, so importers retire it too; its
//! reader is closed, so that the exporter does not count as a reader that
//! keeps it from retiring. It is opened again if it is published again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmstate::{Generation, OpenError, RawReader, ReadError, WaitError};
use tokio::sync::watch;

use crate::export::{LaneSnapshot, Snapshot};
use crate::log;

/// How long a layout that was in step may lag before it is left out of a
/// snapshot (a writer publishes its lanes one after the other).
const LAGGING: Duration = Duration::from_millis(20);

/// How often the layouts on the machine are looked at again.
const RELIST: Duration = Duration::from_secs(1);

/// One layout of the source: the plain name or a lane.
struct Layout {
    reader: RawReader,
    schema: Arc<Vec<u8>>,
}

impl Layout {
    /// The layout's object, or why not (and whether it does not exist).
    fn open(name: &str) -> Result<Layout, (bool, String)> {
        let reader = RawReader::open(name, Duration::from_secs(1))
            .map_err(|e| (matches!(e, OpenError::NotFound { .. }), e.to_string()))?;
        let schema = reader.schema().map_err(|e| (false, format!("its schema does not decode ({e})")))?;
        Ok(Layout { reader, schema: Arc::new(schema.encode()) })
    }

    fn is_plain(&self) -> bool {
        !self.reader.name().contains('@')
    }
}

/// Reads every new generation of `name` into `tx` (a watch channel: the
/// receiver sees the latest only) until the receiver is gone. Opens the
/// layouts again when they are removed or replaced.
pub(crate) fn follow(name: &str, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
    let pause = Duration::from_millis(250);
    let mut source =
        Source { name, layouts: Vec::new(), listed: None, in_step: HashSet::new(), said_missing: false, plain: None };
    let mut last = Generation::NONE;
    while !tx.is_closed() {
        if source.relist(last).is_err() {
            // The object was created again: its generations start again.
            source.layouts.clear();
            last = Generation::NONE;
            continue;
        }
        if source.layouts.is_empty() {
            std::thread::sleep(pause);
            source.listed = None;
            continue;
        }
        // A map object: its root record is followed as deltas (map_export.rs).
        if let Some(root) =
            source.layouts.first().filter(|l| l.is_plain() && crate::maps::is_map_root(l.reader.fingerprint()))
        {
            let incarnation = root.reader.incarnation();
            source.layouts.clear();
            crate::map_export::follow_map(name, incarnation, tx);
            source.listed = None;
            last = Generation::NONE;
            continue;
        }
        if let Some(snap) = source.read(last) {
            last = Generation::new(snap.generation);
            let _ = tx.send(Some(Arc::new(snap)));
        }
        // Wait on a layout at the latest generation.
        let Some(leader) = source.layouts.iter().find(|l| l.reader.generation() >= last) else { continue };
        match leader.reader.wait_newer(last, pause) {
            Ok(_) | Err(WaitError::Timeout { .. }) => {}
            // Not replaced yet: a new writer may take over; keep the last.
            Err(WaitError::WriterDead { .. }) => std::thread::sleep(pause),
            // Replaced or removed: look at the names again.
            Err(_) => source.listed = None,
        }
    }
}

/// The plain object was created again (another incarnation, below the
/// generation last sent): its generations start again.
struct Restart;

struct Source<'a> {
    name: &'a str,
    /// The layouts published lately: the plain name first when it is one.
    layouts: Vec<Layout>,
    listed: Option<Instant>,
    /// Fingerprints of the layouts in the last snapshot sent.
    in_step: HashSet<u64>,
    said_missing: bool,
    /// The plain object's incarnation when last looked at.
    plain: Option<u64>,
}

impl Source<'_> {
    /// At most every `RELIST` (or at once after a replacement): opens the
    /// layouts under the name (the plain object, its lanes) that are not
    /// open and are published at `last` or above, drops those gone.
    fn relist(&mut self, last: Generation) -> Result<(), Restart> {
        if self.listed.is_some_and(|at| at.elapsed() < RELIST) {
            return Ok(());
        }
        self.listed = Some(Instant::now());
        let info = match shmstate::inspect(self.name) {
            Ok(info) => info,
            Err(e) => {
                if !matches!(e, OpenError::NotFound { .. }) || !self.said_missing {
                    log!("export {}: cannot open it ({e}); waiting", self.name);
                    self.said_missing = true;
                }
                self.layouts.retain(|l| !l.is_plain());
                return Ok(());
            }
        };
        self.said_missing = false;
        // Another plain object below what was sent: created again, not a
        // writer's own layout taking the plain name back (which continues
        // the generations).
        let recreated = self.plain.is_some_and(|i| i != info.incarnation) && info.generation < last.get();
        self.plain = Some(info.incarnation);
        if recreated {
            self.listed = None;
            return Err(Restart);
        }
        let lanes: Vec<(String, u64)> =
            info.lanes.iter().map(|l| (l.name.clone(), l.info.as_ref().map_or(u64::MAX, |i| i.generation))).collect();
        let plain = (self.name.to_string(), info.generation);
        // A plain object created again is another object: reopened below.
        self.layouts.retain(|l| {
            if l.is_plain() {
                l.reader.incarnation() == info.incarnation
            } else {
                lanes.iter().any(|(n, _)| n == l.reader.name())
            }
        });
        for (object, generation) in std::iter::once(plain).chain(lanes) {
            if generation < last.get() || self.layouts.iter().any(|l| l.reader.name() == object) {
                continue;
            }
            match Layout::open(&object) {
                Ok(layout) if layout.is_plain() => self.layouts.insert(0, layout),
                Ok(layout) => self.layouts.push(layout),
                Err((_, e)) => log!("export {}: cannot open {object} ({e}); not exported", self.name),
            }
        }
        Ok(())
    }

    /// The layouts at the highest generation, if it is above `last`.
    /// Layouts behind it are closed.
    fn read(&mut self, last: Generation) -> Option<Snapshot> {
        let mut keep = vec![true; self.layouts.len()];
        let snap = self.read_layouts(last, &mut keep);
        let mut keep = keep.into_iter();
        self.layouts.retain(|_| keep.next().unwrap_or(true));
        snap
    }

    fn read_layouts(&mut self, last: Generation, keep: &mut [bool]) -> Option<Snapshot> {
        let latest = self.layouts.iter().map(|l| l.reader.generation()).max().unwrap_or(Generation::NONE);
        if latest <= last {
            return None;
        }
        // Layouts that were in step and are behind: being published now.
        let deadline = Instant::now() + LAGGING;
        for layout in &self.layouts {
            if self.in_step.contains(&layout.reader.fingerprint()) && layout.reader.generation() < latest {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = layout.reader.wait_newer(Generation::new(latest.get() - 1), left);
            }
        }
        let mut read: Vec<(Generation, usize, Vec<u8>)> = Vec::new();
        for (i, layout) in self.layouts.iter_mut().enumerate() {
            match layout.reader.read() {
                Ok((g, bytes)) => read.push((g, i, bytes.to_vec())),
                Err(ReadError::Empty { .. }) => {}
                Err(e) => {
                    if !matches!(e, ReadError::Replaced { .. }) {
                        log!("export {}: read of {} failed ({e})", self.name, layout.reader.name());
                        // Not at once again.
                        std::thread::sleep(Duration::from_millis(250));
                    }
                    keep[i] = false;
                    self.listed = None;
                }
            }
        }
        let top = read.iter().map(|(g, ..)| *g).max()?;
        if top <= last {
            return None;
        }
        for (g, i, _) in &read {
            keep[*i] &= *g == top;
        }
        read.retain(|(g, ..)| *g == top);
        // (`read` is in layout order: the plain name first when it is at `top`.)
        let mut parts = read.into_iter();
        let (_, first, mut bytes) = parts.next().expect("the top generation was read");
        let first = &self.layouts[first];
        let mut lanes = Vec::new();
        for (_, i, lane_bytes) in parts {
            let layout = &self.layouts[i];
            lanes.push(LaneSnapshot {
                fingerprint: layout.reader.fingerprint(),
                schema: layout.schema.clone(),
                len: lane_bytes.len() as u64,
            });
            bytes.extend_from_slice(&lane_bytes);
        }
        if lanes.len() > crate::envelope::MAX_LANES {
            let (name, max) = (self.name, crate::envelope::MAX_LANES + 1);
            log!("export {name}: {} layouts, at most {max} are sent; the last are left out", lanes.len() + 1);
            let cut: u64 = lanes.drain(crate::envelope::MAX_LANES..).map(|l| l.len).sum();
            bytes.truncate(bytes.len() - cut as usize);
        }
        self.in_step = std::iter::once(first.reader.fingerprint()).chain(lanes.iter().map(|l| l.fingerprint)).collect();
        Some(Snapshot {
            generation: top.get(),
            incarnation: first.reader.incarnation(),
            digest: crate::verify::digest(&bytes),
            fingerprint: first.reader.fingerprint(),
            schema: first.schema.clone(),
            bytes,
            lanes,
            taken: Default::default(),
        })
    }
}
