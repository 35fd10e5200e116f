//! `shmstate.Snapshot`: one pinned generation; attribute and item access go
//! to its root value.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3::IntoPyObjectExt;

use crate::errors::{invalid, raise};
use crate::pin::Pin;
use crate::view::{generic_getattr, wrap, View};

/// The snapshot's own attributes: they come before the root's fields of the
/// same name (which `snap.value.NAME` reaches).
const OWN: [&str; 7] = ["generation", "size", "type_name", "value", "released", "release", "to_python"];

#[pyclass(frozen, module = "shmstate", name = "Snapshot")]
pub(crate) struct Snapshot {
    generation: u64,
    /// The object it was read from (`Object::incarnation`).
    incarnation: u64,
    size: usize,
    type_name: String,
    /// The root value (a `View`, or a leaf's value) and the pin, until released.
    held: Mutex<Option<(Arc<Pin>, Py<PyAny>)>>,
    // SYNC(released): Relaxed: set and read with the GIL held.
    released: AtomicBool,
}

impl Snapshot {
    pub(crate) fn new(py: Python<'_>, pin: Pin) -> PyResult<Self> {
        let pin = Arc::new(pin);
        let cursor = pin.cursor()?;
        let root = cursor.root().map_err(invalid)?;
        let type_name = pin.object.schema.root().name.clone();
        let value = wrap(py, &pin, root)?;
        Ok(Snapshot {
            generation: pin.generation,
            incarnation: pin.object.incarnation,
            size: pin.len(),
            type_name,
            held: Mutex::new(Some((pin, value))),
            released: AtomicBool::new(false),
        })
    }

    /// Whether it is the latest snapshot of the object (`incarnation`) whose
    /// latest generation is `generation`, and still holds its pin.
    #[inline]
    pub(crate) fn is_latest(&self, incarnation: u64, generation: u64) -> bool {
        self.generation == generation && self.incarnation == incarnation && !self.released.load(Relaxed)
    }

    fn root(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &*self.held.lock() {
            Some((_, root)) => Ok(root.clone_ref(py)),
            None => Err(raise("Released", format!("the snapshot of generation {} was released", self.generation))),
        }
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Relaxed)
    }

    pub(crate) fn release(&self) {
        self.released.store(true, Relaxed);
        // Dropped outside the lock: the pin's drop takes the pool's.
        let held = self.held.lock().take();
        drop(held);
    }
}

#[pymethods]
impl Snapshot {
    /// The generation (counted from 1 in each object).
    #[getter(generation)]
    fn get_generation(&self) -> u64 {
        self.generation
    }

    /// Its serialized size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// The stored type's name.
    #[getter]
    fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The root value: a `View`, or the value itself for a root that is a
    /// number or string.
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.root(py)
    }

    /// Whether `release()` (or the end of a `with` block) let it go.
    #[getter]
    fn released(&self) -> bool {
        self.released.load(Relaxed)
    }

    /// The snapshot's own attributes, then the root value's fields.
    fn __getattribute__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let s = name.to_str()?;
        if s.starts_with('_') || OWN.contains(&s) {
            return generic_getattr(slf.as_any(), name);
        }
        let this = slf.get();
        let root = this.root(py)?;
        if let Ok(view) = root.bind(py).cast::<View>() {
            if let Some(v) = view.get().field(py, s)? {
                return Ok(v);
            }
        }
        generic_getattr(slf.as_any(), name)
    }

    /// Called after `__getattribute__` found nothing: the message.
    fn __getattr__(&self, name: &str) -> PyResult<Py<PyAny>> {
        Err(PyAttributeError::new_err(format!("{} has no field {name:?}", self.type_name)))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let root = self.root(py)?;
        root.bind(py).get_item(key).map(Bound::unbind)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.root(py)?.bind(py).len()
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.root(py)?.bind(py).try_iter()?.into_any().unbind())
    }

    fn __dir__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let root = self.root(py)?;
        let mut names: Vec<String> = root.bind(py).dir()?.extract()?;
        names
            .extend(["generation", "size", "type_name", "value", "released", "release", "to_python"].map(String::from));
        names.into_py_any(py)
    }

    /// The whole value as plain Python values: `json.loads(shmstate dump --json)`.
    fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let pin = match &*self.held.lock() {
            Some((pin, _)) => Arc::clone(pin),
            None => {
                return Err(raise("Released", format!("the snapshot of generation {} was released", self.generation)))
            }
        };
        let cursor = pin.cursor()?;
        let value = cursor.decode(cursor.root().map_err(invalid)?).map_err(invalid)?;
        crate::convert::to_python(py, &value)
    }

    /// Lets go of the pin (views taken from it keep theirs).
    #[pyo3(name = "release")]
    fn py_release(&self) {
        self.release()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        format!("<shmstate.Snapshot {} generation {}, {} bytes>", self.type_name, self.generation, self.size)
    }
}
