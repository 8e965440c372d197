//! The argument rules of every [`Backend`] method, checked once, in front of the backends: the
//! provided methods of [`Backend`] call these before the backend's `*_unchecked` kernel, so no
//! backend (nor the optimiser, nor the benchmarks) checks them again. Buffers are described by
//! their length and storage type only, which every backend reports.

use crate::error::{Error, LimitError, Result, ShapeError};
use crate::ops::{AdamParams, Batch, DType, LowRankNoise};
use crate::Backend;

/// Checks a fitness vector: a valid population of finite values.
pub(crate) fn fitness(fitness: &[f32]) -> Result<()> {
    crate::ops::population(fitness.len())?;
    crate::ops::finite_fitness(fitness, false)
}

/// Checks a buffer's length.
fn len(what: &'static str, actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(ShapeError::Length { what, actual, expected }.into());
    }
    Ok(())
}

/// Checks that a buffer is f32: only the weights and inputs of the forwards may be stored in 16
/// bits ([`forward_dtypes`]).
fn f32_buffer<B: Backend>(backend: &B, what: &str, buffer: &B::Buffer) -> Result<()> {
    match backend.dtype(buffer) {
        DType::F32 => Ok(()),
        other => Err(Error::Unsupported(format!(
            "{what} is {other}: only the weights W (f16, bf16) and inputs X (f16) of matmul, perturbed_matmul and full_rank_matmul \
             may be 16-bit, every other buffer is f32"
        ))),
    }
}

/// Checks a buffer's length and that it is f32.
fn f32_len<B: Backend>(backend: &B, what: &'static str, buffer: &B::Buffer, expected: usize) -> Result<()> {
    len(what, backend.len(buffer), expected)?;
    f32_buffer(backend, what, buffer)
}

/// Checks the storage types of a forward: `x` f32 with `w` f32, f16 or bf16, or `x` and `w` both
/// f16; `y` f32.
fn forward_dtypes<B: Backend>(backend: &B, x: &B::Buffer, w: &B::Buffer, y: &B::Buffer) -> Result<()> {
    f32_buffer(backend, "output Y", y)?;
    match (backend.dtype(x), backend.dtype(w)) {
        (DType::F32, _) | (DType::F16, DType::F16) => Ok(()),
        (dx, dw) => Err(Error::Unsupported(format!(
            "input X is {dx} with weight W {dw}: a forward takes X f32 with W f32, f16 or bf16, or X and W both f16"
        ))),
    }
}

/// [`Backend::write`]: the source fills the buffer exactly.
pub(crate) fn write<B: Backend>(backend: &B, buffer: &B::Buffer, data: &[f32]) -> Result<()> {
    len("write source", data.len(), backend.len(buffer))
}

/// [`Backend::copy`]: same length and storage type.
pub(crate) fn copy<B: Backend>(backend: &B, src: &B::Buffer, dst: &B::Buffer) -> Result<()> {
    len("copy source", backend.len(src), backend.len(dst))?;
    let (ds, dd) = (backend.dtype(src), backend.dtype(dst));
    if ds != dd {
        return Err(Error::Unsupported(format!("copy from {ds} to {dd} (copies keep the storage type)")));
    }
    Ok(())
}

/// [`Backend::matmul`]: `x` rows x n, `w` m x n, `y` rows x m, both sides of `w` > 0.
pub(crate) fn matmul<B: Backend>(
    backend: &B, x: &B::Buffer, w: &B::Buffer, (m, n, rows): (usize, usize, usize), y: &B::Buffer,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Err(ShapeError::EmptyMatrix { m, n }.into());
    }
    len("weight W", backend.len(w), m * n)?;
    len("input X", backend.len(x), rows * n)?;
    len("output Y", backend.len(y), rows * m)?;
    forward_dtypes(backend, x, w, y)
}

