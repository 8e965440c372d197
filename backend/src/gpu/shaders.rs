//! The WGSL modules of `shaders/`, composed (the RNG prepended where noise is drawn, a GEMM
//! configuration prepended to matmul.wgsl, the packed int8 helpers of an [`IntDot`] path
//! prepended to the integer modules), and the kernels (entry points) the backend dispatches,
//! each with the module it comes from.

use super::config::{GemmConfig, MatmulVariant, KT};
use super::kernel::{IntDot, KernelKey, Variant};
use crate::DType;

/// The Philox4x32-10 / Box-Muller library every noise-drawing module starts with.
const PHILOX: &str = include_str!("../../../shaders/philox.wgsl");

/// The GEMM template: compiled once per [`GemmConfig`] with its constants prepended.
const MATMUL: &str = include_str!("../../../shaders/matmul.wgsl");

/// One WGSL file of `shaders/` and whether it draws noise.
struct ModuleSource {
    name: &'static str,
    body: &'static str,
    draws_noise: bool,
}

const MODULES: [ModuleSource; 10] = [
    ModuleSource { name: "lowrank", body: include_str!("../../../shaders/lowrank.wgsl"), draws_noise: true },
    ModuleSource { name: "noise", body: include_str!("../../../shaders/noise.wgsl"), draws_noise: true },
    ModuleSource { name: "naive", body: include_str!("../../../shaders/naive.wgsl"), draws_noise: true },
    ModuleSource { name: "vector_noise", body: include_str!("../../../shaders/vector_noise.wgsl"), draws_noise: true },
    ModuleSource { name: "elementwise", body: include_str!("../../../shaders/elementwise.wgsl"), draws_noise: false },
    ModuleSource { name: "layer_norm", body: include_str!("../../../shaders/layer_norm.wgsl"), draws_noise: false },
    ModuleSource { name: "rng_probe", body: include_str!("../../../shaders/rng_probe.wgsl"), draws_noise: true },
    ModuleSource { name: "recurrence", body: include_str!("../../../shaders/recurrence.wgsl"), draws_noise: false },
    ModuleSource { name: "cross_entropy", body: include_str!("../../../shaders/cross_entropy.wgsl"), draws_noise: false },
    ModuleSource { name: "embedding", body: include_str!("../../../shaders/embedding.wgsl"), draws_noise: true },
];

/// The integer modules (docs/int8.md): each compiled once per [`IntDot`] path, after the packed
/// helpers of that path (and the RNG where it draws noise).
const INT_MODULES: [ModuleSource; 6] = [
    ModuleSource { name: "int8_matmul", body: include_str!("../../../shaders/int8_matmul.wgsl"), draws_noise: true },
    ModuleSource { name: "int8_naive", body: include_str!("../../../shaders/int8_naive.wgsl"), draws_noise: true },
    ModuleSource { name: "int8_embedding", body: include_str!("../../../shaders/int8_embedding.wgsl"), draws_noise: true },
    ModuleSource { name: "int8_elementwise", body: include_str!("../../../shaders/int8_elementwise.wgsl"), draws_noise: false },
    ModuleSource { name: "int8_update", body: include_str!("../../../shaders/int8_update.wgsl"), draws_noise: true },
    ModuleSource { name: "int8_full_rank", body: include_str!("../../../shaders/int8_full_rank.wgsl"), draws_noise: true },
];

impl IntDot {
    /// Both paths, native first.
    pub(crate) const ALL: [IntDot; 2] = [IntDot::Native, IntDot::Fallback];

    /// The WGSL that defines the packed helpers on this path, and `sat8` on vectors.
    fn prelude(self) -> &'static str {
        match self {
            IntDot::Native => include_str!("../../../shaders/int8_dot.wgsl"),
            IntDot::Fallback => include_str!("../../../shaders/int8_dot_fallback.wgsl"),
        }
    }

    /// A module's name on this path: `int8_matmul`, `int8_matmul-fallback`.
    fn module_name(self, base: &str) -> String {
        match self {
            IntDot::Native => base.to_string(),
            IntDot::Fallback => format!("{base}-fallback"),
        }
    }
}

/// The composed source of an integer module on the `dot` path.
fn int_module_source(m: &ModuleSource, dot: IntDot) -> String {
    let rng = if m.draws_noise { PHILOX } else { "" };
    format!("{}{rng}\n{}", dot.prelude(), m.body)
}

/// Modules that read f16 inputs and weights where the caller's buffers are f16: they declare
/// those arrays as `array<elem>` and widen each load with `f32(...)`.
const ELEM_MODULES: [&str; 2] = ["lowrank", "naive"];

/// What every module starts with: the storage type `elem` of the inputs and weights (unused by
/// modules that do not read them), after `enable f16;` where that is f16.
fn dtype_prelude(dtype: DType) -> &'static str {
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

impl GemmConfig {
    /// The WGSL entry point of the variant.
    pub(crate) fn entry_point(&self) -> &'static str {
        match self.variant {
            MatmulVariant::WorkgroupTiled => "matmul_tiled",
            MatmulVariant::Direct => "matmul_direct",
        }
    }

    /// The full WGSL module of this configuration for inputs and weights stored as `dtype`: the
    /// storage type, the constants, then matmul.wgsl.
    pub fn wgsl(&self, dtype: DType) -> String {
        format!(
            "{}// GEMM configuration {}\nconst WG_X: u32 = {}u;\nconst WG_Y: u32 = {}u;\nconst BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst KT: u32 = {}u;\n\n{}",
            dtype_prelude(dtype),
            self.name(),
            self.workgroup[0],
            self.workgroup[1],
            self.block[0],
            self.block[1],
            KT,
            MATMUL
        )
    }
}

/// The name and full composed WGSL source of every shader module the backend compiles, exactly
/// as it is handed to the device (for offline validation with naga): one GEMM module per
/// candidate of [`GemmConfig::CANDIDATES`] (named like [`GemmConfig::name`]) and storage type
/// (f16 ones named with `-f16`), then the others, with the f16 variants of those that read f16,
/// then the integer modules with `dot4I8Packed` and with its core-WGSL fallback (the fallback ones named with `-fallback`).
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
    for dot in IntDot::ALL {
        for m in &INT_MODULES {
            sources.push((dot.module_name(m.name), int_module_source(m, dot)));
        }
    }
    sources
}

impl KernelKey {
    /// The module the kernel's pipeline is built from: its key (kernels of one module share it),
    /// label and composed source.
    pub(crate) fn module(self) -> (ModuleKey, String, String) {
        match self.variant {
            Variant::Gemm(c, dtype) => ((self.module, self.variant), variant_name(&c.name(), dtype), c.wgsl(dtype)),
            Variant::Int(dot) => {
                let m = INT_MODULES.iter().find(|m| m.name == self.module).expect("every integer kernel's module is listed");
                ((self.module, self.variant), dot.module_name(self.module), int_module_source(m, dot))
            }
            Variant::Plain | Variant::Stored(_) => {
                let dtype = match self.variant {
                    Variant::Stored(dtype) => dtype,
                    _ => DType::F32,
                };
                let m = MODULES.iter().find(|m| m.name == self.module).expect("every kernel's module is listed");
                ((self.module, Variant::Stored(dtype)), variant_name(self.module, dtype), module_source(m, dtype))
            }
        }
    }
}

/// A shader module's cache key: its name and the variant it is compiled for (a module as
/// written is its f32 variant).
pub(crate) type ModuleKey = (&'static str, Variant);
