//! CartPole-v1: balance a pole on a cart by pushing the cart left or right.
//!
//! The dynamics, constants, termination rule, reward and time limit are those of Gymnasium's
//! `CartPoleEnv` (`gymnasium/envs/classic_control/cartpole.py`, registered as `CartPole-v1` with
//! `max_episode_steps=500`), itself the classic cart-pole of Barto, Sutton & Anderson (1983) with
//! the equations of Florian (2007, "Correct equations for the dynamics of the cart-pole system"):
//! gravity 9.8, cart mass 1.0, pole mass 0.1, pole half-length 0.5, force ±10, `tau` 0.02 with
//! explicit Euler integration, termination when `|x| > 2.4` or `|θ| > 12°`, reward 1 for every
//! step taken (the terminating step included), at most 500 steps, start state `U(-0.05, 0.05)⁴`.

use super::control::{Control, Env, Transition};
use super::TaskKind;
use crate::config::{EsConfig, OptimizerKind};
use rand::RngExt;
use rand_pcg::Pcg64;

/// Gravity (m/s²).
pub const GRAVITY: f64 = 9.8;
/// Cart mass (kg).
pub const MASS_CART: f64 = 1.0;
/// Pole mass (kg).
pub const MASS_POLE: f64 = 0.1;
/// Half the pole's length (m), Gymnasium's `length`.
pub const LENGTH: f64 = 0.5;
/// Magnitude of the push (N).
pub const FORCE_MAG: f64 = 10.0;
/// Time step (s).
pub const TAU: f64 = 0.02;
/// The episode terminates when `|x|` exceeds this (m).
pub const X_THRESHOLD: f64 = 2.4;
/// The episode terminates when `|θ|` exceeds this: 12° in radians.
pub const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// Time limit (steps) of `CartPole-v1`.
pub const MAX_STEPS: usize = 500;
/// Start states are uniform in `[-START_RANGE, START_RANGE]⁴`.
pub const START_RANGE: f64 = 0.05;

/// Cart position, cart velocity, pole angle (0 = upright), pole angular velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CartPoleState {
    /// Cart position `x` (m).
    pub x: f64,
    /// Cart velocity (m/s).
    pub x_dot: f64,
    /// Pole angle `θ` (rad, 0 upright, positive clockwise).
    pub theta: f64,
    /// Pole angular velocity (rad/s).
    pub theta_dot: f64,
}

/// The CartPole-v1 dynamics. Observation: `[x, ẋ, θ, θ̇]`; the model outputs 2 logits and the
/// action is their argmax (ties go to 0, as `np.argmax`): 0 pushes left, 1 pushes right.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CartPoleEnv;

impl CartPoleEnv {
    /// One Euler step of `tau` with `action` 1 (push right) or anything else (push left);
    /// returns whether the new state is terminal. The arithmetic of Gymnasium 1.x's
    /// `CartPoleEnv.step` (`kinematics_integrator="euler"`) operation for operation, products
    /// associated as Python evaluates them left to right (`np.square(x)` is the product `x * x`),
    /// so that the state is the same f64 bit for bit.
    pub fn physics(state: &mut CartPoleState, action: usize) -> bool {
        let total_mass = MASS_POLE + MASS_CART;
        let polemass_length = MASS_POLE * LENGTH;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let CartPoleState { x, x_dot, theta, theta_dot } = *state;
        let (sintheta, costheta) = (theta.sin(), theta.cos());
        // temp = (force + polemass_length * np.square(theta_dot) * sintheta) / total_mass
        let temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
        // thetaacc = (gravity * sintheta - costheta * temp)
        //     / (length * (4.0 / 3.0 - masspole * np.square(costheta) / total_mass))
        let thetaacc = (GRAVITY * sintheta - costheta * temp) / (LENGTH * (4.0 / 3.0 - MASS_POLE * (costheta * costheta) / total_mass));
        let xacc = temp - polemass_length * thetaacc * costheta / total_mass;
        *state = CartPoleState {
            x: x + TAU * x_dot,
            x_dot: x_dot + TAU * xacc,
            theta: theta + TAU * theta_dot,
            theta_dot: theta_dot + TAU * thetaacc,
        };
        Self::terminal(state)
    }

    /// Whether `state` ends the episode: `|x| > 2.4` or `|θ| > 12°`.
    pub fn terminal(state: &CartPoleState) -> bool {
        state.x < -X_THRESHOLD || state.x > X_THRESHOLD || state.theta < -THETA_THRESHOLD || state.theta > THETA_THRESHOLD
    }
}

