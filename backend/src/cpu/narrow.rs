//! `C = X Wᵀ` for a few rows of `X` against a large `W` (a language model's decode step: one row
//! per member) in AVX-512 registers: `X` packed once per call into runs of its rows, one run per
//! value of the inner dimension; each value of `W` broadcast against a run; tiles of [`R`] rows
//! of `W` by up to 64 rows of `X` accumulated in 24 registers. `W` is read once, in its own
//! layout. Each output is one chain of fused multiply-adds over `k` in order from +0.0, as in the
//! panels of `panels.rs`, so a row gets the same bits here as there. x86-64 only.

use super::lanes::transpose16;
use super::{column_blocks, SharedOut};
use std::arch::x86_64::*;

/// Rows of `W` per tile.
const R: usize = 6;

/// Vectors of 16 rows of `X` per tile: 64 rows.
const V: usize = 4;

thread_local! {
    /// Each thread's packed `X`, kept from call to call.
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `c = x · wᵀ`: `x` row-major `rows x k`, `w` row-major `m x k`, `c` row-major `rows x m`. Blocks
/// of `w`'s rows are split over rayon's threads. The caller picks the shapes (`gemm::uses_dots`);
/// the processor must have AVX-512F (`panels::available`).
pub(crate) fn x_wt(x: &[f32], rows: usize, w: &[f32], m: usize, k: usize, c: &mut [f32]) {
    assert!(super::panels::available(), "narrow x_wt: no AVX-512F on this processor");
    assert!(x.len() >= rows * k && w.len() >= m * k && c.len() >= rows * m, "narrow x_wt shapes");
    if rows == 0 {
        return;
    }
    let width = rows.next_multiple_of(16);
    let out = SharedOut(c.as_mut_ptr());
    // Each task packs `X` into its own thread's cache, then computes its columns.
    column_blocks(m, R, rows * m * k, |start, end| {
        PACKED.with_borrow_mut(|packed| {
            packed.resize(k * width, 0.0);
            // SAFETY: AVX-512F (checked above); the shapes are checked above; each task writes only
            // the columns `start..end` of `c`, which no other task writes, within the `rows x m`
            // that `c` spans.
            unsafe {
                pack(x, rows, k, width, packed);
                columns(packed, rows, width, w, m, k, start, end, out);
            }
        });
    });
}

/// `x` (`rows x k`) into `packed`: value `l` of row `t` at `l * width + t`, rows from `rows` to
/// `width` zero.
///
/// # Safety
/// AVX-512F; `x` spans `rows x k`, `packed` `k x width`, `width` a multiple of 16 at least `rows`.
#[target_feature(enable = "avx512f")]
unsafe fn pack(x: &[f32], rows: usize, k: usize, width: usize, packed: &mut [f32]) {
    let whole = k / 16 * 16;
    for t0 in (0..width).step_by(16) {
        let full = t0 + 16 <= rows;
        if full {
            for l0 in (0..whole).step_by(16) {
                // SAFETY: rows t0..t0 + 16 and values l0..l0 + 16 lie in `x`; runs l0..l0 + 16
                // of `packed` hold the 16 values from t0.
                unsafe {
                    let mut square = [_mm512_setzero_ps(); 16];
                    for (i, row) in square.iter_mut().enumerate() {
                        *row = _mm512_loadu_ps(x.as_ptr().add((t0 + i) * k + l0));
                    }
                    for (i, run) in transpose16(square).into_iter().enumerate() {
                        _mm512_storeu_ps(packed.as_mut_ptr().add((l0 + i) * width + t0), run);
                    }
                }
            }
        }
        for l in (if full { whole } else { 0 })..k {
            for t in t0..t0 + 16 {
                packed[l * width + t] = if t < rows { x[t * k + l] } else { 0.0 };
            }
        }
    }
}

/// Columns `start..end` of `c`: every row of `x` (packed) against rows `start..end` of `w`.
///
/// # Safety
/// AVX-512F; shapes as [`x_wt`] checks them; no other thread writes these columns meanwhile.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn columns(packed: &[f32], rows: usize, width: usize, w: &[f32], m: usize, k: usize, start: usize, end: usize, c: SharedOut) {
    let mut j = start;
    while j < end {
        let count = R.min(end - j);
        for g0 in (0..rows).step_by(16 * V) {
            let vectors = (width - g0).min(16 * V) / 16;
            let at = Tile {
                packed: packed.as_ptr().add(g0),
                width,
                w: w.as_ptr().add(j * k),
                k,
                c: c.0.add(g0 * m + j),
                m,
                rows: (rows - g0).min(16 * V),
            };
            // SAFETY: the tile's rows of `w` are j..j + count < end <= m, its rows of `x` g0..
            // within `width`, and its outputs in the caller's columns.
            unsafe {
                match (count, vectors) {
                    (R, 4) => tile::<R, 4>(at),
                    (R, 3) => tile::<R, 3>(at),
                    (R, 2) => tile::<R, 2>(at),
                    (R, _) => tile::<R, 1>(at),
                    (_, 4) => ragged::<4>(at, count),
                    (_, 3) => ragged::<3>(at, count),
                    (_, 2) => ragged::<2>(at, count),
                    _ => ragged::<1>(at, count),
                }
            }
        }
        j += count;
    }
}

