//! The argument rules of every [`IntBackend`] method, checked once in front of the backends.

use super::{IntBackend, IntMatrix, IntNoise};
use crate::error::{Error, LimitError, Result, ShapeError};
use crate::ops::{Batch, Recurrence};

/// Largest inner dimension (and `n x rank`) of an integer product: no i32 sum can overflow below it.
const MAX_INNER: usize = 1 << 16;
/// Largest `n x rank` of a perturbed product: `x Wᵀ` (at most `127² n`) plus the noise term (at
/// most `127 · 15² · n r`) stays below 2^31.
const MAX_NOISY_INNER: usize = 1 << 15;
/// Largest row of logits, the largest multiple of 4 below 2^15: the sum of its `EXP2` terms (each
/// at most 2^16) stays below 2^31.
const MAX_CLASSES: usize = (1 << 15) - 4;

fn shape(what: &'static str, actual: usize, expected: usize) -> Result<()> {
    if actual != expected {
        return Err(ShapeError::Length { what, actual, expected }.into());
    }
    Ok(())
}

fn multiple_of_4(what: &str, v: usize) -> Result<()> {
    if v == 0 || !v.is_multiple_of(4) {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a positive multiple of 4 (int8 values are packed four to a word), got {v}"
        )));
    }
    Ok(())
}

/// An int8 tensor's length: a multiple of 4 (0 allowed).
pub(crate) fn i8_len(len: usize) -> Result<()> {
    if !len.is_multiple_of(4) {
        return Err(Error::InvalidArgument(format!("an int8 tensor's length must be a multiple of 4, got {len}")));
    }
    Ok(())
}

/// Host int8 data: a length that is a multiple of 4, no -128.
pub(crate) fn i8_data(data: &[i8]) -> Result<()> {
    i8_len(data.len())?;
    match data.iter().position(|&v| v == i8::MIN) {
        Some(i) => Err(Error::InvalidArgument(format!("int8 value {i} is -128; int8 tensors hold [-127, 127]"))),
        None => Ok(()),
    }
}

pub(crate) fn write_i8<B: IntBackend>(b: &B, tensor: &B::I8, data: &[i8]) -> Result<()> {
    shape("the written data", data.len(), b.len_i8(tensor))?;
    i8_data(data)
}

fn matrix(shape: IntMatrix) -> Result<()> {
    multiple_of_4("a matrix's outputs m", shape.m)?;
    multiple_of_4("a matrix's inputs n", shape.n)?;
    if shape.n > MAX_INNER {
        return Err(LimitError::new("an int8 matrix's inputs n", shape.n as u64, "", MAX_INNER as u64, "exact i32 sum").into());
    }
    Ok(())
}

fn noise(noise: &IntNoise, shape: IntMatrix) -> Result<()> {
    if noise.rank == 0 || noise.rank > shape.m.min(shape.n) {
        return Err(Error::InvalidArgument(format!("rank must be in 1..={}, got {}", shape.m.min(shape.n), noise.rank)));
    }
    let side_rank = shape.m.max(shape.n) * noise.rank;
    if side_rank > MAX_INNER {
        return Err(LimitError::new(
            "an int8 matrix's larger side times its rank",
            side_rank as u64,
            "",
            MAX_INNER as u64,
            "exact i32 sum",
        )
        .into());
    }
    if noise.shift > 30 {
        return Err(Error::InvalidArgument(format!("the noise shift must be at most 30, got {}", noise.shift)));
    }
    Ok(())
}

pub(crate) fn int_matmul<B: IntBackend>(b: &B, x: &B::I8, w: &B::I8, s: IntMatrix, rows: usize, y: &B::I8) -> Result<()> {
    matrix(s)?;
    if rows == 0 {
        return Err(Error::InvalidArgument("rows must be > 0".into()));
    }
    shape("x", b.len_i8(x), rows * s.n)?;
    shape("W", b.len_i8(w), s.m * s.n)?;
    shape("y", b.len_i8(y), rows * s.m)
}

