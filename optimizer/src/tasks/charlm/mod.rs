//! A byte-level language model ([`CharLmModel`]) learning the next byte of a corpus: the King
//! James Bible shipped with the crate ([`Corpus::kjv`]), or any file's bytes.
//!
//! - Fitness of a member: the mean log-likelihood (nats per byte) of the next byte over its window
//!   of `window` bytes, the recurrent state starting from zero at the window's start (so every
//!   window is scored alike, and training and sampling see the same state).
//! - Data reuse: the members of a fitness-shaping group (`group_size` consecutive members, the
//!   whole population when it is 0) share one window, so an epoch draws `population / group`
//!   windows from the train split, a pure function of (seed, epoch); shaping within groups then
//!   compares members on the same bytes.
//! - Held-out metric: bits per byte of the mean model on the [`TEST_WINDOWS`] fixed test windows,
//!   beside the unigram and bigram baselines fitted on the train split and scored on the same
//!   windows.

pub mod corpus;
mod data;
mod model;
mod windows;

pub use corpus::{Baselines, Corpus, TEST_WINDOWS, VOCAB};
pub use data::LmData;
pub use model::{CharLmModel, MLP_RATIO};
pub(crate) use windows::{lm_task_methods, LmWindows};

use super::{Evaluation, Footprint, Task, TaskKind};
use crate::config::{EsConfig, OptimizerKind};
use crate::error::{EggrollError, Result};
use crate::es::FloatTrainer;
use crate::format::F32;
use eggroll_backend::{Backend, InputLayout};
use std::f64::consts::LN_2;
use std::ops::Range;
use std::path::PathBuf;

/// What the `charlm` task trains on, and the model's shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharLmOptions {
    /// A file whose bytes replace the embedded King James Bible.
    pub data: Option<PathBuf>,
    /// Features of the model's residual stream.
    pub width: usize,
    /// Blocks of the model.
    pub depth: usize,
    /// Bytes per window (T).
    pub window: usize,
}

impl Default for CharLmOptions {
    fn default() -> Self {
        Self { data: None, width: 64, depth: 1, window: 32 }
    }
}

/// The `charlm` task.
#[derive(Clone, Debug)]
pub struct CharLm {
    /// The data and the windows, inputs as f32 byte values.
    lm: LmWindows<f32>,
    model: CharLmModel,
}

/// Bits per byte of mean log-likelihoods `ll` (nats).
fn bits_per_byte(ll: &[f32]) -> f32 {
    let mean = ll.iter().map(|&v| f64::from(v)).sum::<f64>() / ll.len() as f64;
    (-mean / LN_2) as f32
}

impl CharLm {
    /// The model's shape and data when no flag says otherwise ([`CharLmOptions::default`]).
    pub fn default_options() -> CharLmOptions {
        CharLmOptions::default()
    }

    /// The task on `options`' data (the embedded King James Bible by default) and model, windows
    /// drawn from `seed`. Refuses a data file that is missing, empty or too short for a window in
    /// each split, and a width, depth or window of 0.
    pub fn new(seed: u64, options: &CharLmOptions) -> Result<Self> {
        let model = CharLmModel::new(options.width, options.depth, options.window)?;
        Self::with_corpus(seed, Corpus::load(options.data.as_deref())?, model)
    }

    /// The task on `corpus` (an app's own bytes, say) with `model`; refuses a corpus too short
    /// for a window of the model in each split.
    pub fn with_corpus(seed: u64, corpus: Corpus, model: CharLmModel) -> Result<Self> {
        Ok(Self { lm: LmWindows::new(seed, corpus, model.shape().window)?, model })
    }

    /// The corpus, windows and baselines.
    pub fn data(&self) -> &LmData {
        self.lm.data()
    }

    /// Bits per byte of the unigram baseline on the test windows.
    pub fn unigram_bits_per_byte(&self) -> f64 {
        self.lm.data().unigram_bits_per_byte()
    }

    /// Bits per byte of the bigram baseline on the test windows.
    pub fn bigram_bits_per_byte(&self) -> f64 {
        self.lm.data().bigram_bits_per_byte()
    }
}

