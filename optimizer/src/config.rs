//! Hyperparameters of an EGGROLL run ([`EsConfig`]) and their validation.

use crate::error::{EggrollError, Result};
use eggroll_backend::{Batch, InputLayout};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The optimiser that turns the ES gradient estimate `G` into a parameter update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain ascent `θ += lr G`.
    Sgd,
    /// Adam on the loss `-G`.
    Adam,
    /// Adam with decoupled weight decay [`EsConfig::weight_decay`].
    AdamW,
}

/// How the population is perturbed and the update estimated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// EGGROLL: each matrix gets the low-rank perturbation `s_i (σ/√r) A_i B_iᵀ`.
    #[default]
    Eggroll,
    /// OpenAI-style ES: each matrix gets the full-rank perturbation `s_i σ E_i`, materialised per
    /// member ([`eggroll_backend::Backend::full_rank_matmul`]; an embedding table's looked-up
    /// rows only, [`eggroll_backend::Backend::full_rank_embedding`]); the baseline EGGROLL is
    /// compared against.
    OpenEs,
}

/// How a hyperparameter evolves over [`EsConfig::epochs`]: its value at epoch `t` is the base
/// value times [`Schedule::factor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Always the base value.
    Constant,
    /// Linear decay to 0 at `epochs`: factor `1 - t/epochs`.
    Linear,
    /// Cosine decay to 0 at `epochs`: factor `(1 + cos(π t/epochs)) / 2`.
    Cosine,
}

impl Schedule {
    /// The multiplier at `epoch` of a run of `epochs` epochs (0 from `epochs` on when decaying).
    pub fn factor(self, epoch: u32, epochs: u32) -> f32 {
        let progress = if epochs == 0 { 1.0 } else { (f64::from(epoch) / f64::from(epochs)).min(1.0) };
        let factor = match self {
            Schedule::Constant => 1.0,
            Schedule::Linear => 1.0 - progress,
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        };
        factor as f32
    }
}

/// How raw fitness is turned into the weights of the gradient estimate (see [`crate::shaping`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shaping {
    /// `(f - mean) / sqrt(var + 1e-5)`, per group when `group_size > 0`.
    ZScore,
    /// Centered ranks in `[-0.5, 0.5]`, per group when `group_size > 0`.
    CenteredRank,
    /// `f - mean`, per group when `group_size > 0`: the fitness keeps its scale, so an epoch whose
    /// members barely differ takes a small step.
    Centered,
}

/// `FromStr` and `Display` through the serde names (`"sgd"`, `"linear"`, `"zscore"`, ...).
macro_rules! serde_names {
    ($($ty:ty),*) => {$(
        impl FromStr for $ty {
            type Err = EggrollError;
            fn from_str(s: &str) -> Result<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
                    .map_err(|e| EggrollError::Config(format!("`{s}`: {e}")))
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match serde_json::to_value(self) {
                    Ok(serde_json::Value::String(s)) => f.write_str(&s),
                    _ => Err(fmt::Error),
                }
            }
        }
    )*};
}
serde_names!(Method, OptimizerKind, Schedule, Shaping);

/// Everything that defines an EGGROLL run besides the model and the task.
///
/// Missing fields take their [`Default`] values when deserialised; unknown fields are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EsConfig {
    /// Population size N: even, members `2k` and `2k+1` form antithetic pair k.
    pub population: usize,
    /// Rank r of each matrix perturbation (clamped to `min(m, n)` per matrix).
    pub rank: usize,
    /// Base noise scale σ.
    pub sigma: f32,
    /// Base learning rate.
    pub lr: f32,
    /// Optimiser applied to the gradient estimate.
    pub optimizer: OptimizerKind,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f32,
    /// Adam first-moment decay.
    pub beta1: f32,
    /// Adam second-moment decay.
    pub beta2: f32,
    /// Adam denominator guard.
    pub eps: f32,
    /// Schedule of the learning rate.
    pub lr_schedule: Schedule,
    /// Schedule of σ.
    pub sigma_schedule: Schedule,
    /// Length of the run, the horizon of the schedules.
    pub epochs: u32,
    /// Experiment seed: parameter init, noise and task data derive from it.
    pub seed: u64,
    /// Fitness is normalised within groups of this many consecutive members (0 = whole population).
    pub group_size: usize,
    /// New noise every `noise_reuse` epochs (0 = the same noise for ever).
    pub noise_reuse: u32,
    /// Fitness shaping.
    pub shaping: Shaping,
    /// EGGROLL's low-rank perturbations or OpenES's full-rank ones.
    pub method: Method,
    /// MiB of memory the backend may keep each noise epoch's draws in, so that every call of the
    /// epoch reads them instead of drawing them again (0: draw on the fly; `None`: a quarter of
    /// the memory the run leaves free). The results are the same bits either way.
    pub noise_cache_mb: Option<u64>,
}

