//! A task and its trainer as a training loop drives them (`eggroll train`, the web page,
//! `eggroll rl-compare`, every rank under MPI): one [`Session`] for every task and number format,
//! on one backend or several, its epoch's fitness gathered by an [`Exchange`] (none in one
//! process, [`Local`]; an all-gather over MPI ranks in the CLI). A loop, its checkpoints and its
//! report see only [`Training`]. Every method that reads the device back is async at its core (a
//! browser cannot block); native callers have blocking twins.

use crate::config::EsConfig;
use crate::error::Result;
use crate::es::Trains;
use crate::es::{StepStats, Trainer, TrainerState};
use crate::format::Tensors;
use crate::plan::MemoryPlan;
use crate::tasks::{Evaluation, FitnessOf, Task};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::{AdapterDescription, Backend};
use std::future::Future;
use std::ops::Range;

/// What a training loop needs of a task and its trainer, whatever the task, its format and the
/// workers it runs on.
pub trait Training {
    /// The backend the (first) trainer runs on.
    type Backend: Backend;
    /// The task's name.
    fn name(&self) -> &'static str;
    /// The run's configuration.
    fn config(&self) -> &EsConfig;
    /// Epochs trained so far.
    fn epoch(&self) -> u32;
    /// The backend the (first) trainer runs on.
    fn backend(&self) -> &Self::Backend;
    /// The adapter the run trains on.
    fn adapter(&self) -> AdapterDescription;
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
    /// fitness exchange of ranks under MPI).
    fn timings(&self) -> Vec<(&'static str, f64)>;
    /// The trainer's state as safetensors bytes.
    fn save_async(&self) -> impl Future<Output = Result<Vec<u8>>>;
    /// Restores a state of [`Training::save_async`] as the state after `epoch` epochs.
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()>;
    /// The memory plan the run was checked against before it started, when it was.
    fn memory_plan(&self) -> Option<&MemoryPlan>;

    /// Blocking [`Training::train_epoch_async`] for native callers.
    #[cfg(feature = "native")]
    fn train_epoch(&mut self) -> Result<StepStats> {
        pollster::block_on(self.train_epoch_async())
    }
    /// Blocking [`Training::evaluate_async`] for native callers.
    #[cfg(feature = "native")]
    fn evaluate(&mut self) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async())
    }
    /// Blocking [`Training::save_async`] for native callers.
    #[cfg(feature = "native")]
    fn save(&self) -> Result<Vec<u8>> {
        pollster::block_on(self.save_async())
    }
}

/// How the processes of a run share an epoch's fitness: each evaluates its members
/// ([`Exchange::members`]), and [`Exchange::all_gather`] gives every process every member's
/// fitness in member order. Only fitness values travel: every process regenerates any member's
/// noise from the seed and applies the same update.
pub trait Exchange<V> {
    /// This process's members of a population of `population`, whole antithetic pairs.
    fn members(&self, population: usize) -> Result<Range<usize>>;
    /// Every member's fitness (`population` values, in member order) from this process's `mine`,
    /// at epoch `epoch` (the one being trained, from 0).
    fn all_gather(&mut self, mine: Vec<V>, population: usize, epoch: u32) -> Result<Vec<V>>;
    /// Where the exchange's time went, by name, in milliseconds per epoch.
    fn timings(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// `Send` where threads exist (native builds), nothing in a browser, whose backends stay on one
/// thread.
#[cfg(feature = "native")]
pub trait Sendable: Send {}
#[cfg(feature = "native")]
impl<T: Send> Sendable for T {}
/// `Send` where threads exist (native builds), nothing in a browser, whose backends stay on one
/// thread.
#[cfg(not(feature = "native"))]
pub trait Sendable {}
#[cfg(not(feature = "native"))]
impl<T> Sendable for T {}

/// One process evaluates the whole population: nothing to exchange.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl<V> Exchange<V> for Local {
    fn members(&self, population: usize) -> Result<Range<usize>> {
        Ok(0..population)
    }
    fn all_gather(&mut self, mine: Vec<V>, _population: usize, _epoch: u32) -> Result<Vec<V>> {
        Ok(mine)
    }
}

/// One backend's task, trainer and members.
struct Worker<B: Backend, T: Task>
where
    T::Format: Tensors<B>,
{
    task: T,
    es: Trainer<B, T::Model, T::Format>,
    members: Range<usize>,
    /// The one-thread pool a worker of several evaluates its share on: a CPU backend's kernels
    /// then run on that thread, each worker's whole forward without a hand-off per layer.
    #[cfg(feature = "native")]
    pool: Option<rayon::ThreadPool>,
}

/// Where an epoch's time went, summed over the epochs trained.
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    epochs: u32,
    fitness_ms: f64,
    update_ms: f64,
}

