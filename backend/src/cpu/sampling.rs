//! Nucleus sampling of rows of logits ([`crate::transformer::Transformer::sample_rows`]), the
//! reference of sampling.wgsl, step for step in the same order of sums:
//! 1. `e_j = exp(l_j / T - max_j l_j / T)` (the logits times `1/T`) and their total; the
//!    normaliser of the softmax at temperature 1 for the log-probability;
//! 2. the nucleus: the largest threshold `t` (as the bits of an f32) such that the values with
//!    `e_j >= t` add up to at least `top_p` times the total, found by an 8-way search over the
//!    bits (seven masses a pass, ten passes at most); with `top_p` 1, every positive value;
//! 3. the draw: `u · K` with `K` the kept mass and `u` the uniform of (seed, member, position),
//!    and the token at which the kept values' running sum, in vocabulary order, passes it.
//!
//! Sums run in [`LANES`] lanes as the workgroup's invocations do: lane `i` adds values `i, i +
//! LANES, ...` in order, then the lanes are added as a tree of halves. The running sum of step 3
//! goes in [`LANES`] contiguous chunks: each chunk's sum, their prefix sums in order, then within
//! the one chunk whose range holds the target.

use super::lanes::{self, halving_sum, vectorized};
use crate::rng::philox4x32_10;
use crate::transformer::Nucleus;

/// Lanes of the sums: the invocations of sampling.wgsl's workgroup.
pub(crate) const LANES: usize = 256;

/// Thresholds tried by a pass of the search, plus one.
const ARITY: u32 = 8;

/// The bits of 1.0, the largest `e_j`.
const ONE_BITS: u32 = 0x3f80_0000;

/// The tag in the third word of a sampling uniform's Philox counter.
const SAMPLE_TAG: u32 = 0x5a4d_504c;

/// The uniform in `[0, 1)` of `member` at `position`: the top 24 bits of the first word of
/// Philox4x32-10 at counter `(position, member, 0x5a4d504c, 0)`, key `(seed low, seed high)`.
pub(crate) fn uniform(seed: u64, member: u32, position: u32) -> f32 {
    let [word, ..] = philox4x32_10([position, member, SAMPLE_TAG, 0], [seed as u32, (seed >> 32) as u32]);
    (word >> 8) as f32 / (1u32 << 24) as f32
}

vectorized! {
    /// `out[j] ← exp(row[j] · scale - shift)`.
    fn exps(row: &[f32], scale: f32, shift: f32, out: &mut Vec<f32>) {
        out.clear();
        out.extend(row.iter().map(|&l| lanes::exp(l * scale - shift)));
    }
}

vectorized! {
    /// The sums of the values of `e` at least each of `thresholds` (bits), each in [`LANES`]
    /// lanes, before their trees.
    fn masked_lanes(e: &[f32], thresholds: &[u32], acc: &mut [[f32; LANES]]) {
        for block in e.chunks(LANES) {
            for (a, &t) in acc.iter_mut().zip(thresholds) {
                for (a, &v) in a.iter_mut().zip(block) {
                    *a += kept(v, t);
                }
            }
        }
    }
}

/// The sum of `values` in [`LANES`] lanes added as a tree of halves.
fn lane_sum(values: &[f32]) -> f32 {
    let mut acc = [[0.0f32; LANES]];
    masked_lanes(values, &[0], &mut acc);
    halving_sum(acc[0])
}

/// `value` where its bits are at least `threshold`, else 0.
#[inline(always)]
fn kept(value: f32, threshold: u32) -> f32 {
    if value.to_bits() >= threshold {
        value
    } else {
        0.0
    }
}

/// The nucleus's threshold over `e` (non-negative): the largest `t >= 1` (bits) whose values
/// `e_j >= t` add up to at least `need`.
fn threshold(e: &[f32], need: f32) -> u32 {
    let (mut lo, mut hi) = (1u32, ONE_BITS + 1);
    while hi - lo > 1 {
        let step = (hi - lo).div_ceil(ARITY);
        let tried: [u32; ARITY as usize - 1] = std::array::from_fn(|k| lo + (k as u32 + 1) * step);
        let mut acc = [[0.0f32; LANES]; ARITY as usize - 1];
        masked_lanes(e, &tried, &mut acc);
        let reached = tried.iter().zip(acc.iter_mut()).map(|(&t, a)| t < hi && halving_sum(*a) >= need).filter(|&r| r).count() as u32;
        hi = hi.min(lo + (reached + 1) * step);
        lo += reached * step;
    }
    lo
}

/// The token drawn from `row` and its log-probability at temperature 1; `e` is scratch.
pub(crate) fn sample_row(row: &[f32], nucleus: Nucleus, member: u32, position: u32, e: &mut Vec<f32>) -> (u32, f32) {
    let inv_t = 1.0 / nucleus.temperature;
    let largest = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    exps(row, 1.0, largest, e);
    let normaliser = lane_sum(e);
    let scaled_max = largest * inv_t;
    exps(row, inv_t, scaled_max, e);
    let total = lane_sum(e);
    let t = if nucleus.top_p < 1.0 { threshold(e, nucleus.top_p * total) } else { 1 };
    // The kept mass in contiguous chunks, their prefix sums, the chunk that holds the target.
    let chunk = row.len().div_ceil(LANES);
    let mut prefix = [0.0f32; LANES + 1];
    let mut last_positive = None;
    for lane in 0..LANES {
        let part: f32 = e.iter().skip(lane * chunk).take(chunk).fold(0.0, |s, &v| s + kept(v, t));
        prefix[lane + 1] = prefix[lane] + part;
        if part > 0.0 {
            last_positive = Some(lane);
        }
    }
    let target = uniform(nucleus.seed, member, position) * prefix[LANES];
    let owner = (0..LANES).find(|&l| prefix[l] <= target && target < prefix[l + 1]).or(last_positive);
    let mut token = 0;
    if let Some(lane) = owner {
        let mut running = prefix[lane];
        for (j, &v) in e.iter().enumerate().skip(lane * chunk).take(chunk) {
            let v = kept(v, t);
            if v > 0.0 {
                token = j;
                running += v;
                if target < running {
                    break;
                }
            }
        }
    }
    (token as u32, (row[token] - largest) - normaliser.ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_keeps_the_smallest_set_of_most_likely_values_reaching_the_need() {
        let e = [0.5f32, 1.0, 0.25, 0.125, 0.125];
        for (need, kept_from) in [(1.0, 1.0), (1.4, 0.5), (1.5, 0.5), (1.6, 0.25), (1.75, 0.25), (1.8, 0.125), (2.0, 0.125)] {
            let t = threshold(&e, need);
            assert_eq!(t, f32::to_bits(kept_from), "need {need}");
        }
    }

    #[test]
    fn a_cold_row_gives_its_largest_logit_and_top_p_excludes_the_tail() {
        let row = [0.0f32, 3.0, 1.0, -2.0];
        let mut e = Vec::new();
        let cold = Nucleus { temperature: 1e-3, top_p: 1.0, seed: 3 };
        let nucleus = Nucleus { temperature: 1.0, top_p: 0.5, seed: 3 };
        for position in 0..64 {
            assert_eq!(sample_row(&row, cold, 0, position, &mut e).0, 1);
            // Token 1 holds 84% of the probability: alone it reaches top-p 0.5.
            let (token, log_prob) = sample_row(&row, nucleus, 1, position, &mut e);
            assert_eq!(token, 1);
            let total: f64 = row.iter().map(|&l| f64::from(l).exp()).sum();
            assert!((f64::from(log_prob) - (3.0 - total.ln())).abs() < 1e-6);
        }
    }
}
