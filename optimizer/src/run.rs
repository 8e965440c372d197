//! One place that builds a run and one driver that runs it, for every front end: `eggroll train`
//! (one device, several adapters, or a rank under `mpirun`), `eggroll rl-compare` and the web
//! page are thin adapters over [`RunSpec`] and [`Driver`].
//!
//! [`RunSpec::config`] is the run's configuration: the task's defaults with the caller's overlay
//! (the CLI's `--config` file and flags, the page's fields) applied and validated;
//! [`RunSpec::build`] builds the task with the configuration's seed and its [`Session`] on the
//! given backend(s), as an [`AnySession`] whatever the task's model and number format. The
//! [`Driver`] steps it an epoch at a time, evaluates when its [`Hooks`] ask, and ends with the
//! run's [`Summary`].

use crate::config::EsConfig;
use crate::error::Result;
use crate::es::StepStats;
use crate::format::{Int8, F32};
use crate::plan::MemoryPlan;
use crate::report::Summary;
use crate::session::{Exchange, Local, Sendable, Session, Training};
use crate::tasks::{AnyTask, CharLm, CharLmOptions, Egg, Evaluation, Task, TaskKind};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::AdapterDescription;
use std::path::PathBuf;

/// A run as its caller asks for it: the task and the options beyond the [`EsConfig`] that shape
/// its model and data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSpec {
    /// The task.
    pub task: TaskKind,
    /// `charlm` and `egg`: a file whose bytes replace the embedded corpus.
    pub data: Option<PathBuf>,
    /// `charlm` and `egg`: the model's width.
    pub width: Option<usize>,
    /// `charlm` and `egg`: the model's blocks.
    pub depth: Option<usize>,
    /// `charlm` and `egg`: bytes per window.
    pub window: Option<usize>,
    /// Control tasks: the policy's hidden layer sizes.
    pub hidden: Option<Vec<usize>>,
}

/// The workers a run trains on.
pub enum Workers<B, X = Local> {
    /// One backend, its members of the population those `exchange` gives this process.
    One {
        /// The backend.
        backend: B,
        /// How the processes share an epoch's fitness.
        exchange: X,
    },
    /// Several backends in this process, this process's members of `exchange` shared out over
    /// them in whole pairs.
    #[cfg(feature = "native")]
    Sharded {
        /// The backends, in the order of their shares.
        backends: Vec<B>,
        /// How the processes share an epoch's fitness.
        exchange: X,
    },
}

impl<B> Workers<B, Local> {
    /// One backend evaluating the whole population.
    pub fn one(backend: B) -> Self {
        Workers::One { backend, exchange: Local }
    }
}

impl RunSpec {
    /// The spec of `task` with every option at the task's default.
    pub fn new(task: TaskKind) -> Self {
        Self { task, ..Self::default() }
    }

    /// A language-model task's options: `defaults` with this spec's data, width, depth and window.
    fn lm_options(&self, defaults: CharLmOptions) -> CharLmOptions {
        CharLmOptions {
            data: self.data.clone().or(defaults.data),
            width: self.width.unwrap_or(defaults.width),
            depth: self.depth.unwrap_or(defaults.depth),
            window: self.window.unwrap_or(defaults.window),
        }
    }

    /// The task with its data drawn from `seed`.
    fn task(&self, seed: u64) -> Result<AnyRunTask> {
        Ok(match self.task {
            TaskKind::CharLm => AnyRunTask::CharLm(CharLm::new(seed, &self.lm_options(CharLm::default_options()))?),
            TaskKind::Egg => AnyRunTask::Egg(Egg::new(seed, &self.lm_options(Egg::default_options()))?),
            kind => AnyRunTask::Mlp(match &self.hidden {
                Some(hidden) => kind.build_with_hidden(seed, hidden)?,
                None => kind.build(seed)?,
            }),
        })
    }

    /// The run's configuration: the task's defaults, then `overlay` (the caller's file and
    /// flags, which may refuse), validated.
    pub fn config<E: From<crate::EggrollError>>(
        &self, overlay: impl FnOnce(EsConfig) -> std::result::Result<EsConfig, E>,
    ) -> std::result::Result<EsConfig, E> {
        let defaults = self.task(0)?.default_config();
        let config = overlay(defaults)?;
        config.validate()?;
        Ok(config)
    }

