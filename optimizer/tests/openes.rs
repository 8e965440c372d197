//! OpenES (`method = "openes"`, full-rank noise on every matrix) on the CPU backend: the
//! configuration field, training (the integer trainer's included), and the models it refuses. Its forward and update against
//! the definitions, on every backend, are in the workspace's `tests/tests/every_backend.rs`.

use eggroll::config::{EsConfig, Method};
use eggroll::int8::IntEggroll;
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Egg, Task};
use eggroll::{train_epoch, Eggroll, EggrollError};
use eggroll_backend::cpu::CpuBackend;

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
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
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
        let mut es = Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
        for _ in 0..3 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        es.state().unwrap().tensors
    };
    assert_ne!(run(Method::OpenEs), run(Method::Eggroll));
}

#[test]
fn openes_refuses_embeddings() {
    let options = CharLmOptions { width: 8, depth: 1, window: 4, ..CharLmOptions::default() };
    let mut task = CharLm::new(0, &options).unwrap();
    let config = EsConfig { population: 8, group_size: 4, method: Method::OpenEs, ..task.default_config() };
    let mut es = Eggroll::new(CpuBackend::new(), task.model(), config).unwrap();
    let err = train_epoch(&mut task, &mut es).unwrap_err();
    assert!(matches!(err, EggrollError::Config(_)) && err.to_string().contains("openes"), "{err}");
    assert!(err.to_string().contains("embedding"), "{err}");
    // The mean model has no noise: evaluation still runs.
    task.evaluate(&mut es).unwrap();
}

/// The integer trainer takes OpenES (docs/int8.md, "OpenES"): from the same start and seed its
/// full-rank noise moves the int8 weights elsewhere than EGGROLL's, and a run is reproducible.
#[test]
fn the_integer_trainer_takes_openes() {
    let options = CharLmOptions { width: 8, depth: 1, window: 8, ..Egg::default_options() };
    let run = |method| {
        let mut task = Egg::new(2, &options).unwrap();
        let config = EsConfig { method, population: 16, group_size: 4, rank: 2, epochs: 3, seed: 2, ..task.default_config() };
        let mut es = IntEggroll::new(CpuBackend::new(), task.model(), config).unwrap();
        let start = es.to_safetensors().unwrap();
        for _ in 0..3 {
            task.train_epoch(&mut es).unwrap();
        }
        task.evaluate(&mut es).unwrap();
        (start, es.to_safetensors().unwrap())
    };
    let (start, openes) = run(Method::OpenEs);
    let (same_start, eggroll) = run(Method::Eggroll);
    assert_eq!(start, same_start, "the methods start from the same weights");
    assert_ne!(openes, start, "OpenES moved the weights");
    assert_ne!(openes, eggroll, "OpenES and EGGROLL moved them differently");
    assert_eq!(run(Method::OpenEs).1, openes, "the same run gives the same weights");
}
