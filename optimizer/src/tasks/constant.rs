//! A smoke-test task: output 2 whatever the input.

use super::{mse, rng_for, Evaluation, Footprint, Task, TaskKind};
use crate::config::{EsConfig, OptimizerKind};
use crate::error::Result;
use crate::es::FloatTrainer;
use crate::format::F32;
use crate::model::Mlp;
use eggroll_backend::{Backend, InputLayout};
use rand::RngExt;
use std::ops::Range;

/// The value the model must output.
pub const TARGET: f32 = 2.0;
/// Random inputs each member is evaluated on per epoch.
pub const ROWS_PER_EPOCH: usize = 8;
/// Held-out inputs.
pub const TEST_ROWS: usize = 256;
/// Input features.
const INPUTS: usize = 3;

/// An MLP 3 → 16 → 16 → 1 (relu) learns to output 2 for inputs in `U[-1, 1]³`. Every member sees
/// the same 8 random inputs of the epoch (drawn from the trainer's seed and epoch); fitness is
/// `-mean (ŷ - 2)²`.
#[derive(Clone, Debug)]
pub struct Constant {
    test_x: Vec<f32>,
}

/// `rows` inputs in `U[-1, 1]³` from `(seed, stream, epoch)`.
fn inputs(seed: u64, stream: u64, epoch: u32, rows: usize) -> Vec<f32> {
    let mut rng = rng_for(seed, stream, epoch);
    (0..rows * INPUTS).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

impl Constant {
    /// The task with held-out inputs drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { test_x: inputs(seed, 4, 0, TEST_ROWS) }
    }
}

impl Task for Constant {
    type Model = Mlp;
    type Format = F32;

    fn name(&self) -> &'static str {
        "constant"
    }

    fn model(&self) -> Mlp {
        Mlp::builder(INPUTS).linear(16).relu().linear(16).relu().linear(1).build().expect("the task's fixed architecture is valid")
    }

    /// N = 64, rank 8, σ = 0.2, AdamW with lr 0.03, 200 epochs.
    fn default_config(&self) -> EsConfig {
        EsConfig {
            population: 64,
            rank: 8,
            sigma: 0.2,
            lr: 0.03,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 1e-3,
            epochs: 200,
            ..EsConfig::default()
        }
    }

    /// The shared rows, every member's outputs read back; the mean model on the test rows.
    fn footprint(&self, config: &EsConfig) -> Footprint {
        Footprint::new(config, ROWS_PER_EPOCH, InputLayout::Shared, ROWS_PER_EPOCH.max(TEST_ROWS), (ROWS_PER_EPOCH + 1) * 4)
    }

    async fn members_fitness_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>, members: Range<usize>) -> Result<Vec<f32>> {
        let x = inputs(es.config().seed, 3, es.epoch(), ROWS_PER_EPOCH);
        let y = es.population_forward_members_async(members, &x, InputLayout::Shared, ROWS_PER_EPOCH).await?;
        let targets = [TARGET; ROWS_PER_EPOCH];
        Ok(y.chunks_exact(ROWS_PER_EPOCH).map(|member| -mse(member, &targets)).collect())
    }

    /// Train loss on the inputs of the last epoch trained; test loss on 256 held-out inputs.
    async fn evaluate_async<B: Backend>(&mut self, es: &mut FloatTrainer<B>) -> Result<Evaluation> {
        let x = inputs(es.config().seed, 3, es.epoch().saturating_sub(1), ROWS_PER_EPOCH);
        let train_loss = mse(&es.forward_mean_async(&x, ROWS_PER_EPOCH).await?, &[TARGET; ROWS_PER_EPOCH]);
        let test = es.forward_mean_async(&self.test_x, TEST_ROWS).await?;
        Ok(Evaluation { train_loss, metric_name: TaskKind::Constant.metric_name(), metric: mse(&test, &[TARGET; TEST_ROWS]) })
    }
}