impl Env for CartPoleEnv {
    type State = CartPoleState;
    /// 0 pushes left, 1 pushes right.
    type Action = usize;
    const KIND: TaskKind = TaskKind::CartPole;
    const OBS: usize = 4;
    const OUTPUTS: usize = 2;
    /// 4 → 32 → 32 → 2.
    const HIDDEN: &'static [usize] = &[32, 32];
    const HORIZON: usize = MAX_STEPS;
    const TRAIN_STREAM: u64 = 21;
    const EVAL_STREAM: u64 = 22;

    fn initial_state(&self, rng: &mut Pcg64) -> CartPoleState {
        let mut draw = || rng.random_range(-START_RANGE..START_RANGE);
        CartPoleState { x: draw(), x_dot: draw(), theta: draw(), theta_dot: draw() }
    }

    fn observe(&self, s: &CartPoleState, obs: &mut [f32]) {
        obs.copy_from_slice(&[s.x as f32, s.x_dot as f32, s.theta as f32, s.theta_dot as f32]);
    }

    /// The argmax of 2 logits: 1 when `logits[1] > logits[0]`, else 0.
    fn decode(&self, logits: &[f32]) -> usize {
        usize::from(logits[1] > logits[0])
    }

    /// [`CartPoleEnv::physics`]; reward 1 for every step, the terminating one included.
    fn apply(&self, state: &mut CartPoleState, action: usize) -> Transition {
        let terminated = Self::physics(state, action);
        Transition { reward: 1.0, terminated }
    }

    /// N = 256, rank 4, σ = 0.1, Adam with lr 0.05, 50 epochs.
    fn default_config(&self) -> EsConfig {
        EsConfig { population: 256, rank: 4, sigma: 0.1, lr: 0.05, optimizer: OptimizerKind::Adam, epochs: 50, ..EsConfig::default() }
    }
}

/// CartPole-v1 as a task: one episode per member, fitness = steps balanced (at most 500).
pub type CartPole = Control<CartPoleEnv>;

impl CartPole {
    /// The task with its start states drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Control::with_env(CartPoleEnv, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::es::FloatTrainer;
    use crate::tasks::control::{rollout, VecEnv, EVAL_EPISODES};
    use crate::tasks::Task;
    use eggroll_backend::cpu::CpuBackend;

    fn state(x: f64, x_dot: f64, theta: f64, theta_dot: f64) -> CartPoleState {
        CartPoleState { x, x_dot, theta, theta_dot }
    }

