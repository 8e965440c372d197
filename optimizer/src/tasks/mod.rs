//! Training tasks: a model, a default configuration, and a fitness for every population member.
//!
//! Tasks derive all their randomness from their seed and the trainer's epoch (no hidden RNG
//! state), so a run resumed from a checkpoint continues exactly.

pub mod acrobot;
pub mod cartpole;
pub mod charlm;
mod constant;
pub mod control;
pub mod digits;
pub mod egg;
pub mod mountaincar;
pub mod pendulum;
mod regression;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use charlm::{CharLm, CharLmModel, CharLmOptions};
pub use constant::Constant;
pub use digits::Digits;
pub use egg::Egg;
pub use mountaincar::{MountainCar, MountainCarContinuous};
pub use pendulum::Pendulum;
pub use regression::Regression;

use crate::config::EsConfig;
use crate::error::{EggrollError, Result};
use crate::es::Trains;
use crate::es::{FloatTrainer, StepStats, Trainer};
use crate::format::{Format, F32};
use crate::model::Mlp;
use control::Control;
use eggroll_backend::int8::IntBackend;
use eggroll_backend::InputLayout;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::str::FromStr;

/// What a task reports about the mean model.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Loss of the mean model on the training data just seen.
    pub train_loss: f32,
    /// Name of the held-out metric: `"test_loss"`, `"accuracy"` or `"return"`.
    pub metric_name: &'static str,
    /// The held-out metric.
    pub metric: f32,
}

/// A problem EGGROLL can train on: a model, a default configuration, a fitness for every member
/// of the population and an evaluation of the mean model, in its number format (`Format`:
/// [`F32`] for EGGROLL, [`Int8`](crate::format::Int8) for the integer `egg` task). Its trainer
/// is the [`Trainer`] of that format: [`FloatTrainer`] for f32 tasks.
///
/// The methods that take the trainer are generic over the backend; an implementation may ask
/// less of it than [`IntBackend`] (f32 tasks ask only [`Backend`](eggroll_backend::Backend)).
pub trait Task {
    /// The model it trains.
    type Model;
    /// The number format it trains in.
    type Format;
    /// Short name, as [`TaskKind`] parses it.
    fn name(&self) -> &'static str;
    /// The model to train.
    fn model(&self) -> Self::Model;
    /// The hyperparameters the task is tuned for.
    fn default_config(&self) -> EsConfig;
    /// Raw fitness (higher is better) of the members `members` (whole antithetic pairs of the
    /// population, [`FloatTrainer::population_forward_members_async`](crate::FloatTrainer::population_forward_members_async))
    /// at the trainer's current epoch, the backend's read-backs awaited (a browser cannot block on
    /// them). A member's fitness depends on the member alone, never on which others are evaluated
    /// with it, so that workers sharing a population out (several adapters, MPI ranks) give the
    /// values one worker would.
    fn members_fitness_async<B: IntBackend>(
        &mut self, es: &mut Trainer<B, Self::Model, Self::Format>, members: Range<usize>,
    ) -> impl Future<Output = Result<Vec<FitnessOf<Self>>>>
    where
        Self::Format: Trains<B, Self::Model>;
    /// Train loss of the mean model on the data just seen, and the held-out metric, the read-backs
    /// awaited.
    fn evaluate_async<B: IntBackend>(&mut self, es: &mut Trainer<B, Self::Model, Self::Format>) -> impl Future<Output = Result<Evaluation>>
    where
        Self::Format: Trains<B, Self::Model>;
    /// The forwards of an epoch and of an evaluation under `config`, and the host memory the task
    /// itself holds for an epoch, for the run's memory plan ([`crate::plan::MemoryPlan`]).
    fn footprint(&self, config: &EsConfig) -> Footprint;
    /// The statistics of an epoch's raw fitness in the units the task reports them in (the
    /// language models' bits per byte); as they are by default.
    fn report_stats(&self, stats: StepStats) -> StepStats {
        stats
    }
    /// Tokens (bytes) the whole population evaluates in an epoch of `config`, for a sequence
    /// model's tokens-per-second figure; `None` (the default) for other tasks.
    fn tokens_per_epoch(&self, _config: &EsConfig) -> Option<usize> {
        None
    }
    /// Reference figures reported beside the metric, by name (a language model's baselines);
    /// none by default.
    fn baselines(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// The task's settings beyond the [`EsConfig`] (model shape, data) that a checkpoint records
    /// and a resumed run must match; `null` (the default) when the task has none.
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Raw fitness (len N) of every member at the trainer's current epoch:
    /// [`Task::members_fitness_async`] of `0..N`.
    fn population_fitness_async<B: IntBackend>(
        &mut self, es: &mut Trainer<B, Self::Model, Self::Format>,
    ) -> impl Future<Output = Result<Vec<FitnessOf<Self>>>>
    where
        Self::Format: Trains<B, Self::Model>,
    {
        let population = es.config().population;
        self.members_fitness_async(es, 0..population)
    }
    /// Blocking [`Task::population_fitness_async`] for native callers.
    #[cfg(feature = "native")]
    fn population_fitness<B: IntBackend>(&mut self, es: &mut Trainer<B, Self::Model, Self::Format>) -> Result<Vec<FitnessOf<Self>>>
    where
        Self::Format: Trains<B, Self::Model>,
    {
        pollster::block_on(self.population_fitness_async(es))
    }
    /// Blocking [`Task::evaluate_async`] for native callers.
    #[cfg(feature = "native")]
    fn evaluate<B: IntBackend>(&mut self, es: &mut Trainer<B, Self::Model, Self::Format>) -> Result<Evaluation>
    where
        Self::Format: Trains<B, Self::Model>,
    {
        pollster::block_on(self.evaluate_async(es))
    }
}

/// What a task's epoch and evaluation ask of memory: the shape of its population forward, the
/// rows of its largest mean-model forward, and its own host buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// Rows per member of the population forward.
    pub rows: usize,
    /// The layout of the population forward's input.
    pub layout: InputLayout,
    /// Rows of the largest mean-model forward of an evaluation.
    pub eval_rows: usize,
    /// Bytes the task holds on the host for an epoch (the inputs it builds, what it reads back,
    /// environment states) beyond the trainer's.
    pub host_bytes: u64,
}

