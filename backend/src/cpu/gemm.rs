//! The CPU GEMM: row-major views over `matrixmultiply::sgemm` (SIMD kernels chosen at run time),
//! or, against a large weight, the packed panels of `panels.rs` for many rows and the narrow
//! tiles of `narrow.rs` (or dot products) for a few; parallelised by
//! rayon over row blocks so that the whole backend shares one thread pool (two pools spinning
//! against each other cost more than the low-rank work itself).

use super::lanes::{halving_sum, prefetch_lines, CACHE_LINE};
use super::{column_blocks, SharedOut};
use rayon::prelude::*;

/// A strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "view larger than its data");
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// `data` (row-major `cols x rows`) seen as its transpose, `rows x cols`.
    pub fn transpose_of(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "view larger than its data");
        Self { data, rows, cols, row_stride: 1, col_stride: rows }
    }

    /// Rows `start .. start + count` of the view.
    fn row_block(&self, start: usize, count: usize) -> View<'a> {
        assert!(start + count <= self.rows);
        let offset = if count == 0 { 0 } else { start * self.row_stride };
        View { data: &self.data[offset..], rows: count, ..*self }
    }
}

/// The GEMM's kernels on this processor, for the adapter's description.
pub(crate) fn kernels() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if super::panels::available() {
        return "matrixmultiply sgemm, AVX-512 panels and narrow tiles";
    }
    "matrixmultiply sgemm"
}

/// `c = a · b + beta c` on the calling thread, `c` row-major `a.rows x b.cols`.
pub(crate) fn gemm_serial(a: View, b: View, beta: f32, c: &mut [f32]) {
    assert_eq!(a.cols, b.rows, "gemm inner dimensions");
    assert!(c.len() >= a.rows * b.cols, "gemm output too small");
    if a.rows == 0 || b.cols == 0 {
        return;
    }
    // `X Wᵀ` with `X` and `W` row-major, many rows against a large weight: the packed panels.
    #[cfg(target_arch = "x86_64")]
    {
        let row_major = a.col_stride == 1 && a.row_stride == a.cols;
        let transposed = b.row_stride == 1 && b.col_stride == b.rows;
        if beta == 0.0 && row_major && transposed && super::panels::takes(a.rows, b.cols, a.cols) {
            return super::panels::x_wt(a.data, a.rows, b.data, b.cols, a.cols, c);
        }
    }
    // SAFETY: every index the strides reach lies inside the slices: the constructors check that
    // a view's data spans its rows x cols, row blocks stay inside, and `c` spans a.rows x b.cols.
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            b.cols as isize,
            1,
        );
    }
}

/// `c = a · b + beta c`, rows of `a` split across rayon's threads, or on the calling thread when
/// the product is small (`super::tasks`).
pub(crate) fn gemm(a: View, b: View, beta: f32, c: &mut [f32]) {
    if super::tasks(a.rows * a.cols * b.cols, a.rows) == 1 {
        return gemm_serial(a, b, beta, c);
    }
    let block = a.rows.div_ceil(rayon::current_num_threads()).max(16);
    let width = b.cols;
    c[..a.rows * width].par_chunks_mut(block * width).enumerate().for_each(|(i, c_block)| {
        let rows = c_block.len() / width;
        gemm_serial(a.row_block(i * block, rows), b, beta, c_block);
    });
}

/// `c = a · wᵀ` by dot products (`a`: row-major `rows x k`, `w`: row-major `cols x k`, k > 0, `c`:
/// row-major `rows x cols`), each row of `w` read once for every row of `a`. For a few rows
/// this beats [`gemm_serial`], which packs all of `w` and pads the rows to its kernel's height.
pub(crate) fn matvec_rows(a: &[f32], rows: usize, w: &[f32], k: usize, c: &mut [f32]) {
    assert!(k > 0 && w.len().is_multiple_of(k), "matvec: w is not a whole number of rows of {k}");
    let cols = w.len() / k;
    assert!(a.len() >= rows * k && c.len() >= rows * cols, "matvec shapes");
    for (j, w_row) in w.chunks_exact(k).enumerate() {
        for (t, a_row) in a.chunks_exact(k).take(rows).enumerate() {
            c[t * cols + j] = dot(a_row, w_row);
        }
    }
}

