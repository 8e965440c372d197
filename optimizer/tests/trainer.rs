//! The trainer end to end on the CPU backend: the population forward against a host oracle built
//! from the ask handles, determinism, state round trips, convergence on small tasks, bad input.

use eggroll::config::{EsConfig, OptimizerKind, Schedule, Shaping};
use eggroll::tasks::{Constant, Regression, Task};
use eggroll::{train_epoch, Eggroll, EggrollError, Layer, Mlp, ParamKind};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::{Activation, InputLayout};

/// The model on the host: `params` in id order (weights outputs x inputs, then bias), one row.
fn host_forward(model: &Mlp, params: &[Vec<f32>], x: &[f32]) -> Vec<f32> {
    let mut h = x.to_vec();
    let mut next = params.iter();
    for layer in model.layers() {
        match *layer {
            Layer::Linear { inputs, outputs, bias } => {
                let w = next.next().unwrap();
                let b = if bias { next.next() } else { None };
                h = (0..outputs)
                    .map(|j| {
                        let dot: f32 = (0..inputs).map(|l| w[j * inputs + l] * h[l]).sum();
                        dot + b.map_or(0.0, |b| b[j])
                    })
                    .collect();
            }
            Layer::Activation(act) => h.iter_mut().for_each(|v| *v = activate(act, *v)),
            Layer::LayerNorm => layer_norm(&mut h),
            Layer::Pqn => {
                layer_norm(&mut h);
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    }
    h
}

fn activate(act: Activation, v: f32) -> f32 {
    match act {
        Activation::Relu => v.max(0.0),
        Activation::Silu => v / (1.0 + (-v).exp()),
        Activation::Tanh => v.tanh(),
    }
}

fn layer_norm(h: &mut [f32]) {
    let n = h.len() as f32;
    let mean = h.iter().sum::<f32>() / n;
    let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    let inv = 1.0 / (var + eggroll::model::LAYER_NORM_EPS).sqrt();
    h.iter_mut().for_each(|v| *v = (*v - mean) * inv);
}

fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}

fn small_config() -> EsConfig {
    EsConfig { population: 16, rank: 2, sigma: 0.3, lr: 0.05, epochs: 50, seed: 7, ..EsConfig::default() }
}

fn tanh_mlp() -> Mlp {
    Mlp::builder(5).linear(7).pqn().linear(6).activation(Activation::Tanh).linear_with(3, false).build()
}

/// Every member of the batched population forward equals the host forward of `W + E_i` that its
/// [`eggroll::Perturbation`] handle describes (the ask/tell path an app evaluates elsewhere).
#[test]
fn population_forward_matches_the_ask_handles() {
    let model = tanh_mlp();
    let mut es = Eggroll::new(CpuBackend::new(), model.clone(), small_config()).unwrap();
    let mean: Vec<Vec<f32>> = es.state().unwrap().tensors.into_iter().map(|(_, t)| t).collect();
    let rows = 3;
    let x: Vec<f32> = (0..rows * 5).map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0).collect();
    let y = es.population_forward(&x, InputLayout::Shared, rows).unwrap();
    let specs = es.specs();
    for handle in es.ask() {
        let mut params = mean.clone();
        for (spec, values) in specs.iter().zip(&mut params) {
            handle.apply(spec, values);
        }
        for row in 0..rows {
            let want = host_forward(&model, &params, &x[row * 5..(row + 1) * 5]);
            let at = (handle.member * rows + row) * 3;
            assert_close(&y[at..at + 3], &want, 1e-4, 1e-4, &format!("member {} row {row}", handle.member));
        }
    }
    // Members of a pair differ (the noise is there) and are antithetic around the mean model.
    let mean_y = es.forward_mean(&x, rows).unwrap();
    assert!(y[..9] != y[9..18]);
    assert!(mean_y.iter().all(|v| v.is_finite()));
}

/// The per-member input layout gives member i its own rows.
#[test]
fn per_member_inputs_reach_their_member() {
    let model = Mlp::builder(2).linear(3).relu().linear(1).build();
    let cfg = EsConfig { population: 4, ..small_config() };
    let mut es = Eggroll::new(CpuBackend::new(), model.clone(), cfg).unwrap();
    let mean: Vec<Vec<f32>> = es.state().unwrap().tensors.into_iter().map(|(_, t)| t).collect();
    let x = [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, -2.0];
    let y = es.population_forward(&x, InputLayout::PerMember, 1).unwrap();
    let specs = es.specs();
    for handle in es.ask() {
        let mut params = mean.clone();
        specs.iter().zip(&mut params).for_each(|(s, v)| handle.apply(s, v));
        let want = host_forward(&model, &params, &x[handle.member * 2..handle.member * 2 + 2]);
        assert_close(&y[handle.member..handle.member + 1], &want, 1e-5, 1e-5, "per-member output");
    }
}

