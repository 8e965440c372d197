//! A task and its trainer as a training loop drives them (`eggroll train`, the web page):
//! [`FloatSession`] for the f32 tasks ([`Task`] with [`Eggroll`]), [`EggSession`] for the integer
//! `egg` task ([`Egg`] with [`IntEggroll`]). A loop, its checkpoints and its report see only
//! [`Session`]. Every method that reads the device back is async at its core (a browser cannot
//! block); native callers have blocking twins.

use crate::config::EsConfig;
use crate::error::Result;
use crate::es::{Eggroll, StepStats, TrainerState};
use crate::int8::{EggModel, IntEggroll};
use crate::tasks::{Egg, Evaluation, Task};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::{AdapterDescription, Backend};
use std::future::Future;

/// What a training loop needs of a task and its trainer.
pub trait Session {
    /// The backend the trainer runs on.
    type Backend: Backend;
    /// The task's name.
    fn name(&self) -> &'static str;
    /// The run's configuration.
    fn config(&self) -> &EsConfig;
    /// Epochs trained so far.
    fn epoch(&self) -> u32;
    /// The backend the trainer runs on.
    fn backend(&self) -> &Self::Backend;
    /// The adapter the trainer runs on.
    fn adapter(&self) -> AdapterDescription {
        self.backend().describe()
    }
    /// One epoch: every member's fitness, then the update.
    fn train_epoch_async(&mut self) -> impl Future<Output = Result<StepStats>>;
    /// The mean model's train loss and held-out metric.
    fn evaluate_async(&mut self) -> impl Future<Output = Result<Evaluation>>;
    /// Tokens the population evaluates per epoch (sequence tasks).
    fn tokens_per_epoch(&self) -> Option<usize>;
    /// Reference figures beside the metric.
    fn baselines(&self) -> Vec<(&'static str, f64)>;
    /// Settings beyond the configuration that a checkpoint must match.
    fn settings(&self) -> serde_json::Value;
    /// Where the run's time went beyond `ms_per_epoch`, by name, in milliseconds per epoch (the
    /// fitness exchange of ranks under MPI); none by default.
    fn timings(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// The trainer's state as safetensors bytes.
    fn save_async(&self) -> impl Future<Output = Result<Vec<u8>>>;
    /// Restores a state of [`Session::save_async`] as the state after `epoch` epochs.
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()>;

    /// Blocking [`Session::train_epoch_async`] for native callers.
    #[cfg(feature = "native")]
    fn train_epoch(&mut self) -> Result<StepStats> {
        pollster::block_on(self.train_epoch_async())
    }
    /// Blocking [`Session::evaluate_async`] for native callers.
    #[cfg(feature = "native")]
    fn evaluate(&mut self) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async())
    }
    /// Blocking [`Session::save_async`] for native callers.
    #[cfg(feature = "native")]
    fn save(&self) -> Result<Vec<u8>> {
        pollster::block_on(self.save_async())
    }
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
    type Backend = B;
    fn name(&self) -> &'static str {
        self.task.name()
    }
    fn config(&self) -> &EsConfig {
        self.es.config()
    }
    fn epoch(&self) -> u32 {
        self.es.epoch()
    }
    fn backend(&self) -> &B {
        self.es.backend()
    }
    async fn train_epoch_async(&mut self) -> Result<StepStats> {
        crate::tasks::train_epoch_async(&mut self.task, &mut self.es).await
    }
    async fn evaluate_async(&mut self) -> Result<Evaluation> {
        self.task.evaluate_async(&mut self.es).await
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
    async fn save_async(&self) -> Result<Vec<u8>> {
        self.es.state_async().await?.to_safetensors(&self.es.specs())
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
    type Backend = B;
    fn name(&self) -> &'static str {
        self.task.name()
    }
    fn config(&self) -> &EsConfig {
        self.es.config()
    }
    fn epoch(&self) -> u32 {
        self.es.epoch()
    }
    fn backend(&self) -> &B {
        self.es.backend()
    }
    async fn train_epoch_async(&mut self) -> Result<StepStats> {
        self.task.train_epoch_async(&mut self.es).await
    }
    async fn evaluate_async(&mut self) -> Result<Evaluation> {
        self.task.evaluate_async(&mut self.es).await
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
    async fn save_async(&self) -> Result<Vec<u8>> {
        self.es.to_safetensors_async().await
    }
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        self.es.restore_safetensors(bytes, epoch)
    }
}
