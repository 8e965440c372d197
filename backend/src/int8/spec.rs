//! The scalar definitions of integer EGGROLL's arithmetic ([docs/int8.md](../../../docs/int8.md)):
//! what every backend's integer kernels compute, bit for bit.

use super::tables::{EXP2, LOG2};
use crate::rng::{philox4x32_10, NoiseStream};

/// Fractional bits of an int8 activation (`q` stands for `q / 16`).
pub const ACT_BITS: u32 = 4;
/// Variance of one integer noise draw, `2 (16² - 1) / 12`.
pub const NOISE_VARIANCE: f64 = 42.5;
/// Largest magnitude of an int8 value (-128 is never produced).
pub const I8_MAX: i32 = 127;

/// `clamp(v, -127, 127)`.
#[inline]
pub fn sat8(v: i32) -> i8 {
    v.clamp(-I8_MAX, I8_MAX) as i8
}

/// Fractional bits of the weights of a matrix with `n` inputs, `4 + ceil(log2(n) / 2)`: the output
/// shift of its products.
pub fn weight_shift(n: usize) -> u32 {
    let log2_ceil = usize::BITS - n.saturating_sub(1).leading_zeros();
    ACT_BITS + log2_ceil.div_ceil(2)
}

/// Integer noise draw `element` of pair `pair`: byte `element & 15` of the Philox block
/// `element >> 4`, as `(u & 15) - (u >> 4)` in `[-15, 15]`.
#[inline]
pub fn noise_value(stream: &NoiseStream, pair: u32, element: u32) -> i8 {
    let words = philox4x32_10([element >> 4, pair, stream.param_id, stream.noise_epoch], stream.key());
    let u = (words[((element >> 2) & 3) as usize] >> (8 * (element & 3))) & 0xff;
    ((u & 15) as i32 - (u >> 4) as i32) as i8
}

/// The first of the `2 rank` consecutive draws of OpenES's integer noise on element `e` of a
/// matrix (`e = j n + l` for weight `(j, l)` of an m x n matrix, `e = v d + j` in a V x d table):
/// draw `2 (e rank + q)` and the one after it are the two factors of its term `q`.
#[inline]
pub fn full_rank_first_draw(element: usize, rank: usize) -> u32 {
    (2 * element * rank) as u32
}

/// OpenES's integer noise from its `2 r` draws `d` (in order): `Σ_q d[2q] d[2q + 1]`, the sum of
/// `r` products of two independent draws, so that it has the distribution of one weight of
/// EGGROLL's `Σ_q a_q[j] b_q[l]`, independently for every weight.
#[inline]
pub fn full_rank_combine(draws: &[i8]) -> i32 {
    draws.chunks_exact(2).map(|d| i32::from(d[0]) * i32::from(d[1])).sum()
}

/// OpenES's integer noise `E_k[e]` of pair `pair` on element `e` (docs/int8.md, "OpenES"):
/// `Σ_{q < rank} d(2 (e rank + q)) d(2 (e rank + q) + 1)` with `d` the pair's [`noise_value`]s.
pub fn full_rank_noise(stream: &NoiseStream, pair: u32, element: usize, rank: usize) -> i32 {
    let first = u64::from(full_rank_first_draw(element, rank));
    let draws: Vec<i8> = (first..first + 2 * rank as u64).map(|d| noise_value(stream, pair, d as u32)).collect();
    full_rank_combine(&draws)
}

/// `ll` of a row of int8 logits (4 fractional bits of bits) at class `target`: the
/// log-likelihood in units of 2^-16 bits, `<= 0`. Fewer than 2^15 logits, so that the sum of
/// their `EXP2` terms stays below 2^31.
pub fn log_likelihood(logits: &[i8], target: usize) -> i32 {
    let max = logits.iter().copied().max().map_or(0, i32::from);
    let sum: i32 = logits.iter().map(|&l| EXP2[(max - i32::from(l)) as usize]).sum();
    (i32::from(logits[target]) - max) * (1 << 12) - (log2_fixed(sum) - (16 << 16))
}

/// `log2(s)` in 16.16 fixed point for `s >= 1`: the exponent of the leading one, and the 10 bits
/// after it through [`LOG2`].
#[inline]
pub fn log2_fixed(s: i32) -> i32 {
    let e = 31 - (s as u32).leading_zeros() as i32;
    let k = if e >= 10 { (s >> (e - 10)) & 1023 } else { (s << (10 - e)) & 1023 };
    (e << 16) + LOG2[k as usize]
}

/// The update threshold `floor(z · 42.5 · sqrt(nonzero · rank))` with `z` the two-sided normal
/// quantile of `alpha` (`P(|N(0,1)| > z) = alpha`); `i32::MAX` (nothing moves) when no pair has
/// a nonzero fitness or `alpha <= 0`.
pub fn threshold(alpha: f64, nonzero_pairs: usize, rank: usize) -> i32 {
    if nonzero_pairs == 0 || alpha <= 0.0 {
        return i32::MAX;
    }
    let z = normal_quantile(1.0 - alpha.min(1.0) / 2.0);
    // Z sums nonzero_pairs * rank products a b of variance 42.5² each.
    let tau = (z * NOISE_VARIANCE * ((nonzero_pairs * rank) as f64).sqrt()).floor();
    tau.clamp(-1.0, f64::from(i32::MAX)) as i32
}

