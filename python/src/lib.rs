//! The native module `shmstate._shmstate` of the Python package `shmstate`
//! (docs/PYTHON.md): readers of any object by name through the stored schema
//! and `shmstate::dynamic`, and writers through its schema-driven encoder.

mod changed;
mod convert;
mod errors;
mod map;
mod pin;
mod reader;
mod snapshot;
mod tools;
mod view;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _shmstate(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pin::watch_forks();
    m.add_class::<reader::Reader>()?;
    m.add_class::<snapshot::Snapshot>()?;
    m.add_class::<view::View>()?;
    m.add_class::<changed::AsyncWait>()?;
    m.add_class::<writer::Writer>()?;
    m.add_class::<map::MapReader>()?;
    m.add_class::<map::MapSnapshot>()?;
    m.add_function(wrap_pyfunction!(tools::list, m)?)?;
    m.add_function(wrap_pyfunction!(tools::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(tools::schema_json, m)?)?;
    m.add_function(wrap_pyfunction!(tools::remove, m)?)?;
    Ok(())
}
