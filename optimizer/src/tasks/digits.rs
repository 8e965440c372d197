//! Handwritten digits: classify the 1797 8x8 images of the UCI / scikit-learn digits data set.
//!
//! The data (`optimizer/data/digits.csv.gz`, provenance and licences in
//! `optimizer/data/LICENSE-digits.md`) is embedded in the binary and decompressed when the task is
//! built, so the task needs no file at run time.

use super::{rng_for, Evaluation, Footprint, Task, TaskKind};
use crate::config::{EsConfig, OptimizerKind, Schedule};
use crate::error::{EggrollError, Result};
use crate::es::FloatTrainer;
use crate::format::F32;
use crate::model::Mlp;
use eggroll_backend::{Backend, InputLayout};
use flate2::read::GzDecoder;
use rand::RngExt;
use rand_pcg::Pcg64;
use std::io::Read;
use std::ops::Range;

/// Pixels per image (8x8), the model's inputs.
pub const FEATURES: usize = 64;
/// Classes (digits 0..9), the model's outputs.
pub const CLASSES: usize = 10;
/// Images in the data set.
pub const IMAGES: usize = 1797;
/// Held-out test images.
pub const TEST_IMAGES: usize = 360;
/// Training images.
pub const TRAIN_IMAGES: usize = IMAGES - TEST_IMAGES;
/// Training images every member sees per epoch.
pub const BATCH: usize = 128;
/// Hidden units of the model.
pub const HIDDEN: usize = 64;
/// Largest pixel value of the raw data; pixels are divided by it.
pub const PIXEL_MAX: f32 = 16.0;
/// Seed of the train/test split: fixed, so that every run seed is tested on the same images.
pub const SPLIT_SEED: u64 = 1797;

/// The gzipped CSV (one image a line: 64 pixels 0..16, then the label 0..9).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// [`rng_for`] stream of the split.
const SPLIT_STREAM: u64 = 11;
/// [`rng_for`] stream of the minibatches.
const BATCH_STREAM: u64 = 12;

/// Labelled images, pixels scaled to `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `len x 64` pixels in `[0, 1]`, image-major, each image row-major.
    pub features: Vec<f32>,
    /// `len` labels in `0..10`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// The embedded 1797 images, checked ([`Dataset::from_csv_gz`], 1797 images, every class present).
    pub fn embedded() -> Result<Self> {
        let data = Self::from_csv_gz(DIGITS_CSV_GZ)?;
        if data.len() != IMAGES {
            return Err(EggrollError::Data(format!("digits.csv: expected {IMAGES} images, found {}", data.len())));
        }
        if let Some(missing) = (0..CLASSES as u8).find(|c| !data.labels.contains(c)) {
            return Err(EggrollError::Data(format!("digits.csv: no image of class {missing}")));
        }
        Ok(data)
    }

    /// Decompresses gzipped CSV and parses it ([`Dataset::parse_csv`]).
    pub fn from_csv_gz(bytes: &[u8]) -> Result<Self> {
        let mut text = String::new();
        GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| EggrollError::Data(format!("digits.csv.gz: cannot decompress: {e}")))?;
        Self::parse_csv(&text)
    }

    /// Parses CSV without a header: one image a line, 64 finite pixels in `[0, 16]` then an
    /// integer label in `0..10` (`3` or `3.0`); blank lines are skipped. Pixels are divided by 16.
    /// Any other content is an [`EggrollError::Data`] naming the line and column.
    pub fn parse_csv(text: &str) -> Result<Self> {
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |why: String| EggrollError::Data(format!("digits.csv line {}: {why}", i + 1));
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != FEATURES + 1 {
                return Err(bad(format!("expected {} comma-separated columns, found {}", FEATURES + 1, fields.len())));
            }
            let value = |col: usize| -> Result<f32> {
                let v: f32 = fields[col].parse().map_err(|_| bad(format!("column {}: `{}` is not a number", col + 1, fields[col])))?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(bad(format!("column {}: {v} is not finite", col + 1)))
                }
            };
            for col in 0..FEATURES {
                let v = value(col)?;
                if !(0.0..=PIXEL_MAX).contains(&v) {
                    return Err(bad(format!("column {}: pixel {v} is outside [0, {PIXEL_MAX}]", col + 1)));
                }
                features.push(v / PIXEL_MAX);
            }
            let label = value(FEATURES)?;
            if label.fract() != 0.0 || !(0.0..CLASSES as f32).contains(&label) {
                return Err(bad(format!("column {}: label {label} is not an integer in 0..{CLASSES}", FEATURES + 1)));
            }
            labels.push(label as u8);
        }
        if labels.is_empty() {
            return Err(EggrollError::Data("digits.csv: no images".into()));
        }
        Ok(Self { features, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.features[i * FEATURES..(i + 1) * FEATURES]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            features: indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Splits into `(train, test)` with `test_len` test images, stratified: the images are
    /// shuffled from `seed`, stably sorted by class, and every `len / test_len`-th (rounded so
    /// that exactly `test_len` are taken) goes to the test set, so each class keeps its share
    /// within one image.
    pub fn split(&self, test_len: usize, seed: u64) -> Result<(Self, Self)> {
        let n = self.len();
        if test_len == 0 || test_len >= n {
            return Err(EggrollError::Data(format!("cannot hold out {test_len} of {n} images")));
        }
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut order, &mut rng_for(seed, SPLIT_STREAM, 0));
        order.sort_by_key(|&i| self.labels[i]);
        let (mut train, mut test) = (Vec::with_capacity(n - test_len), Vec::with_capacity(test_len));
        for (p, &i) in order.iter().enumerate() {
            if (p + 1) * test_len / n > p * test_len / n {
                test.push(i);
            } else {
                train.push(i);
            }
        }
        train.sort_unstable();
        test.sort_unstable();
        Ok((self.subset(&train), self.subset(&test)))
    }
}

