//! Discovery and inspection of objects, for tools (the `shmstate` CLI) and
//! monitoring. Read-only: nothing here pins, writes or takes a lock.

use std::time::Duration;

use crate::error::OpenError;
use crate::object::segment::{DataSegment, PairError, ReaderTable};
use crate::protocol;
use crate::protocol::layout::slot_state;
use crate::protocol::sync::Ordering::{Acquire, Relaxed};
use crate::schema::SchemaDoc;

/// What an object holds and who uses it, as read from its header and tables.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// Object name.
    pub name: String,
    /// The stored type's name (from the schema), if the schema decodes.
    pub type_name: Option<String>,
    /// The stored schema, or why it does not decode.
    pub schema: Result<SchemaDoc, String>,
    /// Type fingerprint.
    pub fingerprint: u64,
    /// Format version of the object.
    pub format_version: u32,
    /// Random id of this incarnation of the object: it changes when the name
    /// is removed and created again.
    pub incarnation: u64,
    /// Size of the data segment (fstat).
    pub size: u64,
    /// The size the writer may grow the segment to (`WriterOptions::max_size`).
    pub max_size: u64,
    /// File mode bits and owner uid of the data segment.
    pub mode: u32,
    /// Owner uid of the data segment.
    pub uid: u32,
    /// Slots in use and the maximum.
    pub slot_count: u32,
    /// Maximum slots.
    pub max_slots: u32,
    /// The latest published generation (0 = none).
    pub generation: u64,
    /// Slot of the latest snapshot, if any.
    pub current_slot: Option<u32>,
    /// Creation and last publish times (ns since the Unix epoch; 0 = never).
    pub created_ns: u64,
    /// Last publish time (ns since the Unix epoch; 0 = never).
    pub last_publish_ns: u64,
    /// For an object mirrored from another host (`RawWriter::set_origin`):
    /// the source host and the source generation of the latest publish.
    pub origin: Option<Origin>,
    /// Whether a live writer holds the object (lock probe).
    pub writer_alive: bool,
    /// Pid recorded by the last writer: its `getpid()` in *its* PID namespace
    /// (diagnostic: stale once it exits; see [`writer_seen`](Self::writer_seen)).
    pub writer_pid: u32,
    /// The live writer as this process's PID namespace sees it (from
    /// `/proc/locks`): its pid here, or that it runs in a namespace this one
    /// cannot see. Differs from `writer_pid` for a writer in a container.
    pub writer_seen: crate::object::WriterSeen,
    /// Counters.
    pub publishes: u64,
    /// Segment growths.
    pub growths: u64,
    /// Pins of dead readers reclaimed by writers.
    pub reclaimed_pins: u64,
    /// Snapshots that failed validation in some reader.
    pub validation_failures: u64,
    /// Reader-table capacity.
    pub reader_capacity: u32,
    /// Reader handles ever opened on the reader table (table pins).
    pub reader_opens: u64,
    /// Readers blocked in a wait right now (`wait_newer`, or the async helper
    /// thread once per pending future); 0 with lock pins (not counted).
    pub waiters: u32,
    /// How readers pin: `"reader table"` or `"locks"` (see `WriterOptions::lock_pins`).
    /// With locks, readers are not listed (they register nowhere); slots show
    /// whether some reader holds them.
    pub pin_mode: &'static str,
    /// Slots.
    pub slots: Vec<SlotInfo>,
    /// Reader entries that are in use (live) or still pin or wait (dead).
    pub readers: Vec<ReaderInfo>,
    /// With shared writers (`WriterOptions::shared`): each live writer
    /// process, by seat; empty for an object with one exclusive writer.
    pub shared_writers: Vec<WriterInfo>,
    /// For a lane (`name@<fingerprint>`): the name it is a lane of.
    pub lane_of: Option<String>,
    /// The other layouts the object carries (its lanes, docs/DEPLOYING.md
    /// "Lanes"), each with its own readers; empty for a lane itself.
    pub lanes: Vec<LaneInfo>,
}

/// One live writer of an object with shared writers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterInfo {
    /// Its seat (the lock byte it holds).
    pub seat: u32,
    /// Its pid as it recorded it (its own PID namespace's), if the writer
    /// table (in the owner-only `.lock` file) could be read.
    pub pid: Option<u32>,
    /// When it opened (ns since the Unix epoch; 0 = unknown).
    pub opened_ns: u64,
    /// Whether it holds the publish lock now (as it last recorded it).
    pub publishing: bool,
}

