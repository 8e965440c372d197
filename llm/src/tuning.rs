//! Fine-tuning a pretrained model with EGGROLL through the trainer core: the projections (q, k,
//! v, o, gate, up and down of every layer) are the parameters of an [`eggroll::FloatTrainer`],
//! held once, there; the embedding, norms, biases and head stay the [`Model`]'s, frozen, as in
//! the authors' runs, unless [`Included`] names them (then the trainer holds them too: the
//! embedding and head with low-rank noise, norms and biases with vector noise). Each epoch the
//! population generates with the trainer's noise ([`FineTuning::perturbation`]: the same (seed,
//! noise id, noise epoch) streams the update reads), the caller scores the completions, and
//! [`FineTuning::tell`] updates the trained tensors exactly as every other model's parameters
//! are updated (fitness shaping, the low-rank and vector estimates, SGD or Adam), with the
//! trainer's checkpoints and state. A matrix beyond the adapter's limits is held in pieces of
//! consecutive rows ([`Layout::projection_rows`]), each a parameter of its own
//! (`name[first..end]`, [`ParamKind::Rows`]) with the whole's noise id.

use crate::config::{ModelConfig, StoredDtype};
use crate::error::{file_error, Result};
use crate::model::{random_tensors, KvCache, LanguageModel, Layout, Logits, Model, Noise, Perturbation, Step, PROJECTIONS};
use crate::params::{registry, Included, Role};
use crate::weights::{tensor_shapes, Weights};
use eggroll::config::Method;
use eggroll::{EsConfig, FloatTrainer, ParamKind, ParamSpec, StepStats, Trainer, TrainerState};
use eggroll_backend::transformer::Transformer;
use eggroll_backend::DType;
use std::ops::Range;
use std::path::Path;

