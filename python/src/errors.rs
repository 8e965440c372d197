//! How the library's errors reach Python: bad arguments, shapes and data as `ValueError`, device
//! failures as `RuntimeError`, file errors as the matching `OSError`.

use eggroll::{BackendError, EggrollError};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use std::io::ErrorKind;
use std::path::Path;

/// The Python exception of a library error.
pub fn to_py(err: EggrollError) -> PyErr {
    match err {
        EggrollError::Backend(e) => backend_to_py(e),
        EggrollError::Io(e) => PyErr::from(e),
        e @ (EggrollError::Config(_) | EggrollError::Data(_) | EggrollError::CorruptState(_) | EggrollError::Checkpoint(_)) => {
            PyValueError::new_err(e.to_string())
        }
    }
}

/// The Python exception of a backend error: what the caller passed is a `ValueError`, what the
/// device did a `RuntimeError`.
pub fn backend_to_py(err: BackendError) -> PyErr {
    match err {
        e @ (BackendError::Shape(_) | BackendError::InvalidArgument(_) | BackendError::NonFiniteFitness { .. }) => {
            PyValueError::new_err(e.to_string())
        }
        e => PyRuntimeError::new_err(e.to_string()),
    }
}

/// A `ValueError` with `message`.
pub fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// The `OSError` of a file operation on `path` that failed with `err`, naming the path:
/// `FileNotFoundError` and `PermissionError` where those apply.
pub fn io_error(path: &Path, err: std::io::Error) -> PyErr {
    let message = format!("{}: {err}", path.display());
    match err.kind() {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        _ => PyOSError::new_err(message),
    }
}
