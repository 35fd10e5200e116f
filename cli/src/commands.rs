//! The subcommands.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use shmstate::dynamic::{self, Limits};
use shmstate::{Generation, ObjectInfo, OpenError, RawReader, ReadError, WaitError};

use crate::errors::{code, open_failure, read_failure, remove_failure, Failure};
use crate::table::{ago, human_size, now_ns, timestamp, utc, Align, Table};
use crate::{json as js, out, Cmd, DEFAULT_LIMITS};

pub fn run(cmd: Cmd) -> Result<(), Failure> {
    match cmd {
        Cmd::List { prefix, json } => list(prefix.as_deref(), json),
        Cmd::Inspect { name, json } => inspect(&name, json),
        Cmd::Watch { name, count, timeout, json, dump } => watch(&name, count, timeout, json, dump),
        Cmd::Dump { name, json, compact, max_depth, max_values, timeout, key, prefix } => {
            let select = match (key, prefix) {
                (Some(k), _) => Some(crate::map::Select::Key(k)),
                (None, Some(p)) => Some(crate::map::Select::Prefix(p)),
                (None, None) => None,
            };
            dump(&name, json, compact, Limits { max_depth, max_values }, timeout, select)
        }
        Cmd::Schema { name, text } => crate::publish::schema(&name, text),
        Cmd::Publish { name, file, schema } => crate::publish::publish(&name, &file, schema.as_deref()),
        Cmd::Rm { names, force } => rm(&names, force),
        Cmd::Gc { prefix, yes, json } => gc(prefix.as_deref(), yes, json),
        Cmd::Metrics { prefix, openmetrics, listen, textfile, interval } => {
            metrics(prefix.as_deref(), openmetrics, listen, textfile.as_deref(), interval)
        }
        Cmd::Doctor { json, root } => doctor(json, &root),
    }
}

/// Every object (optionally only names starting with `prefix`), readable or not.
type Objects = Vec<(String, Result<ObjectInfo, OpenError>)>;

fn objects(prefix: Option<&str>) -> Result<Objects, Failure> {
    let mut objs = shmstate::list().map_err(|e| Failure::new(code::OTHER, format!("reading /dev/shm: {e}")))?;
    objs.retain(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)));
    Ok(objs)
}

fn pretty_json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn writer_cell(info: &ObjectInfo) -> String {
    if !info.writer_alive {
        return "dead".into();
    }
    match info.writer_seen {
        shmstate::WriterSeen::Pid(here) if here != info.writer_pid => {
            format!("alive ({here}, {} in its ns)", info.writer_pid)
        }
        shmstate::WriterSeen::Hidden => format!("alive (other pid ns: {})", info.writer_pid),
        _ => format!("alive ({})", info.writer_pid),
    }
}

/// A live writer's pid as this PID namespace sees it, and as its own
/// namespace does when that differs (a writer in a container records its
/// namespace's pid in the header).
pub fn writer_where(info: &ObjectInfo) -> String {
    match info.writer_seen {
        shmstate::WriterSeen::Pid(here) if here == info.writer_pid => format!("pid {here}"),
        shmstate::WriterSeen::Pid(here) => {
            format!("pid {here}; pid {} in its own PID namespace", info.writer_pid)
        }
        shmstate::WriterSeen::Hidden => {
            format!("in another PID namespace, not visible here; pid {} there", info.writer_pid)
        }
        _ => format!("pid {}", info.writer_pid),
    }
}

