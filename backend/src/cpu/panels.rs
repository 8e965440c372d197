//! `C = X Wᵀ` over many rows of `X` and a large `W` (a language model's prefill) in AVX-512
//! registers: `W` packed into panels of [`NR`] rows, each value of `X` broadcast against them,
//! tiles of [`MR`] x [`NR`] outputs accumulated in 24 registers by fused multiply-adds. Each output
//! is one chain of fused multiply-adds over `k` in order from +0.0, so its bits do not depend on
//! the tiling, the row blocks or the threads. x86-64 only (elsewhere `matrixmultiply` runs).

use super::lanes::transpose16;
use std::arch::x86_64::*;

/// Rows of `X` per tile.
const MR: usize = 12;

/// Rows of `W` per panel (outputs per tile row): two vectors of 16.
const NR: usize = 32;

/// Rows of `X` per block: a block's rows stay in the second-level cache while every panel of
/// `W` passes over them.
const MC: usize = 96;

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
    let panels = pack(w, m, k);
    // SAFETY: `takes` checked AVX-512F; the shapes are checked above.
    unsafe { blocks(x, rows, &panels, m, k, c) }
}

/// `W` as panels of [`NR`] rows, each stored column after column (`k` runs of [`NR`] values),
/// the last panel padded with zeros.
fn pack(w: &[f32], m: usize, k: usize) -> Vec<f32> {
    let panels = m.div_ceil(NR);
    let mut packed = vec![0.0f32; panels * k * NR];
    for (p, panel) in packed.chunks_exact_mut(k * NR).enumerate() {
        for half in 0..NR / 16 {
            let first = p * NR + 16 * half;
            let rows = 16.min(m.saturating_sub(first));
            let mut done = 0;
            if rows == 16 {
                // SAFETY: `x_wt` packs only where AVX-512F is (`takes`); the 16 rows from `first`
                // lie inside `w`, and the panel spans `k` runs of `NR`.
                unsafe { pack_squares(&w[first * k..(first + 16) * k], k, &mut panel[16 * half..]) };
                done = k / 16 * 16;
            }
            for r in 0..rows {
                for kk in done..k {
                    panel[kk * NR + 16 * half + r] = w[(first + r) * k + kk];
                }
            }
        }
    }
    packed
}

/// 16 rows of `k` (`w`) into 16 columns of a panel (`out`, a run every [`NR`] values), 16 x 16
/// squares at a time transposed in registers, up to the last whole square.
///
/// # Safety
/// AVX-512F; `w` holds 16 rows of `k`, `out` at least `(k - 1) * NR + 16` values.
#[target_feature(enable = "avx512f")]
unsafe fn pack_squares(w: &[f32], k: usize, out: &mut [f32]) {
    assert!(w.len() >= 16 * k && out.len() >= k.saturating_sub(1) * NR + 16, "pack_squares shapes");
    for k0 in (0..k / 16 * 16).step_by(16) {
        // SAFETY: rows `r < 16` and values `k0 + 16 <= k` lie in `w`; runs `k0 + i < k` in `out`.
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

/// Row blocks of [`MC`], every panel over each block, tiles of [`MR`] rows.
///
/// # Safety
/// AVX-512F; `x`, `panels` and `c` as [`x_wt`] and [`pack`] make them.
#[target_feature(enable = "avx512f")]
unsafe fn blocks(x: &[f32], rows: usize, panels: &[f32], m: usize, k: usize, c: &mut [f32]) {
    for b0 in (0..rows).step_by(MC) {
        let b1 = (b0 + MC).min(rows);
        for (p, panel) in panels.chunks_exact(k * NR).enumerate() {
            let width = NR.min(m - p * NR);
            let masks = [lanes(width), lanes(width.saturating_sub(16))];
            let mut t = b0;
            // SAFETY: every tile's rows lie in `b0..b1` and its columns in the panel's `width`.
            unsafe {
                while t + MR <= b1 {
                    tile::<MR>(x.as_ptr().add(t * k), k, panel.as_ptr(), c.as_mut_ptr().add(t * m + p * NR), m, masks);
                    t += MR;
                }
                while t + 4 <= b1 {
                    tile::<4>(x.as_ptr().add(t * k), k, panel.as_ptr(), c.as_mut_ptr().add(t * m + p * NR), m, masks);
                    t += 4;
                }
                while t < b1 {
                    tile::<1>(x.as_ptr().add(t * k), k, panel.as_ptr(), c.as_mut_ptr().add(t * m + p * NR), m, masks);
                    t += 1;
                }
            }
        }
    }
}

/// The mask of the first `count` of 16 lanes.
fn lanes(count: usize) -> u16 {
    if count >= 16 {
        !0
    } else {
        (1u16 << count) - 1
    }
}

/// `R` rows of `x` (`k` apart) against one panel: the outputs of columns where `masks` says,
/// row `r` at `c + r * cs`.
///
/// # Safety
/// AVX-512F; `x` spans `R` rows of `k`, `panel` `k` runs of [`NR`], and `c` the masked outputs.
#[inline(always)]
unsafe fn tile<const R: usize>(x: *const f32, k: usize, panel: *const f32, c: *mut f32, cs: usize, masks: [u16; 2]) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // SAFETY: the caller's.
    unsafe {
        for kk in 0..k {
            let w0 = _mm512_loadu_ps(panel.add(kk * NR));
            let w1 = _mm512_loadu_ps(panel.add(kk * NR + 16));
            for (r, acc) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * k + kk));
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
        for (rows, m, k) in [(24, 256, 256), (131, 70, 1000), (37, 1024, 64), (100, 33, 2048)] {
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