/// A tile's operands: packed `X` from its first row (runs `width` apart), `W` from its first row
/// (rows `k` apart), the output from its first element (rows `m` apart), `rows` rows of `X`.
#[derive(Clone, Copy)]
struct Tile {
    packed: *const f32,
    width: usize,
    w: *const f32,
    k: usize,
    c: *mut f32,
    m: usize,
    rows: usize,
}

/// Fewer than [`R`] rows of `W`, one at a time.
///
/// # Safety
/// As [`tile`], for `count` rows of `W`.
#[inline(always)]
unsafe fn ragged<const N: usize>(at: Tile, count: usize) {
    for r in 0..count {
        // SAFETY: the caller's, row r < count.
        unsafe { tile::<1, N>(Tile { w: at.w.add(r * at.k), c: at.c.add(r), ..at }) };
    }
}

/// `RR` rows of `W` against `16 N` packed rows of `X` over the whole inner dimension: each output
/// the chain of fused multiply-adds from +0.0 in order of `l`; the first `at.rows` rows stored.
///
/// # Safety
/// AVX-512F; `at.packed` holds `k` runs of `16 N` values `width` apart, `at.w` `RR` rows of `k`,
/// and `at.c` the outputs of `at.rows` rows and `RR` columns.
#[inline(always)]
unsafe fn tile<const RR: usize, const N: usize>(at: Tile) {
    let mut acc = [[_mm512_setzero_ps(); N]; RR];
    // SAFETY: the caller's.
    unsafe {
        for l in 0..at.k {
            if l % 16 == 0 {
                // The next tile's rows of `W`, a line ahead: on their way from memory while this
                // tile runs (a hint: the addresses past `W`'s end are never read).
                for r in 0..RR {
                    _mm_prefetch::<_MM_HINT_T0>(at.w.wrapping_add((RR + r) * at.k + l) as *const i8);
                }
            }
            let mut xv = [_mm512_setzero_ps(); N];
            for (v, xv) in xv.iter_mut().enumerate() {
                *xv = _mm512_loadu_ps(at.packed.add(l * at.width + 16 * v));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(*at.w.add(r * at.k + l));
                for (acc, xv) in acc.iter_mut().zip(xv) {
                    *acc = _mm512_fmadd_ps(wv, xv, *acc);
                }
            }
        }
        let mut flat = [[0.0f32; 64]; RR];
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(flat[r].as_mut_ptr().add(16 * v), *acc);
            }
        }
        for t in 0..at.rows.min(16 * N) {
            for (r, flat) in flat.iter().enumerate() {
                *at.c.add(t * at.m + r) = flat[t];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of a fixed sequence in [-1, 1].
    fn value(i: usize) -> f32 {
        ((i.wrapping_mul(2654435761) >> 7) % 2001) as f32 / 1000.0 - 1.0
    }

    /// Each output is the in-order chain of fused multiply-adds from +0.0 (the panels' bits),
    /// whatever the row count (whole and partial vectors, one group or two), the ragged rows of
    /// `W` and the inner dimension's remainder, on one thread or two.
    #[test]
    fn every_output_is_its_chain_of_fused_multiply_adds() {
        if !super::super::panels::available() {
            eprintln!("no AVX-512F on this processor: the dot products run instead");
            return;
        }
        for (rows, m, k) in
            [(1, 256, 256), (15, 1031, 64), (16, 70, 1000), (17, 128, 520), (64, 193, 576), (100, 40, 2000), (128, 517, 130)]
        {
            let x: Vec<f32> = (0..rows * k).map(value).collect();
            let w: Vec<f32> = (0..m * k).map(|i| value(i + 7)).collect();
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
                let mut c = vec![f32::NAN; rows * m];
                pool.install(|| x_wt(&x, rows, &w, m, k, &mut c));
                for t in 0..rows {
                    for j in 0..m {
                        let chain = (0..k).fold(0.0f32, |acc, l| x[t * k + l].mul_add(w[j * k + l], acc));
                        assert_eq!(c[t * m + j].to_bits(), chain.to_bits(), "row {t}, column {j} of {rows} x {m} x {k}, {threads} threads");
                    }
                }
            }
        }
    }
}
