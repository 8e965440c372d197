//! The f32 kernels: each entry point of the f32 modules of `shaders/` as a typed unit
//! ([`super::kernel::Kernel`]), with its parameter struct and its named storage buffers.

use super::config::GemmConfig;
use super::kernel::{kernel, Bindings, Cached, Kernel, KernelKey, Operands, Storage, Variant};
use super::params::{
    ElementParams, EmbeddingParams, GemmParams, LogSoftmaxParams, LowRankParams, MaterialiseParams, NoiseParams, NormParams,
    RecurrenceParams, SampleParams, TransformerParams, VectorParams,
};
use crate::DType;

kernel! {
    /// `lowrank_project` of lowrank.wgsl: the projections `X B` of each pair, one serial sum
    /// per invocation.
    LowrankProject(DType) => "lowrank"::"lowrank_project" (LowRankParams) LowrankProjectBuffers { x: 1, p_out: 2 }
    /// `lowrank_project_reduce` of lowrank.wgsl: the projections `X B`, one workgroup reduction
    /// per block of sums.
    LowrankProjectReduce(DType) => "lowrank"::"lowrank_project_reduce" (LowRankParams) LowrankProjectReduceBuffers { x: 1, p_out: 2 }
    /// `lowrank_expand` of lowrank.wgsl: `y += s (σ/√r) P Aᵀ` (onto the shared product `z`
    /// when the input is shared).
    LowrankExpand => "lowrank"::"lowrank_expand" (LowRankParams) LowrankExpandBuffers { p_in: 3, z: 4, y: 5 }
    /// `lowrank_project` reading its `B` from a noise cache entry.
    LowrankProjectCached(Cached) => "lowrank"::"lowrank_project" (LowRankParams) LowrankProjectCachedBuffers { x: 1, p_out: 2, cached: 6 }
    /// `lowrank_project_reduce` reading its `B` from a noise cache entry.
    LowrankProjectReduceCached(Cached) => "lowrank"::"lowrank_project_reduce" (LowRankParams) LowrankProjectReduceCachedBuffers { x: 1, p_out: 2, cached: 6 }
    /// `lowrank_expand` reading its `A` from a noise cache entry.
    LowrankExpandCached(Cached) => "lowrank"::"lowrank_expand" (LowRankParams) LowrankExpandCachedBuffers { p_in: 3, z: 4, y: 5, cached: 6 }
    /// `noise_draws` of noise.wgsl: a noise cache entry, the draws of a stream for a run of pairs.
    NoiseDraws => "noise"::"noise_draws" (NoiseParams) NoiseDrawsBuffers { a_out: 1 }
    /// `noise_factors` of noise.wgsl: every member's signed `A` and its `B`.
    NoiseFactors => "noise"::"noise_factors" (NoiseParams) NoiseFactorsBuffers { a_out: 1, b_out: 2 }
    /// `update_factors` of noise.wgsl: the update's `A'` and `d B'` of a chunk of pairs.
    UpdateFactors => "noise"::"update_factors" (NoiseParams) UpdateFactorsBuffers { a_out: 1, b_out: 2, d: 3 }
    /// `update_factors` reading the pairs' factors from a noise cache entry.
    UpdateFactorsCached(Cached) => "noise"::"update_factors" (NoiseParams) UpdateFactorsCachedBuffers { a_out: 1, b_out: 2, d: 3, cached: 6 }
    /// `materialise` of full_rank.wgsl: `W + s_i σ E_i` of a chunk of members, `W` stored as the
    /// weights' type and the result as the inputs'.
    Materialise(Operands) => "full_rank"::"materialise" (MaterialiseParams) MaterialiseBuffers { w: 1, out: 2 }
    /// `perturbed_bias` of vector_noise.wgsl: `y += bias + s_i σ ε_i`.
    PerturbedBias => "vector_noise"::"perturbed_bias" (VectorParams) PerturbedBiasBuffers { y: 1, vector_param: 2 }
    /// `perturbed_gain` of vector_noise.wgsl: `y *= 1 + gain + s_i σ ε_i`.
    PerturbedGain => "vector_noise"::"perturbed_gain" (VectorParams) PerturbedGainBuffers { y: 1, vector_param: 2 }
    /// `vector_update` of vector_noise.wgsl: `g = σ/√N Σ_k d_k ε_k`.
    VectorUpdate => "vector_noise"::"vector_update" (VectorParams) VectorUpdateBuffers { d: 3, g: 4 }
    /// `perturbed_bias` reading `ε` from a noise cache entry.
    PerturbedBiasCached(Cached) => "vector_noise"::"perturbed_bias" (VectorParams) PerturbedBiasCachedBuffers { y: 1, vector_param: 2, cached: 6 }
    /// `perturbed_gain` reading `ε` from a noise cache entry.
    PerturbedGainCached(Cached) => "vector_noise"::"perturbed_gain" (VectorParams) PerturbedGainCachedBuffers { y: 1, vector_param: 2, cached: 6 }
    /// `vector_update` reading `ε` from a noise cache entry.
    VectorUpdateCached(Cached) => "vector_noise"::"vector_update" (VectorParams) VectorUpdateCachedBuffers { d: 3, g: 4, cached: 6 }
    /// `add_bias` of elementwise.wgsl: `dst += src` on every row.
    AddBias => "elementwise"::"add_bias" (ElementParams) AddBiasBuffers { dst: 1, src: 2 }
    /// `gain` of elementwise.wgsl: `dst *= 1 + src` on every row.
    Gain => "elementwise"::"gain" (ElementParams) GainBuffers { dst: 1, src: 2 }
    /// `activation` of elementwise.wgsl: `dst = act(dst)`.
    Activation => "elementwise"::"activation" (ElementParams) ActivationBuffers { dst: 1 }
    /// `sgd_step` of elementwise.wgsl: `dst += lr src`.
    SgdStep => "elementwise"::"sgd_step" (ElementParams) SgdStepBuffers { dst: 1, src: 2 }
    /// `adam_step` of elementwise.wgsl: one Adam/AdamW step of `dst` on the gradient `src`,
    /// moments `m` and `v`.
    AdamStep => "elementwise"::"adam_step" (ElementParams) AdamStepBuffers { dst: 1, src: 2, m: 3, v: 4 }
    /// `layer_norm` of layer_norm.wgsl: each row to zero mean and unit variance.
    LayerNorm => "layer_norm"::"layer_norm" (NormParams) LayerNormBuffers { x: 1 }
    /// `mingru_scan` of recurrence.wgsl: the minGRU recurrence over time.
    MingruScan => "recurrence"::"mingru_scan" (RecurrenceParams) MingruScanBuffers { gate: 1, candidate: 2, h0: 3, h: 4 }
    /// `log_softmax_at` of cross_entropy.wgsl: each row's log-likelihood of its target.
    LogSoftmaxAt => "cross_entropy"::"log_softmax_at" (LogSoftmaxParams) LogSoftmaxAtBuffers { logits: 1, targets: 2, out: 3 }
    /// `perturbed_embedding` of embedding.wgsl: every member's low-rank perturbed rows.
    PerturbedEmbedding => "embedding"::"perturbed_embedding" (EmbeddingParams) PerturbedEmbeddingBuffers { table: 1, tokens: 2, y: 3 }
    /// `perturbed_embedding` reading the factors from a noise cache entry.
    PerturbedEmbeddingCached(Cached) => "embedding"::"perturbed_embedding" (EmbeddingParams) PerturbedEmbeddingCachedBuffers { table: 1, tokens: 2, y: 3, cached: 6 }
    /// `full_rank_embedding` of embedding.wgsl: every member's rows under full-rank noise.
    FullRankEmbedding => "embedding"::"full_rank_embedding" (EmbeddingParams) FullRankEmbeddingBuffers { table: 1, tokens: 2, y: 3 }
    /// `embedding` of embedding.wgsl: the table's rows, unperturbed.
    Embedding => "embedding"::"embedding" (EmbeddingParams) EmbeddingBuffers { table: 1, tokens: 2, y: 3 }
    /// `embedding_piece` of embedding.wgsl: the rows of the tokens that fall in one piece of a
    /// split table, the piece stored as the weights' type.
    EmbeddingPiece(Operands) => "embedding"::"embedding_piece" (EmbeddingParams) EmbeddingPieceBuffers { table: 1, tokens: 2, y: 3 }
    /// `rms_norm` of transformer.wgsl: each row to unit root mean square, times the weight.
    RmsNorm => "transformer"::"rms_norm" (TransformerParams) RmsNormBuffers { x: 1, src: 2 }
    /// `rope` of transformer.wgsl: the rotary position embedding of each head of each row.
    Rope => "transformer"::"rope" (TransformerParams) RopeBuffers { x: 1, rotations: 3 }
    /// `silu_mul` of transformer.wgsl: `x = silu(x) src`.
    SiluMul => "transformer"::"silu_mul" (TransformerParams) SiluMulBuffers { x: 1, src: 2 }
    /// `greedy_rows` of transformer.wgsl: each row's largest logit, its index and the log of its
    /// softmax's normaliser.
    GreedyRows => "transformer"::"greedy_rows" (TransformerParams) GreedyRowsBuffers { x: 1, picks: 4 }
    /// `sample_rows` of sampling.wgsl: each row's token drawn from its nucleus, and its
    /// log-probability.
    SampleRows => "sampling"::"sample_rows" (SampleParams) SampleRowsBuffers { logits: 1, keys: 2, picks: 3 }
    /// `place` of transformer.wgsl: `src`'s rows into a column range of `x`'s.
    Place => "transformer"::"place" (TransformerParams) PlaceBuffers { x: 1, src: 2 }
    /// `kv_write` of kv_cache.wgsl: the new keys and values into their cache slots.
    KvWrite => "kv_cache"::"kv_write" (TransformerParams) KvWriteBuffers { keys: 1, values: 2, indices: 3, k_cache: 4, v_cache: 5 }
    /// `attention` of attention.wgsl: causal grouped-query attention over the cache slots.
    Attention => "attention"::"attention" (TransformerParams) AttentionBuffers { queries: 1, k_cache: 2, v_cache: 3, indices: 4, out: 5 }
}

