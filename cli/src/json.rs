//! JSON forms of object information, for `--json` on list / inspect / gc.
//!
//! Fingerprints are hex strings (`"0x…"`, exact in every JSON reader); times are
//! nanoseconds since the Unix epoch (0 = never).

use serde_json::{json, Value};
use shmstate::{ObjectInfo, OpenError};

use crate::errors::{error_kind, open_failure};

/// The summary used by `list` and `gc`.
pub fn summary(info: &ObjectInfo) -> Value {
    json!({
        "name": info.name,
        "ok": true,
        "type": info.type_name,
        "fingerprint": format!("{:#018x}", info.fingerprint),
        "format_version": info.format_version,
        "size": info.size,
        "slots": info.slot_count,
        "max_slots": info.max_slots,
        "generation": info.generation,
        "created_ns": info.created_ns,
        "last_publish_ns": info.last_publish_ns,
        "writer_alive": info.writer_alive,
        "writer_pid": info.writer_pid,
        // The writer's pid as this PID namespace sees it; null when it runs in
        // a namespace this one cannot see (or no writer is alive).
        "writer_pid_here": match info.writer_seen {
            shmstate::WriterSeen::Pid(p) => Some(p),
            _ => None,
        },
        "writer_in_hidden_namespace": info.writer_seen == shmstate::WriterSeen::Hidden,
        "origin": info.origin.as_ref().map(|o| json!({"host": o.host, "generation": o.generation})),
        "live_readers": info.live_readers(),
        "lane_of": info.lane_of,
    })
}

/// An object that could not be read.
pub fn failed(name: &str, e: &OpenError) -> Value {
    json!({
        "name": name,
        "ok": false,
        "error": error_kind(e),
        "message": open_failure(name, e).message,
    })
}

/// `removed_users` of `inspect --json`.
pub fn removed_users(removed: &[shmstate::RemovedUser]) -> Value {
    Value::Array(removed.iter().map(|u| json!({ "pid": u.pid, "command": u.command, "object": u.object })).collect())
}

/// Everything `inspect` shows.
pub fn full(info: &ObjectInfo) -> Value {
    let mut v = summary(info);
    let extra = json!({
        "mode": format!("{:04o}", info.mode & 0o7777),
        "uid": info.uid,
        "current_slot": info.current_slot,
        "schema": match &info.schema {
            Ok(doc) => json!(doc.to_string()),
            Err(e) => json!({ "error": e }),
        },
        "counters": {
            "publishes": info.publishes,
            "growths": info.growths,
            "reclaimed_pins": info.reclaimed_pins,
            "validation_failures": info.validation_failures,
        },
        "reader_capacity": info.reader_capacity,
        "reader_opens": info.reader_opens,
        "max_size": info.max_size,
        "pin_mode": info.pin_mode,
        "held_old_bytes": info.held_old_bytes(),
        "slot_table": info.slots.iter().map(|s| json!({
            "index": s.index,
            "state": s.state,
            "generation": s.generation,
            "offset": s.offset,
            "capacity": s.capacity,
            "len": s.len,
            "published_ns": s.published_ns,
            "current": s.current,
            "pinned_by": s.pinned_by,
            "pin_count": s.pin_count,
            "lock_pinned": s.lock_pinned,
        })).collect::<Vec<_>>(),
        "shared_writers": info.shared_writers.iter().map(|w| json!({
            "seat": w.seat,
            "pid": w.pid,
            "opened_ns": w.opened_ns,
            "publishing": w.publishing,
        })).collect::<Vec<_>>(),
        "readers": info.readers.iter().map(|r| json!({
            "index": r.index,
            "alive": r.alive,
            "pid": r.pid,
            "pinned": r.pinned.map(|(g, s)| json!({ "generation": g, "slot": s })),
            "opened_ns": r.opened_ns,
        })).collect::<Vec<_>>(),
    });
    let lanes: Vec<Value> = info
        .lanes
        .iter()
        .map(|lane| match &lane.info {
            Ok(lane_info) => summary(lane_info),
            Err(e) => json!({ "name": lane.name, "ok": false, "message": e }),
        })
        .collect();
    if let Value::Object(m) = &mut v {
        m.insert("lanes".into(), Value::Array(lanes));
    }
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    v
}