fn list(prefix: Option<&str>, json: bool) -> Result<(), Failure> {
    let objs = objects(prefix)?;
    if json {
        let v: Vec<Value> = objs
            .iter()
            .map(|(name, r)| match r {
                Ok(info) if crate::map::is_map(info) => {
                    let mut v = js::summary(info);
                    v["map"] = crate::map::inspect_json(name);
                    v
                }
                Ok(info) => js::summary(info),
                Err(e) => js::failed(name, e),
            })
            .collect();
        return out(&pretty_json(&Value::Array(v)));
    }
    if objs.is_empty() {
        return out("no shmstate objects\n");
    }
    use Align::{Left as L, Right as R};
    let mut t = Table::new(&[
        ("NAME", L),
        ("TYPE", L),
        ("FINGERPRINT", L),
        ("SIZE", R),
        ("SLOTS", R),
        ("GEN", R),
        ("PUBLISHED", L),
        ("WRITER", L),
        ("READERS", R),
    ]);
    for (name, r) in &objs {
        match r {
            Ok(info) => t.row(vec![
                name.clone(),
                if crate::map::is_map(info) {
                    crate::map::type_cell(name)
                } else {
                    info.type_name.clone().unwrap_or_else(|| "?".into())
                },
                format!("{:016x}", info.fingerprint),
                human_size(info.size),
                format!("{}/{}", info.slot_count, info.max_slots),
                info.generation.to_string(),
                ago(info.last_publish_ns),
                writer_cell(info),
                info.live_readers().to_string(),
            ]),
            Err(e) => t.note(name.clone(), format!("! {e}")),
        }
    }
    out(&t.render())
}

fn inspect(name: &str, json: bool) -> Result<(), Failure> {
    let info = shmstate::inspect(name).map_err(|e| open_failure(name, &e))?;
    let removed = shmstate::removed_users(name);
    if json {
        let mut v = js::full(&info);
        v["removed_users"] = js::removed_users(&removed);
        if crate::map::is_map(&info) {
            v["map"] = crate::map::inspect_json(name);
        }
        return out(&pretty_json(&v));
    }
    let map = if crate::map::is_map(&info) { crate::map::inspect_text(name, &info) } else { String::new() };
    out(&(inspect_text(&info) + &map + &removed_users_text(&removed)))
}

/// The processes still on a removed object of the name (readers the reader
/// tables above cannot show: an object removed under them, a lane moved).
fn removed_users_text(removed: &[shmstate::RemovedUser]) -> String {
    if removed.is_empty() {
        return "\nremoved objects of this name: none still mapped\n".into();
    }
    let mut s = format!(
        "\nremoved objects of this name still mapped ({}; readers that have not followed yet, or do not follow):\n",
        removed.len()
    );
    let mut t = Table::new(&[("PID", Align::Right), ("COMMAND", Align::Left), ("OBJECT", Align::Left)]).indent(2);
    for u in removed {
        t.row(vec![u.pid.to_string(), u.command.clone(), u.object.clone()]);
    }
    s.push_str(&t.render());
    s
}

/// The memory readers keep: the old generations their pins hold from reuse.
fn held_memory_text(info: &ObjectInfo) -> String {
    let slots: u64 = info.slots.iter().map(|s| s.capacity).sum();
    let held: Vec<String> = info
        .held_old_slots()
        .map(|s| {
            let by = if s.pinned_by.is_empty() {
                "lock-pin readers".to_string()
            } else {
                let entries: Vec<String> = s.pinned_by.iter().map(u32::to_string).collect();
                format!("reader {}", entries.join(", "))
            };
            format!("generation {} ({}, {by})", s.generation, human_size(s.capacity))
        })
        .collect();
    let kept = if held.is_empty() {
        "readers keep no older generation".to_string()
    } else {
        format!(
            "readers keep {} older generation(s), {}: {}",
            held.len(),
            human_size(info.held_old_bytes()),
            held.join(", ")
        )
    };
    format!("  memory: {} in {} slots; {kept}\n", human_size(slots), info.slots.len())
}

/// The header's fingerprint, flagged when the stored schema does not hash to
/// it (written with another fingerprint scheme, or corrupt): readers of the
/// described type then refuse the object.
fn fingerprint_line(info: &ObjectInfo) -> String {
    let fp = format!("{:#018x}", info.fingerprint);
    match &info.schema {
        Ok(doc) if doc.fingerprint() != info.fingerprint => {
            format!("{fp} (! the stored schema hashes to {:#018x}: readers of that type refuse it)", doc.fingerprint())
        }
        _ => fp,
    }
}

