//! The modules the backend compiles, from the WGSL of [`eggroll_shaders`] composed for each
//! kernel's variant (the storage types of its inputs and weights, its [`IntDot`] path, its GEMM
//! configuration, whether it reads a noise cache entry), with their names and cache keys.

use super::config::{GemmConfig, MatmulVariant, KT};
use super::kernel::{IntDot, KernelKey, Operands, Variant};
use crate::DType;
use eggroll_shaders::{float_module, gemm_module, int_module, GemmConstants, Module, Storage, INT_MODULES, MODULES};

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

/// How the shaders read a buffer stored as `dtype`.
fn storage(dtype: DType) -> Storage {
    match dtype {
        DType::F32 => Storage::F32,
        DType::F16 => Storage::F16,
        DType::Bf16 => Storage::Bf16,
    }
}

impl Operands {
    /// The part of these storage types that module `m` reads: the inputs' type where it reads
    /// inputs (else f32), the weights' type where it reads weights (else the inputs'), so that
    /// the variants that differ only in a buffer the module does not read are one.
    fn read_by(self, m: &Module) -> Operands {
        let x = if m.reads_f16 { self.x } else { DType::F32 };
        let w = if m.weights.is_some() { self.w } else { x };
        Operands { x, w }
    }
}

/// A module's name with the storage types it is compiled for: `tiled-64x64-r4x4`, `lowrank-f16`,
/// `full_rank-wbf16` (f32 unmarked).
fn variant_name(base: &str, operands: Operands) -> String {
    format!("{base}{}", operands.suffix())
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

    /// The full WGSL module of this configuration for inputs and weights stored as `operands`:
    /// the storage types, the constants, then matmul.wgsl.
    pub fn wgsl(&self, operands: Operands) -> String {
        let constants = GemmConstants { workgroup: self.workgroup, block: self.block, kt: KT };
        gemm_module(&self.name(), constants, storage(operands.x), storage(operands.w))
    }
}

/// The name and full composed WGSL source of every shader module the backend compiles, exactly
/// as it is handed to the device (for offline validation with naga): one GEMM module per
/// storage pair of [`Operands::FORWARDS`] and candidate of [`GemmConfig::CANDIDATES`] (named like
/// [`GemmConfig::name`] with [`Operands::suffix`]), then, per storage pair, the other modules
/// that read it (f32: all of them; f16 inputs: lowrank and full_rank; 16-bit weights with f32
/// inputs: full_rank and embedding), then the integer modules with `dot4I8Packed` and with its
/// core-WGSL fallback (the fallback ones named with `-fallback`), each cacheable module also as
/// its variant that reads a noise cache entry (named with `-cached`; with f32 weights only, as
/// the perturbed embeddings take).
pub fn shader_sources() -> Vec<(String, String)> {
    let mut sources = Vec::new();
    for operands in Operands::FORWARDS {
        for config in GemmConfig::CANDIDATES {
            sources.push((variant_name(&config.name(), operands), config.wgsl(operands)));
        }
    }
    for operands in Operands::FORWARDS {
        for m in MODULES.iter().filter(|m| operands.read_by(m) == operands) {
            for cached in draw_sources(m.cacheable && (m.weights.is_none() || operands.w == DType::F32)) {
                let name = cached_name(variant_name(m.name, operands), cached);
                sources.push((name, float_module(m, storage(operands.x), storage(operands.w), cached)));
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
            Variant::Gemm(c, operands) => ((self.module, self.variant), variant_name(&c.name(), operands), c.wgsl(operands)),
            Variant::Int(dot) | Variant::IntCached(dot) => {
                let cached = matches!(self.variant, Variant::IntCached(_));
                let m = INT_MODULES.iter().find(|m| m.name == self.module).expect("every integer kernel's module is listed");
                let name = cached_name(dot.module_name(self.module), cached);
                ((self.module, self.variant), name, int_module(m, dot == IntDot::Fallback, cached))
            }
            Variant::Plain | Variant::Stored(_) | Variant::Cached(_) => {
                let (operands, cached) = match self.variant {
                    Variant::Stored(operands) => (operands, false),
                    Variant::Cached(operands) => (operands, true),
                    _ => (Operands::F32, false),
                };
                let m = MODULES.iter().find(|m| m.name == self.module).expect("every kernel's module is listed");
                let operands = operands.read_by(m);
                let key = if cached { Variant::Cached(operands) } else { Variant::Stored(operands) };
                let name = cached_name(variant_name(self.module, operands), cached);
                ((self.module, key), name, float_module(m, storage(operands.x), storage(operands.w), cached))
            }
        }
    }
}

/// A shader module's cache key: its name and the variant it is compiled for (a module as
/// written is its f32 variant).
pub(crate) type ModuleKey = (&'static str, Variant);
