//! The EGGROLL optimiser: population forward, ask/tell, and the update.
//!
//! Conventions: `W` is m x n and `y = x Wᵀ`; member i belongs to antithetic pair `i / 2` with sign
//! `+1` (even i) or `-1` (odd i); the noise of parameter `id` at epoch t comes from
//! `NoiseStream::new(seed, id, noise_epoch(t, noise_reuse))`. Matrices get the low-rank
//! perturbation `s_i (σ/√r) A_i B_iᵀ` (rank clamped to `min(m, n)`), vectors the full-rank
//! `s_i σ ε_i`. The update of a matrix is `G = (σ/√r)/√N Σ_i f_i s_i A_i B_iᵀ` (vectors:
//! `σ/√N Σ_i f_i s_i ε_i`) with `f` the shaped fitness; SGD ascends `θ += lr G`, Adam/AdamW
//! descend on `-G`.
//!
//! With [`Method::OpenEs`] (OpenAI-style ES, the baseline EGGROLL is compared against) a matrix
//! instead gets the full-rank `s_i σ E_i`, `E_i` (m x n) draws `0 .. m n` of pair `i / 2`'s stream
//! row-major, and its update is `σ/√N Σ_i f_i s_i E_i`: a vector's, over the matrix's m n draws.
//! Shaping, optimisers and checkpoints are the same.

mod forward;
mod perturbation;
mod state;

pub use perturbation::Perturbation;
pub use state::TrainerState;

use crate::config::{EsConfig, Method, OptimizerKind};
use crate::error::{EggrollError, Result};
use crate::forward::{Arena, Mode};
use crate::model::{Mlp, Model};
use crate::params::{ParamKind, ParamSpec};
use crate::shaping::shape_fitness;
use eggroll_backend::rng::noise_epoch;
use eggroll_backend::{AdamParams, Backend, Batch, InputLayout, LowRank, LowRankNoise, NoiseStream};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A parameter's device buffers: value, gradient estimate and, for Adam, the two moments.
pub(crate) struct Slot<B: Backend> {
    spec: ParamSpec,
    value: B::Buffer,
    grad: B::Buffer,
    moments: Option<(B::Buffer, B::Buffer)>,
}

/// What one [`Eggroll::tell`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// The epoch the fitness belonged to (the trainer is now at `epoch + 1`).
    pub epoch: u32,
    /// Mean raw fitness.
    pub mean_fitness: f32,
    /// Best raw fitness.
    pub max_fitness: f32,
    /// Worst raw fitness.
    pub min_fitness: f32,
    /// Standard deviation of the raw fitness.
    pub fitness_std: f32,
    /// Learning rate used.
    pub lr: f32,
    /// σ used.
    pub sigma: f32,
}

/// The EGGROLL trainer: a model's parameters and optimiser state on a backend. Generic over the
/// [`Model`]; [`Mlp`] by default.
pub struct Eggroll<B: Backend, M: Model = Mlp> {
    backend: B,
    model: M,
    config: EsConfig,
    epoch: u32,
    slots: Vec<Slot<B>>,
    arenas: Vec<Arena<B>>,
}

