//! `shmstate.View`: a struct, tuple, vector, map, set or enum inside a
//! pinned snapshot, read one field at a time (`dynamic::Cursor`). Numeric
//! vectors export the buffer protocol, read-only.

use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::{PyAttributeError, PyBufferError, PyIndexError, PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PySlice, PyString};
use pyo3::{ffi, IntoPyObjectExt};
use shmstate::dynamic::{Node, NodeFields, Shape, Value};
use shmstate::schema::{Kind, Primitive};

use crate::convert::{leaf, to_python};
use crate::errors::invalid;
use crate::pin::Pin;

/// Rust's archived numbers are little-endian; the buffer formats are native.
#[cfg(not(target_endian = "little"))]
compile_error!("the buffer formats assume a little-endian host");

#[pyclass(frozen, module = "shmstate", name = "View")]
pub(crate) struct View {
    pin: Arc<Pin>,
    node: Node,
    shape: Shape,
    /// Named fields by name (structs, enum variants).
    names: OnceLock<HashMap<String, Node>>,
    /// A map's keys as Python values, and a dict from them to the entry.
    keys: OnceLock<(Vec<Py<PyAny>>, Py<PyDict>)>,
    /// For the buffer protocol: element count and size (`shape`, `strides`).
    dims: [isize; 2],
}

