//! The integer trainer's own calls ([`IntTrainer`](super::IntTrainer), docs/int8.md): the
//! population's integer log-likelihoods, the mean model's logits, and integer EGGROLL's update.
//!
//! It reads an [`EsConfig`](crate::EsConfig) through [`IntSettings`](crate::format::IntSettings):
//! `population`, `rank`, `seed`, `noise_reuse`, `epochs` as for the f32 trainer; `sigma` is the
//! [`NoiseShift`](crate::format::NoiseShift) `2^-t`; `lr` is [`Alpha`], the fraction of weights
//! that would move per epoch if the fitness carried no information, on `lr_schedule`;
//! `optimizer` must be `sgd` (the update is a ±1 step, with no optimiser state);
//! `sigma_schedule` must be constant; `method` picks EGGROLL's low-rank noise or OpenES's
//! full-rank noise of the same per-weight distribution (docs/int8.md, "OpenES"), with the same
//! noise shift and update threshold.

use super::{StepStats, Trainer};
use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::format::{Alpha, Int8, NoiseShift};
use crate::forward::{Forward, Mode};
use crate::int8::model::IntModel;
use crate::params::ParamKind;
use eggroll_backend::int8::{threshold, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::{InputLayout, NoiseStream};

impl<B: IntBackend, M: IntModel> Trainer<B, M, Int8> {
    /// α at the current epoch.
    pub fn alpha(&self) -> Alpha {
        Alpha::at(&self.config, self.epoch)
    }

    /// Every member's log-likelihood of each row's target (N x rows, member-major, in units of
    /// 2^-16 bits) at the current epoch's noise: `tokens` are the model input (`rows` ids shared
    /// by all, or `N x rows` with [`InputLayout::PerMember`]), `targets` one class per output row.
    /// Blocking; see [`Trainer::population_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood(&mut self, tokens: &[u32], layout: InputLayout, rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let mode = self.population_mode(0..self.config.population, layout, rows)?;
        let (backend, scores) = self.scored(mode, tokens, targets)?;
        Ok(backend.read_i32_blocking(scores)?)
    }

    /// [`Trainer::population_log_likelihood`] with the read-back awaited.
    pub async fn population_log_likelihood_async(
        &mut self, tokens: &[u32], layout: InputLayout, rows: usize, targets: &[u32],
    ) -> Result<Vec<i32>> {
        self.population_log_likelihood_members_async(0..self.config.population, tokens, layout, rows, targets).await
    }

    /// [`Trainer::population_log_likelihood`] of members `members` alone (whole antithetic pairs
    /// within `0..N`), each with the noise and sign it has in the whole population: `tokens` are
    /// the shared input or, per member, these members' rows only; `targets` one class per row of
    /// these members. Returns `members.len()` x rows log-likelihoods, the read-back awaited.
    pub async fn population_log_likelihood_members_async(
        &mut self, members: std::ops::Range<usize>, tokens: &[u32], layout: InputLayout, rows: usize, targets: &[u32],
    ) -> Result<Vec<i32>> {
        let start = crate::clock::clock_ms();
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, scores) = self.scored(mode, tokens, targets)?;
        let scores = backend.read_i32(scores).await?;
        self.add_forward_time(start);
        Ok(scores)
    }

    /// The mean model's log-likelihood of each row's target (units of 2^-16 bits). Blocking; see
    /// [`Trainer::mean_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn mean_log_likelihood(&mut self, tokens: &[u32], rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let (backend, scores) = self.scored(Mode::mean(rows)?, tokens, targets)?;
        Ok(backend.read_i32_blocking(scores)?)
    }

    /// [`Trainer::mean_log_likelihood`] with the read-back awaited.
    pub async fn mean_log_likelihood_async(&mut self, tokens: &[u32], rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let (backend, scores) = self.scored(Mode::mean(rows)?, tokens, targets)?;
        Ok(backend.read_i32(scores).await?)
    }

    /// The mean model's int8 logits (rows x classes, 4 fractional bits of bits). Blocking; see
    /// [`Trainer::mean_logits_async`].
    #[cfg(feature = "native")]
    pub fn mean_logits(&mut self, tokens: &[u32], rows: usize) -> Result<Vec<i8>> {
        let (backend, logits) = self.logits(Mode::mean(rows)?, tokens)?;
        Ok(backend.read_i8_blocking(logits)?)
    }

    /// [`Trainer::mean_logits`] with the read-back awaited.
    pub async fn mean_logits_async(&mut self, tokens: &[u32], rows: usize) -> Result<Vec<i8>> {
        let (backend, logits) = self.logits(Mode::mean(rows)?, tokens)?;
        Ok(backend.read_i8(logits).await?)
    }

    /// Enqueues the model's forward of `mode` on `tokens`; returns the tensor of its logits.
    fn logits(&mut self, mode: Mode<NoiseShift>, tokens: &[u32]) -> Result<(&B, &B::I8)> {
        let params = self.params.iter().map(|p| (&p.spec, &p.value)).collect();
        let classes = self.model.registry().outputs();
        let (mut f, input) = Forward::start_tokens(&self.backend, params, &mut self.arenas, mode, tokens)?;
        let logits = self.model.forward(&mut f, input)?;
        Ok((&self.backend, f.finish(logits, classes)?))
    }

    /// Enqueues the model's forward of `mode` on `tokens`, scored against `targets`; returns the
    /// tensor of the per-row log-likelihoods.
    fn scored(&mut self, mode: Mode<NoiseShift>, tokens: &[u32], targets: &[u32]) -> Result<(&B, &B::I32)> {
        let params = self.params.iter().map(|p| (&p.spec, &p.value)).collect();
        let classes = self.model.registry().outputs();
        let (mut f, input) = Forward::start_tokens(&self.backend, params, &mut self.arenas, mode, tokens)?;
        let logits = self.model.forward(&mut f, input)?;
        Ok((&self.backend, f.finish_scored(logits, classes, targets)?))
    }

    /// Integer EGGROLL's step from every member's score (higher is better): pair k's fitness is
    /// the sign of `score[2k] - score[2k+1]`, and every matrix takes the ±1 step of the weights
    /// whose `|Z|` passes the threshold of α (docs/int8.md), `Z` summing the method's noise.
    /// Returns the scores' statistics.
    pub fn tell(&mut self, scores: &[i64]) -> Result<StepStats> {
        let n = self.config.population;
        if scores.len() != n {
            return Err(EggrollError::Data(format!("got {} scores for a population of {n}", scores.len())));
        }
        let fitness: Vec<i8> = scores.chunks_exact(2).map(|p| (p[0] - p[1]).signum() as i8).collect();
        let nonzero = fitness.iter().filter(|&&f| f != 0).count();
        let alpha = self.alpha();
        let noise_epoch = self.noise_epoch();
        let shift = self.settings.shift;
        // Every shape before any step, so that a refusal leaves the weights as they were.
        let shapes = self
            .params
            .iter()
            .map(|param| match param.spec.kind {
                ParamKind::Matrix { m, n } => Ok((m, n)),
                kind => {
                    Err(EggrollError::Config(format!("integer EGGROLL updates whole matrices only; `{}` is {kind:?}", param.spec.name)))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        for (param, (m, n)) in self.params.iter_mut().zip(shapes) {
            let rank = self.config.rank.min(m).min(n);
            let noise = IntNoise { stream: NoiseStream::new(self.config.seed, param.spec.id, noise_epoch), rank, shift: shift.0 };
            // Under either method Z has the variance nonzero · rank · 42.5² without evidence.
            let tau = threshold(f64::from(alpha.0), nonzero, rank);
            let w = &mut param.value;
            match self.config.method {
                Method::Eggroll => self.backend.int_lowrank_update(&fitness, noise, IntMatrix { m, n }, tau, w)?,
                Method::OpenEs => self.backend.int_full_rank_update(&fitness, noise, IntMatrix { m, n }, tau, w)?,
            }
        }
        let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n as f64;
        let var = scores.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let stats = StepStats {
            epoch: self.epoch,
            mean_fitness: mean as f32,
            max_fitness: scores.iter().copied().max().unwrap_or(0) as f32,
            min_fitness: scores.iter().copied().min().unwrap_or(0) as f32,
            fitness_std: var.sqrt() as f32,
            lr: alpha.0,
            sigma: self.config.sigma,
        };
        self.epoch += 1;
        Ok(stats)
    }
}
