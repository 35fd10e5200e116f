//! `shmstate.MapReader` and `shmstate.MapSnapshot`: a map object (docs/MAP.md)
//! read by name without its Rust types, through `shmstate::map::RawMapReader`
//! (keys by their recorded kind, values decoded with the stored schema into
//! the plain Python values `Snapshot.to_python()` gives).
//!
//! Each held `MapSnapshot` owns one `RawMapReader` (one reader pin on the
//! root object); released ones go back to the `MapReader`'s pool, so a
//! snapshot costs an open only when several are held at once.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::IntoPyObjectExt;
use shmstate::dynamic::Value;
use shmstate::map::{MapKeyKind, RawMapReader, RawMapSnapshot};

use crate::errors::{raise, to_py};

/// Released readers, ready for the next snapshot.
type Pool = Arc<Mutex<Vec<RawMapReader>>>;

#[pyclass(frozen, module = "shmstate", name = "MapReader")]
pub(crate) struct MapReader {
    name: String,
    kind: MapKeyKind,
    value_type: String,
    pool: Pool,
}

impl MapReader {
    fn take(&self) -> PyResult<RawMapReader> {
        match self.pool.lock().pop() {
            Some(r) => Ok(r),
            None => RawMapReader::open(&self.name).map_err(to_py),
        }
    }

    /// Runs `f` on a snapshot of the latest generation, released after.
    fn latest<T>(&self, f: impl FnOnce(&RawMapSnapshot<'_>) -> PyResult<T>) -> PyResult<T> {
        let mut r = self.take()?;
        let out = match r.read() {
            Ok(snap) => f(&snap),
            Err(e) => Err(to_py(e)),
        };
        r.release();
        self.pool.lock().push(r);
        out
    }
}

#[pymethods]
impl MapReader {
    /// MapReader(name): the map object `name`, any key and value types.
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        let r = RawMapReader::open(name).map_err(to_py)?;
        let (kind, value_type) = (r.key_kind(), r.schema().root().name.clone());
        Ok(MapReader { name: name.into(), kind, value_type, pool: Arc::new(Mutex::new(vec![r])) })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The key type's Rust name (`String`, `u64`, `Vec<u8>`…).
    #[getter]
    fn key_type(&self) -> String {
        self.kind.name()
    }

    /// The value type's name, as the stored schema spells it.
    #[getter]
    fn value_type(&self) -> &str {
        &self.value_type
    }

    /// A snapshot of the latest generation, held (the writer keeps its
    /// blocks) until `release()` or the end of a `with` block.
    fn read(&self) -> PyResult<MapSnapshot> {
        let mut r = self.take()?;
        let generation = match r.read() {
            Ok(snap) => snap.generation().get(),
            Err(e) => {
                self.pool.lock().push(r);
                return Err(to_py(e));
            }
        };
        Ok(MapSnapshot { generation, kind: self.kind, reader: Mutex::new(Some(r)), pool: self.pool.clone() })
    }

