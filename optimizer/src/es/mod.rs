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
//! With [`Method::OpenEs`](crate::config::Method::OpenEs) (OpenAI-style ES, the baseline EGGROLL is compared against) a matrix
//! instead gets the full-rank `s_i σ E_i`, `E_i` (m x n) draws `0 .. m n` of pair `i / 2`'s stream
//! row-major, and its update is `σ/√N Σ_i f_i s_i E_i`: a vector's, over the matrix's m n draws.
//! Shaping, optimisers and checkpoints are the same.

mod float;
mod int8;
mod perturbation;
mod state;
mod trains;

pub use perturbation::Perturbation;
pub use state::TrainerState;
pub use trains::Trains;

use crate::config::EsConfig;
use crate::error::{EggrollError, Result};
use crate::format::{Element, Int8, Tensors, F32};
use crate::forward::{Arena, Forward, Mode};
use crate::model::Mlp;
use crate::params::{ParamKind, ParamSpec};
use eggroll_backend::rng::noise_epoch;
use eggroll_backend::{Backend, Batch, InputLayout};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A parameter's device tensors: its value and, in formats with an optimiser state, the
/// gradient estimate and the two Adam moments.
pub(crate) struct Param<T> {
    spec: ParamSpec,
    value: T,
    grad: Option<T>,
    moments: Option<(T, T)>,
}

/// What one [`FloatTrainer::tell`] did.
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

/// The trainer: a model's parameters and optimiser state on a backend, in the number format `F`
/// ([`F32`]: EGGROLL; [`Int8`]: integer EGGROLL). The configuration, the epoch, the parameters
/// and their checkpoints, the model's forward and its arenas are the same for every format; the
/// update ([`Trainer::tell`]) and what a forward reads back are the format's.
pub struct Trainer<B: Backend, M, F: Tensors<B>> {
    backend: B,
    model: M,
    config: EsConfig,
    settings: F::Settings,
    epoch: u32,
    params: Vec<Param<F::Tensor>>,
    arenas: Vec<Arena<B, F>>,
    /// Milliseconds spent in population forwards, read-backs included.
    forward_ms: f64,
}

/// The EGGROLL trainer on f32 parameters, generic over the [`crate::Model`]; [`Mlp`] by default.
pub type FloatTrainer<B, M = Mlp> = Trainer<B, M, F32>;

/// The integer EGGROLL trainer: an [`crate::int8::IntModel`]'s int8 matrices (docs/int8.md).
pub type IntTrainer<B, M> = Trainer<B, M, Int8>;

impl<B: Backend, M, F: Trains<B, M>> Trainer<B, M, F> {
    /// Validates `config` (and what the format reads from it), initialises the parameters of
    /// `model` from `config.seed` and uploads them with zeroed optimiser state.
    pub fn new(backend: B, model: M, config: EsConfig) -> Result<Self> {
        config.validate()?;
        let values = F::init(&model, config.seed)?;
        Self::upload(backend, model, config, values)
    }

    /// The trainer of `model` with every parameter and optimiser tensor zeroed, its initial values
    /// not drawn: for a memory plan on a metering backend.
    pub(crate) fn zeroed(backend: B, model: M, config: EsConfig) -> Result<Self> {
        let settings = F::settings(&config)?;
        let moments = F::has_moments(&config);
        let mut params = Vec::new();
        for spec in F::registry(&model).specs() {
            let len = spec.kind.len();
            let moments = if moments { Some((F::zeros(&backend, len)?, F::zeros(&backend, len)?)) } else { None };
            let grad = if F::GRADIENT { Some(F::zeros(&backend, len)?) } else { None };
            params.push(Param { spec: spec.clone(), value: F::zeros(&backend, len)?, grad, moments });
        }
        Ok(Self { backend, model, config, settings, epoch: 0, params, arenas: Vec::new(), forward_ms: 0.0 })
    }

    /// Runs the forward of `members` of the population (`None`: the mean model) on `rows` rows of
    /// zeros in the shared layout, keeping its arena: what a memory plan measures on a metering
    /// backend.
    pub(crate) fn forward_zeros(&mut self, members: Option<usize>, rows: usize) -> Result<()> {
        let mode = match members {
            Some(members) => self.population_mode(0..members, InputLayout::Shared, rows)?,
            None => Mode::mean(rows)?,
        };
        let params = self.params.iter().map(|p| (&p.spec, &p.value)).collect();
        let (mut f, x) = Forward::start_zeros(&self.backend, params, &mut self.arenas, mode, F::input(&self.model))?;
        F::forward(&self.model, &mut f, x)?;
        Ok(())
    }

