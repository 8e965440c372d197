//! A population shared out over several backends in one process ([`Session::sharded`]) follows
//! the one-backend trajectory: bit for bit on CPU backends (a member's fitness and the update do
//! not depend on how the population is shared out), for an MLP task, the language model and the
//! integer language model.

use eggroll::format::Tensors;
use eggroll::session::{Local, Session, Training};
use eggroll::tasks::{CharLm, CharLmOptions, Egg, Regression, Task};
use eggroll::Trains;
use eggroll::{CpuBackend, EsConfig};

fn trajectory<S: Training>(mut session: S, epochs: u32) -> (Vec<u32>, Vec<u8>, u32) {
    let fitness = (0..epochs).map(|_| session.train_epoch().unwrap().mean_fitness.to_bits()).collect();
    let eval = session.evaluate().unwrap();
    (fitness, session.save().unwrap(), eval.metric.to_bits())
}

fn assert_shared_out_runs_match<T: Task + Clone + Send>(task: T, config: EsConfig)
where
    T::Model: Send,
    T::Format: Trains<CpuBackend, T::Model>,
    <T::Format as Tensors<CpuBackend>>::Tensor: Send,
    <T::Format as Tensors<CpuBackend>>::Scores: Send,
{
    let whole = trajectory(Session::new(CpuBackend::new(), task.clone(), config.clone()).unwrap(), config.epochs);
    for workers in [2, 3] {
        let backends = (0..workers).map(|_| CpuBackend::new()).collect();
        let sharded = Session::sharded(backends, task.clone(), config.clone(), Local).unwrap();
        assert_eq!(sharded.shares().len(), workers);
        assert!(trajectory(sharded, config.epochs) == whole, "{} over {workers} CPU backends differs from one", task.name());
    }
}

#[test]
fn regression_shared_out_is_bit_identical() {
    let task = Regression::new(3);
    let config = EsConfig { population: 96, group_size: 16, epochs: 4, seed: 3, ..task.default_config() };
    assert_shared_out_runs_match(task, config);
}

#[test]
fn charlm_shared_out_is_bit_identical() {
    let options = CharLmOptions { width: 8, depth: 1, window: 6, ..CharLmOptions::default() };
    let task = CharLm::new(5, &options).unwrap();
    let config = EsConfig { population: 24, group_size: 4, epochs: 3, seed: 5, ..task.default_config() };
    assert_shared_out_runs_match(task, config);
}

#[test]
fn egg_shared_out_is_bit_identical() {
    let options = CharLmOptions { width: 8, depth: 1, window: 6, ..Egg::default_options() };
    let task = Egg::new(4, &options).unwrap();
    let config = EsConfig { population: 24, group_size: 4, epochs: 3, seed: 4, ..task.default_config() };
    assert_shared_out_runs_match(task, config);
}

#[test]
fn a_population_that_cannot_be_shared_out_is_refused() {
    let task = Regression::new(0);
    let config = EsConfig { population: 4, group_size: 2, ..task.default_config() };
    let backends = (0..3).map(|_| CpuBackend::new()).collect();
    let e = Session::sharded(backends, task, config, Local).err().unwrap().to_string();
    assert!(e.contains("cannot be shared out over 3"), "{e}");
}
