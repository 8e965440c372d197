//! A page's training run: the run `eggroll train` would build ([`RunSpec`]) on the CPU backend or
//! the browser's WebGPU adapter, driven one epoch at a time ([`Driver`]) so that the page (or its
//! worker) never blocks.

use crate::clock::now_ms;
use crate::options::{RunOptions, WebBackend};
use eggroll::report::json_number;
use eggroll::run::{AnySession, Driver, EvalEvery, RunSpec, Workers};
use eggroll::session::Training;
use eggroll::{CpuBackend, EggrollError, EsConfig, Result, SelectedBackend, TaskKind};
use eggroll::{WgpuBackend, WgpuOptions};
use serde_json::{json, Value};

/// Evaluate the mean model every this many epochs and after the last one, as `eggroll train`
/// does by default (`--eval-every 10`).
pub const EVAL_EVERY: u32 = 10;

/// The defaults of `kind`'s run, as `eggroll train` starts from them.
pub fn default_config(kind: TaskKind) -> Result<EsConfig> {
    RunSpec::new(kind).config(Ok::<_, EggrollError>)
}

/// A run of any page task on either backend.
pub struct Run {
    driver: Driver<AnySession<SelectedBackend>>,
}

impl Run {
    /// Builds the task (its data drawn from the run's seed, as `eggroll train` does), opens the
    /// backend and the trainer. WebGPU missing in this browser is an error that says so.
    pub async fn start(options: &RunOptions) -> Result<Self> {
        let spec = RunSpec::new(options.task);
        let config = spec.config(|defaults| options.config(defaults))?;
        let backend = match options.backend {
            WebBackend::Cpu => SelectedBackend::Cpu(CpuBackend::new()),
            WebBackend::WebGpu => SelectedBackend::Wgpu(Box::new(WgpuBackend::new(&WgpuOptions::default()).await.map_err(|e| {
                EggrollError::Config(format!(
                    "this browser gave no WebGPU adapter ({e}); use a browser with WebGPU enabled, or the CPU backend (backend=cpu)"
                ))
            })?)),
        };
        let mut driver = Driver::new(spec.build(config, Workers::one(backend))?, now_ms);
        // The adapter, named as the browser names it where wgpu has no name for it.
        let adapter = crate::adapter::named(driver.adapter().clone()).await;
        driver.set_adapter(adapter);
        Ok(Self { driver })
    }

    /// The WebGPU backend the run trains on; `None` on the CPU backend.
    pub fn wgpu_backend(&self) -> Option<&WgpuBackend> {
        match self.driver.session().backend() {
            SelectedBackend::Wgpu(backend) => Some(backend),
            SelectedBackend::Cpu(_) => None,
        }
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u32 {
        self.driver.session().epoch()
    }

    /// Epochs the run trains in all.
    pub fn epochs(&self) -> u32 {
        self.driver.session().config().epochs
    }

    /// One epoch's record: `epoch, mean_fitness, lr, sigma, ms`, and `train_loss, metric` on
    /// evaluated epochs (every [`EVAL_EVERY`] epochs and after the last).
    pub async fn step(&mut self) -> Result<Value> {
        if self.epoch() >= self.epochs() {
            return Err(EggrollError::Config(format!("the run has trained all its {} epochs", self.epochs())));
        }
        let r = self.driver.step_async(&mut EvalEvery(EVAL_EVERY)).await?;
        let mut record = json!({
            "epoch": r.epoch, "mean_fitness": json_number(r.stats.mean_fitness), "lr": json_number(r.stats.lr),
            "sigma": json_number(r.stats.sigma), "ms": r.ms,
        });
        if let Some(eval) = r.eval {
            record["train_loss"] = json_number(eval.train_loss);
            record["metric"] = json_number(eval.metric);
        }
        Ok(record)
    }

    /// The `eggroll train --json` object of the run so far.
    pub async fn result(&mut self) -> Result<Value> {
        Ok(self.driver.summary_async().await?.to_json())
    }

    /// The task, backend, adapter and configuration of the run `options` started, for the page.
    pub fn info(&self, options: &RunOptions) -> Value {
        let (adapter, config) = (self.driver.adapter(), self.driver.session().config());
        json!({
            "task": options.task.name(), "backend": options.backend.name(),
            "adapter": {
                "name": adapter.name, "backend": adapter.backend, "device_type": adapter.device_type,
                "driver": adapter.driver, "features": adapter.features,
            },
            "epochs": config.epochs, "population": config.population, "rank": config.rank, "seed": config.seed,
            "metric": options.task.metric_name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(json: &str) -> RunOptions {
        RunOptions::parse(json).unwrap()
    }

    #[test]
    fn a_cpu_run_steps_evaluates_and_reports_like_the_command() {
        let options = options(r#"{"task":"constant","backend":"cpu","epochs":12,"seed":3}"#);
        let mut run = pollster::block_on(Run::start(&options)).unwrap();
        assert_eq!((run.epoch(), run.epochs()), (0, 12));
        let records: Vec<Value> = (0..12).map(|_| pollster::block_on(run.step()).unwrap()).collect();
        for (i, r) in records.iter().enumerate() {
            let epoch = i as u32 + 1;
            assert_eq!(r["epoch"], json!(epoch));
            assert!(r["mean_fitness"].is_f64() && r["ms"].as_f64().unwrap() >= 0.0, "{r}");
            let evaluated = epoch.is_multiple_of(EVAL_EVERY) || epoch == 12;
            assert_eq!(r.get("train_loss").is_some() && r.get("metric").is_some(), evaluated, "{r}");
        }
        let e = pollster::block_on(run.step()).unwrap_err().to_string();
        assert!(e.contains("all its 12 epochs"), "{e}");
        let result = pollster::block_on(run.result()).unwrap();
        assert_eq!(result["task"], "constant");
        assert_eq!(result["backend"], "cpu");
        assert_eq!((result["epochs"].clone(), result["population"].clone(), result["seed"].clone()), (json!(12), json!(64), json!(3)));
        assert_eq!(result["final_train_loss"], records[11]["train_loss"]);
        assert_eq!(result["final_test_loss"], records[11]["metric"]);
        let info = run.info(&options);
        assert_eq!((info["backend"].as_str(), info["metric"].as_str()), (Some("cpu"), Some("test_loss")));
    }

    #[test]
    fn the_run_matches_the_library_trainer_of_the_same_settings() {
        let options = options(r#"{"task":"regression","backend":"cpu","population":256,"epochs":3,"seed":5}"#);
        let mut run = pollster::block_on(Run::start(&options)).unwrap();
        let fitness: Vec<Value> = (0..3).map(|_| pollster::block_on(run.step()).unwrap()["mean_fitness"].clone()).collect();
        let mut task = TaskKind::Regression.build(5).unwrap();
        let config = EsConfig { population: 256, epochs: 3, seed: 5, ..eggroll::Task::default_config(&task) };
        let mut es = eggroll::FloatTrainer::new(CpuBackend::new(), eggroll::Task::model(&task), config).unwrap();
        for want in fitness {
            let stats = pollster::block_on(eggroll::train_epoch_async(&mut task, &mut es)).unwrap();
            assert_eq!(json_number(stats.mean_fitness), want);
        }
    }
}