    /// The task built with `config`'s seed and its session on `workers`, once its memory plan
    /// ([`MemoryPlan`]) is found to fit the host's free memory and the first backend's limits.
    pub fn build<B, X>(&self, config: EsConfig, workers: Workers<B, X>) -> Result<AnySession<B, X>>
    where
        B: IntBackend + Sendable,
        B::Buffer: Sendable,
        B::I8: Sendable,
        B::I32: Sendable,
        X: Exchange<f32> + Exchange<i64>,
    {
        let task = self.task(config.seed)?;
        let (backend, exchange): (&B, &X) = match &workers {
            Workers::One { backend, exchange } => (backend, exchange),
            #[cfg(feature = "native")]
            Workers::Sharded { backends, exchange } => {
                (backends.first().ok_or_else(|| crate::EggrollError::Config("no backend to train on".into()))?, exchange)
            }
        };
        let members = <X as Exchange<f32>>::members(exchange, config.population)?.len();
        let limits = backend.memory_limits();
        let device = limits.max_buffer_bytes.is_some();
        let resident = host::resident();
        let plan = match &task {
            AnyRunTask::Mlp(t) => MemoryPlan::of::<_, F32>(t.model(), &config, members, t.footprint(&config), resident, device),
            AnyRunTask::CharLm(t) => MemoryPlan::of::<_, F32>(t.model(), &config, members, t.footprint(&config), resident, device),
            AnyRunTask::Egg(t) => MemoryPlan::of::<_, Int8>(t.model(), &config, members, t.footprint(&config), resident, device),
        }?;
        let plan = plan.with_noise_cache(config.noise_cache_mb.map(|mb| mb.saturating_mul(1 << 20)), host::limit(), &limits);
        plan.check(host::limit(), &limits)?;
        let cache = if plan.noise_cache.on { plan.noise_cache.bytes } else { 0 };
        match &workers {
            Workers::One { backend, .. } => backend.set_noise_cache(cache),
            #[cfg(feature = "native")]
            Workers::Sharded { backends, .. } => backends.iter().for_each(|b| b.set_noise_cache(cache)),
        }
        macro_rules! session {
            ($task:expr, $variant:ident) => {
                AnySession::$variant(
                    match workers {
                        Workers::One { backend, exchange } => Session::with_exchange(backend, $task, config, exchange)?,
                        #[cfg(feature = "native")]
                        Workers::Sharded { backends, exchange } => Session::sharded(backends, $task, config, exchange)?,
                    }
                    .with_plan(plan),
                )
            };
        }
        Ok(match task {
            AnyRunTask::Mlp(task) => session!(task, Mlp),
            AnyRunTask::CharLm(task) => session!(task, CharLm),
            AnyRunTask::Egg(task) => session!(task, Egg),
        })
    }
}

/// The host's side of a memory plan: what the process holds and may still take (none in a
/// browser, which does not say).
mod host {
    use crate::plan::HostLimit;

    /// Bytes the process holds now.
    pub fn resident() -> u64 {
        #[cfg(feature = "native")]
        return crate::limits::resident_bytes().unwrap_or(0);
        #[cfg(not(feature = "native"))]
        0
    }

    /// The free host memory the process may still take.
    pub fn limit() -> Option<HostLimit> {
        #[cfg(feature = "native")]
        return crate::limits::host_memory_limit();
        #[cfg(not(feature = "native"))]
        None
    }
}

/// A task of any model and format, before its session is built.
enum AnyRunTask {
    Mlp(AnyTask),
    CharLm(CharLm),
    Egg(Egg),
}

impl AnyRunTask {
    fn default_config(&self) -> EsConfig {
        match self {
            AnyRunTask::Mlp(t) => t.default_config(),
            AnyRunTask::CharLm(t) => t.default_config(),
            AnyRunTask::Egg(t) => t.default_config(),
        }
    }
}

/// The session of any task: an MLP task, the language model or the integer language model.
pub enum AnySession<B: IntBackend, X = Local> {
    /// An [`Mlp`](crate::Mlp) task.
    Mlp(Session<B, AnyTask, X>),
    /// The byte-level language model.
    CharLm(Session<B, CharLm, X>),
    /// The integer language model.
    Egg(Session<B, Egg, X>),
}

/// Runs `$e` on the session inside an [`AnySession`].
macro_rules! each {
    ($session:expr, $s:ident => $e:expr) => {
        match $session {
            AnySession::Mlp($s) => $e,
            AnySession::CharLm($s) => $e,
            AnySession::Egg($s) => $e,
        }
    };
}

