//! The untyped writer of several layouts at once: [`RawLaneWriter`]
//! publishes one already-archived snapshot per layout under one generation,
//! the lanes a [`Writer<T>`] with `WriterOptions::lane` publishes
//! (docs/DEPLOYING.md "Lanes"), for programs that receive the bytes of every
//! layout instead of a `T` (`shmstate-bridge` mirroring a writer with lanes).
//! The objects are chosen and retired as for the typed writer
//! (`write/lanes.rs`).
//!
//! [`Writer<T>`]: crate::Writer

use crate::archive::SlotWriter;
use crate::error::{OpenError, PublishError};
use crate::schema::SchemaDoc;
use crate::write::lanes::LaneSet;
use crate::write::options::WriterOptions;
use crate::write::raw_writer::RawWriter;
use crate::write::WriterStats;
use crate::Generation;

impl WriterOptions<RawWriter> {
    /// Creates `name` for the layouts `layouts` describe (the first is the
    /// writer's own, as a `Writer<T>`'s `T`; the others its lanes);
    /// `AlreadyExists` if the plain name exists. Lanes are created or taken
    /// over, as by a typed writer.
    pub fn create_raw_lanes(self, name: &str, layouts: &[SchemaDoc]) -> Result<RawLaneWriter, OpenError> {
        RawLaneWriter::open_with(name, self, layouts, false)
    }

    /// Creates the objects, or takes them over, as
    /// [`Writer::open_or_create`](crate::Writer) with one lane per layout
    /// after the first does: the plain name keeps the layout it holds if it
    /// is among `layouts`; a layout on the machine that is not is retired
    /// once unread. With one layout and no lanes on the machine, the same as
    /// [`open_or_create_raw`](Self::open_or_create_raw).
    pub fn open_or_create_raw_lanes(self, name: &str, layouts: &[SchemaDoc]) -> Result<RawLaneWriter, OpenError> {
        RawLaneWriter::open_with(name, self, layouts, true)
    }
}

/// The writer of an object and its lanes without their Rust types: each
/// publish gives the archived bytes of every layout, which are all checked
/// ([`dynamic::validate`](crate::dynamic::validate)) before any is published.
/// Open one with `RawWriter::options().open_or_create_raw_lanes(name, &layouts)`.
pub struct RawLaneWriter {
    /// The object of the first layout: the plain name, or its lane.
    own: RawWriter,
    lanes: LaneSet<RawWriter>,
    /// Every layout, the own one first, in the order `publish_lanes` takes.
    layouts: Vec<SchemaDoc>,
    /// What `set_origin` recorded, for objects opened later (the plain name
    /// taken back by the own layout).
    origin: Option<(String, Generation)>,
}

impl std::fmt::Debug for RawLaneWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawLaneWriter").field("own", &self.own).field("layouts", &self.fingerprints()).finish()
    }
}

impl RawLaneWriter {
    fn open_with(
        name: &str,
        opts: WriterOptions<RawWriter>,
        layouts: &[SchemaDoc],
        take_over: bool,
    ) -> Result<Self, OpenError> {
        let Some((own, lanes)) = layouts.split_first() else {
            return Err(OpenError::InvalidOption { name: name.into(), what: "no layout to publish".into() });
        };
        let (own, lanes) = LaneSet::open(name, opts, own.clone(), lanes.to_vec(), take_over)?;
        Ok(RawLaneWriter { own, lanes, layouts: layouts.to_vec(), origin: None })
    }

    /// The object's (plain) name.
    pub fn name(&self) -> &str {
        self.lanes.name()
    }

    /// The fingerprints of the layouts, the own one first, in the order
    /// [`publish_lanes`](Self::publish_lanes) takes the snapshots.
    pub fn fingerprints(&self) -> Vec<u64> {
        self.layouts.iter().map(SchemaDoc::fingerprint).collect()
    }

    /// The generation the next publish will get.
    pub fn next_generation(&self) -> Generation {
        self.own.next_generation()
    }

    /// What the own layout's object has done ([`RawWriter::stats`]).
    pub fn stats(&self) -> WriterStats {
        self.own.stats()
    }

    /// [`RawWriter::set_origin`] on every layout's object.
    pub fn set_origin(&mut self, host: &str, generation: Generation) {
        self.own.set_origin(host, generation);
        for lane in self.lanes.lane_writers() {
            lane.set_origin(host, generation);
        }
        self.origin = Some((host.to_string(), generation));
    }

    /// Publishes `snapshots`, one per layout in the order of
    /// [`fingerprints`](Self::fingerprints), as one generation: the own
    /// layout first, then each lane (as `Writer::publish` does). Every
    /// snapshot is validated against its layout's schema first: if one is
    /// not a valid archive (or the count is wrong), nothing is published and
    /// the error is [`PublishError::Invalid`]. An error in a lane is returned
    /// after the other lanes were published.
    pub fn publish_lanes(&mut self, snapshots: &[&[u8]]) -> Result<Generation, PublishError> {
        let invalid = |reason: String| PublishError::Invalid { name: self.name().to_string(), reason };
        if snapshots.len() != self.layouts.len() {
            return Err(invalid(format!("{} snapshots for {} layouts", snapshots.len(), self.layouts.len())));
        }
        for (schema, bytes) in self.layouts.iter().zip(snapshots) {
            crate::dynamic::validate(schema, bytes, crate::dynamic::Limits::default())
                .map_err(|e| invalid(format!("layout {} ({:#018x}): {e}", schema.root().name, schema.fingerprint())))?;
        }
        let g = self.own.copy_bytes(snapshots[0])?;
        let layouts = &self.layouts;
        let mut fill = |fp: u64, mut out: SlotWriter| {
            let i = layouts.iter().position(|s| s.fingerprint() == fp).ok_or(format!("no layout {fp:#018x}"))?;
            rkyv::ser::Writer::<rkyv::rancor::Panic>::write(&mut out, snapshots[i])
                .map_err(|never| -> String { match never {} })?;
            Ok(out)
        };
        let in_lanes = self.lanes.publish(&mut fill, g, self.own.last_publish_ns());
        self.lanes.retire_unread(&mut fill, g, &mut self.own);
        // The own object may be new (the plain name taken back): it records
        // the origin too.
        if let Some((host, generation)) = &self.origin {
            self.own.set_origin(host, *generation);
        }
        in_lanes.map(|()| g)
    }
}
