//! The writer's side of lanes (docs/DEPLOYING.md "Lanes"): the objects a [`Writer<T>`]
//! publishes each value into besides its own layout, and the layouts it no
//! longer publishes, which it removes once nobody reads them.
//!
//! [`Writer<T>`]: crate::Writer

use std::time::{Duration, Instant};

use crate::archive::SlotWriter;
use crate::error::{OpenError, PublishError};
use crate::os::ShmObject;
use crate::schema::SchemaDoc;
use crate::write::options::WriterOptions;
use crate::write::raw_writer::RawWriter;
use crate::Generation;

/// Writes the snapshot of the layout with this fingerprint into a slot: the
/// typed writer serializes (converting for a lane), the raw one copies.
pub(crate) type Fill<'a> = dyn FnMut(u64, SlotWriter) -> Result<SlotWriter, String> + 'a;

/// How often a publish looks at the readers of retiring layouts (an
/// `inspect` of each: a few syscalls).
const RETIRE_CHECK: Duration = Duration::from_secs(1);

/// One more layout this writer publishes: its object (whose fingerprint
/// says which layout it is).
struct Lane {
    raw: RawWriter,
}

/// A layout left on the machine that this writer does not publish.
struct Retiring {
    /// The plain name or a lane's name.
    object: String,
    /// For the plain name: its writer lock, held so that no writer of the
    /// old layout takes it over while we wait for its readers to go.
    plain_lock: Option<ShmObject>,
}

/// A lane left over from an earlier writer whose layout this writer
/// publishes in another object (its own layout now under the plain name, or
/// a lane layout the plain name carries): marked moved at the first publish,
/// so that its readers follow, then removed.
struct Moving {
    raw: RawWriter,
}

/// Everything a writer publishes besides its own layout. Type-erased: the
/// snapshots come from a [`Fill`] at each publish (`O` is only the options'
/// type parameter).
pub(crate) struct LaneSet<O> {
    name: String,
    own_schema: SchemaDoc,
    lanes: Vec<Lane>,
    retiring: Vec<Retiring>,
    moving: Vec<Moving>,
    /// To create the plain object when the own layout moves there.
    opts: WriterOptions<O>,
    next_check: Instant,
}

/// A writer's objects: the one of its own layout, and the lane set.
pub(crate) type Opened<O> = (RawWriter, LaneSet<O>);

fn open_object<O>(
    name: &str,
    opts: &WriterOptions<O>,
    schema: &SchemaDoc,
    take_over: bool,
) -> Result<RawWriter, OpenError> {
    RawWriter::open_with(name, opts, schema, take_over, |seg, geo| {
        crate::object::layouts::type_mismatch_doc(name, schema, seg, geo)
    })
}

