//! The control environments against Gymnasium itself.
//!
//! `scripts/gym_cases.sh` runs Gymnasium (pinned there) and writes episodes of CartPole-v1,
//! Pendulum-v1, Acrobot-v1, MountainCar-v0 and MountainCarContinuous-v0: Gymnasium's seeded start
//! state, the actions taken, and after every step the full float64 state, the reward, terminated
//! and truncated (see `scripts/gym_oracle.py`). EGGROLL_GYM_CASES names that file; the test fails
//! when it is unset or missing.
//!
//! - **Replay.** Each episode is replayed through our [`Env::apply`] from the same start state
//!   with the same actions; every state, reward and termination must be the same f64, bit for
//!   bit (no tolerance anywhere), and the time limit must truncate at the same step.
//! - **Start states.** Our [`Env::initial_state`] sampled many times (fixed seed) against
//!   Gymnasium's seeded resets, per state variable, by the two-sample Kolmogorov–Smirnov
//!   statistic against its critical value at α = 0.001; the same comparison must reject a copy of
//!   our sample shifted by a tenth of the reset range, so the check can fail.

use eggroll::tasks::acrobot::{AcrobotEnv, AcrobotState};
use eggroll::tasks::cartpole::{CartPoleEnv, CartPoleState};
use eggroll::tasks::control::Env;
use eggroll::tasks::mountaincar::{ContinuousEnv, MountainCarEnv, MountainCarState};
use eggroll::tasks::pendulum::{PendulumEnv, PendulumState};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde_json::Value;

/// The cases file, parsed; panics naming the script that makes it.
fn cases() -> Value {
    let how = "run `export EGGROLL_GYM_CASES=\"$(bash scripts/gym_cases.sh)\"` first (scripts/test.sh does)";
    let path = std::env::var("EGGROLL_GYM_CASES").unwrap_or_else(|_| panic!("EGGROLL_GYM_CASES is not set: {how}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read EGGROLL_GYM_CASES={path}: {e}; {how}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not the JSON of scripts/gym_oracle.py: {e}; {how}"))
}

