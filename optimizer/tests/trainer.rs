//! The trainer on the CPU backend: determinism, convergence on small tasks, refused
//! configurations and states, fitness shaping, parameter ids. The properties every backend must
//! share (the ask handles against the fused forward, state round trips, frozen parameters, bad
//! fitness) are in the workspace's `tests/tests/every_backend.rs`.

use eggroll::config::{EsConfig, OptimizerKind, Shaping};
use eggroll::tasks::{Constant, Regression, Task};
use eggroll::{train_epoch, EggrollError, FloatTrainer, Matrix, Mlp, Model, ParamKind, ParamRegistry, Vector};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::testing::assert_close;
use eggroll_backend::Activation;

fn tanh_mlp() -> Mlp {
    Mlp::builder(5).linear(7).pqn().linear(6).activation(Activation::Tanh).linear_with(3, false).build().unwrap()
}

fn run_constant(seed: u64, epochs: u32) -> Vec<(String, Vec<f32>)> {
    let mut task = Constant::new(seed);
    let cfg = EsConfig { epochs, seed, ..task.default_config() };
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), cfg).unwrap();
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

#[test]
fn restore_refuses_a_state_of_another_model_or_optimiser() {
    let task = Constant::new(0);
    let adam = FloatTrainer::new(CpuBackend::new(), task.model(), task.default_config()).unwrap();
    let sgd_cfg = EsConfig { optimizer: OptimizerKind::Sgd, ..task.default_config() };
    let mut sgd = FloatTrainer::new(CpuBackend::new(), task.model(), sgd_cfg).unwrap();
    let err = sgd.restore(&adam.state().unwrap()).unwrap_err();
    assert!(matches!(err, EggrollError::Checkpoint(_)) && err.to_string().contains("adam.m."), "{err}");
    let mut other =
        FloatTrainer::new(CpuBackend::new(), Mlp::builder(3).linear(8).linear(1).build().unwrap(), task.default_config()).unwrap();
    let err = other.restore(&adam.state().unwrap()).unwrap_err();
    assert!(matches!(err, EggrollError::Checkpoint(_)), "{err}");
}

#[test]
fn constant_task_converges() {
    let mut task = Constant::new(0);
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), task.default_config()).unwrap();
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
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), cfg).unwrap();
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
        let err = FloatTrainer::new(CpuBackend::new(), tanh_mlp(), cfg).err().expect(field);
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(field), "{field}: {err}");
    }
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
    assert_eq!(shape_fitness(&[5.0, -1.0, 5.0, 3.0], 2, Shaping::Centered).unwrap(), vec![3.0, -3.0, 1.0, -1.0]);
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

#[test]
fn params_by_name_and_member_params_in_one_call() {
    let cfg = EsConfig { population: 6, rank: 2, ..EsConfig::default() };
    let mut es = FloatTrainer::new(CpuBackend::new(), tanh_mlp(), cfg).unwrap();
    es.tell(&[0.5, -1.0, 2.0, 0.0, 1.0, 3.0]).unwrap();
    let mean = es.params().unwrap();
    let state = es.state().unwrap();
    let names: Vec<&str> = mean.iter().map(|(spec, _)| spec.name.as_str()).collect();
    assert_eq!(names, ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias", "layers.4.weight"]);
    for (spec, values) in mean.iter() {
        assert_eq!(Some(values), state.get(&spec.name), "{}", spec.name);
    }
    assert!(mean.get("layers.9.weight").is_none());
    for member in es.ask() {
        let all = member.apply_all(&mean);
        for ((spec, got), (_, base)) in all.iter().zip(mean.iter()) {
            let mut want = base.to_vec();
            member.apply(spec, &mut want);
            assert_eq!(got, want.as_slice(), "member {} {}", member.member, spec.name);
            assert_ne!(got, base, "member {} {} is perturbed", member.member, spec.name);
        }
    }
}

#[test]
fn the_model_builder_refuses_bad_models() {
    for (model, what) in
        [(Mlp::builder(0).linear(3), "inputs"), (Mlp::builder(2).linear(0), "no outputs"), (Mlp::builder(2).tanh(), "linear layer")]
    {
        let err = model.build().unwrap_err();
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(what), "{err}");
    }
}

/// A model whose forward is wrong in one way, chosen by `fault`.
struct Faulty {
    fault: u8,
    registry: ParamRegistry,
    w: Matrix,
    short: Vector,
}

impl Faulty {
    /// The matrix `w` (3 x 2) and the vector `short` (2 values, not the 3 outputs of `w`).
    fn new(fault: u8) -> Self {
        let mut registry = ParamRegistry::new(2, 3);
        let w = registry.matrix("w", 3, 2).unwrap();
        let short = registry.vector("short", 2).unwrap();
        Faulty { fault, registry, w, short }
    }
}

impl Model for Faulty {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: eggroll::Backend>(&self, f: &mut eggroll::Forward<'_, B>, x: eggroll::Values) -> eggroll::Result<eggroll::Values> {
        // Handles of another model: one past this model's parameters, and a vector where this one has `w`.
        let mut other = ParamRegistry::new(2, 3);
        let (first, _, third) = (other.vector("a", 3).unwrap(), other.vector("b", 3).unwrap(), other.matrix("c", 3, 2).unwrap());
        match self.fault {
            0 => f.linear(x, third, None),
            1 => f.linear(x, self.w, Some(first)),
            2 => f.linear(x, self.w, Some(self.short)),
            3 => {
                let y = f.linear(x, self.w, None)?;
                f.linear(y, self.w, None)
            }
            4 => Ok(x),
            _ => {
                let y = f.linear(x, self.w, None)?;
                f.add(y, x).map(|()| y)
            }
        }
    }
}

#[test]
fn a_wrong_model_forward_is_refused_naming_the_problem() {
    for (fault, what) in [
        (0, "no parameter 2 (2 in all)"),
        (1, "`w` is Matrix { m: 3, n: 2 }, not the Vector { len: 3 } of the handle"),
        (2, "`short` is Vector { len: 2 }, not a vector of the 3 outputs of `w`"),
        (3, "takes 2 inputs"),
        (4, "declares 3 outputs"),
        (5, "adding activations of 3 and 2"),
    ] {
        let mut es = FloatTrainer::new(CpuBackend::new(), Faulty::new(fault), EsConfig { population: 4, ..EsConfig::default() }).unwrap();
        let err = es.population_forward(&[0.5, -0.5], eggroll::InputLayout::Shared, 1).unwrap_err();
        assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains(what), "fault {fault}: {err}");
    }
}