impl<B: Backend, M: Model> Eggroll<B, M> {
    /// Validates `config`, initialises the parameters of `model` from `config.seed`
    /// ([`Model::init_params`]) and uploads them with zeroed gradients and moments.
    pub fn new(backend: B, model: M, config: EsConfig) -> Result<Self> {
        config.validate()?;
        let adam = config.optimizer != OptimizerKind::Sgd;
        let mut slots = Vec::new();
        for (spec, values) in model.init_params(config.seed) {
            let moments = if adam { Some((backend.zeros(values.len())?, backend.zeros(values.len())?)) } else { None };
            slots.push(Slot { value: backend.upload(&values)?, grad: backend.zeros(values.len())?, moments, spec });
        }
        Ok(Self { backend, model, config, epoch: 0, slots, arenas: Vec::new() })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend back, for another trainer or other work on the same device; the parameters
    /// and optimiser state are dropped (save them first with [`Eggroll::state`]).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// The configuration.
    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Replaces the model by `model`, which must declare the same parameters (names, ids and
    /// shapes): for settings that are not parameters, such as the sequence length a recurrent
    /// model's forward splits its rows into. Refused, naming the first difference, otherwise.
    pub fn set_model(&mut self, model: M) -> Result<()> {
        let new = model.registry();
        let (new, old) = (new.specs(), &self.slots);
        if new.len() != old.len() {
            return Err(EggrollError::Config(format!("the new model has {} parameters, the trainer's {}", new.len(), old.len())));
        }
        for (n, o) in new.iter().zip(old) {
            if (&n.name, n.id, n.kind) != (&o.spec.name, o.spec.id, o.spec.kind) {
                return Err(EggrollError::Config(format!(
                    "the new model's parameter {} is `{}` {:?}, the trainer's `{}` {:?}",
                    n.id, n.name, n.kind, o.spec.name, o.spec.kind
                )));
            }
        }
        self.model = model;
        Ok(())
    }

    /// The current epoch: the number of [`Eggroll::tell`]s so far (or restored).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The parameters in id order.
    pub fn specs(&self) -> Vec<ParamSpec> {
        self.slots.iter().map(|s| s.spec.clone()).collect()
    }

    /// Freezes (no noise, no update) or unfreezes the parameter called `name`.
    pub fn set_frozen(&mut self, name: &str, frozen: bool) -> Result<()> {
        let slot = self.slots.iter_mut().find(|s| s.spec.name == name);
        let slot = slot.ok_or_else(|| EggrollError::Config(format!("no parameter called `{name}`")))?;
        slot.spec.frozen = frozen;
        Ok(())
    }

    /// The whole population's forward on the backend (batched perturbed matmuls, no per-member
    /// host loop) at the current epoch's noise and σ: `x` is rows x inputs
    /// ([`InputLayout::Shared`]) or N x rows x inputs ([`InputLayout::PerMember`]); returns
    /// N x rows x outputs on the host. Blocking; [`Eggroll::population_forward_async`] awaits the
    /// read-back instead (the browser cannot block).
    #[cfg(feature = "native")]
    pub fn population_forward(&mut self, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        self.population_forward_members(0..self.config.population, x, layout, rows)
    }

    /// [`Eggroll::population_forward`] with the read-back awaited.
    pub async fn population_forward_async(&mut self, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        self.population_forward_members_async(0..self.config.population, x, layout, rows).await
    }

    /// The forward of members `members` of the population alone, each with the noise and sign it
    /// has in the whole population, so that a worker can evaluate its slice of the population on
    /// its own device: the rows are those [`Eggroll::population_forward`] gives these members
    /// (bit for bit on the CPU backend). `members` must be whole pairs (even start and end) within
    /// `0..N`; `x` is rows x inputs ([`InputLayout::Shared`]) or, for
    /// [`InputLayout::PerMember`], these members' rows only (`members.len()` x rows x inputs).
    /// Returns `members.len()` x rows x outputs. Blocking; see
    /// [`Eggroll::population_forward_members_async`].
    #[cfg(feature = "native")]
    pub fn population_forward_members(&mut self, members: Range<usize>, x: &[f32], layout: InputLayout, rows: usize) -> Result<Vec<f32>> {
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, None)?;
        Ok(backend.read_blocking(output)?)
    }

    /// [`Eggroll::population_forward_members`] with the read-back awaited.
    pub async fn population_forward_members_async(
        &mut self,
        members: Range<usize>,
        x: &[f32],
        layout: InputLayout,
        rows: usize,
    ) -> Result<Vec<f32>> {
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, None)?;
        Ok(backend.read(output).await?)
    }

    /// The unperturbed (mean) model on `rows` x inputs; returns rows x outputs. Blocking; see
    /// [`Eggroll::forward_mean_async`].
    #[cfg(feature = "native")]
    pub fn forward_mean(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(mean_mode(rows)?, x, None)?;
        Ok(backend.read_blocking(output)?)
    }

    /// [`Eggroll::forward_mean`] with the read-back awaited.
    pub async fn forward_mean_async(&mut self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(mean_mode(rows)?, x, None)?;
        Ok(backend.read(output).await?)
    }

