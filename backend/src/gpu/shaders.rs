//! The WGSL modules of `shaders/`, composed (the RNG prepended where noise is drawn, a GEMM
//! configuration prepended to matmul.wgsl), and the compute pipelines built from them on first
//! use and cached.

use super::gemm::GemmConfig;
use crate::DType;
use std::collections::HashMap;
use std::sync::Mutex;
use wgpu::{BindGroupLayout, ComputePipeline, Device};

/// The Philox4x32-10 / Box-Muller library every noise-drawing module starts with.
const PHILOX: &str = include_str!("../../../shaders/philox.wgsl");

/// The GEMM template: compiled once per [`GemmConfig`] with its constants prepended.
pub(crate) const MATMUL: &str = include_str!("../../../shaders/matmul.wgsl");

/// One WGSL file of `shaders/` and whether it draws noise.
struct ModuleSource {
    name: &'static str,
    body: &'static str,
    draws_noise: bool,
}

const MODULES: [ModuleSource; 7] = [
    ModuleSource { name: "lowrank", body: include_str!("../../../shaders/lowrank.wgsl"), draws_noise: true },
    ModuleSource { name: "noise", body: include_str!("../../../shaders/noise.wgsl"), draws_noise: true },
    ModuleSource { name: "naive", body: include_str!("../../../shaders/naive.wgsl"), draws_noise: true },
    ModuleSource { name: "vector_noise", body: include_str!("../../../shaders/vector_noise.wgsl"), draws_noise: true },
    ModuleSource { name: "elementwise", body: include_str!("../../../shaders/elementwise.wgsl"), draws_noise: false },
    ModuleSource { name: "layer_norm", body: include_str!("../../../shaders/layer_norm.wgsl"), draws_noise: false },
    ModuleSource { name: "rng_probe", body: include_str!("../../../shaders/rng_probe.wgsl"), draws_noise: true },
];

/// Modules that read f16 inputs and weights where the caller's buffers are f16: they declare
/// those arrays as `array<elem>` and widen each load with `f32(...)`.
const ELEM_MODULES: [&str; 2] = ["lowrank", "naive"];

/// What every module starts with: the storage type `elem` of the inputs and weights (unused by
/// modules that do not read them), after `enable f16;` where that is f16.
pub(crate) fn dtype_prelude(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "alias elem = f32;\n",
        DType::F16 => "enable f16;\nalias elem = f16;\n",
    }
}

/// A module's name with its storage type: `tiled-64x64-r4x4`, `lowrank-f16` (f32 unmarked).
fn variant_name(base: &str, dtype: DType) -> String {
    match dtype {
        DType::F32 => base.to_string(),
        other => format!("{base}-{other}"),
    }
}

/// The composed source of a fixed module.
fn module_source(m: &ModuleSource, dtype: DType) -> String {
    let rng = if m.draws_noise { PHILOX } else { "" };
    format!("{}{rng}\n{}", dtype_prelude(dtype), m.body)
}

/// The name and full composed WGSL source of every shader module the backend compiles, exactly
/// as it is handed to the device (for offline validation with naga): one GEMM module per
/// candidate of [`GemmConfig::CANDIDATES`] (named like [`GemmConfig::name`]) and storage type
/// (f16 ones named with `-f16`), then the others, with the f16 variants of those that read f16.
pub fn shader_sources() -> Vec<(String, String)> {
    let mut sources = Vec::new();
    for dtype in DType::ALL {
        for config in GemmConfig::CANDIDATES {
            sources.push((variant_name(&config.name(), dtype), config.wgsl(dtype)));
        }
    }
    for dtype in DType::ALL {
        for m in MODULES.iter().filter(|m| dtype == DType::F32 || ELEM_MODULES.contains(&m.name)) {
            sources.push((variant_name(m.name, dtype), module_source(m, dtype)));
        }
    }
    sources
}

