//! The low-rank term of the EGGROLL forward on the CPU, one antithetic pair at a time: draw the
//! pair's factors once (column by column, so every inner loop is a contiguous dot product or axpy),
//! then add `s_i (σ/√r) (X_i B) Aᵀ` to both members' outputs. Compiled for AVX-512 / AVX2 when
//! the processor has them; the arithmetic is the same on every path.

use crate::ops::LowRankNoise;

/// Per-thread scratch: `Aᵀ` (r x m), `Bᵀ` (r x n) and `X B` (rows x r).
#[derive(Default)]
pub(crate) struct PairScratch {
    a_t: Vec<f32>,
    b_t: Vec<f32>,
    projection: Vec<f32>,
}

/// One pair's job: its inputs (one slice per member, `rows x n`) and outputs (`rows x m`).
pub(crate) struct PairJob<'a> {
    pub pair: u32,
    pub inputs: [&'a [f32]; 2],
    pub outputs: [&'a mut [f32]; 2],
    pub rows: usize,
}

/// Adds the low-rank terms of both members of `job.pair`.
pub(crate) fn add_pair_lowrank(noise: &LowRankNoise, job: PairJob, scratch: &mut PairScratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { add_pair_lowrank_avx512(noise, job, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { add_pair_lowrank_avx2(noise, job, scratch) };
        }
    }
    add_pair_lowrank_body(noise, job, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_pair_lowrank_avx512(noise: &LowRankNoise, job: PairJob, scratch: &mut PairScratch) {
    add_pair_lowrank_body(noise, job, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_pair_lowrank_avx2(noise: &LowRankNoise, job: PairJob, scratch: &mut PairScratch) {
    add_pair_lowrank_body(noise, job, scratch)
}

#[inline(always)]
fn add_pair_lowrank_body(noise: &LowRankNoise, job: PairJob, scratch: &mut PairScratch) {
    let shape = noise.shape;
    let (m, n, r) = (shape.m, shape.n, shape.rank);
    // The stream stores factors column by column: Aᵀ and Bᵀ are contiguous runs of draws.
    scratch.a_t.resize(m * r, 0.0);
    scratch.b_t.resize(n * r, 0.0);
    noise.stream.fill_normals(job.pair, shape.layout().a_index(0, 0), &mut scratch.a_t);
    noise.stream.fill_normals(job.pair, shape.layout().b_index(0, 0), &mut scratch.b_t);
    scratch.projection.resize(job.rows * r, 0.0);
    let scale = shape.scale();
    for (half, (x, y)) in job.inputs.into_iter().zip(job.outputs).enumerate() {
        let coef = if half == 0 { scale } else { -scale };
        for (x_row, p_row) in x.chunks_exact(n).zip(scratch.projection.chunks_exact_mut(r)) {
            for (p, b_col) in p_row.iter_mut().zip(scratch.b_t.chunks_exact(n)) {
                *p = coef * dot(x_row, b_col);
            }
        }
        for (y_row, p_row) in y.chunks_exact_mut(m).zip(scratch.projection.chunks_exact(r)) {
            for (p, a_col) in p_row.iter().zip(scratch.a_t.chunks_exact(m)) {
                axpy(*p, a_col, y_row);
            }
        }
    }
}

/// Dot product with 16 independent accumulators so that it vectorises.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let (a_tail, b_tail) = (a16.remainder(), b16.remainder());
    for (ca, cb) in a16.zip(b16) {
        for i in 0..16 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `y += c a`.
#[inline(always)]
fn axpy(c: f32, a: &[f32], y: &mut [f32]) {
    for (yj, aj) in y.iter_mut().zip(a) {
        *yj += c * aj;
    }
}