/// [`Backend::noise_factors`]: a valid shape and population, factor buffers of `N x m x r` and
/// `N x n x r` f32.
pub(crate) fn noise_factors<B: Backend>(backend: &B, noise: &LowRankNoise, population: usize, a: &B::Buffer, b: &B::Buffer) -> Result<()> {
    noise.shape.validate()?;
    crate::ops::population(population)?;
    if noise.shape.piece.is_some() {
        return Err(Error::InvalidArgument("noise_factors takes a whole matrix's noise, not a piece of rows".into()));
    }
    let s = noise.shape;
    f32_len(backend, "factor A", a, population * s.m * s.rank)?;
    f32_len(backend, "factor B", b, population * s.n * s.rank)
}

/// A valid noise shape and batch, as every population forward needs: the matrix's `(m, n)`.
fn noisy_batch(noise: &LowRankNoise, batch: &Batch) -> Result<(usize, usize)> {
    noise.shape.validate()?;
    batch.validate()?;
    Ok((noise.shape.m, noise.shape.n))
}

/// [`Backend::perturbed_matmul`] and [`Backend::full_rank_matmul`]: a valid shape and batch,
/// buffers of the lengths they imply, storage types as [`Backend::matmul`].
pub(crate) fn population_forward<B: Backend>(
    backend: &B, x: &B::Buffer, w: &B::Buffer, noise: &LowRankNoise, batch: &Batch, y: &B::Buffer,
) -> Result<()> {
    let (m, n) = noisy_batch(noise, batch)?;
    len("weight W", backend.len(w), m * n)?;
    len("input X", backend.len(x), batch.input_len(n))?;
    len("output Y", backend.len(y), batch.output_len(m))?;
    forward_dtypes(backend, x, w, y)
}

/// The extra rule of [`Backend::full_rank_matmul`] and [`Backend::full_rank_embedding`]:
/// the full-rank noise of an m x n matrix fits one pair's stream (at most 2^32 draws).
pub(crate) fn full_rank_draws(m: usize, n: usize) -> Result<()> {
    let draws = m as u64 * n as u64;
    if draws > 1 << 32 {
        return Err(
            LimitError::new(format!("full-rank noise of a {m}x{n} matrix"), draws, "draws per pair", 1u64 << 32, "noise stream").into()
        );
    }
    Ok(())
}

/// [`Backend::lowrank_update`]: a valid shape, finite fitness of a valid population, an m x n f32
/// gradient.
pub(crate) fn lowrank_update<B: Backend>(backend: &B, fitness: &[f32], noise: &LowRankNoise, g: &B::Buffer) -> Result<()> {
    noise.shape.validate()?;
    self::fitness(fitness)?;
    f32_len(backend, "gradient G", g, noise.shape.m * noise.shape.n)
}

/// [`Backend::perturbed_bias`]: a valid batch and σ, a non-empty f32 bias, an f32 output of the
/// batch's length.
pub(crate) fn perturbed_bias<B: Backend>(backend: &B, y: &B::Buffer, bias: &B::Buffer, sigma: f32, batch: &Batch) -> Result<()> {
    perturbed_vector(backend, "bias", y, bias, sigma, batch)
}

/// [`Backend::perturbed_gain`]: as [`perturbed_bias`], for a gain.
pub(crate) fn perturbed_gain<B: Backend>(backend: &B, y: &B::Buffer, gain: &B::Buffer, sigma: f32, batch: &Batch) -> Result<()> {
    perturbed_vector(backend, "gain", y, gain, sigma, batch)
}

/// A vector parameter `what` with full-rank noise in a population forward: a valid batch and σ, a
/// non-empty f32 vector, an f32 output of the batch's length.
fn perturbed_vector<B: Backend>(
    backend: &B, what: &'static str, y: &B::Buffer, vector: &B::Buffer, sigma: f32, batch: &Batch,
) -> Result<()> {
    batch.validate()?;
    crate::ops::sigma(sigma)?;
    let len = backend.len(vector);
    if len == 0 {
        return Err(ShapeError::Empty { what }.into());
    }
    f32_buffer(backend, what, vector)?;
    f32_len(backend, "output Y", y, batch.output_len(len))
}

