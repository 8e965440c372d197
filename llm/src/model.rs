//! The forward of a Llama, Qwen2 or Qwen3 model on any backend with the transformer kernels:
//! weights uploaded once from the checkpoint, each sequence's keys and values in a cache slot of
//! its own, and the logits of the rows asked for.

use crate::config::{Family, ModelConfig};
use crate::error::{LlmError, Result};
use crate::weights::Weights;
use eggroll_backend::transformer::{AttentionShape, Transformer};
use std::path::Path;

/// One decoder layer's weights on the device.
struct Layer<B: Transformer> {
    input_norm: B::Buffer,
    post_norm: B::Buffer,
    q: B::Buffer,
    k: B::Buffer,
    v: B::Buffer,
    o: B::Buffer,
    qkv_bias: Option<[B::Buffer; 3]>,
    qk_norm: Option<[B::Buffer; 2]>,
    gate: B::Buffer,
    up: B::Buffer,
    down: B::Buffer,
}

/// A pretrained model on a backend: its config and its weights, held once.
pub struct Model<B: Transformer> {
    /// The architecture.
    pub config: ModelConfig,
    embed: B::Buffer,
    head: Option<B::Buffer>,
    norm: B::Buffer,
    layers: Vec<Layer<B>>,
    inv_freq: Vec<f32>,
}

/// The key and value caches of every layer: `slots` sequences of up to `capacity` positions.
pub struct KvCache<B: Transformer> {
    /// The shape the attention kernel reads.
    pub shape: AttentionShape,
    layers: Vec<(B::Buffer, B::Buffer)>,
}