/// The test hooks of rng_probe.wgsl (cargo feature `testing`).
#[cfg(feature = "testing")]
pub mod probe {
    use super::super::kernel::kernel;
    use super::super::params::ProbeParams;

    kernel! {
        /// `philox_words` of rng_probe.wgsl: Philox4x32-10 of each counter (a test hook).
        PhiloxWords => "rng_probe"::"philox_words" (ProbeParams) PhiloxWordsBuffers { counters: 1, words: 2 }
        /// `normal_draws` of rng_probe.wgsl: draws of one pair's stream (a test hook).
        NormalDraws => "rng_probe"::"normal_draws" (ProbeParams) NormalDrawsBuffers { normals: 3 }
    }
}

/// One (batched) GEMM of matmul.wgsl compiled for a configuration, its inputs and weights
/// stored as the types: the configuration's entry point (`matmul_tiled` or `matmul_direct`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Matmul(pub GemmConfig, pub Operands);

/// The storage buffers of [`Matmul`], named as matmul.wgsl names them.
#[derive(Clone, Copy)]
pub struct MatmulBuffers<'a> {
    /// Binding 1: the rows.
    pub x: &'a wgpu::Buffer,
    /// Binding 2: the weights.
    pub w: &'a wgpu::Buffer,
    /// Binding 3: the product.
    pub y: &'a wgpu::Buffer,
}

impl<'a> Bindings<'a> for MatmulBuffers<'a> {
    const NAMES: &'static [(&'static str, u32)] = &[("x", 1), ("w", 2), ("y", 3)];
    fn storage(&self) -> Storage<'a> {
        Storage::of([(1, self.x), (2, self.w), (3, self.y)])
    }
}

impl Kernel for Matmul {
    type Params = GemmParams;
    type Buffers<'a> = MatmulBuffers<'a>;
    fn key(self) -> KernelKey {
        KernelKey { module: "matmul", entry: self.0.entry_point(), variant: Variant::Gemm(self.0, self.1) }
    }
}
