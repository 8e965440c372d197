//! MountainCar-v0 and MountainCarContinuous-v0: drive an underpowered car out of a valley by
//! rocking it.
//!
//! The dynamics, constants, termination rules, rewards and time limits are those of Gymnasium's
//! `MountainCarEnv` and `Continuous_MountainCarEnv`
//! (`gymnasium/envs/classic_control/mountain_car.py` and `continuous_mountain_car.py`, registered
//! with `max_episode_steps` 200 and 999), after Moore (1990). Position in `[-1.2, 0.6]`, speed
//! bounded by 0.07, gravity term `-0.0025 cos(3 x)`, the car stopped at the left wall; start
//! position `U(-0.6, -0.4)` at rest; observation `[x, ẋ]`, which the policy reads rescaled to
//! `[-1, 1]²` (`scaled_observation`).
//! - **Discrete** (`mountaincar`): push left, none or right (force 0.001); reward −1 per step;
//!   terminal at `x ≥ 0.5` moving right (`ẋ ≥ 0`).
//! - **Continuous** (`mountaincar-continuous`): a float32 force in `[-1, 1]` times power 0.0015;
//!   reward 100 on reaching `x ≥ 0.45` (Gymnasium's goal for this version) with `ẋ ≥ 0`, minus
//!   `0.1 a²` every step. Gymnasium holds this state as float32 after the first step and mixes
//!   float32 and float64 arithmetic by NumPy 2's promotion rules; [`ContinuousEnv::physics`]
//!   follows it value type by value type.

use super::acrobot::argmax;
use super::control::{Control, Env, Transition};
use super::TaskKind;
use crate::config::{EsConfig, OptimizerKind};
use rand::RngExt;
use rand_pcg::Pcg64;

/// Left wall (m).
pub const MIN_POSITION: f64 = -1.2;
/// Right end (m).
pub const MAX_POSITION: f64 = 0.6;
/// Speed bound.
pub const MAX_SPEED: f64 = 0.07;
/// Goal position of `MountainCar-v0`.
pub const GOAL_POSITION: f64 = 0.5;
/// Goal position of `MountainCarContinuous-v0`.
pub const CONTINUOUS_GOAL_POSITION: f64 = 0.45;
/// Force of a push of `MountainCar-v0`.
pub const FORCE: f64 = 0.001;
/// Force per unit action of `MountainCarContinuous-v0`.
pub const POWER: f64 = 0.0015;
/// Gravity term's factor.
pub const GRAVITY: f64 = 0.0025;
/// Time limit (steps) of `MountainCar-v0`.
pub const MAX_STEPS: usize = 200;
/// Time limit (steps) of `MountainCarContinuous-v0`.
pub const CONTINUOUS_MAX_STEPS: usize = 999;
/// Start positions are uniform in this range.
pub const START_POSITION: std::ops::Range<f64> = -0.6..-0.4;

/// Position and velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MountainCarState {
    /// Position `x` (m).
    pub position: f64,
    /// Velocity `ẋ`.
    pub velocity: f64,
    /// Whether Gymnasium holds this state as float32 (the continuous version after a step):
    /// its arithmetic is float32 then. Always false for the discrete version.
    pub float32: bool,
}

/// The policy's input: Gymnasium's observation `[x, ẋ]` mapped from its box
/// (`[-1.2, 0.6] x [-0.07, 0.07]`) onto `[-1, 1]²`. The raw speed is two orders of magnitude below
/// the position, so an unscaled policy barely sees it, and only a policy that pushes along the
/// velocity ever reaches the goal: rescaled, a fair share of random initial policies do, which
/// gives the fitness its first differences. The state itself (and everything the Gymnasium
/// oracle test compares) is Gymnasium's.
fn scaled_observation(s: &MountainCarState, obs: &mut [f32]) {
    let centre = (MIN_POSITION + MAX_POSITION) / 2.0;
    let half = (MAX_POSITION - MIN_POSITION) / 2.0;
    obs.copy_from_slice(&[((s.position - centre) / half) as f32, (s.velocity / MAX_SPEED) as f32]);
}