impl Default for EsConfig {
    fn default() -> Self {
        Self {
            population: 256,
            rank: 1,
            sigma: 0.1,
            lr: 0.01,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            lr_schedule: Schedule::Constant,
            sigma_schedule: Schedule::Constant,
            epochs: 100,
            seed: 0,
            group_size: 0,
            noise_reuse: 1,
            shaping: Shaping::ZScore,
            method: Method::Eggroll,
            noise_cache_mb: None,
        }
    }
}

/// A config error naming the field.
fn invalid(field: &str, why: impl fmt::Display) -> EggrollError {
    EggrollError::Config(format!("{field}: {why}"))
}

impl EsConfig {
    /// Checks every field, naming the first offending one.
    pub fn validate(&self) -> Result<()> {
        let n = self.population;
        // The backends' own rule for a population (even, > 0, pairs indexed in 32 bits).
        Batch { population: n, rows: 1, input: InputLayout::Shared, first_member: 0 }.validate().map_err(|e| invalid("population", e))?;
        if self.rank == 0 {
            return Err(invalid("rank", "must be >= 1"));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0) {
            return Err(invalid("sigma", format!("must be finite and > 0, got {}", self.sigma)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", format!("must be finite and > 0, got {}", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid("weight_decay", format!("must be finite and >= 0, got {}", self.weight_decay)));
        }
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(invalid(field, format!("must be in [0, 1), got {beta}")));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid("eps", format!("must be finite and > 0, got {}", self.eps)));
        }
        let decays = self.lr_schedule != Schedule::Constant || self.sigma_schedule != Schedule::Constant;
        if decays && self.epochs == 0 {
            return Err(invalid("epochs", "must be >= 1 when a schedule decays over it"));
        }
        let g = self.group_size;
        if g != 0 && (!g.is_multiple_of(2) || !n.is_multiple_of(g)) {
            return Err(invalid(
                "group_size",
                format!("must be 0 or an even divisor of the population {n} (pairs stay in one group), got {g}"),
            ));
        }
        Ok(())
    }

    /// This configuration with the fields of `fields`, a partial `EsConfig` as a JSON object, in
    /// place of its own: the one overlay of the CLI's `--config` file and the web page's settings.
    /// Unknown fields and values of the wrong type are refused; the result is not validated.
    pub fn overlay(&self, fields: serde_json::Map<String, serde_json::Value>) -> Result<EsConfig> {
        let config_error = |e: serde_json::Error| EggrollError::Config(e.to_string());
        let mut config = serde_json::to_value(self).map_err(config_error)?;
        if let Some(own) = config.as_object_mut() {
            own.extend(fields);
        }
        serde_json::from_value(config).map_err(config_error)
    }

    /// The scheduled learning rate at `epoch`.
    pub fn lr_at(&self, epoch: u32) -> f32 {
        self.lr * self.lr_schedule.factor(epoch, self.epochs)
    }

    /// The scheduled σ at `epoch`.
    pub fn sigma_at(&self, epoch: u32) -> f32 {
        self.sigma * self.sigma_schedule.factor(epoch, self.epochs)
    }

    /// The effective group size: `group_size`, or the whole population when it is 0.
    pub fn group_len(&self) -> usize {
        if self.group_size == 0 {
            self.population
        } else {
            self.group_size
        }
    }
}