    /// The population forward scored against `targets` on the backend: for each of the
    /// N x rows output rows (member-major), the log-likelihood `log softmax(y_row)[target]` of its
    /// target class in `0..outputs`, so that a classifier or language model's fitness reads back
    /// one value per row instead of its logits. `x` and `layout` as in
    /// [`Eggroll::population_forward`]. Blocking; see [`Eggroll::population_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood(&mut self, x: &[f32], layout: InputLayout, rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        self.population_log_likelihood_members(0..self.config.population, x, layout, rows, targets)
    }

    /// [`Eggroll::population_log_likelihood`] with the read-back awaited.
    pub async fn population_log_likelihood_async(
        &mut self,
        x: &[f32],
        layout: InputLayout,
        rows: usize,
        targets: &[u32],
    ) -> Result<Vec<f32>> {
        self.population_log_likelihood_members_async(0..self.config.population, x, layout, rows, targets).await
    }

    /// [`Eggroll::population_log_likelihood`] of members `members` alone, as
    /// [`Eggroll::population_forward_members`] runs them: `x` as there, `targets` one class per
    /// row of these members (`members.len()` x rows, member-major); returns `members.len()` x rows
    /// log-likelihoods. Blocking; see [`Eggroll::population_log_likelihood_members_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood_members(
        &mut self,
        members: Range<usize>,
        x: &[f32],
        layout: InputLayout,
        rows: usize,
        targets: &[u32],
    ) -> Result<Vec<f32>> {
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, Some(targets))?;
        Ok(backend.read_blocking(output)?)
    }

    /// [`Eggroll::population_log_likelihood_members`] with the read-back awaited.
    pub async fn population_log_likelihood_members_async(
        &mut self,
        members: Range<usize>,
        x: &[f32],
        layout: InputLayout,
        rows: usize,
        targets: &[u32],
    ) -> Result<Vec<f32>> {
        let mode = self.population_mode(members, layout, rows)?;
        let (backend, output) = self.enqueue(mode, x, Some(targets))?;
        Ok(backend.read(output).await?)
    }

    /// The mean model scored against `targets` (one class per row): the log-likelihood of each
    /// row's target, as [`Eggroll::population_log_likelihood`]. Blocking; see
    /// [`Eggroll::mean_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn mean_log_likelihood(&mut self, x: &[f32], rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(mean_mode(rows)?, x, Some(targets))?;
        Ok(backend.read_blocking(output)?)
    }

    /// [`Eggroll::mean_log_likelihood`] with the read-back awaited.
    pub async fn mean_log_likelihood_async(&mut self, x: &[f32], rows: usize, targets: &[u32]) -> Result<Vec<f32>> {
        let (backend, output) = self.enqueue(mean_mode(rows)?, x, Some(targets))?;
        Ok(backend.read(output).await?)
    }

    /// The mode of the forward of `members` of the population at the current epoch, checked:
    /// whole pairs (even start and end), at least one, within `0..N`.
    fn population_mode(&self, members: Range<usize>, layout: InputLayout, rows: usize) -> Result<Mode> {
        let n = self.config.population;
        let Range { start, end } = members;
        if start >= end || end > n || !start.is_multiple_of(2) || !end.is_multiple_of(2) {
            return Err(EggrollError::Data(format!(
                "members {start}..{end}: a range of whole antithetic pairs (even start and end, start < end) within the population 0..{n}"
            )));
        }
        let batch = Batch { population: end - start, rows, input: layout, first_member: start };
        batch.validate()?;
        Ok(Mode::Population {
            batch,
            seed: self.config.seed,
            noise_epoch: self.noise_epoch(),
            rank: self.config.rank,
            sigma: self.config.sigma_at(self.epoch),
            method: self.config.method,
        })
    }

    /// Enqueues the forward of `mode` on `x`, scored against `targets` when given; returns the
    /// backend and the buffer to read.
    fn enqueue(&mut self, mode: Mode, x: &[f32], targets: Option<&[u32]>) -> Result<(&B, &B::Buffer)> {
        let output = forward::run(&self.backend, &self.model, &self.slots, &mut self.arenas, mode, x, targets)?;
        Ok((&self.backend, output))
    }

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
        for slot in self.slots.iter_mut().filter(|s| !s.spec.frozen) {
            let stream = NoiseStream::new(cfg.seed, slot.spec.id, noise_epoch);
            match (slot.spec.kind, cfg.method) {
                // OpenES: E_i holds the same draws as a vector of m n values (row-major).
                (ParamKind::Matrix { .. }, Method::OpenEs) => backend.vector_update(&shaped, stream, sigma, &mut slot.grad)?,
                (ParamKind::Matrix { m, n }, Method::Eggroll) => {
                    let shape = LowRank { m, n, rank: cfg.rank.min(m).min(n), sigma };
                    backend.lowrank_update(&shaped, LowRankNoise { stream, shape }, &mut slot.grad)?;
                }
                (ParamKind::Vector { .. }, _) => backend.vector_update(&shaped, stream, sigma, &mut slot.grad)?,
            }
            match (&mut slot.moments, cfg.optimizer) {
                (Some((m, v)), OptimizerKind::Adam | OptimizerKind::AdamW) => {
                    let weight_decay = if cfg.optimizer == OptimizerKind::AdamW { cfg.weight_decay } else { 0.0 };
                    let p = AdamParams { lr, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay, step: self.epoch + 1 };
                    backend.adam_step(&mut slot.value, &slot.grad, m, v, p)?;
                }
                _ => backend.sgd_step(&mut slot.value, &slot.grad, lr)?,
            }
        }
        let stats = fitness_stats(raw_fitness, self.epoch, lr, sigma);
        self.epoch += 1;
        Ok(stats)
    }

    /// The noise epoch of the current epoch.
    fn noise_epoch(&self) -> u32 {
        noise_epoch(self.epoch, self.config.noise_reuse)
    }
}

/// The mean model's mode on `rows` rows, checked.
fn mean_mode(rows: usize) -> Result<Mode> {
    if rows == 0 {
        return Err(EggrollError::Data("rows must be > 0".into()));
    }
    Ok(Mode::Mean { rows })
}

/// Summary statistics of the raw fitness.
fn fitness_stats(raw: &[f32], epoch: u32, lr: f32, sigma: f32) -> StepStats {
    let n = raw.len() as f64;
    let mean = raw.iter().map(|&f| f64::from(f)).sum::<f64>() / n;
    let var = raw.iter().map(|&f| (f64::from(f) - mean).powi(2)).sum::<f64>() / n;
    StepStats {
        epoch,
        mean_fitness: mean as f32,
        max_fitness: raw.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        min_fitness: raw.iter().copied().fold(f32::INFINITY, f32::min),
        fitness_std: var.sqrt() as f32,
        lr,
        sigma,
    }
}
