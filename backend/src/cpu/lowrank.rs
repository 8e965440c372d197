//! The low-rank term of the EGGROLL forward on the CPU, two antithetic pairs at a time: each
//! pair's factors drawn once or read from the noise cache (column by column, so every inner loop
//! is a contiguous dot product or axpy), the projections `X_i B` of the pairs' four members, then
//! `s_i (σ/√r) (X_i B) Aᵀ` added to the members' outputs. Compiled for AVX-512 / AVX2 when the
//! processor has them; the arithmetic is the same on every path.

use crate::ops::LowRankNoise;

/// Per-thread scratch: the factors of two pairs when drawn here (`Aᵀ` then `Bᵀ` per pair), the
/// projections of their members (member, row, column) and those of one row.
#[derive(Default)]
pub(crate) struct PairScratch {
    factors: Vec<f32>,
    projection: Vec<f32>,
    row: Vec<f32>,
}

/// A block of consecutive antithetic pairs: its members' inputs (member `k`'s `rows x n` from
/// `k * x_stride` on; a stride of 0 when every member reads the same rows), their outputs (member
/// after member, `rows x m` each) and, when the noise cache holds them, the pairs' factors (`Aᵀ`
/// then `Bᵀ`, pair after pair; drawn here otherwise).
pub(crate) struct Pairs<'a> {
    /// The stream's index of the block's first pair.
    pub first: u32,
    /// The members' inputs.
    pub x: &'a [f32],
    /// How far apart two members' inputs start.
    pub x_stride: usize,
    /// The members' outputs.
    pub y: &'a mut [f32],
    /// The pairs' factors from the noise cache.
    pub factors: Option<&'a [f32]>,
}

impl Pairs<'_> {
    /// Checks that the block spans its `count` pairs of `rows` rows each.
    fn check(&self, noise: &LowRankNoise, rows: usize) -> usize {
        let LowRankNoise { shape, .. } = *noise;
        let count = self.y.len() / (2 * rows * shape.m);
        assert_eq!(self.y.len(), count * 2 * rows * shape.m, "a block's outputs");
        assert!(count == 0 || self.x.len() >= (2 * count - 1) * self.x_stride + rows * shape.n, "a block's inputs");
        if let Some(factors) = self.factors {
            assert!(factors.len() >= count * (shape.m + shape.n) * shape.rank, "a block's factors");
        }
        count
    }
}

/// Adds the low-rank terms of both members of every pair of the block; `rows` rows per member.
pub(crate) fn add_lowrank(noise: &LowRankNoise, block: Pairs, rows: usize, scratch: &mut PairScratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { avx512::add_lowrank(noise, block, rows, &mut scratch.factors) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { add_lowrank_avx2(noise, block, rows, scratch) };
        }
    }
    add_lowrank_body(noise, block, rows, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_lowrank_avx2(noise: &LowRankNoise, block: Pairs, rows: usize, scratch: &mut PairScratch) {
    add_lowrank_body(noise, block, rows, scratch)
}

/// The projections of one row of each of up to four members (`x`; members 0 and 1 of the pair
/// whose `Bᵀ` is `b_t[0]`, 2 and 3 of `b_t[1]`): `out[u * r + k] = dot(x[u], column k of B)`.
type Project<'a> = [&'a [f32]; 4];

