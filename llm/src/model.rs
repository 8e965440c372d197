//! The forward of a Llama, Qwen2 or Qwen3 model on any backend with the transformer kernels:
//! weights uploaded once from the checkpoint, each sequence's keys and values in a cache slot of
//! its own, and the logits of the rows asked for.

use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::params::{id_of, Role};
use crate::table::{piece_bytes, Parts, Table};
use crate::weights::Weights;
use eggroll_backend::transformer::{AttentionShape, Transformer};
use eggroll_backend::{Batch, DType, InputLayout, LowRank, LowRankNoise, NoiseStream, RowPiece};
use std::path::Path;

/// The noise of the members' projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// EGGROLL: `s_i (σ/√r) A_i B_iᵀ` of rank `r` (clamped to each matrix's smaller side).
    LowRank {
        /// The rank r.
        rank: usize,
    },
    /// OpenES: `s_i σ E_i`, a full-rank normal matrix per pair.
    FullRank,
}

/// How the members of a population perturb the projections (q, k, v, o, gate, up, down): member
/// `i` of the whole population adds its pair's noise of stream `(seed, param id, noise_epoch)`
/// with sign `+1` (even `i`) or `-1` (odd `i`). The sequences of a forward are member-major: the
/// first `sequences / population` belong to member `first_member`, and so on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perturbation {
    /// Low-rank (EGGROLL) or full-rank (OpenES) noise.
    pub noise: Noise,
    /// σ.
    pub sigma: f32,
    /// The experiment's seed.
    pub seed: u64,
    /// The noise epoch.
    pub noise_epoch: u32,
    /// Members in this forward (even, as are the pairs).
    pub population: usize,
    /// The first member's index in the whole population (even).
    pub first_member: usize,
}

/// A layer's projections, by their names within the layer, in the order a forward's
/// projections are given ([`Model::forward_with`]): q, k, v, o, gate, up, down.
pub const PROJECTIONS: [&str; 7] = [
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];

/// The shapes (`[m, n]` of `y = x Wᵀ`) of a layer's [`PROJECTIONS`].
pub fn projection_shapes(config: &ModelConfig) -> [[usize; 2]; 7] {
    let (h, i) = (config.hidden, config.intermediate);
    let (q, kv) = (config.heads * config.head_dim, config.kv_heads * config.head_dim);
    [[q, h], [kv, h], [kv, h], [h, q], [i, h], [i, h], [h, i]]
}

/// A tensor beyond the projections (a norm's weight, a bias): its name and noise id, and its
/// values on the device unless a trainer holds them ([`Model::forward_with`]'s `held`).
struct Frozen<B: Transformer> {
    name: String,
    id: u32,
    own: Option<B::Buffer>,
}

/// Where a forward reads a tensor beyond the projections from.
enum Source<'a, B: Transformer> {
    /// The model's own values, never perturbed.
    Own(&'a B::Buffer),
    /// A trainer's values (whole or in pieces of rows), perturbed like the projections.
    Held(&'a [&'a B::Buffer]),
}

impl<B: Transformer> Frozen<B> {
    /// The tensor's values: the model's own, or those `held` gives for its noise id.
    fn source<'a>(&'a self, held: &'a [(u32, Vec<&'a B::Buffer>)]) -> Result<Source<'a, B>> {
        match &self.own {
            Some(own) => Ok(Source::Own(own)),
            None => Ok(Source::Held(held_pieces::<B>(held, self.id, &self.name)?)),
        }
    }
}

/// One decoder layer's weights on the device beyond its projections, and the noise ids of its
/// projections.
struct Layer<B: Transformer> {
    ids: [u32; 7],
    input_norm: Frozen<B>,
    post_norm: Frozen<B>,
    qkv_bias: Option<[Frozen<B>; 3]>,
    qk_norm: Option<[Frozen<B>; 2]>,
}

