//! `C = X Wᵀ` over many rows of `X` and a large `W` (a language model's prefill) in AVX-512
//! registers: `W` packed, a block at a time, into panels of [`NR`] rows; each value of `X`
//! broadcast against a panel's column; tiles of [`MR`] x [`NR`] outputs accumulated in 24
//! registers by fused multiply-adds. Each output is one chain of fused multiply-adds over `k` in
//! order from +0.0, so its bits do not depend on the tiling, the row blocks or the threads.
//! x86-64 only (elsewhere `matrixmultiply` runs).

use super::lanes::transpose16;
use std::arch::x86_64::*;

/// Rows of `X` per tile.
const MR: usize = 12;

/// Rows of `W` per panel (outputs per tile row): two vectors of 16.
const NR: usize = 32;

/// Rows of `X` per row block: a row block's span stays in the second-level cache while every
/// panel of a block of `W` passes over it.
const MC: usize = 96;

/// Values of the inner dimension per span: a panel's span stays in the second-level cache while
/// the tiles of a row block pass over it.
const KC: usize = 1024;

/// Panels per block of `W`: a block, packed over a span, stays in the last-level cache while every
/// row block of `X` passes over it, so that `W` is read from memory once per call.
const NC: usize = 16;

/// At least this many weights: smaller products keep `matrixmultiply`'s bits (the small models'
/// recorded trajectories).
const MIN_WEIGHTS: usize = 1 << 16;

/// At least this many rows of `X`: fewer rows run as dot products or through `matrixmultiply`.
const MIN_ROWS: usize = 2 * MR;

/// Whether [`x_wt`] computes `rows` rows against an `m x k` weight on this processor.
pub(crate) fn takes(rows: usize, m: usize, k: usize) -> bool {
    rows >= MIN_ROWS && m * k >= MIN_WEIGHTS && available()
}

/// Whether this processor runs the panels (AVX-512F).
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// `c = x · wᵀ`: `x` row-major `rows x k`, `w` row-major `m x k`, `c` row-major `rows x m`, on
/// the calling thread. Only where [`takes`] says so.
pub(crate) fn x_wt(x: &[f32], rows: usize, w: &[f32], m: usize, k: usize, c: &mut [f32]) {
    assert!(takes(rows, m, k), "x_wt: not for this shape or processor");
    assert!(x.len() >= rows * k && w.len() >= m * k && c.len() >= rows * m, "x_wt shapes");
    // SAFETY: `takes` checked AVX-512F; the shapes are checked above.
    PACKED.with_borrow_mut(|packed| unsafe { blocks(x, rows, w, m, k, c, packed) })
}

thread_local! {
    /// Each thread's packed block of `W`, kept from call to call.
    static PACKED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Panels `j0..j0 + count` of `W` (each [`NR`] of its rows, the last padded with zeros) over the
/// span `k0..k0 + len` of the inner dimension, into `out`: panel after panel, each column after
/// column (a run of [`NR`] values per column).
#[allow(clippy::too_many_arguments)]
fn pack(w: &[f32], m: usize, k: usize, k0: usize, len: usize, j0: usize, count: usize, out: &mut [f32]) {
    for (i, panel) in out[..count * len * NR].chunks_exact_mut(len * NR).enumerate() {
        for half in 0..NR / 16 {
            let first = (j0 + i) * NR + 16 * half;
            let rows = 16.min(m.saturating_sub(first));
            let mut done = 0;
            if rows == 16 {
                // SAFETY: `x_wt` packs only where AVX-512F is (`takes`); the 16 rows from `first`
                // lie inside `w`, and the panel holds `len` runs of `NR`.
                unsafe { pack_squares(&w[first * k + k0..], k, len, &mut panel[16 * half..]) };
                done = len / 16 * 16;
            }
            for r in 0..16 {
                for kk in done..len {
                    panel[kk * NR + 16 * half + r] = if r < rows { w[(first + r) * k + k0 + kk] } else { 0.0 };
                }
            }
        }
    }
}

/// The first `len` values of 16 rows `k` apart (`w`) into 16 columns of a panel (`out`, a run
/// every [`NR`] values), 16 x 16 squares at a time transposed in registers, up to the last whole
/// square.
///
/// # Safety
/// AVX-512F; `w` holds 15 rows of `k` and one of `len` more, `out` `(len - 1) * NR + 16` values.
#[target_feature(enable = "avx512f")]
unsafe fn pack_squares(w: &[f32], k: usize, len: usize, out: &mut [f32]) {
    assert!(len <= k && w.len() >= 15 * k + len && out.len() >= len.saturating_sub(1) * NR + 16, "pack_squares shapes");
    for k0 in (0..len / 16 * 16).step_by(16) {
        // SAFETY: rows `r < 16` and values `k0 + 16 <= len` lie in `w`; runs `k0 + i < len` in
        // `out`.
        unsafe {
            // A loop, not `array::from_fn`: a closure would not inherit the target features.
            let mut square = [_mm512_setzero_ps(); 16];
            for (r, row) in square.iter_mut().enumerate() {
                *row = _mm512_loadu_ps(w.as_ptr().add(r * k + k0));
            }
            for (i, column) in transpose16(square).into_iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add((k0 + i) * NR), column);
            }
        }
    }
}

