//! Library values that serialise (settings, step statistics, adapter descriptions) as plain
//! Python objects, through JSON.

use crate::errors::value_error;
use pyo3::prelude::*;
use serde::Serialize;

/// `value` as the Python object `json.loads` makes of its JSON: dicts, lists, strings, numbers,
/// booleans and `None`.
pub fn to_python<'py, T: Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| value_error(format!("cannot convert to Python: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}
