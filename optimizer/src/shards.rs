//! A population shared out over several workers (adapters in one process, or processes): each
//! evaluates its share of whole antithetic pairs, the fitness of all N members is gathered, and
//! every worker applies the same update. Only fitness values travel: every worker regenerates any
//! member's noise from the seed.

use crate::error::{EggrollError, Result};
#[cfg(feature = "native")]
pub use sharded::ShardedSession;
use std::ops::Range;

/// Shares `population` members out over `workers` in whole antithetic pairs, in member order, as
/// evenly as possible: each gets `pairs / workers` pairs and the first `pairs % workers` one pair
/// more. An error when there are fewer pairs than workers (a worker would have nothing to do).
pub fn share_pairs(population: usize, workers: usize) -> Result<Vec<Range<usize>>> {
    let pairs = population / 2;
    if workers == 0 || !population.is_multiple_of(2) || pairs < workers {
        return Err(EggrollError::Config(format!(
            "a population of {population} ({pairs} antithetic pairs) cannot be shared out over {workers} workers: \
             each needs at least one whole pair"
        )));
    }
    let (each, extra) = (pairs / workers, pairs % workers);
    let mut start = 0;
    Ok((0..workers)
        .map(|w| {
            let len = 2 * (each + usize::from(w < extra));
            let share = start..start + len;
            start += len;
            share
        })
        .collect())
}

/// Several backends in one process.
#[cfg(feature = "native")]
mod sharded {
    use super::share_pairs;
    use crate::config::EsConfig;
    use crate::error::{EggrollError, Result};
    use crate::es::{Eggroll, StepStats, TrainerState};
    use crate::session::Session;
    use crate::tasks::{Evaluation, Task};
    use eggroll_backend::{AdapterDescription, Backend};
    use std::ops::Range;

    /// One backend's task, trainer and members.
    struct Shard<B: Backend, T: Task> {
        task: T,
        es: Eggroll<B, T::Model>,
        members: Range<usize>,
    }

    /// A population shared out over several backends in one process (`eggroll train --devices`):
    /// each backend evaluates its share of whole pairs ([`share_pairs`]) on its own thread, the
    /// fitness of all N members is gathered on the host in member order, and the update follows.
    /// On identical adapters every backend applies the update itself and they agree bit for bit;
    /// when the adapters differ, the first one applies it and the others take its state, so that
    /// rounding differences between devices never accumulate. Evaluation, checkpoints and the
    /// report are the first backend's.
    pub struct ShardedSession<B: Backend, T: Task> {
        shards: Vec<Shard<B, T>>,
        /// Whether the adapters differ (then the others copy the first one's state).
        copy_state: bool,
    }