impl Footprint {
    /// The footprint of `rows` rows per member in `layout`, `eval_rows` rows evaluated, and
    /// `per_member` host bytes for each of the `config`'s members.
    pub fn new(config: &EsConfig, rows: usize, layout: InputLayout, eval_rows: usize, per_member: usize) -> Self {
        Self { rows, layout, eval_rows, host_bytes: (config.population as u64).saturating_mul(per_member as u64) }
    }
}

/// The raw fitness of a member of task `T`: f32, or the integer task's score.
pub type FitnessOf<T> = <<T as Task>::Format as Format>::Fitness;

/// One epoch: [`Task::population_fitness_async`], then the trainer's update, the statistics in the
/// task's units ([`Task::report_stats`]).
pub async fn train_epoch_async<B: IntBackend, T: Task>(task: &mut T, es: &mut Trainer<B, T::Model, T::Format>) -> Result<StepStats>
where
    T::Format: Trains<B, T::Model>,
{
    let fitness = task.population_fitness_async(es).await?;
    Ok(task.report_stats(T::Format::tell(es, &fitness)?))
}

/// Blocking [`train_epoch_async`] for native callers.
#[cfg(feature = "native")]
pub fn train_epoch<B: IntBackend, T: Task>(task: &mut T, es: &mut Trainer<B, T::Model, T::Format>) -> Result<StepStats>
where
    T::Format: Trains<B, T::Model>,
{
    pollster::block_on(train_epoch_async(task, es))
}

/// The tasks by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// `y = x² + x + 1`, the authors' worked example ([`Regression`]), the default.
    #[default]
    Regression,
    /// Output 2 for any input ([`Constant`]).
    Constant,
    /// Handwritten digits classification ([`Digits`]).
    Digits,
    /// CartPole-v1 balancing ([`CartPole`]).
    CartPole,
    /// Pendulum-v1 swing-up ([`Pendulum`]).
    Pendulum,
    /// Acrobot-v1 swing-up ([`Acrobot`]).
    Acrobot,
    /// MountainCar-v0, discrete pushes ([`MountainCar`]).
    MountainCar,
    /// MountainCarContinuous-v0, a continuous force ([`MountainCarContinuous`]).
    MountainCarContinuous,
    /// A byte-level language model ([`CharLm`]); it trains a [`CharLmModel`], not an [`Mlp`],
    /// so it is built with [`CharLm::new`] rather than [`TaskKind::build`].
    CharLm,
    /// The integer language model ([`Egg`]), trained by integer EGGROLL
    /// ([`crate::int8::IntTrainer`]); built with [`Egg::new`].
    Egg,
}

