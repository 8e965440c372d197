//! A byte-level language-model task's windows as its model reads them (`T`: f32 byte values for
//! `charlm`, u32 token ids for `egg`): the test windows, each member's copy of its group's train
//! window, and the windows of the last population evaluation, which the train loss is measured
//! on. Both language-model tasks keep their windows here, and answer the [`Task`](super::super::Task)
//! methods that only depend on the data and the window ([`lm_task_methods!`]).

use super::corpus::Corpus;
use super::data::LmData;
use crate::config::EsConfig;
use crate::error::Result;
use crate::tasks::Footprint;
use eggroll_backend::InputLayout;
use std::ops::Range;

/// A language-model task's [`LmData`] and windows, the inputs as `T`.
#[derive(Clone, Debug)]
pub(crate) struct LmWindows<T> {
    data: LmData,
    test_inputs: Vec<T>,
    test_targets: Vec<u32>,
    /// The distinct windows of the last population evaluation (inputs, targets).
    seen: Option<(Vec<T>, Vec<u32>)>,
    /// Every member's inputs and targets, reused from one epoch to the next.
    inputs: Vec<T>,
    targets: Vec<u32>,
}

impl<T: Copy + From<u8>> LmWindows<T> {
    /// Windows of `window` bytes of `corpus` drawn from `seed`; refuses what [`LmData::new`]
    /// refuses.
    pub(crate) fn new(seed: u64, corpus: Corpus, window: usize) -> Result<Self> {
        let data = LmData::new(seed, corpus, window)?;
        let (inputs, targets) = data.test();
        Ok(Self {
            test_inputs: inputs.iter().map(|&b| T::from(b)).collect(),
            test_targets: targets.iter().map(|&b| u32::from(b)).collect(),
            data,
            seen: None,
            inputs: Vec::new(),
            targets: Vec::new(),
        })
    }

    /// The corpus, windows and baselines.
    pub(crate) fn data(&self) -> &LmData {
        &self.data
    }

    /// The test windows' inputs and targets, one window after another.
    pub(crate) fn test(&self) -> (&[T], &[u32]) {
        (&self.test_inputs, &self.test_targets)
    }

    /// The distinct train windows of `epoch` (inputs, targets).
    fn train_windows(&self, config: &EsConfig, epoch: u32) -> (Vec<T>, Vec<u32>) {
        let (x, y) = self.data.train_windows(config, epoch);
        (x.iter().map(|&b| T::from(b)).collect(), y.iter().map(|&b| u32::from(b)).collect())
    }

    /// Sets `members`' inputs and targets ([`LmWindows::members`]) to their copies of their
    /// groups' windows of `epoch`; returns the distinct windows, for [`LmWindows::saw`] once the
    /// members are scored.
    pub(crate) fn draw_members(&mut self, config: &EsConfig, epoch: u32, members: Range<usize>) -> (Vec<T>, Vec<u32>) {
        let (x, y) = self.train_windows(config, epoch);
        self.data.member_windows(config, members, (&x, &y), &mut self.inputs, &mut self.targets);
        (x, y)
    }

    /// The inputs and targets of the members last drawn (members x window each, member-major).
    pub(crate) fn members(&self) -> (&[T], &[u32]) {
        (&self.inputs, &self.targets)
    }

    /// Records the distinct windows of the population evaluation just scored.
    pub(crate) fn saw(&mut self, windows: (Vec<T>, Vec<u32>)) {
        self.seen = Some(windows);
    }

    /// The windows the train loss is measured on: those of the last population evaluation, or
    /// `epoch`'s when there was none.
    pub(crate) fn last_windows(&self, config: &EsConfig, epoch: u32) -> (Vec<T>, Vec<u32>) {
        match &self.seen {
            Some(seen) => seen.clone(),
            None => self.train_windows(config, epoch),
        }
    }

    /// Each member's window (its inputs, targets and log-likelihoods); the mean model on the
    /// test windows.
    pub(crate) fn footprint(&self, config: &EsConfig) -> Footprint {
        let t = self.data.window();
        Footprint::new(config, t, InputLayout::PerMember, self.test_targets.len().max(t), 3 * t * 4)
    }

    /// Bytes the population evaluates per epoch.
    pub(crate) fn tokens_per_epoch(&self, config: &EsConfig) -> Option<usize> {
        Some(config.population * self.data.window())
    }
}

/// The [`Task`](super::super::Task) methods of a language-model task with its windows in a field
/// `lm` ([`LmWindows`]) and its model in `model`: the footprint, the bytes evaluated per epoch,
/// the unigram and bigram baselines, and what a checkpoint records (the model's shape, the data's
/// size and hash).
macro_rules! lm_task_methods {
    () => {
        /// Each member's window; the mean model on the test windows.
        fn footprint(&self, config: &EsConfig) -> Footprint {
            self.lm.footprint(config)
        }

        /// Bytes the population evaluates per epoch.
        fn tokens_per_epoch(&self, config: &EsConfig) -> Option<usize> {
            self.lm.tokens_per_epoch(config)
        }

        /// The unigram and bigram baselines.
        fn baselines(&self) -> Vec<(&'static str, f64)> {
            self.lm.data().baselines()
        }

        /// The model's shape and the data's size and hash, for checkpoints.
        fn settings(&self) -> serde_json::Value {
            self.lm.data().settings(serde_json::json!(self.model.shape()))
        }
    };
}

pub(crate) use lm_task_methods;
