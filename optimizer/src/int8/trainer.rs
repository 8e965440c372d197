//! [`IntEggroll`]: integer EGGROLL's trainer.
//!
//! It reads an [`EsConfig`] as follows (docs/int8.md): `population`, `rank`, `seed`,
//! `noise_reuse`, `epochs` as for the f32 trainer; `sigma` is the integer noise scale `2^-t` (a
//! power of two: the noise shift `t`); `lr` is α, the fraction of weights that would move per
//! epoch if the fitness carried no information, on `lr_schedule`; `optimizer` must be `sgd`
//! (the update is a ±1 step, with no optimiser state); `sigma_schedule` must be constant;
//! `method` picks EGGROLL's low-rank noise or OpenES's full-rank noise of the same per-weight
//! distribution (docs/int8.md, "OpenES"), with the same noise shift and update threshold.

use super::forward::{IntArena, IntForward, IntMode};
use super::model::IntModel;
use crate::config::{EsConfig, Method, OptimizerKind, Schedule};
use crate::error::{EggrollError, Result};
use crate::es::StepStats;
use crate::params::{ParamKind, ParamSpec};
use eggroll_backend::int8::{threshold, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::rng::noise_epoch;
use eggroll_backend::{Batch, InputLayout, NoiseStream};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

/// The integer EGGROLL trainer: an [`IntModel`]'s int8 matrices on an [`IntBackend`].
pub struct IntEggroll<B: IntBackend, M: IntModel> {
    backend: B,
    model: M,
    config: EsConfig,
    shift: u32,
    epoch: u32,
    params: Vec<(ParamSpec, B::I8)>,
    arenas: Vec<IntArena<B>>,
}

/// The noise shift `t` of `sigma = 2^-t`, or the error naming the field.
fn noise_shift(config: &EsConfig) -> Result<u32> {
    let bad = |why: String| Err(EggrollError::Config(format!("integer EGGROLL: {why}")));
    let t = -f64::from(config.sigma).log2();
    if !((0.0..=30.0).contains(&t) && t.fract() == 0.0) {
        return bad(format!("sigma must be a power of two 2^-t with t in 0..=30 (the integer noise shift), got {}", config.sigma));
    }
    if config.optimizer != OptimizerKind::Sgd {
        return bad(format!("the update is a ±1 step without optimiser state: optimizer must be sgd, got {}", config.optimizer));
    }
    if config.sigma_schedule != Schedule::Constant {
        return bad("sigma_schedule must be constant (the noise shift is an integer)".into());
    }
    if !(config.lr > 0.0 && config.lr <= 1.0) {
        return bad(format!("lr is α, the fraction of weights a step moves without evidence: it must be in (0, 1], got {}", config.lr));
    }
    Ok(t as u32)
}

impl<B: IntBackend, M: IntModel> IntEggroll<B, M> {
    /// Validates `config` (see the module's documentation), initialises the model's matrices from
    /// `config.seed` and uploads them.
    pub fn new(backend: B, model: M, config: EsConfig) -> Result<Self> {
        config.validate()?;
        let shift = noise_shift(&config)?;
        let mut params = Vec::new();
        for (spec, values) in model.init_params(config.seed) {
            if let ParamKind::Vector { .. } = spec.kind {
                return Err(EggrollError::Config(format!("integer models hold matrices only; `{}` is a vector", spec.name)));
            }
            params.push((backend.upload_i8(&values)?, spec));
        }
        let params = params.into_iter().map(|(t, s)| (s, t)).collect();
        Ok(Self { backend, model, config, shift, epoch: 0, params, arenas: Vec::new() })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The configuration.
    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Replaces the model by one with the same parameters (names, ids, shapes), e.g. another
    /// window length; refused otherwise.
    pub fn set_model(&mut self, model: M) -> Result<()> {
        let new = model.registry();
        let same = new.specs().len() == self.params.len()
            && new.specs().iter().zip(&self.params).all(|(n, (o, _))| (&n.name, n.id, n.kind) == (&o.name, o.id, o.kind));
        if !same {
            return Err(EggrollError::Config("the new model's parameters differ from the trainer's".into()));
        }
        self.model = model;
        Ok(())
    }

    /// Epochs told so far (or restored).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The matrices in id order.
    pub fn specs(&self) -> Vec<ParamSpec> {
        self.params.iter().map(|(s, _)| s.clone()).collect()
    }

    /// α at the current epoch.
    pub fn alpha(&self) -> f32 {
        self.config.lr_at(self.epoch)
    }

    fn noise_epoch(&self) -> u32 {
        noise_epoch(self.epoch, self.config.noise_reuse)
    }

    /// Every member's log-likelihood of each row's target (N x rows, member-major, in units of
    /// 2^-16 bits) at the current epoch's noise: `tokens` are the model input (`rows` ids shared
    /// by all, or `N x rows` with [`InputLayout::PerMember`]), `targets` one class per output row.
    /// Blocking; see [`IntEggroll::population_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn population_log_likelihood(&mut self, tokens: &[u32], layout: InputLayout, rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let mode = self.population_mode(layout, rows)?;
        let scores = scored(&self.backend, &self.model, &self.params, &mut self.arenas, mode, tokens, targets)?;
        Ok(self.backend.read_i32_blocking(scores)?)
    }

    /// [`IntEggroll::population_log_likelihood`] with the read-back awaited.
    pub async fn population_log_likelihood_async(
        &mut self,
        tokens: &[u32],
        layout: InputLayout,
        rows: usize,
        targets: &[u32],
    ) -> Result<Vec<i32>> {
        let mode = self.population_mode(layout, rows)?;
        let scores = scored(&self.backend, &self.model, &self.params, &mut self.arenas, mode, tokens, targets)?;
        Ok(self.backend.read_i32(scores).await?)
    }

    /// The mean model's log-likelihood of each row's target (units of 2^-16 bits). Blocking; see
    /// [`IntEggroll::mean_log_likelihood_async`].
    #[cfg(feature = "native")]
    pub fn mean_log_likelihood(&mut self, tokens: &[u32], rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let scores = scored(&self.backend, &self.model, &self.params, &mut self.arenas, mean_mode(rows)?, tokens, targets)?;
        Ok(self.backend.read_i32_blocking(scores)?)
    }

    /// [`IntEggroll::mean_log_likelihood`] with the read-back awaited.
    pub async fn mean_log_likelihood_async(&mut self, tokens: &[u32], rows: usize, targets: &[u32]) -> Result<Vec<i32>> {
        let scores = scored(&self.backend, &self.model, &self.params, &mut self.arenas, mean_mode(rows)?, tokens, targets)?;
        Ok(self.backend.read_i32(scores).await?)
    }

    /// The mean model's int8 logits (rows x classes, 4 fractional bits of bits). Blocking; see
    /// [`IntEggroll::mean_logits_async`].
    #[cfg(feature = "native")]
    pub fn mean_logits(&mut self, tokens: &[u32], rows: usize) -> Result<Vec<i8>> {
        let logits = logits(&self.backend, &self.model, &self.params, &mut self.arenas, mean_mode(rows)?, tokens)?;
        Ok(self.backend.read_i8_blocking(logits)?)
    }

    /// [`IntEggroll::mean_logits`] with the read-back awaited.
    pub async fn mean_logits_async(&mut self, tokens: &[u32], rows: usize) -> Result<Vec<i8>> {
        let logits = logits(&self.backend, &self.model, &self.params, &mut self.arenas, mean_mode(rows)?, tokens)?;
        Ok(self.backend.read_i8(logits).await?)
    }

    /// The population forward's mode at the current epoch, checked.
    fn population_mode(&self, layout: InputLayout, rows: usize) -> Result<IntMode> {
        let batch = Batch { population: self.config.population, rows, input: layout, first_member: 0 };
        batch.validate()?;
        Ok(IntMode::Population {
            batch,
            seed: self.config.seed,
            noise_epoch: self.noise_epoch(),
            rank: self.config.rank,
            shift: self.shift,
            method: self.config.method,
        })
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
        for (spec, w) in &mut self.params {
            let ParamKind::Matrix { m, n } = spec.kind else { unreachable!("checked by new") };
            let rank = self.config.rank.min(m).min(n);
            let noise = IntNoise { stream: NoiseStream::new(self.config.seed, spec.id, noise_epoch), rank, shift: self.shift };
            // Under either method Z has the variance nonzero · rank · 42.5² without evidence.
            let tau = threshold(f64::from(alpha), nonzero, rank);
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
            lr: alpha,
            sigma: self.config.sigma,
        };
        self.epoch += 1;
        Ok(stats)
    }

    /// The matrices as a safetensors file: each as I8 under its name, shaped `[m, n]`, no
    /// metadata (the epoch is kept beside it, as for the f32 trainer's state). Blocking; see
    /// [`IntEggroll::to_safetensors_async`].
    #[cfg(feature = "native")]
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let values = self.params.iter().map(|(_, t)| self.backend.read_i8_blocking(t)).collect::<eggroll_backend::Result<Vec<_>>>()?;
        self.encode(values)
    }

    /// [`IntEggroll::to_safetensors`] with the read-backs awaited.
    pub async fn to_safetensors_async(&self) -> Result<Vec<u8>> {
        let mut values = Vec::with_capacity(self.params.len());
        for (_, t) in &self.params {
            values.push(self.backend.read_i8(t).await?);
        }
        self.encode(values)
    }

    /// The safetensors file of the matrices' `values`, in id order.
    fn encode(&self, values: Vec<Vec<i8>>) -> Result<Vec<u8>> {
        let failed = |e: safetensors::SafeTensorError| EggrollError::Data(format!("cannot encode the trainer state: {e}"));
        let bytes: Vec<Vec<u8>> = values.into_iter().map(|v| v.into_iter().map(|b| b as u8).collect()).collect();
        let views = self
            .params
            .iter()
            .zip(&bytes)
            .map(|((spec, _), b)| {
                let ParamKind::Matrix { m, n } = spec.kind else { unreachable!("checked by new") };
                Ok((spec.name.as_str(), TensorView::new(Dtype::I8, vec![m, n], b)?))
            })
            .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(failed)?;
        safetensors::serialize(views, None).map_err(failed)
    }

    /// Restores the matrices from a file of [`IntEggroll::to_safetensors`] as the state of
    /// `epoch`: [`EggrollError::CorruptState`] when the bytes are not such a file (not
    /// safetensors, a tensor not I8, a value of -128), [`EggrollError::Checkpoint`] when its
    /// tensors are not this model's (a name missing or extra, another shape).
    pub fn restore_safetensors(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| EggrollError::CorruptState(e.to_string()))?;
        let mut values = Vec::new();
        for (spec, _) in &self.params {
            let view = st.tensor(&spec.name).map_err(|_| EggrollError::Checkpoint(format!("no tensor `{}`", spec.name)))?;
            if view.dtype() != Dtype::I8 {
                return Err(EggrollError::CorruptState(format!("tensor `{}` is {:?}, not I8", spec.name, view.dtype())));
            }
            let ParamKind::Matrix { m, n } = spec.kind else { unreachable!("checked by new") };
            if view.shape() != [m, n] {
                return Err(EggrollError::Checkpoint(format!(
                    "tensor `{}` has shape {:?}, the model needs [{m}, {n}]",
                    spec.name,
                    view.shape()
                )));
            }
            let data: Vec<i8> = view.data().iter().map(|&b| b as i8).collect();
            if data.contains(&i8::MIN) {
                return Err(EggrollError::CorruptState(format!("tensor `{}` holds -128", spec.name)));
            }
            values.push(data);
        }
        if st.len() != self.params.len() {
            let extra = st.names().into_iter().find(|n| !self.params.iter().any(|(s, _)| s.name == *n)).unwrap_or_default();
            return Err(EggrollError::Checkpoint(format!("tensor `{extra}` is not a parameter of the model")));
        }
        for ((_, t), data) in self.params.iter_mut().zip(values) {
            self.backend.write_i8(t, &data)?;
        }
        self.epoch = epoch;
        Ok(())
    }
}

