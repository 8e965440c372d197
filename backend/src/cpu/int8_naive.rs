//! Naive ES on int8 on the CPU (docs/int8.md, "Naive ES"), the baseline of the integer EGGROLL
//! forward in the benchmarks: every member's `W_i = sat8(W + s_i E_k)` materialised from its
//! pair's full-rank noise (drawn once per pair, 16 draws to a Philox block) and multiplied, as the
//! f32 naive ES does.

use super::int8_gemm::{Path, Rhs};
use super::int8_noise::fill_noise;
use super::{member_input, NAIVE_GEMM_ROWS};
use crate::int8::{sat8, weight_shift, IntMatrix};
use crate::ops::Batch;
use crate::rng::NoiseStream;
use rayon::prelude::*;

/// The path that multiplies a matrix made for one product of `rows` rows (a member's `W_i`, a
/// pair's full-rank noise): below [`NAIVE_GEMM_ROWS`] rows the dot products, which read the matrix
/// once and do not pack it (packing for VNNI costs as much as the product then).
pub(super) fn path(rows: usize) -> Path {
    let fastest = Path::fastest();
    if rows < NAIVE_GEMM_ROWS && fastest == Path::Vnni {
        Path::Avx2
    } else {
        fastest
    }
}

/// `W_i = sat8(W + s E)` for sign `+1` (`negate` false) or `-1`: an int8 saturating sum (W and E
/// lie in [-127, 127] and [-15, 15], so it saturates at -128 at worst) raised to -127. Compiled
/// for AVX-512 / AVX2 when the processor has them; the results are the same.
fn materialise(w: &[i8], eps: &[i8], negate: bool, w_i: &mut [i8]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the processor supports the features the function is compiled for.
            return unsafe { materialise_avx512(w, eps, negate, w_i) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { materialise_avx2(w, eps, negate, w_i) };
        }
    }
    materialise_body(w, eps, negate, w_i)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn materialise_avx512(w: &[i8], eps: &[i8], negate: bool, w_i: &mut [i8]) {
    materialise_body(w, eps, negate, w_i)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn materialise_avx2(w: &[i8], eps: &[i8], negate: bool, w_i: &mut [i8]) {
    materialise_body(w, eps, negate, w_i)
}

#[inline(always)]
fn materialise_body(w: &[i8], eps: &[i8], negate: bool, w_i: &mut [i8]) {
    if negate {
        w_i.iter_mut().zip(w).zip(eps).for_each(|((v, &w), &e)| *v = w.saturating_sub(e).max(-127));
    } else {
        w_i.iter_mut().zip(w).zip(eps).for_each(|((v, &w), &e)| *v = w.saturating_add(e).max(-127));
    }
}

/// Every member's `y = sat8((x W_iᵀ) >> weight_shift(n))`, rayon over antithetic pairs: one task
/// per thread, each with its own noise, weight and sum buffers.
pub(super) fn naive_matmul(x: &[i8], w: &[i8], shape: IntMatrix, stream: &NoiseStream, batch: &Batch, y: &mut [i8]) {
    let (m, n, rows) = (shape.m, shape.n, batch.rows);
    let (o, path) = (weight_shift(n), path(rows));
    let pair_len = 2 * rows * m;
    let pairs_per_task = (batch.population / 2).div_ceil(rayon::current_num_threads());
    y.par_chunks_mut(pairs_per_task * pair_len).enumerate().for_each(|(task, y_block)| {
        let (mut eps, mut w_i, mut acc) = (vec![0i8; m * n], vec![0i8; m * n], vec![0i32; rows * m]);
        for (k, y_pair) in y_block.chunks_exact_mut(pair_len).enumerate() {
            // The pair's full-rank noise E, drawn once for both of its members.
            let pair = task * pairs_per_task + k;
            fill_noise(stream, (batch.first_pair() + pair) as u32, 0, &mut eps);
            for (half, y_member) in y_pair.chunks_exact_mut(rows * m).enumerate() {
                materialise(w, &eps, half == 1, &mut w_i);
                let x_i = member_input(x, batch, n, 2 * pair + half);
                Rhs::with_path(&w_i, n, path).product(x_i, 0..m, &mut acc);
                y_member.iter_mut().zip(&acc).for_each(|(y, &acc)| *y = sat8(acc >> o));
            }
        }
    });
}
