//! OpenES (`method = "openes"`, full-rank noise on every matrix) on the CPU backend: the
//! configuration field, training (an MLP, the charlm model with its embedding table, and the
//! integer trainer), and the charlm population forward against each member's perturbed
//! parameters. Its forward and update against the definitions for an MLP, on every backend, are
//! in the workspace's `tests/tests/every_backend.rs`.

use eggroll::config::{EsConfig, Method};
use eggroll::int8::IntTrainer;
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Egg, Task};
use eggroll::{train_epoch, FloatTrainer, Model, TrainerState};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::InputLayout;

#[test]
fn the_method_defaults_to_eggroll_and_reads_its_serde_names() {
    assert_eq!(EsConfig::default().method, Method::Eggroll);
    // A configuration written before the field existed still loads, as EGGROLL.
    let old: EsConfig = serde_json::from_str(r#"{"population": 8, "rank": 2}"#).unwrap();
    assert_eq!((old.population, old.method), (8, Method::Eggroll));
    let openes: EsConfig = serde_json::from_str(r#"{"method": "openes"}"#).unwrap();
    assert_eq!(openes.method, Method::OpenEs);
    assert_eq!(serde_json::to_value(&openes).unwrap()["method"], "openes");
    assert_eq!("OpenES".parse::<Method>().unwrap(), Method::OpenEs);
    assert_eq!((Method::Eggroll.to_string(), Method::OpenEs.to_string()), ("eggroll".into(), "openes".into()));
    let err = serde_json::from_str::<EsConfig>(r#"{"method": "naive"}"#).unwrap_err();
    assert!(err.to_string().contains("naive"), "{err}");
    assert!("naive".parse::<Method>().is_err());
}

#[test]
fn openes_trains_the_constant_task() {
    let mut task = Constant::new(0);
    let config = EsConfig { method: Method::OpenEs, epochs: 100, ..task.default_config() };
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
    let start = task.evaluate(&mut es).unwrap().metric;
    for _ in 0..es.config().epochs {
        train_epoch(&mut task, &mut es).unwrap();
    }
    let end = task.evaluate(&mut es).unwrap().metric;
    assert!(end < start / 5.0, "test MSE {start} -> {end}");
}

/// The same seed gives OpenES and EGGROLL different trajectories: the method is in effect.
#[test]
fn openes_and_eggroll_move_differently() {
    let run = |method| {
        let mut task = Constant::new(1);
        let config = EsConfig { method, epochs: 3, seed: 1, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        for _ in 0..3 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        es.state().unwrap().tensors
    };
    assert_ne!(run(Method::OpenEs), run(Method::Eggroll));
}

/// Under OpenES every member of the charlm population forward is the mean model of the
/// parameters its ask handle describes, `W + s σ E` with E the first m n draws of the member's
/// pair for every matrix, the embedding table included (the noise the full-rank update is
/// estimated from).
#[test]
fn openes_charlm_members_are_their_perturbed_mean_models() {
    let options = CharLmOptions { width: 8, depth: 1, window: 4, ..CharLmOptions::default() };
    let task = CharLm::new(0, &options).unwrap();
    let config = EsConfig { population: 6, group_size: 0, sigma: 0.1, method: Method::OpenEs, ..task.default_config() };
    let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config.clone()).unwrap();
    let mut member_model = FloatTrainer::new(CpuBackend::new(), task.model(), config.clone()).unwrap();
    let (mean, state) = (es.params().unwrap(), es.state().unwrap());
    let rows = 2 * options.window;
    let bytes: Vec<f32> = (0..rows).map(|i| ((i * 53 + 11) % 256) as f32).collect();
    let y = es.population_forward(&bytes, InputLayout::Shared, rows).unwrap();
    let per_member = rows * es.model().registry().outputs();
    let unperturbed = es.forward_mean(&bytes, rows).unwrap();
    for handle in es.ask() {
        // The member's parameters, the optimiser's moments as they are.
        let params = handle.apply_all(&mean);
        let tensors = state.tensors.iter().map(|(name, t)| (name.clone(), params.get(name).unwrap_or(t).to_vec())).collect();
        member_model.restore(&TrainerState { epoch: 0, tensors }).unwrap();
        let want = member_model.forward_mean(&bytes, rows).unwrap();
        let got = &y[handle.member * per_member..(handle.member + 1) * per_member];
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "member {} value {j}: population {g}, its mean model {w}", handle.member);
        }
        assert!(got != unperturbed.as_slice(), "member {} is perturbed", handle.member);
    }
    // Members 2..4 alone give the whole population's rows.
    let part = es.population_forward_members(2..4, &bytes, InputLayout::Shared, rows).unwrap();
    assert_eq!(part, y[2 * per_member..4 * per_member], "members 2..4");
}

/// OpenES trains the charlm model: finite fitness and losses, the embedding table moves, and
/// along another path than under EGGROLL.
#[test]
fn openes_trains_the_charlm_model() {
    let options = CharLmOptions { width: 8, depth: 1, window: 4, ..CharLmOptions::default() };
    let run = |method| {
        let mut task = CharLm::new(0, &options).unwrap();
        let config = EsConfig { population: 8, group_size: 4, epochs: 3, method, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let start = es.params().unwrap().get("embed").unwrap().to_vec();
        for _ in 0..es.config().epochs {
            let stats = train_epoch(&mut task, &mut es).unwrap();
            assert!(stats.mean_fitness.is_finite(), "{method}: {stats:?}");
        }
        let eval = task.evaluate(&mut es).unwrap();
        assert!(eval.train_loss.is_finite() && eval.metric.is_finite(), "{method}: {eval:?}");
        let end = es.params().unwrap().get("embed").unwrap().to_vec();
        assert_ne!(end, start, "{method}: the embedding table moved");
        end
    };
    assert_ne!(run(Method::OpenEs), run(Method::Eggroll));
}

/// The integer trainer takes OpenES (docs/int8.md, "OpenES"): from the same start and seed its
/// full-rank noise moves the int8 weights elsewhere than EGGROLL's, and a run is reproducible.
#[test]
fn the_integer_trainer_takes_openes() {
    let options = CharLmOptions { width: 8, depth: 1, window: 8, ..Egg::default_options() };
    let run = |method| {
        let mut task = Egg::new(2, &options).unwrap();
        let config = EsConfig { method, population: 16, group_size: 4, rank: 2, epochs: 3, seed: 2, ..task.default_config() };
        let mut es = IntTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let start = es.state().unwrap();
        for _ in 0..3 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        task.evaluate(&mut es).unwrap();
        (start, es.state().unwrap())
    };
    let (start, openes) = run(Method::OpenEs);
    let (same_start, eggroll) = run(Method::Eggroll);
    assert_eq!(start, same_start, "the methods start from the same weights");
    assert_ne!(openes, start, "OpenES moved the weights");
    assert_ne!(openes, eggroll, "OpenES and EGGROLL moved them differently");
    assert_eq!(run(Method::OpenEs).1, openes, "the same run gives the same weights");
}