impl<O> LaneSet<O> {
    /// Opens (creates or takes over) the objects of `name` for a writer of
    /// the layout `own_schema` with the lanes `specs`. Which object carries which layout:
    /// the plain name keeps the layout it holds if this writer publishes it
    /// (its own or a declared lane); every other published layout goes into
    /// its lane. A plain object of a layout not published here (only with
    /// lanes declared or present) is retired once unread; so are lanes of
    /// such layouts.
    pub(crate) fn open(
        name: &str,
        opts: WriterOptions<O>,
        own_schema: SchemaDoc,
        specs: Vec<SchemaDoc>,
        take_over: bool,
    ) -> Result<Opened<O>, OpenError> {
        let own_fp = own_schema.fingerprint();
        let present = if crate::object::name::split_lane(name).is_some() {
            Vec::new()
        } else {
            crate::object::name::lanes_in_shm(name)
        };
        let mut set = LaneSet {
            name: name.to_string(),
            own_schema: own_schema.clone(),
            lanes: Vec::new(),
            retiring: Vec::new(),
            moving: Vec::new(),
            opts,
            next_check: Instant::now(),
        };
        if specs.is_empty() && present.is_empty() {
            // No lanes anywhere: one object, as without this module.
            let own = open_object(name, &set.opts, &own_schema, take_over)?;
            return Ok((own, set));
        }
        set.check_specs(own_fp, &specs)?;
        let lane_name = |fp| crate::object::name::lane(name, fp);
        let spec_of = |fp: u64| specs.iter().find(|s| s.fingerprint() == fp);
        let plain_fp = crate::object::layouts::fingerprint_under(name)?;
        let own = match plain_fp {
            None => open_object(name, &set.opts, &own_schema, take_over)?,
            Some(fp) if fp == own_fp => open_object(name, &set.opts, &own_schema, take_over)?,
            Some(fp) if spec_of(fp).is_some() => {
                let spec = spec_of(fp).expect("just found");
                let raw = open_object(name, &set.opts, spec, take_over)?;
                set.lanes.push(Lane { raw });
                open_object(&lane_name(own_fp), &set.opts, &own_schema, true)?
            }
            Some(_) if !take_over => return Err(OpenError::AlreadyExists { name: name.into() }),
            Some(_) => {
                // The plain name holds a layout we do not publish: keep it
                // (its readers keep their last snapshot) until it is unread.
                let lock = RawWriter::take_lock(name, false, None)?;
                set.retiring.push(Retiring { object: name.into(), plain_lock: Some(lock) });
                open_object(&lane_name(own_fp), &set.opts, &own_schema, true)?
            }
        };
        let plain_layout = plain_fp.unwrap_or(own_fp);
        for spec in specs.iter().filter(|s| s.fingerprint() != plain_layout) {
            let raw = open_object(&lane_name(spec.fingerprint()), &set.opts, spec, true)?;
            set.lanes.push(Lane { raw });
        }
        // Lanes we did not open: layouts no longer published, or the own
        // layout's lane left over now that the plain name carries it.
        let opened: Vec<&str> = set.lanes.iter().map(|l| l.raw.name()).chain([own.name()]).collect();
        let stale: Vec<(String, u64)> =
            present.into_iter().filter(|(lane, _)| !opened.contains(&lane.as_str())).collect();
        for (object, fp) in stale {
            // A layout published elsewhere now: its readers are told to move
            // (taking the lane over needs its old writer gone; if it is not,
            // the lane retires once unread, as any other).
            let schema = if fp == own_fp { Some(&own_schema) } else { spec_of(fp) };
            let taken = schema.and_then(|schema| open_object(&object, &set.opts, schema, true).ok());
            match taken {
                Some(raw) => set.moving.push(Moving { raw }),
                None => set.retiring.push(Retiring { object, plain_lock: None }),
            }
        }
        let mut own = own;
        // One generation number for every layout from here on, above what
        // any of them, retiring ones included, has published.
        let retiring = set.retiring.iter().filter_map(|r| crate::object::layouts::published_in(&r.object, None));
        let next = set
            .lanes
            .iter()
            .map(|l| l.raw.next_generation())
            .chain(set.moving.iter().map(|m| m.raw.next_generation()))
            .chain(retiring.map(|g| Generation::new(g.get() + 1)))
            .fold(own.next_generation(), Generation::max);
        own.raise_next_generation(next);
        for lane in &mut set.lanes {
            lane.raw.raise_next_generation(next);
        }
        Ok((own, set))
    }

    fn check_specs(&self, own_fp: u64, specs: &[SchemaDoc]) -> Result<(), OpenError> {
        let bad = |what: String| Err(OpenError::InvalidOption { name: self.name.clone(), what });
        if crate::object::name::split_lane(&self.name).is_some()
            || self.name.len() > crate::object::name::MAX_LANED_NAME_LEN
        {
            let limit = crate::object::name::MAX_LANED_NAME_LEN;
            return bad(format!("lanes need a name of at most {limit} bytes, without a lane suffix"));
        }
        for (i, spec) in specs.iter().enumerate() {
            let fp = spec.fingerprint();
            if fp == own_fp {
                return bad(format!("a lane of the writer's own type {} ({fp:#018x})", spec.root().name));
            }
            if specs[..i].iter().any(|s| s.fingerprint() == fp) {
                return bad(format!("two lanes of one layout {} ({fp:#018x})", spec.root().name));
            }
        }
        Ok(())
    }

    /// The user's name of the object.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The fingerprints of the layouts published besides the own one.
    pub(crate) fn fingerprints(&self) -> Vec<u64> {
        self.lanes.iter().map(|l| l.raw.fingerprint()).collect()
    }