    impl<B, T> ShardedSession<B, T>
    where
        B: Backend + Send,
        B::Buffer: Send,
        T: Task + Clone + Send,
        T::Model: Send,
    {
        /// `task`'s trainer on every backend of `backends` (at least one), the population shared
        /// out over them in order.
        pub fn new(backends: Vec<B>, task: T, config: EsConfig) -> Result<Self> {
            let shares = share_pairs(config.population, backends.len())?;
            let adapters: Vec<AdapterDescription> = backends.iter().map(Backend::describe).collect();
            let copy_state = adapters.windows(2).any(|w| w[0] != w[1]);
            let shards = backends
                .into_iter()
                .zip(shares)
                .map(|(backend, members)| {
                    let es = Eggroll::new(backend, task.model(), config.clone())?;
                    Ok(Shard { task: task.clone(), es, members })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Self { shards, copy_state })
        }

        /// The members each backend evaluates, in backend order.
        pub fn shares(&self) -> Vec<Range<usize>> {
            self.shards.iter().map(|s| s.members.clone()).collect()
        }

        /// Every member's fitness: each backend's share on its own thread, in member order.
        fn fitness(&mut self) -> Result<Vec<f32>> {
            let parts: Vec<Result<Vec<f32>>> = std::thread::scope(|scope| {
                let running: Vec<_> = self
                    .shards
                    .iter_mut()
                    .map(|s| scope.spawn(move || pollster::block_on(s.task.members_fitness_async(&mut s.es, s.members.clone()))))
                    .collect();
                running
                    .into_iter()
                    .map(|r| r.join().unwrap_or_else(|_| Err(EggrollError::Data("a backend's thread panicked".into()))))
                    .collect()
            });
            let mut fitness = Vec::with_capacity(self.shards[0].es.config().population);
            for part in parts {
                fitness.extend(part?);
            }
            Ok(fitness)
        }
    }

    impl<B, T> Session for ShardedSession<B, T>
    where
        B: Backend + Send,
        B::Buffer: Send,
        T: Task + Clone + Send,
        T::Model: Send,
    {
        type Backend = B;
        fn name(&self) -> &'static str {
            self.shards[0].task.name()
        }
        fn config(&self) -> &EsConfig {
            self.shards[0].es.config()
        }
        fn epoch(&self) -> u32 {
            self.shards[0].es.epoch()
        }
        fn backend(&self) -> &B {
            self.shards[0].es.backend()
        }
        /// The first backend's adapter, named after every adapter in use with its graphics API
        /// (`A [Vulkan] + B [Gl]`) when there are several.
        fn adapter(&self) -> AdapterDescription {
            let first = self.shards[0].es.backend().describe();
            if self.shards.len() == 1 {
                return first;
            }
            let names: Vec<String> =
                self.shards.iter().map(|s| s.es.backend().describe()).map(|a| format!("{} [{}]", a.name, a.backend)).collect();
            AdapterDescription { name: names.join(" + "), ..first }
        }
        /// Blocks the calling thread while the backends evaluate their shares.
        async fn train_epoch_async(&mut self) -> Result<StepStats> {
            let fitness = self.fitness()?;
            if !self.copy_state {
                let mut stats = Vec::with_capacity(self.shards.len());
                for shard in &mut self.shards {
                    stats.push(shard.es.tell(&fitness)?);
                }
                return Ok(stats.swap_remove(0));
            }
            let (first, others) = self.shards.split_first_mut().expect("at least one backend");
            let stats = first.es.tell(&fitness)?;
            let state = first.es.state_async().await?;
            for shard in others {
                shard.es.restore(&state)?;
            }
            Ok(stats)
        }
        async fn evaluate_async(&mut self) -> Result<Evaluation> {
            let first = &mut self.shards[0];
            first.task.evaluate_async(&mut first.es).await
        }
        fn tokens_per_epoch(&self) -> Option<usize> {
            self.shards[0].task.tokens_per_epoch(self.config())
        }
        fn baselines(&self) -> Vec<(&'static str, f64)> {
            self.shards[0].task.baselines()
        }
        fn settings(&self) -> serde_json::Value {
            self.shards[0].task.settings()
        }
        async fn save_async(&self) -> Result<Vec<u8>> {
            let first = &self.shards[0];
            first.es.state_async().await?.to_safetensors(&first.es.specs())
        }
        fn restore(&mut self, bytes: &[u8], epoch: u32) -> Result<()> {
            let state = TrainerState::from_safetensors(bytes, epoch, &self.shards[0].es.specs())?;
            self.shards.iter_mut().try_for_each(|s| s.es.restore(&state))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_whole_pairs_in_order_and_as_even_as_possible() {
        let one = share_pairs(8, 1).unwrap();
        assert_eq!((one.len(), one[0].clone()), (1, 0..8));
        assert_eq!(share_pairs(8, 2).unwrap(), [0..4, 4..8]);
        assert_eq!(share_pairs(10, 3).unwrap(), [0..4, 4..8, 8..10]);
        assert_eq!(share_pairs(4, 2).unwrap(), [0..2, 2..4]);
        for (n, k) in [(4096, 7), (64, 32), (6, 2)] {
            let shares = share_pairs(n, k).unwrap();
            assert_eq!(shares.len(), k);
            assert_eq!((shares[0].start, shares[k - 1].end), (0, n));
            assert!(shares.windows(2).all(|w| w[0].end == w[1].start));
            assert!(shares.iter().all(|s| s.start % 2 == 0 && s.len() % 2 == 0 && !s.is_empty()));
            let (min, max) = (shares.iter().map(Range::len).min().unwrap(), shares.iter().map(Range::len).max().unwrap());
            assert!(max - min <= 2, "{n} over {k}: {shares:?}");
        }
    }

    #[test]
    fn too_few_pairs_or_no_workers_are_refused() {
        for (n, k) in [(4, 3), (2, 2), (8, 0), (7, 1)] {
            let e = share_pairs(n, k).unwrap_err().to_string();
            assert!(e.contains("cannot be shared out"), "{n} over {k}: {e}");
        }
    }
}
