//! Decoded values as Python objects.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;
use shmstate::dynamic::Value;

/// A leaf (`Shape::Leaf`): numbers as `int`/`float`, `char` and strings as
/// `str`, `()` as `None`; anything else in its JSON form.
pub(crate) fn leaf(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    match v {
        Value::Unit => Ok(py.None()),
        Value::Bool(b) => b.into_py_any(py),
        Value::U64(n) => n.into_py_any(py),
        Value::I64(n) => n.into_py_any(py),
        Value::U128(n) => n.into_py_any(py),
        Value::I128(n) => n.into_py_any(py),
        Value::F32(x) => f64::from(*x).into_py_any(py),
        Value::F64(x) => x.into_py_any(py),
        Value::Char(c) => c.into_py_any(py),
        Value::String(s) => s.into_py_any(py),
        other => to_python(py, other),
    }
}

/// `v` in serde's JSON form (`dynamic::Value: Serialize`, what `shmstate
/// dump --json` prints), as plain Python values: equal to `json.loads` of it.
pub(crate) fn to_python(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(v).map_err(|e| crate::errors::raise("Invalid", format!("rendering: {e}")))?;
    json_to_py(py, &json)
}

fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None(),
        J::Bool(b) => b.into_py_any(py)?,
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_py_any(py)?,
            (_, Some(i)) => i.into_py_any(py)?,
            _ => n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?,
        },
        J::String(s) => s.into_py_any(py)?,
        J::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any().unbind()
        }
        J::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A Python value in the JSON form `dynamic::from_json` reads: dicts (keys
/// as strings, as serde_json writes them), lists and tuples, str, bool,
/// int, float, None, dataclasses (their fields), and numeric buffers (numpy
/// arrays, `array.array`), copied whole without a Python call per element.
pub(crate) fn from_python(v: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    from_python_at(v, 0)
}

/// Deeper than this is refused (the encoder's own limit is lower).
const MAX_DEPTH: usize = 256;

fn from_python_at(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<serde_json::Value> {
    use pyo3::types::{PyBool, PyFloat, PyInt, PyString, PyTuple};
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err(crate::errors::raise("Invalid", format!("a value nested deeper than {MAX_DEPTH}")));
    }
    if v.is_none() {
        return Ok(J::Null);
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(J::Bool(b.is_true()));
    }
    if let Ok(i) = v.cast::<PyInt>() {
        return int_json(i);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(float_json(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(J::String(s.to_str()?.to_owned()));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(d.len());
        for (k, item) in d.iter() {
            let key = match from_python_at(&k, depth + 1)? {
                J::String(s) => s,
                other => other.to_string(),
            };
            map.insert(key, from_python_at(&item, depth + 1)?);
        }
        return Ok(J::Object(map));
    }
    if let Ok(l) = v.cast::<PyList>() {
        return l.iter().map(|x| from_python_at(&x, depth + 1)).collect::<PyResult<_>>().map(J::Array);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return t.iter().map(|x| from_python_at(&x, depth + 1)).collect::<PyResult<_>>().map(J::Array);
    }
    if let Some(array) = buffer_json(v)? {
        return Ok(array);
    }
    let py = v.py();
    if v.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
        let fields = v.getattr(pyo3::intern!(py, "__dataclass_fields__"))?;
        let fields = fields.cast::<PyDict>()?;
        let mut map = serde_json::Map::with_capacity(fields.len());
        for name in fields.keys() {
            let name: String = name.extract()?;
            map.insert(name.clone(), from_python_at(&v.getattr(name.as_str())?, depth + 1)?);
        }
        return Ok(J::Object(map));
    }
    if let Ok(view) = v.cast::<crate::view::View>() {
        return from_python_at(&view.get().to_python_value(py)?.into_bound(py), depth + 1);
    }
    // numpy scalars and other numbers: `__index__`, then `__float__`.
    if v.hasattr(pyo3::intern!(py, "__index__"))? {
        if let Ok(i) = v.call_method0(pyo3::intern!(py, "__index__")) {
            if let Ok(i) = i.cast::<PyInt>() {
                return int_json(i);
            }
        }
    }
    if let Ok(x) = v.extract::<f64>() {
        return Ok(float_json(x));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "cannot publish a {} (dicts, lists, tuples, str, int, float, bool, None, dataclasses and numeric buffers can be)",
        v.get_type().name()?
    )))
}

fn int_json(i: &Bound<'_, pyo3::types::PyInt>) -> PyResult<serde_json::Value> {
    if let Ok(n) = i.extract::<i64>() {
        return Ok(n.into());
    }
    if let Ok(n) = i.extract::<u64>() {
        return Ok(n.into());
    }
    // u128/i128 are read from decimal strings too.
    Ok(serde_json::Value::String(i.str()?.to_str()?.to_owned()))
}

/// NaN and the infinities as `null`, as serde_json writes them (`from_json`
/// reads `null` as NaN for a float).
fn float_json(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// A one-dimensional buffer of plain numbers (numpy arrays, `array.array`,
/// `memoryview`s, but not `bytes`, which are sequences of ints too) as a JSON
/// array, through one copy of its elements.
fn buffer_json(v: &Bound<'_, PyAny>) -> PyResult<Option<serde_json::Value>> {
    use pyo3::buffer::PyBuffer;
    macro_rules! try_as {
        ($($t:ty => $conv:expr),* $(,)?) => {
            $(
                if let Ok(buf) = PyBuffer::<$t>::get(v) {
                    if buf.dimensions() != 1 {
                        return Err(crate::errors::raise("Invalid", format!("a buffer of {} dimensions (one is published as a vector)", buf.dimensions())));
                    }
                    let items = buf.to_vec(v.py())?;
                    let conv = $conv;
                    return Ok(Some(serde_json::Value::Array(items.into_iter().map(conv).collect())));
                }
            )*
        };
    }
    // A Python object without the buffer protocol fails fast here.
    if v.cast::<pyo3::types::PyBytes>().is_ok() || v.cast::<pyo3::types::PyByteArray>().is_ok() {
        let bytes: Vec<u8> = v.extract()?;
        return Ok(Some(serde_json::Value::Array(bytes.into_iter().map(serde_json::Value::from).collect())));
    }
    try_as!(
        f64 => float_json,
        f32 => |x: f32| float_json(f64::from(x)),
        i64 => serde_json::Value::from,
        u64 => serde_json::Value::from,
        i32 => serde_json::Value::from,
        u32 => serde_json::Value::from,
        i16 => serde_json::Value::from,
        u16 => serde_json::Value::from,
        i8 => serde_json::Value::from,
        u8 => serde_json::Value::from,
    );
    Ok(None)
}