/// A pretrained model on a backend: its config and its weights, held once. The projections are
/// the model's own ([`Model::load`]), or held by a trainer and given to each forward
/// ([`Model::forward_with`], as [`crate::tuning::FineTuning`] does).
pub struct Model<B: Transformer> {
    /// The architecture.
    pub config: ModelConfig,
    /// The embedding table, unless a trainer holds it.
    embed: Option<Table<B>>,
    /// An untied head, unless a trainer holds it.
    head: Option<Table<B>>,
    /// The noise ids of the embedding and of the head (the embedding's when tied).
    table_ids: [u32; 2],
    norm: Frozen<B>,
    layers: Vec<Layer<B>>,
    /// Per width of a norm: ones, and minus ones (a trained norm's member weights go through
    /// [`eggroll_backend::Backend::perturbed_gain`], whose gain is an offset from 1).
    units: Vec<(usize, B::Buffer, B::Buffer)>,
    /// The offsets from 1 of trained norms' weights, kept between calls.
    gains: Parts<B>,
    /// Every layer's projections in [`PROJECTIONS`] order, layer after layer, each in pieces
    /// of consecutive rows ([`Layout::projection_piece_bytes`]); empty when a trainer holds them.
    projections: Vec<Vec<B::Buffer>>,
    inv_freq: Vec<f32>,
    /// The outputs of split projections' pieces.
    parts: Parts<B>,
    /// The storage type of the frozen matrices ([`Layout::weights`]).
    weights: DType,
}

/// How a model's weights are laid out on its backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The most bytes of one piece of the embedding and head tables, which are held in pieces
    /// of whole rows: by default the smaller of the adapter's largest buffer and its storage
    /// binding limit, so that a vocabulary beyond them is split rather than refused.
    pub table_piece_bytes: Option<u64>,
    /// The most bytes of one piece of a projection, which is held in pieces of consecutive rows
    /// when it is larger (each piece's output placed into its columns of the whole's, its noise
    /// those rows of the whole's): by default the same limits as the tables'.
    pub projection_piece_bytes: Option<u64>,
    /// The storage type of the matrices the model holds frozen (its own projections, the
    /// embedding and head tables): f32 by default; [`crate::storage::WeightDtype::resolve`]
    /// picks a checkpoint's 16-bit type where the backend stores it (the same outputs, half the
    /// memory). Projections a trainer holds are f32 whatever this says.
    pub weights: DType,
}

impl Layout {
    /// Rows of each piece of an `[m, n]` projection (all `m` when it fits one) on a backend of
    /// `limits`.
    pub fn projection_rows(&self, [m, n]: [usize; 2], limits: eggroll_backend::MemoryLimits) -> usize {
        let bytes = piece_bytes(self.projection_piece_bytes, limits);
        usize::try_from(bytes / (n as u64 * self.weights.bytes() as u64)).unwrap_or(usize::MAX).clamp(1, m.max(1))
    }
}

/// The key and value caches of every layer: `slots` sequences of up to `capacity` positions.
pub struct KvCache<B: Transformer> {
    /// The shape the attention kernel reads.
    pub shape: AttentionShape,
    layers: Vec<(B::Buffer, B::Buffer)>,
    /// The activations of the latest forward, reused by the next one of as many rows (every
    /// decode step of a generation), so that a step allocates no device buffer for them.
    activations: Option<Activations<B>>,
}

/// A forward's activations for `rows` rows: the residual stream, its normed copy, q, k, v, the
/// attended values, a projection's output, and the MLP's gate and up.
struct Activations<B: Transformer> {
    rows: usize,
    x: B::Buffer,
    normed: B::Buffer,
    q: B::Buffer,
    k: B::Buffer,
    v: B::Buffer,
    attended: B::Buffer,
    projected: B::Buffer,
    gate: B::Buffer,
    up: B::Buffer,
}

impl<B: Transformer> Activations<B> {
    fn new(backend: &B, c: &ModelConfig, rows: usize) -> Result<Self> {
        let (h, q, kv, i) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim, c.intermediate);
        let zeros = |len: usize| backend.zeros(rows * len);
        Ok(Activations {
            rows,
            x: zeros(h)?,
            normed: zeros(h)?,
            q: zeros(q)?,
            k: zeros(kv)?,
            v: zeros(kv)?,
            attended: zeros(q)?,
            projected: zeros(h)?,
            gate: zeros(i)?,
            up: zeros(i)?,
        })
    }
}

