//! Control tasks: batched environments, one per population member, episode return as fitness.
//!
//! An [`Env`] describes one environment's physics (start state, observation, one time step). A
//! [`VecEnv`] runs many of them side by side, and [`rollout`] drives a whole batch of episodes
//! with one model call per time step for every environment at once: the population
//! ([`FloatTrainer::population_forward`] with [`InputLayout::PerMember`], one row per member) during
//! training, the mean model ([`FloatTrainer::forward_mean`], one row per environment) when evaluating.
//! Only the physics loops over environments on the host; the model never does.
//!
//! [`Control`] turns an [`Env`] into a [`Task`]:
//! - **Start states.** Epoch `t` draws `N / 2` start states from `rng_for(seed, train stream, t)`;
//!   the two members of antithetic pair `k` (members `2k` and `2k + 1`) start from state `k`. The
//!   update only sees the difference of a pair's fitness (`(f_2k - f_2k+1) A_k B_kᵀ`), so sharing
//!   the start state makes that difference compare the noise rather than the luck of the draw,
//!   while different pairs still cover many start states per epoch.
//! - **Fitness** is the episode return (undiscounted sum of rewards) of each member.
//! - **Evaluation.** `metric` (`"return"`) is the mean return of the mean model over
//!   [`EVAL_EPISODES`] fixed held-out start states (a stream of their own, drawn once from the
//!   seed). `train_loss` is the *negative* mean return of the mean model from the `N / 2` start
//!   states of the last epoch trained, so that lower is better as for the other tasks.
//! - **Policy.** An [`Mlp`] from the observation to the outputs with tanh after each hidden layer,
//!   [`Env::HIDDEN`] wide by default or as [`Control::with_hidden`] (the CLI's `--hidden`) asks;
//!   [`Task::settings`] records the hidden sizes, so a checkpoint resumes only with the same shape.

use super::{rng_for, Evaluation, Footprint, Task, TaskKind};
use crate::config::EsConfig;
use crate::error::{EggrollError, Result};
use crate::es::FloatTrainer;
use crate::format::F32;
use crate::model::Mlp;
use eggroll_backend::{Backend, InputLayout};
use rand_pcg::Pcg64;
use serde_json::json;
use std::ops::Range;

/// Held-out start states the evaluation metric averages over.
pub const EVAL_EPISODES: usize = 16;

/// What one time step of one environment produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// Reward of the step.
    pub reward: f64,
    /// Whether the episode ended on a terminal state (the time limit is separate:
    /// [`Env::HORIZON`]).
    pub terminated: bool,
}

/// One environment's dynamics, written for the host (f64 state, f32 observations as the model
/// reads them).
pub trait Env: Clone + std::fmt::Debug {
    /// The physical state.
    type State: Copy + std::fmt::Debug + PartialEq;
    /// The action a step applies, as Gymnasium's action space holds it (an index for a discrete
    /// space, `f32` for a `float32` box).
    type Action: Copy + std::fmt::Debug + PartialEq;
    /// The task it is.
    const KIND: TaskKind;
    /// Observation features (model inputs).
    const OBS: usize;
    /// Model outputs the action is decoded from.
    const OUTPUTS: usize;
    /// Hidden layer sizes of the default policy network.
    const HIDDEN: &'static [usize];
    /// Time limit: episodes are truncated after this many steps.
    const HORIZON: usize;
    /// Stream of the tasks' seeded generator (`rng_for`) the training start states come from
    /// (epoch = trainer epoch).
    const TRAIN_STREAM: u64;
    /// Stream of the tasks' seeded generator (`rng_for`) the held-out start states come from
    /// (epoch 0).
    const EVAL_STREAM: u64;

    /// A start state.
    fn initial_state(&self, rng: &mut Pcg64) -> Self::State;
    /// Writes the observation of `state` into `obs` (len [`Env::OBS`]).
    fn observe(&self, state: &Self::State, obs: &mut [f32]);
    /// The action the model's `output` (len [`Env::OUTPUTS`]) chooses.
    fn decode(&self, output: &[f32]) -> Self::Action;
    /// Applies `action` to `state` for one time step: the state, reward and termination of
    /// Gymnasium's `step` for the same state and action, bit for bit.
    fn apply(&self, state: &mut Self::State, action: Self::Action) -> Transition;
    /// Decodes the model's `output` into an action and applies it.
    fn step(&self, state: &mut Self::State, output: &[f32]) -> Transition {
        self.apply(state, self.decode(output))
    }
    /// The hyperparameters the task is tuned for.
    fn default_config(&self) -> EsConfig;
}