/// The standard normal quantile `Φ^{-1}(p)` for `p` in `[0.5, 1)` (Acklam's rational
/// approximation, relative error below 1.2e-9; the same f64 operations on every backend, as it
/// runs on the host); 0 at `p <= 0.5`.
fn normal_quantile(p: f64) -> f64 {
    if p <= 0.5 {
        return 0.0;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] =
        [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
    const B: [f64; 5] = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] =
        [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let q = 1.0 - p;
    if q < 0.02425 {
        let r = (-2.0 * q.ln()).sqrt();
        -(((((C[0] * r + C[1]) * r + C[2]) * r + C[3]) * r + C[4]) * r + C[5]) / ((((D[0] * r + D[1]) * r + D[2]) * r + D[3]) * r + 1.0)
    } else {
        let r = p - 0.5;
        let t = r * r;
        (((((A[0] * t + A[1]) * t + A[2]) * t + A[3]) * t + A[4]) * t + A[5]) * r
            / (((((B[0] * t + B[1]) * t + B[2]) * t + B[3]) * t + B[4]) * t + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_their_definitions() {
        for (d, &v) in EXP2.iter().enumerate() {
            assert_eq!(v, (65536.0 * (-(d as f64) / 16.0).exp2()).round() as i32, "EXP2[{d}]");
        }
        for (k, &v) in LOG2.iter().enumerate() {
            assert_eq!(v, (65536.0 * (1.0 + k as f64 / 1024.0).log2()).round() as i32, "LOG2[{k}]");
        }
    }

    #[test]
    fn noise_is_symmetric_with_the_documented_variance() {
        let stream = NoiseStream::new(7, 3, 1);
        let draws: Vec<f64> = (0..200_000).map(|e| f64::from(noise_value(&stream, 5, e))).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.05 && (var - NOISE_VARIANCE).abs() < 0.5, "mean {mean}, variance {var}");
        assert!(draws.iter().all(|d| d.abs() <= 15.0));
        assert_ne!(noise_value(&stream, 5, 0), noise_value(&stream, 6, 0));
    }

    /// OpenES's noise has EGGROLL's per-weight distribution: mean 0, variance `r 42.5²`, and
    /// neighbouring weights uncorrelated (they share no draw, unlike EGGROLL's `a_q[j] b_q[l]`).
    #[test]
    fn full_rank_noise_has_eggrolls_variance_per_weight() {
        let stream = NoiseStream::new(3, 1, 4);
        for rank in [1, 3] {
            let e: Vec<f64> = (0..60_000).map(|el| f64::from(full_rank_noise(&stream, 2, el, rank))).collect();
            let mean = e.iter().sum::<f64>() / e.len() as f64;
            let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / e.len() as f64;
            let want = rank as f64 * NOISE_VARIANCE * NOISE_VARIANCE;
            assert!(
                mean.abs() < 0.05 * want.sqrt() && (var / want - 1.0).abs() < 0.05,
                "rank {rank}: mean {mean}, variance {var}, want {want}"
            );
            let neighbours = e.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (e.len() - 1) as f64 / var;
            assert!(neighbours.abs() < 0.02, "rank {rank}: correlation of neighbours {neighbours}");
            assert!(e.iter().all(|v| v.abs() <= 225.0 * rank as f64));
        }
    }

    #[test]
    fn log_likelihood_matches_the_real_one() {
        let logits: Vec<i8> = (0..256).map(|j| ((j * 37) % 200 - 100) as i8).collect();
        for target in [0, 17, 255] {
            let exact: f64 = {
                let max = logits.iter().map(|&l| f64::from(l) / 16.0).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = logits.iter().map(|&l| (f64::from(l) / 16.0 - max).exp2()).sum();
                f64::from(logits[target]) / 16.0 - max - sum.log2()
            };
            let got = f64::from(log_likelihood(&logits, target)) / 65536.0;
            assert!((got - exact).abs() < 0.01, "target {target}: {got} bits, exact {exact}");
        }
        assert_eq!(log_likelihood(&[0, 0, 0, 0], 1), -(2 << 16));
    }

    #[test]
    fn shifts_and_thresholds() {
        assert_eq!((weight_shift(1), weight_shift(4), weight_shift(64), weight_shift(96), weight_shift(256)), (4, 5, 7, 8, 8));
        assert_eq!(threshold(0.5, 0, 1), i32::MAX);
        // P(|Z| > 1.959964) = 0.05: 1.959964 * 42.5 * sqrt(100) = 832.98.
        assert_eq!(threshold(0.05, 100, 1), 832);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
    }
}
