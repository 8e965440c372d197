//! # eggroll-shaders
//!
//! The WGSL compute shaders of eggroll-wgpu, the files beside this crate's `src/`, and how each is
//! composed into a module a device compiles: the Philox RNG ([`PHILOX`]) in front of every module
//! that draws noise, the storage types of the inputs and weights ([`float_module`]), the packed
//! int8 helpers of one path in front of the integer modules ([`int_module`]), a GEMM
//! configuration's constants in front of matmul.wgsl ([`gemm_module`]), and in front of each the
//! declaration of its uniform parameter struct ([`params`], where each is defined once for Rust
//! and WGSL alike). The crate's tests validate every composed module with naga. Which entry points
//! the backend dispatches, with which parameters and buffers, is
//! `eggroll-backend`'s `gpu::kernels`.

pub mod params;

use params::{
    ElementParams, EmbeddingParams, GemmParams, IntElementParams, IntFullRankParams, IntNaiveParams, IntNoiseParams, IntUpdateParams,
    LogSoftmaxParams, LowRankParams, MaterialiseParams, NoiseParams, NormParams, ProbeParams, RecurrenceParams, SampleParams,
    TransformerParams, Uniform, VectorParams,
};

/// One WGSL file: its name (without `.wgsl`), its text, and what it needs in front of it.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// The file's name without `.wgsl`, e.g. `lowrank`.
    pub name: &'static str,
    /// The file's text.
    pub body: &'static str,
    /// Whether it draws noise (and so needs [`PHILOX`] in front).
    pub draws_noise: bool,
    /// Whether it reads a forward's inputs as `elem`, which may be f16 (`full_rank` also stores
    /// the weights it materialises in that type); the other modules read f32 only.
    pub reads_f16: bool,
    /// The weights it reads through the load `<name>_at(i: u32) -> f32`, whose binding and load
    /// the composition declares in front of the file in the weights' [`Storage`]; `None` where
    /// it reads no weights.
    pub weights: Option<Weights>,
    /// The WGSL declaration of its uniform parameter struct ([`params`]).
    pub params: &'static str,
    /// Whether its draws (`draw`, `int_draw`) come from the composition rather than the file:
    /// from the RNG ([`DRAWS`]), or in its cached variant from a noise cache entry
    /// ([`CACHED_DRAWS`]). The file defines `draws_per_pair()`, the draws of one pair in an
    /// entry, and its parameters `pair_offset`, the entry's first pair.
    pub cacheable: bool,
}

/// Philox4x32-10 and the standard normal draws, bit for bit those of `eggroll-backend`'s `rng`.
pub const PHILOX: &str = include_str!("../philox.wgsl");

/// `draw` and `int_draw` of a cacheable module from the RNG.
pub const DRAWS: &str = include_str!("../draws.wgsl");

/// `draw` and `int_draw` of a cacheable module's cached variant: the values of [`DRAWS`] read
/// from a noise cache entry at binding 6.
pub const CACHED_DRAWS: &str = include_str!("../cached_draws.wgsl");

/// The GEMM template, compiled once per configuration with its constants in front
/// ([`gemm_module`]).
pub const MATMUL: &str = include_str!("../matmul.wgsl");