pub(crate) fn int_perturbed_matmul<B: IntBackend>(
    b: &B, x: &B::I8, w: &B::I8, s: IntMatrix, n: &IntNoise, batch: &Batch, y: &B::I8,
) -> Result<()> {
    batch.validate()?;
    matrix(s)?;
    noise(n, s)?;
    if s.n * n.rank > MAX_NOISY_INNER {
        let what = "a perturbed int8 product's inputs times its rank";
        return Err(LimitError::new(what, (s.n * n.rank) as u64, "", MAX_NOISY_INNER as u64, "exact i32 sum").into());
    }
    population_lengths(b, x, w, s, batch, y)
}

/// The buffers of a population's product: `x` of the batch's inputs, `W` m x n, `y` of the
/// batch's outputs.
fn population_lengths<B: IntBackend>(b: &B, x: &B::I8, w: &B::I8, s: IntMatrix, batch: &Batch, y: &B::I8) -> Result<()> {
    shape("x", b.len_i8(x), batch.input_len(s.n))?;
    shape("W", b.len_i8(w), s.m * s.n)?;
    shape("y", b.len_i8(y), batch.output_len(s.m))
}

/// [`IntBackend::int_naive_matmul`]: a valid matrix and batch, the full-rank noise of
/// one pair within its stream's 2^32 draws, buffers of the lengths they imply.
pub(crate) fn int_naive_matmul<B: IntBackend>(b: &B, x: &B::I8, w: &B::I8, s: IntMatrix, batch: &Batch, y: &B::I8) -> Result<()> {
    batch.validate()?;
    matrix(s)?;
    crate::checks::full_rank_draws(s.m, s.n)?;
    population_lengths(b, x, w, s, batch, y)
}

/// OpenES's integer noise of an m x n matrix: its `2 m n r` draws per pair within the pair's
/// stream of 2^32.
fn full_rank_draws(s: IntMatrix, rank: usize) -> Result<()> {
    let draws = 2 * s.m as u64 * s.n as u64 * rank as u64;
    if draws > 1 << 32 {
        let what = format!("full-rank integer noise of rank {rank} on a {}x{} matrix", s.m, s.n);
        return Err(LimitError::new(what, draws, "draws per pair", 1u64 << 32, "noise stream").into());
    }
    Ok(())
}

/// [`IntBackend::int_full_rank_matmul`]: the full-rank draws within a pair's stream
/// (checked first, before any length), and the rules of the low-rank product.
pub(crate) fn int_full_rank_matmul<B: IntBackend>(
    b: &B, x: &B::I8, w: &B::I8, s: IntMatrix, n: &IntNoise, batch: &Batch, y: &B::I8,
) -> Result<()> {
    full_rank_draws(s, n.rank)?;
    int_perturbed_matmul(b, x, w, s, n, batch, y)
}

fn tokens(tokens: &[u32], vocabulary: usize) -> Result<()> {
    match tokens.iter().position(|&t| t as usize >= vocabulary) {
        Some(i) => Err(Error::InvalidArgument(format!("token {i} is {}, outside the table's 0..{vocabulary}", tokens[i]))),
        None => Ok(()),
    }
}

pub(crate) fn int_embedding<B: IntBackend>(b: &B, t: &[u32], table: &B::I8, s: IntMatrix, y: &B::I8) -> Result<()> {
    multiple_of_4("an embedding's width", s.n)?;
    if s.m == 0 {
        return Err(Error::InvalidArgument("an embedding table needs at least one row".into()));
    }
    tokens(t, s.m)?;
    shape("the table", b.len_i8(table), s.m * s.n)?;
    shape("y", b.len_i8(y), t.len() * s.n)
}

pub(crate) fn int_perturbed_embedding<B: IntBackend>(
    b: &B, t: &[u32], table: &B::I8, s: IntMatrix, n: &IntNoise, batch: &Batch, y: &B::I8,
) -> Result<()> {
    batch.validate()?;
    multiple_of_4("an embedding's width", s.n)?;
    noise(n, s)?;
    shape("the tokens", t.len(), batch.input_len(1))?;
    tokens(t, s.m)?;
    shape("the table", b.len_i8(table), s.m * s.n)?;
    shape("y", b.len_i8(y), batch.output_len(s.n))
}

