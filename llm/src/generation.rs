//! A model folder's `generation_config.json`: the end-of-sequence ids and the sampling defaults.

use crate::config::{token_ids, ModelConfig};
use crate::error::{file_error, Result};
use serde_json::Value;
use std::path::Path;

/// How the model generates by default.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    /// Ids that end a completion (`generation_config.json`'s, else `config.json`'s).
    pub eos_token_ids: Vec<u32>,
    /// The sampling temperature; 0 is greedy (also when `do_sample` is false or absent).
    pub temperature: f32,
    /// Nucleus sampling's probability mass (1: all tokens).
    pub top_p: f32,
}

impl GenerationConfig {
    /// Reads `generation_config.json` of `dir` when present; `config` gives what it lacks.
    pub fn load(dir: &Path, config: &ModelConfig) -> Result<Self> {
        let mut generation = GenerationConfig { eos_token_ids: config.eos_token_ids.clone(), temperature: 0.0, top_p: 1.0 };
        let path = dir.join("generation_config.json");
        if !path.exists() {
            return Ok(generation);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| file_error(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| file_error(&path, format!("not JSON: {e}")))?;
        let eos = token_ids(value.get("eos_token_id")).map_err(|e| file_error(&path, format!("eos_token_id: {e}")))?;
        if !eos.is_empty() {
            generation.eos_token_ids = eos;
        }
        let number = |key: &str| -> Result<Option<f32>> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_f64().map(|v| Some(v as f32)).ok_or_else(|| file_error(&path, format!("{key} {v} is not a number"))),
            }
        };
        if value.get("do_sample").and_then(Value::as_bool) == Some(true) {
            generation.temperature = number("temperature")?.unwrap_or(1.0);
            generation.top_p = number("top_p")?.unwrap_or(1.0);
        }
        let valid =
            generation.temperature >= 0.0 && generation.temperature.is_finite() && generation.top_p > 0.0 && generation.top_p <= 1.0;
        if !valid {
            return Err(file_error(&path, format!("temperature {} / top_p {} out of range", generation.temperature, generation.top_p)));
        }
        Ok(generation)
    }
}