/// The mean model's mode on `rows` rows, checked.
fn mean_mode(rows: usize) -> Result<IntMode> {
    if rows == 0 {
        return Err(EggrollError::Data("rows must be > 0".into()));
    }
    Ok(IntMode::Mean { rows })
}

/// Enqueues `model`'s forward of `mode` on `tokens`; returns the tensor of its logits.
fn logits<'a, B: IntBackend, M: IntModel>(
    backend: &'a B,
    model: &M,
    params: &'a [(ParamSpec, B::I8)],
    arenas: &'a mut Vec<IntArena<B>>,
    mode: IntMode,
    tokens: &'a [u32],
) -> Result<&'a B::I8> {
    let params = params.iter().map(|(s, t)| (s, t)).collect();
    let mut f = IntForward::start(backend, params, arenas, mode, tokens)?;
    let logits = model.forward(&mut f)?;
    Ok(f.finish(logits))
}

/// Enqueues `model`'s forward of `mode` on `tokens`, scored against `targets`; returns the tensor
/// of the per-row log-likelihoods.
fn scored<'a, B: IntBackend, M: IntModel>(
    backend: &'a B,
    model: &M,
    params: &'a [(ParamSpec, B::I8)],
    arenas: &'a mut Vec<IntArena<B>>,
    mode: IntMode,
    tokens: &'a [u32],
    targets: &[u32],
) -> Result<&'a B::I32> {
    let params = params.iter().map(|(s, t)| (s, t)).collect();
    let mut f = IntForward::start(backend, params, arenas, mode, tokens)?;
    let logits = model.forward(&mut f)?;
    if logits.width() != model.classes() {
        return Err(EggrollError::Config(format!(
            "the model's forward gives {} logits, it declares {} classes",
            logits.width(),
            model.classes()
        )));
    }
    f.finish_scored(logits, targets)
}
