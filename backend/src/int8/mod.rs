//! Integer EGGROLL: int8 weights and activations, i32 accumulation, integer noise, an integer
//! log-likelihood and a ±1 update, all exact, so that every backend gives the same bits
//! ([docs/int8.md](../../../docs/int8.md) defines each operation; [`spec`] holds the scalar
//! definitions the kernels follow).
//!
//! [`IntBackend`] is the integer twin of [`Backend`]: its provided methods check their arguments
//! (rules in `checks.rs`, in front of every backend, as for the f32 kernels) and call the
//! backend's `*_unchecked` kernels.

mod checks;
pub mod spec;
pub mod tables;

pub use spec::{full_rank_noise, log_likelihood, noise_value, sat8, threshold, weight_shift, ACT_BITS};
pub use tables::{EXP2, LOG2};

use crate::error::Result;
use crate::ops::{Batch, Recurrence};
use crate::rng::NoiseStream;
use crate::{Backend, Kernels};
use std::future::Future;

/// An int8 matrix `W` (m x n, row-major, `y = x Wᵀ`): both sides multiples of 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntMatrix {
    /// Output features (rows of `W`).
    pub m: usize,
    /// Input features (columns of `W`).
    pub n: usize,
}

/// The integer noise of one matrix parameter at one noise epoch: EGGROLL's rank-r factors, or
/// OpenES's full-rank noise of the same distribution per weight (the sum of `rank` products of
/// two draws, [`full_rank_noise`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntNoise {
    /// Which stream (seed, parameter id, noise epoch).
    pub stream: NoiseStream,
    /// Rank r of the factors, or products per weight of the full-rank noise (>= 1).
    pub rank: usize,
    /// The noise shift `t`: member i's weight is about `W + s_i a bᵀ / 2^t`.
    pub shift: u32,
}

/// Integer EGGROLL's kernels, checked: the int8 forward of a population, its log-likelihood and
/// the ±1 update. `I8` tensors hold int8 values in `[-127, 127]`, `I32` tensors i32 values. As
/// [`Backend`] is to [`Kernels`], this is the front every caller uses, given to every
/// [`IntKernels`] implementation by the blanket implementation below and replaceable by none.
pub trait IntBackend: Backend + IntKernels {
    /// Copies `data` (values in `[-127, 127]`, length a multiple of 4) to a new int8 tensor.
    fn upload_i8(&self, data: &[i8]) -> Result<Self::I8> {
        checks::i8_data(data)?;
        self.upload_i8_unchecked(data)
    }
    /// A new zero-filled int8 tensor of `len` values (a multiple of 4).
    fn zeros_i8(&self, len: usize) -> Result<Self::I8> {
        checks::i8_len(len)?;
        self.zeros_i8_unchecked(len)
    }
    /// Overwrites `tensor` with `data` (same length, values in `[-127, 127]`).
    fn write_i8(&self, tensor: &mut Self::I8, data: &[i8]) -> Result<()> {
        checks::write_i8(self, tensor, data)?;
        self.write_i8_unchecked(tensor, data)
    }
    /// Copies `src` into `dst` (same length).
    fn copy_i8(&self, src: &Self::I8, dst: &mut Self::I8) -> Result<()> {
        let len = self.len_i8(src);
        if self.len_i8(dst) != len {
            return Err(crate::error::ShapeError::Length { what: "copy source", actual: len, expected: self.len_i8(dst) }.into());
        }
        if len == 0 {
            return Ok(());
        }
        self.copy_i8_unchecked(src, dst)
    }
    /// Blocking [`IntKernels::read_i8`].
    #[cfg(feature = "native")]
    fn read_i8_blocking(&self, tensor: &Self::I8) -> Result<Vec<i8>> {
        pollster::block_on(self.read_i8(tensor))
    }
    /// Blocking [`IntKernels::read_i32`].
    #[cfg(feature = "native")]
    fn read_i32_blocking(&self, tensor: &Self::I32) -> Result<Vec<i32>> {
        pollster::block_on(self.read_i32(tensor))
    }