    /// The value of `key` in the latest generation, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let key = key_bytes(self.kind, key)?;
        match self.latest(|snap| snap.get(&key).map_err(to_py))? {
            Some(v) => crate::convert::to_python(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let bytes = key_bytes(self.kind, key)?;
        match self.latest(|snap| snap.get(&bytes).map_err(to_py))? {
            Some(v) => crate::convert::to_python(py, &v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_bytes(self.kind, key)?;
        self.latest(|snap| Ok(snap.get_bytes(&key).map_err(to_py)?.is_some()))
    }

    /// Entries of the latest generation.
    fn __len__(&self) -> PyResult<usize> {
        self.latest(|snap| Ok(snap.len() as usize))
    }

    /// The keys of the latest generation, in key order.
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items = self.latest(|snap| entries(snap, None))?;
        keys_iter(py, self.kind, &items)
    }

    /// `[(key, value)]` of the latest generation in key order; with `prefix`
    /// (`str` or `bytes` keys), only the keys that start with it.
    #[pyo3(signature = (prefix = None))]
    fn items(&self, py: Python<'_>, prefix: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let prefix = prefix.map(|p| prefix_bytes(self.kind, p)).transpose()?;
        let items = self.latest(|snap| entries(snap, prefix.as_deref()))?;
        items_list(py, self.kind, &items)
    }

    fn __repr__(&self) -> String {
        format!("<shmstate.MapReader {:?}: map<{}, {}>>", self.name, self.kind.name(), self.value_type)
    }
}

/// One held generation of a map.
#[pyclass(frozen, module = "shmstate", name = "MapSnapshot")]
pub(crate) struct MapSnapshot {
    generation: u64,
    kind: MapKeyKind,
    /// The reader whose pin holds the generation; `None` once released.
    reader: Mutex<Option<RawMapReader>>,
    pool: Pool,
}

impl MapSnapshot {
    fn with<T>(&self, f: impl FnOnce(&RawMapSnapshot<'_>) -> PyResult<T>) -> PyResult<T> {
        let guard = self.reader.lock();
        let snap = guard.as_ref().and_then(RawMapReader::pinned);
        match snap {
            Some(snap) => f(&snap),
            None => Err(raise("Released", format!("generation {} of the map was released", self.generation))),
        }
    }

    fn release(&self) {
        if let Some(mut r) = self.reader.lock().take() {
            r.release();
            self.pool.lock().push(r);
        }
    }
}

impl Drop for MapSnapshot {
    fn drop(&mut self) {
        self.release();
    }
}

#[pymethods]
impl MapSnapshot {
    /// The generation (commit) shown.
    #[getter]
    fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `release()` was called.
    #[getter]
    fn released(&self) -> bool {
        self.reader.lock().is_none()
    }

    /// The value of `key`, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let key = key_bytes(self.kind, key)?;
        match self.with(|snap| snap.get(&key).map_err(to_py))? {
            Some(v) => crate::convert::to_python(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let bytes = key_bytes(self.kind, key)?;
        match self.with(|snap| snap.get(&bytes).map_err(to_py))? {
            Some(v) => crate::convert::to_python(py, &v),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_bytes(self.kind, key)?;
        self.with(|snap| Ok(snap.get_bytes(&key).map_err(to_py)?.is_some()))
    }

    fn __len__(&self) -> PyResult<usize> {
        self.with(|snap| Ok(snap.len() as usize))
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let items = self.with(|snap| entries(snap, None))?;
        keys_iter(py, self.kind, &items)
    }

    /// `[(key, value)]` in key order; with `prefix`, only the keys that start with it.
    #[pyo3(signature = (prefix = None))]
    fn items(&self, py: Python<'_>, prefix: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let prefix = prefix.map(|p| prefix_bytes(self.kind, p)).transpose()?;
        let items = self.with(|snap| entries(snap, prefix.as_deref()))?;
        items_list(py, self.kind, &items)
    }

    /// Lets go of the generation (the writer may reuse what only it reached).
    #[pyo3(name = "release")]
    fn py_release(&self) {
        self.release()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        format!("<shmstate.MapSnapshot generation {}>", self.generation)
    }
}

type Entries = Vec<(Value, Value)>;

fn entries(snap: &RawMapSnapshot<'_>, prefix: Option<&[u8]>) -> PyResult<Entries> {
    let iter = match prefix {
        Some(p) => snap.prefix(p),
        None => snap.iter(),
    };
    iter.collect::<Result<_, _>>().map_err(to_py)
}

/// A Python key as the map's key encoding: `int` for integer keys, `str`
/// for `String`, `bytes` for `Vec<u8>`.
fn key_bytes(kind: MapKeyKind, key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let value = match kind {
        MapKeyKind::String => {
            Value::String(key.extract::<String>().map_err(|_| PyTypeError::new_err(format!("a str key, not {key}")))?)
        }
        MapKeyKind::Bytes => {
            let b = key.cast::<PyBytes>().map_err(|_| PyTypeError::new_err(format!("a bytes key, not {key}")))?;
            return Ok(b.as_bytes().to_vec());
        }
        _ => {
            if let Ok(v) = key.extract::<i64>() {
                Value::I64(v)
            } else if let Ok(v) = key.extract::<u128>() {
                Value::U128(v)
            } else if let Ok(v) = key.extract::<i128>() {
                Value::I128(v)
            } else {
                return Err(PyTypeError::new_err(format!("an int key of {}, not {key}", kind.name())));
            }
        }
    };
    kind.encode(&value).map_err(|e| raise("Invalid", e))
}

fn prefix_bytes(kind: MapKeyKind, prefix: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    match kind {
        MapKeyKind::String | MapKeyKind::Bytes => key_bytes(kind, prefix),
        _ => {
            Err(PyTypeError::new_err(format!("a prefix needs str or bytes keys; this map's keys are {}", kind.name())))
        }
    }
}

fn key_to_py(py: Python<'_>, kind: MapKeyKind, key: &Value) -> PyResult<Py<PyAny>> {
    match (kind, key) {
        (MapKeyKind::Bytes, Value::Seq(items)) => {
            let bytes: Vec<u8> = items.iter().map(|b| if let Value::U64(b) = b { *b as u8 } else { 0 }).collect();
            PyBytes::new(py, &bytes).into_py_any(py)
        }
        _ => crate::convert::leaf(py, key),
    }
}

fn keys_iter(py: Python<'_>, kind: MapKeyKind, items: &Entries) -> PyResult<Py<PyAny>> {
    let list = PyList::empty(py);
    for (k, _) in items {
        list.append(key_to_py(py, kind, k)?)?;
    }
    Ok(list.try_iter()?.into_any().unbind())
}

fn items_list(py: Python<'_>, kind: MapKeyKind, items: &Entries) -> PyResult<Py<PyAny>> {
    let list = PyList::empty(py);
    for (k, v) in items {
        let pair = PyTuple::new(py, [key_to_py(py, kind, k)?, crate::convert::to_python(py, v)?])?;
        list.append(pair)?;
    }
    Ok(list.into_any().unbind())
}
