//! NumPy arrays in and out: float32 or float64 arrays (or anything `numpy.asarray` turns into
//! floats) read as f32 with their shape, and f32 results handed back as float32 arrays.

use crate::errors::value_error;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{PyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// A host array of f32 values, row-major, with its shape.
pub struct Floats {
    /// The values.
    pub data: Vec<f32>,
    /// The shape.
    pub shape: Vec<usize>,
}

/// Reads `obj` as f32 values: a float32 array as it is, a float64 array rounded; an array of any
/// other dtype is a `ValueError` naming `what` and the dtype. An object that is not an array
/// goes through `numpy.asarray(obj, dtype=float64)` first.
pub fn read_floats(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Floats> {
    let py = obj.py();
    let converted;
    let array = match obj.cast::<PyUntypedArray>() {
        Ok(array) => array,
        Err(_) => {
            let numpy = py.import("numpy")?;
            converted = numpy
                .call_method1("asarray", (obj, "float64"))
                .map_err(|e| value_error(format!("{what} must be a float32 or float64 array: {e}")))?;
            converted.cast::<PyUntypedArray>().map_err(|_| value_error(format!("{what} must be a float32 or float64 array")))?
        }
    };
    let shape = array.shape().to_vec();
    if let Ok(array) = array.cast::<PyArrayDyn<f32>>() {
        let data = array.readonly().as_array().iter().copied().collect();
        return Ok(Floats { data, shape });
    }
    if let Ok(array) = array.cast::<PyArrayDyn<f64>>() {
        let data = array.readonly().as_array().iter().map(|&v| v as f32).collect();
        return Ok(Floats { data, shape });
    }
    let dtype = array.dtype().str().map(|s| s.to_string()).unwrap_or_else(|_| "an unknown dtype".into());
    Err(value_error(format!("{what} must be a float32 or float64 array, got dtype {dtype}")))
}

/// `data` as a float32 array of `shape`.
pub fn to_numpy<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let array = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| value_error(format!("result shape {shape:?}: {e}")))?;
    Ok(PyArray::from_owned_array(py, array).into_any())
}
