//! The low-rank term of the EGGROLL forward on the CPU, one antithetic pair at a time: the pair's
//! factors drawn once or read from the noise cache (column by column, so every inner loop is a
//! contiguous dot product or axpy), then add `s_i (σ/√r) (X_i B) Aᵀ` to both members' outputs. Compiled for AVX-512 / AVX2 when
//! the processor has them; the arithmetic is the same on every path.

use crate::ops::LowRankNoise;

/// Per-thread scratch: `Aᵀ` (r x m), `Bᵀ` (r x n) and `X B` (rows x r).
#[derive(Default)]
pub(crate) struct PairScratch {
    a_t: Vec<f32>,
    b_t: Vec<f32>,
    projection: Vec<f32>,
}

/// One pair's job: its inputs (one slice per member, `rows x n`) and outputs (`rows x m`), and
/// its factors `Aᵀ` then `Bᵀ` when the noise cache holds them (drawn here otherwise).
pub(crate) struct PairJob<'a> {
    pub pair: u32,
    pub factors: Option<&'a [f32]>,
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
    let PairScratch { a_t, b_t, projection } = scratch;
    let (a_t, b_t): (&[f32], &[f32]) = match job.factors {
        Some(factors) => factors.split_at(m * r),
        None => {
            a_t.resize(m * r, 0.0);
            b_t.resize(n * r, 0.0);
            noise.stream.fill_normals(job.pair, shape.layout().a_index(0, 0), a_t);
            noise.stream.fill_normals(job.pair, shape.layout().b_index(0, 0), b_t);
            (a_t, b_t)
        }
    };
    projection.resize(job.rows * r, 0.0);
    let scale = shape.scale();
    // Columns go four at a time (one pass over a row of X or Y serves four of them), with the
    // arithmetic of one column at a time: the same bits, fewer passes and independent chains.
    let quads = r / 4 * 4;
    for (half, (x, y)) in job.inputs.into_iter().zip(job.outputs).enumerate() {
        let coef = if half == 0 { scale } else { -scale };
        for (x_row, p_row) in x.chunks_exact(n).zip(projection.chunks_exact_mut(r)) {
            for (p4, b4) in p_row[..quads].chunks_exact_mut(4).zip(b_t.chunks_exact(4 * n)) {
                let d = dot4(x_row, [&b4[..n], &b4[n..2 * n], &b4[2 * n..3 * n], &b4[3 * n..]]);
                for (p, d) in p4.iter_mut().zip(d) {
                    *p = coef * d;
                }
            }
            for (p, b_col) in p_row[quads..].iter_mut().zip(b_t[quads * n..].chunks_exact(n)) {
                *p = coef * dot(x_row, b_col);
            }
        }
        for (y_row, p_row) in y.chunks_exact_mut(m).zip(projection.chunks_exact(r)) {
            for (p4, a4) in p_row[..quads].chunks_exact(4).zip(a_t.chunks_exact(4 * m)) {
                axpy4([p4[0], p4[1], p4[2], p4[3]], [&a4[..m], &a4[m..2 * m], &a4[2 * m..3 * m], &a4[3 * m..]], y_row);
            }
            for (p, a_col) in p_row[quads..].iter().zip(a_t[quads * m..].chunks_exact(m)) {
                axpy(*p, a_col, y_row);
            }
        }
    }
}

/// The dot products of `x` with four columns, each exactly as [`dot`] computes it (16 lanes, the
/// same order), in one pass over `x` with four independent accumulator chains.
#[inline(always)]
fn dot4(x: &[f32], cols: [&[f32]; 4]) -> [f32; 4] {
    let len = x.len();
    let (c0, c1, c2, c3) = (&cols[0][..len], &cols[1][..len], &cols[2][..len], &cols[3][..len]);
    let (mut a0, mut a1, mut a2, mut a3) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
    let full = len / 16 * 16;
    let lanes = |v: &[f32], s: usize| -> [f32; 16] { v[s..s + 16].try_into().expect("16 lanes") };
    for s in (0..full).step_by(16) {
        let (xs, b0, b1, b2, b3) = (lanes(x, s), lanes(c0, s), lanes(c1, s), lanes(c2, s), lanes(c3, s));
        for i in 0..16 {
            a0[i] += xs[i] * b0[i];
            a1[i] += xs[i] * b1[i];
            a2[i] += xs[i] * b2[i];
            a3[i] += xs[i] * b3[i];
        }
    }
    let tail = |c: &[f32]| -> f32 { x[full..].iter().zip(&c[full..]).map(|(a, b)| a * b).sum() };
    [
        a0.iter().sum::<f32>() + tail(c0),
        a1.iter().sum::<f32>() + tail(c1),
        a2.iter().sum::<f32>() + tail(c2),
        a3.iter().sum::<f32>() + tail(c3),
    ]
}

/// `y += c[0] a[0]; y += c[1] a[1]; ...` in one pass over `y`, rounding as the four axpys would,
/// 16 values at a time (fixed-size lanes, so that it runs in vector registers).
#[inline(always)]
fn axpy4(c: [f32; 4], cols: [&[f32]; 4], y: &mut [f32]) {
    let len = y.len();
    let (a0, a1, a2, a3) = (&cols[0][..len], &cols[1][..len], &cols[2][..len], &cols[3][..len]);
    let full = len / 16 * 16;
    let lanes = |v: &[f32], s: usize| -> [f32; 16] { v[s..s + 16].try_into().expect("16 lanes") };
    let step = |yj: f32, b: [f32; 4]| (((yj + c[0] * b[0]) + c[1] * b[1]) + c[2] * b[2]) + c[3] * b[3];
    for s in (0..full).step_by(16) {
        let (b0, b1, b2, b3) = (lanes(a0, s), lanes(a1, s), lanes(a2, s), lanes(a3, s));
        let ys: &mut [f32; 16] = (&mut y[s..s + 16]).try_into().expect("16 lanes");
        for i in 0..16 {
            ys[i] = step(ys[i], [b0[i], b1[i], b2[i], b3[i]]);
        }
    }
    for j in full..len {
        y[j] = step(y[j], [a0[j], a1[j], a2[j], a3[j]]);
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
