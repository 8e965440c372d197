//! The f32 trainer's own calls: the population and mean forwards read back as f32, the ask
//! handles, and EGGROLL's update ([`Trainer::tell`]).

use super::{fitness_stats, Perturbation, StepStats, Trainer};
use crate::config::{Method, OptimizerKind};
use crate::error::{EggrollError, Result};
use crate::format::F32;
use crate::forward::{Forward, Mode};
use crate::model::Model;
use crate::shaping::shape_fitness;
use eggroll_backend::{AdamParams, Backend, InputLayout, LowRankNoise, NoiseStream};
use std::ops::Range;

impl<B: Backend, M: Model> Trainer<B, M, F32> {
    /// The whole population's forward on the backend (batched perturbed matmuls, no per-member
    /// host loop) at the current epoch's noise and σ: `x` is rows x inputs
    /// ([`InputLayout::Shared`]) or N x rows x inputs ([`InputLayout::PerMember`]); returns
    /// N x rows x outputs on the host. Blocking; [`Trainer::population_forward_async`] awaits the
    /// read-back instead (the browser cannot block).
    #[cfg(feature = "native")]
    pub fn population_forward(&mut self, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        self.population_forward_members(0..self.config.population, x, layout, rows)
    }

    /// [`Trainer::population_forward`] with the read-back awaited.
    pub async fn population_forward_async(&mut self, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        self.population_forward_members_async(0..self.config.population, x, layout, rows).await
    }

    /// The forward of members `members` of the population alone, each with the noise and sign it
    /// has in the whole population, so that a worker can evaluate its slice of the population on
    /// its own device: the rows are those [`Trainer::population_forward`] gives these members
    /// (bit for bit on the CPU backend). `members` must be whole pairs (even start and end) within
    /// `0..N`; `x` is rows x inputs ([`InputLayout::Shared`]) or, for
    /// [`InputLayout::PerMember`], these members' rows only (`members.len()` x rows x inputs).
    /// Returns `members.len()` x rows x outputs. Blocking; see
    /// [`Trainer::population_forward_members_async`].
    #[cfg(feature = "native")]
    pub fn population_forward_members(&mut self, members: Range<usize>, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.population_forward_members_async(members, x, layout, rows))
    }

    /// [`Trainer::population_forward_members`] with the read-back awaited.
    pub async fn population_forward_members_async(
        &mut self, members: Range<usize>, x: &[f32], layout: InputLayout, rows: usize,
    ) -> Result<Vec<f32>> {
        let start = crate::clock::clock_ms();
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, None)?;
        let output = backend.read(output).await?;
        self.add_forward_time(start);
        Ok(output)
    }

    /// The unperturbed (mean) model on `rows` x inputs; returns rows x outputs. Blocking; see
    /// [`Trainer::forward_mean_async`].
    #[cfg(feature = "native")]
    pub fn forward_mean(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        pollster::block_on(self.forward_mean_async(x, rows))
    }

    /// [`Trainer::forward_mean`] with the read-back awaited.
    pub async fn forward_mean_async(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(Mode::mean(rows)?, x, None)?;
        Ok(backend.read(output).await?)
    }

    /// The population forward scored against `targets` on the backend: for each of the
    /// N x rows output rows (member-major), the log-likelihood `log softmax(y_row)[target]` of its
    /// target class in `0..outputs`, so that a classifier or language model's fitness reads back
    /// one value per row instead of its logits. `x` and `layout` as in
    /// [`Trainer::population_forward`]. Blocking; see [`Trainer::population_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood(&mut self, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        self.population_log_likelihood_members(0..self.config.population, x, layout, rows, targets)
    }

    /// [`Trainer::population_log_likelihood`] with the read-back awaited.
    pub async fn population_log_likelihood_async(
        &mut self, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32],
    ) -> Result<Vec<f32>> {
        self.population_log_likelihood_members_async(0..self.config.population, x, layout, rows, targets).await
    }

    /// [`Trainer::population_log_likelihood`] of members `members` alone, as
    /// [`Trainer::population_forward_members`] runs them: `x` as there, `targets` one class per
    /// row of these members (`members.len()` x rows, member-major); returns `members.len()` x rows
    /// log-likelihoods. Blocking; see [`Trainer::population_log_likelihood_members_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood_members(
        &mut self, members: Range<usize>, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32],
    ) -> Result<Vec<f32>> {
        pollster::block_on(self.population_log_likelihood_members_async(members, x, layout, rows, targets))
    }

    /// [`Trainer::population_log_likelihood_members`] with the read-back awaited.
    pub async fn population_log_likelihood_members_async(
        &mut self, members: Range<usize>, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32],
    ) -> Result<Vec<f32>> {
        let start = crate::clock::clock_ms();
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, Some(targets))?;
        let output = backend.read(output).await?;
        self.add_forward_time(start);
        Ok(output)
    }

    /// The mean model scored against `targets` (one class per row): the log-likelihood of each
    /// row's target, as [`Trainer::population_log_likelihood`]. Blocking; see
    /// [`Trainer::mean_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn mean_log_likelihood(&mut self, x: &[f32], rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        pollster::block_on(self.mean_log_likelihood_async(x, rows, targets))
    }

    /// [`Trainer::mean_log_likelihood`] with the read-back awaited.
    pub async fn mean_log_likelihood_async(&mut self, x: &[f32], rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(Mode::mean(rows)?, x, Some(targets))?;
        Ok(backend.read(output).await?)
    }

    /// Enqueues the forward of `mode` on `x`, scored against `targets` when given; returns the
    /// backend and the buffer that will hold the output (members x rows x outputs, member-major)
    /// or the log-likelihood of each row's target ([`Forward::log_likelihood`], members x rows).
    fn enqueue(&mut self, mode: Mode<f32>, x: &[f32], targets: Option<&[u32]>) -> Result<(&B, &B::Buffer)> {
        let params = self.params.iter().map(|p| (&p.spec, &p.value)).collect();
        let (inputs, outputs) = (self.model.registry().inputs(), self.model.registry().outputs());
        let (mut f, input) = Forward::start(&self.backend, params, &mut self.arenas, mode, x, inputs)?;
        let output = self.model.forward(&mut f, input)?;
        let buffer = match targets {
            Some(targets) => {
                f.check_output(output, outputs)?;
                let scores = f.log_likelihood(output, targets)?;
                f.finish(scores, 1)?
            }
            None => f.finish(output, outputs)?,
        };
        Ok((&self.backend, buffer))
    }
}