/// One forward call: `slots.len()` sequences, each adding `new` tokens after the `starts[s]`
/// positions its cache slot holds; `tokens` row by row (sequence, then position); the mean model
/// or a population's members.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// The members' noise, or `None` for the mean model.
    pub perturbation: Option<Perturbation>,
    /// The new tokens, `slots.len() x new`.
    pub tokens: &'a [u32],
    /// The cache slot of each sequence.
    pub slots: &'a [u32],
    /// The positions each sequence's slot already holds.
    pub starts: &'a [u32],
    /// New positions per sequence.
    pub new: usize,
}

/// Which rows' logits a forward returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Every row's (sequence, then position).
    All,
    /// The last new position of each sequence (what decoding needs).
    Last,
}

impl<B: Transformer> Model<B> {
    /// Loads the model of the folder `dir` onto `backend`: the config, then every tensor checked
    /// against it and uploaded in f32 (see [`Model::load_with`] for 16-bit storage).
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        Self::load_with(backend, dir, Layout::default())
    }

    /// [`Model::load`] with the weights laid out as `layout` says.
    pub fn load_with(backend: &B, dir: &Path, layout: Layout) -> Result<Self> {
        let config = ModelConfig::load(dir)?;
        let weights = Weights::open(dir)?;
        weights.check(&config)?;
        Self::from_weights_with(backend, config, &weights, layout)
    }

    /// Uploads `weights` (already checked against `config`).
    pub fn from_weights(backend: &B, config: ModelConfig, weights: &Weights) -> Result<Self> {
        Self::from_weights_with(backend, config, weights, Layout::default())
    }

    /// [`Model::from_weights`] with the weights laid out as `layout` says.
    pub fn from_weights_with(backend: &B, config: ModelConfig, weights: &Weights, layout: Layout) -> Result<Self> {
        Self::from_tensors(backend, config, layout, |_| true, |name, shape| weights.f32(name, shape))
    }

    /// A model of `config` with weights drawn from `seed` (what a benchmark runs at a real
    /// model's shapes without its weights): norms 1, biases 0, every matrix normal with standard
    /// deviation 0.02 (transformers' `initializer_range`), each from its own Philox stream.
    pub fn random(backend: &B, config: ModelConfig, seed: u64) -> Result<Self> {
        Self::random_with(backend, config, seed, Layout::default())
    }

    /// [`Model::random`] with the weights laid out as `layout` says (16-bit storage rounds the
    /// drawn weights).
    pub fn random_with(backend: &B, config: ModelConfig, seed: u64, layout: Layout) -> Result<Self> {
        let random = random_tensors(&config, seed);
        Self::from_tensors(backend, config, layout, |_| true, random)
    }

    /// The storage type of the model's frozen matrices.
    pub fn weight_dtype(&self) -> DType {
        self.weights
    }

    /// Uploads the tensor `tensor(name, shape)` gives for each of the config's tensors that
    /// `own(name)` keeps (the others a trainer holds and gives to [`Model::forward_with`]).
    pub(crate) fn from_tensors(
        backend: &B, config: ModelConfig, layout: Layout, own: impl Fn(&str) -> bool, tensor: impl Fn(&str, &[usize]) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let (h, hd) = (config.hidden, config.head_dim);
        let (q, kv) = (config.heads * hd, config.kv_heads * hd);
        let frozen = |name: String, shape: &[usize]| -> Result<Frozen<B>> {
            let id = id_of(&config, &name).expect("every tensor is registered");
            let own = if own(&name) { Some(backend.upload(&tensor(&name, shape)?)?) } else { None };
            Ok(Frozen { name, id, own })
        };
        let limits = backend.memory_limits();
        let mut layers = Vec::with_capacity(config.layers);
        let mut projection_buffers = Vec::new();
        for l in 0..config.layers {
            let p = |name: &str| format!("model.layers.{l}.{name}");
            for (name, shape) in PROJECTIONS.iter().zip(projection_shapes(&config)) {
                if !own(&p(name)) {
                    continue;
                }
                let values = tensor(&p(name), &shape)?;
                let rows = layout.projection_rows(shape, limits);
                let pieces = values
                    .chunks(rows * shape[1])
                    .map(|piece| backend.upload_as(piece, layout.weights))
                    .collect::<std::result::Result<_, _>>()?;
                projection_buffers.push(pieces);
            }
            layers.push(Layer {
                ids: PROJECTIONS.map(|name| id_of(&config, &p(name)).expect("every projection is registered")),
                input_norm: frozen(p("input_layernorm.weight"), &[h])?,
                post_norm: frozen(p("post_attention_layernorm.weight"), &[h])?,
                qkv_bias: match config.qkv_bias {
                    true => Some([
                        frozen(p("self_attn.q_proj.bias"), &[q])?,
                        frozen(p("self_attn.k_proj.bias"), &[kv])?,
                        frozen(p("self_attn.v_proj.bias"), &[kv])?,
                    ]),
                    false => None,
                },
                qk_norm: match config.qk_norm {
                    true => Some([frozen(p("self_attn.q_norm.weight"), &[hd])?, frozen(p("self_attn.k_norm.weight"), &[hd])?]),
                    false => None,
                },
            });
        }
        if !projection_buffers.is_empty() && projection_buffers.len() != 7 * config.layers {
            return Err(LlmError::Request("a model holds all of its projections or none".into()));
        }
        let piece = piece_bytes(layout.table_piece_bytes, limits);
        let table = |name: &str| -> Result<Option<Table<B>>> {
            match own(name) {
                true => Ok(Some(Table::upload(backend, &tensor(name, &[config.vocab, h])?, config.vocab, h, piece, layout.weights)?)),
                false => Ok(None),
            }
        };
        let embed = table("model.embed_tokens.weight")?;
        let head_name = if config.tied { "model.embed_tokens.weight" } else { "lm_head.weight" };
        let head = if config.tied { None } else { table(head_name)? };
        let table_ids = ["model.embed_tokens.weight", head_name].map(|name| id_of(&config, name).expect("every table is registered"));
        let norm = frozen("model.norm.weight".into(), &[h])?;
        let mut units: Vec<(usize, B::Buffer, B::Buffer)> = Vec::new();
        for width in [h, hd] {
            if units.iter().all(|(w, ..)| *w != width) {
                units.push((width, backend.upload(&vec![1.0; width])?, backend.upload(&vec![-1.0; width])?));
            }
        }
        // transformers keeps the inverse frequencies in f32.
        let inv_freq = config.rope.inverse_frequencies(hd).into_iter().map(|f| f as f32).collect();
        Ok(Model {
            config,
            embed,
            head,
            table_ids,
            norm,
            layers,
            units,
            gains: Parts::default(),
            projections: projection_buffers,
            inv_freq,
            parts: Parts::default(),
            weights: layout.weights,
        })
    }

    /// The pieces the embedding table is held in (one unless it is beyond the adapter's limits
    /// or the layout's; zero when a trainer holds it).
    pub fn embedding_pieces(&self) -> usize {
        self.embed.as_ref().map_or(0, Table::pieces)
    }

    /// The most pieces any of the model's own projections is held in (one unless a projection
    /// is beyond the adapter's limits or the layout's; zero when a trainer holds them).
    pub fn projection_pieces(&self) -> usize {
        self.projections.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Empty caches for `slots` sequences of up to `capacity` positions each (at most the
    /// model's `max_position_embeddings`).
    pub fn cache(&self, backend: &B, slots: usize, capacity: usize) -> Result<KvCache<B>> {
        let c = &self.config;
        if capacity > c.max_positions {
            return Err(LlmError::Request(format!(
                "{capacity} positions is beyond the model's max_position_embeddings {}",
                c.max_positions
            )));
        }
        let shape = AttentionShape { heads: c.heads, kv_heads: c.kv_heads, head_dim: c.head_dim, capacity, slots };
        let layers =
            (0..c.layers).map(|_| Ok((backend.zeros(shape.cache_len())?, backend.zeros(shape.cache_len())?))).collect::<Result<_>>()?;
        Ok(KvCache { shape, layers, activations: None })
    }

    /// Runs `step` and returns the logits of the rows `logits` asks for (`vocab` each).
    pub fn forward(&self, backend: &B, step: Step, cache: &mut KvCache<B>, logits: Logits) -> Result<B::Buffer> {
        if self.projections.is_empty() {
            return Err(LlmError::Request("the model's projections are held by a trainer: run it through its fine-tuning".into()));
        }
        let projections: Vec<Vec<&B::Buffer>> = self.projections.iter().map(|pieces| pieces.iter().collect()).collect();
        self.forward_with(backend, &projections, &[], step, cache, logits)
    }

    /// [`Model::forward`] with the projections `projections` (every layer's [`PROJECTIONS`],
    /// layer after layer, of [`projection_shapes`], each whole or in pieces of consecutive rows)
    /// in place of the model's own, and `held`, by noise id, the tensors beyond them that the
    /// model does not hold (a norm's weight or a bias whole; the embedding and head whole or in
    /// pieces of rows). Members perturb what `held` gives as they do the projections: low-rank
    /// (or OpenES's full-rank) noise on the embedding and head, full-rank vector noise on norms
    /// and biases.
    pub fn forward_with(
        &self, backend: &B, projections: &[Vec<&B::Buffer>], held: &[(u32, Vec<&B::Buffer>)], step: Step, cache: &mut KvCache<B>,
        logits: Logits,
    ) -> Result<B::Buffer> {
        let c = &self.config;
        let shapes = projection_shapes(c);
        let wrong = projections.iter().enumerate().find(|(at, pieces)| {
            let [m, n] = shapes[at % 7];
            pieces.iter().map(|w| backend.len(w)).sum::<usize>() != m * n || pieces.iter().any(|w| !backend.len(w).is_multiple_of(n))
        });
        if projections.len() != 7 * c.layers || wrong.is_some() {
            return Err(LlmError::Request(format!(
                "{} projections for {} layers of 7{}",
                projections.len(),
                c.layers,
                wrong
                    .map(|(at, w)| format!(
                        ", projection {at} needs {} values in whole rows of {}, got pieces of {:?} values",
                        shapes[at % 7][0] * shapes[at % 7][1],
                        shapes[at % 7][1],
                        w.iter().map(|w| backend.len(w)).collect::<Vec<_>>()
                    ))
                    .unwrap_or_default()
            )));
        }
        let Step { perturbation, tokens, slots, starts, new } = step;
        let rows = slots.len() * new;
        if tokens.len() != rows || starts.len() != slots.len() {
            return Err(LlmError::Request(format!("{} tokens for {} sequences of {new} new positions", tokens.len(), slots.len())));
        }
        let project = Projector::new(perturbation, slots.len(), new, &self.parts)?;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(LlmError::Request(format!("token id {bad} is beyond the vocabulary of {}", c.vocab)));
        }
        let (h, hd, q_width, kv_width) = (c.hidden, c.head_dim, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let positions: Vec<u32> = starts.iter().flat_map(|&s| (0..new as u32).map(move |t| s + t)).collect();
        let mut acts = match cache.activations.take() {
            Some(acts) if acts.rows == rows => acts,
            _ => Activations::new(backend, c, rows)?,
        };
        let Activations { x, normed, q, k, v, attended, projected, gate, up, .. } = &mut acts;
        self.embed_rows(backend, &project, held, tokens, x)?;
        for ((layer, w), (k_cache, v_cache)) in self.layers.iter().zip(projections.chunks_exact(7)).zip(cache.layers.iter_mut()) {
            backend.copy(x, normed)?;
            self.rms_norm(backend, &project, held, normed, &layer.input_norm, h)?;
            project.run(backend, normed, &w[0], layer.ids[0], (q_width, h, rows), q)?;
            project.run(backend, normed, &w[1], layer.ids[1], (kv_width, h, rows), k)?;
            project.run(backend, normed, &w[2], layer.ids[2], (kv_width, h, rows), v)?;
            if let Some([qb, kb, vb]) = &layer.qkv_bias {
                project.bias(backend, q, qb.source(held)?, qb.id)?;
                project.bias(backend, k, kb.source(held)?, kb.id)?;
                project.bias(backend, v, vb.source(held)?, vb.id)?;
            }
            if let Some([qn, kn]) = &layer.qk_norm {
                self.rms_norm(backend, &project, held, q, qn, hd)?;
                self.rms_norm(backend, &project, held, k, kn, hd)?;
            }
            backend.rope(q, &positions, c.heads, hd, &self.inv_freq)?;
            backend.rope(k, &positions, c.kv_heads, hd, &self.inv_freq)?;
            backend.attention(q, k, v, cache.shape, slots, starts, new, k_cache, v_cache, attended)?;
            project.run(backend, attended, &w[3], layer.ids[3], (h, q_width, rows), projected)?;
            backend.add(x, projected)?;
            backend.copy(x, normed)?;
            self.rms_norm(backend, &project, held, normed, &layer.post_norm, h)?;
            project.run(backend, normed, &w[4], layer.ids[4], (c.intermediate, h, rows), gate)?;
            project.run(backend, normed, &w[5], layer.ids[5], (c.intermediate, h, rows), up)?;
            backend.silu_mul(gate, up)?;
            project.run(backend, gate, &w[6], layer.ids[6], (h, c.intermediate, rows), projected)?;
            backend.add(x, projected)?;
        }
        // The rows asked for, gathered before the head (the head is the largest matmul).
        let out_rows = match logits {
            Logits::All => rows,
            Logits::Last => slots.len(),
        };
        let mut gathered = match logits {
            Logits::All => None,
            Logits::Last => {
                let last: Vec<u32> = (0..slots.len()).map(|s| ((s + 1) * new - 1) as u32).collect();
                let mut gathered = backend.zeros(slots.len() * h)?;
                backend.embedding(&last, x, h, &mut gathered)?;
                Some(gathered)
            }
        };
        let x = gathered.as_mut().unwrap_or(x);
        self.rms_norm(backend, &project, held, x, &self.norm, h)?;
        let mut out = backend.zeros(out_rows * c.vocab)?;
        let own_head = if c.tied { self.embed.as_ref() } else { self.head.as_ref() };
        match own_head {
            Some(table) => table.logits(backend, x, out_rows, &mut out)?,
            None => {
                let id = self.table_ids[1];
                project.run(backend, x, held_pieces::<B>(held, id, "the head")?, id, (c.vocab, h, out_rows), &mut out)?
            }
        }
        cache.activations = Some(acts);
        Ok(out)
    }

    /// `x ← ` the embedding's rows of `tokens`: the model's table, or the one a trainer holds
    /// (whole or in pieces of rows), with each member's noise when the forward is a population's.
    fn embed_rows(
        &self, backend: &B, project: &Projector<B>, held: &[(u32, Vec<&B::Buffer>)], tokens: &[u32], x: &mut B::Buffer,
    ) -> Result<()> {
        if let Some(table) = &self.embed {
            return table.gather(backend, tokens, x);
        }
        let (id, c) = (self.table_ids[0], &self.config);
        let pieces = held_pieces::<B>(held, id, "the embedding")?;
        let members = project.members(tokens.len());
        if let (None, [whole]) = (members, pieces) {
            return Ok(backend.embedding(tokens, whole, c.hidden, x)?);
        }
        // Each piece of rows writes the rows of the tokens it holds, with the whole's noise.
        let mut first = 0;
        for table in pieces {
            let rows = backend.len(table) / c.hidden;
            let piece = (pieces.len() > 1).then_some(RowPiece { first, rows: c.vocab });
            match members {
                None => backend.embedding_piece(tokens, first, table, c.hidden, x)?,
                Some((p, batch)) => {
                    let noise = p.matrix_noise(id, rows, c.hidden, piece);
                    match p.noise {
                        Noise::LowRank { .. } => backend.perturbed_embedding(tokens, table, noise, batch, x)?,
                        Noise::FullRank => backend.full_rank_embedding(tokens, table, noise, batch, x)?,
                    }
                }
            }
            first += rows;
        }
        Ok(())
    }

    /// RMSNorm of every row of `width` values of `x` with `weight`: the model's own, or one a
    /// trainer holds, with each member's noise when the forward is a population's (the rows
    /// normalised with unit weights, then multiplied by `1 + (w - 1) + s σ ε`).
    fn rms_norm(
        &self, backend: &B, project: &Projector<B>, held: &[(u32, Vec<&B::Buffer>)], x: &mut B::Buffer, weight: &Frozen<B>, width: usize,
    ) -> Result<()> {
        let eps = self.config.rms_eps as f32;
        let w = match weight.source(held)? {
            Source::Own(w) => w,
            Source::Held([w]) => *w,
            Source::Held(pieces) => return Err(LlmError::Request(format!("{} in {} pieces", weight.name, pieces.len()))),
        };
        let (Some((p, batch)), false) = (project.members(backend.len(x) / width), weight.own.is_some()) else {
            return Ok(backend.rms_norm(x, w, width, eps)?);
        };
        let (_, ones, minus_ones) = self.units.iter().find(|(w, ..)| *w == width).expect("a unit vector of every norm's width");
        backend.rms_norm(x, ones, width, eps)?;
        let mut gain = self.gains.take(backend, width)?;
        backend.copy(w, &mut gain)?;
        backend.add(&mut gain, minus_ones)?;
        let done = backend.perturbed_gain(x, &gain, NoiseStream::new(p.seed, weight.id, p.noise_epoch), p.sigma, batch);
        self.gains.keep(gain);
        Ok(done?)
    }
}

/// What a generation runs ([`crate::generate`]): a [`Model`] with its own projections, or a
/// model whose projections a trainer holds ([`crate::tuning::FineTuning`]).
pub trait LanguageModel<B: Transformer> {
    /// The model: its config, caches and frozen weights.
    fn model(&self) -> &Model<B>;
    /// Runs `step`, as [`Model::forward`] does.
    fn forward(&self, backend: &B, step: Step, cache: &mut KvCache<B>, logits: Logits) -> Result<B::Buffer>;
}

impl<B: Transformer> LanguageModel<B> for Model<B> {
    fn model(&self) -> &Model<B> {
        self
    }
    fn forward(&self, backend: &B, step: Step, cache: &mut KvCache<B>, logits: Logits) -> Result<B::Buffer> {
        Model::forward(self, backend, step, cache, logits)
    }
}

/// How a forward runs its projections: plain matmuls for the mean model, the members' perturbed
/// ones for a population; a projection held in pieces one piece at a time, each piece's output
/// placed into its columns of the whole's.
struct Projector<'a, B: Transformer> {
    perturbation: Option<Perturbation>,
    /// Pieces' outputs kept between calls.
    parts: &'a Parts<B>,
}