    /// Every object this set publishes into (for `RawLaneWriter::set_origin`).
    pub(crate) fn lane_writers(&mut self) -> impl Iterator<Item = &mut RawWriter> {
        self.lanes.iter_mut().map(|l| &mut l.raw)
    }

    /// Publishes the value `fill` writes as generation `g`, published in the
    /// own layout at `now_ns`, into every lane, with that publish time. All
    /// lanes are tried; the first error is returned.
    pub(crate) fn publish(&mut self, fill: &mut Fill<'_>, g: Generation, now_ns: u64) -> Result<(), PublishError> {
        if !self.moving.is_empty() {
            self.move_readers(fill, g);
        }
        let mut first_error = Ok(());
        for lane in &mut self.lanes {
            lane.raw.raise_next_generation(g);
            let fp = lane.raw.fingerprint();
            let published = lane.raw.publish_with_time(now_ns, |out| fill(fp, out));
            if let (Err(e), Ok(())) = (published, &first_error) {
                first_error = Err(e);
            }
        }
        first_error
    }

    /// Tells the readers of left-over lanes that their layout is published
    /// elsewhere: each gets the value once more, as generation `g` (the one
    /// just published in the layout's new home), marked moved; then the lane
    /// is removed. Its readers resolve the name again at their next read or
    /// wait (docs/PROTOCOL.md "Moved objects").
    fn move_readers(&mut self, fill: &mut Fill<'_>, g: Generation) {
        for Moving { mut raw } in std::mem::take(&mut self.moving) {
            raw.raise_next_generation(g);
            raw.mark_moved();
            // On a failed publish the mark is still there: a reader sees it
            // on its next slow path (a new generation or a wait).
            let fp = raw.fingerprint();
            let _ = raw.publish_with(|out| fill(fp, out));
            let object = raw.name().to_string();
            drop(raw);
            let _ = crate::object::remove_object(&object);
        }
    }

    /// At most every [`RETIRE_CHECK`]: removes retiring layouts that no live
    /// reader uses. A retired plain object is replaced by one of the own
    /// layout holding `value` as generation `g` (just published in `own`'s
    /// lane), which becomes `own`; then the own lane is removed, so that its
    /// following readers move to the plain name.
    pub(crate) fn retire_unread(&mut self, fill: &mut Fill<'_>, g: Generation, own: &mut RawWriter) {
        if self.retiring.is_empty() || Instant::now() < self.next_check {
            return;
        }
        self.next_check = Instant::now() + RETIRE_CHECK;
        let mut retiring = std::mem::take(&mut self.retiring);
        retiring.retain(|r| {
            // Another live writer there (one that created it again since
            // we looked) keeps it too.
            let unread = match crate::inspect(&r.object) {
                Ok(info) => info.live_readers() == 0 && !info.writer_alive,
                Err(OpenError::NotFound { .. }) => true,
                Err(_) => false,
            };
            if !unread {
                return true;
            }
            if r.plain_lock.is_none() {
                let _ = crate::object::remove_object(&r.object);
                return false;
            }
            self.take_plain_name(fill, g, own).is_err()
        });
        self.retiring = retiring;
    }

    /// Replaces the unread plain object by one of the own layout (see
    /// `retire_unread`).
    fn take_plain_name(&self, fill: &mut Fill<'_>, g: Generation, own: &mut RawWriter) -> Result<(), PublishError> {
        let _ = crate::object::remove_object(&self.name);
        let own_fp = self.own_schema.fingerprint();
        let mut plain = open_object(&self.name, &self.opts, &self.own_schema, false)
            .map_err(|e| PublishError::Serialize { name: self.name.clone(), message: e.to_string() })?;
        plain.raise_next_generation(g);
        plain.publish_with(|out| fill(own_fp, out))?;
        let mut lane = std::mem::replace(own, plain);
        // The lane's readers are told to move: its last publish (the same
        // value, one generation up: the lane has published `g`) carries the
        // mark. The plain name goes on above it.
        lane.mark_moved();
        let _ = lane.publish_with(|out| fill(own_fp, out));
        own.raise_next_generation(lane.next_generation());
        let lane_name = lane.name().to_string();
        drop(lane);
        let _ = crate::object::remove_object(&lane_name);
        Ok(())
    }
}