/// The f32 modules (but the GEMM).
pub const MODULES: [Module; 14] = [
    Module {
        name: "lowrank",
        body: include_str!("../lowrank.wgsl"),
        draws_noise: true,
        reads_f16: true,
        params: LowRankParams::WGSL,
        cacheable: true,
        weights: None,
    },
    Module {
        name: "noise",
        body: include_str!("../noise.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: NoiseParams::WGSL,
        cacheable: true,
        weights: None,
    },
    Module {
        name: "full_rank",
        body: include_str!("../full_rank.wgsl"),
        draws_noise: true,
        reads_f16: true,
        params: MaterialiseParams::WGSL,
        cacheable: false,
        weights: Some(Weights { name: "w", binding: 1 }),
    },
    Module {
        name: "vector_noise",
        body: include_str!("../vector_noise.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: VectorParams::WGSL,
        cacheable: true,
        weights: None,
    },
    Module {
        name: "elementwise",
        body: include_str!("../elementwise.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: ElementParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "layer_norm",
        body: include_str!("../layer_norm.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: NormParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "rng_probe",
        body: include_str!("../rng_probe.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: ProbeParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "recurrence",
        body: include_str!("../recurrence.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: RecurrenceParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "cross_entropy",
        body: include_str!("../cross_entropy.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: LogSoftmaxParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "embedding",
        body: include_str!("../embedding.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: EmbeddingParams::WGSL,
        cacheable: true,
        weights: Some(Weights { name: "table", binding: 1 }),
    },
    Module {
        name: "transformer",
        body: include_str!("../transformer.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "sampling",
        body: include_str!("../sampling.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: SampleParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "kv_cache",
        body: include_str!("../kv_cache.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "attention",
        body: include_str!("../attention.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
        weights: None,
    },
];

/// The integer modules (docs/int8.md of eggroll-wgpu), each compiled on both paths of the packed
/// int8 helpers.
pub const INT_MODULES: [Module; 6] = [
    Module {
        name: "int8_matmul",
        body: include_str!("../int8_matmul.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntNoiseParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "int8_naive",
        body: include_str!("../int8_naive.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntNaiveParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "int8_embedding",
        body: include_str!("../int8_embedding.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntNoiseParams::WGSL,
        cacheable: true,
        weights: None,
    },
    Module {
        name: "int8_elementwise",
        body: include_str!("../int8_elementwise.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: IntElementParams::WGSL,
        cacheable: false,
        weights: None,
    },
    Module {
        name: "int8_update",
        body: include_str!("../int8_update.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntUpdateParams::WGSL,
        cacheable: true,
        weights: None,
    },
    Module {
        name: "int8_full_rank",
        body: include_str!("../int8_full_rank.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntFullRankParams::WGSL,
        cacheable: false,
        weights: None,
    },
];

/// The packed int8 helpers (`dot4i8`, `unpack_i8`, `pack_i8`, `sat8` on vectors) from WGSL's
/// `packed_4x8_integer_dot_product` language feature.
pub const INT8_DOT: &str = include_str!("../int8_dot.wgsl");

/// The same helpers from core WGSL bit operations, for implementations without that feature.
pub const INT8_DOT_FALLBACK: &str = include_str!("../int8_dot_fallback.wgsl");

/// How a buffer of values is stored for the modules that read it; every load widens a value to
/// f32 exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    /// `array<f32>`.
    F32,
    /// `array<f16>`, with `enable f16;` in front of the module (adapters with `shader-f16`).
    F16,
    /// bfloat16, two values to a `u32` word, the even one in the low half: a load moves the
    /// value's bits into the high half of an f32 (core WGSL, no feature needed).
    Bf16,
}

/// A buffer of weights a module reads through a widening load: its WGSL name and binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// The buffer's name; its load is `<name>_at`.
    pub name: &'static str,
    /// Its binding number in group 0.
    pub binding: u32,
}

/// The weights of matmul.wgsl: `w` at binding 2.
const GEMM_WEIGHTS: Weights = Weights { name: "w", binding: 2 };

/// What every float module starts with: `enable f16;` where the inputs or the weights are f16,
/// the storage type `elem` of the inputs (f32 or f16; unused by modules that do not read them),
/// and, for a module that reads weights, their binding and their load `<name>_at(i: u32) -> f32`
/// in the weights' storage type. Panics on bf16 inputs: bf16 stores weights only.
pub fn storage_prelude(inputs: Storage, weights: Option<(Weights, Storage)>) -> String {
    let elem = match inputs {
        Storage::F32 => "f32",
        Storage::F16 => "f16",
        Storage::Bf16 => panic!("bf16 stores weights only, not a forward's inputs"),
    };
    let f16 = inputs == Storage::F16 || matches!(weights, Some((_, Storage::F16)));
    let enable = if f16 { "enable f16;\n" } else { "" };
    let load = weights.map_or_else(String::new, |(Weights { name, binding }, storage)| {
        let (array, what, body) = match storage {
            Storage::F32 => ("f32", "f32", format!("    return {name}[i];")),
            Storage::F16 => ("f16", "f16", format!("    return f32({name}[i]);")),
            Storage::Bf16 => (
                "u32",
                "bfloat16, two to a word, the even one in the low half",
                format!(
                    "    let word = {name}[i >> 1u];\n    \
                     return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) != 0u));"
                ),
            ),
        };
        format!(
            "@group(0) @binding({binding}) var<storage, read> {name}: array<{array}>;\n\
             // Value i of `{name}` ({what}), widened to f32.\n\
             fn {name}_at(i: u32) -> f32 {{\n{body}\n}}\n"
        )
    });
    format!("{enable}alias elem = {elem};\n{load}")
}

/// The RNG where a module draws noise, then a cacheable module's draws: from the RNG, or from a
/// noise cache entry where `cached` (its cached variant).
fn noise_prelude(m: &Module, cached: bool) -> String {
    let rng = if m.draws_noise { PHILOX } else { "" };
    let draws = match (m.cacheable, cached) {
        (false, _) => "",
        (true, false) => DRAWS,
        (true, true) => CACHED_DRAWS,
    };
    format!("{rng}\n{draws}")
}

/// The composed source of a float module: the storage types of its inputs and weights (each
/// ignored where the module reads none), the RNG where it draws noise, a cacheable module's
/// draws (read from a noise cache entry where `cached`), the file.
pub fn float_module(m: &Module, inputs: Storage, weights: Storage, cached: bool) -> String {
    let prelude = storage_prelude(if m.reads_f16 { inputs } else { Storage::F32 }, m.weights.map(|w| (w, weights)));
    format!("{prelude}{}\n{}\n{}", noise_prelude(m, cached), m.params, m.body)
}

/// The composed source of an integer module: the packed helpers of the native path, or of the
/// core-WGSL fallback, the RNG where it draws noise, a cacheable module's draws (read from a
/// noise cache entry where `cached`), the file.
pub fn int_module(m: &Module, fallback: bool, cached: bool) -> String {
    let helpers = if fallback { INT8_DOT_FALLBACK } else { INT8_DOT };
    format!("{helpers}{}\n{}\n{}", noise_prelude(m, cached), m.params, m.body)
}

/// The constants of one GEMM configuration of matmul.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmConstants {
    /// Invocations per workgroup along the output's columns and rows (`WG_X`, `WG_Y`).
    pub workgroup: [u32; 2],
    /// Outputs per invocation along rows and columns (`BM`, `BN`).
    pub block: [u32; 2],
    /// Depth of a shared-memory tile (`KT`).
    pub kt: u32,
}

/// The composed source of matmul.wgsl for one configuration (named `name` in a comment) and the
/// storage types of its inputs `x` (f32 or f16) and weights `w`: the storage types, the
/// constants, the template.
pub fn gemm_module(name: &str, c: GemmConstants, inputs: Storage, weights: Storage) -> String {
    format!(
        "{}// GEMM configuration {name}\nconst WG_X: u32 = {}u;\nconst WG_Y: u32 = {}u;\nconst BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst KT: u32 = {}u;\n\n{}\n{MATMUL}",
        storage_prelude(inputs, Some((GEMM_WEIGHTS, weights))),
        c.workgroup[0],
        c.workgroup[1],
        c.block[0],
        c.block[1],
        c.kt,
        GemmParams::WGSL,
    )
}
