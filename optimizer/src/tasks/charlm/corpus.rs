//! The bytes a byte-level language model learns from: the split into train and test, the windows
//! drawn from each, and the unigram and bigram baselines.
//!
//! Split rule: the first [`TRAIN_PERCENT`]% of the bytes (rounded down) are the train split, the
//! rest the test split; contiguous, so no test window overlaps a train window. A window is
//! `window + 1` consecutive bytes: the first `window` are the model's input, the last `window`
//! (shifted by one) the targets.

use super::super::rng_for;
use crate::error::{EggrollError, Result};
use flate2::read::GzDecoder;
use rand::RngExt;
use std::io::Read;
use std::path::Path;

/// The gzipped King James Bible (provenance and licence in `optimizer/data/LICENSE-kjv.md`).
const KJV_GZ: &[u8] = include_bytes!("../../../data/kjv.txt.gz");
/// Bytes of the decompressed King James Bible.
pub const KJV_BYTES: usize = 4_298_239;

/// Share of the bytes in the train split, in percent.
pub const TRAIN_PERCENT: usize = 90;
/// Test windows the held-out metric and the baselines are scored on.
pub const TEST_WINDOWS: usize = 256;
/// Vocabulary of a byte-level model.
pub const VOCAB: usize = crate::model::BYTE_VOCAB;

/// [`rng_for`] stream of the train windows.
const WINDOW_STREAM: u64 = 21;

/// A corpus split into train and test bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corpus {
    /// Where the bytes came from: `kjv` or the data file's path.
    pub source: String,
    bytes: Vec<u8>,
    split: usize,
}

impl Corpus {
    /// The embedded King James Bible.
    pub fn kjv() -> Result<Self> {
        let mut bytes = Vec::with_capacity(KJV_BYTES);
        GzDecoder::new(KJV_GZ).read_to_end(&mut bytes).map_err(|e| EggrollError::Data(format!("kjv.txt.gz: cannot decompress: {e}")))?;
        if bytes.len() != KJV_BYTES {
            return Err(EggrollError::Data(format!("kjv.txt.gz: expected {KJV_BYTES} bytes, found {}", bytes.len())));
        }
        Ok(Self::new("kjv".into(), bytes))
    }

    /// The bytes of the file at `path`, or the embedded King James Bible without one.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(path) => Self::from_file(path),
            None => Self::kjv(),
        }
    }

    /// The bytes of the file at `path`, whatever they hold.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EggrollError::Data(format!("cannot read data file {}: {e}", path.display())))?;
        if bytes.is_empty() {
            return Err(EggrollError::Data(format!("data file {} is empty", path.display())));
        }
        Ok(Self::new(path.display().to_string(), bytes))
    }

    /// `bytes` from `source`, split by the rule of this module.
    pub fn new(source: String, bytes: Vec<u8>) -> Self {
        let split = bytes.len() * TRAIN_PERCENT / 100;
        Self { source, bytes, split }
    }

    /// Checks that both splits hold at least one window of `window` (> 0) bytes and its next byte.
    pub fn check_window(&self, window: usize) -> Result<()> {
        if window == 0 {
            return Err(EggrollError::Config("window must be >= 1 byte".into()));
        }
        let (train, test) = (self.train().len(), self.test().len());
        if train.min(test) < window + 1 {
            return Err(EggrollError::Data(format!(
                "{}: {} bytes are too few for windows of {window} bytes: the train ({TRAIN_PERCENT}%, {train} bytes) and test ({test} bytes) splits each need at least {} (a window and its next byte)",
                self.source,
                self.bytes.len(),
                window + 1
            )));
        }
        Ok(())
    }

    /// Every byte.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The train split.
    pub fn train(&self) -> &[u8] {
        &self.bytes[..self.split]
    }

    /// The test split.
    pub fn test(&self) -> &[u8] {
        &self.bytes[self.split..]
    }

    /// Start offsets in the train split of `count` windows of `window` bytes, uniform, a pure
    /// function of `(seed, epoch)`.
    pub fn train_starts(&self, window: usize, count: usize, seed: u64, epoch: u32) -> Vec<usize> {
        let last = self.train().len() - (window + 1);
        let mut rng = rng_for(seed, WINDOW_STREAM, epoch);
        (0..count).map(|_| rng.random_range(0..=last)).collect()
    }

    /// Start offsets in the test split of the [`TEST_WINDOWS`] fixed test windows: evenly spaced
    /// from the start to the end of the split (overlapping when it is short), the same for every
    /// seed.
    pub fn test_starts(&self, window: usize) -> Vec<usize> {
        let last = self.test().len() - (window + 1);
        (0..TEST_WINDOWS).map(|k| k * last / (TEST_WINDOWS - 1)).collect()
    }
}

