//! # eggroll-backend
//!
//! The kernels of EGGROLL (Evolution Guided GeneRal Optimisation via Low-rank Learning) on two
//! backends that do the same math:
//!
//! * [`cpu::CpuBackend`]: multithreaded, a real GEMM for the shared `X Wᵀ`; the reference that
//!   checks every GPU kernel;
//! * [`gpu::WgpuBackend`]: WGSL compute shaders (`shaders/`) on any WebGPU adapter; parameters,
//!   noise and activations stay on the device, only what the caller asks for is read back.
//!
//! Conventions (`docs/conventions.md`): `W` is m x n and `y = x Wᵀ`; member i of a
//! population of N (even) belongs to antithetic pair `i / 2` with sign `s_i = +1` for even `i` and
//! `-1` for odd `i`; its perturbation is `s_i (σ/√r) A_i B_iᵀ` with `A_i` (m x r) and `B_i` (n x r)
//! standard normal from the counter-based RNG in [`rng`].

mod checks;
pub mod cpu;
pub mod error;
#[cfg(feature = "wgpu")]
pub mod gpu;
pub mod int8;
mod limits;
pub mod meter;
pub mod noise_cache;
pub mod ops;
pub mod rng;
#[cfg(feature = "wgpu")]
pub mod select;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transformer;

pub use error::{Error, Result};
pub use limits::MemoryLimits;
pub use ops::{validate_fitness, Activation, AdamParams, Batch, DType, InputLayout, LowRank, LowRankNoise, Recurrence, RowPiece};
pub use rng::{philox4x32_10, FillPath, NoiseStream};
#[cfg(feature = "wgpu")]
pub use select::{BackendChoice, SelectedBackend};

use std::future::Future;

/// What a backend runs on, for reports and `eggroll info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterDescription {
    /// Adapter name, e.g. "NVIDIA H200" or "llvmpipe (LLVM 15.0.6, 256 bits)", or the CPU's.
    pub name: String,
    /// PCI vendor id (0 when unknown or CPU backend).
    pub vendor: u32,
    /// Graphics API, e.g. "Vulkan", "Metal", "Dx12", "Gl", or "cpu".
    pub backend: String,
    /// Driver name and version as the adapter reports them.
    pub driver: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    pub device_type: String,
    /// Optional device features in use (e.g. "shader-f16", "subgroup", "timestamp-query").
    pub features: Vec<String>,
}

/// The operations EGGROLL needs from a device, checked: the front every caller uses. Buffers are
/// flat `f32` arrays that stay on the device.
///
/// Each method checks its arguments once, here in front of the backends, returns [`Error`]
/// instead of panicking, and then runs the backend's kernel ([`Kernels`]). Every [`Kernels`]
/// implementation gets this front from the blanket implementation below, and none can replace
/// it (a second implementation would conflict with the blanket one), so no backend can skip a
/// check.
///
/// Work is enqueued by the kernel calls and runs asynchronously on GPU backends; [`Kernels::read`]
/// is the only call that waits for results (async at its core so that it runs in a browser).
pub trait Backend: Kernels {
    /// Blocking [`Kernels::read`] for native callers.
    #[cfg(feature = "native")]
    fn read_blocking(&self, buffer: &Self::Buffer) -> Result<Vec<f32>> {
        pollster::block_on(self.read(buffer))
    }
    /// Blocking [`Kernels::synchronize`] for native callers.
    #[cfg(feature = "native")]
    fn synchronize_blocking(&self) -> Result<()> {
        pollster::block_on(self.synchronize())
    }

    /// Overwrites `buffer` with `data` (same length).
    fn write(&self, buffer: &mut Self::Buffer, data: &[f32]) -> Result<()> {
        checks::write(self, buffer, data)?;
        self.write_unchecked(buffer, data)
    }

