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
    /// The configuration fields the page sets (of `CONFIG_FIELDS`), checked, as a partial
    /// [`EsConfig`]: the overlay of the task's defaults, as the command line's `--config` file is.
    pub config: Map<String, Value>,
}

/// The configuration fields a page may set, with the largest value of each.
const CONFIG_FIELDS: [(&str, u64); 4] =
    [("population", u32::MAX as u64), ("rank", u32::MAX as u64), ("epochs", u32::MAX as u64), ("seed", u64::MAX)];

impl RunOptions {
    /// Reads `{"task": .., "backend": "webgpu"|"cpu", "population": .., "rank": .., "epochs": ..,
    /// "seed": ..}`: `task` and `backend` are required strings, the numbers optional whole JSON
    /// numbers (missing or `null`: the task's default); unknown fields are refused.
    pub fn parse(json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json).map_err(|e| config(format!("the run's settings are not JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| config("the run's settings must be a JSON object".into()))?;
        let fields: Vec<&str> = ["task", "backend"].into_iter().chain(CONFIG_FIELDS.map(|(key, _)| key)).collect();
        if let Some(unknown) = object.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(config(format!("unknown setting `{unknown}`; the page sets {}", fields.join(", "))));
        }
        let task = string(object, "task")?;
        let task: TaskKind = task.parse()?;
        let backend = match string(object, "backend")?.to_ascii_lowercase().as_str() {
            "webgpu" => WebBackend::WebGpu,
            "cpu" => WebBackend::Cpu,
            other => return Err(config(format!("unknown backend `{other}`; expected webgpu or cpu"))),
        };
        let mut config = Map::new();
        for (key, max) in CONFIG_FIELDS {
            if let Some(v) = whole(object, key, max)? {
                config.insert(key.to_string(), v.into());
            }
        }
        Ok(Self { task, backend, config })
    }

    /// `defaults` with the fields this run sets ([`EsConfig::overlay`]);
    /// [`RunSpec::config`](eggroll::run::RunSpec::config) validates the result (an odd population or rank 0 is refused there, naming the field).
    pub fn config(&self, defaults: EsConfig) -> Result<EsConfig> {
        defaults.overlay(self.config.clone())
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
    use eggroll::run::RunSpec;

    fn refused(json: &str) -> String {
        RunOptions::parse(json).and_then(|o| RunSpec::new(o.task).config(|defaults| o.config(defaults))).unwrap_err().to_string()
    }

    #[test]
    fn reads_every_field_and_leaves_missing_ones_to_the_task() {
        let o = RunOptions::parse(r#"{"task":"constant","backend":"webgpu","population":64,"epochs":30,"seed":11,"rank":null}"#).unwrap();
        assert_eq!((o.task, o.backend), (TaskKind::Constant, WebBackend::WebGpu));
        assert_eq!(Value::Object(o.config.clone()), serde_json::json!({"population": 64, "epochs": 30, "seed": 11}));
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