/// One forward call: `slots.len()` sequences, each adding `new` tokens after the `starts[s]`
/// positions its cache slot holds; `tokens` row by row (sequence, then position).
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
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
    /// against it and uploaded in f32.
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        let config = ModelConfig::load(dir)?;
        let weights = Weights::open(dir)?;
        weights.check(&config)?;
        Self::from_weights(backend, config, &weights)
    }

    /// Uploads `weights` (already checked against `config`).
    pub fn from_weights(backend: &B, config: ModelConfig, weights: &Weights) -> Result<Self> {
        let (h, hd, i) = (config.hidden, config.head_dim, config.intermediate);
        let (q, kv) = (config.heads * hd, config.kv_heads * hd);
        let upload = |name: &str, shape: &[usize]| -> Result<B::Buffer> { Ok(backend.upload(&weights.f32(name, shape)?)?) };
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = |name: &str| format!("model.layers.{l}.{name}");
            layers.push(Layer {
                input_norm: upload(&p("input_layernorm.weight"), &[h])?,
                post_norm: upload(&p("post_attention_layernorm.weight"), &[h])?,
                q: upload(&p("self_attn.q_proj.weight"), &[q, h])?,
                k: upload(&p("self_attn.k_proj.weight"), &[kv, h])?,
                v: upload(&p("self_attn.v_proj.weight"), &[kv, h])?,
                o: upload(&p("self_attn.o_proj.weight"), &[h, q])?,
                qkv_bias: match config.qkv_bias {
                    true => Some([
                        upload(&p("self_attn.q_proj.bias"), &[q])?,
                        upload(&p("self_attn.k_proj.bias"), &[kv])?,
                        upload(&p("self_attn.v_proj.bias"), &[kv])?,
                    ]),
                    false => None,
                },
                qk_norm: match config.qk_norm {
                    true => Some([upload(&p("self_attn.q_norm.weight"), &[hd])?, upload(&p("self_attn.k_norm.weight"), &[hd])?]),
                    false => None,
                },
                gate: upload(&p("mlp.gate_proj.weight"), &[i, h])?,
                up: upload(&p("mlp.up_proj.weight"), &[i, h])?,
                down: upload(&p("mlp.down_proj.weight"), &[h, i])?,
            });
        }
        let embed = upload("model.embed_tokens.weight", &[config.vocab, h])?;
        let head = if config.tied { None } else { Some(upload("lm_head.weight", &[config.vocab, h])?) };
        let norm = upload("model.norm.weight", &[h])?;
        // transformers keeps the inverse frequencies in f32.
        let inv_freq = config.rope.inverse_frequencies(hd).into_iter().map(|f| f as f32).collect();
        Ok(Model { config, embed, head, norm, layers, inv_freq })
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
        Ok(KvCache { shape, layers })
    }

    /// Runs `step` and returns the logits of the rows `logits` asks for (`vocab` each).
    pub fn forward(&self, backend: &B, step: Step, cache: &mut KvCache<B>, logits: Logits) -> Result<B::Buffer> {
        let c = &self.config;
        let Step { tokens, slots, starts, new } = step;
        let rows = slots.len() * new;
        if tokens.len() != rows || starts.len() != slots.len() {
            return Err(LlmError::Request(format!("{} tokens for {} sequences of {new} new positions", tokens.len(), slots.len())));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(LlmError::Request(format!("token id {bad} is beyond the vocabulary of {}", c.vocab)));
        }
        let (h, hd, q_width, kv_width) = (c.hidden, c.head_dim, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let eps = c.rms_eps as f32;
        let positions: Vec<u32> = starts.iter().flat_map(|&s| (0..new as u32).map(move |t| s + t)).collect();
        let mut x = backend.zeros(rows * h)?;
        backend.embedding(tokens, &self.embed, h, &mut x)?;
        let mut normed = backend.zeros(rows * h)?;
        let (mut q, mut k, mut v) = (backend.zeros(rows * q_width)?, backend.zeros(rows * kv_width)?, backend.zeros(rows * kv_width)?);
        let mut attended = backend.zeros(rows * q_width)?;
        let mut projected = backend.zeros(rows * h)?;
        let (mut gate, mut up) = (backend.zeros(rows * c.intermediate)?, backend.zeros(rows * c.intermediate)?);
        for (layer, (k_cache, v_cache)) in self.layers.iter().zip(cache.layers.iter_mut()) {
            backend.copy(&x, &mut normed)?;
            backend.rms_norm(&mut normed, &layer.input_norm, h, eps)?;
            backend.matmul(&normed, &layer.q, q_width, h, rows, &mut q)?;
            backend.matmul(&normed, &layer.k, kv_width, h, rows, &mut k)?;
            backend.matmul(&normed, &layer.v, kv_width, h, rows, &mut v)?;
            if let Some([qb, kb, vb]) = &layer.qkv_bias {
                backend.add_bias(&mut q, qb)?;
                backend.add_bias(&mut k, kb)?;
                backend.add_bias(&mut v, vb)?;
            }
            if let Some([qn, kn]) = &layer.qk_norm {
                backend.rms_norm(&mut q, qn, hd, eps)?;
                backend.rms_norm(&mut k, kn, hd, eps)?;
            }
            backend.rope(&mut q, &positions, c.heads, hd, &self.inv_freq)?;
            backend.rope(&mut k, &positions, c.kv_heads, hd, &self.inv_freq)?;
            backend.attention(&q, &k, &v, cache.shape, slots, starts, new, k_cache, v_cache, &mut attended)?;
            backend.matmul(&attended, &layer.o, h, q_width, rows, &mut projected)?;
            backend.add(&mut x, &projected)?;
            backend.copy(&x, &mut normed)?;
            backend.rms_norm(&mut normed, &layer.post_norm, h, eps)?;
            backend.matmul(&normed, &layer.gate, c.intermediate, h, rows, &mut gate)?;
            backend.matmul(&normed, &layer.up, c.intermediate, h, rows, &mut up)?;
            backend.silu_mul(&mut gate, &up)?;
            backend.matmul(&gate, &layer.down, h, c.intermediate, rows, &mut projected)?;
            backend.add(&mut x, &projected)?;
        }
        // The rows asked for, gathered before the head (the head is the largest matmul).
        let (x, out_rows) = match logits {
            Logits::All => (x, rows),
            Logits::Last => {
                let last: Vec<u32> = (0..slots.len()).map(|s| ((s + 1) * new - 1) as u32).collect();
                let mut gathered = backend.zeros(slots.len() * h)?;
                backend.embedding(&last, &x, h, &mut gathered)?;
                (gathered, slots.len())
            }
        };
        let mut x = x;
        backend.rms_norm(&mut x, &self.norm, h, eps)?;
        let mut out = backend.zeros(out_rows * c.vocab)?;
        backend.matmul(&x, self.head.as_ref().unwrap_or(&self.embed), c.vocab, h, out_rows, &mut out)?;
        Ok(out)
    }

    /// The family, for reports.
    pub fn family(&self) -> Family {
        self.config.family
    }
}