impl<B: IntBackend, X: Exchange<f32> + Exchange<i64>> Training for AnySession<B, X> {
    type Backend = B;
    fn name(&self) -> &'static str {
        each!(self, s => s.name())
    }
    fn config(&self) -> &EsConfig {
        each!(self, s => s.config())
    }
    fn epoch(&self) -> u32 {
        each!(self, s => s.epoch())
    }
    fn backend(&self) -> &B {
        each!(self, s => s.backend())
    }
    fn adapter(&self) -> AdapterDescription {
        each!(self, s => s.adapter())
    }
    async fn train_epoch_async(&mut self) -> Result<StepStats> {
        each!(self, s => s.train_epoch_async().await)
    }
    async fn evaluate_async(&mut self) -> Result<Evaluation> {
        each!(self, s => s.evaluate_async().await)
    }
    fn tokens_per_epoch(&self) -> Option<usize> {
        each!(self, s => s.tokens_per_epoch())
    }
    fn baselines(&self) -> Vec<(&'static str, f64)> {
        each!(self, s => s.baselines())
    }
    fn settings(&self) -> serde_json::Value {
        each!(self, s => s.settings())
    }
    fn timings(&self) -> Vec<(&'static str, f64)> {
        each!(self, s => s.timings())
    }
    async fn save_async(&self) -> Result<Vec<u8>> {
        each!(self, s => s.save_async().await)
    }
    fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        each!(self, s => s.restore(bytes, epoch))
    }
    fn memory_plan(&self) -> Option<&MemoryPlan> {
        each!(self, s => s.memory_plan())
    }
}

/// One epoch as the driver ran it.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// Epochs trained after it.
    pub epoch: u32,
    /// The update's statistics.
    pub stats: StepStats,
    /// Its training time in milliseconds (evaluation excluded).
    pub ms: f64,
    /// The mean model's evaluation after it, when the hooks asked for one.
    pub eval: Option<Evaluation>,
}

/// What a front end adds to the driver's loop: when to evaluate, when to stop, and what to do
/// after each epoch (a progress bar, a metrics file, checkpoints).
pub trait Hooks<S> {
    /// What the hooks fail with: the optimiser's errors and the front end's own.
    type Error: From<crate::EggrollError>;
    /// Whether to evaluate the mean model after `done` of the run's `epochs`, `train_ms` of
    /// training so far.
    fn evaluate_after(&mut self, done: u32, epochs: u32, train_ms: f64) -> bool;
    /// Whether the run is over after `done` of its `epochs`, `train_ms` of training so far: at
    /// its last epoch by default.
    fn finished(&mut self, done: u32, epochs: u32, _train_ms: f64) -> bool {
        done >= epochs
    }
    /// After each epoch, with its record.
    fn after_epoch(&mut self, _session: &S, _record: &EpochRecord) -> std::result::Result<(), Self::Error> {
        Ok(())
    }
}

/// The default schedule: evaluate every `eval_every` epochs and after the last one, nothing
/// else.
#[derive(Clone, Copy, Debug)]
pub struct EvalEvery(pub u32);

impl<S> Hooks<S> for EvalEvery {
    type Error = crate::EggrollError;
    fn evaluate_after(&mut self, done: u32, epochs: u32, _train_ms: f64) -> bool {
        done.is_multiple_of(self.0.max(1)) || done == epochs
    }
}

/// Runs a session an epoch at a time, timing the epochs with its clock, and ends with the run's
/// [`Summary`].
pub struct Driver<S: Training> {
    session: S,
    /// Milliseconds from an arbitrary start (a page has no `std::time::Instant`).
    clock: fn() -> f64,
    /// The adapter the summary names.
    adapter: AdapterDescription,
    /// Training time of the epochs stepped so far (evaluations excluded).
    train_ms: f64,
    /// Epochs stepped.
    stepped: u32,
    /// The last evaluation and the epoch it was made at.
    last_eval: Option<(u32, Evaluation)>,
    /// The epoch a resumed run started from.
    resumed_from: Option<u32>,
}

impl<S: Training> Driver<S> {
    /// The driver of `session`, timed by `clock` (milliseconds).
    pub fn new(session: S, clock: fn() -> f64) -> Self {
        let adapter = session.adapter();
        Self { session, clock, adapter, train_ms: 0.0, stepped: 0, last_eval: None, resumed_from: None }
    }