impl Task for CharLm {
    type Model = CharLmModel;
    type Format = F32;

    fn name(&self) -> &'static str {
        "charlm"
    }

    fn model(&self) -> CharLmModel {
        self.model.clone()
    }

    /// Sized for a 2-core CPU: 4000 epochs of a population of 512 in groups of 32 (16 windows
    /// per epoch), rank 1, σ = 0.02, Adam at lr 0.006.
    fn default_config(&self) -> EsConfig {
        EsConfig {
            population: 512,
            rank: 1,
            sigma: 0.02,
            lr: 0.006,
            optimizer: OptimizerKind::Adam,
            epochs: 4000,
            group_size: 32,
            ..EsConfig::default()
        }
    }

    lm_task_methods!();

    async fn members_fitness_async<B: Backend>(
        &mut self, es: &mut FloatTrainer<B, CharLmModel>, members: Range<usize>,
    ) -> Result<Vec<f32>> {
        let t = self.model.shape().window;
        let windows = self.lm.draw_members(es.config(), es.epoch(), members.clone());
        let (inputs, targets) = self.lm.members();
        let ll = es.population_log_likelihood_members_async(members.clone(), inputs, InputLayout::PerMember, t, targets).await?;
        self.lm.saw(windows);
        let fitness: Vec<f32> = ll.chunks_exact(t).map(|w| (w.iter().map(|&v| f64::from(v)).sum::<f64>() / t as f64) as f32).collect();
        if let Some(bad) = fitness.iter().position(|f| !f.is_finite()) {
            return Err(EggrollError::Data(format!("member {}'s log-likelihood is {}", members.start + bad, fitness[bad])));
        }
        Ok(fitness)
    }

    /// Bits per byte of the mean model on the windows last seen (train loss) and on the test
    /// windows (`test_bits_per_byte`).
    async fn evaluate_async<B: Backend>(&mut self, es: &mut FloatTrainer<B, CharLmModel>) -> Result<Evaluation> {
        let (x, y) = self.lm.last_windows(es.config(), es.epoch());
        let train = es.mean_log_likelihood_async(&x, y.len(), &y).await?;
        let (test_x, test_y) = self.lm.test();
        let test = es.mean_log_likelihood_async(test_x, test_y.len(), test_y).await?;
        Ok(Evaluation { train_loss: bits_per_byte(&train), metric_name: TaskKind::CharLm.metric_name(), metric: bits_per_byte(&test) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::train_epoch;
    use eggroll_backend::cpu::CpuBackend;

    #[test]
    fn learns_a_repeating_text_below_its_unigram_baseline() {
        let corpus = Corpus::new("cat".into(), b"the cat sat on the mat. ".repeat(200));
        let mut task = CharLm::with_corpus(1, corpus, CharLmModel::new(16, 1, 8).unwrap()).unwrap();
        let config = EsConfig { population: 64, group_size: 8, lr: 0.01, seed: 1, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let start = task.evaluate(&mut es).unwrap().metric;
        assert!(start > 7.0, "an untrained model is near uniform: {start}");
        for _ in 0..150 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        let end = task.evaluate(&mut es).unwrap().metric;
        assert!(end < task.unigram_bits_per_byte() as f32, "{end} bits per byte, unigram {}", task.unigram_bits_per_byte());
    }

    #[test]
    fn the_group_members_share_their_window() {
        let corpus = Corpus::new("digits".into(), (0..5000u32).map(|i| (i % 251) as u8).collect());
        let mut task = CharLm::with_corpus(2, corpus, CharLmModel::new(4, 1, 5).unwrap()).unwrap();
        let config = EsConfig { population: 12, group_size: 4, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        task.population_fitness(&mut es).unwrap();
        let (inputs, targets) = task.lm.members();
        let windows: Vec<&[f32]> = inputs.chunks_exact(5).collect();
        assert_eq!(windows.len(), 12);
        for (member, w) in windows.iter().enumerate() {
            assert_eq!(*w, windows[member / 4 * 4], "member {member} reads its group's window");
            assert_eq!(targets[member * 5] as f32, w[1], "targets are the next bytes");
        }
        assert_ne!(windows[0], windows[4]);
    }
}
