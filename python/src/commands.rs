//! The commands of `eggroll` called from Python: keyword arguments turned into the command line's
//! flags (`noise_cache_mb=64` is `--noise-cache-mb 64`) and parsed by the command line's own
//! parser, so that a call checks and means exactly what the command does.

use crate::errors::value_error;
use crate::json::to_python;
use clap::{CommandFactory, Parser};
use eggroll_cli::args::{Cli, Command};
use eggroll_cli::error::CliError;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString, PyTuple};

/// The command `eggroll <subcommand> <fixed...> <flags of kwargs>`, refusing a keyword that is
/// no option of the subcommand or is among `excluded` (`TypeError`, as Python refuses an unknown
/// keyword), and values the command line refuses (`ValueError`, with the parser's message).
pub fn parse(
    function: &str, subcommand: &str, fixed: &[String], kwargs: Option<&Bound<'_, PyDict>>, excluded: &[&str],
) -> PyResult<Command> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(subcommand).expect("a subcommand of eggroll");
    let mut argv = vec!["eggroll".to_string(), subcommand.to_string()];
    argv.extend_from_slice(fixed);
    for (key, value) in kwargs.into_iter().flat_map(|d| d.iter()) {
        let key: String = key.extract().map_err(|_| PyTypeError::new_err(format!("{function}() keywords must be strings")))?;
        let unknown = || PyTypeError::new_err(format!("{function}() got an unexpected keyword argument '{key}'"));
        if excluded.contains(&key.as_str()) {
            return Err(unknown());
        }
        let arg = sub.get_arguments().find(|a| a.get_id() == key.as_str() && a.get_long().is_some()).ok_or_else(unknown)?;
        let flag = format!("--{}", arg.get_long().expect("checked above"));
        if value.is_none() {
            continue;
        }
        if !arg.get_action().takes_values() {
            let on: bool = value
                .cast::<PyBool>()
                .map_err(|_| value_error(format!("{key} must be True or False, got {}", describe(&value))))?
                .is_true();
            if on {
                argv.push(flag);
            }
            continue;
        }
        argv.push(format!("{flag}={}", text(&key, &value)?));
    }
    let parsed = Cli::try_parse_from(&argv).map_err(|e| {
        let rendered = e.render().to_string();
        let line = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
        value_error(format!("{function}(): {}", line.trim_start_matches("error: ")))
    })?;
    Ok(parsed.command)
}

/// The command-line text of a keyword's value: a string or path as it is, a number as Python
/// prints it (floats exactly: the shortest text that reads back the same), a list or tuple of
/// them comma-separated.
fn text(key: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    if value.is_instance_of::<PyBool>() {
        return Err(value_error(format!("{key} must not be a bool, got {}", describe(value))));
    }
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        let items = value.try_iter()?.map(|item| text(key, &item?)).collect::<PyResult<Vec<_>>>()?;
        return Ok(items.join(","));
    }
    if value.is_instance_of::<PyString>() {
        return value.extract();
    }
    // Python's and NumPy's integers, then floats (as the shortest text that reads back the same).
    if let Ok(int) = value.extract::<i128>() {
        return Ok(int.to_string());
    }
    if let Ok(float) = value.extract::<f64>() {
        return PyFloat::new(value.py(), float).str()?.extract();
    }
    let os = value.py().import("os")?;
    match os.call_method1("fspath", (value,)) {
        Ok(path) => path.str()?.extract(),
        Err(_) => Err(value_error(format!("{key} must be a string, a number, a path or a list of them, got {}", describe(value)))),
    }
}

/// `repr(value)`, for messages.
fn describe(value: &Bound<'_, PyAny>) -> String {
    value.repr().map(|r| r.to_string()).unwrap_or_else(|_| "an unprintable value".into())
}

/// The Python exception of a command's failure: a device failure is a `RuntimeError`, anything
/// else (arguments, data, files) a `ValueError`.
pub fn to_py(err: CliError) -> PyErr {
    if err.is_device_failure() {
        PyRuntimeError::new_err(err.to_string())
    } else {
        value_error(err.to_string())
    }
}

/// After an epoch: Ctrl-C seen, then `on_epoch(record)` called with the epoch's `record` as a
/// dict; the exception either raises.
pub fn after_epoch(on_epoch: Option<&Py<PyAny>>, record: &serde_json::Value) -> PyResult<()> {
    Python::attach(|py| {
        py.check_signals()?;
        match on_epoch {
            Some(callback) => callback.call1(py, (to_python(py, record)?,)).map(drop),
            None => Ok(()),
        }
    })
}