impl<'a, B: Transformer> Projector<'a, B> {
    /// Checks `perturbation` against a forward of `sequences` sequences of `new` rows each.
    fn new(perturbation: Option<Perturbation>, sequences: usize, new: usize, parts: &'a Parts<B>) -> Result<Self> {
        let Some(p) = perturbation else {
            return Ok(Projector { perturbation: None, parts });
        };
        if p.population == 0 || !p.population.is_multiple_of(2) || !p.first_member.is_multiple_of(2) {
            return Err(LlmError::Request(format!(
                "a population slice of {} members from member {}: both must be even (antithetic pairs)",
                p.population, p.first_member
            )));
        }
        if !sequences.is_multiple_of(p.population) || new == 0 {
            return Err(LlmError::Request(format!("{sequences} sequences are not a whole number per member of {}", p.population)));
        }
        if !(p.sigma.is_finite() && p.sigma >= 0.0) || p.noise == (Noise::LowRank { rank: 0 }) {
            return Err(LlmError::Request(format!("sigma {} and noise {:?}: need a finite sigma >= 0 and a rank >= 1", p.sigma, p.noise)));
        }
        Ok(Projector { perturbation: Some(p), parts })
    }

    /// The members' perturbation and their batch for an activation of `rows` rows, the members'
    /// one after another (`None` for the mean model).
    fn members(&self, rows: usize) -> Option<(Perturbation, Batch)> {
        self.perturbation.map(|p| {
            let batch =
                Batch { population: p.population, rows: rows / p.population, input: InputLayout::PerMember, first_member: p.first_member };
            (p, batch)
        })
    }

