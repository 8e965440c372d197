//! Acrobot-v1: swing the tip of a two-link chain, actuated at the middle joint, above a line.
//!
//! The dynamics, constants, termination rule, reward and time limit are those of Gymnasium's
//! `AcrobotEnv` (`gymnasium/envs/classic_control/acrobot.py`, registered as `Acrobot-v1` with
//! `max_episode_steps=500`), after Sutton (1996) with the equations of Sutton & Barto's book
//! (`book_or_nips = "book"`): links of length 1 and mass 1, centres of mass at 0.5, moments of
//! inertia 1, gravity 9.8, torque −1, 0 or +1 without noise, one step of fourth-order Runge–Kutta
//! over `dt` 0.2, then `θ1`, `θ2` wrapped into `[-π, π]` and the velocities bounded by 4π and 9π;
//! terminal when `-cos θ1 - cos(θ2 + θ1) > 1`, reward −1 for each step that does not end there and
//! 0 for the one that does; start state `U(-0.1, 0.1)⁴` rounded to float32 (Gymnasium stores it as
//! float32 until the first step); observation `[cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]`.

use super::control::{Control, Env, Transition};
use super::pendulum::pow2;
use super::TaskKind;
use crate::config::{EsConfig, OptimizerKind};
use rand::RngExt;
use rand_pcg::Pcg64;
use std::f64::consts::PI;

/// Integration time step (s).
pub const DT: f64 = 0.2;
/// Bound on `|θ̇1|` (rad/s).
pub const MAX_VEL_1: f64 = 4.0 * PI;
/// Bound on `|θ̇2|` (rad/s).
pub const MAX_VEL_2: f64 = 9.0 * PI;
/// The torque of each action.
pub const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
/// Time limit (steps) of `Acrobot-v1`.
pub const MAX_STEPS: usize = 500;
/// Start states are uniform in `[-START_RANGE, START_RANGE]⁴`.
pub const START_RANGE: f64 = 0.1;

const M1: f64 = 1.0;
const M2: f64 = 1.0;
const L1: f64 = 1.0;
const LC1: f64 = 0.5;
const LC2: f64 = 0.5;
const I1: f64 = 1.0;
const I2: f64 = 1.0;
const GRAVITY: f64 = 9.8;

/// The two joint angles and their velocities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AcrobotState {
    /// Angle of the first link (rad, 0 hanging down).
    pub theta1: f64,
    /// Angle of the second link relative to the first (rad).
    pub theta2: f64,
    /// Angular velocity of the first joint (rad/s).
    pub dtheta1: f64,
    /// Angular velocity of the second joint (rad/s).
    pub dtheta2: f64,
}

/// The Acrobot-v1 dynamics. The model outputs 3 logits and the action is their argmax (ties to
/// the lower index): torque −1, 0 or +1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AcrobotEnv;