    /// Copies `src` into `dst` (same length and storage type).
    fn copy(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<()> {
        checks::copy(self, src, dst)?;
        self.copy_unchecked(src, dst)
    }

    /// Plain batched inference: `y = x Wᵀ` for `rows` rows (`x`: rows x n, `w`: m x n,
    /// `y`: rows x m). The baseline the benchmarks compare EGGROLL against. `w` may be stored as
    /// f16 or bf16 with `x` f32, or `x` and `w` both as f16 (see [`Kernels::upload_as`]); `y` is
    /// f32.
    fn matmul(&self, x: &Self::Buffer, w: &Self::Buffer, m: usize, n: usize, rows: usize, y: &mut Self::Buffer) -> Result<()> {
        checks::matmul(self, x, w, (m, n, rows), y)?;
        if rows == 0 {
            return Ok(());
        }
        self.matmul_unchecked(x, w, m, n, rows, y)
    }

    /// Noise factors of every member: `a` gets `N x m x r` values with `a[i] = s_i A_{i/2}`
    /// (sign applied), `b` gets `N x n x r` values with `b[i] = B_{i/2}`.
    fn noise_factors(&self, noise: LowRankNoise, population: usize, a: &mut Self::Buffer, b: &mut Self::Buffer) -> Result<()> {
        checks::noise_factors(self, &noise, population, a, b)?;
        self.noise_factors_unchecked(noise, population, a, b)
    }

    /// The EGGROLL population forward:
    /// `Y_i = X_i Wᵀ + s_i (σ/√r) (X_i B_i) A_iᵀ` for every member i at once, noise regenerated
    /// from the RNG. `x` per [`Batch::input_len`], `w`: m x n, `y`: N x rows x m. Storage types
    /// as for [`Backend::matmul`]. When `w` is a piece of rows of
    /// a larger matrix ([`LowRank::piece`]), `y` gets those columns of the whole's output.
    fn perturbed_matmul(&self, x: &Self::Buffer, w: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer) -> Result<()> {
        checks::population_forward(self, x, w, &noise, &batch, y)?;
        self.perturbed_matmul_unchecked(x, w, noise, batch, y)
    }

    /// OpenES's population forward: every member gets its own full-rank Gaussian perturbation,
    /// materialised and multiplied, `Y_i = X_i (W + s_i σ E_i)ᵀ`; computed this way it is also
    /// naive ES, the baseline the benchmarks measure EGGROLL against (the paper's "naive ES"), where `E_i` (m x n) holds draws `0 .. m n` of
    /// pair `i / 2` in `noise.stream`, row-major (`E_i[j, l]` is draw `j n + l`, as
    /// [`NoiseStream::fill_normals`] gives them). `noise.shape` gives m, n and σ; its rank plays
    /// no part. Shapes and dtypes as for [`Backend::perturbed_matmul`]; `W + s_i σ E_i` is held
    /// in the input's storage type (f32, or f16 when `x` and `w` are f16), 16-bit weights
    /// widened to f32 before the noise is added. `m n` must not exceed 2^32 (the draws of one
    /// pair). A piece of rows ([`LowRank::piece`]) takes those rows of
    /// the whole's `E_i`.
    fn full_rank_matmul(&self, x: &Self::Buffer, w: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer) -> Result<()> {
        checks::full_rank_draws(noise.shape.whole_rows(), noise.shape.n)?;
        checks::population_forward(self, x, w, &noise, &batch, y)?;
        self.full_rank_matmul_unchecked(x, w, noise, batch, y)
    }

    /// The low-rank ES gradient estimate `g = (σ/√r)/√N Σ_i f_i s_i A_i B_iᵀ` (m x n), overwriting
    /// `g`. `fitness` holds N finite (usually shaped) values; a piece of rows
    /// ([`LowRank::piece`]) gets those rows of the whole's estimate.
    fn lowrank_update(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Self::Buffer) -> Result<()> {
        checks::lowrank_update(self, fitness, &noise, g)?;
        self.lowrank_update_unchecked(fitness, noise, g)
    }

    /// Full-rank vector noise in the forward pass: `y[i, row, :] += bias + s_i σ ε_i` for each
    /// member i and row (`y`: N x rows x len, `bias`: len). Draw `j` of pair `k`'s stream is `ε_k[j]`.
    fn perturbed_bias(&self, y: &mut Self::Buffer, bias: &Self::Buffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        checks::perturbed_bias(self, y, bias, sigma, &batch)?;
        self.perturbed_bias_unchecked(y, bias, stream, sigma, batch)
    }

    /// The vector gradient estimate `g = σ/√N Σ_i f_i s_i ε_i` (len), overwriting `g`.
    fn vector_update(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut Self::Buffer) -> Result<()> {
        checks::vector_update(self, fitness, sigma, g)?;
        self.vector_update_unchecked(fitness, stream, sigma, g)
    }

    /// OpenES's gradient estimate of an m x n matrix, `g = σ/√N Σ_i f_i s_i E_i` (m x n),
    /// overwriting `g`, with `E_i` the full-rank noise [`Backend::full_rank_matmul`] adds
    /// (`noise.shape` gives m, n, σ and a piece's rows, whose rows of `E_i` it takes; its rank
    /// plays no part). For a whole matrix it is [`Backend::vector_update`] over its `m n` values.
    fn full_rank_update(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Self::Buffer) -> Result<()> {
        checks::full_rank_draws(noise.shape.whole_rows(), noise.shape.n)?;
        checks::full_rank_update(self, fitness, &noise, g)?;
        self.full_rank_update_unchecked(fitness, noise, g)
    }

    /// Adds `bias` (len) to every row of `y` (rows x len), no noise.
    fn add_bias(&self, y: &mut Self::Buffer, bias: &Self::Buffer) -> Result<()> {
        checks::add_bias(self, y, bias)?;
        self.add_bias_unchecked(y, bias)
    }

    /// Full-rank vector noise on a gain in the forward pass:
    /// `y[i, row, j] *= 1 + gain[j] + s_i σ ε_i[j]` for each member i and row (`y`: N x rows x len,
    /// `gain`: len). The gain is stored as an offset from 1 (zero leaves `y` as it is), and `ε_i`
    /// is the noise [`Backend::perturbed_bias`] adds and [`Backend::vector_update`] estimates the
    /// gradient from for the same stream.
    fn perturbed_gain(&self, y: &mut Self::Buffer, gain: &Self::Buffer, stream: NoiseStream, sigma: f32, batch: Batch) -> Result<()> {
        checks::perturbed_gain(self, y, gain, sigma, &batch)?;
        self.perturbed_gain_unchecked(y, gain, stream, sigma, batch)
    }

    /// Multiplies every row of `y` (rows x len) by `1 + gain` (`gain`: len, an offset from 1), no
    /// noise.
    fn gain(&self, y: &mut Self::Buffer, gain: &Self::Buffer) -> Result<()> {
        checks::gain(self, y, gain)?;
        self.gain_unchecked(y, gain)
    }

    /// Applies `act` elementwise in place.
    fn activation(&self, x: &mut Self::Buffer, act: Activation) -> Result<()> {
        checks::activation(self, x)?;
        self.activation_unchecked(x, act)
    }

    /// Normalises each row of `cols` values to zero mean and unit variance (no affine), in place.
    fn layer_norm(&self, x: &mut Self::Buffer, cols: usize, eps: f32) -> Result<()> {
        checks::layer_norm(self, x, cols, eps)?;
        self.layer_norm_unchecked(x, cols, eps)
    }

    /// SGD ascent step `param += lr * grad`.
    fn sgd_step(&self, param: &mut Self::Buffer, grad: &Self::Buffer, lr: f32) -> Result<()> {
        checks::sgd_step(self, param, grad, lr)?;
        self.sgd_step_unchecked(param, grad, lr)
    }

    /// Adam/AdamW step on the loss `-grad` (ascent on the fitness), moments `m` and `v` updated in
    /// place; decoupled weight decay when `p.weight_decay > 0`.
    fn adam_step(
        &self, param: &mut Self::Buffer, grad: &Self::Buffer, m: &mut Self::Buffer, v: &mut Self::Buffer, p: AdamParams,
    ) -> Result<()> {
        checks::adam_step(self, param, grad, m, v, &p)?;
        self.adam_step_unchecked(param, grad, m, v, p)
    }

    /// The minGRU recurrence over time. `gate` holds the gate pre-activations `W_z x_t` and
    /// `candidate` the candidates `h~_t = W_h x_t` of every step (computed beforehand as plain or
    /// perturbed matmuls over all rows and steps at once); for each sequence s, step t and
    /// channel c, `z = sigmoid(gate[s, t, c])` and
    /// `h[s, t, c] = (1 - z) h[s, t - 1, c] + z candidate[s, t, c]`, with
    /// `sigmoid(v) = 1 / (1 + exp(-v))` and `h[s, -1, c] = h0[s, c]` (0 when `h0` is `None`).
    /// `gate`, `candidate` and `h` hold `sequences x time x width` f32 laid out
    /// `[sequence][time][width]` (sequences = members x rows, member-major; see [`Recurrence`]);
    /// `h0` holds `sequences x width`. `h` gets every `h_t`, overwritten.
    fn mingru_scan(
        &self, gate: &Self::Buffer, candidate: &Self::Buffer, h0: Option<&Self::Buffer>, shape: Recurrence, h: &mut Self::Buffer,
    ) -> Result<()> {
        checks::mingru_scan(self, gate, candidate, h0, &shape, h)?;
        self.mingru_scan_unchecked(gate, candidate, h0, shape, h)
    }

    /// The log-likelihood of a target class under a softmax, per row: `logits` holds
    /// `rows x classes` f32 values (row-major, `rows = len(logits) / classes`), `targets` one class
    /// index per row, and `out` (rows f32) gets
    /// `log_softmax(logits[row])[t] = l_t - max - ln Σ_j exp(l_j - max)`, `t = targets[row]`,
    /// `max` the row's largest logit (subtracted so that no exp overflows; non-finite logits give
    /// non-finite results). The fitness of a language model is the mean of these over the tokens.
    ///
    /// The targets live on the host: they are the next tokens of the data the caller already
    /// holds, and only there can each be checked to be a class in `0..classes` in front of the
    /// backends without a readback; a GPU backend uploads them (`rows` u32) into a pooled buffer
    /// per call, as [`Backend::lowrank_update`] does with its fitness.
    fn log_softmax_at(&self, logits: &Self::Buffer, targets: &[u32], classes: usize, out: &mut Self::Buffer) -> Result<()> {
        checks::log_softmax_at(self, logits, targets, classes, out)?;
        if targets.is_empty() {
            return Ok(());
        }
        self.log_softmax_at_unchecked(logits, targets, classes, out)
    }

    /// The EGGROLL embedding lookup: row `v` of member i's table `W + s_i (σ/√r) A_i B_iᵀ`, that is
    /// `y[i, row, :] = W[v, :] + s_i (σ/√r) Σ_k A_i[v, k] B_i[:, k]` with `v` the row's token, for
    /// every member at once; only the rows looked up are computed, the noise regenerated from the
    /// RNG as in [`Backend::perturbed_matmul`]. `tokens` holds [`Batch::input_len`]`(1)` ids (the
    /// shared rows, or every member's rows), each a row of the whole table; `table` is m x n
    /// (f32), `y` gets `N x rows x n`. A piece of a split table ([`LowRank::piece`]) holds rows
    /// `first .. first + m` of the whole's and takes the whole's noise: the rows whose tokens
    /// fall there are written, the others left as they are, as
    /// [`transformer::Transformer::embedding_piece`] does. The tokens live on the host, like the
    /// targets of [`Backend::log_softmax_at`], so that each is checked in front of the backends.
    fn perturbed_embedding(
        &self, tokens: &[u32], table: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()> {
        checks::perturbed_embedding(self, tokens, table, &noise, &batch, y)?;
        self.perturbed_embedding_unchecked(tokens, table, noise, batch, y)
    }

    /// OpenES's embedding lookup: row `v` of member i's table `W + s_i σ E_{i/2}`, that
    /// is `y[i, row, :] = W[v, :] + s_i σ E_{i/2}[v, :]` with `v` the row's token, for every member
    /// at once, where `E_k[v, l]` is draw `v n + l` of pair k in `noise.stream`: the full-rank noise
    /// [`Backend::full_rank_matmul`] gives an m x n matrix and [`Backend::vector_update`]
    /// estimates its gradient from. Only the rows looked up are drawn, the m x n noise is never
    /// materialised. `noise.shape` gives m, n and σ; its rank plays no part. Tokens, table,
    /// pieces and output as for [`Backend::perturbed_embedding`]; the whole table's `m n` must
    /// not exceed 2^32 (the draws of one pair).
    fn full_rank_embedding(
        &self, tokens: &[u32], table: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()> {
        checks::full_rank_draws(noise.shape.whole_rows(), noise.shape.n)?;
        checks::perturbed_embedding(self, tokens, table, &noise, &batch, y)?;
        self.full_rank_embedding_unchecked(tokens, table, noise, batch, y)
    }

    /// The unperturbed embedding lookup (the mean model's): `y[row, :] = table[tokens[row], :]`
    /// with `table` rows of `cols` f32 values and `y` `tokens x cols`.
    fn embedding(&self, tokens: &[u32], table: &Self::Buffer, cols: usize, y: &mut Self::Buffer) -> Result<()> {
        checks::embedding(self, tokens, table, cols, y)?;
        if tokens.is_empty() {
            return Ok(());
        }
        self.embedding_unchecked(tokens, table, cols, y)
    }
}

impl<K: Kernels> Backend for K {}

/// What a backend implements: its buffers, the transfers, and the `*_unchecked` kernels behind
/// the checked front [`Backend`]. A kernel may assume the front's rules hold (shapes, lengths,
/// finite fitness, even populations); it refuses only what its own device cannot do (limits,
/// storage types it lacks).
pub trait Kernels: Sized {
    /// A device-resident array of `f32`.
    type Buffer;

    /// Describes the adapter.
    fn describe(&self) -> AdapterDescription;

    /// Copies `data` to a new device buffer.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;
    /// Copies `data` to a new device buffer stored as `dtype` (f16 and bf16 round to nearest,
    /// ties to even). Only [`Backend::matmul`], [`Backend::perturbed_matmul`] and
    /// [`Backend::full_rank_matmul`] take 16-bit buffers, as `w` (f16, bf16) and `x` (f16, with
    /// `w` f16), and [`transformer::Transformer::embedding_piece`] as its table piece;
    /// [`Backend::write`] into a 16-bit buffer rounds the same way and [`Kernels::read`] gives
    /// the stored values widened to f32. A backend or adapter without that storage type
    /// returns [`Error::Unsupported`].
    fn upload_as(&self, data: &[f32], dtype: DType) -> Result<Self::Buffer> {
        match dtype {
            DType::F32 => self.upload(data),
            other => Err(Error::Unsupported(format!("{} storage on the {} backend (it stores f32 only)", other, self.describe().backend))),
        }
    }
    /// The storage type of `buffer`.
    fn dtype(&self, _buffer: &Self::Buffer) -> DType {
        DType::F32
    }
    /// A new zero-filled buffer of `len` values.
    fn zeros(&self, len: usize) -> Result<Self::Buffer>;
    /// Number of `f32` in `buffer`.
    fn len(&self, buffer: &Self::Buffer) -> usize;
    /// Reads `buffer` back to the host once all queued work that writes it has run.
    fn read(&self, buffer: &Self::Buffer) -> impl Future<Output = Result<Vec<f32>>>;
    /// Waits until all queued work has run (for timing).
    fn synchronize(&self) -> impl Future<Output = Result<()>>;
    /// The limits of the device's memory, for planning what a run allocates; none by default.
    fn memory_limits(&self) -> MemoryLimits {
        MemoryLimits::default()
    }
    /// Lets the backend keep up to `bytes` of the noise it draws ([`noise_cache`]): a parameter's
    /// low-rank factors, integer noise or vector noise for the pairs of a batch, drawn once per
    /// noise epoch by the first call that needs them and read by every later call of the epoch
    /// (and by the update). 0, a new backend's setting, draws each call's noise on the fly. The
    /// results are the same bits either way. Clones of a backend share its cache.
    fn set_noise_cache(&self, bytes: u64);

    /// The kernel of [`Backend::write`]; arguments already checked.
    fn write_unchecked(&self, buffer: &mut Self::Buffer, data: &[f32]) -> Result<()>;
    /// The kernel of [`Backend::copy`]; arguments already checked.
    fn copy_unchecked(&self, src: &Self::Buffer, dst: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::matmul`]; arguments already checked, `rows > 0`.
    fn matmul_unchecked(&self, x: &Self::Buffer, w: &Self::Buffer, m: usize, n: usize, rows: usize, y: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::noise_factors`]; arguments already checked.
    fn noise_factors_unchecked(&self, noise: LowRankNoise, population: usize, a: &mut Self::Buffer, b: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::perturbed_matmul`]; arguments already checked.
    fn perturbed_matmul_unchecked(
        &self, x: &Self::Buffer, w: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()>;
    /// The kernel of [`Backend::full_rank_matmul`]; arguments already checked.
    fn full_rank_matmul_unchecked(
        &self, x: &Self::Buffer, w: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()>;
    /// The kernel of [`Backend::lowrank_update`]; arguments already checked.
    fn lowrank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::perturbed_bias`]; arguments already checked.
    fn perturbed_bias_unchecked(
        &self, y: &mut Self::Buffer, bias: &Self::Buffer, stream: NoiseStream, sigma: f32, batch: Batch,
    ) -> Result<()>;
    /// The kernel of [`Backend::vector_update`]; arguments already checked.
    fn vector_update_unchecked(&self, fitness: &[f32], stream: NoiseStream, sigma: f32, g: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::full_rank_update`]; arguments already checked.
    fn full_rank_update_unchecked(&self, fitness: &[f32], noise: LowRankNoise, g: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::add_bias`]; arguments already checked.
    fn add_bias_unchecked(&self, y: &mut Self::Buffer, bias: &Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::perturbed_gain`]; arguments already checked.
    fn perturbed_gain_unchecked(
        &self, y: &mut Self::Buffer, gain: &Self::Buffer, stream: NoiseStream, sigma: f32, batch: Batch,
    ) -> Result<()>;
    /// The kernel of [`Backend::gain`]; arguments already checked.
    fn gain_unchecked(&self, y: &mut Self::Buffer, gain: &Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::activation`]; arguments already checked.
    fn activation_unchecked(&self, x: &mut Self::Buffer, act: Activation) -> Result<()>;
    /// The kernel of [`Backend::layer_norm`]; arguments already checked.
    fn layer_norm_unchecked(&self, x: &mut Self::Buffer, cols: usize, eps: f32) -> Result<()>;
    /// The kernel of [`Backend::sgd_step`]; arguments already checked.
    fn sgd_step_unchecked(&self, param: &mut Self::Buffer, grad: &Self::Buffer, lr: f32) -> Result<()>;
    /// The kernel of [`Backend::adam_step`]; arguments already checked.
    fn adam_step_unchecked(
        &self, param: &mut Self::Buffer, grad: &Self::Buffer, m: &mut Self::Buffer, v: &mut Self::Buffer, p: AdamParams,
    ) -> Result<()>;
    /// The kernel of [`Backend::mingru_scan`]; arguments already checked.
    fn mingru_scan_unchecked(
        &self, gate: &Self::Buffer, candidate: &Self::Buffer, h0: Option<&Self::Buffer>, shape: Recurrence, h: &mut Self::Buffer,
    ) -> Result<()>;
    /// The kernel of [`Backend::log_softmax_at`]; arguments already checked, at least one row.
    fn log_softmax_at_unchecked(&self, logits: &Self::Buffer, targets: &[u32], classes: usize, out: &mut Self::Buffer) -> Result<()>;
    /// The kernel of [`Backend::perturbed_embedding`]; arguments already checked.
    fn perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()>;
    /// The kernel of [`Backend::full_rank_embedding`]; arguments already checked.
    fn full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &Self::Buffer, noise: LowRankNoise, batch: Batch, y: &mut Self::Buffer,
    ) -> Result<()>;
    /// The kernel of [`Backend::embedding`]; arguments already checked, at least one token.
    fn embedding_unchecked(&self, tokens: &[u32], table: &Self::Buffer, cols: usize, y: &mut Self::Buffer) -> Result<()>;
}