/// A batch of environments stepped together. An environment whose episode has terminated is
/// frozen: its state and observation stay those of the terminal step, its outputs are ignored
/// and it earns no further reward.
#[derive(Clone, Debug)]
pub struct VecEnv<E: Env> {
    env: E,
    states: Vec<E::State>,
    alive: Vec<bool>,
    returns: Vec<f64>,
    obs: Vec<f32>,
    steps: usize,
}

impl<E: Env> VecEnv<E> {
    /// One environment per start state, at step 0.
    pub fn new(env: E, starts: Vec<E::State>) -> Self {
        let n = starts.len();
        let mut obs = vec![0.0; n * E::OBS];
        for (state, o) in starts.iter().zip(obs.chunks_exact_mut(E::OBS)) {
            env.observe(state, o);
        }
        Self { env, states: starts, alive: vec![true; n], returns: vec![0.0; n], obs, steps: 0 }
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether the batch holds no environment.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The observations, environments x [`Env::OBS`] (row-major).
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// The states.
    pub fn states(&self) -> &[E::State] {
        &self.states
    }

    /// Whether each environment is still running.
    pub fn alive(&self) -> &[bool] {
        &self.alive
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether every episode has ended (terminated or reached [`Env::HORIZON`]).
    pub fn done(&self) -> bool {
        self.steps >= E::HORIZON || !self.alive.iter().any(|&a| a)
    }

    /// Steps every live environment with its row of `outputs` (environments x [`Env::OUTPUTS`]).
    pub fn step(&mut self, outputs: &[f32]) -> Result<()> {
        if outputs.len() != self.len() * E::OUTPUTS {
            return Err(EggrollError::Data(format!(
                "{}: got {} model outputs for {} environments x {} outputs",
                E::KIND.name(),
                outputs.len(),
                self.len(),
                E::OUTPUTS
            )));
        }
        let rows = outputs.chunks_exact(E::OUTPUTS).zip(self.obs.chunks_exact_mut(E::OBS));
        for (i, (out, obs)) in rows.enumerate() {
            if !self.alive[i] {
                continue;
            }
            let t = self.env.step(&mut self.states[i], out);
            self.returns[i] += t.reward;
            self.alive[i] = !t.terminated;
            self.env.observe(&self.states[i], obs);
        }
        self.steps += 1;
        Ok(())
    }

    /// The return (sum of rewards) of every environment so far.
    pub fn returns(&self) -> Vec<f32> {
        self.returns.iter().map(|&r| r as f32).collect()
    }
}

/// Runs one episode from each of `starts`, calling `policy` once per time step with the
/// observations of all environments (environments x [`Env::OBS`]); `policy` returns their outputs
/// (environments x [`Env::OUTPUTS`]), awaiting a backend's read-back. Returns every episode's
/// return.
pub async fn rollout<E: Env>(env: &E, starts: Vec<E::State>, mut policy: impl AsyncFnMut(&[f32]) -> Result<Vec<f32>>) -> Result<Vec<f32>> {
    let mut batch = VecEnv::new(env.clone(), starts);
    while !batch.done() {
        let outputs = policy(batch.observations()).await?;
        batch.step(&outputs)?;
    }
    Ok(batch.returns())
}

/// Returns of the mean model from `starts`, all episodes batched as rows of one forward per step.
pub async fn mean_returns<E: Env, B: Backend>(env: &E, es: &mut FloatTrainer<B>, starts: Vec<E::State>) -> Result<Vec<f32>> {
    let rows = starts.len();
    rollout(env, starts, async |obs: &[f32]| es.forward_mean_async(obs, rows).await).await
}

/// Mean of `values` (f64 accumulation).
fn mean(values: &[f32]) -> f32 {
    (values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len().max(1) as f64) as f32
}

/// A control task: the environment `E`, one episode per population member (see the
/// [module documentation](self) for start states, fitness and evaluation).
#[derive(Clone, Debug)]
pub struct Control<E: Env> {
    env: E,
    seed: u64,
    hidden: Vec<usize>,
    eval_starts: Vec<E::State>,
}

impl<E: Env> Control<E> {
    /// The task on `env` with the default policy ([`Env::HIDDEN`]), its start states drawn from
    /// `seed`.
    pub fn with_env(env: E, seed: u64) -> Self {
        let mut rng = rng_for(seed, E::EVAL_STREAM, 0);
        let eval_starts = (0..EVAL_EPISODES).map(|_| env.initial_state(&mut rng)).collect();
        Self { env, seed, hidden: E::HIDDEN.to_vec(), eval_starts }
    }

    /// The task on `env` with a policy of hidden layers `hidden` (e.g. `[256, 256, 256]`); an
    /// error for an empty list or a layer of width 0.
    pub fn with_hidden(env: E, seed: u64, hidden: &[usize]) -> Result<Self> {
        if hidden.is_empty() || hidden.contains(&0) {
            return Err(EggrollError::Config(format!(
                "{}: the policy's hidden layer sizes must be one or more positive widths, got {hidden:?}",
                E::KIND.name()
            )));
        }
        Ok(Self { hidden: hidden.to_vec(), ..Self::with_env(env, seed) })
    }

    /// The policy's hidden layer sizes.
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// The held-out start states of the evaluation.
    pub fn eval_starts(&self) -> &[E::State] {
        &self.eval_starts
    }

    /// The `pairs` start states of `epoch` (pair k's members both start from state k).
    pub fn train_starts(&self, epoch: u32, pairs: usize) -> Vec<E::State> {
        let mut rng = rng_for(self.seed, E::TRAIN_STREAM, epoch);
        (0..pairs).map(|_| self.env.initial_state(&mut rng)).collect()
    }
}

impl<E: Env> Task for Control<E> {
    type Model = Mlp;
    type Format = F32;

    fn name(&self) -> &'static str {
        E::KIND.name()
    }

    /// [`Env::OBS`] → each of the hidden sizes, tanh after each → [`Env::OUTPUTS`].
    fn model(&self) -> Mlp {
        let builder = self.hidden.iter().fold(Mlp::builder(E::OBS), |b, &h| b.linear(h).tanh());
        builder.linear(E::OUTPUTS).build().expect("positive layer sizes make a valid network")
    }

    fn default_config(&self) -> EsConfig {
        self.env.default_config()
    }

    /// One row per member and step (its observation, its actions read back, its environment's
    /// state and return); the mean model on one start state per pair.
    fn footprint(&self, config: &EsConfig) -> Footprint {
        let per_member = 2 * (E::OBS + E::OUTPUTS) * 4 + 16 * 8;
        Footprint::new(config, 1, InputLayout::PerMember, (config.population / 2).max(EVAL_EPISODES), per_member)
    }

    /// Episode return of every member, pairs sharing their start state; one population forward
    /// (every member its own observation row) per time step.
    async fn members_fitness_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>, members: Range<usize>) -> Result<Vec<f32>> {
        let n = es.config().population;
        let pair_starts = self.train_starts(es.epoch(), n / 2);
        let starts = members.clone().map(|i| pair_starts[i / 2]).collect();
        let forward = async |obs: &[f32]| es.population_forward_members_async(members.clone(), obs, InputLayout::PerMember, 1).await;
        rollout(&self.env, starts, forward).await
    }

    /// `train_loss`: minus the mean return of the mean model from the last epoch's start states;
    /// `return`: its mean return over the [`EVAL_EPISODES`] held-out start states.
    async fn evaluate_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>) -> Result<Evaluation> {
        let pairs = es.config().population / 2;
        let train = mean_returns(&self.env, es, self.train_starts(es.epoch().saturating_sub(1), pairs)).await?;
        let held_out = mean_returns(&self.env, es, self.eval_starts.clone()).await?;
        Ok(Evaluation { train_loss: -mean(&train), metric_name: E::KIND.metric_name(), metric: mean(&held_out) })
    }

    /// `{"hidden": [...]}`: the policy's shape.
    fn settings(&self) -> serde_json::Value {
        json!({ "hidden": self.hidden })
    }
}