/// Asking and telling read no model: a trainer made [`Trainer::from_values`] for a model that
/// runs its own forward (a pretrained transformer's generation) is updated here too.
impl<B: Backend, M> Trainer<B, M, F32> {
    /// The perturbation handles of the current epoch, one per member, so that members can be
    /// evaluated elsewhere (see [`Perturbation::apply`]).
    pub fn ask(&self) -> Vec<Perturbation> {
        (0..self.config.population)
            .map(|member| Perturbation {
                member,
                pair: (member / 2) as u32,
                sign: if member % 2 == 0 { 1.0 } else { -1.0 },
                epoch: self.epoch,
                noise_epoch: self.noise_epoch(),
                seed: self.config.seed,
                sigma: self.config.sigma_at(self.epoch),
                rank: self.config.rank,
                method: self.config.method,
            })
            .collect()
    }

    /// Shapes `raw_fitness` (len N, finite), computes the update of every non-frozen parameter,
    /// applies the optimiser with the scheduled lr and σ, and advances the epoch.
    pub fn tell(&mut self, raw_fitness: &[f32]) -> Result<StepStats> {
        let n = self.config.population;
        if raw_fitness.len() != n {
            return Err(EggrollError::Data(format!("got {} fitness values for a population of {n}", raw_fitness.len())));
        }
        let shaped = shape_fitness(raw_fitness, self.config.group_size, self.config.shaping)?;
        let cfg = &self.config;
        let (lr, sigma) = (cfg.lr_at(self.epoch), cfg.sigma_at(self.epoch));
        let noise_epoch = self.noise_epoch();
        let backend = &self.backend;
        for param in self.params.iter_mut().filter(|p| !p.spec.frozen) {
            let stream = NoiseStream::new(cfg.seed, param.spec.id, noise_epoch);
            let grad = param.grad.as_mut().expect("f32 parameters keep a gradient");
            match (param.spec.kind.low_rank(cfg.rank, sigma), cfg.method) {
                (Some(shape), Method::OpenEs) => backend.full_rank_update(&shaped, LowRankNoise { stream, shape }, grad)?,
                (Some(shape), Method::Eggroll) => backend.lowrank_update(&shaped, LowRankNoise { stream, shape }, grad)?,
                (None, _) => backend.vector_update(&shaped, stream, sigma, grad)?,
            }
            match (&mut param.moments, cfg.optimizer) {
                (Some((m, v)), OptimizerKind::Adam | OptimizerKind::AdamW) => {
                    let weight_decay = if cfg.optimizer == OptimizerKind::AdamW { cfg.weight_decay } else { 0.0 };
                    let p = AdamParams { lr, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay, step: self.epoch + 1 };
                    backend.adam_step(&mut param.value, grad, m, v, p)?;
                }
                _ => backend.sgd_step(&mut param.value, grad, lr)?,
            }
        }
        let stats = fitness_stats(raw_fitness, self.epoch, lr, sigma);
        self.epoch += 1;
        Ok(stats)
    }
}