    fn assert_close(got: CartPoleState, want: [f64; 4]) {
        let got = [got.x, got.x_dot, got.theta, got.theta_dot];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn push_right_from_rest_matches_hand_computed_step() {
        // θ = 0: temp = 10/1.1, θ̈ = -(100/11) / (0.5 (4/3 - 0.1/1.1)) = -600/41,
        // ẍ = 100/11 + 0.05 (600/41) / 1.1 = 400/41; Euler with τ = 0.02.
        let mut s = state(0.0, 0.0, 0.0, 0.0);
        assert!(!CartPoleEnv::physics(&mut s, 1));
        assert_close(s, [0.0, 8.0 / 41.0, 0.0, -12.0 / 41.0]);
        // Pushing left from rest mirrors it.
        let mut s = state(0.0, 0.0, 0.0, 0.0);
        CartPoleEnv::physics(&mut s, 0);
        assert_close(s, [0.0, -8.0 / 41.0, 0.0, 12.0 / 41.0]);
    }

    #[test]
    fn two_steps_match_gymnasium() {
        // Reference values: Gymnasium's CartPoleEnv.step arithmetic (Python floats) from
        // (0.01, -0.02, 0.03, 0.04), action 0 then 1.
        let mut s = state(0.01, -0.02, 0.03, 0.04);
        CartPoleEnv::physics(&mut s, 0);
        assert_close(s, [0.009600000000000001, -0.21553901710278936, 0.030799999999999998, 0.34199522377603914]);
        CartPoleEnv::physics(&mut s, 1);
        assert_close(s, [0.005289219657944213, -0.020868498014729647, 0.03763990447552078, 0.059181706756417596]);
    }

    #[test]
    fn termination_rule() {
        assert!((THETA_THRESHOLD - 0.20943951023931953).abs() < 1e-15);
        assert!(!CartPoleEnv::terminal(&state(2.4, 0.0, 0.2094, 0.0)));
        assert!(!CartPoleEnv::terminal(&state(-2.4, 0.0, -0.2094, 0.0)));
        assert!(CartPoleEnv::terminal(&state(2.41, 0.0, 0.0, 0.0)));
        assert!(CartPoleEnv::terminal(&state(-2.41, 0.0, 0.0, 0.0)));
        assert!(CartPoleEnv::terminal(&state(0.0, 0.0, 0.21, 0.0)));
        assert!(CartPoleEnv::terminal(&state(0.0, 0.0, -0.21, 0.0)));
        // The step that crosses the boundary terminates and still earns its reward.
        let mut s = state(2.39, 1.0, 0.0, 0.0);
        let t = CartPoleEnv.step(&mut s, &[1.0, 0.0]);
        assert!(t.terminated && t.reward == 1.0 && s.x > 2.4);
    }

    #[test]
    fn action_is_argmax_ties_left() {
        assert_eq!(CartPoleEnv.decode(&[0.0, 1.0]), 1);
        assert_eq!(CartPoleEnv.decode(&[1.0, 0.0]), 0);
        assert_eq!(CartPoleEnv.decode(&[0.5, 0.5]), 0);
    }

    #[test]
    fn finished_episodes_are_frozen() {
        // Always pushing right topples the pole within a few dozen steps; from then on the
        // environment neither moves nor earns reward.
        let starts = vec![state(0.0, 0.0, 0.0, 0.0), state(0.0, 0.0, 0.0, 0.0)];
        let mut batch = VecEnv::new(CartPoleEnv, starts);
        let mut ended = None;
        while !batch.done() {
            // Env 0 always pushes right; env 1 alternates (balances for long).
            let alt = if batch.steps() % 2 == 0 { [0.0, 1.0] } else { [1.0, 0.0] };
            batch.step(&[0.0, 1.0, alt[0], alt[1]]).unwrap();
            if !batch.alive()[0] && ended.is_none() {
                ended = Some((batch.steps(), batch.states()[0], batch.observations()[..4].to_vec()));
            }
        }
        let (steps, s, obs) = ended.expect("pushing right always topples the pole");
        assert!(steps > 5 && steps < 100, "{steps}");
        assert!(CartPoleEnv::terminal(&s));
        assert_eq!(batch.states()[0], s);
        assert_eq!(&batch.observations()[..4], &obs[..]);
        let returns = batch.returns();
        assert_eq!(returns[0], steps as f32);
        assert!(returns[1] > returns[0]);
    }

    #[test]
    fn rollout_stops_at_the_time_limit() {
        // The driver calls the policy once per step until every episode has ended; returns are
        // the steps survived, at most 500.
        let starts = CartPole::new(0).eval_starts().to_vec();
        let mut calls = 0;
        let returns = pollster::block_on(rollout(&CartPoleEnv, starts, async |obs: &[f32]| {
            calls += 1;
            // Push toward the side the pole leans to (θ + θ̇ > 0 → right): a decent controller.
            Ok(obs.chunks_exact(4).flat_map(|o| if o[2] + o[3] > 0.0 { [0.0, 1.0] } else { [1.0, 0.0] }).collect())
        }))
        .unwrap();
        assert_eq!(returns.len(), EVAL_EPISODES);
        assert!(calls <= MAX_STEPS);
        assert!(returns.iter().all(|&r| (1.0..=500.0).contains(&r)));
        assert_eq!(calls as f32, returns.iter().copied().fold(0.0, f32::max));
    }

    #[test]
    fn start_states_are_seeded_and_pairs_share_them() {
        let task = CartPole::new(3);
        assert_eq!(task.train_starts(5, 8), CartPole::new(3).train_starts(5, 8));
        assert_ne!(task.train_starts(5, 8), task.train_starts(6, 8));
        assert_ne!(task.eval_starts(), &task.train_starts(0, EVAL_EPISODES)[..]);
        for s in task.train_starts(0, 64) {
            for v in [s.x, s.x_dot, s.theta, s.theta_dot] {
                assert!((-START_RANGE..START_RANGE).contains(&v));
            }
        }
        // With a tiny σ both members of a pair play the same episode; different pairs differ.
        let mut task = CartPole::new(3);
        let config = EsConfig { population: 32, sigma: 1e-7, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let f = task.population_fitness(&mut es).unwrap();
        let same = f.chunks_exact(2).filter(|p| p[0] == p[1]).count();
        assert!(same >= 15, "{f:?}");
        assert!(f.iter().any(|&r| r != f[0]), "{f:?}");
        assert_eq!(f, task.population_fitness(&mut es).unwrap());
    }

    #[test]
    fn training_balances_the_pole() {
        let mut task = CartPole::new(7);
        let config = EsConfig { population: 32, epochs: 30, seed: 7, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap().metric;
        for _ in 0..30 {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        let after = task.evaluate(&mut es).unwrap().metric;
        eprintln!("return {before} -> {after}");
        assert!(after >= 300.0 && after >= before + 250.0, "return {before} -> {after}");
    }
}