/// One lane of an object: another layout of its type, published by the same
/// writer into the object `name`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LaneInfo {
    /// The lane's object name, `<name>@<fingerprint>`.
    pub name: String,
    /// The fingerprint of the layout it carries.
    pub fingerprint: u64,
    /// Everything about the lane's object, or why it could not be read.
    pub info: Result<Box<ObjectInfo>, String>,
}

impl ObjectInfo {
    /// Readers whose process is alive.
    pub fn live_readers(&self) -> usize {
        self.readers.iter().filter(|r| r.alive).count()
    }

    /// The slots that readers' pins keep from reuse besides the published
    /// one: older generations some reader still holds (an idle reader's last
    /// read, `Reader::read_releasing` avoids it). Their capacities are the
    /// memory those readers keep.
    pub fn held_old_slots(&self) -> impl Iterator<Item = &SlotInfo> {
        self.slots.iter().filter(|s| !s.current && (!s.pinned_by.is_empty() || s.lock_pinned))
    }

    /// Bytes of the slots in [`held_old_slots`](Self::held_old_slots).
    pub fn held_old_bytes(&self) -> u64 {
        self.held_old_slots().map(|s| s.capacity).sum()
    }
}

/// Where a mirrored object's snapshots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Origin {
    /// Source host name (at most 24 bytes: longer names are cut).
    pub host: String,
    /// The source object's generation of the latest publish here.
    pub generation: u64,
}

/// One slot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SlotInfo {
    /// Slot index.
    pub index: u32,
    /// `"empty"`, `"writing"`, `"sealed"` or `"invalid"`.
    pub state: &'static str,
    /// Generation stored.
    pub generation: u64,
    /// Payload offset, capacity and length.
    pub offset: u64,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Serialized length in bytes.
    pub len: u64,
    /// When its snapshot was sealed (ns since the Unix epoch; 0 = never).
    pub published_ns: u64,
    /// Whether it is the published slot.
    pub current: bool,
    /// Reader entries pinning it.
    pub pinned_by: Vec<u32>,
    /// With table pins: the slot's pin count as readers keep it
    /// (docs/PROTOCOL.md, "Pin counts"), if it belongs to the slot's
    /// generation. It can exceed `pinned_by` for a moment (a reader between
    /// counting and storing its pin) or until the writer's next full scan (a
    /// reader that died holding it).
    pub pin_count: Option<u32>,
    /// With lock pins: whether at least one reader holds this slot.
    pub lock_pinned: bool,
    /// With lock pins: whether someone write-locks it. Writers of this version
    /// never do (they probe a slot's byte before filling it); earlier writers
    /// held the slot they filled, never the published one (they unlocked a
    /// slot before publishing it).
    pub write_locked: bool,
}

/// One reader entry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReaderInfo {
    /// Entry index.
    pub index: u32,
    /// Whether its owner is alive (OFD lock held).
    pub alive: bool,
    /// Pid recorded at open (diagnostic).
    pub pid: u32,
    /// Generation and slot pinned, if any.
    pub pinned: Option<(u64, u32)>,
    /// Open time (ns since the Unix epoch).
    pub opened_ns: u64,
    /// Waits of its owner counted in [`ObjectInfo::waiters`] (its blocking
    /// waits and pending futures); on a dead entry, counts a writer takes
    /// back at its next reclaim (docs/PROTOCOL.md, "Wake-ups").
    pub waiting: u32,
}

/// Reads everything about `name` without changing anything.
pub fn inspect(name: &str) -> Result<ObjectInfo, OpenError> {
    inspect_with(name, || crate::object::name::lanes_in_shm(name))
}

