//! Pendulum-v1: swing a torque-limited pendulum up and keep it upright.
//!
//! The dynamics, constants, cost and time limit are those of Gymnasium's `PendulumEnv`
//! (`gymnasium/envs/classic_control/pendulum.py`, registered as `Pendulum-v1` with
//! `max_episode_steps=200`): max speed 8 rad/s, max torque 2, `dt` 0.05, `g` 10, `m` 1, `l` 1;
//! `θ̇ ← clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, ±8)`, then `θ ← θ + θ̇ dt` (semi-implicit Euler);
//! reward `-(angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²)` on the state before the step; start state
//! `θ ~ U(-π, π)`, `θ̇ ~ U(-1, 1)`; observation `[cos θ, sin θ, θ̇]`; 200 steps, no termination.
//! `θ = 0` is upright.

use super::control::{Control, Env, Transition};
use super::TaskKind;
use crate::config::{EsConfig, OptimizerKind};
use crate::model::Mlp;
use rand::RngExt;
use rand_pcg::Pcg64;
use std::f64::consts::PI;

/// Angular velocity limit (rad/s).
pub const MAX_SPEED: f64 = 8.0;
/// Torque limit.
pub const MAX_TORQUE: f64 = 2.0;
/// Time step (s).
pub const DT: f64 = 0.05;
/// Gravity (m/s²).
pub const G: f64 = 10.0;
/// Mass (kg).
pub const M: f64 = 1.0;
/// Length (m).
pub const L: f64 = 1.0;
/// Time limit (steps) of `Pendulum-v1`.
pub const MAX_STEPS: usize = 200;
/// Start velocity is uniform in `[-START_SPEED, START_SPEED]`.
pub const START_SPEED: f64 = 1.0;

/// Angle and angular velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendulumState {
    /// Angle `θ` (rad, 0 upright), not wrapped.
    pub theta: f64,
    /// Angular velocity `θ̇` (rad/s).
    pub theta_dot: f64,
}

/// `((x + π) mod 2π) - π` with a floored modulo, as Gymnasium's `angle_normalize`: the angle in
/// `[-π, π)`.
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

/// The Pendulum-v1 dynamics. Observation `[cos θ, sin θ, θ̇]`; the model outputs one value `y` and
/// the torque is `2 tanh(y)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PendulumEnv;

impl PendulumEnv {
    /// One step with torque `u` (clipped to ±2); returns the reward. Same arithmetic, in the
    /// same order, as Gymnasium's `PendulumEnv.step`.
    pub fn physics(state: &mut PendulumState, u: f64) -> f64 {
        let u = u.clamp(-MAX_TORQUE, MAX_TORQUE);
        let PendulumState { theta, theta_dot } = *state;
        let costs = angle_normalize(theta).powi(2) + 0.1 * theta_dot * theta_dot + 0.001 * (u * u);
        let new_theta_dot = (theta_dot + (3.0 * G / (2.0 * L) * theta.sin() + 3.0 / (M * L * L) * u) * DT).clamp(-MAX_SPEED, MAX_SPEED);
        *state = PendulumState { theta: theta + new_theta_dot * DT, theta_dot: new_theta_dot };
        -costs
    }

    /// The torque of the model's output `y`: `2 tanh(y)`.
    pub fn torque(output: &[f32]) -> f64 {
        MAX_TORQUE * f64::from(output[0]).tanh()
    }
}

impl Env for PendulumEnv {
    type State = PendulumState;
    const KIND: TaskKind = TaskKind::Pendulum;
    const OBS: usize = 3;
    const OUTPUTS: usize = 1;
    const HORIZON: usize = MAX_STEPS;
    const TRAIN_STREAM: u64 = 31;
    const EVAL_STREAM: u64 = 32;

    fn initial_state(&self, rng: &mut Pcg64) -> PendulumState {
        let theta = rng.random_range(-PI..PI);
        PendulumState { theta, theta_dot: rng.random_range(-START_SPEED..START_SPEED) }
    }

    fn observe(&self, s: &PendulumState, obs: &mut [f32]) {
        let (sin, cos) = s.theta.sin_cos();
        obs.copy_from_slice(&[cos as f32, sin as f32, s.theta_dot as f32]);
    }

    fn step(&self, state: &mut PendulumState, output: &[f32]) -> Transition {
        Transition { reward: Self::physics(state, Self::torque(output)), terminated: false }
    }

    /// 3 → 32 → 32 → 1, tanh between layers.
    fn model(&self) -> Mlp {
        Mlp::builder(3).linear(32).tanh().linear(32).tanh().linear(1).build().expect("the task's fixed architecture is valid")
    }

    /// N = 256, rank 4, σ = 0.05, Adam with lr 0.03, 500 epochs.
    fn default_config(&self) -> EsConfig {
        EsConfig { population: 256, rank: 4, sigma: 0.05, lr: 0.03, optimizer: OptimizerKind::Adam, epochs: 500, ..EsConfig::default() }
    }
}

/// Pendulum-v1 as a task: one episode of 200 steps per member, fitness = its return (≤ 0).
pub type Pendulum = Control<PendulumEnv>;

impl Pendulum {
    /// The task with its start states drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Control::with_env(PendulumEnv, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::Eggroll;
    use crate::tasks::control::{rollout, EVAL_EPISODES};
    use crate::tasks::Task;
    use eggroll_backend::cpu::CpuBackend;