/// A float64 from its bit pattern in hex.
fn f(v: &Value) -> f64 {
    let hex = v.as_str().expect("floats are hex bit patterns");
    f64::from_bits(u64::from_str_radix(hex, 16).expect("16 hex digits"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("a list").iter().map(f).collect()
}

/// How the test reads and writes one environment's state and actions.
struct Codec<E: Env> {
    name: &'static str,
    env: E,
    state: fn(&[f64]) -> E::State,
    values: fn(&E::State) -> Vec<f64>,
    action: fn(&Value) -> E::Action,
    /// Half the width of the reset range of each state variable, for the shifted sample.
    spread: &'static [f64],
}

fn discrete(v: &Value) -> usize {
    v.as_u64().expect("a discrete action") as usize
}

fn box_action(v: &Value) -> f32 {
    let x = f(v);
    assert_eq!(f64::from(x as f32), x, "a float32 action");
    x as f32
}

fn cartpole() -> Codec<CartPoleEnv> {
    Codec {
        name: "cartpole",
        env: CartPoleEnv,
        state: |s| CartPoleState { x: s[0], x_dot: s[1], theta: s[2], theta_dot: s[3] },
        values: |s| vec![s.x, s.x_dot, s.theta, s.theta_dot],
        action: discrete,
        spread: &[0.05; 4],
    }
}

fn pendulum() -> Codec<PendulumEnv> {
    Codec {
        name: "pendulum",
        env: PendulumEnv,
        state: |s| PendulumState { theta: s[0], theta_dot: s[1] },
        values: |s| vec![s.theta, s.theta_dot],
        action: box_action,
        spread: &[std::f64::consts::PI, 1.0],
    }
}

fn acrobot() -> Codec<AcrobotEnv> {
    Codec {
        name: "acrobot",
        env: AcrobotEnv,
        state: |s| AcrobotState { theta1: s[0], theta2: s[1], dtheta1: s[2], dtheta2: s[3] },
        values: |s| vec![s.theta1, s.theta2, s.dtheta1, s.dtheta2],
        action: discrete,
        spread: &[0.1; 4],
    }
}

fn car_state(s: &[f64]) -> MountainCarState {
    MountainCarState { position: s[0], velocity: s[1], float32: false }
}

fn car_values(s: &MountainCarState) -> Vec<f64> {
    vec![s.position, s.velocity]
}

fn mountaincar() -> Codec<MountainCarEnv> {
    Codec { name: "mountaincar", env: MountainCarEnv, state: car_state, values: car_values, action: discrete, spread: &[0.1, 0.0] }
}

fn continuous() -> Codec<ContinuousEnv> {
    Codec {
        name: "mountaincar-continuous",
        env: ContinuousEnv,
        state: car_state,
        values: car_values,
        action: box_action,
        spread: &[0.1, 0.0],
    }
}

/// The first difference of an episode's replay from Gymnasium's, if any.
fn replay<E: Env>(codec: &Codec<E>, episode: &Value) -> Option<String> {
    let mut state = (codec.state)(&floats(&episode["start"]));
    let actions = episode["actions"].as_array().expect("actions");
    for (t, a) in actions.iter().enumerate() {
        let step = codec.env.apply(&mut state, (codec.action)(a));
        let want = floats(&episode["states"][t]);
        let got = (codec.values)(&state);
        let bits = |v: &[f64]| v.iter().map(|x| format!("{x:e} ({:016x})", x.to_bits())).collect::<Vec<_>>().join(", ");
        if got.iter().zip(&want).any(|(g, w)| g.to_bits() != w.to_bits()) {
            return Some(format!("step {t}: state [{}], Gymnasium [{}]", bits(&got), bits(&want)));
        }
        let reward = f(&episode["rewards"][t]);
        if step.reward.to_bits() != reward.to_bits() {
            return Some(format!("step {t}: reward {:e}, Gymnasium {reward:e}", step.reward));
        }
        let terminated = episode["terminated"][t].as_bool().expect("terminated");
        if step.terminated != terminated {
            return Some(format!("step {t}: terminated {}, Gymnasium {terminated}", step.terminated));
        }
        let truncated = !terminated && t + 1 == E::HORIZON;
        if truncated != episode["truncated"][t].as_bool().expect("truncated") {
            return Some(format!("step {t}: truncated {truncated}, Gymnasium {}", !truncated));
        }
    }
    let last = actions.len() - 1;
    let ended = episode["terminated"][last].as_bool() == Some(true) || episode["truncated"][last].as_bool() == Some(true);
    (!ended).then(|| "Gymnasium's episode ends without terminating or truncating".to_string())
}

fn check_replays<E: Env>(cases: &Value, codec: &Codec<E>) {
    let episodes = cases["envs"][codec.name]["episodes"].as_array().unwrap_or_else(|| panic!("no {} episodes", codec.name));
    assert!(episodes.len() >= 12, "{}: {} episodes", codec.name, episodes.len());
    let steps: usize = episodes.iter().map(|e| e["actions"].as_array().map_or(0, Vec::len)).sum();
    let failures: Vec<String> =
        episodes.iter().enumerate().filter_map(|(i, e)| replay(codec, e).map(|why| format!("episode {i}: {why}"))).collect();
    assert!(
        failures.is_empty(),
        "{}: {} of {} episodes differ from Gymnasium {}:\n{}",
        codec.name,
        failures.len(),
        episodes.len(),
        cases["gymnasium"],
        failures.join("\n")
    );
    eprintln!("{}: {} episodes, {steps} steps bit-exact", codec.name, episodes.len());
}

#[test]
fn episodes_replay_bit_exact() {
    let cases = cases();
    check_replays(&cases, &cartpole());
    check_replays(&cases, &pendulum());
    check_replays(&cases, &acrobot());
    check_replays(&cases, &mountaincar());
    check_replays(&cases, &continuous());
}

/// The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs.
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// The KS critical value at α = 0.001 for samples of `n` and `m`: `c(α) √((n + m) / (n m))`,
/// `c(α) = √(-ln(α / 2) / 2)`.
fn ks_critical(n: usize, m: usize) -> f64 {
    let c = (-(0.001f64 / 2.0).ln() / 2.0).sqrt();
    c * ((n + m) as f64 / (n * m) as f64).sqrt()
}

/// Per state variable: (statistic, critical value) of ours against Gymnasium's resets, and the
/// statistic of ours shifted by `spread / 5` (a tenth of the range).
fn check_resets<E: Env>(cases: &Value, codec: &Codec<E>) {
    let gym: Vec<Vec<f64>> = cases["envs"][codec.name]["resets"].as_array().expect("resets").iter().map(floats).collect();
    let mut rng = Pcg64::seed_from_u64(20_250_101);
    let ours: Vec<Vec<f64>> = (0..gym.len()).map(|_| (codec.values)(&codec.env.initial_state(&mut rng))).collect();
    let critical = ks_critical(ours.len(), gym.len());
    for (k, &spread) in codec.spread.iter().enumerate() {
        let column = |rows: &[Vec<f64>]| rows.iter().map(|r| r[k]).collect::<Vec<_>>();
        let (a, b) = (column(&ours), column(&gym));
        let d = ks_statistic(&a, &b);
        assert!(d < critical, "{} variable {k}: KS statistic {d:.4} ≥ critical {critical:.4} (α = 0.001)", codec.name);
        if spread > 0.0 {
            let shifted: Vec<f64> = a.iter().map(|x| x + spread / 5.0).collect();
            let d_shifted = ks_statistic(&shifted, &b);
            assert!(d_shifted >= critical, "{} variable {k}: a shifted sample passes (KS {d_shifted:.4} < {critical:.4})", codec.name);
        } else {
            // A constant start (the car at rest): every value equal to Gymnasium's.
            assert!(a.iter().chain(&b).all(|&x| x == b[0]), "{} variable {k}: not constant", codec.name);
        }
    }
}

#[test]
fn start_states_are_distributed_as_gymnasium_resets() {
    let cases = cases();
    check_resets(&cases, &cartpole());
    check_resets(&cases, &pendulum());
    check_resets(&cases, &acrobot());
    check_resets(&cases, &mountaincar());
    check_resets(&cases, &continuous());
}

#[test]
fn ks_statistic_of_known_samples() {
    assert_eq!(ks_statistic(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 0.0);
    assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
    assert!((ks_statistic(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]) - 0.5).abs() < 1e-12);
    assert!((ks_critical(2000, 2000) - 0.0617).abs() < 1e-3);
}
