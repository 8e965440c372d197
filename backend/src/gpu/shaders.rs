//! The WGSL modules of `shaders/`, composed (the RNG prepended where noise is drawn), and the
//! compute pipelines built from them.

use wgpu::{BindGroupLayout, ComputePipeline, Device};

/// The Philox4x32-10 / Box-Muller library every noise-drawing module starts with.
const PHILOX: &str = include_str!("../../../shaders/philox.wgsl");

/// One WGSL file of `shaders/` and whether it draws noise.
struct ModuleSource {
    name: &'static str,
    body: &'static str,
    draws_noise: bool,
}

const MODULES: [ModuleSource; 8] = [
    ModuleSource { name: "matmul", body: include_str!("../../../shaders/matmul.wgsl"), draws_noise: false },
    ModuleSource { name: "lowrank", body: include_str!("../../../shaders/lowrank.wgsl"), draws_noise: true },
    ModuleSource { name: "noise", body: include_str!("../../../shaders/noise.wgsl"), draws_noise: true },
    ModuleSource { name: "naive", body: include_str!("../../../shaders/naive.wgsl"), draws_noise: false },
    ModuleSource { name: "vector_noise", body: include_str!("../../../shaders/vector_noise.wgsl"), draws_noise: true },
    ModuleSource { name: "elementwise", body: include_str!("../../../shaders/elementwise.wgsl"), draws_noise: false },
    ModuleSource { name: "layer_norm", body: include_str!("../../../shaders/layer_norm.wgsl"), draws_noise: false },
    ModuleSource { name: "rng_probe", body: include_str!("../../../shaders/rng_probe.wgsl"), draws_noise: true },
];

/// The name and full composed WGSL source of every shader module the backend compiles, exactly
/// as it is handed to the device (for offline validation with naga).
pub fn shader_sources() -> Vec<(&'static str, String)> {
    MODULES
        .iter()
        .map(|m| {
            let source = if m.draws_noise { format!("{PHILOX}\n{}", m.body) } else { m.body.to_string() };
            (m.name, source)
        })
        .collect()
}

/// Every compute entry point the backend dispatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    MatmulTiled,
    MatmulDirect,
    LowrankProject,
    LowrankExpand,
    NoiseFactors,
    UpdateFactors,
    Materialise,
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
    const ALL: [Kernel; 16] = [
        Kernel::MatmulTiled,
        Kernel::MatmulDirect,
        Kernel::LowrankProject,
        Kernel::LowrankExpand,
        Kernel::NoiseFactors,
        Kernel::UpdateFactors,
        Kernel::Materialise,
        Kernel::PerturbedBias,
        Kernel::VectorUpdate,
        Kernel::AddBias,
        Kernel::Activation,
        Kernel::SgdStep,
        Kernel::AdamStep,
        Kernel::LayerNorm,
        Kernel::PhiloxWords,
        Kernel::NormalDraws,
    ];

    /// (module name, entry point).
    fn entry(self) -> (&'static str, &'static str) {
        match self {
            Kernel::MatmulTiled => ("matmul", "matmul_tiled"),
            Kernel::MatmulDirect => ("matmul", "matmul_direct"),
            Kernel::LowrankProject => ("lowrank", "lowrank_project"),
            Kernel::LowrankExpand => ("lowrank", "lowrank_expand"),
            Kernel::NoiseFactors => ("noise", "noise_factors"),
            Kernel::UpdateFactors => ("noise", "update_factors"),
            Kernel::Materialise => ("naive", "materialise"),
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
}

/// Every pipeline, built once, with the bind group layout WGSL's bindings imply.
pub(crate) struct Pipelines {
    kernels: Vec<(ComputePipeline, BindGroupLayout)>,
}

impl Pipelines {
    /// Compiles every module and builds every pipeline.
    pub(crate) fn new(device: &Device) -> Self {
        let modules: Vec<(&str, wgpu::ShaderModule)> = shader_sources()
            .into_iter()
            .map(|(name, source)| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
                (name, module)
            })
            .collect();
        let kernels = Kernel::ALL
            .iter()
            .map(|kernel| {
                let (module_name, entry) = kernel.entry();
                let module = &modules.iter().find(|(name, _)| *name == module_name).expect("every kernel's module is listed").1;
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                let layout = pipeline.get_bind_group_layout(0);
                (pipeline, layout)
            })
            .collect();
        Self { kernels }
    }

    /// The pipeline of `kernel` and its bind group layout.
    pub(crate) fn get(&self, kernel: Kernel) -> &(ComputePipeline, BindGroupLayout) {
        &self.kernels[kernel as usize]
    }
}