/// Spans of [`KC`] of the inner dimension, blocks of [`NC`] panels of `W` (packed into
/// `packed`), row blocks of [`MC`], each panel of the block over each row block in tiles of
/// [`MR`] rows; after the first span each tile carries on from the outputs so far.
///
/// # Safety
/// AVX-512F; `x`, `w` and `c` as [`x_wt`] checks them.
#[target_feature(enable = "avx512f")]
unsafe fn blocks(x: &[f32], rows: usize, w: &[f32], m: usize, k: usize, c: &mut [f32], packed: &mut Vec<f32>) {
    let (xp, cp) = (x.as_ptr(), c.as_mut_ptr());
    let panels = m.div_ceil(NR);
    packed.resize(KC * NC * NR, 0.0);
    for k0 in (0..k).step_by(KC) {
        let span = Span { first: k0 == 0, len: KC.min(k - k0), x_stride: k };
        for j0 in (0..panels).step_by(NC) {
            let count = NC.min(panels - j0);
            pack(w, m, k, k0, span.len, j0, count, packed);
            for b0 in (0..rows).step_by(MC) {
                let b1 = (b0 + MC).min(rows);
                for (i, panel) in packed[..count * span.len * NR].chunks_exact(span.len * NR).enumerate() {
                    let p = j0 + i;
                    let width = NR.min(m - p * NR);
                    let masks = [lanes(width), lanes(width.saturating_sub(16))];
                    let at = |t: usize| (xp.wrapping_add(t * k + k0), cp.wrapping_add(t * m + p * NR));
                    let mut t = b0;
                    // SAFETY: every tile's rows lie in `b0..b1`, its values in `k0..k0 + len` and
                    // its columns in the panel's `width`.
                    unsafe {
                        while t + MR <= b1 {
                            let (xt, ct) = at(t);
                            tile::<MR>(xt, span, panel.as_ptr(), ct, m, masks);
                            t += MR;
                        }
                        while t + 4 <= b1 {
                            let (xt, ct) = at(t);
                            tile::<4>(xt, span, panel.as_ptr(), ct, m, masks);
                            t += 4;
                        }
                        while t < b1 {
                            let (xt, ct) = at(t);
                            tile::<1>(xt, span, panel.as_ptr(), ct, m, masks);
                            t += 1;
                        }
                    }
                }
            }
        }
    }
}

/// A tile's span of the inner dimension: `len` values, the first span or one that carries on
/// from the outputs; rows of `x` are `x_stride` apart.
#[derive(Clone, Copy)]
struct Span {
    first: bool,
    len: usize,
    x_stride: usize,
}

/// The mask of the first `count` of 16 lanes.
fn lanes(count: usize) -> u16 {
    if count >= 16 {
        !0
    } else {
        (1u16 << count) - 1
    }
}

/// `R` rows of `x` against one panel over a span: the outputs of columns where `masks` says,
/// row `r` at `c + r * cs`, each a chain of fused multiply-adds from +0.0 (the first span) or
/// from the output so far.
///
/// # Safety
/// AVX-512F; `x` spans `R` rows of the span's values, `panel` its runs of [`NR`], and `c` the
/// masked outputs.
#[inline(always)]
unsafe fn tile<const R: usize>(x: *const f32, span: Span, panel: *const f32, c: *mut f32, cs: usize, masks: [u16; 2]) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY: the caller's.
    unsafe {
        if !span.first {
            for (r, acc) in acc.iter_mut().enumerate() {
                acc[0] = _mm512_maskz_loadu_ps(masks[0], c.add(r * cs));
                acc[1] = _mm512_maskz_loadu_ps(masks[1], c.add(r * cs + 16));
            }
        }
        for kk in 0..span.len {
            let w0 = _mm512_loadu_ps(panel.add(kk * NR));
            let w1 = _mm512_loadu_ps(panel.add(kk * NR + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * span.x_stride + kk));
                acc[0] = _mm512_fmadd_ps(xv, w0, acc[0]);
                acc[1] = _mm512_fmadd_ps(xv, w1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(c.add(r * cs), masks[0], acc[0]);
            _mm512_mask_storeu_ps(c.add(r * cs + 16), masks[1], acc[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each output is the in-order chain of fused multiply-adds from +0.0, whatever the row
    /// count (full tiles, tiles of four, single rows) and the panel's padding.
    #[test]
    fn every_output_is_its_chain_of_fused_multiply_adds() {
        if !available() {
            eprintln!("no AVX-512F on this processor: the portable GEMM runs instead");
            return;
        }
        let value = |i: usize| ((i.wrapping_mul(2654435761) >> 7) % 2001) as f32 / 1000.0 - 1.0;
        for (rows, m, k) in [(24, 256, 256), (131, 70, 1000), (37, 1024, 64), (100, 33, 2048), (30, 40, 2000)] {
            let x: Vec<f32> = (0..rows * k).map(value).collect();
            let w: Vec<f32> = (0..m * k).map(|i| value(i + 7)).collect();
            let mut c = vec![f32::NAN; rows * m];
            x_wt(&x, rows, &w, m, k, &mut c);
            for t in 0..rows {
                for j in 0..m {
                    let chain = (0..k).fold(0.0f32, |acc, l| x[t * k + l].mul_add(w[j * k + l], acc));
                    assert_eq!(c[t * m + j].to_bits(), chain.to_bits(), "row {t}, column {j} of {rows} x {m} x {k}");
                }
            }
        }
    }
}