/// Evaluates several workers' shares at once (each on its own thread), in member order.
type Shares<B, T> = fn(&mut [Worker<B, T>]) -> Result<Vec<FitnessOf<T>>>;

/// A task and its trainer on one backend or several, the fitness of every epoch gathered by the
/// exchange `X`.
///
/// With several backends (`eggroll train --devices`), each evaluates its share of whole pairs
/// ([`share_pairs`](crate::shards::share_pairs)) on its own thread and the fitness of all members is gathered on the host in
/// member order before the update. On identical adapters every backend applies the update itself
/// and they agree bit for bit; when the adapters differ, the first one applies it and the others
/// take its state, so that rounding differences between devices never accumulate. Evaluation,
/// checkpoints and the report are the first backend's.
pub struct Session<B: IntBackend, T: Task, X = Local>
where
    T::Format: Trains<B, T::Model>,
{
    workers: Vec<Worker<B, T>>,
    exchange: X,
    /// Whether the adapters differ (then the others copy the first one's state).
    copy_state: bool,
    /// How several workers evaluate their shares (native builds only).
    shares: Option<Shares<B, T>>,
    /// The memory plan the run was checked against.
    plan: Option<MemoryPlan>,
    /// Where the epochs' time went.
    times: Times,
}

impl<B: IntBackend, T: Task> Session<B, T, Local>
where
    T::Format: Trains<B, T::Model>,
{
    /// The trainer of `task`'s model on `backend` with `config`, the whole population in this
    /// process.
    pub fn new(backend: B, task: T, config: EsConfig) -> Result<Self> {
        Session::with_exchange(backend, task, config, Local)
    }
}

impl<B: IntBackend, T: Task, X: Exchange<FitnessOf<T>>> Session<B, T, X>
where
    T::Format: Trains<B, T::Model>,
{
    /// The trainer of `task`'s model on `backend` with `config`, for this process's members of
    /// `exchange`.
    pub fn with_exchange(backend: B, task: T, config: EsConfig, exchange: X) -> Result<Self> {
        let members = exchange.members(config.population)?;
        let es = Trainer::new(backend, task.model(), config)?;
        let worker = Worker {
            task,
            es,
            members,
            #[cfg(feature = "native")]
            pool: None,
        };
        Ok(Self { workers: vec![worker], exchange, copy_state: false, shares: None, plan: None, times: Times::default() })
    }

    /// The session with the memory plan it was checked against.
    pub fn with_plan(self, plan: MemoryPlan) -> Self {
        Self { plan: Some(plan), ..self }
    }

    /// The members each backend evaluates, in backend order.
    pub fn shares(&self) -> Vec<Range<usize>> {
        self.workers.iter().map(|w| w.members.clone()).collect()
    }

    /// The first backend's trainer.
    pub fn trainer(&self) -> &Trainer<B, T::Model, T::Format> {
        &self.workers[0].es
    }

    /// The task.
    pub fn task(&self) -> &T {
        &self.workers[0].task
    }

    /// This process's members' fitness: one worker's awaited, several workers' on their threads.
    async fn own_fitness(&mut self) -> Result<Vec<FitnessOf<T>>> {
        match (self.shares, self.workers.as_mut_slice()) {
            (_, [w]) => w.task.members_fitness_async(&mut w.es, w.members.clone()).await,
            (Some(shares), workers) => shares(workers),
            (None, _) => unreachable!("several workers come from Session::sharded, which sets their evaluation"),
        }
    }
}

