//! A page's training run: a task and its trainer ([`Session`]) on the CPU backend or the
//! browser's WebGPU adapter, stepped one epoch at a time so that the page (or its worker) never
//! blocks.

use crate::clock::now_ms;
use crate::options::{RunOptions, WebBackend};
use eggroll::report::{json_number, Summary};
use eggroll::session::{EggSession, FloatSession, Session};
use eggroll::tasks::{CharLm, Egg};
use eggroll::{AdapterDescription, AnyTask, CpuBackend, EggrollError, EsConfig, Evaluation, Result, Task, TaskKind};
use eggroll::{WgpuBackend, WgpuOptions};
use serde_json::{json, Value};

/// Evaluate the mean model every this many epochs and after the last one, as `eggroll train`
/// does by default (`--eval-every 10`).
pub const EVAL_EVERY: u32 = 10;

/// A session with the run's timings.
pub struct Trainer<S: Session> {
    session: S,
    /// The adapter, named as the browser names it where wgpu has no name for it.
    adapter: AdapterDescription,
    /// Training time of the epochs stepped so far (evaluations excluded).
    total_ms: f64,
    /// Epochs stepped.
    stepped: u32,
    /// The last evaluation and the epoch it was made at.
    last_eval: Option<(u32, Evaluation)>,
}

impl<S: Session> Trainer<S> {
    async fn new(session: S) -> Self {
        let adapter = crate::adapter::named(session.adapter()).await;
        Self { session, adapter, total_ms: 0.0, stepped: 0, last_eval: None }
    }

    fn epoch(&self) -> u32 {
        self.session.epoch()
    }

    fn epochs(&self) -> u32 {
        self.session.config().epochs
    }

    /// One epoch, evaluated every [`EVAL_EVERY`] epochs and after the last; its record.
    async fn step(&mut self) -> Result<Value> {
        if self.epoch() >= self.epochs() {
            return Err(EggrollError::Config(format!("the run has trained all its {} epochs", self.epochs())));
        }
        let start = now_ms();
        let stats = self.session.train_epoch_async().await?;
        let ms = now_ms() - start;
        self.total_ms += ms;
        self.stepped += 1;
        let epoch = self.epoch();
        let mut record = json!({
            "epoch": epoch, "mean_fitness": json_number(stats.mean_fitness), "lr": json_number(stats.lr),
            "sigma": json_number(stats.sigma), "ms": ms,
        });
        if epoch.is_multiple_of(EVAL_EVERY) || epoch == self.epochs() {
            let eval = self.session.evaluate_async().await?;
            record["train_loss"] = json_number(eval.train_loss);
            record["metric"] = json_number(eval.metric);
            self.last_eval = Some((epoch, eval));
        }
        Ok(record)
    }

    /// The run's summary, as `eggroll train --json` reports it: the mean model evaluated at the
    /// current epoch (reusing the step's evaluation when it made one).
    async fn summary(&mut self) -> Result<Summary> {
        let epoch = self.epoch();
        let eval = match &self.last_eval {
            Some((at, eval)) if *at == epoch => eval.clone(),
            _ => {
                let eval = self.session.evaluate_async().await?;
                self.last_eval = Some((epoch, eval.clone()));
                eval
            }
        };
        let config = self.session.config().clone();
        let ms_per_epoch = if self.stepped > 0 { self.total_ms / f64::from(self.stepped) } else { 0.0 };
        let tokens = self.session.tokens_per_epoch();
        Ok(Summary {
            task: self.session.name(),
            adapter: self.adapter.clone(),
            config,
            eval,
            ms_per_epoch,
            resumed_from: None,
            baselines: self.session.baselines(),
            tokens_per_second: tokens.filter(|_| ms_per_epoch > 0.0).map(|t| t as f64 / (ms_per_epoch / 1e3)),
            timings: self.session.timings(),
        })
    }
}

/// A page task: an MLP task, the language model or the integer language model, each with its
/// default shape.
pub enum PageTask {
    /// An MLP task.
    Mlp(AnyTask),
    /// The byte-level language model.
    Lm(CharLm),
    /// The integer language model, trained by integer EGGROLL.
    Egg(Egg),
}

impl PageTask {
    /// The task `kind` with its data drawn from `seed`, as `eggroll train` builds it.
    pub fn build(kind: TaskKind, seed: u64) -> Result<Self> {
        match kind {
            TaskKind::CharLm => Ok(Self::Lm(CharLm::new(seed, &CharLm::default_options())?)),
            TaskKind::Egg => Ok(Self::Egg(Egg::new(seed, &Egg::default_options())?)),
            other => Ok(Self::Mlp(other.build(seed)?)),
        }
    }