    /// The mean model's product `y = sat8((x Wᵀ) >> weight_shift(n))` over `rows` rows.
    fn int_matmul(&self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, rows: usize, y: &mut Self::I8) -> Result<()> {
        checks::int_matmul(self, x, w, shape, rows, y)?;
        self.int_matmul_unchecked(x, w, shape, rows, y)
    }
    /// Every member's perturbed product (docs/int8.md): `x` is shared (`rows x n`) or each
    /// member's (`N x rows x n`) as `batch.input` says, `y` gets `N x rows x m`.
    fn int_perturbed_matmul(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()> {
        checks::int_perturbed_matmul(self, x, w, shape, &noise, &batch, y)?;
        self.int_perturbed_matmul_unchecked(x, w, shape, noise, batch, y)
    }
    /// Naive ES on int8, the baseline the integer EGGROLL forward is measured against
    /// (docs/int8.md, "Naive ES"): member i's weight `sat8(W[j, l] + s_i E_k[j, l])` with the
    /// full-rank noise `E_k[j, l] = noise_value(stream, k, j n + l)` of its pair `k = i / 2`,
    /// materialised and multiplied: `y = sat8((x W_iᵀ) >> weight_shift(n))`. `x` and `y` as for
    /// [`IntBackend::int_perturbed_matmul`]; `m n` must not exceed 2^32 (the draws of one pair).
    fn int_naive_matmul(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, stream: NoiseStream, batch: Batch, y: &mut Self::I8,
    ) -> Result<()> {
        checks::int_naive_matmul(self, x, w, shape, &batch, y)?;
        self.int_naive_matmul_unchecked(x, w, shape, stream, batch, y)
    }
    /// Every member's perturbed product under OpenES's full-rank integer noise (docs/int8.md,
    /// "OpenES"): integer EGGROLL's product with `noise_j = Σ_l x_l E_k[j, l]`, `E_k[j, l]` the
    /// [`full_rank_noise`] of element `j n + l` of member i's pair `k`. Arguments as for
    /// [`IntBackend::int_perturbed_matmul`]; `2 m n r` must not exceed 2^32 (the draws of a pair).
    fn int_full_rank_matmul(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()> {
        checks::int_full_rank_matmul(self, x, w, shape, &noise, &batch, y)?;
        self.int_full_rank_matmul_unchecked(x, w, shape, noise, batch, y)
    }
    /// Rows `tokens` of the V x d table (the mean model's embedding), `tokens.len() x d`.
    fn int_embedding(&self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, y: &mut Self::I8) -> Result<()> {
        checks::int_embedding(self, tokens, table, shape, y)?;
        if tokens.is_empty() {
            return Ok(());
        }
        self.int_embedding_unchecked(tokens, table, shape, y)
    }
    /// Every member's perturbed rows of the table; `tokens` as [`Batch::input_len`]`(1)`.
    fn int_perturbed_embedding(
        &self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()> {
        checks::int_perturbed_embedding(self, tokens, table, shape, &noise, &batch, y)?;
        self.int_perturbed_embedding_unchecked(tokens, table, shape, noise, batch, y)
    }
    /// Every member's perturbed rows of the table under OpenES's full-rank noise: row v is
    /// `sat8(W[v, j] + s (E_k[v, j] >> t))` with `E_k[v, j]` the [`full_rank_noise`] of element
    /// `v d + j`. Arguments as for [`IntBackend::int_perturbed_embedding`]; `2 V d r` must not
    /// exceed 2^32.
    fn int_full_rank_embedding(
        &self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()> {
        checks::int_full_rank_embedding(self, tokens, table, shape, &noise, &batch, y)?;
        self.int_full_rank_embedding_unchecked(tokens, table, shape, noise, batch, y)
    }
    /// The integer layer norm of every row of `width` values, in place.
    fn int_layer_norm(&self, x: &mut Self::I8, width: usize) -> Result<()> {
        checks::int_rows(self, x, width, "layer norm")?;
        self.int_layer_norm_unchecked(x, width)
    }
    /// The integer minGRU over `[sequence][time][width]` gate pre-activations and candidates.
    fn int_mingru_scan(&self, gate: &Self::I8, candidate: &Self::I8, shape: Recurrence, h: &mut Self::I8) -> Result<()> {
        checks::int_mingru_scan(self, gate, candidate, shape, h)?;
        self.int_mingru_scan_unchecked(gate, candidate, shape, h)
    }
    /// `max(x, 0)` in place.
    fn int_relu(&self, x: &mut Self::I8) -> Result<()> {
        self.int_relu_unchecked(x)
    }
    /// `x = sat8(x + other)` in place; `other`'s length divides `x`'s and it repeats over it.
    fn int_add(&self, x: &mut Self::I8, other: &Self::I8) -> Result<()> {
        checks::int_add(self, x, other)?;
        self.int_add_unchecked(x, other)
    }
    /// The log-likelihood `ll` of each row's target (units of 2^-16 bits) into `out` (one i32 per
    /// row); `targets` in `0..classes`, one per row of `logits`.
    fn int_log_likelihood(&self, logits: &Self::I8, targets: &[u32], classes: usize, out: &mut Self::I32) -> Result<()> {
        checks::int_log_likelihood(self, logits, targets, classes, out)?;
        if targets.is_empty() {
            return Ok(());
        }
        self.int_log_likelihood_unchecked(logits, targets, classes, out)
    }
    /// The ±1 update of an int8 matrix: `W += sign(Z)` where `|Z| > threshold`, with
    /// `Z = Σ_k f_k Σ_q a_kq b_kqᵀ` and `fitness` one value in `{-1, 0, 1}` per pair.
    fn int_lowrank_update(&self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Self::I8) -> Result<()> {
        checks::int_lowrank_update(self, fitness, &noise, shape, w)?;
        self.int_lowrank_update_unchecked(fitness, noise, shape, threshold, w)
    }

    /// OpenES's ±1 update of an int8 matrix: as [`IntBackend::int_lowrank_update`] with
    /// `Z[j, l] = Σ_k f_k E_k[j, l]`, the full-rank noise of
    /// [`IntBackend::int_full_rank_matmul`]; `2 m n r` must not exceed 2^32.
    fn int_full_rank_update(&self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Self::I8) -> Result<()> {
        checks::int_full_rank_update(self, fitness, &noise, shape, w)?;
        self.int_full_rank_update_unchecked(fitness, noise, shape, threshold, w)
    }
}

impl<K: IntKernels> IntBackend for K {}

/// What a backend implements for integer EGGROLL: its int8 and i32 tensors, their transfers and
/// the `*_unchecked` kernels behind the checked front [`IntBackend`].
pub trait IntKernels: Kernels {
    /// A device-resident int8 tensor (its length a multiple of 4).
    type I8;
    /// A device-resident i32 tensor.
    type I32;

    /// A new zero-filled i32 tensor of `len` values.
    fn zeros_i32(&self, len: usize) -> Result<Self::I32>;
    /// Values in an int8 tensor.
    fn len_i8(&self, tensor: &Self::I8) -> usize;
    /// Values in an i32 tensor.
    fn len_i32(&self, tensor: &Self::I32) -> usize;
    /// Reads an int8 tensor back once the queued work writing it has run.
    fn read_i8(&self, tensor: &Self::I8) -> impl Future<Output = Result<Vec<i8>>>;
    /// Reads an i32 tensor back once the queued work writing it has run.
    fn read_i32(&self, tensor: &Self::I32) -> impl Future<Output = Result<Vec<i32>>>;
    /// The kernel of [`IntBackend::upload_i8`].
    fn upload_i8_unchecked(&self, data: &[i8]) -> Result<Self::I8>;
    /// The kernel of [`IntBackend::zeros_i8`].
    fn zeros_i8_unchecked(&self, len: usize) -> Result<Self::I8>;
    /// The kernel of [`IntBackend::copy_i8`]; at least one value.
    fn copy_i8_unchecked(&self, src: &Self::I8, dst: &mut Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::write_i8`].
    fn write_i8_unchecked(&self, tensor: &mut Self::I8, data: &[i8]) -> Result<()>;
    /// The kernel of [`IntBackend::int_matmul`].
    fn int_matmul_unchecked(&self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, rows: usize, y: &mut Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::int_perturbed_matmul`].
    fn int_perturbed_matmul_unchecked(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_naive_matmul`].
    fn int_naive_matmul_unchecked(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, stream: NoiseStream, batch: Batch, y: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_full_rank_matmul`].
    fn int_full_rank_matmul_unchecked(
        &self, x: &Self::I8, w: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_embedding`]; at least one token.
    fn int_embedding_unchecked(&self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, y: &mut Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::int_perturbed_embedding`].
    fn int_perturbed_embedding_unchecked(
        &self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_full_rank_embedding`].
    fn int_full_rank_embedding_unchecked(
        &self, tokens: &[u32], table: &Self::I8, shape: IntMatrix, noise: IntNoise, batch: Batch, y: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_layer_norm`].
    fn int_layer_norm_unchecked(&self, x: &mut Self::I8, width: usize) -> Result<()>;
    /// The kernel of [`IntBackend::int_mingru_scan`].
    fn int_mingru_scan_unchecked(&self, gate: &Self::I8, candidate: &Self::I8, shape: Recurrence, h: &mut Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::int_relu`].
    fn int_relu_unchecked(&self, x: &mut Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::int_add`].
    fn int_add_unchecked(&self, x: &mut Self::I8, other: &Self::I8) -> Result<()>;
    /// The kernel of [`IntBackend::int_log_likelihood`]; at least one row.
    fn int_log_likelihood_unchecked(&self, logits: &Self::I8, targets: &[u32], classes: usize, out: &mut Self::I32) -> Result<()>;
    /// The kernel of [`IntBackend::int_lowrank_update`].
    fn int_lowrank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Self::I8,
    ) -> Result<()>;
    /// The kernel of [`IntBackend::int_full_rank_update`].
    fn int_full_rank_update_unchecked(
        &self, fitness: &[i8], noise: IntNoise, shape: IntMatrix, threshold: i32, w: &mut Self::I8,
    ) -> Result<()>;
}