/// Python's own attribute lookup (methods, getters) on `obj`.
pub(crate) fn generic_getattr(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<Py<PyAny>> {
    // SAFETY: `obj` and `name` are live objects borrowed for the call, which
    // returns a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(obj.py(), ffi::PyObject_GenericGetAttr(obj.as_ptr(), name.as_ptr())) }
        .map(Bound::unbind)
}

/// `node` as Python: a leaf as its value, `None`/`Some` as `None`/the value,
/// anything else as a `View`.
pub(crate) fn wrap(py: Python<'_>, pin: &Arc<Pin>, node: Node) -> PyResult<Py<PyAny>> {
    let mut node = node;
    loop {
        let shape = pin.cursor()?.expand(node).map_err(invalid)?;
        return match shape {
            Shape::Leaf(v) => leaf(py, &v),
            Shape::Option(None) => Ok(py.None()),
            Shape::Option(Some(inner)) => {
                node = inner;
                continue;
            }
            shape => View::new(pin, node, shape).into_py_any(py),
        };
    }
}

impl View {
    pub(crate) fn new(pin: &Arc<Pin>, node: Node, shape: Shape) -> Self {
        let dims = match shape {
            Shape::Seq { elem_size, len, .. } => [len as isize, elem_size as isize],
            _ => [0, 0],
        };
        View { pin: Arc::clone(pin), node, shape, names: OnceLock::new(), keys: OnceLock::new(), dims }
    }

    fn fields(&self) -> Option<&NodeFields> {
        match &self.shape {
            Shape::Struct { fields, .. } | Shape::Enum { fields, .. } => Some(fields),
            _ => None,
        }
    }

    fn names(&self) -> &HashMap<String, Node> {
        self.names.get_or_init(|| match self.fields() {
            Some(NodeFields::Named(f)) => f.iter().cloned().collect(),
            _ => HashMap::new(),
        })
    }

    /// Positional children: tuple elements, tuple fields.
    fn positional(&self) -> Option<&[Node]> {
        match &self.shape {
            Shape::Tuple(items) => Some(items),
            Shape::Struct { fields: NodeFields::Tuple(items), .. }
            | Shape::Enum { fields: NodeFields::Tuple(items), .. } => Some(items),
            _ => None,
        }
    }

    fn map_keys(&self, py: Python<'_>) -> PyResult<&(Vec<Py<PyAny>>, Py<PyDict>)> {
        if let Some(k) = self.keys.get() {
            return Ok(k);
        }
        let Shape::Map(entries) = &self.shape else { return Err(PyTypeError::new_err("not a map")) };
        let cursor = self.pin.cursor()?;
        let dict = PyDict::new(py);
        let mut keys = Vec::with_capacity(entries.len());
        for (i, (k, _)) in entries.iter().enumerate() {
            let key = to_python(py, &cursor.decode(*k).map_err(invalid)?)?;
            // Unhashable keys (structs as dicts) cannot be looked up.
            let _ = dict.set_item(&key, i);
            keys.push(key);
        }
        Ok(self.keys.get_or_init(|| (keys, dict.unbind())))
    }

    fn element(&self, i: isize) -> PyResult<Node> {
        let len = self.len_of() as isize;
        let j = if i < 0 { i + len } else { i };
        if j < 0 || j >= len {
            return Err(PyIndexError::new_err(format!("index {i} out of range for length {len}")));
        }
        match &self.shape {
            Shape::Seq { .. } => {
                let cursor = self.pin.cursor()?;
                cursor.element(&self.shape, j as u64).ok_or_else(|| PyIndexError::new_err("index out of range"))
            }
            Shape::Set(items) => Ok(items[j as usize]),
            _ => match self.positional() {
                Some(items) => Ok(items[j as usize]),
                None => Err(PyTypeError::new_err(format!("{} is not indexed by position", self.type_name()))),
            },
        }
    }

    fn len_of(&self) -> usize {
        match &self.shape {
            Shape::Seq { len, .. } => *len as usize,
            Shape::Map(e) => e.len(),
            Shape::Set(e) => e.len(),
            Shape::Tuple(e) => e.len(),
            _ => match self.fields() {
                Some(NodeFields::Tuple(f)) => f.len(),
                Some(NodeFields::Named(f)) => f.len(),
                _ => 0,
            },
        }
    }

    fn type_name(&self) -> String {
        self.pin.object.schema.types.get(self.node.ty as usize).map_or_else(|| "?".into(), |t| t.name.clone())
    }

    /// The buffer format of the elements, if they are plain numbers.
    fn format(&self) -> Option<&'static CStr> {
        let Shape::Seq { elem, .. } = self.shape else { return None };
        let Kind::Primitive(p) = self.pin.object.schema.types.get(elem as usize)?.kind else { return None };
        Some(match p {
            Primitive::U8 => c"B",
            Primitive::I8 => c"b",
            Primitive::U16 => c"H",
            Primitive::I16 => c"h",
            Primitive::U32 | Primitive::Usize => c"I",
            Primitive::I32 | Primitive::Isize => c"i",
            Primitive::U64 => c"Q",
            Primitive::I64 => c"q",
            Primitive::F32 => c"f",
            Primitive::F64 => c"d",
            Primitive::Bool => c"?",
            _ => return None,
        })
    }

    /// The field `name` (or an enum's `variant`), if there is one.
    pub(crate) fn field(&self, py: Python<'_>, name: &str) -> PyResult<Option<Py<PyAny>>> {
        if let Shape::Enum { variant, .. } = &self.shape {
            if name == "variant" {
                return variant.into_py_any(py).map(Some);
            }
        }
        match self.names().get(name) {
            Some(node) => wrap(py, &self.pin, *node).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn attr(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        self.field(py, name)?
            .ok_or_else(|| PyAttributeError::new_err(format!("{} has no field {name:?}", self.type_name())))
    }

    pub(crate) fn item(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Shape::Map(entries) = &self.shape {
            let (_, dict) = self.map_keys(py)?;
            return match dict.bind(py).get_item(key)? {
                Some(i) => wrap(py, &self.pin, entries[i.extract::<usize>()?].1),
                None => Err(PyKeyError::new_err(key.clone().unbind())),
            };
        }
        if let Ok(name) = key.extract::<&str>() {
            return self.attr(py, name).map_err(|_| PyKeyError::new_err(name.to_string()));
        }
        if let Ok(slice) = key.cast::<PySlice>() {
            let idx = slice.indices(self.len_of() as isize)?;
            let out = PyList::empty(py);
            let mut i = idx.start;
            for _ in 0..idx.slicelength {
                out.append(wrap(py, &self.pin, self.element(i)?)?)?;
                i += idx.step;
            }
            return out.into_py_any(py);
        }
        let i: isize = key.extract()?;
        wrap(py, &self.pin, self.element(i)?)
    }

    pub(crate) fn to_python_value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value: Value = self.pin.cursor()?.decode(self.node).map_err(invalid)?;
        to_python(py, &value)
    }

    pub(crate) fn list_iter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let out = PyList::empty(py);
        match &self.shape {
            Shape::Map(_) => {
                for k in &self.map_keys(py)?.0 {
                    out.append(k)?;
                }
            }
            Shape::Struct { fields: NodeFields::Named(f), .. } | Shape::Enum { fields: NodeFields::Named(f), .. } => {
                for (name, _) in f {
                    out.append(name)?;
                }
            }
            _ => {
                for i in 0..self.len_of() {
                    out.append(wrap(py, &self.pin, self.element(i as isize)?)?)?;
                }
            }
        }
        Ok(out.as_any().try_iter()?.into_any().unbind())
    }
}

#[pymethods]
impl View {
    /// Fields first (one hash lookup, no AttributeError raised and caught
    /// on the way), then the methods; dunder names go to the methods only.
    fn __getattribute__(slf: &Bound<'_, Self>, name: &Bound<'_, PyString>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let s = name.to_str()?;
        if !s.starts_with("__") {
            if let Some(v) = slf.get().field(py, s)? {
                return Ok(v);
            }
        }
        generic_getattr(slf.as_any(), name)
    }

