//! Fine-tuning a pretrained model with EGGROLL through the trainer core: the projections (q, k,
//! v, o, gate, up and down of every layer) are the parameters of an [`eggroll::FloatTrainer`],
//! held once, there; the embedding, norms, biases and head stay the [`Model`]'s, frozen, as in
//! the authors' runs. Each epoch the population generates with the trainer's noise
//! ([`FineTuning::perturbation`]: the same (seed, noise id, noise epoch) streams the update
//! reads), the caller scores the completions, and [`FineTuning::tell`] updates the projections
//! exactly as every other model's parameters are updated (fitness shaping, the low-rank
//! estimate, SGD or Adam), with the trainer's checkpoints and state.

use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::{projection_shapes, KvCache, LanguageModel, Layout, Logits, Model, Noise, Perturbation, Step, PROJECTIONS};
use crate::params::id_of;
use crate::weights::Weights;
use eggroll::config::Method;
use eggroll::{EsConfig, FloatTrainer, ParamKind, ParamSpec, StepStats, Trainer};
use eggroll_backend::transformer::Transformer;
use std::path::Path;

/// A pretrained model whose projections a trainer holds and updates.
pub struct FineTuning<B: Transformer> {
    model: Model<B>,
    trainer: FloatTrainer<B, ()>,
}

impl<B: Transformer> FineTuning<B> {
    /// Loads the model folder `dir` (as [`Model::load`]) with its projections in a trainer of
    /// `config` (population, rank, σ, learning rate, optimiser, seed, noise reuse, shaping).
    pub fn load(backend: B, dir: &Path, config: EsConfig) -> Result<Self> {
        let model_config = ModelConfig::load(dir)?;
        let weights = Weights::open(dir)?;
        weights.check(&model_config)?;
        Self::from_weights(backend, model_config, &weights, config)
    }

    /// [`FineTuning::load`] from a config and its weights.
    pub fn from_weights(backend: B, model_config: ModelConfig, weights: &Weights, config: EsConfig) -> Result<Self> {
        let model = Model::from_tensors(&backend, model_config.clone(), Layout::default(), false, |name, shape| weights.f32(name, shape))?;
        let mut values = Vec::with_capacity(7 * model_config.layers);
        for l in 0..model_config.layers {
            for (name, [m, n]) in PROJECTIONS.iter().zip(projection_shapes(&model_config)) {
                let name = format!("model.layers.{l}.{name}");
                let id = id_of(&model_config, &name).expect("every projection is registered");
                let value = weights.f32(&name, &[m, n])?;
                values.push((ParamSpec { name, id, kind: ParamKind::Matrix { m, n }, frozen: false }, value));
            }
        }
        let trainer = Trainer::from_values(backend, (), config, values)?;
        Ok(FineTuning { model, trainer })
    }

    /// The backend the model and the trainer live on.
    pub fn backend(&self) -> &B {
        self.trainer.backend()
    }

    /// The trainer: its config, epoch, parameters, state and checkpoints.
    pub fn trainer(&self) -> &FloatTrainer<B, ()> {
        &self.trainer
    }

    /// The perturbation of the current epoch for `generate`'s `Members::Population`: the whole
    /// population, with the trainer's seed, noise epoch, σ, rank and method.
    pub fn perturbation(&self) -> Perturbation {
        let config = self.trainer.config();
        let member = self.trainer.ask().swap_remove(0);
        Perturbation {
            noise: match config.method {
                Method::Eggroll => Noise::LowRank { rank: config.rank },
                Method::OpenEs => Noise::FullRank,
            },
            sigma: member.sigma,
            seed: member.seed,
            noise_epoch: member.noise_epoch,
            population: config.population,
            first_member: 0,
        }
    }

    /// Updates the projections from every member's raw fitness (higher is better), as
    /// [`Trainer::tell`] does for every model, and moves to the next epoch.
    pub fn tell(&mut self, fitness: &[f32]) -> Result<StepStats> {
        Ok(self.trainer.tell(fitness)?)
    }
}

impl<B: Transformer> LanguageModel<B> for FineTuning<B> {
    fn model(&self) -> &Model<B> {
        &self.model
    }

    fn forward(&self, backend: &B, step: Step, cache: &mut KvCache<B>, logits: Logits) -> Result<B::Buffer> {
        let projections: Vec<&B::Buffer> = self.trainer.values().map(|(_, value)| value).collect();
        self.model.forward_with(backend, &projections, step, cache, logits)
    }
}
