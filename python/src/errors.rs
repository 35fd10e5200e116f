//! Rust errors as Python exceptions: one class per variant name (defined in
//! `shmstate/_errors.py`, so that some can also derive from builtins such as
//! `TimeoutError`), with the Rust message.

use pyo3::prelude::*;
use pyo3::types::PyType;

/// The exception for a Rust error: the class named after its variant, with
/// its `Display` as the message.
pub(crate) fn to_py<E: std::fmt::Debug + std::fmt::Display + 'static>(e: E) -> PyErr {
    let (kind, message) = kind_of(e);
    raise(&kind, message)
}

/// The class name and message of `to_py(e)`, to raise once the GIL is held
/// again (`raise(&kind, message)`). The library's `Debug` forms end in
/// `(Type::Variant)`; a read error that is an open error is its open error's.
pub(crate) fn kind_of<E: std::fmt::Debug + std::fmt::Display + 'static>(e: E) -> (String, String) {
    let debug = match (&e as &dyn std::any::Any).downcast_ref::<shmstate::ReadError>() {
        Some(shmstate::ReadError::Open(open)) => format!("{open:?}"),
        _ => format!("{e:?}"),
    };
    (variant(&debug).to_string(), e.to_string())
}

fn variant(debug: &str) -> &str {
    debug
        .strip_suffix(')')
        .and_then(|d| d.rsplit_once("::"))
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("Error")
}

/// An exception of the class `kind` of `shmstate` (its base `Error` if there
/// is no such class).
pub(crate) fn raise(kind: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let class = py.import("shmstate._errors").and_then(|m| m.getattr(kind).or_else(|_| m.getattr("Error")));
        match class.and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from)) {
            Ok(class) => PyErr::from_type(class, message),
            Err(e) => e,
        }
    })
}

/// A snapshot whose bytes the cursor refuses (only bytes that were not
/// validated can: a bug, never a crash).
pub(crate) fn invalid(e: shmstate::dynamic::DecodeError) -> PyErr {
    raise("Invalid", e.to_string())
}