    /// Called after `__getattribute__` found nothing: the message.
    fn __getattr__(&self, name: &str) -> PyResult<Py<PyAny>> {
        Err(PyAttributeError::new_err(format!("{} has no field {name:?}", self.type_name())))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.item(py, key)
    }

    fn __len__(&self) -> usize {
        self.len_of()
    }

    /// Elements (vectors, tuples, sets), keys (maps) or field names (structs).
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.list_iter(py)
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        match &self.shape {
            Shape::Map(_) => self.map_keys(py)?.1.bind(py).contains(key),
            _ => {
                for item in self.list_iter(py)?.bind(py).try_iter()? {
                    if item?.eq(key)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn __dir__(&self) -> Vec<String> {
        let mut d: Vec<String> = self.names().keys().cloned().collect();
        if matches!(self.shape, Shape::Enum { .. }) {
            d.push("variant".into());
        }
        d.extend(["to_python", "type_name"].map(String::from));
        if matches!(self.shape, Shape::Map(_)) {
            d.extend(["keys", "values", "items", "get"].map(String::from));
        }
        d.sort();
        d
    }

    fn __repr__(&self) -> String {
        match &self.shape {
            Shape::Enum { variant, .. } => format!("<shmstate.View {}::{variant}>", self.type_name()),
            _ => format!("<shmstate.View {} ({} items)>", self.type_name(), self.len_of()),
        }
    }

    /// The type's name as the schema spells it.
    #[getter(type_name)]
    fn py_type_name(&self) -> String {
        self.type_name()
    }

    /// The value decoded whole, as `json.loads(shmstate dump --json)` gives it.
    fn to_python(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.to_python_value(py)
    }

    /// A map's keys.
    fn keys(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        Ok(self.map_keys(py)?.0.iter().map(|k| k.clone_ref(py)).collect())
    }

    /// A map's values.
    fn values(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let Shape::Map(entries) = &self.shape else { return Err(PyTypeError::new_err("not a map")) };
        entries.iter().map(|(_, v)| wrap(py, &self.pin, *v)).collect()
    }

    /// A map's entries.
    fn items(&self, py: Python<'_>) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
        let Shape::Map(entries) = &self.shape else { return Err(PyTypeError::new_err("not a map")) };
        let keys = &self.map_keys(py)?.0;
        entries.iter().zip(keys).map(|((_, v), k)| Ok((k.clone_ref(py), wrap(py, &self.pin, *v)?))).collect()
    }

    /// A map's value for `key`, or `default`.
    #[pyo3(signature = (key, default = None))]
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        match self.item(py, key) {
            Ok(v) => Ok(v),
            Err(e) if e.is_instance_of::<PyKeyError>(py) => Ok(default.unwrap_or_else(|| py.None())),
            Err(e) => Err(e),
        }
    }

    /// Read-only buffers of numeric vectors and arrays, pointing into the
    /// pinned snapshot; the exporter (this view) holds the pin.
    unsafe fn __getbuffer__(slf: PyRef<'_, Self>, view: *mut ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let Some(format) = slf.format() else {
            return Err(PyBufferError::new_err(format!("{} is not a vector of plain numbers", slf.type_name())));
        };
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("shmstate buffers are read-only"));
        }
        let Shape::Seq { start, .. } = slf.shape else { unreachable!("format() is Some only for a Seq") };
        let bytes = slf.pin.bytes()?;
        let [len, size] = slf.dims;
        // In range: `Cursor::expand` checked the sequence against the snapshot.
        let buf = bytes[start..].as_ptr();
        // Inside this view, which lives (frozen, in its Python object) as
        // long as the buffer holds a reference to it.
        let dims = slf.dims.as_ptr().cast_mut();
        // SAFETY: `view` is the `Py_buffer` CPython passes to fill; `obj` takes
        // a reference to this view, which owns the `Arc<Pin>` that keeps the
        // bytes pinned and mapped, and `dims`, which `shape`/`strides` point
        // to, until CPython releases the buffer (and that reference).
        unsafe {
            (*view).obj = slf.into_ptr();
            (*view).buf = buf as *mut std::ffi::c_void;
            (*view).len = len * size;
            (*view).readonly = 1;
            (*view).itemsize = size;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                format.as_ptr() as *mut std::ffi::c_char
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND { dims } else { std::ptr::null_mut() };
            (*view).strides =
                if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES { dims.add(1) } else { std::ptr::null_mut() };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