/// Every compute entry point the backend dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    Gemm(GemmConfig, DType),
    LowrankProject(DType),
    LowrankProjectReduce(DType),
    LowrankExpand,
    NoiseFactors,
    UpdateFactors,
    Materialise(DType),
    PerturbedBias,
    VectorUpdate,
    AddBias,
    Activation,
    SgdStep,
    AdamStep,
    LayerNorm,
    PhiloxWords,
    NormalDraws,
}

impl Kernel {
    /// (module name, entry point) of the fixed kernels.
    fn entry(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Gemm(c, _) => ("matmul", c.entry_point()),
            Kernel::LowrankProject(_) => ("lowrank", "lowrank_project"),
            Kernel::LowrankProjectReduce(_) => ("lowrank", "lowrank_project_reduce"),
            Kernel::LowrankExpand => ("lowrank", "lowrank_expand"),
            Kernel::NoiseFactors => ("noise", "noise_factors"),
            Kernel::UpdateFactors => ("noise", "update_factors"),
            Kernel::Materialise(_) => ("naive", "materialise"),
            Kernel::PerturbedBias => ("vector_noise", "perturbed_bias"),
            Kernel::VectorUpdate => ("vector_noise", "vector_update"),
            Kernel::AddBias => ("elementwise", "add_bias"),
            Kernel::Activation => ("elementwise", "activation"),
            Kernel::SgdStep => ("elementwise", "sgd_step"),
            Kernel::AdamStep => ("elementwise", "adam_step"),
            Kernel::LayerNorm => ("layer_norm", "layer_norm"),
            Kernel::PhiloxWords => ("rng_probe", "philox_words"),
            Kernel::NormalDraws => ("rng_probe", "normal_draws"),
        }
    }

    /// The storage type of the inputs the kernel reads (f32 for all but the f16 variants).
    fn dtype(self) -> DType {
        match self {
            Kernel::Gemm(_, d) | Kernel::LowrankProject(d) | Kernel::LowrankProjectReduce(d) | Kernel::Materialise(d) => d,
            _ => DType::F32,
        }
    }
}

/// A module's cache key: a fixed module's name, or a GEMM configuration, with the storage type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum ModuleKey {
    Fixed(&'static str, DType),
    Gemm(GemmConfig, DType),
}

#[derive(Default)]
struct Cache {
    modules: HashMap<ModuleKey, wgpu::ShaderModule>,
    kernels: HashMap<Kernel, (ComputePipeline, BindGroupLayout)>,
}

/// Every pipeline, built on its first dispatch (so that a backend compiles only the kernels and
/// GEMM configurations it uses) and cached, with the bind group layout WGSL's bindings imply.
pub(crate) struct Pipelines {
    cache: Mutex<Cache>,
}

impl Pipelines {
    pub(crate) fn new() -> Self {
        Self { cache: Mutex::new(Cache::default()) }
    }

    /// The pipeline of `kernel` and its bind group layout, built now if this is its first use.
    pub(crate) fn get(&self, device: &Device, kernel: Kernel) -> (ComputePipeline, BindGroupLayout) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.kernels.get(&kernel) {
            return found.clone();
        }
        let (module_name, entry) = kernel.entry();
        let key = match kernel {
            Kernel::Gemm(c, dtype) => ModuleKey::Gemm(c, dtype),
            _ => ModuleKey::Fixed(module_name, kernel.dtype()),
        };
        let module = cache
            .modules
            .entry(key)
            .or_insert_with(|| {
                let (label, source) = match key {
                    ModuleKey::Gemm(c, dtype) => (variant_name(&c.name(), dtype), c.wgsl(dtype)),
                    ModuleKey::Fixed(name, dtype) => {
                        let m = MODULES.iter().find(|m| m.name == name).expect("every kernel's module is listed");
                        (variant_name(name, dtype), module_source(m, dtype))
                    }
                };
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&label),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
            })
            .clone();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        cache.kernels.insert(kernel, (pipeline.clone(), layout.clone()));
        (pipeline, layout)
    }
}
