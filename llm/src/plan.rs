//! The memory a generation needs, and its refusal when that is beyond the machine or the
//! adapter: the weights (held once, their matrices in f32 or a 16-bit storage type), every sequence's key and value caches, the activations
//! of the widest step, and the logits read back.

use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::storage::weight_bytes;
use eggroll_backend::{DType, MemoryLimits};

/// The bytes of each part of a population's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryNeed {
    /// The weights, once (and, when fine-tuning, the trainer's state of the projections).
    pub weights: u64,
    /// The key and value caches of every sequence.
    pub caches: u64,
    /// The activations of the widest forward (a prompt's prefill for every member).
    pub activations: u64,
    /// The logits of one step, on the device and read back.
    pub logits: u64,
    /// The largest single buffer (what must fit the adapter's buffer and binding limits; the
    /// embedding and head tables and a model's own projections are split to fit them, so they
    /// are not among these).
    pub largest_buffer: u64,
}

impl MemoryNeed {
    /// Every part together.
    pub fn total(&self) -> u64 {
        self.weights + self.caches + self.activations + self.logits
    }

    /// What `members` members answering `prompts` prompts of up to `prompt_tokens` tokens with
    /// up to `new_tokens` new ones need, the model's matrices stored as `weights`.
    pub fn of(config: &ModelConfig, weights: DType, members: usize, prompts: usize, prompt_tokens: usize, new_tokens: usize) -> Self {
        let f = 4u64;
        let sequences = (members * prompts) as u64;
        let positions = (prompt_tokens + new_tokens) as u64;
        let kv = (config.kv_heads * config.head_dim) as u64;
        let layer_cache = sequences * positions * kv * f;
        let prefill_rows = (members * prompt_tokens.max(1)) as u64;
        let decode_rows = sequences;
        let rows = prefill_rows.max(decode_rows);
        let q = (config.heads * config.head_dim) as u64;
        let (h, i) = (config.hidden as u64, config.intermediate as u64);
        // The residual stream and its normed copy, q, k, v, the attended values, the projection,
        // and the MLP's gate and up.
        let activations = rows * (3 * h + 2 * q + 2 * kv + 2 * i) * f;
        let logits = 2 * sequences * config.vocab as u64 * f;
        // The embedding, the head and the projections are held in pieces within the limits.
        MemoryNeed {
            weights: weight_bytes(config, weights),
            caches: 2 * config.layers as u64 * layer_cache,
            activations,
            logits,
            largest_buffer: layer_cache.max(rows * i * f).max(logits / 2),
        }
    }

    /// Refuses the need when it is beyond `host` bytes of host memory (when known) or the
    /// adapter's `limits`, naming the need and the limit.
    pub fn check(&self, host: Option<(u64, &str)>, limits: MemoryLimits) -> Result<()> {
        let gib = |b: u64| format!("{:.2} GiB", b as f64 / f64::from(1u32 << 30));
        if let Some((bytes, source)) = host {
            if self.total() > bytes {
                return Err(LlmError::Request(format!(
                    "the generation needs {} ({} weights, {} KV caches, {} activations, {} logits), beyond the {} of {source}",
                    gib(self.total()),
                    gib(self.weights),
                    gib(self.caches),
                    gib(self.activations),
                    gib(self.logits),
                    gib(bytes)
                )));
            }
        }
        if let Some(device) = limits.device_bytes.filter(|&d| self.total() > d) {
            return Err(LlmError::Request(format!(
                "the generation needs {} of device memory, beyond the adapter's {}",
                gib(self.total()),
                gib(device)
            )));
        }
        for (limit, what) in [(limits.max_buffer_bytes, "largest buffer"), (limits.max_binding_bytes, "storage binding limit")] {
            if let Some(limit) = limit.filter(|&l| self.largest_buffer > l) {
                return Err(LlmError::Request(format!(
                    "the generation needs a buffer of {}, beyond the adapter's {what} of {}",
                    gib(self.largest_buffer),
                    gib(limit)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama-3-8B's shapes: its MLP projections (14 336 x 4096, 224 MiB) are beyond a 128 MiB
    /// binding limit.
    fn config() -> ModelConfig {
        let json = serde_json::json!({
            "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "hidden_act": "silu",
        });
        ModelConfig::parse(json.as_object().unwrap()).unwrap()
    }

    #[test]
    fn sixteen_bit_matrices_halve_the_weights_but_not_the_norms() {
        let c = config();
        let f32_need = MemoryNeed::of(&c, DType::F32, 2, 1, 16, 16);
        assert_eq!(f32_need.weights, c.parameter_count() * 4);
        let vectors = (c.layers * 2 + 1) * c.hidden;
        for dtype in [DType::Bf16, DType::F16] {
            let need = MemoryNeed::of(&c, dtype, 2, 1, 16, 16);
            assert_eq!(need.weights, (c.parameter_count() - vectors as u64) * 2 + vectors as u64 * 4);
            assert_eq!((need.caches, need.activations, need.logits), (f32_need.caches, f32_need.activations, f32_need.logits));
        }
    }

    #[test]
    fn projections_beyond_a_binding_limit_are_split_not_refused() {
        let limits = MemoryLimits { max_buffer_bytes: Some(1 << 30), max_binding_bytes: Some(128 << 20), device_bytes: None };
        let need = MemoryNeed::of(&config(), DType::F32, 2, 1, 16, 16);
        need.check(None, limits).expect("the projections are held in pieces within the binding limit");
        // A population whose caches are beyond the limit is refused, naming it.
        let crowd = MemoryNeed::of(&config(), DType::F32, 4096, 1, 16, 16);
        let err = crowd.check(None, limits).unwrap_err().to_string();
        assert!(err.contains("needs a buffer of") && err.contains("beyond the adapter's"), "{err}");
    }
}
