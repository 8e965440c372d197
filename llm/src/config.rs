//! A model folder's `config.json`: the architecture, read strictly. Both forms load: the one on
//! the Hugging Face hub (`rope_theta`, `rope_scaling`, `torch_dtype` at the top) and the one
//! transformers 5 writes (`rope_parameters`, `dtype`). Any option that would change the
//! computation and that this crate does not implement is refused, naming it.

use crate::error::{file_error, LlmError, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The model families by `model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `llama`: Llama 2/3.x, SmolLM/SmolLM2, TinyLlama.
    Llama,
    /// `qwen2`: Qwen2/2.5, biases on the q, k and v projections.
    Qwen2,
    /// `qwen3`: Qwen3, RMSNorm of each head of q and k.
    Qwen3,
}

impl Family {
    /// The `model_type` string.
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
        }
    }
}

/// The frequency scaling of Llama 3.1's rotary embedding (`rope_type: llama3`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3Scaling {
    /// How much longer the context is than the one pretrained on.
    pub factor: f64,
    /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
    pub low_freq_factor: f64,
    /// Wavelengths below `original / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// The pretrained context length.
    pub original_max_position_embeddings: f64,
}

/// The rotary position embedding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rope {
    /// The base of the frequencies.
    pub theta: f64,
    /// Llama 3's frequency scaling, when the config has it.
    pub llama3: Option<Llama3Scaling>,
}

impl Rope {
    /// The inverse frequencies of the `head_dim / 2` rotated pairs, as transformers computes
    /// them (in f64 here; transformers rounds them to f32, as the caller does).
    pub fn inverse_frequencies(&self, head_dim: usize) -> Vec<f64> {
        let half = head_dim / 2;
        (0..half)
            .map(|i| {
                let inv = 1.0 / self.theta.powf((2 * i) as f64 / head_dim as f64);
                match self.llama3 {
                    None => inv,
                    Some(s) => {
                        let low_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
                        let high_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
                        let wavelen = 2.0 * std::f64::consts::PI / inv;
                        if wavelen > low_wavelen {
                            inv / s.factor
                        } else if wavelen < high_wavelen {
                            inv
                        } else {
                            let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                                / (s.high_freq_factor - s.low_freq_factor);
                            (1.0 - smooth) * inv / s.factor + smooth * inv
                        }
                    }
                }
            })
            .collect()
    }
}

/// The dtype the weights are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredDtype {
    /// 32-bit floats.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl StoredDtype {
    /// The name transformers gives it (`float32`, `float16`, `bfloat16`).
    pub fn name(self) -> &'static str {
        match self {
            StoredDtype::F32 => "float32",
            StoredDtype::F16 => "float16",
            StoredDtype::Bf16 => "bfloat16",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "float32" | "float" => Some(StoredDtype::F32),
            "float16" | "half" => Some(StoredDtype::F16),
            "bfloat16" => Some(StoredDtype::Bf16),
            _ => None,
        }
    }
}

/// The architecture of a Llama or Qwen checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The family (`model_type`).
    pub family: Family,
    /// Width of the residual stream (`hidden_size`).
    pub hidden: usize,
    /// Width of the gated MLP (`intermediate_size`).
    pub intermediate: usize,
    /// Decoder layers (`num_hidden_layers`).
    pub layers: usize,
    /// Query heads (`num_attention_heads`).
    pub heads: usize,
    /// Key/value heads (`num_key_value_heads`, grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Width of one head (`head_dim`, else `hidden / heads`).
    pub head_dim: usize,
    /// Rows of the embedding and the logits head (`vocab_size`).
    pub vocab: usize,
    /// The longest sequence, prompt and completion together (`max_position_embeddings`).
    pub max_positions: usize,
    /// The RMSNorm epsilon (`rms_norm_eps`).
    pub rms_eps: f64,
    /// The rotary embedding.
    pub rope: Rope,
    /// Whether the logits head is the embedding (`tie_word_embeddings`).
    pub tied: bool,
    /// Whether q, k and v have biases (Qwen2 always; Llama and Qwen3 with `attention_bias`).
    pub qkv_bias: bool,
    /// Whether q and k get a per-head RMSNorm (Qwen3).
    pub qk_norm: bool,
    /// The dtype the config says the weights are stored in (`dtype` or `torch_dtype`), if any.
    pub dtype: Option<StoredDtype>,
    /// `bos_token_id`, when set.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (one or several), when set.
    pub eos_token_ids: Vec<u32>,
}