#[cfg(feature = "native")]
impl<B, T, X> Session<B, T, X>
where
    B: IntBackend + Send,
    T: Task + Clone + Send,
    T::Model: Send,
    T::Format: Trains<B, T::Model>,
    <T::Format as Tensors<B>>::Tensor: Send,
    <T::Format as Tensors<B>>::Scores: Send,
    X: Exchange<FitnessOf<T>>,
{
    /// `task`'s trainer on every backend of `backends` (at least one), this process's members
    /// of `exchange` shared out over them in order.
    pub fn sharded(backends: Vec<B>, task: T, config: EsConfig, exchange: X) -> Result<Self> {
        let mine = exchange.members(config.population)?;
        let shares = crate::shards::share_pairs(mine.len(), backends.len())?.into_iter().map(|s| s.start + mine.start..s.end + mine.start);
        let adapters: Vec<AdapterDescription> = backends.iter().map(|b| b.describe()).collect();
        let copy_state = adapters.windows(2).any(|w| w[0] != w[1]);
        let workers = backends
            .into_iter()
            .zip(shares)
            .map(|(backend, members)| {
                let es = Trainer::new(backend, task.model(), config.clone())?;
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .map_err(|e| crate::EggrollError::Config(format!("cannot start a worker's thread: {e}")))?;
                Ok(Worker { task: task.clone(), es, members, pool: Some(pool) })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { workers, exchange, copy_state, shares: Some(threaded::<B, T>), plan: None, times: Times::default() })
    }
}

/// Every worker's share on its own thread (its one-thread pool), in member order.
#[cfg(feature = "native")]
fn threaded<B, T>(workers: &mut [Worker<B, T>]) -> Result<Vec<FitnessOf<T>>>
where
    B: IntBackend + Send,
    T: Task + Send,
    T::Model: Send,
    T::Format: Trains<B, T::Model>,
    <T::Format as Tensors<B>>::Tensor: Send,
    <T::Format as Tensors<B>>::Scores: Send,
{
    let parts: Vec<Result<Vec<_>>> = std::thread::scope(|scope| {
        let running: Vec<_> = workers
            .iter_mut()
            .map(|w| {
                scope.spawn(move || {
                    let Worker { task, es, members, pool } = w;
                    let mut run = || pollster::block_on(task.members_fitness_async(es, members.clone()));
                    match pool {
                        Some(pool) => pool.install(run),
                        None => run(),
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|_| Err(crate::EggrollError::Data("a backend's thread panicked".into()))))
            .collect()
    });
    let mut fitness = Vec::new();
    for part in parts {
        fitness.extend(part?);
    }
    Ok(fitness)
}

impl<B: IntBackend, T: Task, X: Exchange<FitnessOf<T>>> Training for Session<B, T, X>
where
    T::Format: Trains<B, T::Model>,
{
    type Backend = B;
    fn name(&self) -> &'static str {
        self.workers[0].task.name()
    }
    fn config(&self) -> &EsConfig {
        self.workers[0].es.config()
    }
    fn epoch(&self) -> u32 {
        self.workers[0].es.epoch()
    }
    fn backend(&self) -> &B {
        self.workers[0].es.backend()
    }
    /// The first backend's adapter, named after every adapter in use with its graphics API
    /// (`A [Vulkan] + B [Gl]`) when there are several (the CPU's threads are one adapter).
    fn adapter(&self) -> AdapterDescription {
        let first = self.backend().describe();
        // The CPU's workers are its threads, which its name counts already.
        if self.workers.len() == 1 || (first.backend == "cpu" && !self.copy_state) {
            return first;
        }
        let names: Vec<String> =
            self.workers.iter().map(|w| w.es.backend().describe()).map(|a| format!("{} [{}]", a.name, a.backend)).collect();
        AdapterDescription { name: names.join(" + "), ..first }
    }
    /// With several backends, blocks the calling thread while they evaluate their shares.
    async fn train_epoch_async(&mut self) -> Result<StepStats> {
        let start = crate::clock::clock_ms();
        let mine = self.own_fitness().await?;
        let evaluated = crate::clock::clock_ms();
        let (population, epoch) = (self.config().population, self.epoch());
        let fitness = self.exchange.all_gather(mine, population, epoch)?;
        let gathered = crate::clock::clock_ms();
        let stats = if self.copy_state {
            let (first, others) = self.workers.split_first_mut().expect("at least one backend");
            let stats = <T::Format as Trains<B, T::Model>>::tell(&mut first.es, &fitness)?;
            let state = first.es.state_async().await?;
            for worker in others {
                worker.es.restore(&state)?;
            }
            stats
        } else {
            let mut stats = Vec::with_capacity(self.workers.len());
            for worker in &mut self.workers {
                stats.push(<T::Format as Trains<B, T::Model>>::tell(&mut worker.es, &fitness)?);
            }
            stats.swap_remove(0)
        };
        if let (Some(start), Some(evaluated), Some(gathered), Some(end)) = (start, evaluated, gathered, crate::clock::clock_ms()) {
            let t = &mut self.times;
            (t.epochs, t.fitness_ms, t.update_ms) = (t.epochs + 1, t.fitness_ms + evaluated - start, t.update_ms + end - gathered);
        }
        Ok(self.workers[0].task.report_stats(stats))
    }
    async fn evaluate_async(&mut self) -> Result<Evaluation> {
        let first = &mut self.workers[0];
        first.task.evaluate_async(&mut first.es).await
    }
    fn tokens_per_epoch(&self) -> Option<usize> {
        self.workers[0].task.tokens_per_epoch(self.config())
    }
    fn baselines(&self) -> Vec<(&'static str, f64)> {
        self.workers[0].task.baselines()
    }
    fn settings(&self) -> serde_json::Value {
        self.workers[0].task.settings()
    }
    /// Per epoch: the population's evaluation (`fitness_ms_per_epoch`), the part of it spent in
    /// population forwards with their read-backs (`forward_ms_per_epoch`, the workers' mean),
    /// the task's own work on the host beside them (`task_ms_per_epoch`: environments, inputs,
    /// scores), the update (`update_ms_per_epoch`), then the exchange's.
    fn timings(&self) -> Vec<(&'static str, f64)> {
        let mut timings = Vec::new();
        let t = self.times;
        if t.epochs > 0 {
            let per_epoch = |ms: f64| ms / f64::from(t.epochs);
            let forward = self.workers.iter().map(|w| w.es.forward_ms()).sum::<f64>() / self.workers.len() as f64;
            let fitness = per_epoch(t.fitness_ms);
            let forward = per_epoch(forward).min(fitness);
            timings.extend([
                ("fitness_ms_per_epoch", fitness),
                ("forward_ms_per_epoch", forward),
                ("task_ms_per_epoch", fitness - forward),
                ("update_ms_per_epoch", per_epoch(t.update_ms)),
            ]);
        }
        timings.extend(self.exchange.timings());
        timings
    }
    async fn save_async(&self) -> Result<Vec<u8>> {
        let first = &self.workers[0].es;
        first.state_async().await?.to_safetensors(&first.specs())
    }
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        let state = TrainerState::from_safetensors(bytes, epoch, &self.workers[0].es.specs())?;
        self.workers.iter_mut().try_for_each(|w| w.es.restore(&state))
    }
    fn memory_plan(&self) -> Option<&MemoryPlan> {
        self.plan.as_ref()
    }
}