/// [`Backend::vector_update`]: finite fitness of a valid population, a valid σ, an f32 gradient.
pub(crate) fn vector_update<B: Backend>(backend: &B, fitness: &[f32], sigma: f32, g: &B::Buffer) -> Result<()> {
    self::fitness(fitness)?;
    crate::ops::sigma(sigma)?;
    f32_buffer(backend, "gradient", g)
}

/// [`Backend::full_rank_update`]: a valid shape, finite fitness of a valid population, an m x n
/// f32 gradient.
pub(crate) fn full_rank_update<B: Backend>(backend: &B, fitness: &[f32], noise: &LowRankNoise, g: &B::Buffer) -> Result<()> {
    noise.shape.validate()?;
    self::fitness(fitness)?;
    f32_len(backend, "gradient G", g, noise.shape.m * noise.shape.n)
}

/// [`Backend::add_bias`]: `y` whole rows of a non-empty bias, both f32.
pub(crate) fn add_bias<B: Backend>(backend: &B, y: &B::Buffer, bias: &B::Buffer) -> Result<()> {
    rows_of_vector(backend, "bias", y, bias)
}

/// [`Backend::gain`]: `y` whole rows of a non-empty gain, both f32.
pub(crate) fn gain<B: Backend>(backend: &B, y: &B::Buffer, gain: &B::Buffer) -> Result<()> {
    rows_of_vector(backend, "gain", y, gain)
}

/// A vector parameter `what` applied to every row of `y`: `y` whole rows of the non-empty vector,
/// both f32.
fn rows_of_vector<B: Backend>(backend: &B, what: &'static str, y: &B::Buffer, vector: &B::Buffer) -> Result<()> {
    let (len, y_len) = (backend.len(vector), backend.len(y));
    if len == 0 || !y_len.is_multiple_of(len) {
        return Err(ShapeError::Rows { what: "output Y", len: y_len, width: len }.into());
    }
    f32_buffer(backend, "output Y", y)?;
    f32_buffer(backend, what, vector)
}

/// [`Backend::layer_norm`]: whole rows of `cols > 0` f32 values, `eps` finite and >= 0.
pub(crate) fn layer_norm<B: Backend>(backend: &B, x: &B::Buffer, cols: usize, eps: f32) -> Result<()> {
    let x_len = backend.len(x);
    if cols == 0 || !x_len.is_multiple_of(cols) {
        return Err(ShapeError::Rows { what: "layer norm input", len: x_len, width: cols }.into());
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidArgument(format!("layer norm eps must be finite and >= 0, got {eps}")));
    }
    f32_buffer(backend, "layer norm input", x)
}

/// [`Backend::activation`]: an f32 buffer.
pub(crate) fn activation<B: Backend>(backend: &B, x: &B::Buffer) -> Result<()> {
    f32_buffer(backend, "activation input", x)
}

/// [`Backend::sgd_step`]: a finite learning rate, f32 parameter and gradient of one length.
pub(crate) fn sgd_step<B: Backend>(backend: &B, param: &B::Buffer, grad: &B::Buffer, lr: f32) -> Result<()> {
    if !lr.is_finite() {
        return Err(Error::InvalidArgument(format!("learning rate must be finite, got {lr}")));
    }
    let n = backend.len(param);
    f32_buffer(backend, "parameter", param)?;
    f32_len(backend, "gradient", grad, n)
}

/// [`Backend::adam_step`]: valid hyperparameters, f32 parameter, gradient and moments of one
/// length.
pub(crate) fn adam_step<B: Backend>(
    backend: &B, param: &B::Buffer, grad: &B::Buffer, m: &B::Buffer, v: &B::Buffer, p: &AdamParams,
) -> Result<()> {
    p.validate()?;
    let n = backend.len(param);
    f32_buffer(backend, "parameter", param)?;
    f32_len(backend, "gradient", grad, n)?;
    f32_len(backend, "first moment", m, n)?;
    f32_len(backend, "second moment", v, n)
}