impl ModelConfig {
    /// Reads `config.json` of a model folder.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join("config.json"))
    }

    /// Reads a config file (a model folder's `config.json`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| file_error(&path, format!("not JSON: {e}")))?;
        let map = value.as_object().ok_or_else(|| file_error(&path, "not a JSON object"))?;
        Self::parse(map).map_err(|e| match e {
            LlmError::File { message, .. } => file_error(&path, message),
            other => other,
        })
    }

    /// Reads a config from its JSON object.
    pub fn parse(map: &Map<String, Value>) -> Result<Self> {
        let c = Fields(map);
        let family = match c.str("model_type")? {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            "qwen3" => Family::Qwen3,
            other => return Err(LlmError::Unsupported(format!("model_type {other:?} (supported: llama, qwen2, qwen3)"))),
        };
        let hidden = c.usize("hidden_size")?;
        let heads = c.usize("num_attention_heads")?;
        let kv_heads = c.opt_usize("num_key_value_heads")?.unwrap_or(heads);
        let head_dim = c.opt_usize("head_dim")?.unwrap_or(hidden / heads.max(1));
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
            return Err(c.bad(format!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")));
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(c.bad(format!("head_dim {head_dim} is not a positive even number")));
        }
        if family != Family::Qwen3 && c.opt_usize("head_dim")?.is_none() && hidden % heads != 0 {
            return Err(c.bad(format!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")));
        }
        let act = c.opt_str("hidden_act")?.unwrap_or("silu");
        if act != "silu" {
            return Err(LlmError::Unsupported(format!("hidden_act {act:?} (only silu)")));
        }
        if c.opt_bool("mlp_bias")?.unwrap_or(false) {
            return Err(LlmError::Unsupported("mlp_bias true (biases in the MLP)".into()));
        }
        let attention_bias = c.opt_bool("attention_bias")?.unwrap_or(false);
        if attention_bias && family == Family::Llama {
            return Err(LlmError::Unsupported("attention_bias true on llama (a bias on the output projection)".into()));
        }
        if c.opt_bool("use_sliding_window")?.unwrap_or(false) {
            return Err(LlmError::Unsupported("use_sliding_window true (sliding-window attention)".into()));
        }
        if let Some(types) = map.get("layer_types").filter(|v| !v.is_null()) {
            let all_full = types.as_array().is_some_and(|t| t.iter().all(|t| t.as_str() == Some("full_attention")));
            if !all_full {
                return Err(LlmError::Unsupported(format!("layer_types {types} (only full_attention)")));
            }
        }
        let rope = rope(&c)?;
        let dtype = match map.get("dtype").or_else(|| map.get("torch_dtype")).filter(|v| !v.is_null()) {
            None => None,
            Some(v) => {
                let name = v.as_str().ok_or_else(|| c.bad(format!("dtype {v} is not a string")))?;
                Some(StoredDtype::parse(name).ok_or_else(|| LlmError::Unsupported(format!("dtype {name:?}")))?)
            }
        };
        Ok(ModelConfig {
            family,
            hidden,
            intermediate: c.usize("intermediate_size")?,
            layers: c.usize("num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            vocab: c.usize("vocab_size")?,
            max_positions: c.usize("max_position_embeddings")?,
            rms_eps: c.f64("rms_norm_eps")?,
            rope,
            tied: c.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            qkv_bias: family == Family::Qwen2 || attention_bias,
            qk_norm: family == Family::Qwen3,
            dtype,
            bos_token_id: c.opt_u32("bos_token_id")?,
            eos_token_ids: token_ids(map.get("eos_token_id")).map_err(|e| c.bad(format!("eos_token_id: {e}")))?,
        })
    }

    /// Parameters of the model (the logits head counted once when tied).
    pub fn parameter_count(&self) -> u64 {
        let (h, q, kv, i) =
            (self.hidden as u64, (self.heads * self.head_dim) as u64, (self.kv_heads * self.head_dim) as u64, self.intermediate as u64);
        let attention = h * q
            + 2 * h * kv
            + q * h
            + if self.qkv_bias { q + 2 * kv } else { 0 }
            + if self.qk_norm { 2 * self.head_dim as u64 } else { 0 };
        let layer = attention + 3 * h * i + 2 * h;
        let embedding = self.vocab as u64 * h;
        embedding + self.layers as u64 * layer + h + if self.tied { 0 } else { embedding }
    }
}

/// The rotary embedding of either config form: `rope_parameters` (transformers 5) or
/// `rope_theta` with `rope_scaling` (the hub's).
fn rope(c: &Fields) -> Result<Rope> {
    let params = match c.0.get("rope_parameters").filter(|v| !v.is_null()) {
        Some(Value::Object(p)) => Some(p.clone()),
        Some(other) => return Err(c.bad(format!("rope_parameters {other} is not an object"))),
        None => None,
    };
    let scaling = match c.0.get("rope_scaling").filter(|v| !v.is_null()) {
        Some(Value::Object(s)) => Some(s.clone()),
        Some(other) => return Err(c.bad(format!("rope_scaling {other} is not an object"))),
        None => None,
    };
    // transformers 5 keeps everything in rope_parameters; the hub's form splits theta and scaling.
    let merged = params.or(scaling).unwrap_or_default();
    let p = Fields(&merged);
    let theta = match p.opt_f64("rope_theta")? {
        Some(theta) => theta,
        None => c.opt_f64("rope_theta")?.unwrap_or(10_000.0),
    };
    let kind = p.opt_str("rope_type")?.or(p.opt_str("type")?).unwrap_or("default");
    let llama3 = match kind {
        "default" => None,
        "llama3" => Some(Llama3Scaling {
            factor: p.f64("factor")?,
            low_freq_factor: p.f64("low_freq_factor")?,
            high_freq_factor: p.f64("high_freq_factor")?,
            original_max_position_embeddings: p.f64("original_max_position_embeddings")?,
        }),
        other => return Err(LlmError::Unsupported(format!("rope type {other:?} (supported: default, llama3)"))),
    };
    if let Some(s) = llama3 {
        if !(s.factor > 0.0
            && s.high_freq_factor > s.low_freq_factor
            && s.low_freq_factor > 0.0
            && s.original_max_position_embeddings > 0.0)
        {
            return Err(c.bad(format!("llama3 rope scaling {s:?} is not valid")));
        }
    }
    if !(theta.is_finite() && theta > 0.0) {
        return Err(c.bad(format!("rope_theta {theta} is not a positive number")));
    }
    Ok(Rope { theta, llama3 })
}

/// Token ids given as one number or a list of them; none when absent or null.
pub(crate) fn token_ids(value: Option<&Value>) -> std::result::Result<Vec<u32>, String> {
    let one = |v: &Value| v.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| format!("{v} is not a token id"));
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(ids)) => ids.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// Typed reads of a JSON object's fields, each error naming the field.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn bad(&self, message: String) -> LlmError {
        LlmError::File { path: String::new(), message }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn required<T>(&self, key: &str, v: Option<T>) -> Result<T> {
        v.ok_or_else(|| self.bad(format!("{key} is missing")))
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| v.as_u64().and_then(|v| usize::try_from(v).ok()).ok_or_else(|| self.bad(format!("{key} {v} is not a whole number"))))
            .transpose()
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.required(key, self.opt_usize(key)?)?;
        if v == 0 {
            return Err(self.bad(format!("{key} is 0")));
        }
        Ok(v)
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt_usize(key)?.map(|v| u32::try_from(v).map_err(|_| self.bad(format!("{key} {v} is beyond u32")))).transpose()
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| v.as_f64().ok_or_else(|| self.bad(format!("{key} {v} is not a number")))).transpose()
    }

    fn f64(&self, key: &str) -> Result<f64> {
        self.required(key, self.opt_f64(key)?)
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|v| v.as_bool().ok_or_else(|| self.bad(format!("{key} {v} is not true or false")))).transpose()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key).map(|v| v.as_str().ok_or_else(|| self.bad(format!("{key} {v} is not a string")))).transpose()
    }

    fn str(&self, key: &str) -> Result<&str> {
        self.required(key, self.opt_str(key)?)
    }
}
