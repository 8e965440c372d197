//! What a byte-level language-model task draws from its corpus: the train windows of an epoch,
//! shared by the members of a group, the fixed test windows and the baselines scored on them.
//! The f32 `charlm` task and the integer `egg` task both learn from it.

use super::corpus::{self, Baselines, Corpus};
use crate::config::EsConfig;
use crate::error::Result;
use serde_json::json;
use std::ops::Range;

/// A corpus with its window length, test windows and baselines.
#[derive(Clone, Debug)]
pub struct LmData {
    corpus: Corpus,
    window: usize,
    seed: u64,
    test_inputs: Vec<u8>,
    test_targets: Vec<u8>,
    unigram_bits: f64,
    bigram_bits: f64,
}

impl LmData {
    /// Windows of `window` bytes of `corpus` drawn from `seed`; refuses a window of 0 or a corpus
    /// too short for a window in each split.
    pub fn new(seed: u64, corpus: Corpus, window: usize) -> Result<Self> {
        corpus.check_window(window)?;
        let starts = corpus.test_starts(window);
        let (test_inputs, test_targets) = corpus::windows(corpus.test(), &starts, window);
        let baselines = Baselines::fit(corpus.train());
        Ok(Self {
            unigram_bits: baselines.unigram_bits(&test_targets),
            bigram_bits: baselines.bigram_bits(&test_inputs, &test_targets),
            corpus,
            window,
            seed,
            test_inputs,
            test_targets,
        })
    }

    /// The corpus.
    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Bytes per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The test windows' inputs and targets, one window after another.
    pub fn test(&self) -> (&[u8], &[u8]) {
        (&self.test_inputs, &self.test_targets)
    }

    /// Bits per byte of the unigram baseline on the test windows.
    pub fn unigram_bits_per_byte(&self) -> f64 {
        self.unigram_bits
    }

    /// Bits per byte of the bigram baseline on the test windows.
    pub fn bigram_bits_per_byte(&self) -> f64 {
        self.bigram_bits
    }

    /// The distinct train windows of `epoch` (inputs, targets): one per group of
    /// `config.group_len()` members.
    pub fn train_windows(&self, config: &EsConfig, epoch: u32) -> (Vec<u8>, Vec<u8>) {
        let count = config.population / config.group_len();
        let starts = self.corpus.train_starts(self.window, count, self.seed, epoch);
        corpus::windows(self.corpus.train(), &starts, self.window)
    }

    /// Each of `members`' copy of its group's window: `inputs` and `targets` become theirs
    /// (members x window each, member-major) from the distinct windows `x` and `y` of
    /// [`LmData::train_windows`].
    pub fn member_windows<T: Copy>(
        &self, config: &EsConfig, members: Range<usize>, (x, y): (&[T], &[u32]), inputs: &mut Vec<T>, targets: &mut Vec<u32>,
    ) {
        let (t, group) = (self.window, config.group_len());
        inputs.clear();
        targets.clear();
        for member in members {
            let w = member / group;
            inputs.extend_from_slice(&x[w * t..(w + 1) * t]);
            targets.extend_from_slice(&y[w * t..(w + 1) * t]);
        }
    }

    /// The baselines as a task reports them.
    pub fn baselines(&self) -> Vec<(&'static str, f64)> {
        vec![("unigram_bits_per_byte", self.unigram_bits), ("bigram_bits_per_byte", self.bigram_bits)]
    }

    /// What a checkpoint records: `model`, and the data's size and FNV-1a hash.
    pub fn settings(&self, model: serde_json::Value) -> serde_json::Value {
        let bytes = self.corpus.bytes();
        json!({ "model": model, "data_bytes": bytes.len(), "data_fnv1a64": crate::checkpoint::fnv1a64(bytes) })
    }
}
