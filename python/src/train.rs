//! `eggroll_wgpu.train`: `eggroll train` on a built-in task, from Python.

use crate::commands::{after_epoch, parse, to_py};
use crate::json::to_python;
use eggroll_cli::args::Command;
use eggroll_cli::error::CliError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Options of `eggroll train` that have no meaning here: the summary is returned, not printed,
/// and plots are drawn in Python.
const EXCLUDED: [&str; 3] = ["task", "json", "plot"];

/// Trains on the built-in task ``task`` as ``eggroll train --task <task>`` does and returns the
/// summary ``eggroll train --json`` prints, as a dict (``task``, ``backend``, ``adapter``,
/// ``config``, ``final_train_loss``, the held-out metric, ``ms_per_epoch``, ...).
///
/// Every option of the command is a keyword with underscores for dashes (``epochs``,
/// ``population``, ``rank``, ``sigma``, ``lr``, ``optimizer``, ``method``, ``seed``,
/// ``noise_reuse``, ``group_size``, ``noise_cache_mb``, ``config`` (a TOML file), ``backend``,
/// ``devices``, ``data``, ``width``, ``depth``, ``window``, ``hidden`` (a list), ``eval_every``,
/// ``metrics``, ``checkpoint``, ``checkpoint_every``, ``resume``, ``quiet``), with the command's
/// defaults; on the CPU backend the run is the command's, bit for bit.
///
/// ``on_epoch(record)``, when given, is called after each epoch with the line ``--metrics``
/// writes for it (``epoch``, ``mean_fitness``, ``lr``, ``sigma``, ``ms``, and ``train_loss`` and
/// the metric when evaluated); an exception it raises stops training and propagates, as does
/// Ctrl-C (seen between epochs).
///
/// An unknown keyword raises ``TypeError``; a value or file the command refuses, ``ValueError``;
/// a device failure, ``RuntimeError``.
#[pyfunction]
#[pyo3(signature = (task = "regression", *, on_epoch = None, **options))]
pub fn train<'py>(
    py: Python<'py>, task: &str, on_epoch: Option<Bound<'py, PyAny>>, options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let Command::Train(args) = parse("train", "train", &[format!("--task={task}")], options, &EXCLUDED)? else {
        unreachable!("parsed as train")
    };
    let on_epoch = on_epoch.map(Bound::unbind);
    let mut raised: Option<PyErr> = None;
    let summary = py.detach(|| {
        eggroll_cli::train::run(&args, &mut |record| {
            after_epoch(on_epoch.as_ref(), &record.to_json()).map_err(|e| {
                raised = Some(e);
                CliError::new("stopped by Python")
            })
        })
    });
    match (summary, raised) {
        (_, Some(e)) => Err(e),
        (Ok(summary), None) => to_python(py, &summary.to_json()),
        (Err(e), None) => Err(to_py(e)),
    }
}