/// ask/tell with the fitness computed on the host from the handles equals the batched path.
#[test]
fn ask_tell_on_the_host_follows_the_batched_trajectory() {
    let task = Constant::new(3);
    // SGD: Adam's normalisation would turn rounding-level differences of near-zero gradient
    // components into full steps.
    let cfg = EsConfig { epochs: 5, seed: 3, optimizer: OptimizerKind::Sgd, ..task.default_config() };
    let mut batched = Eggroll::new(CpuBackend::new(), task.model(), cfg.clone()).unwrap();
    let mut external = Eggroll::new(CpuBackend::new(), task.model(), cfg).unwrap();
    let x: Vec<f32> = (0..3).map(|i| i as f32 * 0.3 - 0.2).collect();
    for _ in 0..5 {
        let y = batched.population_forward(&x, InputLayout::Shared, 1).unwrap();
        batched.tell(&y.iter().map(|v| -(v - 2.0).powi(2)).collect::<Vec<_>>()).unwrap();

        let mean: Vec<Vec<f32>> = external.state().unwrap().tensors.into_iter().take(external.specs().len()).map(|(_, t)| t).collect();
        let specs = external.specs();
        let fitness: Vec<f32> = external
            .ask()
            .iter()
            .map(|h| {
                let mut p = mean.clone();
                specs.iter().zip(&mut p).for_each(|(s, v)| h.apply(s, v));
                -(host_forward(&task.model(), &p, &x)[0] - 2.0).powi(2)
            })
            .collect();
        external.tell(&fitness).unwrap();
    }
    let (a, b) = (batched.state().unwrap(), external.state().unwrap());
    for ((name, ta), (_, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_close(ta, tb, 1e-4, 1e-3, name);
    }
}

fn run_constant(seed: u64, epochs: u32) -> Vec<(String, Vec<f32>)> {
    let mut task = Constant::new(seed);
    let cfg = EsConfig { epochs, seed, ..task.default_config() };
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), cfg).unwrap();
    for _ in 0..epochs {
        train_epoch(&mut task, &mut es).unwrap();
    }
    es.state().unwrap().tensors
}

#[test]
fn same_seed_same_trajectory_other_seed_other_one() {
    assert_eq!(run_constant(11, 8), run_constant(11, 8));
    assert_ne!(run_constant(11, 8), run_constant(12, 8));
}

/// Stopping, saving the state and restoring it into a fresh trainer continues bit for bit.
#[test]
fn state_round_trip_continues_exactly() {
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW] {
        let mut task = Constant::new(5);
        let cfg = EsConfig { optimizer, epochs: 12, seed: 5, lr_schedule: Schedule::Cosine, noise_reuse: 3, ..task.default_config() };
        let mut straight = Eggroll::new(CpuBackend::new(), task.model(), cfg.clone()).unwrap();
        for _ in 0..12 {
            train_epoch(&mut task, &mut straight).unwrap();
        }
        let mut first = Eggroll::new(CpuBackend::new(), task.model(), cfg.clone()).unwrap();
        for _ in 0..7 {
            train_epoch(&mut task, &mut first).unwrap();
        }
        let saved = first.state().unwrap();
        let mut resumed = Eggroll::new(CpuBackend::new(), task.model(), cfg).unwrap();
        resumed.restore(&saved).unwrap();
        assert_eq!(resumed.epoch(), 7);
        for _ in 7..12 {
            train_epoch(&mut task, &mut resumed).unwrap();
        }
        assert_eq!(straight.state().unwrap(), resumed.state().unwrap(), "{optimizer:?}");
    }
}

#[test]
fn restore_refuses_a_state_of_another_model_or_optimiser() {
    let task = Constant::new(0);
    let adam = Eggroll::new(CpuBackend::new(), task.model(), task.default_config()).unwrap();
    let sgd_cfg = EsConfig { optimizer: OptimizerKind::Sgd, ..task.default_config() };
    let mut sgd = Eggroll::new(CpuBackend::new(), task.model(), sgd_cfg).unwrap();
    let err = sgd.restore(&adam.state().unwrap()).unwrap_err();
    assert!(matches!(err, EggrollError::Checkpoint(_)) && err.to_string().contains("adam.m."), "{err}");
    let mut other = Eggroll::new(CpuBackend::new(), Mlp::builder(3).linear(8).linear(1).build(), task.default_config()).unwrap();
    let err = other.restore(&adam.state().unwrap()).unwrap_err();
    assert!(matches!(err, EggrollError::Checkpoint(_)), "{err}");
}

/// A frozen parameter never moves; the others do.
#[test]
fn frozen_parameters_stay_put() {
    let mut task = Constant::new(1);
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), task.default_config()).unwrap();
    let frozen = es.specs()[0].name.clone();
    es.set_frozen(&frozen, true).unwrap();
    assert!(es.set_frozen("no.such.param", true).is_err());
    let before = es.state().unwrap();
    for _ in 0..5 {
        train_epoch(&mut task, &mut es).unwrap();
    }
    let after = es.state().unwrap();
    assert_eq!(before.get(&frozen), after.get(&frozen));
    let moved = &es.specs()[1].name;
    assert_ne!(before.get(moved), after.get(moved));
}