/// Inputs (`window` bytes per window) and targets (the bytes after each) of the windows of
/// `split` at `starts`, one after another.
pub fn windows(split: &[u8], starts: &[usize], window: usize) -> (Vec<u8>, Vec<u8>) {
    let inputs = starts.iter().flat_map(|&s| &split[s..s + window]).copied().collect();
    let targets = starts.iter().flat_map(|&s| &split[s + 1..s + window + 1]).copied().collect();
    (inputs, targets)
}

/// Byte-frequency models fitted on a train split with add-one (Laplace) smoothing.
#[derive(Clone, Debug)]
pub struct Baselines {
    unigram: Vec<f64>,
    bigram: Vec<f64>,
}

impl Baselines {
    /// Counts the bytes and byte pairs of `train`.
    pub fn fit(train: &[u8]) -> Self {
        let mut unigram = vec![1.0; VOCAB];
        let mut bigram = vec![1.0; VOCAB * VOCAB];
        for &b in train {
            unigram[usize::from(b)] += 1.0;
        }
        for pair in train.windows(2) {
            bigram[usize::from(pair[0]) * VOCAB + usize::from(pair[1])] += 1.0;
        }
        let total: f64 = unigram.iter().sum();
        unigram.iter_mut().for_each(|c| *c /= total);
        for row in bigram.chunks_exact_mut(VOCAB) {
            let total: f64 = row.iter().sum();
            row.iter_mut().for_each(|c| *c /= total);
        }
        Self { unigram, bigram }
    }

    /// Bits per byte of the unigram model on `targets`.
    pub fn unigram_bits(&self, targets: &[u8]) -> f64 {
        let nats: f64 = targets.iter().map(|&t| -self.unigram[usize::from(t)].ln()).sum();
        nats / targets.len() as f64 / std::f64::consts::LN_2
    }

    /// Bits per byte of the bigram model on `targets`, each predicted from the byte before it in
    /// `inputs` (the window's input at the same position, as the model sees it).
    pub fn bigram_bits(&self, inputs: &[u8], targets: &[u8]) -> f64 {
        let nats: f64 = inputs.iter().zip(targets).map(|(&a, &t)| -self.bigram[usize::from(a) * VOCAB + usize::from(t)].ln()).sum();
        nats / targets.len() as f64 / std::f64::consts::LN_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_bible_splits_by_the_rule() {
        let c = Corpus::kjv().unwrap();
        assert!(c.bytes().starts_with(b"\nGenesis 1\n\n  1 In the beginning God created the heaven and the earth."));
        assert_eq!(c.train().len(), KJV_BYTES * 9 / 10);
        assert_eq!(c.train().len() + c.test().len(), KJV_BYTES);
        let starts = c.test_starts(64);
        assert_eq!((starts[0], starts[TEST_WINDOWS - 1]), (0, c.test().len() - 65));
    }

    #[test]
    fn windows_pair_each_byte_with_the_next() {
        let (x, y) = windows(b"abcdefgh", &[0, 3], 3);
        assert_eq!((x.as_slice(), y.as_slice()), (&b"abcdef"[..], &b"bcdefg"[..]));
    }

    #[test]
    fn train_windows_are_a_function_of_seed_and_epoch() {
        let c = Corpus::new("t".into(), (0..=255u8).cycle().take(10_000).collect());
        assert_eq!(c.train_starts(16, 8, 3, 5), c.train_starts(16, 8, 3, 5));
        assert_ne!(c.train_starts(16, 8, 3, 5), c.train_starts(16, 8, 3, 6));
        assert!(c.train_starts(16, 1000, 1, 0).iter().all(|&s| s + 17 <= c.train().len()));
    }

    #[test]
    fn too_little_data_for_a_window_is_refused() {
        let c = Corpus::new("short".into(), vec![b'a'; 100]);
        assert!(c.check_window(9).is_ok());
        let err = c.check_window(10).unwrap_err().to_string();
        assert!(err.contains("too few for windows of 10 bytes"), "{err}");
        assert!(c.check_window(0).unwrap_err().to_string().contains("window must be >= 1"));
    }

    #[test]
    fn baselines_know_the_text() {
        let text = b"abababababababababab";
        let b = Baselines::fit(text);
        // Add-one smoothing over 256 bytes: p(a) = 11/276, p(b|a) = 11/266.
        let unigram = -(11.0f64 / 276.0).log2();
        assert!((b.unigram_bits(b"a") - unigram).abs() < 1e-12);
        let bigram = -(11.0f64 / 266.0).log2();
        assert!((b.bigram_bits(b"a", b"b") - bigram).abs() < 1e-12);
        assert!(b.bigram_bits(b"aaa", b"bbb") < b.unigram_bits(b"bbb"));
    }
}
