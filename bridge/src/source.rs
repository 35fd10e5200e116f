//! The exporter's side of a source object: every new generation of it, in
//! every layout it is published in (its lanes, docs/DEPLOYING.md "Lanes"),
//! read together into one [`Snapshot`].
//!
//! A writer with lanes publishes each value under one generation, its own
//! layout first, then each lane; so a generation is read from every layout
//! that is at the highest one. A layout that was in step with the others
//! and lags is being published: it is waited for (briefly). A layout that
//! stays behind is no longer published (a retiring one, which its writer
//! removes once unread) and is left out, so importers retire it too.

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

/// How often the lanes on the machine are listed again.
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
}

/// Reads every new generation of `name` into `tx` (a watch channel: the
/// receiver sees the latest only) until the receiver is gone. Reopens the
/// name when the object is removed or replaced.
pub(crate) fn follow(name: &str, tx: &watch::Sender<Option<Arc<Snapshot>>>) {
    let pause = Duration::from_millis(250);
    let mut said_missing = false;
    while !tx.is_closed() {
        let plain = match Layout::open(name) {
            Ok(plain) => plain,
            Err((missing, e)) => {
                if !missing || !said_missing {
                    log!("export {name}: cannot open it ({e}); waiting");
                    said_missing = true;
                }
                std::thread::sleep(pause);
                continue;
            }
        };
        said_missing = false;
        let mut source = Source { name, layouts: vec![plain], listed: None, in_step: HashSet::new() };
        let mut last = Generation::NONE;
        while !tx.is_closed() {
            source.relist();
            match source.read(last) {
                Ok(Some(snap)) => {
                    last = Generation::new(snap.generation);
                    let _ = tx.send(Some(Arc::new(snap)));
                }
                Ok(None) => {}
                Err(Reopen) => break,
            }
            // Wait on a layout at the latest generation (the plain name's
            // when it is published).
            let leader = source.layouts.iter().find(|l| l.reader.generation() >= last).unwrap_or(&source.layouts[0]);
            match leader.reader.wait_newer(last, pause) {
                Ok(_) | Err(WaitError::Timeout { .. }) => {}
                // Not replaced yet: a new writer may take over; keep the last.
                Err(WaitError::WriterDead { .. }) => std::thread::sleep(pause),
                Err(_) => break,
            }
        }
    }
}

/// The plain object must be opened again (removed, replaced, unreadable).
struct Reopen;

struct Source<'a> {
    name: &'a str,
    /// The plain name first, then its lanes.
    layouts: Vec<Layout>,
    listed: Option<Instant>,
    /// Fingerprints of the layouts in the last snapshot sent.
    in_step: HashSet<u64>,
}

impl Source<'_> {
    /// At most every `RELIST`: opens the lanes that appeared, drops those
    /// that are gone.
    fn relist(&mut self) {
        if self.listed.is_some_and(|at| at.elapsed() < RELIST) {
            return;
        }
        self.listed = Some(Instant::now());
        let Ok(info) = shmstate::inspect(self.name) else { return };
        let lanes: Vec<String> = info.lanes.into_iter().map(|l| l.name).collect();
        self.layouts.retain(|l| !l.reader.name().contains('@') || lanes.iter().any(|n| n == l.reader.name()));
        for lane in lanes {
            if self.layouts.iter().any(|l| l.reader.name() == lane) {
                continue;
            }
            match Layout::open(&lane) {
                Ok(layout) => self.layouts.push(layout),
                Err((_, e)) => log!("export {}: cannot open its lane {lane} ({e}); not exported", self.name),
            }
        }
    }

    /// The layouts at the highest generation, if it is above `last`. Lanes
    /// that cannot be read are dropped (listed again later).
    fn read(&mut self, last: Generation) -> Result<Option<Snapshot>, Reopen> {
        let mut gone = Vec::new();
        let snap = self.read_layouts(last, &mut gone);
        for i in gone.into_iter().rev() {
            self.layouts.remove(i);
        }
        snap
    }

    fn read_layouts(&mut self, last: Generation, gone: &mut Vec<usize>) -> Result<Option<Snapshot>, Reopen> {
        let latest = self.layouts.iter().map(|l| l.reader.generation()).max().unwrap_or(Generation::NONE);
        if latest <= last {
            return Ok(None);
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
                Err(ReadError::Replaced { .. }) if i == 0 => return Err(Reopen),
                Err(ReadError::Replaced { .. }) => gone.push(i),
                Err(e) if i == 0 => {
                    log!("export {}: read failed ({e})", self.name);
                    std::thread::sleep(Duration::from_millis(250));
                    return Err(Reopen);
                }
                Err(e) => {
                    log!("export {}: read of {} failed ({e})", self.name, layout.reader.name());
                    gone.push(i);
                }
            }
        }
        let Some(top) = read.iter().map(|(g, ..)| *g).max() else { return Ok(None) };
        if top <= last {
            return Ok(None);
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
            log!(
                "export {}: {} layouts, at most {} are sent; the last are left out",
                self.name,
                lanes.len() + 1,
                crate::envelope::MAX_LANES + 1
            );
            let cut: u64 = lanes.drain(crate::envelope::MAX_LANES..).map(|l| l.len).sum();
            bytes.truncate(bytes.len() - cut as usize);
        }
        self.in_step = std::iter::once(first.reader.fingerprint()).chain(lanes.iter().map(|l| l.fingerprint)).collect();
        Ok(Some(Snapshot {
            generation: top.get(),
            incarnation: first.reader.incarnation(),
            digest: crate::verify::digest(&bytes),
            fingerprint: first.reader.fingerprint(),
            schema: first.schema.clone(),
            bytes,
            lanes,
        }))
    }
}
