//! A task and its trainer as `eggroll train` drives them: [`FloatSession`] for the f32 tasks
//! ([`Task`] with [`Eggroll`]), [`EggSession`] for the integer `egg` task ([`Egg`] with
//! [`IntEggroll`]). The training loop, checkpoints and report see only [`Session`].

use eggroll::int8::{EggModel, IntEggroll};
use eggroll::tasks::Egg;
use eggroll::{Eggroll, EsConfig, Evaluation, Result, StepStats, Task, TrainerState};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::{AdapterDescription, Backend};

/// What the training loop needs of a task and its trainer.
pub trait Session {
    /// The task's name.
    fn name(&self) -> &'static str;
    /// The run's configuration.
    fn config(&self) -> &EsConfig;
    /// Epochs trained so far.
    fn epoch(&self) -> u32;
    /// The adapter the trainer runs on.
    fn adapter(&self) -> AdapterDescription;
    /// One epoch: every member's fitness, then the update.
    fn train_epoch(&mut self) -> Result<StepStats>;
    /// The mean model's train loss and held-out metric.
    fn evaluate(&mut self) -> Result<Evaluation>;
    /// Tokens the population evaluates per epoch (sequence tasks).
    fn tokens_per_epoch(&self) -> Option<usize>;
    /// Reference figures beside the metric.
    fn baselines(&self) -> Vec<(&'static str, f64)>;
    /// Settings beyond the configuration that a checkpoint must match.
    fn settings(&self) -> serde_json::Value;
    /// The trainer's state as safetensors bytes.
    fn save(&self) -> Result<Vec<u8>>;
    /// Restores a state of [`Session::save`] as the state after `epoch` epochs.
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()>;
}

/// An f32 task with its [`Eggroll`] trainer.
pub struct FloatSession<B: Backend, T: Task> {
    task: T,
    es: Eggroll<B, T::Model>,
}

impl<B: Backend, T: Task> FloatSession<B, T> {
    /// The trainer of `task`'s model on `backend` with `config`.
    pub fn new(backend: B, task: T, config: EsConfig) -> Result<Self> {
        let es = Eggroll::new(backend, task.model(), config)?;
        Ok(Self { task, es })
    }
}

impl<B: Backend, T: Task> Session for FloatSession<B, T> {
    fn name(&self) -> &'static str {
        self.task.name()
    }
    fn config(&self) -> &EsConfig {
        self.es.config()
    }
    fn epoch(&self) -> u32 {
        self.es.epoch()
    }
    fn adapter(&self) -> AdapterDescription {
        self.es.backend().describe()
    }
    fn train_epoch(&mut self) -> Result<StepStats> {
        eggroll::train_epoch(&mut self.task, &mut self.es)
    }
    fn evaluate(&mut self) -> Result<Evaluation> {
        self.task.evaluate(&mut self.es)
    }
    fn tokens_per_epoch(&self) -> Option<usize> {
        self.task.tokens_per_epoch(self.es.config())
    }
    fn baselines(&self) -> Vec<(&'static str, f64)> {
        self.task.baselines()
    }
    fn settings(&self) -> serde_json::Value {
        self.task.settings()
    }
    fn save(&self) -> Result<Vec<u8>> {
        self.es.state()?.to_safetensors(&self.es.specs())
    }
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        let state = TrainerState::from_safetensors(bytes, epoch, &self.es.specs())?;
        self.es.restore(&state)
    }
}

/// The integer `egg` task with its [`IntEggroll`] trainer.
pub struct EggSession<B: IntBackend> {
    task: Egg,
    es: IntEggroll<B, EggModel>,
}

impl<B: IntBackend> EggSession<B> {
    /// The trainer of `task`'s model on `backend` with `config`.
    pub fn new(backend: B, task: Egg, config: EsConfig) -> Result<Self> {
        let es = IntEggroll::new(backend, task.model(), config)?;
        Ok(Self { task, es })
    }
}

impl<B: IntBackend> Session for EggSession<B> {
    fn name(&self) -> &'static str {
        self.task.name()
    }
    fn config(&self) -> &EsConfig {
        self.es.config()
    }
    fn epoch(&self) -> u32 {
        self.es.epoch()
    }
    fn adapter(&self) -> AdapterDescription {
        self.es.backend().describe()
    }
    fn train_epoch(&mut self) -> Result<StepStats> {
        self.task.train_epoch(&mut self.es)
    }
    fn evaluate(&mut self) -> Result<Evaluation> {
        self.task.evaluate(&mut self.es)
    }
    fn tokens_per_epoch(&self) -> Option<usize> {
        Some(self.task.tokens_per_epoch(self.es.config()))
    }
    fn baselines(&self) -> Vec<(&'static str, f64)> {
        self.task.baselines()
    }
    fn settings(&self) -> serde_json::Value {
        self.task.settings()
    }
    fn save(&self) -> Result<Vec<u8>> {
        self.es.to_safetensors()
    }
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        self.es.restore_safetensors(bytes, epoch)
    }
}