    /// `y = x Wᵀ` for `W` (m x n, noise id `id`, whole or in pieces of rows) on `rows` rows, each
    /// member's rows with its noise.
    fn run(
        &self, backend: &B, x: &B::Buffer, pieces: &[&B::Buffer], id: u32, (m, n, rows): (usize, usize, usize), y: &mut B::Buffer,
    ) -> Result<()> {
        if let [whole] = pieces {
            return self.piece(backend, x, whole, id, (m, n, rows), None, y);
        }
        let mut first = 0;
        for w in pieces {
            let piece_rows = backend.len(w) / n;
            let mut part = self.parts.take(backend, rows * piece_rows)?;
            self.piece(backend, x, w, id, (piece_rows, n, rows), Some(RowPiece { first, rows: m }), &mut part)?;
            backend.place(&part, y, rows, first)?;
            self.parts.keep(part);
            first += piece_rows;
        }
        Ok(())
    }

    /// `y = x Wᵀ` for one piece `W` (`m` rows of `n`; rows `piece.first ..` of a larger matrix,
    /// whose noise it takes, or the whole matrix).
    #[allow(clippy::too_many_arguments)]
    fn piece(
        &self, backend: &B, x: &B::Buffer, w: &B::Buffer, id: u32, (m, n, rows): (usize, usize, usize), piece: Option<RowPiece>,
        y: &mut B::Buffer,
    ) -> Result<()> {
        match self.members(rows) {
            None => backend.matmul(x, w, m, n, rows, y)?,
            Some((p, batch)) => {
                let noise = p.matrix_noise(id, m, n, piece);
                match p.noise {
                    Noise::LowRank { .. } => backend.perturbed_matmul(x, w, noise, batch, y)?,
                    Noise::FullRank => backend.full_rank_matmul(x, w, noise, batch, y)?,
                }
            }
        }
        Ok(())
    }

