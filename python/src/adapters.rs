//! `eggroll_wgpu.adapters()`: the devices `eggroll info` lists, as dicts.

use crate::json::to_python;
use eggroll::AdapterDescription;
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::is_hardware;
use eggroll_backend::select::list_adapters;
use eggroll_backend::Kernels;
use pyo3::prelude::*;
use serde::Serialize;

/// One device as Python sees it.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The adapter's position in the list of wgpu adapters (what `WgpuOptions::adapter_index`
    /// and `eggroll info` number); `None` for the CPU backend.
    index: Option<usize>,
    /// The adapter's name.
    name: String,
    /// The PCI vendor id (0 when unknown).
    vendor: u32,
    /// The graphics API ("Vulkan", "Metal", "Dx12", "Gl") or "cpu".
    api: String,
    /// The driver and its version.
    driver: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    device_type: String,
    /// The optional device features in use.
    features: Vec<String>,
    /// "hardware" or "software" for a wgpu adapter, "cpu" for the CPU backend.
    kind: &'static str,
    /// Whether `backend="auto"` picks this device.
    auto: bool,
}

impl Entry {
    /// The entry of a device: wgpu adapter `index`, or the CPU backend when `index` is `None`.
    pub fn of(a: AdapterDescription, index: Option<usize>, auto: bool) -> Self {
        let kind = if a.backend == "cpu" {
            "cpu"
        } else if is_hardware(&a) {
            "hardware"
        } else {
            "software"
        };
        Entry {
            index,
            name: a.name,
            vendor: a.vendor,
            api: a.backend,
            driver: a.driver,
            device_type: a.device_type,
            features: a.features,
            kind,
            auto,
        }
    }
}

/// The wgpu adapters (those ``WGPU_BACKEND`` allows), then the CPU backend, as dicts with the
/// keys ``index`` (the adapter's number, ``None`` for the CPU), ``name``, ``vendor``, ``api``,
/// ``driver``, ``device_type``, ``features``, ``kind`` ("hardware", "software" or "cpu") and
/// ``auto`` (whether ``backend="auto"`` picks it: the first hardware adapter, else the CPU).
#[pyfunction]
pub fn adapters(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let (all, cpu) = py.detach(|| (list_adapters(), CpuBackend::new().describe()));
    let auto = all.iter().position(is_hardware);
    let mut entries: Vec<Entry> = all.into_iter().enumerate().map(|(i, a)| Entry::of(a, Some(i), auto == Some(i))).collect();
    entries.push(Entry::of(cpu, None, auto.is_none()));
    to_python(py, &entries)
}
