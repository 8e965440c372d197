//! The Python module `eggroll_wgpu`: EGGROLL evolution strategies (low-rank perturbations) on the
//! CPU backend or a WebGPU adapter, with NumPy arrays in and out.
//!
//! A thin layer over the crate `eggroll`: arguments are checked here (shapes, dtypes, names of
//! settings) and handed to the library's trainer, with the GIL released while the backend works.
//! Built by maturin (`python/pyproject.toml`); `scripts/test_python.sh` builds it and runs its
//! tests.

mod adapters;
mod arrays;
mod commands;
mod errors;
mod finetune;
mod json;
mod model;
mod train;
mod trainer;

use pyo3::prelude::*;

/// The native part of ``eggroll_wgpu`` (the package's ``__init__.py`` and ``llm.py`` export it).
///
/// ``Eggroll`` trains a model (``Mlp``) from fitness values the caller computes on the
/// population's outputs; ``train`` runs a built-in task as ``eggroll train`` does; ``finetune``
/// fine-tunes a language model on a reward function; ``adapters()`` lists the devices.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Before the first adapter is opened (see eggroll_cli::runtime_dir).
    eggroll_cli::runtime_dir::ensure();
    m.add_class::<model::Mlp>()?;
    m.add_class::<trainer::Eggroll>()?;
    m.add_function(wrap_pyfunction!(adapters::adapters, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(finetune::finetune, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
