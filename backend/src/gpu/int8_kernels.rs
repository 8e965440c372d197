//! The integer kernels: each entry point of the `int8_*` modules of `shaders/` as a typed unit
//! ([`super::kernel::Kernel`]) on a path of the packed int8 helpers ([`IntDot`]), with its
//! parameter struct and its named storage buffers.

use super::kernel::kernel;
use super::kernel::{IntCached, IntDot};
use super::params::{IntElementParams, IntFullRankParams, IntNaiveParams, IntNoiseParams, IntUpdateParams};

kernel! {
    /// `int_noise_factors` of int8_matmul.wgsl: every pair's packed integer factors.
    IntNoiseFactors(IntDot) => "int8_matmul"::"int_noise_factors" (IntNoiseParams) IntNoiseFactorsBuffers { factors: 3 }
    /// `int_project` of int8_matmul.wgsl: the integer projections `x . b_q`.
    IntProject(IntDot) => "int8_matmul"::"int_project" (IntNoiseParams) IntProjectBuffers { x: 1, factors: 3, proj: 4 }
    /// `int_matmul` of int8_matmul.wgsl: the product, perturbed when the rank is not zero.
    IntMatmul(IntDot) => "int8_matmul"::"int_matmul" (IntNoiseParams) IntMatmulBuffers { x: 1, w: 2, factors: 3, proj: 4, y: 5 }
    /// `int_naive_materialise` of int8_naive.wgsl: `sat8(W + s_i E_k)` of a chunk of members.
    IntNaiveMaterialise(IntDot) => "int8_naive"::"int_naive_materialise" (IntNaiveParams) IntNaiveMaterialiseBuffers { w: 2, wi: 3 }
    /// `int_naive_matmul` of int8_naive.wgsl: each member's product with its materialised weights.
    IntNaiveMatmul(IntDot) => "int8_naive"::"int_naive_matmul" (IntNaiveParams) IntNaiveMatmulBuffers { x: 1, wi: 3, y: 4 }
    /// `int_embedding` of int8_embedding.wgsl: the table's rows, unperturbed.
    IntEmbedding(IntDot) => "int8_embedding"::"int_embedding" (IntNoiseParams) IntEmbeddingBuffers { table: 1, tokens: 2, y: 3 }
    /// `int_perturbed_embedding` of int8_embedding.wgsl: every member's perturbed rows.
    IntPerturbedEmbedding(IntDot) => "int8_embedding"::"int_perturbed_embedding" (IntNoiseParams) IntPerturbedEmbeddingBuffers { table: 1, tokens: 2, y: 3 }
    /// `int_perturbed_embedding` reading its noise from a noise cache entry.
    IntPerturbedEmbeddingCached(IntCached) => "int8_embedding"::"int_perturbed_embedding" (IntNoiseParams) IntPerturbedEmbeddingCachedBuffers { table: 1, tokens: 2, y: 3, cached: 6 }
    /// `int_relu` of int8_elementwise.wgsl: `a = max(a, 0)`.
    IntRelu(IntDot) => "int8_elementwise"::"int_relu" (IntElementParams) IntReluBuffers { a: 1 }
    /// `int_add` of int8_elementwise.wgsl: `a = sat8(a + b)`.
    IntAdd(IntDot) => "int8_elementwise"::"int_add" (IntElementParams) IntAddBuffers { a: 1, b: 2 }
    /// `int_layer_norm` of int8_elementwise.wgsl: the integer layer norm of each row of `a`.
    IntLayerNorm(IntDot) => "int8_elementwise"::"int_layer_norm" (IntElementParams) IntLayerNormBuffers { a: 1 }
    /// `int_mingru_scan` of int8_elementwise.wgsl: `a` gets the scan of the gates `b` and the
    /// candidates `c`.
    IntMingruScan(IntDot) => "int8_elementwise"::"int_mingru_scan" (IntElementParams) IntMingruScanBuffers { a: 1, b: 2, c: 3 }
    /// `int_log_likelihood` of int8_elementwise.wgsl: the log-likelihood `out` of each row of
    /// logits `b` at its target in `c`, with the `tables`.
    IntLogLikelihood(IntDot) => "int8_elementwise"::"int_log_likelihood" (IntElementParams) IntLogLikelihoodBuffers { b: 2, c: 3, out: 4, tables: 5 }
    /// `int_update_factors` of int8_update.wgsl: the packed `f_k a_kq` and `b_kq`.
    IntUpdateFactors(IntDot) => "int8_update"::"int_update_factors" (IntUpdateParams) IntUpdateFactorsBuffers { fitness: 1, fa: 2, fb: 3 }
    /// `int_update_factors` reading the pairs' noise from a noise cache entry.
    IntUpdateFactorsCached(IntCached) => "int8_update"::"int_update_factors" (IntUpdateParams) IntUpdateFactorsCachedBuffers { fitness: 1, fa: 2, fb: 3, cached: 6 }
    /// `int_update` of int8_update.wgsl: the ±1 step of `w`.
    IntUpdate(IntDot) => "int8_update"::"int_update" (IntUpdateParams) IntUpdateBuffers { fa: 2, fb: 3, w: 4 }
    /// `int_full_rank_noise` of int8_full_rank.wgsl: the full-rank noise `e` of a chunk of pairs.
    IntFullRankNoise(IntDot) => "int8_full_rank"::"int_full_rank_noise" (IntFullRankParams) IntFullRankNoiseBuffers { e: 3 }
    /// `int_full_rank_matmul` of int8_full_rank.wgsl: both members' products of a chunk of pairs.
    IntFullRankMatmul(IntDot) => "int8_full_rank"::"int_full_rank_matmul" (IntFullRankParams) IntFullRankMatmulBuffers { x: 1, w: 2, e: 3, y: 4 }
    /// `int_full_rank_embedding` of int8_full_rank.wgsl: every member's rows of the table `w`
    /// for the tokens `x` under full-rank noise.
    IntFullRankEmbedding(IntDot) => "int8_full_rank"::"int_full_rank_embedding" (IntFullRankParams) IntFullRankEmbeddingBuffers { x: 1, w: 2, y: 4 }
    /// `int_full_rank_update` of int8_full_rank.wgsl: the ±1 step of the weights `y` from the
    /// pairs' `fitness`.
    IntFullRankUpdate(IntDot) => "int8_full_rank"::"int_full_rank_update" (IntFullRankParams) IntFullRankUpdateBuffers { y: 4, fitness: 5 }
}
