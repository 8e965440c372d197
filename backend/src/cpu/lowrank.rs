//! The low-rank term of the EGGROLL forward on the CPU, two antithetic pairs at a time: each
//! pair's factors drawn once or read from the noise cache (column by column, so every inner loop
//! is a contiguous dot product or axpy), the projections `X_i B` of the pairs' four members, then
//! `s_i (σ/√r) (X_i B) Aᵀ` added to the members' outputs. Compiled for AVX-512 / AVX2 when the
//! processor has them; the arithmetic is the same on every path.

use crate::ops::LowRankNoise;

/// Per-thread scratch: the factors of up to two pairs when drawn here (`Aᵀ` then `Bᵀ` per pair),
/// the projections of their members (member, row, column) and those of one row.
#[derive(Default)]
pub(crate) struct PairScratch {
    factors: Vec<f32>,
    projection: Vec<f32>,
    row: Vec<f32>,
}

/// One pair's job: its inputs (one slice per member, `rows x n`) and outputs (`rows x m`), and
/// its factors `Aᵀ` then `Bᵀ` when the noise cache holds them (drawn here otherwise).
pub(crate) struct PairJob<'a> {
    pub pair: u32,
    pub factors: Option<&'a [f32]>,
    pub inputs: [&'a [f32]; 2],
    pub outputs: [&'a mut [f32]; 2],
}

/// Adds the low-rank terms of both members of every job's pair; `rows` rows per member.
pub(crate) fn add_lowrank(noise: &LowRankNoise, jobs: &mut [PairJob], rows: usize, scratch: &mut PairScratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { add_lowrank_avx512(noise, jobs, rows, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { add_lowrank_avx2(noise, jobs, rows, scratch) };
        }
    }
    add_lowrank_body(noise, jobs, rows, scratch, project)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_lowrank_avx512(noise: &LowRankNoise, jobs: &mut [PairJob], rows: usize, scratch: &mut PairScratch) {
    add_lowrank_body(noise, jobs, rows, scratch, |x, b_t, n, out| {
        // SAFETY: this function is only entered on a processor with AVX-512F.
        unsafe { avx512::project(x, b_t, n, out) }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_lowrank_avx2(noise: &LowRankNoise, jobs: &mut [PairJob], rows: usize, scratch: &mut PairScratch) {
    add_lowrank_body(noise, jobs, rows, scratch, project)
}

/// The projections of one row of each of up to four members (`x`; members 0 and 1 of the pair
/// whose `Bᵀ` is `b_t[0]`, 2 and 3 of `b_t[1]`): `out[u * r + k] = dot(x[u], column k of B)`.
type Project<'a> = [&'a [f32]; 4];

#[inline(always)]
fn add_lowrank_body(
    noise: &LowRankNoise, jobs: &mut [PairJob], rows: usize, scratch: &mut PairScratch,
    project: impl Fn(Project, [&[f32]; 2], usize, &mut [f32]),
) {
    let shape = noise.shape;
    let (m, n, r) = (shape.m, shape.n, shape.rank);
    let per_pair = (m + n) * r;
    let scale = shape.scale();
    let PairScratch { factors: drawn, projection, row } = scratch;
    projection.resize(4 * rows * r, 0.0);
    row.resize(4 * r, 0.0);
    for two in jobs.chunks_mut(2) {
        // The stream stores factors column by column: Aᵀ and Bᵀ are contiguous runs of draws.
        if two.iter().any(|job| job.factors.is_none()) {
            drawn.resize(2 * per_pair, 0.0);
            for (job, f) in two.iter().zip(drawn.chunks_exact_mut(per_pair)) {
                if job.factors.is_none() {
                    let (a_t, b_t) = f.split_at_mut(m * r);
                    noise.stream.fill_normals(job.pair, shape.layout().a_index(0, 0), a_t);
                    noise.stream.fill_normals(job.pair, shape.layout().b_index(0, 0), b_t);
                }
            }
        }
        let factors_of = |j: usize| -> &[f32] {
            match two[j].factors {
                Some(factors) => factors,
                None => &drawn[j * per_pair..(j + 1) * per_pair],
            }
        };
        // A lone pair stands in for the missing second one; those results are not read.
        let second = two.len() - 1;
        let factors = [factors_of(0), factors_of(second)];
        let b_t = [&factors[0][m * r..], &factors[1][m * r..]];
        // Projections (member, row, column), each times the member's sign and σ/√r.
        for t in 0..rows {
            let row_of = |j: usize, half: usize| &two[j].inputs[half][t * n..(t + 1) * n];
            project([row_of(0, 0), row_of(0, 1), row_of(second, 0), row_of(second, 1)], b_t, n, row);
            for u in 0..4 {
                let coef = if u % 2 == 0 { scale } else { -scale };
                for k in 0..r {
                    projection[(u * rows + t) * r + k] = coef * row[u * r + k];
                }
            }
        }
        // Outputs: Y_i += P_i Aᵀ, four columns per pass over the rows of both members of a pair,
        // with the arithmetic of one column at a time (the same bits, fewer passes).
        let quads = r / 4 * 4;
        for (j, job) in two.iter_mut().enumerate() {
            let a_t = &factors[j][..m * r];
            let [y_even, y_odd] = &mut job.outputs;
            for t in 0..rows {
                let p_of = |half: usize| &projection[((2 * j + half) * rows + t) * r..((2 * j + half) * rows + t + 1) * r];
                let (p0, p1) = (p_of(0), p_of(1));
                let (y0, y1) = (&mut y_even[t * m..(t + 1) * m], &mut y_odd[t * m..(t + 1) * m]);
                for q in (0..quads).step_by(4) {
                    let a4 = &a_t[q * m..(q + 4) * m];
                    axpy4_pair(
                        [[p0[q], p0[q + 1], p0[q + 2], p0[q + 3]], [p1[q], p1[q + 1], p1[q + 2], p1[q + 3]]],
                        [&a4[..m], &a4[m..2 * m], &a4[2 * m..3 * m], &a4[3 * m..]],
                        [y0, y1],
                    );
                }
                for k in quads..r {
                    axpy(p0[k], &a_t[k * m..(k + 1) * m], y0);
                    axpy(p1[k], &a_t[k * m..(k + 1) * m], y1);
                }
            }
        }
    }
}

/// [`Project`] by [`dot4`] and [`dot`].
#[inline(always)]
fn project(x: Project, b_t: [&[f32]; 2], n: usize, out: &mut [f32]) {
    let r = out.len() / 4;
    let quads = r / 4 * 4;
    for (u, out) in out.chunks_exact_mut(r).enumerate() {
        let (x, b_t) = (x[u], b_t[u / 2]);
        for (o4, b4) in out[..quads].chunks_exact_mut(4).zip(b_t.chunks_exact(4 * n)) {
            o4.copy_from_slice(&dot4(x, [&b4[..n], &b4[n..2 * n], &b4[2 * n..3 * n], &b4[3 * n..4 * n]]));
        }
        for (o, b_col) in out[quads..].iter_mut().zip(b_t[quads * n..].chunks_exact(n)) {
            *o = dot(x, &b_col[..n]);
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

/// `y[u] += c[u][0] a[0]; y[u] += c[u][1] a[1]; ...` for both members `u` of a pair, which share
/// the columns `a`, in one pass over their rows, rounding as the four axpys would, 16 values at a
/// time (fixed-size lanes, so that it runs in vector registers); each column is read once for
/// both rows, and the two rows' additions are independent chains.
#[inline(always)]
fn axpy4_pair(c: [[f32; 4]; 2], cols: [&[f32]; 4], y: [&mut [f32]; 2]) {
    let len = y[0].len();
    let [y0, y1] = y;
    let y1 = &mut y1[..len];
    let (a0, a1, a2, a3) = (&cols[0][..len], &cols[1][..len], &cols[2][..len], &cols[3][..len]);
    let full = len / 16 * 16;
    let lanes = |v: &[f32], s: usize| -> [f32; 16] { v[s..s + 16].try_into().expect("16 lanes") };
    let step = |c: [f32; 4], yj: f32, b: [f32; 4]| (((yj + c[0] * b[0]) + c[1] * b[1]) + c[2] * b[2]) + c[3] * b[3];
    for s in (0..full).step_by(16) {
        let (b0, b1, b2, b3) = (lanes(a0, s), lanes(a1, s), lanes(a2, s), lanes(a3, s));
        let ys0: &mut [f32; 16] = (&mut y0[s..s + 16]).try_into().expect("16 lanes");
        for i in 0..16 {
            ys0[i] = step(c[0], ys0[i], [b0[i], b1[i], b2[i], b3[i]]);
        }
        let ys1: &mut [f32; 16] = (&mut y1[s..s + 16]).try_into().expect("16 lanes");
        for i in 0..16 {
            ys1[i] = step(c[1], ys1[i], [b0[i], b1[i], b2[i], b3[i]]);
        }
    }
    for j in full..len {
        y0[j] = step(c[0], y0[j], [a0[j], a1[j], a2[j], a3[j]]);
        y1[j] = step(c[1], y1[j], [a0[j], a1[j], a2[j], a3[j]]);
    }
}

/// Dot product with 16 independent accumulators so that it vectorises: lane `l` sums the
/// products of values `l, l + 16, ...` in order, the lanes are added in order, then the products
/// past the last 16 in order.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// [`project`] in AVX-512 registers: four members' rows against four columns of their pairs'
/// `B` at once (16 accumulators, each row and column read once per 16 values), the 16 lane
/// accumulators then transposed so that their in-order sums are 16 vector additions, not 16
/// chains of scalar ones. The same bits as [`dot`].
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{dot, Project};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn project(x: Project, b_t: [&[f32]; 2], n: usize, out: &mut [f32]) {
        let r = out.len() / 4;
        let full = n / 16 * 16;
        for q in (0..r / 4 * 4).step_by(4) {
            let rows: [&[f32]; 4] = [&x[0][..n], &x[1][..n], &x[2][..n], &x[3][..n]];
            let col = |u: usize, c: usize| &b_t[u / 2][(q + c) * n..(q + c + 1) * n];
            let cols: [&[f32]; 8] = [col(0, 0), col(0, 1), col(0, 2), col(0, 3), col(2, 0), col(2, 1), col(2, 2), col(2, 3)];
            let mut acc = [_mm512_setzero_ps(); 16];
            for s in (0..full).step_by(16) {
                for u in 0..4 {
                    // SAFETY: s + 16 <= n, the length of every row and column.
                    let xs = unsafe { _mm512_loadu_ps(rows[u].as_ptr().add(s)) };
                    for c in 0..4 {
                        // SAFETY: as above.
                        let bs = unsafe { _mm512_loadu_ps(cols[u / 2 * 4 + c].as_ptr().add(s)) };
                        acc[4 * u + c] = _mm512_add_ps(acc[4 * u + c], _mm512_mul_ps(xs, bs));
                    }
                }
            }
            let mut sum = _mm512_set1_ps(-0.0);
            for lane in transpose(acc) {
                sum = _mm512_add_ps(sum, lane);
            }
            let mut sums = [0.0f32; 16];
            // SAFETY: `sums` holds 16 floats.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr(), sum) };
            for (i, s) in sums.into_iter().enumerate() {
                let (u, c) = (i / 4, i % 4);
                // The tail's sum starts at -0.0, which leaves `s` as it is when the tail is empty.
                out[u * r + q + c] = if full == n {
                    s
                } else {
                    s + rows[u][full..].iter().zip(&cols[u / 2 * 4 + c][full..]).map(|(a, b)| a * b).sum::<f32>()
                };
            }
        }
        for q in r / 4 * 4..r {
            for u in 0..4 {
                out[u * r + q] = dot(&x[u][..n], &b_t[u / 2][q * n..(q + 1) * n]);
            }
        }
    }

    /// The 16 x 16 transpose: lane `i` of result `l` is lane `l` of `r[i]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn transpose(r: [__m512; 16]) -> [__m512; 16] {
        let (ps, pd) = (_mm512_castpd_ps, _mm512_castps_pd);
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_ps(); 16];
        for i in 0..4 {
            let (a, b, c, d) = (pd(t[4 * i]), pd(t[4 * i + 1]), pd(t[4 * i + 2]), pd(t[4 * i + 3]));
            u[4 * i] = ps(_mm512_unpacklo_pd(a, c));
            u[4 * i + 1] = ps(_mm512_unpackhi_pd(a, c));
            u[4 * i + 2] = ps(_mm512_unpacklo_pd(b, d));
            u[4 * i + 3] = ps(_mm512_unpackhi_pd(b, d));
        }
        for i in 0..4 {
            t[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[i + 4]);
            t[i + 4] = _mm512_shuffle_f32x4::<0xdd>(u[i], u[i + 4]);
            t[i + 8] = _mm512_shuffle_f32x4::<0x88>(u[i + 8], u[i + 12]);
            t[i + 12] = _mm512_shuffle_f32x4::<0xdd>(u[i + 8], u[i + 12]);
        }
        let mut out = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            out[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
            out[i + 8] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with signed zeros, tiny and large magnitudes, from a fixed sequence.
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| {
                let h = (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)).rotate_left(13).wrapping_mul(2246822519);
                match h % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => (h as f32) * 1e-30,
                    _ => (h % 20001) as f32 / 1000.0 - 10.0,
                }
            })
            .collect()
    }

    #[test]
    fn every_path_of_the_projections_gives_the_bits_of_dot() {
        for (n, r) in [(1, 1), (5, 3), (16, 4), (32, 4), (47, 8), (70, 5), (256, 1), (33, 16)] {
            let x: Vec<Vec<f32>> = (0..4).map(|u| values(n, u)).collect();
            let b_t: Vec<Vec<f32>> = (0..2).map(|j| values(n * r, 10 + j)).collect();
            let rows: Project = std::array::from_fn(|u| &x[u][..]);
            let cols = [&b_t[0][..], &b_t[1][..]];
            let expected: Vec<u32> = (0..4 * r).map(|i| dot(&x[i / r], &cols[i / r / 2][(i % r) * n..(i % r + 1) * n]).to_bits()).collect();
            let mut out = vec![f32::NAN; 4 * r];
            project(rows, cols, n, &mut out);
            assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected, "portable, n {n}, rank {r}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut out = vec![f32::NAN; 4 * r];
                // SAFETY: the processor has AVX-512F.
                unsafe { avx512::project(rows, cols, n, &mut out) };
                assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected, "AVX-512, n {n}, rank {r}");
            }
        }
    }
}