#[inline(always)]
fn add_lowrank_body(noise: &LowRankNoise, block: Pairs, rows: usize, scratch: &mut PairScratch) {
    block.check(noise, rows);
    let shape = noise.shape;
    let (m, n, r) = (shape.m, shape.n, shape.rank);
    let per_pair = (m + n) * r;
    let scale = shape.scale();
    let PairScratch { factors: drawn, projection, row } = scratch;
    projection.resize(4 * rows * r, 0.0);
    row.resize(4 * r, 0.0);
    let Pairs { first, x, x_stride, y, factors: kept } = block;
    for (g, y_two) in y.chunks_mut(4 * rows * m).enumerate() {
        let p = 2 * g;
        // A lone pair stands in for the missing second one; those results are not read.
        let pairs = y_two.len() / (2 * rows * m);
        let second = p + pairs - 1;
        let cached = |pair: usize| kept.map(|f| &f[pair * per_pair..(pair + 1) * per_pair]);
        let factors = group_factors(noise, [(first + p as u32, cached(p)), (first + second as u32, cached(second))], drawn);
        let b_t = [&factors[0][m * r..], &factors[1][m * r..]];
        let input = |member: usize| &x[member * x_stride..member * x_stride + rows * n];
        let inputs = [input(2 * p), input(2 * p + 1), input(2 * second), input(2 * second + 1)];
        // Projections (member, row, column), each times the member's sign and σ/√r.
        for t in 0..rows {
            let row_of = |u: usize| &inputs[u][t * n..(t + 1) * n];
            project([row_of(0), row_of(1), row_of(2), row_of(3)], b_t, n, row);
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
        for (j, y_pair) in y_two.chunks_mut(2 * rows * m).enumerate() {
            let a_t = &factors[j][..m * r];
            let (y_even, y_odd) = y_pair.split_at_mut(rows * m);
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

/// The factors (`Aᵀ` then `Bᵀ`) of a group's two pairs, each `(pair, cached factors)` (a lone
/// pair given twice): the cache's, or drawn into `drawn` now, once per pair. The stream stores
/// factors column by column, so `Aᵀ` and `Bᵀ` are contiguous runs of draws.
fn group_factors<'b>(noise: &LowRankNoise, pairs: [(u32, Option<&'b [f32]>); 2], drawn: &'b mut Vec<f32>) -> [&'b [f32]; 2] {
    let shape = noise.shape;
    let (m, r) = (shape.m, shape.rank);
    let per_pair = (shape.m + shape.n) * r;
    let lone = pairs[0].0 == pairs[1].0;
    if pairs.iter().any(|(_, factors)| factors.is_none()) {
        drawn.resize(2 * per_pair, 0.0);
        for (&(pair, factors), f) in pairs.iter().zip(drawn.chunks_exact_mut(per_pair)).take(if lone { 1 } else { 2 }) {
            if factors.is_none() {
                let (a_t, b_t) = f.split_at_mut(m * r);
                noise.fill_factors_t(pair, a_t, b_t);
            }
        }
    }
    let drawn: &'b [f32] = drawn;
    let slot = |j: usize| if lone { 0 } else { j };
    std::array::from_fn(|j| pairs[j].1.unwrap_or_else(|| &drawn[slot(j) * per_pair..(slot(j) + 1) * per_pair]))
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

/// The low-rank terms in AVX-512 registers, row by row and four columns of the factors at a time:
/// the four members' projections onto the four columns (16 accumulators, each row and column read
/// once per 16 values; the lane accumulators then transposed so that their in-order sums are 16
/// vector additions, not 16 chains of scalar ones), times the members' signs and σ/√r, then added
/// to both members of each pair along the four columns of `A`. The same bits as [`dot`] and the
/// portable axpys. Rows, columns and outputs are walked by pointers, and the helpers are inlined
/// into the one function compiled for AVX-512 (closures or arrays of slices there would not keep
/// their vectors and pointers in registers).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{axpy, dot, group_factors, Pairs};
    use crate::cpu::lanes::{prefetch_lines, transpose16 as transpose, CACHE_LINE};
    use crate::ops::LowRankNoise;
    use std::arch::x86_64::*;

    /// [`super::add_lowrank`] with `drawn` as the scratch for factors drawn on the fly.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_lowrank(noise: &LowRankNoise, block: Pairs, rows: usize, drawn: &mut Vec<f32>) {
        let count = block.check(noise, rows);
        let shape = noise.shape;
        let (m, n, r) = (shape.m, shape.n, shape.rank);
        let (plus, minus) = (shape.scale(), -shape.scale());
        // Lane `4 u + c` holds member `u`'s projection onto column `c`; odd members are negative.
        let signs = _mm512_setr_ps(plus, plus, plus, plus, minus, minus, minus, minus, plus, plus, plus, plus, minus, minus, minus, minus);
        let (quads, per_pair) = (r / 4 * 4, (m + n) * r);
        let Pairs { first, x, x_stride, y, factors: kept } = block;
        let (x_ptr, y_ptr) = (x.as_ptr(), y.as_mut_ptr());
        // The additions of a quad wait until the next quad's projections are issued, so that the
        // in-order sum of the next projections (a chain of dependent additions) overlaps them.
        let mut pending =
            Pending { coefs: _mm512_setzero_ps(), a0: std::ptr::null(), a1: std::ptr::null(), y: std::ptr::null_mut(), pairs: 0 };
        let odd = rows * m;
        for p in (0..count).step_by(2) {
            // A lone pair stands in for the missing second one; those results are not read.
            let (pairs, second) = if p + 1 < count { (2, p + 1) } else { (1, p) };
            // Pointers one by one, not in arrays: an array of pointers is built and copied through
            // the stack, and each read of it back waits on those stores.
            let (a0, a1) = match kept {
                // SAFETY: `check` keeps the cached factors of every pair of the block inside `kept`.
                Some(kept) => unsafe { (kept.as_ptr().add(p * per_pair), kept.as_ptr().add(second * per_pair)) },
                None => {
                    // The pending quad's factors may be the ones drawn last.
                    // SAFETY: the pending quad's pointers are live (see below).
                    unsafe { pending.write(m, odd) };
                    let factors = group_factors(noise, [(first + p as u32, None), (first + second as u32, None)], drawn);
                    (factors[0].as_ptr(), factors[1].as_ptr())
                }
            };
            // SAFETY: `check` keeps every member's rows inside the inputs and outputs, and
            // `group_factors` gives factors of `per_pair` values, which stay in place until the
            // next group's are drawn.
            unsafe {
                if let Some(kept) = kept {
                    // The next group's factors, on their way into the processor's caches meanwhile.
                    if p + 3 < count {
                        let next = &kept[(p + 2) * per_pair..(p + 4) * per_pair];
                        prefetch_lines(next, 0, next.len().div_ceil(CACHE_LINE));
                    }
                }
                let (b0, b1) = (a0.add(m * r), a1.add(m * r));
                let (x_first, x_second) = (x_ptr.add(2 * p * x_stride), x_ptr.add(2 * second * x_stride));
                let y_pair = y_ptr.add(2 * p * rows * m);
                for t in 0..rows {
                    let (xa, xb) = (x_first.add(t * n), x_second.add(t * n));
                    for q in (0..quads).step_by(4) {
                        let coefs = _mm512_mul_ps(project_quad(xa, xb, x_stride, b0.add(q * n), b1.add(q * n), n), signs);
                        pending.write(m, odd);
                        pending = Pending { coefs, a0: a0.add(q * m), a1: a1.add(q * m), y: y_pair.add(t * m), pairs };
                    }
                    // Columns past the last four, one at a time, after the quads' additions.
                    if quads < r {
                        pending.write(m, odd);
                    }
                    for k in quads..r {
                        for j in 0..pairs {
                            let (a, b) = if j == 0 { (a0, b0) } else { (a1, b1) };
                            let (a_col, b_col) = (std::slice::from_raw_parts(a.add(k * m), m), std::slice::from_raw_parts(b.add(k * n), n));
                            for half in 0..2 {
                                let coef = if half == 0 { plus } else { minus };
                                let x_row = std::slice::from_raw_parts(if j == 0 { xa } else { xb }.add(half * x_stride), n);
                                let y_row = std::slice::from_raw_parts_mut(y_pair.add(((2 * j + half) * rows + t) * m), m);
                                axpy(coef * dot(x_row, b_col), a_col, y_row);
                            }
                        }
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { pending.write(m, odd) };
    }

    /// A quad whose projections are computed and whose additions are not yet made: the
    /// coefficients (lane `4 u + c` for member `u`, column `c`), the four columns of each pair's
    /// `Aᵀ`, and the first member's output row (the others `odd`, then `2 odd`, `3 odd` on).
    struct Pending {
        coefs: __m512,
        a0: *const f32,
        a1: *const f32,
        y: *mut f32,
        pairs: usize,
    }

    impl Pending {
        /// Makes the additions of rows of `m` values, if any are pending, and clears them.
        ///
        /// # Safety
        /// The pointers span what [`Pending`] says.
        #[inline(always)]
        unsafe fn write(&mut self, m: usize, odd: usize) {
            // SAFETY: the caller's.
            unsafe {
                if self.pairs > 0 {
                    axpy4_pair(self.coefs, 0, self.a0, m, self.y, odd);
                }
                if self.pairs > 1 {
                    axpy4_pair(self.coefs, 2, self.a1, m, self.y.add(2 * odd), odd);
                }
            }
            self.pairs = 0;
        }
    }

    /// The 16 dots of four rows (`xa`, `xa + xs`, `xb`, `xb + xs`) with four columns each (rows
    /// 0 and 1 against the four columns from `b0` on, rows 2 and 3 against those from `b1`; a
    /// column every `n` values), lane `4 u + c` for row `u`, column `c`.
    ///
    /// # Safety
    /// Every row holds `n` values, and `b0`, `b1` four columns of `n`.
    #[inline(always)]
    unsafe fn project_quad(xa: *const f32, xb: *const f32, xs: usize, b0: *const f32, b1: *const f32, n: usize) -> __m512 {
        let full = n / 16 * 16;
        let mut acc = [_mm512_setzero_ps(); 16];
        // One pair's two rows and four columns at a time: half the pointers live at once. The
        // first 16 products start the lanes as they are, where `dot` adds them to +0.0: the two
        // differ only in the sign of a zero, which the +0.0 added to the lanes' sum below settles.
        for (half, x, b) in [(0, xa, b0), (1, xb, b1)] {
            if full > 0 {
                // SAFETY: 16 <= n, the length of every row and column.
                unsafe {
                    let (even, odd) = (_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(xs)));
                    for c in 0..4 {
                        let col = _mm512_loadu_ps(b.add(c * n));
                        acc[8 * half + c] = _mm512_mul_ps(even, col);
                        acc[8 * half + 4 + c] = _mm512_mul_ps(odd, col);
                    }
                }
            }
            let mut s = 16;
            while s < full {
                // SAFETY: s + 16 <= n, the length of every row and column.
                unsafe {
                    let (even, odd) = (_mm512_loadu_ps(x.add(s)), _mm512_loadu_ps(x.add(xs + s)));
                    for c in 0..4 {
                        let col = _mm512_loadu_ps(b.add(c * n + s));
                        acc[8 * half + c] = _mm512_add_ps(acc[8 * half + c], _mm512_mul_ps(even, col));
                        acc[8 * half + 4 + c] = _mm512_add_ps(acc[8 * half + 4 + c], _mm512_mul_ps(odd, col));
                    }
                }
                s += 16;
            }
        }
        // The lanes in order, from the first (-0.0 plus it, where `dot`'s sum starts, is itself).
        let lanes = transpose(acc);
        let mut sum = lanes[0];
        for &lane in &lanes[1..] {
            sum = _mm512_add_ps(sum, lane);
        }
        // `dot`'s lanes are never -0.0 (each starts as +0.0 plus a product), so neither is its
        // sum; the same sum of these lanes is that one but where it is -0.0.
        let sum = _mm512_add_ps(sum, _mm512_setzero_ps());
        if full == n {
            return sum;
        }
        let mut sums = [0.0f32; 16];
        // SAFETY: `sums` holds 16 floats; the rows and columns hold n values.
        unsafe {
            _mm512_storeu_ps(sums.as_mut_ptr(), sum);
            for (i, s) in sums.iter_mut().enumerate() {
                let (u, c) = (i / 4, i % 4);
                let x = if u < 2 { xa } else { xb }.add(u % 2 * xs);
                let (row, col) = (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts(if u < 2 { b0 } else { b1 }.add(c * n), n));
                *s += row[full..].iter().zip(&col[full..]).map(|(a, b)| a * b).sum::<f32>();
            }
            _mm512_loadu_ps(sums.as_ptr())
        }
    }

    /// `y_h += c_h0 a_0; y_h += c_h1 a_1; ...` for both rows `y_h` of a pair (`len` values each,
    /// `y` and `y + odd`), the four columns `a_k` from `a` on (a column every `len` values) and
    /// the coefficients `c_hk`, lane `4 (first + h) + k` of `coefs`; 16 values at a time, the last
    /// ones masked; the portable axpys' roundings.
    ///
    /// # Safety
    /// Both rows hold `len` values, `a` four columns of `len`; `first` is 0 or 2.
    #[inline(always)]
    unsafe fn axpy4_pair(coefs: __m512, first: usize, a: *const f32, len: usize, y: *mut f32, odd: usize) {
        // Member u's four coefficients are the 128-bit lane u, each broadcast.
        let (lo, hi) = if first == 0 {
            (_mm512_shuffle_f32x4::<0x00>(coefs, coefs), _mm512_shuffle_f32x4::<0x55>(coefs, coefs))
        } else {
            (_mm512_shuffle_f32x4::<0xaa>(coefs, coefs), _mm512_shuffle_f32x4::<0xff>(coefs, coefs))
        };
        let c = [
            [_mm512_permute_ps::<0x00>(lo), _mm512_permute_ps::<0x55>(lo), _mm512_permute_ps::<0xaa>(lo), _mm512_permute_ps::<0xff>(lo)],
            [_mm512_permute_ps::<0x00>(hi), _mm512_permute_ps::<0x55>(hi), _mm512_permute_ps::<0xaa>(hi), _mm512_permute_ps::<0xff>(hi)],
        ];
        let mut s = 0;
        while s < len {
            let mask: __mmask16 = if len - s >= 16 { !0 } else { (1 << (len - s)) - 1 };
            // SAFETY: the mask keeps every access below `len`.
            unsafe {
                let b = [
                    _mm512_maskz_loadu_ps(mask, a.add(s)),
                    _mm512_maskz_loadu_ps(mask, a.add(len + s)),
                    _mm512_maskz_loadu_ps(mask, a.add(2 * len + s)),
                    _mm512_maskz_loadu_ps(mask, a.add(3 * len + s)),
                ];
                for (h, c) in c.iter().enumerate() {
                    let y = y.add(h * odd + s);
                    let mut v = _mm512_maskz_loadu_ps(mask, y);
                    for k in 0..4 {
                        v = _mm512_add_ps(v, _mm512_mul_ps(c[k], b[k]));
                    }
                    _mm512_mask_storeu_ps(y, mask, v);
                }
            }
            s += 16;
        }
    }

    /// [`super::project`] by [`project_quad`] and [`dot`] for four rows one after another in `x`:
    /// the test's handle on the projections.
    #[cfg(test)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn project(x: &[f32], b_t: [&[f32]; 2], n: usize, out: &mut [f32]) {
        let r = out.len() / 4;
        assert!(x.len() >= 4 * n && b_t.iter().all(|b| b.len() >= r * n), "rows and columns");
        for q in (0..r / 4 * 4).step_by(4) {
            let mut sums = [0.0f32; 16];
            // SAFETY: every row and column holds n values (checked above); `sums` holds 16 floats.
            unsafe {
                let (xa, b0, b1) = (x.as_ptr(), b_t[0][q * n..].as_ptr(), b_t[1][q * n..].as_ptr());
                _mm512_storeu_ps(sums.as_mut_ptr(), project_quad(xa, xa.add(2 * n), n, b0, b1, n));
            }
            for (i, s) in sums.into_iter().enumerate() {
                out[i / 4 * r + q + i % 4] = s;
            }
        }
        for q in r / 4 * 4..r {
            for u in 0..4 {
                out[u * r + q] = dot(&x[u * n..(u + 1) * n], &b_t[u / 2][q * n..(q + 1) * n]);
            }
        }
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
            // The last row all -0.0 against columns of non-negative values: every product -0.0,
            // where `dot`'s sum is +0.0.
            let x: Vec<Vec<f32>> = (0..4).map(|u| if u == 3 { vec![-0.0; n] } else { values(n, u) }).collect();
            let b_t: Vec<Vec<f32>> =
                (0..2).map(|j| values(n * r, 10 + j).into_iter().map(|v| if j == 1 { v.abs() } else { v }).collect()).collect();
            let rows: Project = std::array::from_fn(|u| &x[u][..]);
            let together = x.concat();
            let cols = [&b_t[0][..], &b_t[1][..]];
            let expected: Vec<u32> = (0..4 * r).map(|i| dot(&x[i / r], &cols[i / r / 2][(i % r) * n..(i % r + 1) * n]).to_bits()).collect();
            let mut out = vec![f32::NAN; 4 * r];
            project(rows, cols, n, &mut out);
            assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected, "portable, n {n}, rank {r}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut out = vec![f32::NAN; 4 * r];
                // SAFETY: the processor has AVX-512F.
                unsafe { avx512::project(&together, cols, n, &mut out) };
                assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), expected, "AVX-512, n {n}, rank {r}");
            }
        }
    }
    /// The AVX-512 kernel against the portable one, bit for bit: ragged shapes (rows and columns
    /// past the last 16, ranks past the last 4), several rows, a lone last pair, shared and
    /// per-member inputs, factors from the cache and drawn on the fly.
    #[test]
    fn every_path_of_the_kernel_gives_the_portable_bits() {
        use crate::ops::LowRank;
        use crate::rng::NoiseStream;
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        for (m, n, rank, rows, pairs) in
            [(32, 32, 4, 1, 4), (5, 7, 1, 2, 3), (40, 33, 6, 3, 3), (17, 70, 8, 1, 5), (64, 16, 3, 2, 1), (1, 1, 1, 1, 2)]
        {
            let noise = LowRankNoise { stream: NoiseStream::new(7, 3, 1), shape: LowRank { m, n, rank, sigma: 0.3, piece: None } };
            let per_pair = (m + n) * rank;
            let mut kept = vec![0.0f32; pairs * per_pair];
            for (k, f) in kept.chunks_mut(per_pair).enumerate() {
                noise.stream.fill_normals(5 + k as u32, 0, f);
            }
            for shared in [false, true] {
                let x_stride = if shared { 0 } else { rows * n };
                let x = values(if shared { rows * n } else { 2 * pairs * rows * n }, 1);
                let y0 = values(2 * pairs * rows * m, 2);
                for cached in [true, false] {
                    let run = |avx512: bool| {
                        let mut y = y0.clone();
                        let block = Pairs { first: 5, x: &x, x_stride, y: &mut y, factors: cached.then_some(&kept[..]) };
                        let mut scratch = PairScratch::default();
                        if avx512 {
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: the processor has AVX-512F (checked above).
                            unsafe {
                                avx512::add_lowrank(&noise, block, rows, &mut scratch.factors)
                            };
                        } else {
                            add_lowrank_body(&noise, block, rows, &mut scratch);
                        }
                        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    };
                    let portable = run(false);
                    if m * n > 1 {
                        assert_ne!(portable, y0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "the terms change the outputs");
                    }
                    assert_eq!(
                        run(true),
                        portable,
                        "m {m}, n {n}, rank {rank}, rows {rows}, pairs {pairs}, shared {shared}, cached {cached}"
                    );
                }
            }
        }
    }
}
