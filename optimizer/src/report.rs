//! The summary of a training run: what `eggroll train --json` prints and the web page shows, one
//! JSON object built in one place.

use crate::config::EsConfig;
use crate::tasks::Evaluation;
use eggroll_backend::AdapterDescription;
use serde_json::{json, Value};

/// What a training run ends with.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The task's name.
    pub task: &'static str,
    /// The adapter the run trained on.
    pub adapter: AdapterDescription,
    /// The run's configuration.
    pub config: EsConfig,
    /// The last evaluation of the mean model.
    pub eval: Evaluation,
    /// Mean training time of the epochs this run made (evaluations excluded).
    pub ms_per_epoch: f64,
    /// The epoch a resumed run started from.
    pub resumed_from: Option<u32>,
    /// The task's reference figures ([`crate::Task::baselines`]).
    pub baselines: Vec<(&'static str, f64)>,
    /// Tokens the population evaluated per second of training, for sequence tasks.
    pub tokens_per_second: Option<f64>,
    /// Where the time went beyond `ms_per_epoch`, by name ([`crate::session::Training::timings`]).
    pub timings: Vec<(&'static str, f64)>,
    /// The host memory the run planned to use ([`crate::plan::MemoryPlan::host_bytes`]).
    pub memory_plan_bytes: Option<u64>,
    /// Whether the backend kept each noise epoch's draws ([`crate::plan::NoiseCache`]), when the
    /// run was planned.
    pub noise_cache: Option<bool>,
}

impl Summary {
    /// `"cpu"` for the CPU backend, `"wgpu"` for any WebGPU adapter (native or a browser's).
    pub fn backend(&self) -> &'static str {
        if self.adapter.backend == "cpu" {
            "cpu"
        } else {
            "wgpu"
        }
    }

    /// The JSON object: `task, method, backend, api, adapter, device_type, epochs, population, rank, seed,
    /// resumed_from, final_train_loss, final_<metric>, ms_per_epoch`, then the baselines and
    /// timings by name and `tokens_per_second` where the run has them.
    pub fn to_json(&self) -> Value {
        let (c, eval) = (&self.config, &self.eval);
        let mut out = json!({
            "task": self.task, "method": c.method.to_string(), "backend": self.backend(), "api": self.adapter.backend, "adapter": self.adapter.name,
            "device_type": self.adapter.device_type, "epochs": c.epochs,
            "population": c.population, "rank": c.rank, "seed": c.seed, "resumed_from": self.resumed_from,
            "final_train_loss": json_number(eval.train_loss), "ms_per_epoch": self.ms_per_epoch,
        });
        out[format!("final_{}", eval.metric_name)] = json_number(eval.metric);
        for &(key, value) in &self.baselines {
            out[key] = json_number(value as f32);
        }
        if let Some(rate) = self.tokens_per_second {
            out["tokens_per_second"] = json!(rate);
        }
        for &(key, ms) in &self.timings {
            out[key] = json!(ms);
        }
        if let Some(bytes) = self.memory_plan_bytes {
            out["memory_plan_bytes"] = json!(bytes);
        }
        if let Some(on) = self.noise_cache {
            out["noise_cache"] = json!(if on { "on" } else { "off" });
        }
        out
    }
}

/// `x` as a JSON number written with f32's shortest round-trip digits (`0.1`, not
/// `0.10000000149011612`); `null` when it is not finite.
pub fn json_number(x: f32) -> Value {
    x.to_string().parse::<f64>().map_or(Value::Null, |v| json!(v))
}
