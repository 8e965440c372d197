//! The modules the backend compiles, from the WGSL of [`eggroll_shaders`] composed for each
//! kernel's variant (its storage type, its [`IntDot`] path, its GEMM configuration, whether it
//! reads a noise cache entry), with their names and cache keys.

use super::config::{GemmConfig, MatmulVariant, KT};
use super::kernel::{IntDot, KernelKey, Variant};
use crate::DType;
use eggroll_shaders::{float_module, gemm_module, int_module, GemmConstants, INT_MODULES, MODULES};

impl IntDot {
    /// Both paths, native first.
    pub(crate) const ALL: [IntDot; 2] = [IntDot::Native, IntDot::Fallback];

    /// A module's name on this path: `int8_matmul`, `int8_matmul-fallback`.
    fn module_name(self, base: &str) -> String {
        match self {
            IntDot::Native => base.to_string(),
            IntDot::Fallback => format!("{base}-fallback"),
        }
    }
}

/// A module's name with its storage type: `tiled-64x64-r4x4`, `lowrank-f16` (f32 unmarked).
fn variant_name(base: &str, dtype: DType) -> String {
    match dtype {
        DType::F32 => base.to_string(),
        other => format!("{base}-{other}"),
    }
}

/// A module's name, marked `-cached` for the variant that reads a noise cache entry.
fn cached_name(base: String, cached: bool) -> String {
    if cached {
        format!("{base}-cached")
    } else {
        base
    }
}

/// Both ways a cacheable module is compiled (drawing, then reading a noise cache entry); only
/// the first for the others.
fn draw_sources(cacheable: bool) -> impl Iterator<Item = bool> {
    [false, true].into_iter().filter(move |&cached| !cached || cacheable)
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
        gemm_module(&self.name(), GemmConstants { workgroup: self.workgroup, block: self.block, kt: KT }, dtype == DType::F16)
    }
}

/// The name and full composed WGSL source of every shader module the backend compiles, exactly
/// as it is handed to the device (for offline validation with naga): one GEMM module per
/// candidate of [`GemmConfig::CANDIDATES`] (named like [`GemmConfig::name`]) and storage type
/// (f16 ones named with `-f16`), then the others, with the f16 variants of those that read f16,
/// then the integer modules with `dot4I8Packed` and with its core-WGSL fallback (the fallback ones named with `-fallback`),
/// each cacheable module also as its variant that reads a noise cache entry (named with `-cached`).
pub fn shader_sources() -> Vec<(String, String)> {
    let mut sources = Vec::new();
    for dtype in DType::ALL {
        for config in GemmConfig::CANDIDATES {
            sources.push((variant_name(&config.name(), dtype), config.wgsl(dtype)));
        }
    }
    for dtype in DType::ALL {
        for m in MODULES.iter().filter(|m| dtype == DType::F32 || m.reads_f16) {
            for cached in draw_sources(m.cacheable) {
                sources.push((cached_name(variant_name(m.name, dtype), cached), float_module(m, dtype == DType::F16, cached)));
            }
        }
    }
    for dot in IntDot::ALL {
        for m in &INT_MODULES {
            for cached in draw_sources(m.cacheable) {
                sources.push((cached_name(dot.module_name(m.name), cached), int_module(m, dot == IntDot::Fallback, cached)));
            }
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
            Variant::Int(dot) | Variant::IntCached(dot) => {
                let cached = matches!(self.variant, Variant::IntCached(_));
                let m = INT_MODULES.iter().find(|m| m.name == self.module).expect("every integer kernel's module is listed");
                let name = cached_name(dot.module_name(self.module), cached);
                ((self.module, self.variant), name, int_module(m, dot == IntDot::Fallback, cached))
            }
            Variant::Plain | Variant::Stored(_) | Variant::Cached(_) => {
                let (dtype, cached) = match self.variant {
                    Variant::Stored(dtype) => (dtype, false),
                    Variant::Cached(dtype) => (dtype, true),
                    _ => (DType::F32, false),
                };
                let m = MODULES.iter().find(|m| m.name == self.module).expect("every kernel's module is listed");
                let key = if cached { Variant::Cached(dtype) } else { Variant::Stored(dtype) };
                let name = cached_name(variant_name(self.module, dtype), cached);
                ((self.module, key), name, float_module(m, dtype == DType::F16, cached))
            }
        }
    }
}

/// A shader module's cache key: its name and the variant it is compiled for (a module as
/// written is its f32 variant).
pub(crate) type ModuleKey = (&'static str, Variant);