impl TaskKind {
    /// Every task kind.
    pub const ALL: [TaskKind; 10] = [
        TaskKind::Regression,
        TaskKind::Constant,
        TaskKind::Digits,
        TaskKind::CartPole,
        TaskKind::Pendulum,
        TaskKind::Acrobot,
        TaskKind::MountainCar,
        TaskKind::MountainCarContinuous,
        TaskKind::CharLm,
        TaskKind::Egg,
    ];

    /// The name [`FromStr`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Regression => "regression",
            TaskKind::Constant => "constant",
            TaskKind::Digits => "digits",
            TaskKind::CartPole => "cartpole",
            TaskKind::Pendulum => "pendulum",
            TaskKind::Acrobot => "acrobot",
            TaskKind::MountainCar => "mountaincar",
            TaskKind::MountainCarContinuous => "mountaincar-continuous",
            TaskKind::CharLm => "charlm",
            TaskKind::Egg => "egg",
        }
    }

    /// The name of the held-out metric its [`Evaluation`] reports.
    pub fn metric_name(self) -> &'static str {
        match self {
            TaskKind::Regression | TaskKind::Constant => "test_loss",
            TaskKind::Digits => "accuracy",
            TaskKind::CartPole | TaskKind::Pendulum | TaskKind::Acrobot | TaskKind::MountainCar | TaskKind::MountainCarContinuous => {
                "return"
            }
            TaskKind::CharLm | TaskKind::Egg => "test_bits_per_byte",
        }
    }

    /// The [`Mlp`] task with its data drawn from `seed` (digits: an error if its embedded data
    /// fails validation); `charlm` and `egg` are refused, as [`CharLm::new`] and [`Egg::new`] build them.
    pub fn build(self, seed: u64) -> Result<AnyTask> {
        match self {
            TaskKind::Regression => Ok(AnyTask::Regression(Regression::new(seed))),
            TaskKind::Constant => Ok(AnyTask::Constant(Constant::new(seed))),
            TaskKind::Digits => Ok(AnyTask::Digits(Digits::new(seed)?)),
            TaskKind::CartPole => Ok(AnyTask::CartPole(CartPole::new(seed))),
            TaskKind::Pendulum => Ok(AnyTask::Pendulum(Pendulum::new(seed))),
            TaskKind::Acrobot => Ok(AnyTask::Acrobot(Acrobot::new(seed))),
            TaskKind::MountainCar => Ok(AnyTask::MountainCar(MountainCar::new(seed))),
            TaskKind::MountainCarContinuous => Ok(AnyTask::MountainCarContinuous(MountainCarContinuous::new(seed))),
            TaskKind::CharLm => Err(EggrollError::Config("the charlm task trains a CharLmModel: build it with CharLm::new".into())),
            TaskKind::Egg => Err(EggrollError::Config("the egg task trains an integer model: build it with Egg::new".into())),
        }
    }

    /// Whether it is a control task (an episode per member, an [`Mlp`] policy whose hidden layers
    /// [`TaskKind::build_with_hidden`] sets).
    pub fn is_control(self) -> bool {
        matches!(
            self,
            TaskKind::CartPole | TaskKind::Pendulum | TaskKind::Acrobot | TaskKind::MountainCar | TaskKind::MountainCarContinuous
        )
    }

    /// The control task with a policy of hidden layer sizes `hidden` (e.g. `[256, 256, 256]`),
    /// its start states drawn from `seed`; an error for another task or an empty or zero size.
    pub fn build_with_hidden(self, seed: u64, hidden: &[usize]) -> Result<AnyTask> {
        match self {
            TaskKind::CartPole => Ok(AnyTask::CartPole(Control::with_hidden(cartpole::CartPoleEnv, seed, hidden)?)),
            TaskKind::Pendulum => Ok(AnyTask::Pendulum(Control::with_hidden(pendulum::PendulumEnv, seed, hidden)?)),
            TaskKind::Acrobot => Ok(AnyTask::Acrobot(Control::with_hidden(acrobot::AcrobotEnv, seed, hidden)?)),
            TaskKind::MountainCar => Ok(AnyTask::MountainCar(Control::with_hidden(mountaincar::MountainCarEnv, seed, hidden)?)),
            TaskKind::MountainCarContinuous => {
                Ok(AnyTask::MountainCarContinuous(Control::with_hidden(mountaincar::ContinuousEnv, seed, hidden)?))
            }
            other => Err(EggrollError::Config(format!("hidden layer sizes apply to the control tasks only, not {other}"))),
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskKind {
    type Err = EggrollError;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        TaskKind::ALL.into_iter().find(|k| k.name() == lower).ok_or_else(|| {
            let names: Vec<_> = TaskKind::ALL.iter().map(|k| k.name()).collect();
            EggrollError::Config(format!("unknown task `{s}`; expected one of {}", names.join(", ")))
        })
    }
}

/// Any [`Mlp`] task of this build, for dispatch by [`TaskKind`].
#[derive(Clone, Debug)]
pub enum AnyTask {
    /// [`Regression`].
    Regression(Regression),
    /// [`Constant`].
    Constant(Constant),
    /// [`Digits`].
    Digits(Digits),
    /// [`CartPole`].
    CartPole(CartPole),
    /// [`Pendulum`].
    Pendulum(Pendulum),
    /// [`Acrobot`].
    Acrobot(Acrobot),
    /// [`MountainCar`].
    MountainCar(MountainCar),
    /// [`MountainCarContinuous`].
    MountainCarContinuous(MountainCarContinuous),
}

/// Forwards a [`Task`] method to the task inside an [`AnyTask`].
macro_rules! dispatch {
    ($self:ident, $t:ident => $call:expr) => {
        match $self {
            AnyTask::Regression($t) => $call,
            AnyTask::Constant($t) => $call,
            AnyTask::Digits($t) => $call,
            AnyTask::CartPole($t) => $call,
            AnyTask::Pendulum($t) => $call,
            AnyTask::Acrobot($t) => $call,
            AnyTask::MountainCar($t) => $call,
            AnyTask::MountainCarContinuous($t) => $call,
        }
    };
}

impl Task for AnyTask {
    type Model = Mlp;
    type Format = F32;
    fn name(&self) -> &'static str {
        dispatch!(self, t => t.name())
    }
    fn model(&self) -> Mlp {
        dispatch!(self, t => t.model())
    }
    fn default_config(&self) -> EsConfig {
        dispatch!(self, t => t.default_config())
    }
    async fn members_fitness_async<B: IntBackend>(&mut self, es: &mut FloatTrainer<B>, members: Range<usize>) -> Result<Vec<f32>> {
        dispatch!(self, t => t.members_fitness_async(es, members).await)
    }
    async fn evaluate_async<B: IntBackend>(&mut self, es: &mut FloatTrainer<B>) -> Result<Evaluation> {
        dispatch!(self, t => t.evaluate_async(es).await)
    }
    fn settings(&self) -> serde_json::Value {
        dispatch!(self, t => t.settings())
    }
    fn footprint(&self, config: &EsConfig) -> Footprint {
        dispatch!(self, t => t.footprint(config))
    }
}

/// A generator that is a pure function of `(seed, stream, epoch)` (SplitMix64 mixing).
pub(crate) fn rng_for(seed: u64, stream: u64, epoch: u32) -> Pcg64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(epoch) << 32 | 0x5EED);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64::seed_from_u64(z ^ (z >> 31))
}

/// Mean squared error of `pred` against `target`.
pub(crate) fn mse(pred: &[f32], target: &[f32]) -> f32 {
    let sum: f64 = pred.iter().zip(target).map(|(p, t)| f64::from(p - t).powi(2)).sum();
    (sum / target.len() as f64) as f32
}
