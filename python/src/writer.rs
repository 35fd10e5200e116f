//! `shmstate.Writer`: publishes Python values into an object of any type,
//! under a schema (the object's own, a schema file's, or another object's),
//! with the library's schema-driven encoder (`dynamic::from_json`,
//! `dynamic::encode` in `RawWriter::publish_value`).

use parking_lot::Mutex;
use pyo3::prelude::*;
use shmstate::dynamic;
use shmstate::schema::SchemaDoc;
use shmstate::RawWriter;

use crate::convert::from_python;
use crate::errors::{kind_of, raise};

#[pyclass(subclass, module = "shmstate", name = "Writer")]
pub(crate) struct Writer {
    name: String,
    raw: Mutex<Option<RawWriter>>,
}

impl Writer {
    fn closed(&self) -> PyErr {
        raise("Error", format!("the writer of {} is closed", self.name))
    }
}

#[pymethods]
impl Writer {
    /// Opens `name` for writing. `schema_json`: a schema file's text
    /// (`shmstate schema NAME`); without it, the schema stored in the
    /// existing object (whose writer must be gone). `create_only`: refuse an
    /// existing object (`AlreadyExists`).
    #[staticmethod]
    #[pyo3(signature = (name, schema_json = None, create_only = false))]
    fn _open(py: Python<'_>, name: String, schema_json: Option<String>, create_only: bool) -> PyResult<Self> {
        let raw = py
            .detach(|| {
                let options = RawWriter::options();
                match &schema_json {
                    None => options.open_existing_raw(&name).map_err(kind_of),
                    Some(text) => {
                        let schema =
                            SchemaDoc::from_json(text).map_err(|e| ("Invalid".to_string(), format!("schema: {e}")))?;
                        let r = if create_only {
                            options.create_raw(&name, &schema)
                        } else {
                            options.open_or_create_raw(&name, &schema)
                        };
                        r.map_err(kind_of)
                    }
                }
            })
            .map_err(|(kind, msg)| raise(&kind, msg))?;
        Ok(Writer { name, raw: Mutex::new(Some(raw)) })
    }

    /// The object's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The schema it publishes under, as a schema file's JSON text.
    #[getter]
    fn schema_json(&self) -> PyResult<String> {
        self.raw.lock().as_ref().map(|w| w.schema().to_json()).ok_or_else(|| self.closed())
    }

    /// The stored type's name.
    #[getter]
    fn type_name(&self) -> PyResult<String> {
        self.raw.lock().as_ref().map(|w| w.schema().root().name.clone()).ok_or_else(|| self.closed())
    }

    /// Publishes `value` (dicts, lists, tuples, str, int, float, bool, None,
    /// dataclasses, and buffers such as numpy arrays for numeric vectors, in
    /// the JSON forms `shmstate dump --json` prints) and returns its
    /// generation. A value that does not fit the schema is `Invalid`
    /// naming the path; nothing is published then.
    fn publish(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<u64> {
        let json = from_python(value)?;
        let mut guard = self.raw.lock();
        let w = guard.as_mut().ok_or_else(|| self.closed())?;
        let name = &self.name;
        py.detach(|| {
            let value = dynamic::from_json(w.schema(), &json).map_err(|e| {
                ("Invalid".to_string(), format!("{name}: {e} (the object holds a {})", w.schema().root().name))
            })?;
            w.publish_value(&value).map_err(kind_of)
        })
        .map(|g| g.get())
        .map_err(|(kind, msg)| raise(&kind, msg))
    }

    /// Closes the writer (readers go on reading its last snapshot).
    fn close(&self) {
        drop(self.raw.lock().take());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<shmstate.Writer {:?}>", self.name)
    }
}