#[test]
fn constant_task_converges() {
    let mut task = Constant::new(0);
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), task.default_config()).unwrap();
    let start = task.evaluate(&mut es).unwrap().metric;
    for _ in 0..es.config().epochs {
        train_epoch(&mut task, &mut es).unwrap();
    }
    let end = task.evaluate(&mut es).unwrap().metric;
    assert!(end < 0.05 && end < start / 20.0, "test MSE {start} -> {end}");
}

/// A reduced regression run (N = 1024, 150 epochs) already fits the parabola far better than
/// the initial model.
#[test]
fn regression_task_converges() {
    let mut task = Regression::new(0);
    let cfg = EsConfig { population: 1024, epochs: 150, ..task.default_config() };
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), cfg).unwrap();
    let start = task.evaluate(&mut es).unwrap().metric;
    for _ in 0..150 {
        train_epoch(&mut task, &mut es).unwrap();
    }
    let end = task.evaluate(&mut es).unwrap().metric;
    assert!(end < 300.0 && end < start / 8.0, "test MSE {start} -> {end}");
}

#[test]
fn bad_configurations_name_the_field() {
    let cases: [(EsConfig, &str); 7] = [
        (EsConfig { population: 7, ..EsConfig::default() }, "population"),
        (EsConfig { population: 0, ..EsConfig::default() }, "population"),
        (EsConfig { rank: 0, ..EsConfig::default() }, "rank"),
        (EsConfig { sigma: -0.1, ..EsConfig::default() }, "sigma"),
        (EsConfig { lr: f32::NAN, ..EsConfig::default() }, "lr"),
        (EsConfig { group_size: 6, population: 16, ..EsConfig::default() }, "group_size"),
        (EsConfig { beta2: 1.0, ..EsConfig::default() }, "beta2"),
    ];
    for (cfg, field) in cases {
        let err = Eggroll::new(CpuBackend::new(), tanh_mlp(), cfg).err().expect(field);
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn bad_fitness_and_inputs_are_refused() {
    let mut es = Eggroll::new(CpuBackend::new(), tanh_mlp(), small_config()).unwrap();
    let mut fitness = vec![0.5; 16];
    fitness[9] = f32::NAN;
    let err = es.tell(&fitness).unwrap_err();
    assert!(matches!(err, EggrollError::NonFiniteFitness { member: 9, .. }), "{err}");
    fitness[9] = f32::INFINITY;
    assert!(es.tell(&fitness).is_err());
    assert!(es.tell(&[0.0; 15]).unwrap_err().to_string().contains("15 fitness values"));
    assert_eq!(es.epoch(), 0, "a refused tell does not advance the epoch");
    let err = es.population_forward(&[0.0; 4], InputLayout::Shared, 1).unwrap_err();
    assert!(err.to_string().contains("expected 5"), "{err}");
    assert!(es.forward_mean(&[], 0).is_err());
}

#[test]
fn shaping_zscore_uses_the_global_variance_within_groups() {
    use eggroll::shaping::shape_fitness;
    let raw = [1.0, 3.0, 10.0, 14.0];
    let z = shape_fitness(&raw, 2, Shaping::ZScore).unwrap();
    let mean = 7.0f64;
    let var = raw.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / 4.0;
    let s = (var + 1e-5).sqrt();
    let want = [-1.0 / s, 1.0 / s, -2.0 / s, 2.0 / s].map(|v| v as f32);
    assert_close(&z, &want, 1e-6, 1e-6, "grouped z-score");
    let whole = shape_fitness(&raw, 0, Shaping::ZScore).unwrap();
    assert_close(&whole, &raw.map(|v| ((f64::from(v) - mean) / s) as f32), 1e-6, 1e-6, "z-score");
    let ranks = shape_fitness(&[5.0, -1.0, 5.0, 2.0], 0, Shaping::CenteredRank).unwrap();
    assert_close(&ranks, &[(2.5 / 3.0 - 0.5) as f32, -0.5, (2.5 / 3.0 - 0.5) as f32, (1.0 / 3.0 - 0.5) as f32], 1e-6, 0.0, "ranks");
    assert!(shape_fitness(&[1.0, 2.0, 3.0], 2, Shaping::ZScore).is_err());
}

#[test]
fn registry_gives_matrices_and_vectors_stable_ids() {
    let specs = tanh_mlp().registry().specs().to_vec();
    let kinds: Vec<_> = specs.iter().map(|s| (s.id, s.name.as_str(), s.kind)).collect();
    assert_eq!(kinds[0], (0, "layers.0.weight", ParamKind::Matrix { m: 7, n: 5 }));
    assert_eq!(kinds[1], (1, "layers.0.bias", ParamKind::Vector { len: 7 }));
    assert_eq!(kinds.last().unwrap().2, ParamKind::Matrix { m: 3, n: 6 });
    assert_eq!(specs.len(), 5);
}