/// Where the snapshots come from: this host, or a mirror's source.
fn origin_line(info: &ObjectInfo) -> String {
    match &info.origin {
        Some(o) => format!("mirrored from host {}, source generation {}", o.host, o.generation),
        None => "local".into(),
    }
}

/// `none`, or each shared writer as `seat 0: pid 4711 (publishing)`.
fn shared_writers_line(info: &ObjectInfo) -> String {
    if info.shared_writers.is_empty() {
        return "none".into();
    }
    let one = |w: &shmstate::WriterInfo| {
        let pid = w.pid.map_or("pid ?".into(), |p| format!("pid {p}"));
        format!("seat {}: {pid}{}", w.seat, if w.publishing { " (publishing)" } else { "" })
    };
    info.shared_writers.iter().map(one).collect::<Vec<_>>().join(", ")
}

fn inspect_text(info: &ObjectInfo) -> String {
    let mut s = String::new();
    let current = match info.current_slot {
        Some(slot) => format!("generation {} in slot {slot}", info.generation),
        None => "nothing published yet".into(),
    };
    let writer = if info.writer_alive {
        format!("alive ({})", writer_where(info))
    } else {
        format!("dead (last pid {})", info.writer_pid)
    };
    let mut kv = Table::new(&[("", Align::Left), ("", Align::Left)]);
    for (k, v) in [
        ("name", info.name.clone()),
        ("type", info.type_name.clone().unwrap_or_else(|| "?".into())),
        ("fingerprint", fingerprint_line(info)),
        ("format", format!("version {}", info.format_version)),
        ("size", format!("{} ({} bytes), may grow to {}", human_size(info.size), info.size, human_size(info.max_size))),
        ("mode", format!("{:04o}, owner uid {}", info.mode & 0o7777, info.uid)),
        ("created", timestamp(info.created_ns)),
        ("published", format!("{}, {current}", timestamp(info.last_publish_ns))),
        ("writer", writer),
        ("shared writers", shared_writers_line(info)),
        ("origin", origin_line(info)),
        ("pins", info.pin_mode.to_string()),
        (
            "counters",
            format!(
                "{} publishes, {} growths, {} reclaimed pins, {} validation failures",
                info.publishes, info.growths, info.reclaimed_pins, info.validation_failures
            ),
        ),
    ] {
        kv.row(vec![format!("{k}:"), v]);
    }
    // Drop the (empty) header line.
    let kv = kv.render();
    s.push_str(kv.split_once('\n').map_or("", |x| x.1));
    s.push_str("\nschema:\n");
    match &info.schema {
        Ok(doc) => {
            for line in doc.to_string().lines() {
                let _ = writeln!(s, "    {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "    (undecodable: {e})");
        }
    }
    let _ = writeln!(s, "\nslots ({} of at most {}):", info.slot_count, info.max_slots);
    use Align::{Left as L, Right as R};
    let mut t = Table::new(&[
        ("SLOT", L),
        ("STATE", L),
        ("GENERATION", R),
        ("OFFSET", R),
        ("CAPACITY", R),
        ("LEN", R),
        ("PINS", R),
        ("PINNED BY", L),
    ])
    .indent(2);
    for slot in &info.slots {
        let mut pins: Vec<String> = slot.pinned_by.iter().map(|r| format!("reader {r}")).collect();
        if slot.lock_pinned {
            pins.push("readers (lock)".into());
        }
        t.row(vec![
            format!("{}{}", slot.index, if slot.current { "*" } else { "" }),
            slot.state.to_string(),
            slot.generation.to_string(),
            slot.offset.to_string(),
            slot.capacity.to_string(),
            slot.len.to_string(),
            slot.pin_count.map_or("-".into(), |n| n.to_string()),
            if pins.is_empty() { "-".into() } else { pins.join(", ") },
        ]);
    }
    s.push_str(&t.render());
    s.push_str("  (* = current)\n");
    s.push_str(&held_memory_text(info));
    if info.pin_mode == "locks" {
        let _ = writeln!(
            s,
            "\nreaders: {} of {} seats taken; they pin with OFD locks on the data segment (the object\n  \
             is readable by other users), so no pid or pin is recorded: slots they hold are marked above",
            info.readers.len(),
            info.reader_capacity
        );
        return s;
    }
    let _ = writeln!(
        s,
        "\nreaders ({} live, {} entries listed, table capacity {}):",
        info.live_readers(),
        info.readers.len(),
        info.reader_capacity
    );
    if info.readers.is_empty() {
        s.push_str("  none\n");
    } else {
        let mut t = Table::new(&[("ENTRY", R), ("ALIVE", L), ("PID", R), ("PINNED", L), ("OPENED", L)]).indent(2);
        for r in &info.readers {
            t.row(vec![
                r.index.to_string(),
                if r.alive { "yes" } else { "no" }.into(),
                r.pid.to_string(),
                r.pinned.map_or("-".into(), |(g, slot)| format!("generation {g} (slot {slot})")),
                ago(r.opened_ns),
            ]);
        }
        s.push_str(&t.render());
    }
    s.push_str(&versions_text(info));
    s
}

/// The layouts an object carries (the plain name and its lanes), each with
/// its writer and live readers; empty when it has no lane.
fn versions_text(info: &ObjectInfo) -> String {
    if let Some(base) = &info.lane_of {
        return format!(
            "
versions: this is a lane of {base:?} (`shmstate inspect {base}` lists them all)
"
        );
    }
    if info.lanes.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "
versions ({} layouts: the plain name and its lanes):
",
        1 + info.lanes.len()
    );
    use Align::{Left as L, Right as R};
    let mut t =
        Table::new(&[("OBJECT", L), ("TYPE", L), ("FINGERPRINT", L), ("GEN", R), ("WRITER", L), ("READERS", R)])
            .indent(2);
    let row = |object: &str, info: &ObjectInfo| {
        vec![
            object.to_string(),
            info.type_name.clone().unwrap_or_else(|| "?".into()),
            format!("{:#018x}", info.fingerprint),
            info.generation.to_string(),
            writer_cell(info),
            info.live_readers().to_string(),
        ]
    };
    t.row(row(&info.name, info));
    for lane in &info.lanes {
        match &lane.info {
            Ok(lane_info) => t.row(row(&lane.name, lane_info)),
            Err(e) => t.note(lane.name.clone(), format!("! {e}")),
        }
    }
    s.push_str(&t.render());
    s
}

fn watch(name: &str, count: Option<u64>, timeout: Option<Duration>, json: bool, dump: bool) -> Result<(), Failure> {
    let mut r = RawReader::open(name, Duration::from_secs(1)).map_err(|e| open_failure(name, &e))?;
    let schema =
        if dump { Some(r.schema().map_err(|e| Failure::new(code::CORRUPT, format!("{name}: {e}")))?) } else { None };
    let mut last = r.generation();
    eprintln!("watching {name:?} from generation {} (Ctrl-C to stop)", last.get());
    let mut seen = 0u64;
    while count.is_none_or(|c| seen < c) {
        // Without --timeout, wait in long slices (the deadline must stay finite).
        let slice = timeout.unwrap_or(Duration::from_secs(3600));
        let g = match r.wait_newer(last, slice) {
            Ok(g) => g,
            Err(WaitError::Timeout { .. }) if timeout.is_none() => continue,
            Err(WaitError::Timeout { .. }) => {
                return Err(Failure::new(
                    code::OTHER,
                    format!("{name}: no new generation within {slice:?} (last generation {})", last.get()),
                ))
            }
            Err(WaitError::WriterDead { .. }) => {
                return Err(Failure::new(
                    code::WRITER_DEAD,
                    format!("{name}: the writer is gone (last generation {})", last.get()),
                ))
            }
            Err(e) => return Err(Failure::new(code::OTHER, format!("{name}: {e}"))),
        };
        // The snapshot read may be newer still than the one that woke us.
        let (g, bytes) = match r.read() {
            Ok((g2, bytes)) => (g2.max(g), bytes.to_vec()),
            Err(e) => return Err(read_failure(name, &e)),
        };
        r.release();
        let skipped = g.get().saturating_sub(last.get()).saturating_sub(1);
        let value = match &schema {
            Some(doc) => Some(decode(name, doc, g, &bytes, DEFAULT_LIMITS)?),
            None => None,
        };
        let now = now_ns();
        let line = if json {
            let mut v = json!({ "generation": g.get(), "time_ns": now, "bytes": bytes.len(), "skipped": skipped });
            if let (Some(val), Value::Object(m)) = (&value, &mut v) {
                m.insert("value".into(), to_json(val)?);
            }
            format!("{v}\n")
        } else {
            let mut l = format!("{}  generation {}  {} bytes", utc(now), g.get(), bytes.len());
            if skipped > 0 {
                let _ = write!(l, "  ({skipped} skipped)");
            }
            if let Some(val) = &value {
                let _ = write!(l, "  {val}");
            }
            l.push('\n');
            l
        };
        out(&line)?;
        last = g;
        seen += 1;
    }
    Ok(())
}

/// Runs `f` on a thread whose stack fits `limits.max_depth` levels of nesting
/// (decoding and rendering recurse once per level).
fn deep<T: Send>(limits: Limits, f: impl FnOnce() -> Result<T, Failure> + Send) -> Result<T, Failure> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size((8 << 20) + limits.max_depth.min(1 << 16) * (64 << 10))
            .spawn_scoped(s, f)
            .map_err(|e| Failure::new(code::OTHER, format!("spawning the decoder: {e}")))?
            .join()
            .map_err(|_| Failure::new(code::OTHER, "the decoder panicked"))?
    })
}