    /// Adds a bias of noise id `id` to every row of `y`: the model's own, or one a trainer holds
    /// with each member's vector noise when the forward is a population's.
    fn bias(&self, backend: &B, y: &mut B::Buffer, bias: Source<B>, id: u32) -> Result<()> {
        let b = match bias {
            Source::Own(b) => return Ok(backend.add_bias(y, b)?),
            Source::Held([b]) => b,
            Source::Held(pieces) => return Err(LlmError::Request(format!("a bias in {} pieces", pieces.len()))),
        };
        match self.members(backend.len(y) / backend.len(b).max(1)) {
            None => backend.add_bias(y, b)?,
            Some((p, batch)) => backend.perturbed_bias(y, b, NoiseStream::new(p.seed, id, p.noise_epoch), p.sigma, batch)?,
        }
        Ok(())
    }
}

impl Perturbation {
    /// The noise of the `m x n` matrix of noise id `id` (rows `piece.first ..` of a larger
    /// one, or the whole): rank `r` clamped to the whole's smaller side, or full rank.
    fn matrix_noise(&self, id: u32, m: usize, n: usize, piece: Option<RowPiece>) -> LowRankNoise {
        let stream = NoiseStream::new(self.seed, id, self.noise_epoch);
        let whole = piece.map_or(m, |p| p.rows);
        let rank = match self.noise {
            Noise::LowRank { rank } => rank.min(whole).min(n),
            Noise::FullRank => 1,
        };
        LowRankNoise { stream, shape: LowRank { m, n, rank, sigma: self.sigma, piece } }
    }
}