    /// Replaces the model by `model`, which must declare the same parameters (names, ids and
    /// shapes): for settings that are not parameters, such as the sequence length a recurrent
    /// model's forward splits its rows into. Refused, naming the first difference, otherwise.
    pub fn set_model(&mut self, model: M) -> Result<()> {
        let new = F::registry(&model);
        let (new, old) = (new.specs(), &self.params);
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
}

impl<B: Backend, M, F: Tensors<B>> Trainer<B, M, F> {
    /// Validates `config` and uploads `values` (each parameter's spec and values, e.g. a
    /// pretrained model's) with zeroed optimiser state: a trainer that starts from given values
    /// rather than from ones drawn from the seed. `model` is whatever the caller runs the
    /// parameters with; a population forward through the trainer needs a [`crate::Model`].
    /// Refuses a parameter whose values disagree with its shape or are invalid, and a name or
    /// noise id given twice.
    pub fn from_values(backend: B, model: M, config: EsConfig, values: Vec<(ParamSpec, Vec<F::Value>)>) -> Result<Self> {
        config.validate()?;
        for (i, (spec, data)) in values.iter().enumerate() {
            if data.len() != spec.kind.len() {
                return Err(EggrollError::Config(format!(
                    "parameter `{}` has {} values, its shape {:?} holds {}",
                    spec.name,
                    data.len(),
                    spec.kind,
                    spec.kind.len()
                )));
            }
            if let Some((at, why)) = data.iter().enumerate().find_map(|(at, v)| v.invalid().map(|why| (at, why))) {
                return Err(EggrollError::Config(format!("parameter `{}`: value {at} {why}", spec.name)));
            }
            if let Some((other, _)) =
                values[..i].iter().find(|(p, _)| p.name == spec.name || (p.id == spec.id && !pieces_of_one_matrix(p.kind, spec.kind)))
            {
                return Err(EggrollError::Config(format!(
                    "parameters `{}` (id {}) and `{}` (id {}) share a name or a noise id",
                    other.name, other.id, spec.name, spec.id
                )));
            }
        }
        Self::upload(backend, model, config, values)
    }

    /// Uploads `values` with zeroed optimiser state, `config` already validated.
    fn upload(backend: B, model: M, config: EsConfig, values: Vec<(ParamSpec, Vec<F::Value>)>) -> Result<Self> {
        let settings = F::settings(&config)?;
        let moments = F::has_moments(&config);
        let mut params = Vec::with_capacity(values.len());
        for (spec, values) in values {
            let len = values.len();
            let moments = if moments { Some((F::zeros(&backend, len)?, F::zeros(&backend, len)?)) } else { None };
            let value = F::upload(&backend, &values)?;
            let grad = if F::GRADIENT { Some(F::zeros(&backend, len)?) } else { None };
            params.push(Param { spec, value, grad, moments });
        }
        Ok(Self { backend, model, config, settings, epoch: 0, params, arenas: Vec::new(), forward_ms: 0.0 })
    }

    /// Each parameter's spec and its current value on the backend, in the order they were
    /// given: what a caller that runs the model itself reads the weights from.
    pub fn values(&self) -> impl Iterator<Item = (&ParamSpec, &F::Tensor)> {
        self.params.iter().map(|p| (&p.spec, &p.value))
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend back, for another trainer or other work on the same device; the parameters
    /// and optimiser state are dropped (save them first with [`Trainer::state`]).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// The configuration.
    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// What the format reads from the configuration (int8: the noise shift).
    pub fn settings(&self) -> F::Settings {
        self.settings
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The current epoch: the number of [`Trainer::tell`]s so far (or restored).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The parameters in id order.
    pub fn specs(&self) -> Vec<ParamSpec> {
        self.params.iter().map(|p| p.spec.clone()).collect()
    }

    /// Freezes (no noise, no update) or unfreezes the parameter called `name`.
    pub fn set_frozen(&mut self, name: &str, frozen: bool) -> Result<()> {
        let param = self.params.iter_mut().find(|p| p.spec.name == name);
        let param = param.ok_or_else(|| EggrollError::Config(format!("no parameter called `{name}`")))?;
        param.spec.frozen = frozen;
        Ok(())
    }

    /// Milliseconds this trainer has spent in population forwards so far, their read-backs
    /// included (0 where the build has no clock: a browser).
    pub fn forward_ms(&self) -> f64 {
        self.forward_ms
    }

    /// Adds the time since `start` (`clock::clock_ms`) to the population forwards' time.
    fn add_forward_time(&mut self, start: Option<f64>) {
        if let (Some(start), Some(now)) = (start, crate::clock::clock_ms()) {
            self.forward_ms += now - start;
        }
    }

    /// The noise epoch of the current epoch.
    fn noise_epoch(&self) -> u32 {
        noise_epoch(self.epoch, self.config.noise_reuse)
    }

    /// The noise scale of the current epoch.
    fn scale(&self) -> F::Scale {
        F::scale(&self.config, self.settings, self.epoch)
    }

    /// The mode of the forward of `members` of the population at the current epoch, checked:
    /// whole pairs (even start and end), at least one, within `0..N`.
    fn population_mode(&self, members: Range<usize>, layout: InputLayout, rows: usize) -> Result<Mode<F::Scale>> {
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
            scale: self.scale(),
            method: self.config.method,
        })
    }
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

/// Whether `a` and `b` are disjoint pieces of rows of one matrix (the same width and rows),
/// which share its noise id.
fn pieces_of_one_matrix(a: ParamKind, b: ParamKind) -> bool {
    match (a, b) {
        (ParamKind::Rows { m: ma, n: na, first: fa, rows: ra }, ParamKind::Rows { m: mb, n: nb, first: fb, rows: rb }) => {
            na == nb && ra == rb && (fa + ma <= fb || fb + mb <= fa)
        }
        _ => false,
    }
}
