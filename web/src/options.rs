//! What the page asks for: the task, the backend and the configuration fields it may set, read
//! from one JSON object and checked field by field, each bad value refused with a message that
//! names it.

use eggroll::{EggrollError, EsConfig, Result, TaskKind};
use serde_json::{Map, Value};

/// The backend a page run trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebBackend {
    /// The browser's WebGPU adapter (the wgpu backend on `navigator.gpu`).
    WebGpu,
    /// The CPU backend compiled to wasm (one thread, no GPU).
    Cpu,
}

impl WebBackend {
    /// The name the page and its URL use: `webgpu` or `cpu`.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebGpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }
}

/// A run as the page asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// The task.
    pub task: TaskKind,
    /// The backend.
    pub backend: WebBackend,
    /// Population size (N), when set.
    pub population: Option<usize>,
    /// Rank of the perturbations, when set.
    pub rank: Option<usize>,
    /// Epochs, when set.
    pub epochs: Option<u32>,
    /// Seed, when set.
    pub seed: Option<u64>,
}

/// The configuration fields a page may set.
const FIELDS: [&str; 6] = ["task", "backend", "population", "rank", "epochs", "seed"];

impl RunOptions {
    /// Reads `{"task": .., "backend": "webgpu"|"cpu", "population": .., "rank": .., "epochs": ..,
    /// "seed": ..}`: `task` and `backend` are required strings, the numbers optional whole JSON
    /// numbers (missing or `null`: the task's default); unknown fields are refused.
    pub fn parse(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| config(format!("the run's settings are not JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| config("the run's settings must be a JSON object".into()))?;
        if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(config(format!("unknown setting `{unknown}`; the page sets {}", FIELDS.join(", "))));
        }
        let task = string(object, "task")?;
        let task: TaskKind = task.parse()?;
        let backend = match string(object, "backend")?.to_ascii_lowercase().as_str() {
            "webgpu" => WebBackend::WebGpu,
            "cpu" => WebBackend::Cpu,
            other => return Err(config(format!("unknown backend `{other}`; expected webgpu or cpu"))),
        };
        Ok(Self {
            task,
            backend,
            population: whole(object, "population", u32::MAX.into())?.map(|v| v as usize),
            rank: whole(object, "rank", u32::MAX.into())?.map(|v| v as usize),
            epochs: whole(object, "epochs", u32::MAX.into())?.map(|v| v as u32),
            seed: whole(object, "seed", u64::MAX)?,
        })
    }

    /// `defaults` with the fields this run sets, checked ([`EsConfig::validate`]: an odd
    /// population or rank 0 is refused here, naming the field).
    pub fn config(&self, defaults: EsConfig) -> Result<EsConfig> {
        let config = EsConfig {
            population: self.population.unwrap_or(defaults.population),
            rank: self.rank.unwrap_or(defaults.rank),
            epochs: self.epochs.unwrap_or(defaults.epochs),
            seed: self.seed.unwrap_or(defaults.seed),
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }
}

fn config(message: String) -> EggrollError {
    EggrollError::Config(message)
}

fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(config(format!("`{key}` must be a string, got {other}"))),
        None => Err(config(format!("`{key}` is missing"))),
    }
}

/// The whole number `object[key]` in `0..=max`; `None` when missing or `null`.
fn whole(object: &Map<String, Value>, key: &str, max: u64) -> Result<Option<u64>> {
    let value = match object.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    match value.as_u64() {
        Some(v) if v <= max => Ok(Some(v)),
        Some(v) => Err(config(format!("`{key}` must be at most {max}, got {v}"))),
        None => Err(config(format!("`{key}` must be a whole number >= 0, got {value}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(json: &str) -> String {
        RunOptions::parse(json).and_then(|o| o.config(EsConfig::default())).unwrap_err().to_string()
    }

    #[test]
    fn reads_every_field_and_leaves_missing_ones_to_the_task() {
        let o = RunOptions::parse(r#"{"task":"constant","backend":"webgpu","population":64,"epochs":30,"seed":11,"rank":null}"#).unwrap();
        assert_eq!((o.task, o.backend), (TaskKind::Constant, WebBackend::WebGpu));
        assert_eq!((o.population, o.rank, o.epochs, o.seed), (Some(64), None, Some(30), Some(11)));
        let c = o.config(EsConfig { rank: 8, ..EsConfig::default() }).unwrap();
        assert_eq!((c.population, c.rank, c.epochs, c.seed), (64, 8, 30, 11));
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        for (json, says) in [
            (r#"{"task":"nosuch","backend":"cpu"}"#, "unknown task `nosuch`"),
            (r#"{"task":"constant","backend":"metal"}"#, "unknown backend `metal`"),
            (r#"{"backend":"cpu"}"#, "`task` is missing"),
            (r#"{"task":"constant","backend":"cpu","population":63}"#, "population"),
            (r#"{"task":"constant","backend":"cpu","rank":0}"#, "rank"),
            (r#"{"task":"constant","backend":"cpu","epochs":1.5}"#, "`epochs` must be a whole number"),
            (r#"{"task":"constant","backend":"cpu","seed":-1}"#, "`seed` must be a whole number"),
            (r#"{"task":"constant","backend":"cpu","population":"64"}"#, "`population` must be a whole number"),
            (r#"{"task":"constant","backend":"cpu","population":1e300}"#, "`population` must be a whole number"),
            (r#"{"task":"constant","backend":"cpu","sigma":1}"#, "unknown setting `sigma`"),
            ("[1]", "must be a JSON object"),
            ("{", "not JSON"),
        ] {
            let e = refused(json);
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