/// A start state: position `U(-0.6, -0.4)`, at rest, float64.
fn start(rng: &mut Pcg64) -> MountainCarState {
    MountainCarState { position: rng.random_range(START_POSITION), velocity: 0.0, float32: false }
}

/// MountainCar-v0. The model outputs 3 logits and the action is their argmax: push left, none,
/// push right.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MountainCarEnv;

impl MountainCarEnv {
    /// One step with `action` 0, 1 or 2; returns whether the new state is terminal. The
    /// arithmetic of Gymnasium 1.x's `MountainCarEnv.step`, all float64.
    pub fn physics(state: &mut MountainCarState, action: usize) -> bool {
        let MountainCarState { mut position, mut velocity, .. } = *state;
        // velocity += (action - 1) * force + math.cos(3 * position) * (-gravity)
        velocity += (action as f64 - 1.0) * FORCE + (3.0 * position).cos() * -GRAVITY;
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        *state = MountainCarState { position, velocity, float32: false };
        position >= GOAL_POSITION && velocity >= 0.0
    }
}

impl Env for MountainCarEnv {
    type State = MountainCarState;
    /// 0, 1, 2: push left, none, right.
    type Action = usize;
    const KIND: TaskKind = TaskKind::MountainCar;
    const OBS: usize = 2;
    const OUTPUTS: usize = 3;
    /// 2 → 32 → 32 → 3.
    const HIDDEN: &'static [usize] = &[32, 32];
    const HORIZON: usize = MAX_STEPS;
    const TRAIN_STREAM: u64 = 51;
    const EVAL_STREAM: u64 = 52;

    fn initial_state(&self, rng: &mut Pcg64) -> MountainCarState {
        start(rng)
    }

    /// `scaled_observation`.
    fn observe(&self, s: &MountainCarState, obs: &mut [f32]) {
        scaled_observation(s, obs);
    }

    /// The argmax of 3 logits (ties to the lower index).
    fn decode(&self, logits: &[f32]) -> usize {
        argmax(logits)
    }

    /// [`MountainCarEnv::physics`]; reward −1 for every step.
    fn apply(&self, state: &mut MountainCarState, action: usize) -> Transition {
        Transition { reward: -1.0, terminated: Self::physics(state, action) }
    }

    /// N = 256, rank 4, σ = 0.1, Adam with lr 0.05, 100 epochs. Only a policy that rocks the car
    /// by its velocity ever reaches the goal and changes the return (until one member does, every
    /// return is −200 and the update has no signal); with the rescaled observation
    /// (`scaled_observation`) the initial population has such members, and a small σ then
    /// refines the swing.
    fn default_config(&self) -> EsConfig {
        EsConfig { population: 256, rank: 4, sigma: 0.1, lr: 0.05, optimizer: OptimizerKind::Adam, epochs: 100, ..EsConfig::default() }
    }
}

/// MountainCar-v0 as a task: one episode per member, fitness = its return (−200 to 0).
pub type MountainCar = Control<MountainCarEnv>;

impl MountainCar {
    /// The task with its start states drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Control::with_env(MountainCarEnv, seed)
    }
}

