//! The Python module `eggroll_wgpu`: EGGROLL evolution strategies (low-rank perturbations) on the
//! CPU backend or a WebGPU adapter, with NumPy arrays in and out.
//!
//! A thin layer over the crate `eggroll`: arguments are checked here (shapes, dtypes, names of
//! settings) and handed to the library's trainer, with the GIL released while the backend works.
//! Built by maturin (`python/pyproject.toml`); `scripts/test_python.sh` builds it and runs its
//! tests.

mod adapters;
mod arrays;
mod errors;
mod json;
mod model;
mod trainer;

use pyo3::prelude::*;

/// EGGROLL evolution strategies, low-rank perturbations, on the CPU or any WebGPU adapter.
///
/// ``Eggroll`` trains a model (``Mlp``) from fitness values the caller computes on the
/// population's outputs; ``adapters()`` lists the devices.
#[pymodule]
fn eggroll_wgpu(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::Mlp>()?;
    m.add_class::<trainer::Eggroll>()?;
    m.add_function(wrap_pyfunction!(adapters::adapters, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