/// Fisher-Yates shuffle.
fn shuffle(v: &mut [usize], rng: &mut Pcg64) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// Mean cross-entropy of `logits` (`labels.len() x 10`, row-major) against `labels`, through a
/// stable log-softmax in f64: `mean_r (logsumexp(z_r) - z_r[label_r])`. NaN when a logit is not
/// finite.
pub fn cross_entropy(logits: &[f32], labels: &[u8]) -> f64 {
    debug_assert_eq!(logits.len(), labels.len() * CLASSES);
    let sum: f64 = logits
        .chunks_exact(CLASSES)
        .zip(labels)
        .map(|(z, &label)| {
            let max = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let lse = max + z.iter().map(|&v| (f64::from(v) - max).exp()).sum::<f64>().ln();
            lse - f64::from(z[usize::from(label)])
        })
        .sum();
    sum / labels.len() as f64
}

/// Fraction of rows of `logits` (`labels.len() x 10`) whose largest logit (the first on ties) is
/// at the label.
pub fn accuracy(logits: &[f32], labels: &[u8]) -> f32 {
    let correct = logits
        .chunks_exact(CLASSES)
        .zip(labels)
        .filter(|(z, &label)| {
            let best = z.iter().enumerate().fold(0, |b, (c, &v)| if v > z[b] { c } else { b });
            best == usize::from(label)
        })
        .count();
    correct as f32 / labels.len() as f32
}

/// Digit classification with an MLP 64 → 64 → 10 (tanh), pixels scaled to `[0, 1]`.
///
/// The 1797 images are split once, with [`SPLIT_SEED`] whatever the run seed, into 1437 training
/// and 360 test images (stratified). Each epoch draws [`BATCH`] training images without
/// replacement from `(seed, epoch)`; every member sees the same images
/// ([`InputLayout::Shared`]) and its raw fitness is minus its mean cross-entropy on them.
/// [`Task::evaluate`] reports the mean model's cross-entropy over the whole training set and its
/// accuracy on the test set.
#[derive(Clone, Debug)]
pub struct Digits {
    train: Dataset,
    test: Dataset,
    seed: u64,
}

impl Digits {
    /// The task on the embedded data; `seed` draws the minibatches (it should be the trainer's
    /// [`EsConfig::seed`]).
    pub fn new(seed: u64) -> Result<Self> {
        let (train, test) = Dataset::embedded()?.split(TEST_IMAGES, SPLIT_SEED)?;
        Ok(Self { train, test, seed })
    }