/// [`inspect`], with the lanes of `name` (names and fingerprints) from `lanes`.
fn inspect_with(name: &str, lanes: impl FnOnce() -> Vec<(String, u64)>) -> Result<ObjectInfo, OpenError> {
    crate::object::name::check(name)?;
    let mut attempt = 0;
    let (seg, geo, readers_table) = loop {
        let (seg, geo) = DataSegment::open(name, false, Duration::ZERO)?;
        if geo.pin_mode == crate::protocol::layout::pin_mode::LOCKS {
            break (seg, geo, None);
        }
        // As `RawReader::open`: describe the readers of this incarnation only.
        match ReaderTable::open_paired(name, geo.incarnation, false) {
            Ok(t) => break (seg, geo, Some(t)),
            Err(e) if e.retry() && attempt < 8 => attempt += 1,
            // A missing or unreadable table: show the object without readers.
            Err(PairError::Open(_) | PairError::Missing) => break (seg, geo, None),
            Err(e) => return Err(e.into_open_error(name)),
        }
    };
    let h = seg.header();
    let schema = SchemaDoc::decode(&seg.schema_bytes(&geo)).map_err(|e| e.to_string());
    let (mode, uid) =
        seg.obj.mode_and_owner().map_err(|errno| OpenError::Os { name: name.into(), op: "fstat", errno })?;
    let current = h.current.load(Acquire);
    let current_slot = (current != 0).then(|| protocol::slot_of(current));
    let lock_pins = geo.pin_mode == crate::protocol::layout::pin_mode::LOCKS;
    let mut readers = Vec::new();
    let (mut reader_capacity, mut validation_failures, mut reader_opens, mut waiters) = (geo.max_readers, 0, 0, 0);
    if lock_pins {
        // Readers hold seats (locks), nothing else: no pid, no pin word.
        readers.extend((0..geo.max_readers).filter(|&i| seg.seat_taken(i)).map(|i| ReaderInfo {
            index: i,
            alive: true,
            pid: 0,
            pinned: None,
            opened_ns: 0,
            waiting: 0,
        }));
    }
    if let Some(t) = &readers_table {
        let region = t.region();
        reader_capacity = t.capacity;
        validation_failures = region.readers_header().map_or(0, |rh| rh.validation_failures.load(Relaxed));
        reader_opens = region.readers_header().map_or(0, |rh| rh.opens.load(Relaxed));
        // Relaxed: a diagnostic count, ordered with nothing.
        waiters = region.readers_header().map_or(0, |rh| rh.waiters.load(Relaxed));
        for i in 0..t.scan_len() {
            let Some(e) = region.reader(i) else { break };
            let alive = t.entry_alive(i).unwrap_or(false);
            let pin = e.pin.load(Relaxed);
            let waiting = e.waiting.load(Relaxed);
            if alive || pin != 0 || waiting != 0 {
                readers.push(ReaderInfo {
                    index: i,
                    alive,
                    pid: e.pid.load(Relaxed),
                    pinned: (pin != 0).then(|| (protocol::generation_of(pin), protocol::slot_of(pin))),
                    opened_ns: e.opened_ns.load(Relaxed),
                    waiting,
                });
            }
        }
    }
    let slot_count = h.slot_count.load(Relaxed).min(geo.max_slots);
    let region = seg.region();
    let slots = (0..slot_count)
        .filter_map(|k| region.slot(k).map(|e| (k, e)))
        .map(|(k, e)| SlotInfo {
            index: k,
            state: match e.state.load(Relaxed) {
                slot_state::EMPTY => "empty",
                slot_state::WRITING => "writing",
                slot_state::SEALED => "sealed",
                _ => "invalid",
            },
            generation: e.gen.load(Relaxed),
            offset: e.offset.load(Relaxed),
            capacity: e.capacity.load(Relaxed),
            len: e.len.load(Relaxed),
            published_ns: e.published_ns.load(Relaxed),
            current: current_slot == Some(k),
            pinned_by: readers.iter().filter(|r| r.pinned.map(|p| p.1) == Some(k)).map(|r| r.index).collect(),
            pin_count: readers_table.as_ref().and_then(|t| t.pin_count(k)).and_then(|c| {
                // Relaxed: a diagnostic, ordered with nothing.
                protocol::count_for(c.load(Relaxed), e.gen.load(Relaxed))
            }),
            lock_pinned: lock_pins && seg.slot_lock_pinned(k),
            write_locked: lock_pins && seg.slot_write_locked(k),
        })
        .collect();
    let writer_alive = seg.writer_alive().unwrap_or(false);
    let shared_writers = shared_writers(name, &seg);
    Ok(ObjectInfo {
        name: name.to_string(),
        type_name: schema.as_ref().ok().map(|d| d.root().name.clone()),
        schema,
        fingerprint: geo.fingerprint,
        format_version: h.format_version.load(Relaxed),
        incarnation: geo.incarnation,
        size: seg.obj.size().unwrap_or(0),
        max_size: h.max_segment_len.load(Relaxed),
        mode,
        uid,
        slot_count,
        max_slots: geo.max_slots,
        generation: protocol::generation_of(current),
        current_slot,
        created_ns: h.created_ns.load(Relaxed),
        last_publish_ns: h.last_publish_ns.load(Relaxed),
        origin: origin(h),
        writer_alive,
        writer_pid: h.writer_pid.load(Relaxed),
        writer_seen: crate::object::holder::writer_seen(name, writer_alive),
        publishes: h.publishes.load(Relaxed),
        growths: h.growths.load(Relaxed),
        reclaimed_pins: h.reclaimed_pins.load(Relaxed),
        validation_failures,
        reader_capacity,
        reader_opens,
        waiters,
        pin_mode: if lock_pins { "locks" } else { "reader table" },
        slots,
        readers,
        shared_writers,
        lane_of: crate::object::name::split_lane(name).map(|(base, _)| base.to_string()),
        lanes: if crate::object::name::split_lane(name).is_some() { Vec::new() } else { lanes_of(lanes()) },
    })
}

