//! Handles on the population members of one epoch, for evaluation outside the trainer.

use crate::config::Method;
use crate::params::{ParamSpec, ParamValues};
use eggroll_backend::{LowRankNoise, NoiseStream};
use serde::{Deserialize, Serialize};

/// Everything that identifies member `member`'s perturbation at one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perturbation {
    /// Member index in the population.
    pub member: usize,
    /// Antithetic pair, `member / 2`.
    pub pair: u32,
    /// `+1` for even members, `-1` for odd.
    pub sign: f32,
    /// Training epoch.
    pub epoch: u32,
    /// Noise epoch (`epoch / noise_reuse`, or 0).
    pub noise_epoch: u32,
    /// Experiment seed (the RNG key).
    pub seed: u64,
    /// Scheduled σ of this epoch.
    pub sigma: f32,
    /// Configured rank (clamped to `min(m, n)` per matrix; unused by OpenES).
    pub rank: usize,
    /// EGGROLL's low-rank matrix noise or OpenES's full-rank one (EGGROLL when absent).
    #[serde(default)]
    pub method: Method,
}

impl Perturbation {
    /// Adds this member's noise to `values`, the mean values of parameter `spec`, on the host:
    /// `W += s (σ/√r) A Bᵀ` for matrices (OpenES: `W += s σ E`, E the matrix's first m n draws
    /// row-major), `b += s σ ε` for vectors, nothing when frozen; a piece of a matrix's rows
    /// takes those rows of the whole's noise. The
    /// result is the parameter [`crate::es::FloatTrainer::population_forward`] uses for this member.
    pub fn apply(&self, spec: &ParamSpec, values: &mut [f32]) {
        if spec.frozen {
            return;
        }
        let stream = NoiseStream::new(self.seed, spec.id, self.noise_epoch);
        match (spec.kind.low_rank(self.rank, self.sigma), self.method) {
            (Some(shape), Method::Eggroll) => {
                let (m, n, r) = (shape.m, shape.n, shape.rank);
                let mut a = vec![0.0; m * r];
                let mut b = vec![0.0; n * r];
                LowRankNoise { stream, shape }.fill_factors_t(self.pair, &mut a, &mut b);
                let coef = self.sign * shape.scale();
                // Factors are stored column by column: A[j, k] = a[k m + j], B[l, k] = b[k n + l].
                for (j, w_row) in values.chunks_exact_mut(n).enumerate() {
                    for (l, w) in w_row.iter_mut().enumerate() {
                        *w += coef * (0..r).map(|k| a[k * m + j] * b[k * n + l]).sum::<f32>();
                    }
                }
            }
            // A vector's noise, and OpenES's matrix noise over the m n values of the matrix (a
            // piece's from its first row's draws on).
            (shape, _) => {
                let start = shape.map_or(0, |shape| LowRankNoise { stream, shape }.full_rank_start());
                let mut eps = vec![0.0; spec.kind.len()];
                stream.fill_normals(self.pair, start, &mut eps);
                for (v, e) in values.iter_mut().zip(&eps) {
                    *v += self.sign * self.sigma * e;
                }
            }
        }
    }

    /// This member's parameters: a copy of `mean` (from [`crate::FloatTrainer::params`] of the same
    /// epoch) with the member's noise added to every parameter, as [`Perturbation::apply`] does
    /// to one.
    pub fn apply_all(&self, mean: &ParamValues) -> ParamValues {
        let mut member = mean.clone();
        for (spec, values) in member.iter_mut() {
            self.apply(spec, values);
        }
        member
    }
}
