//! # eggroll-shaders
//!
//! The WGSL compute shaders of eggroll-wgpu, the files beside this crate's `src/`, and how each is
//! composed into a module a device compiles: the Philox RNG ([`PHILOX`]) in front of every module
//! that draws noise, the storage type of the inputs ([`float_module`]), the packed int8 helpers of
//! one path in front of the integer modules ([`int_module`]), a GEMM configuration's constants in
//! front of matmul.wgsl ([`gemm_module`]), and in front of each the declaration of its uniform
//! parameter struct ([`params`], where each is defined once for Rust and WGSL alike). The crate's tests validate every composed module with
//! naga. Which entry points the backend dispatches, with which parameters and buffers, is
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
    /// Whether it reads its inputs and weights as `elem`, which may be f16 (the other modules
    /// read f32 only).
    pub reads_f16: bool,
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
    },
    Module {
        name: "noise",
        body: include_str!("../noise.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: NoiseParams::WGSL,
        cacheable: true,
    },
    Module {
        name: "full_rank",
        body: include_str!("../full_rank.wgsl"),
        draws_noise: true,
        reads_f16: true,
        params: MaterialiseParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "vector_noise",
        body: include_str!("../vector_noise.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: VectorParams::WGSL,
        cacheable: true,
    },
    Module {
        name: "elementwise",
        body: include_str!("../elementwise.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: ElementParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "layer_norm",
        body: include_str!("../layer_norm.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: NormParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "rng_probe",
        body: include_str!("../rng_probe.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: ProbeParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "recurrence",
        body: include_str!("../recurrence.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: RecurrenceParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "cross_entropy",
        body: include_str!("../cross_entropy.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: LogSoftmaxParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "embedding",
        body: include_str!("../embedding.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: EmbeddingParams::WGSL,
        cacheable: true,
    },
    Module {
        name: "transformer",
        body: include_str!("../transformer.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "sampling",
        body: include_str!("../sampling.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: SampleParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "kv_cache",
        body: include_str!("../kv_cache.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "attention",
        body: include_str!("../attention.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: TransformerParams::WGSL,
        cacheable: false,
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
    },
    Module {
        name: "int8_naive",
        body: include_str!("../int8_naive.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntNaiveParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "int8_embedding",
        body: include_str!("../int8_embedding.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntNoiseParams::WGSL,
        cacheable: true,
    },
    Module {
        name: "int8_elementwise",
        body: include_str!("../int8_elementwise.wgsl"),
        draws_noise: false,
        reads_f16: false,
        params: IntElementParams::WGSL,
        cacheable: false,
    },
    Module {
        name: "int8_update",
        body: include_str!("../int8_update.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntUpdateParams::WGSL,
        cacheable: true,
    },
    Module {
        name: "int8_full_rank",
        body: include_str!("../int8_full_rank.wgsl"),
        draws_noise: true,
        reads_f16: false,
        params: IntFullRankParams::WGSL,
        cacheable: false,
    },
];

/// The packed int8 helpers (`dot4i8`, `unpack_i8`, `pack_i8`, `sat8` on vectors) from WGSL's
/// `packed_4x8_integer_dot_product` language feature.
pub const INT8_DOT: &str = include_str!("../int8_dot.wgsl");

/// The same helpers from core WGSL bit operations, for implementations without that feature.
pub const INT8_DOT_FALLBACK: &str = include_str!("../int8_dot_fallback.wgsl");

/// What every float module starts with: the storage type `elem` of the inputs and weights (unused
/// by modules that do not read them), after `enable f16;` where that is f16.
pub fn storage_prelude(f16: bool) -> &'static str {
    if f16 {
        "enable f16;\nalias elem = f16;\n"
    } else {
        "alias elem = f32;\n"
    }
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

/// The composed source of a float module: the storage type, the RNG where it draws noise, a
/// cacheable module's draws (read from a noise cache entry where `cached`), the file.
pub fn float_module(m: &Module, f16: bool, cached: bool) -> String {
    format!("{}{}\n{}\n{}", storage_prelude(f16), noise_prelude(m, cached), m.params, m.body)
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

/// The composed source of matmul.wgsl for one configuration (named `name` in a comment) and
/// storage type: the storage type, the constants, the template.
pub fn gemm_module(name: &str, c: GemmConstants, f16: bool) -> String {
    format!(
        "{}// GEMM configuration {name}\nconst WG_X: u32 = {}u;\nconst WG_Y: u32 = {}u;\nconst BM: u32 = {}u;\nconst BN: u32 = {}u;\nconst KT: u32 = {}u;\n\n{}\n{MATMUL}",
        storage_prelude(f16),
        c.workgroup[0],
        c.workgroup[1],
        c.block[0],
        c.block[1],
        c.kt,
        GemmParams::WGSL,
    )
}