    /// The hyperparameters the task is tuned for.
    pub fn default_config(&self) -> EsConfig {
        match self {
            Self::Mlp(task) => task.default_config(),
            Self::Lm(task) => task.default_config(),
            Self::Egg(task) => task.default_config(),
        }
    }
}

/// A run of any page task on either backend.
pub enum Run {
    /// An MLP task on the CPU backend.
    CpuMlp(Trainer<FloatSession<CpuBackend, AnyTask>>),
    /// An MLP task on WebGPU.
    GpuMlp(Trainer<FloatSession<WgpuBackend, AnyTask>>),
    /// The language model on the CPU backend.
    CpuLm(Trainer<FloatSession<CpuBackend, CharLm>>),
    /// The language model on WebGPU.
    GpuLm(Trainer<FloatSession<WgpuBackend, CharLm>>),
    /// The integer language model on the CPU backend.
    CpuEgg(Trainer<EggSession<CpuBackend>>),
    /// The integer language model on WebGPU.
    GpuEgg(Trainer<EggSession<WgpuBackend>>),
}

/// Runs `$e` on the trainer inside a [`Run`].
macro_rules! each {
    ($run:expr, $t:ident => $e:expr) => {
        match $run {
            Run::CpuMlp($t) => $e,
            Run::GpuMlp($t) => $e,
            Run::CpuLm($t) => $e,
            Run::GpuLm($t) => $e,
            Run::CpuEgg($t) => $e,
            Run::GpuEgg($t) => $e,
        }
    };
}

impl Run {
    /// Builds the task (its data drawn from the run's seed, as `eggroll train` does), opens the
    /// backend and the trainer. WebGPU missing in this browser is an error that says so.
    pub async fn start(options: &RunOptions) -> Result<Self> {
        let config = options.config(PageTask::build(options.task, 0)?.default_config())?;
        let task = PageTask::build(options.task, config.seed)?;
        if options.backend == WebBackend::Cpu {
            let cpu = CpuBackend::new();
            return Ok(match task {
                PageTask::Mlp(task) => Run::CpuMlp(Trainer::new(FloatSession::new(cpu, task, config)?).await),
                PageTask::Lm(task) => Run::CpuLm(Trainer::new(FloatSession::new(cpu, task, config)?).await),
                PageTask::Egg(task) => Run::CpuEgg(Trainer::new(EggSession::new(cpu, task, config)?).await),
            });
        }
        let gpu = WgpuBackend::new(&WgpuOptions::default()).await.map_err(|e| {
            EggrollError::Config(format!(
                "this browser gave no WebGPU adapter ({e}); use a browser with WebGPU enabled, or the CPU backend (backend=cpu)"
            ))
        })?;
        Ok(match task {
            PageTask::Mlp(task) => Run::GpuMlp(Trainer::new(FloatSession::new(gpu, task, config)?).await),
            PageTask::Lm(task) => Run::GpuLm(Trainer::new(FloatSession::new(gpu, task, config)?).await),
            PageTask::Egg(task) => Run::GpuEgg(Trainer::new(EggSession::new(gpu, task, config)?).await),
        })
    }

    /// The WebGPU backend the run trains on; `None` on the CPU backend.
    pub fn wgpu_backend(&self) -> Option<&WgpuBackend> {
        match self {
            Run::GpuMlp(t) => Some(t.session.backend()),
            Run::GpuLm(t) => Some(t.session.backend()),
            Run::GpuEgg(t) => Some(t.session.backend()),
            Run::CpuMlp(_) | Run::CpuLm(_) | Run::CpuEgg(_) => None,
        }
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> u32 {
        each!(self, t => t.epoch())
    }

    /// Epochs the run trains in all.
    pub fn epochs(&self) -> u32 {
        each!(self, t => t.epochs())
    }

    /// One epoch's record: `epoch, mean_fitness, lr, sigma, ms`, and `train_loss, metric` on
    /// evaluated epochs.
    pub async fn step(&mut self) -> Result<Value> {
        each!(self, t => t.step().await)
    }

    /// The `eggroll train --json` object of the run so far.
    pub async fn result(&mut self) -> Result<Value> {
        Ok(each!(self, t => t.summary().await)?.to_json())
    }

    /// The task, backend, adapter and configuration of the run `options` started, for the page.
    pub fn info(&self, options: &RunOptions) -> Value {
        let (adapter, config) = each!(self, t => (t.adapter.clone(), t.session.config().clone()));
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
        let config = EsConfig { population: 256, epochs: 3, seed: 5, ..task.default_config() };
        let mut es = eggroll::Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
        for want in fitness {
            let stats = pollster::block_on(eggroll::train_epoch_async(&mut task, &mut es)).unwrap();
            assert_eq!(json_number(stats.mean_fitness), want);
        }
    }
}