/// The pieces of the tensor of noise id `id` (`what`) that `held` gives.
fn held_pieces<'a, B: Transformer>(held: &'a [(u32, Vec<&'a B::Buffer>)], id: u32, what: &str) -> Result<&'a [&'a B::Buffer]> {
    held.iter()
        .find(|(held_id, _)| *held_id == id)
        .map(|(_, pieces)| pieces.as_slice())
        .ok_or_else(|| LlmError::Request(format!("{what} is held by a trainer, and the forward was not given it")))
}

/// The tensors of [`Model::random`]: `tensor(name, shape)` for every tensor of `config`, drawn
/// from `seed`.
pub(crate) fn random_tensors(config: &ModelConfig, seed: u64) -> impl Fn(&str, &[usize]) -> Result<Vec<f32>> {
    let ids = crate::params::registry(config);
    move |name, shape| {
        let param = ids.iter().find(|p| p.name == name).expect("every tensor is registered");
        let len = shape.iter().product::<usize>();
        Ok(match param.role {
            Role::Norm => vec![1.0; len],
            Role::Bias => vec![0.0; len],
            Role::Projection | Role::Embedding => {
                let mut values = vec![0.0f32; len];
                NoiseStream::new(seed, param.id, u32::MAX).fill_normals(0, 0, &mut values);
                values.iter_mut().for_each(|v| *v *= 0.02);
                values
            }
        })
    }
}
