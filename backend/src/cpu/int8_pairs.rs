//! What the CPU's low-rank and full-rank integer perturbed products share: the operands every
//! antithetic pair reads, the shared input's `x Wᵀ` computed once for all members, the split of
//! the population into rayon tasks of whole pairs, and a member's output from its terms.

use super::int8_gemm::Rhs;
use crate::int8::{sat8, IntMatrix, IntNoise};
use crate::ops::{Batch, InputLayout};
use rayon::prelude::*;
use std::sync::Arc;

/// What every pair of a perturbed product shares: the input, `W` prepared for the products, the
/// shared `x Wᵀ` (shared input only), the noise and the batch.
pub(super) struct Product<'a> {
    /// The input: `rows x n`, or `N x rows x n` per member.
    pub(super) x: &'a [i8],
    /// `W` (`m x n`) prepared for the products.
    pub(super) w: Rhs<'a>,
    /// The shared input's `x Wᵀ` (`rows x m`); `None` with per-member input.
    pub(super) base: Option<Vec<i32>>,
    /// `W`'s shape.
    pub(super) shape: IntMatrix,
    /// The noise of the perturbations.
    pub(super) noise: IntNoise,
    /// The members and their rows.
    pub(super) batch: Batch,
    /// Every pair's low-rank factors (`a` then `b`, pair after pair) when the noise cache holds
    /// them; drawn per pair otherwise.
    pub(super) factors: Option<Arc<[i8]>>,
}

impl<'a> Product<'a> {
    /// The perturbed product of `x` by the `shape` matrix `w` for `batch`: a shared input's
    /// `x Wᵀ` is computed here, once for every member; per-member input multiplies in each pair's
    /// task.
    pub(super) fn new(x: &'a [i8], w: &'a [i8], shape: IntMatrix, noise: IntNoise, batch: Batch) -> Self {
        let w = Rhs::new(w, shape.n);
        let base = (batch.input == InputLayout::Shared).then(|| {
            let mut base = vec![0; batch.rows * shape.m];
            w.product_par(x, &mut base);
            base
        });
        Self { x, w, base, shape, noise, batch, factors: None }
    }

    /// Every member's output into `y` (`N x rows x m`): `pair_outputs(self, pair, y_pair,
    /// scratch)` writes both members of pair `pair` (`2 x rows x m`); the pairs are split evenly
    /// over rayon's threads, each task with a scratch of its own.
    pub(super) fn run<S: Default + Send>(&self, y: &mut [i8], pair_outputs: impl Fn(&Self, usize, &mut [i8], &mut S) + Sync) {
        let pairs_per_task = (self.batch.population / 2).div_ceil(rayon::current_num_threads());
        let pair_len = 2 * self.batch.rows * self.shape.m;
        y.par_chunks_mut(pairs_per_task * pair_len).enumerate().for_each_init(S::default, |scratch, (task, y_block)| {
            for (k, y_pair) in y_block.chunks_exact_mut(pair_len).enumerate() {
                pair_outputs(self, task * pairs_per_task + k, y_pair, scratch);
            }
        });
    }
}

/// A member's outputs from its unperturbed products `acc` and noise terms `noise`:
/// `y = sat8((acc + s (noise >> t)) >> o)` for its sign `s`, the noise shift `t` and the weight
/// shift `o`. Inlined, so that it is compiled for the processor features of its caller.
#[inline(always)]
pub(super) fn member_outputs(y: &mut [i8], acc: &[i32], noise: &[i32], s: i32, t: u32, o: u32) {
    for ((y, &acc), &noise) in y.iter_mut().zip(acc).zip(noise) {
        *y = sat8((acc + s * (noise >> t)) >> o);
    }
}
