//! `shmstate.list()`, `shmstate.inspect(name)`, `shmstate.schema_json(name)`
//! and `shmstate.remove(name)`: the CLI's tools as Python values.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use shmstate::schema::SchemaDoc;
use shmstate::ObjectInfo;

use crate::errors::{raise, to_py};

fn info_dict<'py>(py: Python<'py>, info: &ObjectInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &info.name)?;
    d.set_item("type", &info.type_name)?;
    d.set_item("fingerprint", format!("{:#018x}", info.fingerprint))?;
    d.set_item("format_version", info.format_version)?;
    d.set_item("incarnation", info.incarnation)?;
    d.set_item("size", info.size)?;
    d.set_item("max_size", info.max_size)?;
    d.set_item("slots", info.slot_count)?;
    d.set_item("max_slots", info.max_slots)?;
    d.set_item("generation", info.generation)?;
    d.set_item("created_ns", info.created_ns)?;
    d.set_item("last_publish_ns", info.last_publish_ns)?;
    d.set_item("writer_alive", info.writer_alive)?;
    d.set_item("writer_pid", info.writer_pid)?;
    d.set_item("publishes", info.publishes)?;
    d.set_item("validation_failures", info.validation_failures)?;
    d.set_item("reader_capacity", info.reader_capacity)?;
    d.set_item("live_readers", info.live_readers())?;
    d.set_item("held_old_bytes", info.held_old_bytes())?;
    d.set_item("pin_mode", info.pin_mode)?;
    d.set_item("lane_of", &info.lane_of)?;
    let slots = pyo3::types::PyList::empty(py);
    for slot in &info.slots {
        let sd = PyDict::new(py);
        sd.set_item("index", slot.index)?;
        sd.set_item("state", slot.state)?;
        sd.set_item("generation", slot.generation)?;
        sd.set_item("offset", slot.offset)?;
        sd.set_item("capacity", slot.capacity)?;
        sd.set_item("len", slot.len)?;
        sd.set_item("current", slot.current)?;
        slots.append(sd)?;
    }
    d.set_item("slot_table", slots)?;
    let lanes: Vec<&str> = info.lanes.iter().map(|l| l.name.as_str()).collect();
    d.set_item("lanes", lanes)?;
    Ok(d)
}

/// The objects in `/dev/shm`: a dict per object (`{"name", "error"}` for
/// one that cannot be read).
#[pyfunction]
pub(crate) fn list(py: Python<'_>) -> PyResult<Vec<Py<PyDict>>> {
    let all = py.detach(shmstate::list).map_err(|e| raise("Os", format!("listing objects: {e}")))?;
    let mut out = Vec::with_capacity(all.len());
    for (name, info) in all {
        let d = match info {
            Ok(info) => info_dict(py, &info)?,
            Err(e) => {
                let d = PyDict::new(py);
                d.set_item("name", name)?;
                d.set_item("error", e.to_string())?;
                d
            }
        };
        out.push(d.unbind());
    }
    Ok(out)
}

/// What `shmstate inspect NAME` shows, as a dict.
#[pyfunction]
pub(crate) fn inspect(py: Python<'_>, name: &str) -> PyResult<Py<PyDict>> {
    let info = py.detach(|| shmstate::inspect(name)).map_err(to_py)?;
    Ok(info_dict(py, &info)?.unbind())
}

/// The schema stored in `name` as a schema file's JSON text (what
/// `shmstate schema NAME` prints; `Writer.create` takes it).
#[pyfunction]
pub(crate) fn schema_json(name: &str) -> PyResult<String> {
    Ok(SchemaDoc::of_object(name).map_err(to_py)?.to_json())
}

/// Removes the object `name` (`shmstate rm`).
#[pyfunction]
pub(crate) fn remove(name: &str) -> PyResult<()> {
    shmstate::remove(name).map_err(to_py)
}