fn decode_failure(name: &str, root: &str, g: Generation, e: &dynamic::DecodeError) -> Failure {
    Failure::new(code::CORRUPT, format!("{name}: cannot decode generation {} as {root}: {e}", g.get()))
}

/// Decodes `bytes` (generation `g` of `name`) on a thread sized for `limits`.
fn decode(
    name: &str,
    doc: &shmstate::schema::SchemaDoc,
    g: Generation,
    bytes: &[u8],
    limits: Limits,
) -> Result<dynamic::Value, Failure> {
    deep(limits, || dynamic::decode_with(doc, bytes, limits).map_err(|e| decode_failure(name, &doc.root().name, g, &e)))
}

/// The JSON form of a decoded value (serde's conventions: docs/CLI.md).
fn to_json(value: &dynamic::Value) -> Result<Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::new(code::OTHER, format!("rendering JSON: {e}")))
}

fn dump(
    name: &str,
    json: bool,
    compact: bool,
    limits: Limits,
    timeout: Duration,
    select: Option<crate::map::Select>,
) -> Result<(), Failure> {
    let mut r =
        dynamic::Reader::open_with_timeout(name, timeout).map_err(|e| open_failure(name, &e))?.with_limits(limits);
    let is_map = r.schema().fingerprint() == shmstate::schema::fingerprint_of::<shmstate::map::MapRoot>();
    if is_map || select.is_some() {
        drop(r);
        let Some(select) = select.or(Some(crate::map::Select::All)).filter(|_| is_map) else {
            return Err(Failure::new(code::USAGE, format!("{name}: --key and --prefix are for maps; this is no map")));
        };
        let text = deep(limits, || crate::map::dump(name, &select, json, compact, limits))?;
        return out(&text);
    }
    // Reading decodes, and rendering recurses as deep as decoding did.
    let text = deep(limits, || {
        let snap = match r.read() {
            Ok(snap) => snap,
            Err(dynamic::Error::Read(ReadError::Empty { .. })) => {
                return Err(Failure::new(code::OTHER, format!("{name}: nothing has been published yet")))
            }
            Err(dynamic::Error::Read(e)) => return Err(read_failure(name, &e)),
            Err(dynamic::Error::Decode { generation, error }) => {
                return Err(decode_failure(name, &r.schema().root().name, generation, &error))
            }
            Err(e) => return Err(Failure::new(code::OTHER, format!("{name}: {e}"))),
        };
        Ok(if json {
            let v = to_json(&snap.value)?;
            let mut t = if compact { v.to_string() } else { serde_json::to_string_pretty(&v).unwrap_or_default() };
            t.push('\n');
            t
        } else {
            format!(
                "// {name}: {}, generation {}, {} bytes\n{:#}\n",
                r.schema().root().name,
                snap.generation.get(),
                snap.size,
                snap.value
            )
        })
    })?;
    drop(r);
    out(&text)
}