    fn step(theta: f64, theta_dot: f64, u: f64) -> (PendulumState, f64) {
        let mut s = PendulumState { theta, theta_dot };
        let r = PendulumEnv::physics(&mut s, u);
        (s, r)
    }

    fn assert_close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-12, "got {got}, want {want}");
    }

    #[test]
    fn upright_push_matches_hand_computed_step() {
        // θ = θ̇ = 0, u = 2: θ̇' = (15 sin 0 + 3·2)·0.05 = 0.3, θ' = 0.3·0.05 = 0.015,
        // reward -(0 + 0 + 0.001·4) = -0.004.
        let (s, r) = step(0.0, 0.0, 2.0);
        assert_close(s.theta_dot, 0.3);
        assert_close(s.theta, 0.015);
        assert_close(r, -0.004);
        // θ = π/2, θ̇ = 1, u = 1: θ̇' = 1 + (15 + 3)·0.05 = 1.9, θ' = π/2 + 0.095,
        // reward -((π/2)² + 0.1 + 0.001).
        let (s, r) = step(PI / 2.0, 1.0, 1.0);
        assert_close(s.theta_dot, 1.9);
        assert_close(s.theta, PI / 2.0 + 0.095);
        assert_close(r, -(PI * PI / 4.0 + 0.101));
    }

    #[test]
    fn steps_match_gymnasium() {
        // Reference values: Gymnasium's PendulumEnv.step arithmetic (Python floats).
        let (s, r) = step(1.0, -0.5, 0.7);
        assert_close(s.theta, 1.0118051619302961);
        assert_close(s.theta_dot, 0.23610323860592242);
        assert_close(r, -1.02549);
        // Torque clipped to -2 (also in the cost), angle wrapped in the cost.
        let (s, r) = step(4.0, 2.0, -3.0);
        assert_close(s.theta, 4.0566199064259525);
        assert_close(s.theta_dot, 1.1323981285190539);
        assert_close(r, -5.616935146920741);
        // Speed clipped to 8.
        let (s, r) = step(1.5, 7.9, 2.0);
        assert_close(s.theta_dot, 8.0);
        assert_close(s.theta, 1.9);
        assert_close(r, -8.495);
    }

    #[test]
    fn angle_normalisation() {
        assert_close(angle_normalize(PI), -PI);
        assert_close(angle_normalize(-PI), -PI);
        assert_close(angle_normalize(3.0 * PI / 2.0), -PI / 2.0);
        assert_close(angle_normalize(7.0), 0.7168146928204138);
        assert_close(angle_normalize(-7.0), -0.7168146928204138);
        assert_close(angle_normalize(0.5), 0.5);
        assert_close(angle_normalize(0.5 + 6.0 * PI), 0.5);
    }

    #[test]
    fn torque_and_observation() {
        assert_close(PendulumEnv::torque(&[0.0]), 0.0);
        assert!((PendulumEnv::torque(&[0.5f32.atanh()]) - 1.0).abs() < 1e-6);
        assert!(PendulumEnv::torque(&[100.0]) <= MAX_TORQUE && PendulumEnv::torque(&[-100.0]) >= -MAX_TORQUE);
        let mut obs = [0.0f32; 3];
        PendulumEnv.observe(&PendulumState { theta: PI / 2.0, theta_dot: -3.0 }, &mut obs);
        assert!(obs[0].abs() < 1e-7 && obs[1] == 1.0 && obs[2] == -3.0, "{obs:?}");
    }

    #[test]
    fn episodes_last_200_steps() {
        let task = Pendulum::new(0);
        for s in task.train_starts(0, 64) {
            assert!((-PI..PI).contains(&s.theta) && (-1.0..1.0).contains(&s.theta_dot));
        }
        let mut calls = 0;
        let returns = pollster::block_on(rollout(&PendulumEnv, task.eval_starts().to_vec(), async |obs: &[f32]| {
            calls += 1;
            Ok(vec![0.0; obs.len() / 3])
        }))
        .unwrap();
        assert_eq!(calls, MAX_STEPS);
        assert_eq!(returns.len(), EVAL_EPISODES);
        // Doing nothing: the pendulum swings about the bottom, costing about π² per step there.
        assert!(returns.iter().all(|&r| r < 0.0 && r > -(MAX_STEPS as f32) * 17.0), "{returns:?}");
    }

    #[test]
    fn pairs_share_start_states() {
        let mut task = Pendulum::new(1);
        let config = EsConfig { population: 32, sigma: 1e-6, ..task.default_config() };
        let mut es = Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
        let f = task.population_fitness(&mut es).unwrap();
        for p in f.chunks_exact(2) {
            assert!((p[0] - p[1]).abs() < 0.05 * p[0].abs().max(1.0), "{f:?}");
        }
        let spread = f.iter().copied().fold(f32::NEG_INFINITY, f32::max) - f.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(spread > 10.0, "{f:?}");
    }

    #[test]
    fn training_improves_the_return() {
        let mut task = Pendulum::new(5);
        let config = EsConfig { population: 64, epochs: 60, seed: 5, ..task.default_config() };
        let mut es = Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap();
        for _ in 0..60 {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        let after = task.evaluate(&mut es).unwrap();
        eprintln!("{before:?} -> {after:?}");
        assert!(after.metric >= before.metric + 400.0, "return {} -> {}", before.metric, after.metric);
    }
}
