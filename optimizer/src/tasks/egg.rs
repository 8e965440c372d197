//! `egg`: the paper's integer language model ([`EggModel`]) trained with integer EGGROLL
//! ([`IntTrainer`]) on the `charlm` corpus, split, windows and baselines ([`LmData`]).
//!
//! A member's score is the sum of its window's integer log-likelihoods (units of 2^-16 bits), the
//! recurrent state starting from zero at the window's start; the members of a group share a
//! window; the held-out metric is the mean model's bits per byte on the fixed test windows.

use super::charlm::{lm_task_methods, CharLmOptions, Corpus, LmData, LmWindows};
use super::{Evaluation, Footprint, Task, TaskKind};
use crate::config::{EsConfig, OptimizerKind};
use crate::error::{EggrollError, Result};
use crate::es::StepStats;
use crate::format::Int8;
use crate::int8::{EggModel, IntTrainer};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::InputLayout;
use std::ops::Range;

/// Units of the integer log-likelihood per bit.
const LL_PER_BIT: f64 = 65536.0;

/// The `egg` task.
#[derive(Clone, Debug)]
pub struct Egg {
    /// The data and the windows, inputs as token ids.
    lm: LmWindows<u32>,
    model: EggModel,
}

/// Bits per byte of integer log-likelihoods.
fn bits_per_byte(ll: &[i32]) -> f32 {
    let sum: f64 = ll.iter().map(|&v| f64::from(v)).sum();
    (-sum / ll.len() as f64 / LL_PER_BIT) as f32
}

impl Egg {
    /// The model's shape and data when no flag says otherwise: width 64, 2 blocks, windows of
    /// 100 bytes, the embedded King James Bible.
    pub fn default_options() -> CharLmOptions {
        CharLmOptions { data: None, width: 64, depth: 2, window: 100 }
    }

    /// The task on `options`' data and model, windows drawn from `seed`; refuses what
    /// [`crate::tasks::CharLm::new`] refuses and a width that is not a multiple of 4.
    pub fn new(seed: u64, options: &CharLmOptions) -> Result<Self> {
        let model = EggModel::new(options.width, options.depth, options.window)?;
        Self::with_corpus(seed, Corpus::load(options.data.as_deref())?, model)
    }

    /// The task on `corpus` with `model`.
    pub fn with_corpus(seed: u64, corpus: Corpus, model: EggModel) -> Result<Self> {
        Ok(Self { lm: LmWindows::new(seed, corpus, model.shape().window)?, model })
    }

    /// The corpus, windows and baselines.
    pub fn data(&self) -> &LmData {
        self.lm.data()
    }
}

impl Task for Egg {
    type Model = EggModel;
    type Format = Int8;

    /// `"egg"`.
    fn name(&self) -> &'static str {
        "egg"
    }

    fn model(&self) -> EggModel {
        self.model.clone()
    }

    /// Sized for a 2-core CPU: 1000 epochs of a population of 1024 in groups of 32, rank 1, noise
    /// shift 4 (σ = 2^-4), α = 1 decaying linearly to 0 (every weight with any evidence moves at
    /// first, fewer and fewer later); the update is the ±1 step (`sgd`).
    fn default_config(&self) -> EsConfig {
        EsConfig {
            population: 1024,
            rank: 1,
            sigma: 0.0625,
            lr: 1.0,
            optimizer: OptimizerKind::Sgd,
            lr_schedule: crate::config::Schedule::Linear,
            epochs: 1000,
            group_size: 32,
            ..EsConfig::default()
        }
    }

    lm_task_methods!();

    /// Every member's score at the trainer's epoch: the sum of its window's log-likelihoods, the
    /// read-back awaited.
    async fn members_fitness_async<B: IntBackend>(&mut self, es: &mut IntTrainer<B, EggModel>, members: Range<usize>) -> Result<Vec<i64>> {
        let t = self.model.shape().window;
        let windows = self.lm.draw_members(es.config(), es.epoch(), members.clone());
        let (tokens, targets) = self.lm.members();
        let ll = es.population_log_likelihood_members_async(members, tokens, InputLayout::PerMember, t, targets).await?;
        self.lm.saw(windows);
        Ok(ll.chunks_exact(t).map(|w| w.iter().map(|&v| i64::from(v)).sum()).collect())
    }

    /// Bits per byte of the mean model on the windows last seen and on the test windows, the
    /// read-backs awaited.
    async fn evaluate_async<B: IntBackend>(&mut self, es: &mut IntTrainer<B, EggModel>) -> Result<Evaluation> {
        let (x, y) = self.lm.last_windows(es.config(), es.epoch());
        let train = es.mean_log_likelihood_async(&x, y.len(), &y).await?;
        let (test_x, test_y) = self.lm.test();
        let test = es.mean_log_likelihood_async(test_x, test_y.len(), test_y).await?;
        if train.is_empty() || test.is_empty() {
            return Err(EggrollError::Data("no windows to evaluate".into()));
        }
        Ok(Evaluation { train_loss: bits_per_byte(&train), metric_name: TaskKind::Egg.metric_name(), metric: bits_per_byte(&test) })
    }

    /// Scores are sums over a window in 2^-16 bits: reported as bits per byte (negated
    /// log-likelihood is the loss; the fitness stays "higher is better").
    fn report_stats(&self, mut stats: StepStats) -> StepStats {
        let per_byte = |v: f32| (f64::from(v) / LL_PER_BIT / self.model.shape().window as f64) as f32;
        stats.mean_fitness = per_byte(stats.mean_fitness);
        stats.max_fitness = per_byte(stats.max_fitness);
        stats.min_fitness = per_byte(stats.min_fitness);
        stats.fitness_std = per_byte(stats.fitness_std);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eggroll_backend::cpu::CpuBackend;

    #[test]
    fn learns_a_repeating_text_below_its_unigram_baseline() {
        let corpus = Corpus::new("cat".into(), b"the cat sat on the mat. ".repeat(200));
        let mut task = Egg::with_corpus(1, corpus, EggModel::new(16, 1, 8).unwrap()).unwrap();
        let config = EsConfig { population: 128, group_size: 8, epochs: 300, seed: 1, ..task.default_config() };
        let mut es = IntTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let start = task.evaluate(&mut es).unwrap().metric;
        for _ in 0..300 {
            crate::tasks::train_epoch(&mut task, &mut es).unwrap();
        }
        let end = task.evaluate(&mut es).unwrap().metric;
        let unigram = task.data().unigram_bits_per_byte() as f32;
        assert!(end < unigram && end < start, "{start} -> {end} bits per byte, unigram {unigram}");
    }

    #[test]
    fn the_configuration_is_read_as_integer_eggroll_reads_it() {
        let task = Egg::with_corpus(1, Corpus::new("t".into(), vec![b'a'; 400]), EggModel::new(4, 1, 4).unwrap()).unwrap();
        let new = |config: EsConfig| IntTrainer::new(CpuBackend::new(), task.model(), config).map(|_| ()).unwrap_err().to_string();
        let base = EsConfig { population: 8, group_size: 0, ..task.default_config() };
        assert!(new(EsConfig { sigma: 0.1, ..base.clone() }).contains("power of two"));
        assert!(new(EsConfig { optimizer: OptimizerKind::Adam, ..base.clone() }).contains("sgd"));
        assert!(new(EsConfig { lr: 1.5, ..base.clone() }).contains("lr"));
        assert!(new(EsConfig { sigma_schedule: crate::config::Schedule::Linear, ..base }).contains("sigma_schedule"));
        assert!(EggModel::new(6, 1, 4).unwrap_err().to_string().contains("multiple of 4"));
    }
}