    /// The training images.
    pub fn train_set(&self) -> &Dataset {
        &self.train
    }

    /// The test images.
    pub fn test_set(&self) -> &Dataset {
        &self.test
    }

    /// Indices into the training set of the minibatch of `epoch`: [`BATCH`] distinct images
    /// drawn from `(seed, epoch)` (a partial Fisher-Yates shuffle).
    pub fn batch_indices(&self, epoch: u32) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        let mut rng = rng_for(self.seed, BATCH_STREAM, epoch);
        let take = BATCH.min(order.len());
        for i in 0..take {
            let j = rng.random_range(i..order.len());
            order.swap(i, j);
        }
        order.truncate(take);
        order
    }

    /// The minibatch of `epoch` ([`Digits::batch_indices`]).
    pub fn batch(&self, epoch: u32) -> Dataset {
        self.train.subset(&self.batch_indices(epoch))
    }
}

impl Task for Digits {
    type Model = Mlp;
    type Format = F32;

    fn name(&self) -> &'static str {
        "digits"
    }

    fn model(&self) -> Mlp {
        Mlp::builder(FEATURES).linear(HIDDEN).tanh().linear(CLASSES).build().expect("the task's fixed architecture is valid")
    }

    /// N = 512, rank 4, σ = 0.05, AdamW with lr 0.02 (weight decay 1e-4), 300 epochs, fitness
    /// z-scored over the whole population. Reaches about 0.96 test accuracy.
    fn default_config(&self) -> EsConfig {
        EsConfig {
            population: 512,
            rank: 4,
            sigma: 0.05,
            lr: 0.02,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 1e-4,
            lr_schedule: Schedule::Constant,
            sigma_schedule: Schedule::Constant,
            epochs: 300,
            group_size: 0,
            ..EsConfig::default()
        }
    }

    /// The shared minibatch, every member's logits read back; the mean model on the training
    /// images.
    fn footprint(&self, config: &EsConfig) -> Footprint {
        Footprint::new(config, BATCH, InputLayout::Shared, TRAIN_IMAGES.max(TEST_IMAGES), (BATCH * CLASSES + 1) * 4)
    }

    async fn members_fitness_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>, members: Range<usize>) -> Result<Vec<f32>> {
        let batch = self.batch(es.epoch());
        let logits = es.population_forward_members_async(members, &batch.features, InputLayout::Shared, batch.len()).await?;
        Ok(logits.chunks_exact(batch.len() * CLASSES).map(|member| -cross_entropy(member, &batch.labels) as f32).collect())
    }

    /// Cross-entropy of the mean model over the 1437 training images (train loss) and its
    /// accuracy on the 360 test images (metric `"accuracy"`).
    async fn evaluate_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>) -> Result<Evaluation> {
        let train = es.forward_mean_async(&self.train.features, self.train.len()).await?;
        let test = es.forward_mean_async(&self.test.features, self.test.len()).await?;
        Ok(Evaluation {
            train_loss: cross_entropy(&train, &self.train.labels) as f32,
            metric_name: TaskKind::Digits.metric_name(),
            metric: accuracy(&test, &self.test.labels),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{train_epoch, TaskKind};
    use eggroll_backend::cpu::CpuBackend;

    /// Images per class in the embedded file (scikit-learn's `load_digits`).
    const CLASS_COUNTS: [usize; CLASSES] = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180];

    fn class_counts(d: &Dataset) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &d.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// A valid CSV line: 64 pixels `pixel` then `label`.
    fn line(pixel: &str, label: &str) -> String {
        let mut fields = vec![pixel; FEATURES];
        fields.push(label);
        fields.join(",")
    }

    fn data_error(text: &str) -> String {
        match Dataset::parse_csv(text) {
            Err(EggrollError::Data(msg)) => msg,
            other => panic!("expected a data error for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn embedded_data_is_the_scikit_learn_digits() {
        let d = Dataset::embedded().unwrap();
        assert_eq!(d.len(), IMAGES);
        assert_eq!(d.features.len(), IMAGES * FEATURES);
        assert_eq!(class_counts(&d), CLASS_COUNTS);
        assert!(d.features.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Both ends of the pixel range occur.
        assert!(d.features.contains(&0.0) && d.features.contains(&1.0));
        // The first image of the file, divided by 16.
        let first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0];
        let expected: Vec<f32> = first.iter().map(|&v| v as f32 / 16.0).collect();
        assert_eq!(&d.image(0)[..16], &expected[..]);
        assert_eq!(&d.labels[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(d.labels[IMAGES - 1], 8);
    }

    #[test]
    fn split_is_stratified_disjoint_and_fixed() {
        let task = Digits::new(0).unwrap();
        let (train, test) = (task.train_set(), task.test_set());
        assert_eq!((train.len(), test.len()), (TRAIN_IMAGES, TEST_IMAGES));
        assert_eq!((TRAIN_IMAGES, TEST_IMAGES), (1437, 360));
        // Together they are the data set: same classes, same images (compared as sorted pixel rows).
        let (tr, te) = (class_counts(train), class_counts(test));
        for c in 0..CLASSES {
            assert_eq!(tr[c] + te[c], CLASS_COUNTS[c]);
            let share = CLASS_COUNTS[c] as f64 * TEST_IMAGES as f64 / IMAGES as f64;
            assert!((te[c] as f64 - share).abs() <= 1.0, "class {c}: {} test images, share {share}", te[c]);
        }
        let rows = |d: &Dataset| -> Vec<Vec<u32>> {
            (0..d.len()).map(|i| d.image(i).iter().map(|v| v.to_bits()).chain([u32::from(d.labels[i])]).collect()).collect()
        };
        let all = Dataset::embedded().unwrap();
        let mut joined = rows(train);
        joined.extend(rows(test));
        joined.sort();
        let mut expected = rows(&all);
        expected.sort();
        assert_eq!(joined, expected);
        // The split does not depend on the run seed, and is the same every time.
        let other = Digits::new(7).unwrap();
        assert_eq!(other.test_set(), test);
        assert_eq!(other.train_set(), train);
        // Another split seed gives another split.
        let (_, test2) = all.split(TEST_IMAGES, SPLIT_SEED + 1).unwrap();
        assert_ne!(&test2, test);
        assert!(all.split(0, 0).is_err() && all.split(IMAGES, 0).is_err());
    }

    #[test]
    fn parse_csv_validates() {
        let ok = format!("{}\n\n{}\n", line("16", "9"), line("0.0", "0.0"));
        let d = Dataset::parse_csv(&ok).unwrap();
        assert_eq!(d.labels, vec![9, 0]);
        assert_eq!(d.image(0), &[1.0; FEATURES][..]);
        assert_eq!(d.image(1), &[0.0; FEATURES][..]);

        let short = format!("{}\n{}", line("1", "1"), vec!["1"; FEATURES].join(","));
        assert!(data_error(&short).contains("line 2: expected 65 comma-separated columns, found 64"));
        assert!(data_error(&line("1", "10")).contains("label 10 is not an integer in 0..10"));
        assert!(data_error(&line("1", "-1")).contains("label -1"));
        assert!(data_error(&line("1", "2.5")).contains("label 2.5"));
        assert!(data_error(&line("17", "1")).contains("pixel 17 is outside [0, 16]"));
        assert!(data_error(&line("-0.5", "1")).contains("column 1: pixel -0.5"));
        assert!(data_error(&line("NaN", "1")).contains("NaN is not finite"));
        assert!(data_error(&line("1", "inf")).contains("column 65: inf is not finite"));
        assert!(data_error(&line("x", "1")).contains("column 1: `x` is not a number"));
        assert!(data_error("\n\n").contains("no images"));
        match Dataset::from_csv_gz(b"not gzip") {
            Err(EggrollError::Data(msg)) => assert!(msg.contains("cannot decompress"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cross_entropy_and_accuracy_on_known_cases() {
        // Uniform logits: ln 10.
        assert!((cross_entropy(&[0.0; CLASSES], &[3]) - 10f64.ln()).abs() < 1e-12);
        // z = [2, 1, 0, ..., 0], label 0: ln(e² + e + 8) - 2; label 2: ln(e² + e + 8).
        let mut z = [0.0f32; CLASSES];
        z[0] = 2.0;
        z[1] = 1.0;
        let lse = (2f64.exp() + 1f64.exp() + 8.0).ln();
        assert!((cross_entropy(&z, &[0]) - (lse - 2.0)).abs() < 1e-12);
        assert!((cross_entropy(&z, &[2]) - lse).abs() < 1e-12);
        // The mean over rows.
        let two: Vec<f32> = z.iter().chain(&[0.0; CLASSES]).copied().collect();
        assert!((cross_entropy(&two, &[0, 5]) - (lse - 2.0 + 10f64.ln()) / 2.0).abs() < 1e-12);
        // Stable for large logits: no overflow to inf or NaN.
        let mut big = [-1000.0f32; CLASSES];
        big[4] = 1000.0;
        assert!(cross_entropy(&big, &[4]).abs() < 1e-12);
        assert!((cross_entropy(&big, &[0]) - 2000.0).abs() < 1e-9);
        assert!(cross_entropy(&[f32::NAN; CLASSES], &[0]).is_nan());

        // Accuracy: rows predicting 0 (z), 4 (big), 0 (uniform: first on ties).
        let rows: Vec<f32> = z.iter().chain(&big).chain(&[0.0; CLASSES]).copied().collect();
        assert_eq!(accuracy(&rows, &[0, 4, 0]), 1.0);
        assert_eq!(accuracy(&rows, &[1, 4, 9]), 1.0 / 3.0);
        assert_eq!(accuracy(&rows, &[1, 1, 1]), 0.0);
    }

    #[test]
    fn minibatches_are_distinct_and_a_function_of_seed_and_epoch() {
        let task = Digits::new(3).unwrap();
        let b = task.batch_indices(5);
        assert_eq!(b.len(), BATCH);
        let mut sorted = b.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), BATCH, "indices repeat");
        assert!(b.iter().all(|&i| i < TRAIN_IMAGES));
        assert_eq!(Digits::new(3).unwrap().batch_indices(5), b);
        assert_ne!(task.batch_indices(6), b);
        assert_ne!(Digits::new(4).unwrap().batch_indices(5), b);
        let batch = task.batch(5);
        assert_eq!(batch.image(1), task.train_set().image(b[1]));
        assert_eq!(batch.labels[BATCH - 1], task.train_set().labels[b[BATCH - 1]]);
    }

    /// A short seeded run: the mean model starts near chance and ends well above it.
    #[test]
    fn short_run_learns_digits() {
        let mut task = match TaskKind::Digits.build(0).unwrap() {
            crate::tasks::AnyTask::Digits(t) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(task.name(), "digits");
        let config = EsConfig { population: 128, epochs: 60, ..task.default_config() };
        let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
        let before = task.evaluate(&mut es).unwrap();
        assert_eq!(before.metric_name, "accuracy");
        assert!(before.metric < 0.3, "untrained accuracy {}", before.metric);
        for _ in 0..60 {
            train_epoch(&mut task, &mut es).unwrap();
        }
        let after = task.evaluate(&mut es).unwrap();
        assert!(after.metric > 0.75, "accuracy after 60 epochs: {} (before {})", after.metric, before.metric);
        assert!(after.train_loss < 0.6 * before.train_loss, "train loss {} -> {}", before.train_loss, after.train_loss);
    }

    /// The fitness of an epoch is a pure function of the seed, the epoch and the parameters.
    #[test]
    fn fitness_is_reproducible() {
        let fitness = || {
            let mut task = Digits::new(0).unwrap();
            let config = EsConfig { population: 8, ..task.default_config() };
            let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), config).unwrap();
            train_epoch(&mut task, &mut es).unwrap();
            task.population_fitness(&mut es).unwrap()
        };
        let f = fitness();
        assert_eq!(f.len(), 8);
        assert!(f.iter().all(|v| v.is_finite() && *v < 0.0));
        assert_eq!(f, fitness());
    }
}
