//! The authors' worked example: fit `y = x² + x + 1` on `x ~ U[-10, 10]`.

use super::{mse, rng_for, Evaluation, Footprint, Task, TaskKind};
use crate::config::{EsConfig, OptimizerKind, Schedule, Shaping};
use crate::error::Result;
use crate::es::FloatTrainer;
use crate::format::F32;
use crate::model::Mlp;
use eggroll_backend::{Backend, InputLayout};
use rand::RngExt;
use std::ops::Range;

/// Training points.
pub const TRAIN_POINTS: usize = 1024;
/// Test points.
pub const TEST_POINTS: usize = 1024;

/// Regression of `y = x² + x + 1` with an MLP 1 → 64 → 64 → 64 → 1 (pqn between layers).
///
/// Each epoch takes the next `G = N / group_size` training points (cycling through the 1024) and
/// gives point g to group g: every member of group g sees that one point. Fitness is `-(ŷ - y)²`;
/// the default shaping z-scores it per group with the global variance.
#[derive(Clone, Debug)]
pub struct Regression {
    train_x: Vec<f32>,
    test_x: Vec<f32>,
    test_y: Vec<f32>,
}

/// The target function.
pub fn target(x: f32) -> f32 {
    x * x + x + 1.0
}

impl Regression {
    /// 1024 train and 1024 test points drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let draw = |stream, n| {
            let mut rng = rng_for(seed, stream, 0);
            (0..n).map(|_| rng.random_range(-10.0f32..10.0)).collect::<Vec<_>>()
        };
        let test_x = draw(2, TEST_POINTS);
        let test_y = test_x.iter().map(|&x| target(x)).collect();
        Self { train_x: draw(1, TRAIN_POINTS), test_x, test_y }
    }

    /// The training points of `epoch`: `groups` consecutive points, cycling.
    fn batch(&self, epoch: u32, groups: usize) -> Vec<f32> {
        let start = epoch as usize * groups;
        (0..groups).map(|g| self.train_x[(start + g) % TRAIN_POINTS]).collect()
    }
}

impl Task for Regression {
    type Model = Mlp;
    type Format = F32;

    fn name(&self) -> &'static str {
        "regression"
    }

    fn model(&self) -> Mlp {
        Mlp::builder(1)
            .linear(64)
            .pqn()
            .linear(64)
            .pqn()
            .linear(64)
            .pqn()
            .linear(1)
            .build()
            .expect("the task's fixed architecture is valid")
    }

    /// N = 4096, rank 1, σ = lr = 1 (SGD), both decaying linearly to 0 over 1000 epochs, groups
    /// of 128, new noise every epoch.
    fn default_config(&self) -> EsConfig {
        EsConfig {
            population: 4096,
            rank: 1,
            sigma: 1.0,
            lr: 1.0,
            optimizer: OptimizerKind::Sgd,
            lr_schedule: Schedule::Linear,
            sigma_schedule: Schedule::Linear,
            epochs: 1000,
            group_size: 128,
            noise_reuse: 1,
            shaping: Shaping::ZScore,
            ..EsConfig::default()
        }
    }

    /// One point per member (its x, its prediction and its fitness); the mean model on the
    /// groups' points and on the test points.
    fn footprint(&self, config: &EsConfig) -> Footprint {
        let eval = (config.population / config.group_len()).max(TEST_POINTS);
        Footprint::new(config, 1, InputLayout::PerMember, eval, 3 * 4)
    }

    async fn members_fitness_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>, members: Range<usize>) -> Result<Vec<f32>> {
        let group = es.config().group_len();
        let points = self.batch(es.epoch(), es.config().population / group);
        let x: Vec<f32> = members.clone().map(|member| points[member / group]).collect();
        let y = es.population_forward_members_async(members, &x, InputLayout::PerMember, 1).await?;
        Ok(y.iter().zip(&x).map(|(&pred, &x)| -(pred - target(x)).powi(2)).collect())
    }

    /// Train loss on the points of the last epoch trained; test MSE over the 1024 test points.
    async fn evaluate_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>) -> Result<Evaluation> {
        let group = es.config().group_len();
        let points = self.batch(es.epoch().saturating_sub(1), es.config().population / group);
        let targets: Vec<f32> = points.iter().map(|&x| target(x)).collect();
        let train_loss = mse(&es.forward_mean_async(&points, points.len()).await?, &targets);
        let test = es.forward_mean_async(&self.test_x, TEST_POINTS).await?;
        Ok(Evaluation { train_loss, metric_name: TaskKind::Regression.metric_name(), metric: mse(&test, &self.test_y) })
    }
}