/// The live shared writers of `name`: the seats held in `seg`, with what the
/// writer table in the `.lock` file says of each (when this process may read it).
fn shared_writers(name: &str, seg: &DataSegment) -> Vec<WriterInfo> {
    let seats = seg.shared_writer_seats();
    if seats.is_empty() {
        return Vec::new();
    }
    let path = format!("/dev/shm{}", crate::object::name::lock(name));
    let table = std::fs::read(path).ok().and_then(|b| crate::write::shared::parse_writer_table(&b)).unwrap_or_default();
    seats
        .into_iter()
        .map(|seat| {
            let entry = table.entries.iter().find(|e| e.0 == seat);
            WriterInfo {
                seat,
                pid: entry.map(|e| e.1).filter(|&p| p != 0),
                opened_ns: entry.map_or(0, |e| e.2),
                publishing: table.holder == Some(seat),
            }
        })
        .collect()
}

/// What the `lanes` of an object hold.
fn lanes_of(lanes: Vec<(String, u64)>) -> Vec<LaneInfo> {
    lanes
        .into_iter()
        .map(|(lane, fingerprint)| {
            let info = inspect(&lane).map(Box::new).map_err(|e| e.to_string());
            LaneInfo { name: lane, fingerprint, info }
        })
        .collect()
}

/// Every shmstate object on the machine (names from `/dev/shm`), each with its
/// info or the reason it could not be read. Lanes (`name@<fingerprint>`) are
/// listed too, each right after its object.
pub fn list() -> std::io::Result<Vec<(String, Result<ObjectInfo, OpenError>)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let file = entry?.file_name();
        let Some(file) = file.to_str() else { continue };
        if let Some(name) = crate::object::name::from_data_file(file) {
            names.push(name.to_string());
        }
    }
    // Lanes by object, from this one look at the directory.
    let mut lanes: std::collections::HashMap<&str, Vec<(String, u64)>> = Default::default();
    for name in &names {
        if let Some((base, fp)) = crate::object::name::split_lane(name) {
            lanes.entry(base).or_default().push((name.clone(), fp));
        }
    }
    let mut out = Vec::new();
    for name in &names {
        let mut of_name = lanes.get(name.as_str()).cloned().unwrap_or_default();
        of_name.sort();
        out.push((name.clone(), inspect_with(name, || of_name)));
    }
    // An object, then its lanes.
    let base = |name: &str| crate::object::name::split_lane(name).map_or(name, |(base, _)| base).to_string();
    out.sort_by_cached_key(|(name, _)| (base(name), name.clone()));
    Ok(out)
}

/// The origin fields of the header, if a mirror wrote them.
fn origin(h: &crate::protocol::layout::Header) -> Option<Origin> {
    // SYNC(origin): Relaxed, diagnostics; `RawWriter::set_origin` stores them
    // Relaxed and no reader decision depends on them.
    let generation = h.origin_generation.load(Relaxed);
    if generation == 0 {
        return None;
    }
    let bytes: Vec<u8> = h.origin_host.iter().flat_map(|w| w.load(Relaxed).to_le_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(Origin { host: String::from_utf8_lossy(&bytes[..end]).into_owned(), generation })
}