/// A Python number as Gymnasium's continuous step holds it: a NumPy float32, or a float64
/// (NumPy's float64 or a Python float). NumPy 2 computes float32 with a Python float in float32
/// (the Python float rounded first) and float32 with a NumPy float64 in float64; comparisons
/// follow the same rule.
#[derive(Clone, Copy, Debug)]
enum Num {
    /// A NumPy float32.
    F32(f32),
    /// A NumPy float64 or a Python float.
    F64(f64),
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::F32(v) => f64::from(v),
            Num::F64(v) => v,
        }
    }

    /// `self > c` for a Python float `c`.
    fn gt(self, c: f64) -> bool {
        match self {
            Num::F32(v) => v > c as f32,
            Num::F64(v) => v > c,
        }
    }

    /// `self < c` for a Python float `c`.
    fn lt(self, c: f64) -> bool {
        match self {
            Num::F32(v) => v < c as f32,
            Num::F64(v) => v < c,
        }
    }

    /// `self == c` for a Python float `c`.
    fn eq(self, c: f64) -> bool {
        match self {
            Num::F32(v) => v == c as f32,
            Num::F64(v) => v == c,
        }
    }

    /// `self + other` where `other` is a Python float when `weak`, else a NumPy scalar.
    fn add(self, other: Num, weak: bool) -> Num {
        match (self, other) {
            (Num::F32(a), Num::F32(b)) => Num::F32(a + b),
            (Num::F32(a), Num::F64(b)) if weak => Num::F32(a + b as f32),
            (a, b) => Num::F64(a.value() + b.value()),
        }
    }
}

/// MountainCarContinuous-v0. The model outputs one value `y` and the force is `tanh(y)`, a
/// float32 as Gymnasium's action space holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContinuousEnv;

impl ContinuousEnv {
    /// One step with the float32 action `a`; returns the reward and whether the new state is
    /// terminal. The arithmetic of Gymnasium 1.x's `Continuous_MountainCarEnv.step` with NumPy 2's
    /// promotion: the state is float64 before the first step and float32 after it.
    pub fn physics(state: &mut MountainCarState, a: f32) -> (f64, bool) {
        let narrow = |v: f64| if state.float32 { Num::F32(v as f32) } else { Num::F64(v) };
        let (position, velocity) = (narrow(state.position), narrow(state.velocity));
        // force = min(max(action[0], min_action), max_action): a Python float when clipped.
        let force = if -1.0 > a {
            Num::F64(-1.0)
        } else if 1.0 < a {
            Num::F64(1.0)
        } else {
            Num::F32(a)
        };
        // velocity += force * power - 0.0025 * math.cos(3 * position)
        let three_x = match position {
            Num::F32(x) => f64::from(3.0f32 * x),
            Num::F64(x) => 3.0 * x,
        };
        let gravity = GRAVITY * three_x.cos();
        let delta = match force {
            Num::F32(f) => Num::F32(f * POWER as f32 - gravity as f32),
            Num::F64(f) => Num::F64(f * POWER - gravity),
        };
        let weak = matches!(force, Num::F64(_));
        let mut velocity = velocity.add(delta, weak);
        if velocity.gt(MAX_SPEED) {
            velocity = Num::F64(MAX_SPEED);
        }
        if velocity.lt(-MAX_SPEED) {
            velocity = Num::F64(-MAX_SPEED);
        }
        // position += velocity: velocity is a Python float only when it was just bounded.
        let bounded = matches!(velocity, Num::F64(_)) && state.float32;
        let mut position = position.add(velocity, bounded);
        if position.gt(MAX_POSITION) {
            position = Num::F64(MAX_POSITION);
        }
        if position.lt(MIN_POSITION) {
            position = Num::F64(MIN_POSITION);
        }
        if position.eq(MIN_POSITION) && velocity.lt(0.0) {
            velocity = Num::F64(0.0);
        }
        let terminated = !position.lt(CONTINUOUS_GOAL_POSITION) && !velocity.lt(0.0);
        let bonus = if terminated { 100.0 } else { 0.0 };
        let reward = bonus - super::pendulum::pow2(f64::from(a)) * 0.1;
        *state =
            MountainCarState { position: f64::from(position.value() as f32), velocity: f64::from(velocity.value() as f32), float32: true };
        (reward, terminated)
    }
}

impl Env for ContinuousEnv {
    type State = MountainCarState;
    /// The force in `[-1, 1]` (Gymnasium clips it; the cost is on the action as given).
    type Action = f32;
    const KIND: TaskKind = TaskKind::MountainCarContinuous;
    const OBS: usize = 2;
    const OUTPUTS: usize = 1;
    /// 2 → 32 → 32 → 1.
    const HIDDEN: &'static [usize] = &[32, 32];
    const HORIZON: usize = CONTINUOUS_MAX_STEPS;
    const TRAIN_STREAM: u64 = 61;
    const EVAL_STREAM: u64 = 62;