/// [`Backend::mingru_scan`]: a valid shape, f32 gate, candidate and output of
/// `sequences x time x width` values, and, when given, an f32 initial state of
/// `sequences x width` values.
pub(crate) fn mingru_scan<B: Backend>(
    backend: &B, gate: &B::Buffer, candidate: &B::Buffer, h0: Option<&B::Buffer>, shape: &crate::ops::Recurrence, h: &B::Buffer,
) -> Result<()> {
    shape.validate()?;
    let len = shape.output_len();
    f32_len(backend, "gate", gate, len)?;
    f32_len(backend, "candidate", candidate, len)?;
    if let Some(h0) = h0 {
        f32_len(backend, "initial state h0", h0, shape.state_len())?;
    }
    f32_len(backend, "output H", h, len)
}

/// [`Backend::log_softmax_at`]: whole rows of `classes > 0` f32 logits, one target per row, each a
/// class in `0..classes`, an f32 output of one value per row.
pub(crate) fn log_softmax_at<B: Backend>(backend: &B, logits: &B::Buffer, targets: &[u32], classes: usize, out: &B::Buffer) -> Result<()> {
    let logits_len = backend.len(logits);
    if classes == 0 || !logits_len.is_multiple_of(classes) {
        return Err(ShapeError::Rows { what: "logits", len: logits_len, width: classes }.into());
    }
    let rows = logits_len / classes;
    len("targets", targets.len(), rows)?;
    f32_buffer(backend, "logits", logits)?;
    f32_len(backend, "log-likelihood output", out, rows)?;
    if let Some((row, t)) = targets.iter().enumerate().find(|(_, &t)| t as usize >= classes) {
        return Err(Error::InvalidArgument(format!("target of row {row} is class {t}, outside 0..{classes}")));
    }
    Ok(())
}

/// The token ids of an embedding: each a row of the `vocab`-row table.
fn tokens_in_range(tokens: &[u32], vocab: usize) -> Result<()> {
    if let Some((row, t)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= vocab) {
        return Err(Error::InvalidArgument(format!("token of row {row} is {t}, outside the table's rows 0..{vocab}")));
    }
    Ok(())
}

/// [`Backend::perturbed_embedding`] and [`Backend::full_rank_embedding`]: a valid shape and
/// batch, one token per input row (per [`Batch::input_len`] with width 1), each a row of the
/// whole table (a piece's [`crate::RowPiece::rows`]), an m x n f32 table, an f32 output of
/// `N x rows x n` values.
pub(crate) fn perturbed_embedding<B: Backend>(
    backend: &B, tokens: &[u32], table: &B::Buffer, noise: &LowRankNoise, batch: &Batch, y: &B::Buffer,
) -> Result<()> {
    let (m, n) = noisy_batch(noise, batch)?;
    len("tokens", tokens.len(), batch.input_len(1))?;
    f32_len(backend, "embedding table", table, m * n)?;
    f32_len(backend, "output Y", y, batch.output_len(n))?;
    tokens_in_range(tokens, noise.shape.whole_rows())
}

/// [`Backend::embedding`]: an f32 table of whole rows of `cols > 0` values, each token one of its
/// rows, an f32 output of `tokens x cols` values.
pub(crate) fn embedding<B: Backend>(backend: &B, tokens: &[u32], table: &B::Buffer, cols: usize, y: &B::Buffer) -> Result<()> {
    let table_len = backend.len(table);
    if cols == 0 || table_len == 0 || !table_len.is_multiple_of(cols) {
        return Err(ShapeError::Rows { what: "embedding table", len: table_len, width: cols }.into());
    }
    f32_buffer(backend, "embedding table", table)?;
    f32_len(backend, "output Y", y, tokens.len() * cols)?;
    tokens_in_range(tokens, table_len / cols)
}
