//! The uniform parameter structs of the kernels, each defined once: `uniform!` makes the
//! `#[repr(C)]` [`Pod`] Rust struct and the WGSL declaration of the same struct (same names, same
//! order, `u32`/`i32`/`f32` alike), which the composition puts in front of the module that reads
//! it. Explicit `_pad` fields round each up to a multiple of 16 bytes, as a uniform block must be.

use bytemuck::{Pod, Zeroable};

/// A uniform parameter struct of a kernel, with its WGSL declaration.
pub trait Uniform: Pod {
    /// The name of the WGSL struct.
    const WGSL_STRUCT: &'static str;
    /// The WGSL declaration of the struct.
    const WGSL: &'static str;
}

/// Defines uniform parameter structs: for each, the Rust struct and its [`Uniform`]
/// implementation, whose WGSL declaration lists the same fields with the same scalar types.
macro_rules! uniform {
    ($(
        $(#[$doc:meta])*
        pub struct $name:ident {
            $($(#[$field_doc:meta])* pub $field:ident: $ty:ident,)*
        }
    )*) => {$(
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $($(#[$field_doc])* pub $field: $ty,)*
        }

        impl Uniform for $name {
            const WGSL_STRUCT: &'static str = stringify!($name);
            const WGSL: &'static str =
                concat!("struct ", stringify!($name), " {\n", $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)* "}\n");
        }
    )*};
}

uniform! {
    /// `GemmParams` of `matmul.wgsl`: one (batched) GEMM `y[b] = alpha x[b] w[b]ᵀ (+ y[b])`,
    /// offsets and strides in elements.
    pub struct GemmParams {
        /// Rows of `x` and `y` per batch entry.
        pub rows: u32,
        /// Rows of `w`, columns of `y`.
        pub cols: u32,
        /// Columns of `x` and `w`.
        pub inner: u32,
        /// 1: add to `y`; 0: overwrite it.
        pub accumulate: u32,
        /// Offset of `x`.
        pub x_offset: u32,
        /// Stride of `x` between batch entries (0: shared).
        pub x_batch: u32,
        /// Stride of `w` between batch entries (0: shared).
        pub w_batch: u32,
        /// Offset of `y`.
        pub y_offset: u32,
        /// Stride of `y` between batch entries.
        pub y_batch: u32,
        /// Factor of the product.
        pub alpha: f32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
    }

    /// `LowRankParams` of `lowrank.wgsl`: the projection `X B` and the expansion of the
    /// EGGROLL forward.
    pub struct LowRankParams {
        /// Input rows per member.
        pub rows: u32,
        /// Inputs per row (columns of `W`).
        pub n: u32,
        /// Outputs per row (rows of `W`).
        pub m: u32,
        /// Rank of the perturbation.
        pub rank: u32,
        /// Pairs (projection) or members (expansion).
        pub count: u32,
        /// 1 when every member reads the same input rows.
        pub shared_input: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// `σ/√r`.
        pub scale: f32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
        /// Rows of the whole parameter's `A` (`m`, or the rows of the matrix `W` is a piece of).
        pub a_rows: u32,
        /// The first row of `W` in the whole parameter (0 for a whole one).
        pub a_first: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
    }

    /// `NoiseParams` of `noise.wgsl`: the noise factors of `count` members, or the update
    /// factors of `count` pairs from pair `first`.
    pub struct NoiseParams {
        /// Rows of `A` (of `W`).
        pub m: u32,
        /// Rows of `B` (columns of `W`).
        pub n: u32,
        /// Rank.
        pub rank: u32,
        /// Members or pairs.
        pub count: u32,
        /// First pair.
        pub first: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// The first pair of the noise cache entry its cached variant reads (`Draws::first_pair`).
        pub pair_offset: u32,
        /// Rows of the whole parameter's `A` (`m`, or the rows of the matrix `m` rows are a piece
        /// of).
        pub a_rows: u32,
        /// The first of the `m` rows in the whole parameter (0 for a whole one).
        pub a_first: u32,
    }

    /// `MaterialiseParams` of `full_rank.wgsl`: `W + s_i σ E_i` of `count` members from member
    /// `first` (naive ES).
    pub struct MaterialiseParams {
        /// `m n`, the values of one matrix.
        pub len: u32,
        /// Philox blocks of four draws covering the stream's draws `start .. start + len`.
        pub blocks: u32,
        /// First member.
        pub first: u32,
        /// Members.
        pub count: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// σ.
        pub sigma: f32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
        /// The draw of `E_i`'s first value in its pair's stream (a piece of rows starts past 0).
        pub start: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `VectorParams` of `vector_noise.wgsl`: the perturbed bias or gain of the forward, or
    /// the vector update.
    pub struct VectorParams {
        /// Length of the vector.
        pub len: u32,
        /// Values of the output (forward).
        pub total: u32,
        /// Values per member: rows x length (forward).
        pub span: u32,
        /// Antithetic pairs.
        pub pairs: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// σ (forward), or `σ/√N` (update).
        pub coef: f32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the forward draws noise for (0 for the update).
        pub pair_offset: u32,
        /// The update's first draw of each pair (0 for a vector; a piece of rows of a matrix
        /// under OpenES starts at its first row times the columns).
        pub start: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `ElementParams` of `elementwise.wgsl`: bias, gain, activations and optimizer steps.
    pub struct ElementParams {
        /// Values to process.
        pub len: u32,
        /// Bias or gain length (`add_bias`, `gain`).
        pub cols: u32,
        /// Activation: 0 relu, 1 silu, 2 tanh.
        pub mode: u32,
        /// Learning rate (optimizer steps).
        pub lr: f32,
        /// Adam β1.
        pub beta1: f32,
        /// Adam β2.
        pub beta2: f32,
        /// Adam ε.
        pub eps: f32,
        /// AdamW weight decay.
        pub weight_decay: f32,
        /// Bias correction `1 - β1^t`.
        pub bc1: f32,
        /// Bias correction `1 - β2^t`.
        pub bc2: f32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
    }

    /// `NormParams` of `layer_norm.wgsl`.
    pub struct NormParams {
        /// Rows.
        pub rows: u32,
        /// Values per row.
        pub cols: u32,
        /// ε added to the variance.
        pub eps: f32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `TransformerParams` of `transformer.wgsl`, `kv_cache.wgsl` and `attention.wgsl`: the
    /// kernels of a pretrained transformer's forward beyond its matmuls.
    pub struct TransformerParams {
        /// Rows (`rms_norm`, `rope`, `attention`: sequences x new positions) or values
        /// (`silu_mul`).
        pub rows: u32,
        /// Values per row (`rms_norm`, `greedy_rows`; of `x` in `place`).
        pub cols: u32,
        /// Heads per row (`rope`) or query heads (`attention`).
        pub heads: u32,
        /// Key/value heads.
        pub kv_heads: u32,
        /// Width of a head.
        pub head_dim: u32,
        /// Positions of a cache slot.
        pub capacity: u32,
        /// New positions per sequence (`new` is reserved in WGSL).
        pub fresh: u32,
        /// Sequences (the slots, then the starts, at the front of `indices`).
        pub sequences: u32,
        /// RMSNorm's ε (`rms_norm`) or the attention's scale `1/√head_dim` (`attention`).
        pub eps: f32,
        /// Values per row of `src` (`place`).
        pub width: u32,
        /// The first column of `x` that `place` writes.
        pub offset: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `SampleParams` of `sampling.wgsl`: nucleus sampling of rows of logits.
    pub struct SampleParams {
        /// Rows.
        pub rows: u32,
        /// Logits per row.
        pub cols: u32,
        /// The inverse of the softmax temperature.
        pub inv_temperature: f32,
        /// The probability the nucleus reaches.
        pub top_p: f32,
        /// Low word of the uniforms' key.
        pub seed_lo: u32,
        /// High word of the uniforms' key.
        pub seed_hi: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
    }

    /// `ProbeParams` of `rng_probe.wgsl`: the RNG test hooks.
    pub struct ProbeParams {
        /// Counters (`philox_words`) or draws (`normal_draws`).
        pub count: u32,
        /// Low word of the key.
        pub seed_lo: u32,
        /// High word of the key.
        pub seed_hi: u32,
        /// Parameter id of the stream (`normal_draws`).
        pub param_id: u32,
        /// Noise epoch of the stream (`normal_draws`).
        pub noise_epoch: u32,
        /// Pair (`normal_draws`).
        pub pair: u32,
        /// First draw (`normal_draws`).
        pub start: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `RecurrenceParams` of `recurrence.wgsl`: the minGRU recurrence.
    pub struct RecurrenceParams {
        /// Independent sequences.
        pub sequences: u32,
        /// Time steps per sequence.
        pub time: u32,
        /// Channels per step.
        pub width: u32,
        /// 1 when an initial state is bound, 0 when the scan starts from zeros.
        pub has_h0: u32,
    }

    /// `LogSoftmaxParams` of `cross_entropy.wgsl`: the log-likelihood of each row's target.
    pub struct LogSoftmaxParams {
        /// Rows of logits.
        pub rows: u32,
        /// Classes per row.
        pub classes: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
    }

    /// `EmbeddingParams` of `embedding.wgsl`: an embedding lookup, perturbed (low-rank or
    /// full-rank) or plain.
    pub struct EmbeddingParams {
        /// Rows (tokens) per member.
        pub rows: u32,
        /// Rows of the table (the vocabulary).
        pub m: u32,
        /// Columns of the table (the embedding width).
        pub n: u32,
        /// Rank of the noise (unused by the full-rank lookup).
        pub rank: u32,
        /// Members (1 for the plain lookup).
        pub count: u32,
        /// 1 when every member reads the same tokens.
        pub shared_input: u32,
        /// Low word of the stream's key.
        pub seed_lo: u32,
        /// High word of the stream's key.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// σ/√r (σ for the full-rank lookup).
        pub scale: f32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
        /// The vocabulary row of the table's first row (`embedding_piece` and the perturbed
        /// lookups of a piece of a split table; 0 for a whole one).
        pub first_row: u32,
        /// Rows of the whole table, whose noise a piece takes (`m` for a whole one).
        pub whole_rows: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
        /// Padding to 16 bytes.
        pub _pad2: u32,
    }

    /// `IntNoiseParams` of `int8_matmul.wgsl` and `shaders/int8_embedding.wgsl`: an integer
    /// product or embedding lookup, perturbed or the mean model's.
    pub struct IntNoiseParams {
        /// Input rows (tokens) per member.
        pub rows: u32,
        /// Outputs of the matrix (the vocabulary of a table).
        pub m: u32,
        /// Inputs of the matrix (the width of a table).
        pub n: u32,
        /// Rank of the noise (0: no noise, the mean model's product).
        pub rank: u32,
        /// Members (1 for the mean model).
        pub count: u32,
        /// 1 when every member reads the same input rows (tokens).
        pub shared_input: u32,
        /// The noise shift `t`.
        pub shift: u32,
        /// The output shift `weight_shift(n)` of a product.
        pub out_shift: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
        /// Padding to 16 bytes.
        pub _pad2: u32,
    }

    /// `IntNaiveParams` of `int8_naive.wgsl`: naive ES on int8 for `count` members from
    /// member `first`.
    pub struct IntNaiveParams {
        /// Input rows per member.
        pub rows: u32,
        /// Outputs of the matrix.
        pub m: u32,
        /// Inputs of the matrix.
        pub n: u32,
        /// First member of the chunk.
        pub first: u32,
        /// Members in the chunk.
        pub count: u32,
        /// 1 when every member reads the same input rows.
        pub shared_input: u32,
        /// The output shift `weight_shift(n)`.
        pub out_shift: u32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
    }

    /// `IntUpdateParams` of `int8_update.wgsl`: the ±1 update of an int8 matrix.
    pub struct IntUpdateParams {
        /// Rows of `W`.
        pub m: u32,
        /// Columns of `W`.
        pub n: u32,
        /// Rank of the noise.
        pub rank: u32,
        /// Antithetic pairs.
        pub pairs: u32,
        /// Words of the packed pairs x rank inner dimension.
        pub inner_words: u32,
        /// A weight moves where `|Z|` exceeds it.
        pub threshold: i32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// The first pair of the noise cache entry its cached variant reads (`Draws::first_pair`).
        pub pair_offset: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `IntFullRankParams` of `int8_full_rank.wgsl`: OpenES's integer product (a chunk of
    /// pairs), lookup or update.
    pub struct IntFullRankParams {
        /// Input rows (tokens) per member.
        pub rows: u32,
        /// Outputs of the matrix (the vocabulary of a table).
        pub m: u32,
        /// Inputs of the matrix (the width of a table).
        pub n: u32,
        /// Products of two draws per element of the noise.
        pub rank: u32,
        /// The chunk's first pair within the batch (the product; 0 otherwise).
        pub first_pair: u32,
        /// Pairs of the chunk (the product), of the batch (the lookup) or of the fitness (the update).
        pub pairs: u32,
        /// 1 when every member reads the same input rows (tokens).
        pub shared_input: u32,
        /// The noise shift `t`.
        pub shift: u32,
        /// The output shift `weight_shift(n)` of a product.
        pub out_shift: u32,
        /// A weight moves where `|Z|` exceeds it (the update).
        pub threshold: i32,
        /// Low word of the stream's seed.
        pub seed_lo: u32,
        /// High word of the stream's seed.
        pub seed_hi: u32,
        /// Parameter id of the stream.
        pub param_id: u32,
        /// Noise epoch of the stream.
        pub noise_epoch: u32,
        /// The pair of the batch's first member in the whole population (`Batch::first_pair`),
        /// added to every pair index the noise is drawn for.
        pub pair_offset: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
    }

    /// `IntElementParams` of `int8_elementwise.wgsl`: the elementwise and row kernels.
    pub struct IntElementParams {
        /// Words of the tensor processed (`int_relu`, `int_add`).
        pub len: u32,
        /// Words of the repeating operand (`int_add`).
        pub other: u32,
        /// Rows (`int_layer_norm`, `int_log_likelihood`) or sequences (`int_mingru_scan`).
        pub rows: u32,
        /// Values per row, channels per step, or classes.
        pub width: u32,
        /// Time steps per sequence (`int_mingru_scan`).
        pub time: u32,
        /// Padding to 16 bytes.
        pub _pad0: u32,
        /// Padding to 16 bytes.
        pub _pad1: u32,
        /// Padding to 16 bytes.
        pub _pad2: u32,
    }
}