/// [`IntBackend::int_full_rank_embedding`]: the full-rank draws of the table within a
/// pair's stream (checked first), and the rules of the low-rank lookup.
pub(crate) fn int_full_rank_embedding<B: IntBackend>(
    b: &B, t: &[u32], table: &B::I8, s: IntMatrix, n: &IntNoise, batch: &Batch, y: &B::I8,
) -> Result<()> {
    full_rank_draws(s, n.rank)?;
    int_perturbed_embedding(b, t, table, s, n, batch, y)
}

pub(crate) fn int_rows<B: IntBackend>(b: &B, x: &B::I8, width: usize, what: &'static str) -> Result<()> {
    multiple_of_4(&format!("the {what}'s width"), width)?;
    if width > MAX_INNER {
        return Err(LimitError::new(format!("the {what}'s width"), width as u64, "", MAX_INNER as u64, "exact i32 sum").into());
    }
    let len = b.len_i8(x);
    if !len.is_multiple_of(width) {
        return Err(ShapeError::Rows { what, len, width }.into());
    }
    Ok(())
}

pub(crate) fn int_mingru_scan<B: IntBackend>(b: &B, gate: &B::I8, candidate: &B::I8, s: Recurrence, h: &B::I8) -> Result<()> {
    s.validate()?;
    multiple_of_4("the recurrence's width", s.width)?;
    shape("the gates", b.len_i8(gate), s.output_len())?;
    shape("the candidates", b.len_i8(candidate), s.output_len())?;
    shape("h", b.len_i8(h), s.output_len())
}

pub(crate) fn int_add<B: IntBackend>(b: &B, x: &B::I8, other: &B::I8) -> Result<()> {
    let (len, other) = (b.len_i8(x), b.len_i8(other));
    if other == 0 || !len.is_multiple_of(other) {
        return Err(ShapeError::Rows { what: "x", len, width: other }.into());
    }
    Ok(())
}

pub(crate) fn int_log_likelihood<B: IntBackend>(b: &B, logits: &B::I8, targets: &[u32], classes: usize, out: &B::I32) -> Result<()> {
    multiple_of_4("the classes", classes)?;
    if classes > MAX_CLASSES {
        return Err(LimitError::new("a row of logits", classes as u64, "classes", MAX_CLASSES as u64, "exact i32 sum").into());
    }
    tokens(targets, classes)?;
    shape("the logits", b.len_i8(logits), targets.len() * classes)?;
    shape("the output", b.len_i32(out), targets.len())
}

pub(crate) fn int_lowrank_update<B: IntBackend>(b: &B, fitness: &[i8], n: &IntNoise, s: IntMatrix, w: &B::I8) -> Result<()> {
    if fitness.is_empty() {
        return Err(Error::InvalidArgument("the update needs the fitness of at least one pair".into()));
    }
    if let Some(k) = fitness.iter().position(|f| !(-1..=1).contains(f)) {
        return Err(Error::InvalidArgument(format!("pair {k}'s fitness is {}, not -1, 0 or 1", fitness[k])));
    }
    if s.m == 0 || s.n == 0 || !(s.m * s.n).is_multiple_of(4) {
        return Err(Error::InvalidArgument(format!("an int8 matrix of {} x {} values is not whole words", s.m, s.n)));
    }
    if n.rank == 0 || n.rank > s.m.min(s.n) {
        return Err(Error::InvalidArgument(format!("rank must be in 1..={}, got {}", s.m.min(s.n), n.rank)));
    }
    if fitness.len() * n.rank > MAX_INNER {
        let pairs_rank = (fitness.len() * n.rank) as u64;
        return Err(LimitError::new("the update's pairs times its rank", pairs_rank, "", MAX_INNER as u64, "exact i32 sum").into());
    }
    shape("W", b.len_i8(w), s.m * s.n)
}

/// [`IntBackend::int_full_rank_update`]: the full-rank draws within a pair's stream (checked
/// first), and the rules of the low-rank update.
pub(crate) fn int_full_rank_update<B: IntBackend>(b: &B, fitness: &[i8], n: &IntNoise, s: IntMatrix, w: &B::I8) -> Result<()> {
    full_rank_draws(s, n.rank)?;
    int_lowrank_update(b, fitness, n, s, w)
}