/// `a · b` with 16 partial sums, so that the compiler can keep them in vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let main = a.len() / LANES * LANES;
    for (x, y) in a[..main].chunks_exact(LANES).zip(b[..main].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = a[main..].iter().zip(&b[main..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// At most this many rows of `x` for [`x_wt_dots`]: over many rows (a prompt's prefill, thousands)
/// `matrixmultiply`'s packed kernel amortises its packing of `W` and runs faster.
const DOTS_MAX_ROWS: usize = 128;

/// At least this many weights for [`x_wt_dots`] (a small language model's key and value
/// projections, 192 x 576, are among them): below, packing `W` is cheap and the products keep
/// the bits of [`gemm`] (the small models' recorded trajectories).
const DOTS_MIN_WEIGHTS: usize = 1 << 16;

/// Whether `x · Wᵀ` of `rows` rows over an `m x n` weight runs as dot products ([`x_wt_dots`]):
/// a few rows of a large weight, as a language model's decode step multiplies every weight of
/// the model by one row per sequence. There `matrixmultiply` packs the whole of `W` on every
/// call (on every thread), which costs more than the products.
pub(crate) fn uses_dots(rows: usize, m: usize, n: usize) -> bool {
    rows <= DOTS_MAX_ROWS && m * n >= DOTS_MIN_WEIGHTS
}

/// Lanes of a dot product: output `(t, j)` accumulates `x[t, l] w[j, l]` for `l ≡ lane (mod
/// LANES)` in each lane, in order, by fused multiply-adds, then adds the lanes pairwise and the
/// tail (unfused): the same bits on every processor without AVX-512F and for any number of
/// threads.
const LANES: usize = 16;

/// Rows of `x` and of `W` whose dot products one step of [`x_wt_dots`]'s kernel computes
/// together (16 accumulators of [`LANES`]).
const TILE: usize = 4;

/// `c = x · wᵀ` by dot products: `x` row-major `rows x k`, `w` row-major `cols x k` (k > 0), `c`
/// row-major `rows x cols`. Blocks of `w`'s rows are split over rayon's threads, so each reads
/// its part of `w` once, straight from the caller's layout, and every `x` row from cache. With
/// AVX-512F the tiles of `narrow.rs` compute it instead at the shapes [`uses_dots`] takes, each
/// output the in-order chain of fused multiply-adds that the panels give a prefill's rows.
pub(crate) fn x_wt_dots(x: &[f32], rows: usize, w: &[f32], k: usize, c: &mut [f32]) {
    assert!(k > 0 && w.len().is_multiple_of(k), "x_wt_dots: w is not a whole number of rows of {k}");
    let cols = w.len() / k;
    assert!(x.len() >= rows * k && c.len() >= rows * cols, "x_wt_dots shapes");
    if rows == 0 || cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if uses_dots(rows, cols, k) && super::panels::available() {
        return super::narrow::x_wt(x, rows, w, cols, k, c);
    }
    let out = SharedOut(c.as_mut_ptr());
    column_blocks(cols, TILE, rows * cols * k, |start, end| {
        // SAFETY: each task writes only the columns `start..end` of `c`, which no other task
        // writes, within the `rows x cols` that `c` spans (checked above).
        unsafe { dots_block(x, rows, &w[start * k..end * k], k, out, cols, start) }
    });
}

/// Columns `first..first + w.len() / k` of `c` (row-major, `cols` wide): the dot products of
/// every row of `x` with every row of `w`, on the widest vector unit the processor has.
///
/// # Safety
/// `c` must span `rows x cols` and no other thread may touch those columns meanwhile.
unsafe fn dots_block(x: &[f32], rows: usize, w: &[f32], k: usize, c: SharedOut, cols: usize, first: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the processor has AVX-512F; the caller's promise is passed on.
            return unsafe { dots_block_avx512(x, rows, w, k, c, cols, first) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above, with AVX2 and FMA.
            return unsafe { dots_block_avx2(x, rows, w, k, c, cols, first) };
        }
    }
    // SAFETY: the caller's promise.
    unsafe { dots_block_body(x, rows, w, k, c, cols, first) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_block_avx512(x: &[f32], rows: usize, w: &[f32], k: usize, c: SharedOut, cols: usize, first: usize) {
    // SAFETY: the caller's promise; the tiles run only where this function does, with AVX-512F,
    // on slices `k` long.
    unsafe { dots_block_with(x, rows, w, k, c, cols, first, |xs, ws, k| avx512::tile_dots(xs, ws, k)) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_block_avx2(x: &[f32], rows: usize, w: &[f32], k: usize, c: SharedOut, cols: usize, first: usize) {
    // SAFETY: the caller's promise.
    unsafe { dots_block_body(x, rows, w, k, c, cols, first) }
}

/// [`dots_block`]'s work, compiled into each vector width's function, with the portable tile.
///
/// # Safety
/// As [`dots_block`].
#[inline(always)]
unsafe fn dots_block_body(x: &[f32], rows: usize, w: &[f32], k: usize, c: SharedOut, cols: usize, first: usize) {
    // SAFETY: the caller's promise.
    unsafe { dots_block_with(x, rows, w, k, c, cols, first, tile_dots) }
}

/// The products of a tile of `x`'s rows with a tile of `w`'s rows, `k` long.
type Tile<'a> = [&'a [f32]; TILE];

/// [`dots_block`] with `tile` for each tile's dot products: tiles of [`TILE`] rows of `w` (kept
/// in cache) against every tile of `x`'s rows.
///
/// # Safety
/// As [`dots_block`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn dots_block_with(
    x: &[f32], rows: usize, w: &[f32], k: usize, c: SharedOut, cols: usize, first: usize,
    tile: impl Fn(Tile, Tile, usize) -> [[f32; TILE]; TILE],
) {
    let w_rows = w.len() / k;
    let x_tiles = rows.div_ceil(TILE);
    for j0 in (0..w_rows).step_by(TILE) {
        let wj = |j: usize| &w[(j0 + j).min(w_rows - 1) * k..][..k];
        let ws = [wj(0), wj(1), wj(2), wj(3)];
        // The next tile of `w`, a share at each tile of `x`, on its way from memory into the
        // cache while this one serves every row of `x`.
        let next = &w[((j0 + TILE) * k).min(w.len())..((j0 + 2 * TILE) * k).min(w.len())];
        let share = next.len().div_ceil(CACHE_LINE).div_ceil(x_tiles);
        for (i, t0) in (0..rows).step_by(TILE).enumerate() {
            prefetch_lines(next, i * share, share);
            let xt = |t: usize| &x[(t0 + t).min(rows - 1) * k..][..k];
            let sums = tile([xt(0), xt(1), xt(2), xt(3)], ws, k);
            for (t, row) in sums.iter().enumerate().take(rows - t0) {
                for (j, &value) in row.iter().enumerate().take(w_rows - j0) {
                    // SAFETY: row t0 + t < rows and column first + j0 + j < cols; the caller
                    // owns these columns.
                    unsafe { *c.0.add((t0 + t) * cols + first + j0 + j) = value };
                }
            }
        }
    }
}

/// The [`TILE`] x [`TILE`] dot products of `xs` with `ws` (each `k` long), each summed as
/// [`LANES`] lanes, then the lanes pairwise, then the tail ([`finish`]).
#[inline(always)]
fn tile_dots(xs: Tile, ws: Tile, k: usize) -> [[f32; TILE]; TILE] {
    let mut acc = [[[0.0f32; LANES]; TILE]; TILE];
    let main = k / LANES * LANES;
    for base in (0..main).step_by(LANES) {
        let xv: [&[f32; LANES]; TILE] = xs.map(|x| x[base..base + LANES].try_into().expect("LANES long"));
        let wv: [&[f32; LANES]; TILE] = ws.map(|w| w[base..base + LANES].try_into().expect("LANES long"));
        for (acc_t, x) in acc.iter_mut().zip(xv) {
            for (acc_tj, w) in acc_t.iter_mut().zip(wv) {
                for l in 0..LANES {
                    acc_tj[l] = x[l].mul_add(w[l], acc_tj[l]);
                }
            }
        }
    }
    finish(&acc, xs, ws, k)
}

/// The dot products from their lane sums `acc`: the lanes pairwise, plus the products past the
/// last whole [`LANES`].
#[inline(always)]
fn finish(acc: &[[[f32; LANES]; TILE]; TILE], xs: Tile, ws: Tile, k: usize) -> [[f32; TILE]; TILE] {
    let main = k / LANES * LANES;
    let mut out = [[0.0f32; TILE]; TILE];
    for (t, (out_t, acc_t)) in out.iter_mut().zip(acc).enumerate() {
        for (j, (out_tj, lanes)) in out_t.iter_mut().zip(acc_t).enumerate() {
            *out_tj = halving_sum(*lanes) + tail(xs[t], ws[j], main, k);
        }
    }
    out
}

/// The products of `x` and `w` from `main` to `k` (past the last whole [`LANES`]), summed in order.
#[inline(always)]
fn tail(x: &[f32], w: &[f32], main: usize, k: usize) -> f32 {
    x[main..k].iter().zip(&w[main..k]).map(|(a, b)| a * b).sum()
}

/// [`tile_dots`] in AVX-512 registers: the same lanes, fused multiply-adds and sums, so the same
/// bits.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{tail, Tile, LANES, TILE};
    use std::arch::x86_64::*;

    /// As [`super::tile_dots`].
    ///
    /// # Safety
    /// The processor must have AVX-512F; every slice of `xs` and `ws` must be `k` long.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_dots(xs: Tile, ws: Tile, k: usize) -> [[f32; TILE]; TILE] {
        let main = k / LANES * LANES;
        let mut acc = [[_mm512_setzero_ps(); TILE]; TILE];
        let mut base = 0;
        while base < main {
            // SAFETY: base + LANES <= main <= k, each slice's length.
            let xv = xs.map(|x| unsafe { _mm512_loadu_ps(x.as_ptr().add(base)) });
            let wv = ws.map(|w| unsafe { _mm512_loadu_ps(w.as_ptr().add(base)) });
            for (acc_t, x) in acc.iter_mut().zip(xv) {
                for (acc_tj, w) in acc_t.iter_mut().zip(wv) {
                    *acc_tj = _mm512_fmadd_ps(x, w, *acc_tj);
                }
            }
            base += LANES;
        }
        // The lanes of the 16 sums added pairwise as `halving_sum` adds them (lane l and
        // l + 8, then l + 4, l + 2, l + 1), four sums' halves to a vector at each level: the
        // last vector holds sum (t, j) at element 4 j + t.
        let a: [__m512; 16] = std::array::from_fn(|i| acc[i / TILE][i % TILE]);
        let c: [__m512; 8] = std::array::from_fn(|p| {
            let (lo, hi) = (a[2 * p], a[2 * p + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(lo, hi), _mm512_shuffle_f32x4::<0xEE>(lo, hi))
        });
        let e: [__m512; 4] = std::array::from_fn(|q| {
            let (lo, hi) = (c[2 * q], c[2 * q + 1]);
            _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(lo, hi), _mm512_shuffle_f32x4::<0xDD>(lo, hi))
        });
        let r: [__m512; 2] = std::array::from_fn(|q| {
            let (lo, hi) = (e[2 * q], e[2 * q + 1]);
            _mm512_add_ps(_mm512_shuffle_ps::<0x44>(lo, hi), _mm512_shuffle_ps::<0xEE>(lo, hi))
        });
        let sums = _mm512_add_ps(_mm512_shuffle_ps::<0x88>(r[0], r[1]), _mm512_shuffle_ps::<0xDD>(r[0], r[1]));
        let mut flat = [0.0f32; LANES];
        // SAFETY: LANES floats fit the array.
        unsafe { _mm512_storeu_ps(flat.as_mut_ptr(), sums) };
        let mut out = [[0.0f32; TILE]; TILE];
        for (t, out_t) in out.iter_mut().enumerate() {
            for (j, out_tj) in out_t.iter_mut().enumerate() {
                *out_tj = flat[4 * j + t] + tail(xs[t], ws[j], main, k);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from a small linear congruential sequence in [-1, 1).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..count)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn dots_agree_with_f64_products_on_ragged_shapes() {
        for (rows, cols, k) in [(1, 1, 1), (3, 5, 17), (4, 4, 16), (7, 9, 33), (64, 70, 100), (5, 513, 576)] {
            let (x, w) = (values(rows * k, 1), values(cols * k, 2));
            let mut c = vec![f32::NAN; rows * cols];
            x_wt_dots(&x, rows, &w, k, &mut c);
            for t in 0..rows {
                for j in 0..cols {
                    let exact: f64 = (0..k).map(|l| f64::from(x[t * k + l]) * f64::from(w[j * k + l])).sum();
                    let got = f64::from(c[t * cols + j]);
                    assert!((got - exact).abs() <= 1e-5 * (k as f64).sqrt(), "({rows}, {cols}, {k}) at ({t}, {j}): {got} vs {exact}");
                }
            }
        }
    }

    #[test]
    fn dots_are_the_same_bits_on_any_number_of_threads() {
        let (rows, cols, k) = (37, 1031, 200);
        let (x, w) = (values(rows * k, 3), values(cols * k, 4));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
            let mut c = vec![0.0; rows * cols];
            pool.install(|| x_wt_dots(&x, rows, &w, k, &mut c));
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_tiles_are_the_portable_bits() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512F on this processor: nothing to compare");
            return;
        }
        for k in [1, 15, 16, 17, 100, 576] {
            let (x, w) = (values(TILE * k, 5), values(TILE * k, 6));
            let xs: Tile = std::array::from_fn(|t| &x[t * k..(t + 1) * k]);
            let ws: Tile = std::array::from_fn(|j| &w[j * k..(j + 1) * k]);
            // SAFETY: the processor has AVX-512F; every slice is k long.
            let fast = unsafe { avx512::tile_dots(xs, ws, k) };
            let bits = |tile: [[f32; TILE]; TILE]| tile.map(|row| row.map(f32::to_bits));
            assert_eq!(bits(fast), bits(tile_dots(xs, ws, k)), "k = {k}");
        }
    }

    #[test]
    fn dots_serve_few_rows_of_large_weights_only() {
        assert!(uses_dots(64, 1536, 576));
        assert!(uses_dots(64, 192, 576));
        assert!(!uses_dots(DOTS_MAX_ROWS + 1, 1536, 576));
        assert!(!uses_dots(1, 128, 256));
    }
}