/// Gymnasium's `AcrobotEnv._dsdt` (book dynamics) of `[θ1, θ2, θ̇1, θ̇2]` under torque `a`,
/// written term for term in Python's evaluation order (`x**2` of a float64 is libm's `pow`).
fn dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let d1 = M1 * (LC1 * LC1) + M2 * (L1 * L1 + LC2 * LC2 + 2.0 * L1 * LC2 * theta2.cos()) + I1 + I2;
    let d2 = M2 * (LC2 * LC2 + L1 * LC2 * theta2.cos()) + I2;
    let phi2 = M2 * LC2 * GRAVITY * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -M2 * L1 * LC2 * pow2(dtheta2) * theta2.sin() - 2.0 * M2 * L1 * LC2 * dtheta2 * dtheta1 * theta2.sin()
        + (M1 * LC1 + M2 * L1) * GRAVITY * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * pow2(dtheta1) * theta2.sin() - phi2) / (M2 * (LC2 * LC2) + I2 - pow2(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// `y + h * k`, elementwise.
fn axpy(y: [f64; 4], h: f64, k: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|i| y[i] + h * k[i])
}

/// Gymnasium's `wrap(x, -π, π)`: adds or subtracts 2π until `x` lies in `[-π, π]`.
fn wrap(mut x: f64) -> f64 {
    let diff = PI - -PI;
    while x > PI {
        x -= diff;
    }
    while x < -PI {
        x += diff;
    }
    x
}

/// Gymnasium's `bound(x, -m, m)`: `min(max(x, -m), m)` with Python's `max` and `min`.
fn bound(x: f64, m: f64) -> f64 {
    let x = if -m > x { -m } else { x };
    if m < x {
        m
    } else {
        x
    }
}

impl AcrobotEnv {
    /// One Runge–Kutta step of [`DT`] under `torque` as Gymnasium's `rk4` takes it (the torque is
    /// a fifth state variable of derivative 0), then wrapped and bounded.
    pub fn physics(state: &mut AcrobotState, torque: f64) {
        let y0 = [state.theta1, state.theta2, state.dtheta1, state.dtheta2];
        let (dt, dt2) = (DT - 0.0, (DT - 0.0) / 2.0);
        let k1 = dsdt(y0, torque);
        let k2 = dsdt(axpy(y0, dt2, k1), torque);
        let k3 = dsdt(axpy(y0, dt2, k2), torque);
        let k4 = dsdt(axpy(y0, dt, k3), torque);
        // yout = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        let y: [f64; 4] = std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        *state = AcrobotState { theta1: wrap(y[0]), theta2: wrap(y[1]), dtheta1: bound(y[2], MAX_VEL_1), dtheta2: bound(y[3], MAX_VEL_2) };
    }

    /// Whether the tip is above the line: `-cos θ1 - cos(θ2 + θ1) > 1`.
    pub fn terminal(state: &AcrobotState) -> bool {
        -state.theta1.cos() - (state.theta2 + state.theta1).cos() > 1.0
    }
}

impl Env for AcrobotEnv {
    type State = AcrobotState;
    /// 0, 1, 2: torque −1, 0, +1.
    type Action = usize;
    const KIND: TaskKind = TaskKind::Acrobot;
    const OBS: usize = 6;
    const OUTPUTS: usize = 3;
    /// 6 → 32 → 32 → 3.
    const HIDDEN: &'static [usize] = &[32, 32];
    const HORIZON: usize = MAX_STEPS;
    const TRAIN_STREAM: u64 = 41;
    const EVAL_STREAM: u64 = 42;

    fn initial_state(&self, rng: &mut Pcg64) -> AcrobotState {
        let mut draw = || f64::from(rng.random_range(-START_RANGE..START_RANGE) as f32);
        AcrobotState { theta1: draw(), theta2: draw(), dtheta1: draw(), dtheta2: draw() }
    }

    fn observe(&self, s: &AcrobotState, obs: &mut [f32]) {
        let values = [s.theta1.cos(), s.theta1.sin(), s.theta2.cos(), s.theta2.sin(), s.dtheta1, s.dtheta2];
        for (o, v) in obs.iter_mut().zip(values) {
            *o = v as f32;
        }
    }

    /// The argmax of 3 logits (ties to the lower index, as `np.argmax`).
    fn decode(&self, logits: &[f32]) -> usize {
        argmax(logits)
    }

    /// [`AcrobotEnv::physics`] with the action's torque; reward −1, or 0 on reaching the line.
    fn apply(&self, state: &mut AcrobotState, action: usize) -> Transition {
        Self::physics(state, AVAIL_TORQUE[action]);
        let terminated = Self::terminal(state);
        Transition { reward: if terminated { 0.0 } else { -1.0 }, terminated }
    }

    /// N = 256, rank 4, σ = 0.1, Adam with lr 0.05, 100 epochs.
    fn default_config(&self) -> EsConfig {
        EsConfig { population: 256, rank: 4, sigma: 0.1, lr: 0.05, optimizer: OptimizerKind::Adam, epochs: 100, ..EsConfig::default() }
    }
}

/// The index of the largest of `logits`, the first one on ties.
pub(crate) fn argmax(logits: &[f32]) -> usize {
    logits.iter().enumerate().fold(0, |best, (i, &v)| if v > logits[best] { i } else { best })
}

/// Acrobot-v1 as a task: one episode per member, fitness = its return (−500 to 0).
pub type Acrobot = Control<AcrobotEnv>;

impl Acrobot {
    /// The task with its start states drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Control::with_env(AcrobotEnv, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::FloatTrainer;
    use crate::tasks::Task;
    use eggroll_backend::cpu::CpuBackend;

    #[test]
    fn wrap_bound_and_terminal() {
        assert_eq!(wrap(PI), PI);
        assert!((wrap(PI + 0.5) - (0.5 - PI)).abs() < 1e-15);
        assert!((wrap(-PI - 0.5) - (PI - 0.5)).abs() < 1e-15);
        assert_eq!(bound(20.0, MAX_VEL_1), MAX_VEL_1);
        assert_eq!(bound(-20.0, MAX_VEL_1), -MAX_VEL_1);
        assert_eq!(bound(1.5, MAX_VEL_1), 1.5);
        let hanging = AcrobotState { theta1: 0.0, theta2: 0.0, dtheta1: 0.0, dtheta2: 0.0 };
        assert!(!AcrobotEnv::terminal(&hanging));
        assert!(AcrobotEnv::terminal(&AcrobotState { theta1: PI, ..hanging }));
        assert_eq!(argmax(&[0.0, 2.0, 2.0]), 1);
        assert_eq!(argmax(&[1.0, 1.0, 1.0]), 0);
    }

    #[test]
    fn at_rest_hanging_down_stays_there_without_torque() {
        let mut s = AcrobotState { theta1: 0.0, theta2: 0.0, dtheta1: 0.0, dtheta2: 0.0 };
        let t = AcrobotEnv.apply(&mut s, 1);
        assert_eq!(t, Transition { reward: -1.0, terminated: false });
        assert!(s.theta1.abs() < 1e-12 && s.theta2.abs() < 1e-12 && s.dtheta1.abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn training_improves_the_return() {
        let mut task = Acrobot::new(3);
        let config = EsConfig { population: 64, seed: 3, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap().metric;
        for _ in 0..20 {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        let after = task.evaluate(&mut es).unwrap().metric;
        eprintln!("return {before} -> {after}");
        assert!(after >= before + 100.0, "return {before} -> {after}");
    }
}