fn rm(names: &[String], force: bool) -> Result<(), Failure> {
    let mut failure = None;
    for name in names {
        if let Some(refusal) = (!force).then(|| in_use(name)).flatten() {
            eprintln!("shmstate: {}", refusal.message);
            failure = Some(Failure::new(refusal.code, ""));
            continue;
        }
        match shmstate::remove(name) {
            Ok(()) => out(&format!("removed {name}\n"))?,
            Err(e) => {
                let f = remove_failure(&e);
                eprintln!("shmstate: {}", f.message);
                failure = Some(Failure::new(f.code, ""));
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Why `rm` will not remove `name` without `--force`: the live readers that
/// use it, by pid (as recorded when they opened it; lock-pin readers record
/// none). `None` when nobody reads it, or when it cannot be inspected (then
/// `remove` says what is wrong).
fn in_use(name: &str) -> Option<Failure> {
    let info = shmstate::inspect(name).ok()?;
    // `remove` removes the object's lanes too: count their readers.
    let lanes = info.lanes.iter().filter_map(|l| l.info.as_ref().ok());
    let live: Vec<_> = info.readers.iter().chain(lanes.flat_map(|l| &l.readers)).filter(|r| r.alive).collect();
    if live.is_empty() {
        return None;
    }
    let pids: Vec<String> = live.iter().filter(|r| r.pid != 0).map(|r| r.pid.to_string()).collect();
    let mut who = if pids.is_empty() { String::new() } else { format!("pid {}", pids.join(", ")) };
    let unnamed = live.len() - pids.len();
    if unnamed > 0 {
        who += &format!("{}{unnamed} without a recorded pid", if who.is_empty() { "" } else { "; " });
    }
    let n = live.len();
    let readers = if n == 1 { "reader" } else { "readers" };
    Some(Failure::new(
        code::IN_USE,
        format!(
            "{name:?} has {n} live {readers} ({who}); they would go on reading the removed object \
             (until they notice it was replaced, see docs/DEPLOYING.md). Not removed: use --force to remove it anyway"
        ),
    ))
}

/// An object gc may remove: readable, writer dead, no live reader.
fn collectable(info: &ObjectInfo) -> bool {
    !info.writer_alive && info.live_readers() == 0
}

fn gc(prefix: Option<&str>, yes: bool, json: bool) -> Result<(), Failure> {
    let objs = objects(prefix)?;
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for (name, r) in objs {
        match r {
            Ok(info) if collectable(&info) => candidates.push(info),
            Ok(_) => {}
            Err(e) => skipped.push((name, e)),
        }
    }
    let mut removed = Vec::new();
    let mut errors: Vec<(String, Failure)> = Vec::new();
    if yes {
        for info in &candidates {
            // Re-check just before removing: a writer may have taken it over.
            match shmstate::inspect(&info.name) {
                Ok(now) if collectable(&now) => match shmstate::remove(&info.name) {
                    Ok(()) => removed.push(info.name.clone()),
                    Err(e) => errors.push((info.name.clone(), remove_failure(&e))),
                },
                Ok(_) => errors.push((info.name.clone(), Failure::new(0, "in use again; kept"))),
                Err(e) => errors.push((info.name.clone(), open_failure(&info.name, &e))),
            }
        }
    }
    let code = errors.iter().map(|(_, f)| f.code).find(|&c| c != 0);
    if json {
        let v = json!({
            "dry_run": !yes,
            "candidates": candidates.iter().map(js::summary).collect::<Vec<_>>(),
            "removed": removed,
            "skipped": skipped.iter().map(|(n, e)| js::failed(n, e)).collect::<Vec<_>>(),
            "errors": errors.iter().map(|(n, f)| json!({ "name": n, "message": f.message })).collect::<Vec<_>>(),
        });
        out(&pretty_json(&v))?;
    } else {
        let mut s = String::new();
        if candidates.is_empty() {
            s.push_str("nothing to remove\n");
        } else {
            let mut t = Table::new(&[
                ("", Align::Left),
                ("NAME", Align::Left),
                ("TYPE", Align::Left),
                ("GEN", Align::Right),
                ("PUBLISHED", Align::Left),
            ]);
            for info in &candidates {
                let verdict = if !yes {
                    "would remove"
                } else if removed.contains(&info.name) {
                    "removed"
                } else {
                    "kept"
                };
                t.row(vec![
                    verdict.into(),
                    info.name.clone(),
                    info.type_name.clone().unwrap_or_else(|| "?".into()),
                    info.generation.to_string(),
                    ago(info.last_publish_ns),
                ]);
            }
            // No header row: the verdict column says it all.
            let table = t.render();
            s.push_str(table.split_once('\n').map_or("", |x| x.1));
            if !yes {
                s.push_str("(dry run: pass --yes to remove them)\n");
            }
        }
        for (name, e) in &skipped {
            let _ = writeln!(s, "skipped {name}: {e}");
        }
        for (name, f) in &errors {
            let _ = writeln!(s, "not removed {name}: {}", f.message);
        }
        out(&s)?;
    }
    code.map_or(Ok(()), |c| Err(Failure::new(c, "")))
}

/// One scrape of every object (under `prefix`), as text in `format`.
fn scrape(prefix: Option<&str>, format: crate::metrics::Format) -> Result<String, Failure> {
    let objs = objects(prefix)?;
    let scrape = crate::metrics::Scrape { objects: &objs, now_ns: now_ns() };
    Ok(crate::metrics::render(&crate::metrics::families(&scrape), format))
}

fn metrics(
    prefix: Option<&str>,
    openmetrics: bool,
    listen: Option<std::net::SocketAddr>,
    textfile: Option<&std::path::Path>,
    interval: Option<Duration>,
) -> Result<(), Failure> {
    use crate::metrics::Format;
    let format = if openmetrics { Format::OpenMetrics } else { Format::Prometheus };
    if let Some(addr) = listen {
        // A scrape that cannot list /dev/shm answers with that reason as a comment
        // and no samples, rather than dropping the connection.
        return crate::serve::listen(addr, |f| scrape(prefix, f).unwrap_or_else(|e| format!("# {}\n", e.message)));
    }
    let Some(dir) = textfile else { return out(&scrape(prefix, format)?) };
    loop {
        crate::serve::write_textfile(dir, &scrape(prefix, format)?)?;
        let Some(every) = interval else { return Ok(()) };
        std::thread::sleep(every);
    }
}

fn doctor(json: bool, root: &std::path::Path) -> Result<(), Failure> {
    use crate::doctor::Severity;
    let objs = objects(None)?;
    let findings = crate::doctor::run(&crate::doctor::Host { objects: &objs, root });
    if json {
        out(&pretty_json(&crate::doctor::json(&findings)))?;
    } else {
        out(&crate::doctor::text(&findings))?;
    }
    if findings.iter().any(|f| f.severity == Severity::Problem) {
        return Err(Failure::new(code::PROBLEM, ""));
    }
    Ok(())
}