    fn initial_state(&self, rng: &mut Pcg64) -> MountainCarState {
        start(rng)
    }

    /// `scaled_observation`.
    fn observe(&self, s: &MountainCarState, obs: &mut [f32]) {
        scaled_observation(s, obs);
    }

    /// The force `tanh(y)` of the model's output `y`, rounded to float32.
    fn decode(&self, output: &[f32]) -> f32 {
        f64::from(output[0]).tanh() as f32
    }

    /// [`ContinuousEnv::physics`].
    fn apply(&self, state: &mut MountainCarState, a: f32) -> Transition {
        let (reward, terminated) = Self::physics(state, a);
        Transition { reward, terminated }
    }

    /// N = 256, rank 4, σ = 0.1, Adam with lr 0.05, 100 epochs.
    fn default_config(&self) -> EsConfig {
        EsConfig { population: 256, rank: 4, sigma: 0.1, lr: 0.05, optimizer: OptimizerKind::Adam, epochs: 100, ..EsConfig::default() }
    }
}

/// MountainCarContinuous-v0 as a task: one episode per member, fitness = its return.
pub type MountainCarContinuous = Control<ContinuousEnv>;

impl MountainCarContinuous {
    /// The task with its start states drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Control::with_env(ContinuousEnv, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::FloatTrainer;
    use crate::tasks::Task;
    use eggroll_backend::cpu::CpuBackend;

    #[test]
    fn the_left_wall_stops_the_car() {
        let mut s = MountainCarState { position: -1.19, velocity: -0.05, float32: false };
        assert!(!MountainCarEnv::physics(&mut s, 0));
        assert_eq!((s.position, s.velocity), (MIN_POSITION, 0.0));
        let mut s = MountainCarState { position: 0.49, velocity: 0.05, float32: false };
        assert_eq!(MountainCarEnv.apply(&mut s, 2), Transition { reward: -1.0, terminated: true });
    }

    #[test]
    fn continuous_goal_reward_and_float32_state() {
        let mut s = MountainCarState { position: 0.44, velocity: 0.05, float32: false };
        let (reward, terminated) = ContinuousEnv::physics(&mut s, 0.5);
        assert!(terminated);
        assert!((reward - (100.0 - 0.025)).abs() < 1e-12, "{reward}");
        assert!(s.float32 && s.position == f64::from(s.position as f32));
        // The cost is on the action as given, the push on the action clipped to [-1, 1].
        let mut s = MountainCarState { position: -0.5, velocity: 0.0, float32: true };
        let mut t = s;
        let (reward, _) = ContinuousEnv::physics(&mut s, 2.0);
        ContinuousEnv::physics(&mut t, 1.0);
        assert!((reward + 0.4).abs() < 1e-12 && s == t, "{reward} {s:?} {t:?}");
    }

    /// Returns of the mean model before and after `epochs` epochs of training on `task`.
    fn train<E: Env>(mut task: Control<E>, epochs: usize) -> (f32, f32) {
        let config = EsConfig { seed: 1, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap().metric;
        for _ in 0..epochs {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        (before, task.evaluate(&mut es).unwrap().metric)
    }

    #[test]
    fn training_reaches_the_goal() {
        // The initial policy never reaches the goal; training finds the swing.
        let (before, after) = train(MountainCar::new(1), 30);
        eprintln!("mountaincar return {before} -> {after}");
        assert!(before == -200.0 && after > -150.0, "mountaincar return {before} -> {after}");
    }

    #[test]
    fn continuous_training_ends_above_the_solved_threshold() {
        let (before, after) = train(MountainCarContinuous::new(1), 20);
        eprintln!("mountaincar-continuous return {before} -> {after}");
        assert!(after >= 90.0 && after > before, "mountaincar-continuous return {before} -> {after}");
    }
}