/// A pretrained model whose projections (and the tensors [`Included`] names) a trainer holds
/// and updates.
pub struct FineTuning<B: Transformer> {
    model: Model<B>,
    trainer: FloatTrainer<B, ()>,
    /// The trainer's parameters of each tensor (its pieces): the projections in [`PROJECTIONS`]
    /// order, layer after layer, then the included tensors in noise-id order.
    groups: Vec<Range<usize>>,
    /// The tensors beyond the projections that the trainer holds.
    included: Included,
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
        Self::from_weights_with(backend, model_config, weights, config, Layout::default(), Included::default())
    }

    /// [`FineTuning::from_weights`] with the weights laid out as `layout` says (the trainer's
    /// tensors, always f32, matrices in pieces of [`Layout::projection_rows`] rows; the frozen
    /// tables stored as [`Layout::weights`]) and the tensors `included` names trained with the
    /// projections.
    pub fn from_weights_with(
        backend: B, model_config: ModelConfig, weights: &Weights, config: EsConfig, layout: Layout, included: Included,
    ) -> Result<Self> {
        Self::from_tensors(backend, model_config, config, layout, included, |name, shape| weights.f32(name, shape))
    }

    /// A model of `model_config` with [`Model::random`]'s weights drawn from `seed` (a model's
    /// shapes timed without its weights), the tensors `included` names trained with the
    /// projections.
    pub fn random(backend: B, model_config: ModelConfig, seed: u64, config: EsConfig, included: Included) -> Result<Self> {
        let random = random_tensors(&model_config, seed);
        Self::from_tensors(backend, model_config, config, Layout::default(), included, random)
    }

    /// The model whose tensors `tensor(name, shape)` gives, its projections and the tensors
    /// `included` names in a trainer.
    fn from_tensors(
        backend: B, model_config: ModelConfig, config: EsConfig, layout: Layout, included: Included,
        tensor: impl Fn(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let registry = registry(&model_config);
        let trains = |name: &str| registry.iter().any(|p| p.name == name && included.trains(&model_config, p));
        let model = Model::from_tensors(&backend, model_config.clone(), layout, |name| !trains(name), &tensor)?;
        let limits = backend.memory_limits();
        // The trainer holds its tensors in f32, whatever storage the frozen tables have.
        let trained = Layout { weights: DType::F32, ..layout };
        let mut values = Vec::with_capacity(registry.len());
        let mut groups = Vec::with_capacity(registry.len());
        let projections = (0..model_config.layers).flat_map(|l| PROJECTIONS.map(|name| format!("model.layers.{l}.{name}")));
        let others = registry.iter().filter(|p| p.role != Role::Projection && included.trains(&model_config, p)).map(|p| p.name.clone());
        for name in projections.chain(others) {
            let param = registry.iter().find(|p| p.name == name).expect("every tensor is registered");
            let (id, value) = (param.id, tensor(&name, &param.shape)?);
            let start = values.len();
            match param.shape[..] {
                [len] => values.push((ParamSpec { name, id, kind: ParamKind::Vector { len }, frozen: false }, value)),
                [m, n] if trained.projection_rows([m, n], limits) == m => {
                    values.push((ParamSpec { name, id, kind: ParamKind::Matrix { m, n }, frozen: false }, value))
                }
                [m, n] => {
                    let rows = trained.projection_rows([m, n], limits);
                    for (at, piece) in value.chunks(rows * n).enumerate() {
                        let (first, end) = (at * rows, at * rows + piece.len() / n);
                        let kind = ParamKind::Rows { m: end - first, n, first, rows: m };
                        values.push((ParamSpec { name: format!("{name}[{first}..{end}]"), id, kind, frozen: false }, piece.to_vec()));
                    }
                }
                _ => unreachable!("the registry holds vectors and matrices"),
            }
            groups.push(start..values.len());
        }
        let trainer = Trainer::from_values(backend, (), config, values)?;
        Ok(FineTuning { model, trainer, groups, included })
    }

    /// The tensors beyond the projections that the trainer holds.
    pub fn included(&self) -> Included {
        self.included
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

    /// Writes a Hugging Face model folder to `out` that transformers and [`Model::load`] load:
    /// `source`'s config (its dtype set to `dtype`) and tokenizer files, and every tensor in
    /// `dtype` in one `model.safetensors`: the trainer's projections, the frozen tensors as
    /// `source` holds them. Each file is written beside its final name, then renamed.
    pub fn save_pretrained(&self, source: &Path, out: &Path, dtype: StoredDtype) -> Result<()> {
        let config = &self.model.config;
        let weights = Weights::open(source)?;
        std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
        let backend = self.backend();
        let held: Vec<&B::Buffer> = self.trainer.values().map(|(_, value)| value).collect();
        let mut tensors = Vec::new();
        let specs = self.trainer.specs();
        for (name, shape) in tensor_shapes(config) {
            let values = match self.groups.iter().find(|group| whole_name(&specs[group.start].name) == name) {
                Some(group) => {
                    let mut values = Vec::with_capacity(shape.iter().product());
                    for piece in &held[group.clone()] {
                        values.extend(backend.read_blocking(piece)?);
                    }
                    values
                }
                None => weights.f32(&name, &shape)?,
            };
            tensors.push((name, shape, encode(&values, dtype)));
        }
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                let view = safetensors::tensor::TensorView::new(safetensor_dtype(dtype), shape.clone(), bytes)
                    .map_err(|e| file_error(&out.join("model.safetensors"), e))?;
                Ok((name.clone(), view))
            })
            .collect::<Result<Vec<_>>>()?;
        let bytes = safetensors::serialize(views, None).map_err(|e| file_error(&out.join("model.safetensors"), e))?;
        write_beside(&out.join("model.safetensors"), &bytes)?;
        let config_path = source.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e))?;
        let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| file_error(&config_path, e))?;
        let map = json.as_object_mut().ok_or_else(|| file_error(&config_path, "not a JSON object"))?;
        let key = if map.contains_key("dtype") { "dtype" } else { "torch_dtype" };
        map.insert(key.into(), dtype.name().into());
        let text = serde_json::to_string_pretty(&json).map_err(|e| file_error(&out.join("config.json"), e))?;
        write_beside(&out.join("config.json"), text.as_bytes())?;
        for file in ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json", "chat_template.jinja"]
        {
            let from = source.join(file);
            if from.exists() {
                let bytes = std::fs::read(&from).map_err(|e| file_error(&from, e))?;
                write_beside(&out.join(file), &bytes)?;
            }
        }
        Ok(())
    }

    /// The trainer's state (projections, Adam's moments) as a safetensors file, for a
    /// checkpoint: each projection whole, whatever pieces the trainer holds it in, so that the
    /// file resumes on any backend.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        let state = self.trainer.state()?;
        // A piece's tensors (`name[first..end]`, `adam.m.name[..]`) join their projection's, in
        // the trainer's order, which is the pieces' order.
        let mut tensors: Vec<(String, Vec<f32>)> = Vec::with_capacity(state.tensors.len());
        for (name, values) in state.tensors {
            let whole = whole_name(&name);
            match tensors.iter_mut().find(|(n, _)| n == whole) {
                Some((_, joined)) => joined.extend(values),
                None => tensors.push((whole.to_string(), values)),
            }
        }
        Ok(TrainerState { epoch: state.epoch, tensors }.to_safetensors(&self.whole_specs())?)
    }

    /// Restores a state [`FineTuning::save_state`] wrote, as the state after `epoch` epochs,
    /// each projection cut into the pieces the trainer holds; a file that does not hold this
    /// model's projections (and this optimiser's moments) is refused, naming the tensor.
    pub fn load_state(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        let whole = TrainerState::from_safetensors(bytes, epoch, &self.whole_specs())?;
        let specs = self.trainer.specs();
        let mut tensors = Vec::with_capacity(whole.tensors.len());
        for (name, values) in whole.tensors {
            let (prefix, base) =
                ["adam.m.", "adam.v."].iter().find_map(|p| name.strip_prefix(p).map(|base| (*p, base))).unwrap_or(("", name.as_str()));
            let group = self.groups.iter().find(|g| whole_name(&specs[g.start].name) == base);
            match group {
                Some(group) if group.len() > 1 => {
                    let mut at = 0;
                    for spec in &specs[group.clone()] {
                        let len = spec.kind.len();
                        tensors.push((format!("{prefix}{}", spec.name), values[at..at + len].to_vec()));
                        at += len;
                    }
                }
                _ => tensors.push((name, values)),
            }
        }
        Ok(self.trainer.restore(&TrainerState { epoch: whole.epoch, tensors })?)
    }

    /// Every projection's spec, whole (the pieces' specs joined): the checkpoint's layout.
    fn whole_specs(&self) -> Vec<ParamSpec> {
        let specs = self.trainer.specs();
        self.groups
            .iter()
            .map(|group| {
                let first = &specs[group.start];
                let kind = match first.kind {
                    ParamKind::Rows { n, rows, .. } => ParamKind::Matrix { m: rows, n },
                    kind => kind,
                };
                ParamSpec { name: whole_name(&first.name).to_string(), kind, ..first.clone() }
            })
            .collect()
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
        let values: Vec<(u32, &B::Buffer)> = self.trainer.values().map(|(spec, value)| (spec.id, value)).collect();
        let pieces = |group: &Range<usize>| values[group.clone()].iter().map(|(_, value)| *value).collect::<Vec<_>>();
        let projections = 7 * self.model.config.layers;
        let held: Vec<(u32, Vec<&B::Buffer>)> =
            self.groups[projections..].iter().map(|group| (values[group.start].0, pieces(group))).collect();
        let projections: Vec<Vec<&B::Buffer>> = self.groups[..projections].iter().map(pieces).collect();
        self.model.forward_with(backend, &projections, &held, step, cache, logits)
    }
}

/// The projection's name of a trainer parameter or its state tensor: `name` itself, or the name
/// a piece `name[first..end]` is cut from.
fn whole_name(name: &str) -> &str {
    name.split_once('[').map_or(name, |(whole, _)| whole)
}

/// `values` as little-endian bytes of `dtype` (rounded to nearest even).
fn encode(values: &[f32], dtype: StoredDtype) -> Vec<u8> {
    match dtype {
        StoredDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        StoredDtype::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        StoredDtype::Bf16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
    }
}

/// The safetensors dtype of `dtype`.
fn safetensor_dtype(dtype: StoredDtype) -> safetensors::Dtype {
    match dtype {
        StoredDtype::F32 => safetensors::Dtype::F32,
        StoredDtype::F16 => safetensors::Dtype::F16,
        StoredDtype::Bf16 => safetensors::Dtype::BF16,
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it to `path`.
fn write_beside(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(|e| file_error(&partial, e))?;
    std::fs::rename(&partial, path).map_err(|e| file_error(path, e))
}