    /// The session.
    pub fn session(&self) -> &S {
        &self.session
    }

    /// Names the adapter in the summary as `adapter` (a browser's name for it).
    pub fn set_adapter(&mut self, adapter: AdapterDescription) {
        self.adapter = adapter;
    }

    /// The adapter the summary names.
    pub fn adapter(&self) -> &AdapterDescription {
        &self.adapter
    }

    /// Restores a checkpoint's trainer state (`bytes`, of [`Training::save_async`]) as the state
    /// after `epoch` epochs, which the summary reports as the epoch it resumed from.
    pub fn resume(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
        self.session.restore(bytes, epoch)?;
        self.resumed_from = Some(epoch);
        Ok(())
    }

    /// Training time so far in milliseconds.
    pub fn train_ms(&self) -> f64 {
        self.train_ms
    }

    /// One epoch, evaluated when `hooks` ask; its record (also given to the hooks).
    pub async fn step_async<H: Hooks<S>>(&mut self, hooks: &mut H) -> std::result::Result<EpochRecord, H::Error> {
        let epochs = self.session.config().epochs;
        let start = (self.clock)();
        let stats = self.session.train_epoch_async().await?;
        let ms = (self.clock)() - start;
        self.train_ms += ms;
        self.stepped += 1;
        let done = self.session.epoch();
        let eval = if hooks.evaluate_after(done, epochs, self.train_ms) { Some(self.evaluate_async().await?) } else { None };
        let record = EpochRecord { epoch: done, stats, ms, eval };
        hooks.after_epoch(&self.session, &record)?;
        Ok(record)
    }

    /// The mean model's evaluation now, remembered for the summary.
    pub async fn evaluate_async(&mut self) -> Result<Evaluation> {
        let eval = self.session.evaluate_async().await?;
        self.last_eval = Some((self.session.epoch(), eval.clone()));
        Ok(eval)
    }

    /// Whether `hooks` call the run over.
    pub fn finished(&self, hooks: &mut impl Hooks<S>) -> bool {
        hooks.finished(self.session.epoch(), self.session.config().epochs, self.train_ms)
    }

    /// The run's summary: the mean model evaluated at the current epoch (reusing the last
    /// evaluation when it was made there), the mean epoch time of the epochs stepped.
    pub async fn summary_async(&mut self) -> Result<Summary> {
        let epoch = self.session.epoch();
        let eval = match &self.last_eval {
            Some((at, eval)) if *at == epoch => eval.clone(),
            _ => self.evaluate_async().await?,
        };
        let ms_per_epoch = if self.stepped > 0 { self.train_ms / f64::from(self.stepped) } else { 0.0 };
        let tokens = self.session.tokens_per_epoch();
        Ok(Summary {
            task: self.session.name(),
            adapter: self.adapter.clone(),
            config: self.session.config().clone(),
            eval,
            ms_per_epoch,
            resumed_from: self.resumed_from,
            baselines: self.session.baselines(),
            tokens_per_second: tokens.filter(|_| ms_per_epoch > 0.0).map(|t| t as f64 / (ms_per_epoch / 1e3)),
            timings: self.session.timings(),
            memory_plan_bytes: self.session.memory_plan().map(MemoryPlan::host_bytes),
            noise_cache: self.session.memory_plan().map(|p| p.noise_cache.on),
        })
    }

    /// Blocking [`Driver::step_async`] for native callers.
    #[cfg(feature = "native")]
    pub fn step<H: Hooks<S>>(&mut self, hooks: &mut H) -> std::result::Result<EpochRecord, H::Error> {
        pollster::block_on(self.step_async(hooks))
    }

    /// Blocking [`Driver::evaluate_async`] for native callers.
    #[cfg(feature = "native")]
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async())
    }

    /// Steps until `hooks` call the run over, then the summary. Blocking: native callers.
    #[cfg(feature = "native")]
    pub fn run<H: Hooks<S>>(&mut self, hooks: &mut H) -> std::result::Result<Summary, H::Error> {
        while !self.finished(hooks) {
            self.step(hooks)?;
        }
        Ok(pollster::block_on(self.summary_async())?)
    }
}

/// A monotonic clock in milliseconds from its first call, for native drivers.
#[cfg(feature = "native")]
pub use crate::clock::native_clock_ms;
