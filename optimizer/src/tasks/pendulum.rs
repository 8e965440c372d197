//! Pendulum-v1: swing a torque-limited pendulum up and keep it upright.
//!
//! The dynamics, constants, cost and time limit are those of Gymnasium's `PendulumEnv`
//! (`gymnasium/envs/classic_control/pendulum.py`, registered as `Pendulum-v1` with
//! `max_episode_steps=200`): max speed 8 rad/s, max torque 2, `dt` 0.05, `g` 10, `m` 1, `l` 1;
//! `θ̇ ← clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt, ±8)` with `u` a float32 torque, then `θ ← θ + θ̇ dt` (semi-implicit Euler);
//! reward `-(angle_normalize(θ)² + 0.1 θ̇² + 0.001 u²)` on the state before the step; start state
//! `θ ~ U(-π, π)`, `θ̇ ~ U(-1, 1)`; observation `[cos θ, sin θ, θ̇]`; 200 steps, no termination.
//! `θ = 0` is upright.

use super::control::{Control, Env, Transition};
use super::TaskKind;
use crate::config::{EsConfig, OptimizerKind};
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

/// `x ** 2` as NumPy computes it for a float64: the platform libm's `pow(x, 2.0)`, which is not
/// always the product `x * x` (it can differ in the last bit). The exponent is hidden from the
/// optimiser, which would otherwise turn `powf(2.0)` into that product.
pub(crate) fn pow2(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// `x ** 2` as NumPy computes it for a float32: the platform libm's `powf(x, 2.0)`.
pub(crate) fn pow2_f32(x: f32) -> f32 {
    x.powf(std::hint::black_box(2.0))
}

/// The Pendulum-v1 dynamics. Observation `[cos θ, sin θ, θ̇]`; the model outputs one value `y` and
/// the torque is `2 tanh(y)`, a float32 as Gymnasium's action space holds it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PendulumEnv;

impl PendulumEnv {
    /// One step with the float32 torque `u` (clipped to ±2); returns the reward. The arithmetic
    /// of Gymnasium 1.x's `PendulumEnv.step` for a float32 action, with NumPy 2's promotion: the
    /// terms with `u` (`0.001 * u**2` and `3.0 / (m * l**2) * u`) are float32, the rest float64.
    pub fn physics(state: &mut PendulumState, u: f32) -> f64 {
        let u = u.clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32);
        let PendulumState { theta, theta_dot } = *state;
        // costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        let costs = pow2(angle_normalize(theta)) + 0.1 * pow2(theta_dot) + f64::from(0.001f32 * pow2_f32(u));
        // newthdot = thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l**2) * u) * dt
        let torque_term = (3.0 / (M * L * L)) as f32 * u;
        let new_theta_dot = theta_dot + (3.0 * G / (2.0 * L) * theta.sin() + f64::from(torque_term)) * DT;
        let new_theta_dot = new_theta_dot.clamp(-MAX_SPEED, MAX_SPEED);
        *state = PendulumState { theta: theta + new_theta_dot * DT, theta_dot: new_theta_dot };
        -costs
    }
}

impl Env for PendulumEnv {
    type State = PendulumState;
    /// The torque.
    type Action = f32;
    const KIND: TaskKind = TaskKind::Pendulum;
    const OBS: usize = 3;
    const OUTPUTS: usize = 1;
    /// 3 → 32 → 32 → 1.
    const HIDDEN: &'static [usize] = &[32, 32];
    const HORIZON: usize = MAX_STEPS;
    const TRAIN_STREAM: u64 = 31;
    const EVAL_STREAM: u64 = 32;

    fn initial_state(&self, rng: &mut Pcg64) -> PendulumState {
        let theta = rng.random_range(-PI..PI);
        PendulumState { theta, theta_dot: rng.random_range(-START_SPEED..START_SPEED) }
    }

    fn observe(&self, s: &PendulumState, obs: &mut [f32]) {
        obs.copy_from_slice(&[s.theta.cos() as f32, s.theta.sin() as f32, s.theta_dot as f32]);
    }

    /// The torque `2 tanh(y)` of the model's output `y`, rounded to float32.
    fn decode(&self, output: &[f32]) -> f32 {
        (MAX_TORQUE * f64::from(output[0]).tanh()) as f32
    }

    /// [`PendulumEnv::physics`]; never terminates (the time limit ends the episode).
    fn apply(&self, state: &mut PendulumState, u: f32) -> Transition {
        Transition { reward: Self::physics(state, u), terminated: false }
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
    use crate::es::FloatTrainer;
    use crate::tasks::control::{rollout, EVAL_EPISODES};
    use crate::tasks::Task;
    use eggroll_backend::cpu::CpuBackend;

    fn step(theta: f64, theta_dot: f64, u: f32) -> (PendulumState, f64) {
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
        // The torque cost is float32, as Gymnasium computes it for a float32 action.
        assert!((r + 0.004).abs() < 1e-9, "{r}");
        // θ = π/2, θ̇ = 1, u = 1: θ̇' = 1 + (15 + 3)·0.05 = 1.9, θ' = π/2 + 0.095,
        // reward -((π/2)² + 0.1 + 0.001).
        let (s, r) = step(PI / 2.0, 1.0, 1.0);
        assert_close(s.theta_dot, 1.9);
        assert_close(s.theta, PI / 2.0 + 0.095);
        assert!((r + (PI * PI / 4.0 + 0.101)).abs() < 1e-9, "{r}");
    }

    #[test]
    fn steps_match_gymnasium() {
        // Reference values: Gymnasium 1.4's PendulumEnv.step with float32 actions.
        let (s, r) = step(1.0, -0.5, 0.7);
        assert_close(s.theta, 1.0118051616918775);
        assert_close(s.theta_dot, 0.23610323383755083);
        assert_close(r, -1.0254900000058114);
        // Torque clipped to -2 (also in the cost), angle wrapped in the cost.
        let (s, r) = step(4.0, 2.0, -3.0);
        assert_close(s.theta, 4.0566199064259525);
        assert_close(s.theta_dot, 1.1323981285190539);
        assert_close(r, -5.616935147110731);
        // Speed clipped to 8.
        let (s, r) = step(1.5, 7.9, 2.0);
        assert_close(s.theta_dot, 8.0);
        assert_close(s.theta, 1.9);
        assert_close(r, -8.49500000018999);
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
        assert_eq!(PendulumEnv.decode(&[0.0]), 0.0);
        assert!((PendulumEnv.decode(&[0.5f32.atanh()]) - 1.0).abs() < 1e-6);
        assert!(PendulumEnv.decode(&[100.0]) <= 2.0 && PendulumEnv.decode(&[-100.0]) >= -2.0);
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
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
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
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap();
        for _ in 0..60 {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        let after = task.evaluate(&mut es).unwrap();
        eprintln!("{before:?} -> {after:?}");
        assert!(after.metric >= before.metric + 400.0, "return {} -> {}", before.metric, after.metric);
    }
}
