//! A population shared out over several backends in one process ([`ShardedSession`]) follows the
//! one-backend trajectory: bit for bit on CPU backends (a member's fitness and the update do not
//! depend on how the population is shared out), for an MLP task and the language model.

use eggroll::session::{FloatSession, Session};
use eggroll::shards::ShardedSession;
use eggroll::tasks::{CharLm, CharLmOptions, Regression, Task};
use eggroll::{CpuBackend, EsConfig};

fn trajectory<S: Session>(mut session: S, epochs: u32) -> (Vec<u32>, Vec<u8>, u32) {
    let fitness = (0..epochs).map(|_| session.train_epoch().unwrap().mean_fitness.to_bits()).collect();
    let eval = session.evaluate().unwrap();
    (fitness, session.save().unwrap(), eval.metric.to_bits())
}

fn assert_shared_out_runs_match<T: Task + Clone + Send>(task: T, config: EsConfig)
where
    T::Model: Send,
{
    let whole = trajectory(FloatSession::new(CpuBackend::new(), task.clone(), config.clone()).unwrap(), config.epochs);
    for workers in [2, 3] {
        let backends = (0..workers).map(|_| CpuBackend::new()).collect();
        let sharded = ShardedSession::new(backends, task.clone(), config.clone()).unwrap();
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
fn a_population_that_cannot_be_shared_out_is_refused() {
    let task = Regression::new(0);
    let config = EsConfig { population: 4, group_size: 2, ..task.default_config() };
    let backends = (0..3).map(|_| CpuBackend::new()).collect();
    let e = ShardedSession::new(backends, task, config).err().unwrap().to_string();
    assert!(e.contains("cannot be shared out over 3"), "{e}");
}
